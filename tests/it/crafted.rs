//! Crafted record batches cost bounded memory and stop nothing. The batch: zstd, a few
//! kilobytes, 40 records of 32 MiB of zeros each, so 1.25 GiB to decompress. Apache Kafka
//! accepts it (its validation reads records as a stream); `tern broker` refuses it with
//! INVALID_RECORD naming kafka-protocol's bound. The mirror copies it from an Apache Kafka
//! source without decompressing it where the target takes it, and stops only that partition,
//! with the target's refusal, where the target does not; written to the control topic, it is
//! skipped with a warning and the decision written after it applies. `tern run`'s peak RSS
//! stays under 1 GiB throughout, as does a `tern broker` process's given the batch and a header
//! claiming 2^31 - 1 records. The source is Apache Kafka (a `tern broker` source refuses the
//! batch at produce, see `produce_rules`); the target is each kind.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Zstd};
use kafka_protocol::records::Compression;
use tern_kafka::batch::{rewrite_crc, HEADER_LEN};
use tern_kafka::records::{encode_batch, PlainRecord};

use crate::clusters::*;
use crate::drills::{end, now_ms};
use crate::helpers::*;
use crate::reload::{json, OneFlow, Run};

const CONTROL_TOPIC: &str = "tern-control.internal";

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn zstd(data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    <Zstd as Compressor<BytesMut>>::compress(&mut out, |b| {
        b.extend_from_slice(data);
        Ok(())
    })
    .expect("zstd");
    out.to_vec()
}

/// A zstd batch of `records` records with `key` and a `value_len`-byte value of zeros, built of
/// zstd frames (one per record header, one shared by every value): quick to build, and
/// `records * value_len` bytes to decompress.
fn zstd_bomb(records: usize, value_len: usize, key: Option<&[u8]>) -> Bytes {
    let zeros = zstd(&vec![0u8; value_len]);
    let mut body = Vec::new();
    for i in 0..records {
        let mut fields = vec![0u8]; // attributes
        varint(&mut fields, 0); // timestamp delta
        varint(&mut fields, i as i64); // offset delta
        match key {
            Some(k) => {
                varint(&mut fields, k.len() as i64);
                fields.extend_from_slice(k);
            }
            None => varint(&mut fields, -1),
        }
        varint(&mut fields, value_len as i64);
        let mut head = Vec::new();
        if i > 0 {
            head.push(0); // the header count that ends the record before
        }
        varint(&mut head, (fields.len() + value_len + 1) as i64);
        head.extend_from_slice(&fields);
        body.extend_from_slice(&zstd(&head));
        body.extend_from_slice(&zeros);
    }
    body.extend_from_slice(&zstd(&[0]));
    // The header of a real zstd batch with as many records, then this body.
    let template: Vec<PlainRecord> = (0..records).map(|_| PlainRecord::new("k", None, now_ms())).collect();
    let mut b = encode_batch(&template, Compression::Zstd).expect("template")[..HEADER_LEN].to_vec();
    b.extend_from_slice(&body);
    let batch_length = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    rewrite_crc(&mut b);
    Bytes::from(b)
}

/// Peak RSS of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()).expect("VmHWM");
    kb * 1024
}

async fn crafted_batches_cost_bounded_memory(target_kind: Kind) {
    const RECORDS: usize = 40;
    const VALUE: usize = 32 << 20;
    let one = OneFlow::start(Kind::Kafka, target_kind, "crafted", 1).await;
    let (source, target, b, flow, topic, remote) = (&one.source, &one.target, &one.b, &one.flow, &one.topic, &one.remote);

    let bomb = zstd_bomb(RECORDS, VALUE, None);
    println!("a zstd batch of {} bytes holding {} MiB", bomb.len(), (RECORDS * VALUE) >> 20);
    source.produce(topic, 0, batch("before", 5, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    source.produce(topic, 0, bomb.clone(), -1, 60_000).await.expect("Apache Kafka accepts the batch: it reads records as a stream");
    source.produce(topic, 0, batch("after", 5, now_ms(), Compression::None), -1, 5000).await.expect("produce");

    let run = Run::start(&one.path);
    let web = run.dashboard().await;
    let flow_path = &one.api_path;
    match target_kind {
        Kind::Kafka => {
            // Copied as fetched: never decompressed by the mirror.
            let want = (5 + RECORDS + 5) as i64;
            wait_until(Duration::from_secs(120), "every record on the target", async || (end(target, remote, 0).await == want).then_some(())).await;
        }
        Kind::Tern => {
            // The target refuses the batch: that partition stops there, saying why, and what
            // follows stays on the source.
            let refused = wait_until(Duration::from_secs(60), "the partition to show the target's refusal", async || {
                let f = json(&web, flow_path).await;
                f["partitions"].as_array()?.iter().find_map(|p| p["error"].as_str().filter(|e| e.contains("decompresses to more than 64 MiB")).map(String::from))
            })
            .await;
            assert!(refused.contains("refused") && refused.contains(remote.as_str()), "{refused}");
            assert_eq!(end(target, remote, 0).await, 5, "the records before the refused batch, and nothing after it");
            assert_eq!(end(source, topic, 0).await, (5 + RECORDS + 5) as i64, "nothing is lost on the source");
        }
    }

    // The control topic: a decision, the batch (keyed, as a compacted topic requires), then
    // another decision, which must apply.
    let decide = async |paused: bool, reason: &str| {
        tern_mirror::control::update(target, b, flow, reason, |c| c.paused = paused).await.expect("a decision");
    };
    decide(false, "written before the crafted batch").await;
    let keyed = zstd_bomb(RECORDS, VALUE, Some(flow.as_bytes()));
    let written = target.produce(CONTROL_TOPIC, 0, keyed, -1, 60_000).await;
    match target_kind {
        Kind::Kafka => {
            written.expect("Apache Kafka accepts the batch in the control topic");
        }
        Kind::Tern => {
            let refused = written.expect_err("tern broker refuses the batch").to_string();
            assert!(refused.contains("InvalidRecord") && refused.contains("decompresses to more than 64 MiB"), "{refused}");
        }
    }
    decide(true, "written after the crafted batch").await;
    wait_until(Duration::from_secs(60), "the decision after the crafted batch to apply", async || {
        let f = json(&web, flow_path).await;
        (f["paused"] == true && f["control_reason"] == "written after the crafted batch").then_some(())
    })
    .await;
    let peak = peak_rss(run.child.id());
    println!("tern run's peak RSS: {} MiB", peak >> 20);
    assert!(peak < 1 << 30, "tern run's peak RSS was {} MiB", peak >> 20);
    if target_kind == Kind::Kafka {
        assert!(!run.lines("skipping a record batch that cannot be read").is_empty(), "the skipped batch is logged:\n{}", run.all());
    }
    assert!(!run.all().contains("panicked"), "{}", run.all());
}

over_kinds!(crafted_batches_cost_bounded_memory {
    kafka_a_crafted_batch_costs_bounded_memory_and_stops_nothing: (Kafka);
    tern_a_crafted_batch_costs_bounded_memory_and_stops_nothing: (Tern);
});

/// The same inputs straight at a `tern broker` process, whose memory is its own to measure:
/// the zstd batch to a plain and to a compacted topic, and a 61-byte header claiming 2^31 - 1
/// records. Each is refused with INVALID_RECORD and a reason, nothing is written, ListOffsets by
/// timestamp and a fetch still answer, and the process's peak RSS stays under 1 GiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tern_broker_process_refuses_crafted_batches_in_bounded_memory() {
    const RECORDS: usize = 40;
    const VALUE: usize = 32 << 20;
    let dir = tempfile::tempdir().expect("dir");
    let broker = crate::durability::BrokerProcess::start(dir.path());
    let c = tern_kafka::client::Client::connect(tern_kafka::client::ClientConfig::new(&broker.addr)).await.expect("client");
    let (plain, compacted) = (unique_topic("crafted-plain"), unique_topic("crafted-compacted"));
    let mut conn = tern_kafka::client::Connection::connect(&broker.addr).await.expect("connect");
    create_topic(&mut conn, &plain, 1, &[]).await;
    create_topic(&mut conn, &compacted, 1, &[("cleanup.policy", "compact")]).await;
    let started = now_ms();
    c.produce(&plain, 0, batch("before", 5, started, Compression::None), -1, 5000).await.expect("produce");
    c.produce(&compacted, 0, batch("before", 5, started, Compression::None), -1, 5000).await.expect("produce");

    let header = encode_batch(&[PlainRecord::new("k", Some(Bytes::from_static(b"v")), started)], Compression::None).expect("batch");
    let crafted = [
        ("a zstd batch decompressing to 1.25 GiB", plain.as_str(), zstd_bomb(RECORDS, VALUE, None), "decompresses to more than 64 MiB"),
        ("the same, keyed, to a compacted topic", compacted.as_str(), zstd_bomb(RECORDS, VALUE, Some(b"key")), "decompresses to more than 64 MiB"),
        ("a 61-byte header claiming 2^31 - 1 records", plain.as_str(), crate::produce_rules::claims(&header, i32::MAX), "premature EOF"),
    ];
    for (what, topic, bytes, reason) in crafted {
        let refused = c.produce(topic, 0, bytes, -1, 60_000).await.expect_err(what).to_string();
        println!("{what}: {refused}");
        assert!(refused.contains("InvalidRecord") && refused.contains(reason), "{what}: {refused}");
    }
    for topic in [&plain, &compacted] {
        assert_eq!(c.list_offset_once(topic, 0, -1).await.expect("end").0, 5, "{topic}: nothing of the crafted batches was written");
        assert_eq!(c.list_offset_once(topic, 0, started).await.expect("by timestamp").0, 0, "{topic}: ListOffsets by timestamp");
        assert_eq!(c.read_all(topic, 0).await.expect("fetch").len(), 5, "{topic}: a fetch returns the records before");
    }
    let peak = peak_rss(broker.pid());
    println!("tern broker's peak RSS: {} MiB", peak >> 20);
    assert!(peak < 1 << 30, "tern broker's peak RSS was {} MiB", peak >> 20);
}
