//! What the source holds before any replicator starts: bulk topics, the failover topics and
//! the consumer groups committed on them. Every replicator sees exactly this data.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::Compression;
use tern_kafka::client::{Client, Membership};
use tern_kafka::records::{encode_batch, PlainRecord};

use super::{Payload, Replicator, Row, Sizes};

/// Bytes per bulk record (key, value and record overhead), the unit of every MB/s.
pub const RECORD_BYTES: usize = 1024;
/// Records per produced batch: about 512 KiB uncompressed, as a well-batching producer sends.
pub const PER_BATCH: usize = 512;
const VALUE_BYTES: usize = 1000;

/// The name of a bulk row's topic.
pub fn bulk_topic(row: &Row, tag: &str) -> String {
    format!("bench-{}{tag}", row.name())
}

/// One lz4 batch of [`PER_BATCH`] records of `payload`; `seed` varies the content.
pub fn bulk_batch(payload: Payload, seed: u64) -> anyhow::Result<Bytes> {
    let now = super::super::common::now_ms();
    let records: Vec<PlainRecord> = (0..PER_BATCH as u64)
        .map(|i| {
            let n = seed * PER_BATCH as u64 + i;
            let value = match payload {
                Payload::Dense => random_bytes(n, VALUE_BYTES),
                Payload::Text => json_event(n),
            };
            PlainRecord::new(format!("{n:012}"), Some(Bytes::from(value)), now)
        })
        .collect();
    Ok(encode_batch(&records, Compression::Lz4)?)
}

/// xorshift64: incompressible bytes, reproducible from `seed`.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A click-stream event as JSON, padded with cart lines to [`VALUE_BYTES`]: field names and
/// vocabularies repeat, ids and prices do not, as in real event streams.
fn json_event(n: u64) -> Vec<u8> {
    const EVENTS: [&str; 5] = ["page_view", "add_to_cart", "search", "checkout", "product_view"];
    const PAGES: [&str; 6] = ["/products/shoes/running", "/products/shoes/trail", "/cart", "/search", "/products/jackets/rain", "/account/orders"];
    const DEVICES: [&str; 4] = [r#"{"os":"Android","version":"14","model":"Pixel 8"}"#, r#"{"os":"iOS","version":"17.4","model":"iPhone 15"}"#, r#"{"os":"Windows","version":"11","browser":"Firefox 125"}"#, r#"{"os":"macOS","version":"14.4","browser":"Safari 17"}"#];
    const CITIES: [&str; 5] = [r#""country":"DE","city":"Berlin""#, r#""country":"FR","city":"Lyon""#, r#""country":"US","city":"Austin""#, r#""country":"JP","city":"Osaka""#, r#""country":"BR","city":"Recife""#];
    let r = random_bytes(n, 32);
    let pick = |i: usize, m: usize| r[i] as usize % m;
    let mut s = format!(
        r#"{{"seq":{n},"ts":"2026-11-25T10:{:02}:{:02}.{:03}Z","user":"user-{:05}","session":"{:016x}","event":"{}","page":"{}","referrer":"https://www.example.com/search?q=item+{}","device":{},"geo":{{{}}},"cart":["#,
        r[0] % 60,
        r[1] % 60,
        u16::from_le_bytes([r[2], r[3]]) % 1000,
        u32::from_le_bytes([r[4], r[5], r[6], 0]) % 100_000,
        u64::from_le_bytes([r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14]]),
        EVENTS[pick(15, EVENTS.len())],
        PAGES[pick(16, PAGES.len())],
        r[17],
        DEVICES[pick(18, DEVICES.len())],
        CITIES[pick(19, CITIES.len())],
    );
    let mut i = 0u64;
    while s.len() < VALUE_BYTES - 70 {
        let line = random_bytes(n * 31 + i, 4);
        s += &format!(r#"{}{{"sku":"SKU-{:05}","qty":{},"price":{}.{:02}}}"#, if i == 0 { "" } else { "," }, u16::from_le_bytes([line[0], line[1]]) % 20_000, line[2] % 4 + 1, line[3] % 200, line[0] % 100);
        i += 1;
    }
    s += "]}";
    while s.len() < VALUE_BYTES {
        s.push(' ');
    }
    s.into_bytes()
}

/// Creates a bulk row's topic on the source and writes `records` records into it. Returns the
/// topic, the lz4 ratio of its batches and how long the preload took.
pub async fn preload_bulk(source: &Client, bootstrap: &str, row: &Row, records: usize, tag: &str) -> anyhow::Result<(String, f64, Duration)> {
    let topic = bulk_topic(row, tag);
    anyhow::ensure!(source.create_topic(&topic, row.partitions, &BTreeMap::new()).await?, "{topic} exists already");
    let batch = bulk_batch(row.payload, 1)?;
    let ratio = (PER_BATCH * RECORD_BYTES) as f64 / batch.len() as f64;
    let took = produce_batches(bootstrap, &topic, row.partitions, records.div_ceil(PER_BATCH), batch).await?;
    Ok((topic, ratio, took))
}

/// Writes `count` copies of `batch`, round robin over the partitions, with a few requests in
/// flight per connection.
async fn produce_batches(bootstrap: &str, topic: &str, partitions: i32, count: usize, batch: Bytes) -> anyhow::Result<Duration> {
    const CONNECTIONS: usize = 4;
    const IN_FLIGHT: usize = 4;
    let began = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..CONNECTIONS {
        let (bootstrap, topic, batch) = (bootstrap.to_string(), topic.to_string(), batch.clone());
        tasks.spawn(async move {
            let client = Client::connect(tern_kafka::client::ClientConfig::new(&bootstrap)).await?;
            wait_for_leaders(&client, &topic, partitions).await?;
            let mut pending = std::collections::VecDeque::new();
            for i in (w..count).step_by(CONNECTIONS) {
                let p = (i % partitions as usize) as i32;
                pending.push_back((p, client.send_produce(&topic, p, batch.clone(), 1, 30_000).await?));
                if pending.len() >= IN_FLIGHT {
                    if let Some((p, ack)) = pending.pop_front() {
                        settle(&client, &topic, p, &batch, ack).await?;
                    }
                }
            }
            while let Some((p, ack)) = pending.pop_front() {
                settle(&client, &topic, p, &batch, ack).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(began.elapsed())
}

/// A pipelined produce's answer; a failed one is sent again with the client's retries.
async fn settle(client: &Client, topic: &str, p: i32, batch: &Bytes, ack: tern_kafka::client::PendingProduce) -> anyhow::Result<()> {
    if ack.ack().await.is_err() {
        client.produce(topic, p, batch.clone(), 1, 30_000).await?;
    }
    Ok(())
}

/// Waits until every partition of a new topic has a leader (CreateTopics answers before the
/// broker has taken leadership).
pub async fn wait_for_leaders(client: &Client, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let md = client.refresh_metadata(Some(&[topic.to_string()])).await?;
        if md.topics.get(topic).is_some_and(|t| t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.leader >= 0 && p.error_code == 0)) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{topic}: no leader for every partition within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The failover topics and the groups committed on them.
pub struct FailoverData {
    /// Two partitions of small unique records.
    pub plain: String,
    /// Compacted, one partition; compaction removed the offsets in `hole`.
    pub compacted: String,
    pub hole: std::ops::Range<i64>,
    pub groups: Vec<Group>,
    /// Latency topic of each replicator (empty until its latency phase).
    pub latency_topics: BTreeMap<Replicator, String>,
    /// The regex (MM2 and Tern alike) that selects the groups.
    pub groups_regex: String,
}

/// A consumer group on the source and where it committed.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// What it stands for, short first: "caught up, at the end of both topics".
    pub kind: String,
    pub committed: BTreeMap<(String, i32), i64>,
}

pub const LATENCY_PARTITIONS: i32 = 8;

/// Writes the failover topics, waits until Kafka's cleaner has made the hole, and commits
/// the groups.
pub async fn prepare_failover(source: &Client, sizes: &Sizes, tag: &str, replicators: &[Replicator]) -> anyhow::Result<FailoverData> {
    let plain = format!("fo-plain{tag}");
    let compacted = format!("fo-compacted{tag}");
    anyhow::ensure!(source.create_topic(&plain, 2, &BTreeMap::new()).await?, "{plain} exists already");
    let n = sizes.failover_records;
    for p in 0..2 {
        let mut i = 0;
        while i < n {
            let count = 500.min(n - i);
            let records: Vec<PlainRecord> =
                (i..i + count).map(|j| PlainRecord::new(format!("k{j}"), Some(Bytes::from(padded(&format!("{plain}/{p}/{j:08}")))), super::super::common::now_ms())).collect();
            source.produce(&plain, p, encode_batch(&records, Compression::Lz4)?, 1, 30_000).await?;
            i += count;
        }
    }

    // Four key ranges of `u` records: a*, then h* (old), b*, h* again (new). Compaction keeps
    // only the newest record per key, so the old h* range [u, 2u) becomes a hole.
    let u = sizes.compacted_unit;
    let configs: BTreeMap<String, String> =
        [("cleanup.policy", "compact"), ("segment.ms", "100"), ("min.cleanable.dirty.ratio", "0.01")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    anyhow::ensure!(source.create_topic(&compacted, 1, &configs).await?, "{compacted} exists already");
    for (prefix, version) in [("a", "v1"), ("h", "old"), ("b", "v1"), ("h", "new")] {
        let mut i = 0;
        while i < u {
            let count = 500.min(u - i);
            let records: Vec<PlainRecord> = (i..i + count)
                .map(|j| PlainRecord::new(format!("{prefix}{j}"), Some(Bytes::from(padded(&format!("{compacted}/{prefix}{j}/{version}")))), super::super::common::now_ms()))
                .collect();
            source.produce(&compacted, 0, encode_batch(&records, Compression::Lz4)?, 1, 30_000).await?;
            i += count;
        }
        // Past segment.ms, so the next write starts a new segment.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // The active segment is never cleaned: one more record rolls it.
    let tail = vec![PlainRecord::new("tail", Some(Bytes::from(padded(&format!("{compacted}/tail")))), super::super::common::now_ms())];
    source.produce(&compacted, 0, encode_batch(&tail, Compression::Lz4)?, 1, 30_000).await?;
    let hole = u as i64..2 * u as i64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let offsets: Vec<i64> = values(source, &compacted, 0).await?.iter().map(|r| r.0).collect();
        let gone = !offsets.iter().any(|o| hole.contains(o));
        if gone && offsets.first() == Some(&0) && offsets.contains(&hole.end) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "Kafka's log cleaner did not remove offsets {hole:?} of {compacted} within 120 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let compacted_end = 4 * u as i64 + 1;

    let lag_each = (sizes.lag / 2) as i64;
    let n = n as i64;
    let groups = vec![
        Group {
            name: format!("fo-caught-up{tag}"),
            kind: "caught up, at the end of both topics".into(),
            committed: [((plain.clone(), 0), n), ((plain.clone(), 1), n), ((compacted.clone(), 0), compacted_end)].into_iter().collect(),
        },
        Group {
            name: format!("fo-lagging{tag}"),
            kind: format!("lagging by {} records, {} per partition", sizes.lag, lag_each),
            committed: [((plain.clone(), 0), n - lag_each), ((plain.clone(), 1), n - lag_each)].into_iter().collect(),
        },
        Group {
            name: format!("fo-in-hole{tag}"),
            kind: format!("inside a compacted hole, committed at {} of {}..{}", hole.start + u as i64 / 2, hole.start, hole.end),
            committed: [((compacted.clone(), 0), hole.start + u as i64 / 2)].into_iter().collect(),
        },
    ];
    for g in &groups {
        source.commit_offsets(&g.name, &Membership::none(), &g.committed).await?;
    }

    let mut latency_topics = BTreeMap::new();
    for rep in replicators {
        let topic = format!("lat-{}{tag}", rep.key());
        anyhow::ensure!(source.create_topic(&topic, LATENCY_PARTITIONS, &BTreeMap::new()).await?, "{topic} exists already");
        latency_topics.insert(*rep, topic);
    }
    Ok(FailoverData { plain, compacted, hole, groups, latency_topics, groups_regex: format!("fo-.*{tag}") })
}

/// A unique marker padded to 100 bytes.
fn padded(marker: &str) -> String {
    format!("{marker:<100}")
}

/// Every record value of a partition with its offset, from its log start to its end at the
/// time of the call. Kafka may end a fetch response with a partial batch (it sends a byte
/// range of the log): only whole batches are decoded, and the next fetch starts after them.
pub async fn values(client: &Client, topic: &str, partition: i32) -> anyhow::Result<Vec<(i64, Bytes)>> {
    use tern_kafka::client::{EARLIEST, LATEST};
    let (end, _) = client.list_offset(topic, partition, LATEST).await?;
    let (mut next, _) = client.list_offset(topic, partition, EARLIEST).await?;
    let mut out = Vec::new();
    while next < end {
        let (leader, _) = client.leader_connection(topic, partition).await?;
        let resp = client.fetch(leader, &[(topic.to_string(), partition, next)], 100, 8 << 20, 8 << 20).await?;
        let p = resp.responses.first().and_then(|t| t.partitions.first()).ok_or_else(|| anyhow::anyhow!("{topic}/{partition}: empty fetch response"))?;
        anyhow::ensure!(p.error_code == 0, "{topic}/{partition}: fetch at {next}: error {}", p.error_code);
        let (mut whole, last) = whole_batches(p.records.clone().unwrap_or_default());
        let Some(last) = last else { break };
        for r in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut whole)?.into_iter().flat_map(|s| s.records) {
            if r.offset >= next && r.offset < end && !r.control {
                out.push((r.offset, r.value.unwrap_or_default()));
            }
        }
        // Past the last batch, even where compaction emptied its tail.
        next = next.max(last + 1);
    }
    Ok(out)
}

/// The whole batches at the start of a fetched record set, and the last offset they cover.
pub fn whole_batches(mut data: Bytes) -> (Bytes, Option<i64>) {
    let mut len = 0;
    let mut last = None;
    // baseOffset (8) | batchLength (4) | partitionLeaderEpoch (4) | magic (1) | crc (4) |
    // attributes (2) | lastOffsetDelta (4) | ...
    while data.len() >= len + 27 {
        let at = |i: usize, n: usize| data[len + i..len + i + n].to_vec();
        let base = i64::from_be_bytes(at(0, 8).try_into().unwrap_or_default());
        let size = 12 + i32::from_be_bytes(at(8, 4).try_into().unwrap_or_default()).max(0) as usize;
        let delta = i32::from_be_bytes(at(23, 4).try_into().unwrap_or_default());
        if data.len() < len + size {
            break;
        }
        len += size;
        last = Some(base + delta as i64);
    }
    (data.split_to(len), last)
}
