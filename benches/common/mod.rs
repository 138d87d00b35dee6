//! Shared by the benchmarks: brokers as child processes (`tern broker` here, Apache Kafka in
//! [`kafka`]), /proc readings, record batches.

#![allow(dead_code)]

pub mod kafka;
pub mod link;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tern_kafka::client::{Client, ClientConfig, Connection, LATEST};

use bytes::Bytes;
use kafka_protocol::records::Compression;
use tern_kafka::records::{encode_batch, PlainRecord};

pub const RECORD: usize = 1024;

/// `tern broker` (release) as a child process on an ephemeral port: (child, address).
pub fn start_broker(data: &std::path::Path) -> anyhow::Result<(Child, String)> {
    start_broker_with(data, &[])
}

/// [`start_broker`] with more `tern broker` arguments (`--advertised`, say).
pub fn start_broker_with(data: &std::path::Path, args: &[&str]) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["broker", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).read_line(&mut line)?;
    let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    anyhow::ensure!(addr.contains(':'), "broker did not report its address: {line:?}");
    Ok((child, addr))
}

/// A batch of `count` records of about [`RECORD`] bytes each, stamped `timestamp`.
pub fn encoded_batch(count: usize, compression: Compression, timestamp: i64) -> anyhow::Result<Bytes> {
    let records: Vec<PlainRecord> = (0..count)
        .map(|i| {
            // Printable pseudo-random bytes: lz4 gains little on them (about 1.3x), like
            // already-dense event payloads, so the bytes on the wire are close to the record size.
            let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let body: String = (0..RECORD - 20)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (b'!' + (x % 90) as u8) as char
                })
                .collect();
            PlainRecord::new(format!("{i:012}"), Some(Bytes::from(body)), timestamp)
        })
        .collect();
    Ok(encode_batch(&records, compression)?)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub fn proc_status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

pub fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_field(pid, "VmHWM:")
}

pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn report(what: &str, mb: f64, records: usize, took: Duration) {
    let s = took.as_secs_f64();
    println!("{what:<60} {:>8.1} MB/s {:>10.0} records/s  ({s:.2} s)", mb / s, records as f64 / s);
}

pub async fn create(addr: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let mut c = Connection::connect(addr).await?;
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.into())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let resp = c.call(&req, 7).await?;
    anyhow::ensure!(resp.topics[0].error_code == 0, "create {topic}: {:?}", resp.topics[0].error_message);
    // Apache Kafka answers CreateTopics before its partitions have a leader.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ask = kafka_protocol::messages::MetadataRequest::default()
        .with_topics(Some(vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]));
    loop {
        let md = c.call(&ask, 9).await?;
        if md.topics.iter().any(|t| t.error_code == 0 && t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.error_code == 0 && p.leader_id.0 >= 0)) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{topic}: no leader for every partition within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends pre-encoded batches on several connections, a few requests in flight on each.
pub async fn produce_pipelined(addr: &str, topic: &str, partitions: i32, records: usize, batch: Bytes, per_batch: usize) -> anyhow::Result<Duration> {
    let batches = records / per_batch;
    let connections = 4;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..connections {
        let (addr, topic, batch) = (addr.to_string(), topic.to_string(), batch.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Connection::connect(&addr).await?;
            let mine: Vec<usize> = (0..batches).filter(|i| i % connections == w).collect();
            for i in mine {
                let req = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index((i % partitions as usize) as i32)
                        .with_records(Some(batch.clone()))])]);
                // A new topic's leader may refuse the first requests (NOT_LEADER_OR_FOLLOWER)
                // for a moment after metadata named it.
                let mut attempts = 0;
                loop {
                    let resp = c.call(&req, 9).await?;
                    let code = resp.responses[0].partition_responses[0].error_code;
                    attempts += 1;
                    match code {
                        0 => break,
                        6 if attempts < 100 => tokio::time::sleep(Duration::from_millis(100)).await,
                        _ => anyhow::bail!("produce to {topic}: error {code}"),
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(t.elapsed())
}

/// Reads `remote` on the target (partition leader `leader`) from `positions` on until `want`
/// records arrived or `deadline` passed, and returns each record's end-to-end latency in ms
/// (arrival minus its timestamp), in arrival order. Only records stamped at or after
/// `since_ms` count (heartbeats and leftovers carry older timestamps). At `isolation`: `read_committed` gets a record once its transaction committed (commit
/// markers are passed by, not counted).
#[allow(clippy::too_many_arguments)]
pub async fn target_latencies(
    target: &tern_kafka::client::Client,
    leader: i32,
    remote: &str,
    positions: &mut std::collections::BTreeMap<i32, i64>,
    want: usize,
    deadline: Instant,
    since_ms: i64,
    isolation: tern_kafka::client::Isolation,
) -> anyhow::Result<Vec<i64>> {
    let mut lat = Vec::with_capacity(want);
    while lat.len() < want && Instant::now() < deadline {
        let parts: Vec<(String, i32, i64)> = positions.iter().map(|(p, o)| (remote.to_string(), *p, *o)).collect();
        let resp = target.fetch_on(leader, 0, &parts, 100, 64 << 20, 8 << 20, isolation).await?;
        let now = now_ms();
        for t in resp.responses {
            for p in t.partitions {
                let mut records = p.records.unwrap_or_default();
                if records.is_empty() {
                    continue;
                }
                for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records)? {
                    for r in set.records {
                        if r.offset >= positions.get(&p.partition_index).copied().unwrap_or(0) {
                            if r.timestamp >= since_ms && !r.control {
                                lat.push(now - r.timestamp);
                            }
                            positions.insert(p.partition_index, r.offset + 1);
                        }
                    }
                }
            }
        }
    }
    Ok(lat)
}

/// The `q` quantile of sorted values, -1 when there are none.
pub fn percentile(sorted: &[i64], q: f64) -> i64 {
    sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or(-1)
}

/// Pins every thread of process `pid` (and the threads it starts later) to CPU `cpu`.
pub fn pin(pid: u32, cpu: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset").args(["-a", "-pc", &cpu.to_string(), &pid.to_string()]).stdout(Stdio::null()).status()?;
    anyhow::ensure!(status.success(), "taskset -a -pc {cpu} {pid} failed");
    Ok(())
}

/// One `tern run` replicating the preloaded topic to completion.
pub struct Replicated {
    pub mirror: std::process::Child,
    pub mirrored: Duration,
    pub streaming: Duration,
    pub cpu: f64,
    pub peak_rss_kib: u64,
}

impl Replicated {
    pub fn report(&self, name: &str, gib: f64, records: usize, pipe: Duration, direct: Duration) {
        report(&format!("{name}: replicate the preloaded topic (from process start)"), gib, records, self.mirrored);
        report(&format!("{name}: from the first record on the target"), gib, records, self.streaming);
        println!("    mirror CPU: {:.1} s ({:.2} CPU s per GB), peak RSS {} MiB", self.cpu, self.cpu / (gib / 1000.0), self.peak_rss_kib / 1024);
        for (what, took) in [("from process start", self.mirrored), ("streaming", self.streaming)] {
            println!(
                "    {what}: {:.1}x the kcat pipe, {:.0}% of the target's produce limit",
                pipe.as_secs_f64() / took.as_secs_f64(),
                100.0 * direct.as_secs_f64() / took.as_secs_f64()
            );
        }
    }
}

/// Starts `tern run` with a flow of `topic` from `alias` (the source) in `delivery` and waits
/// until the remote topic `<alias>.<topic>` holds every source record.
#[allow(clippy::too_many_arguments)]
pub fn replicate(rt: &tokio::runtime::Runtime, dir: &std::path::Path, src_addr: &str, dst_addr: &str, alias: &str, topic: &str, partitions: i32, delivery: &str) -> anyhow::Result<Replicated> {
    replicate_with(rt, dir, src_addr, dst_addr, alias, topic, partitions, delivery, ["", ""], None)
}

/// [`replicate`] with more settings of the source and the target cluster (`cluster_settings`,
/// TOML lines for each), and
/// the mirror pinned to one CPU when `cpu` says which. The mirror's log goes to
/// `<dir>/<alias>.log`.
#[allow(clippy::too_many_arguments)]
pub fn replicate_with(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    src_addr: &str,
    dst_addr: &str,
    alias: &str,
    topic: &str,
    partitions: i32,
    delivery: &str,
    cluster_settings: [&str; 2],
    cpu: Option<usize>,
) -> anyhow::Result<Replicated> {
    let config = dir.join(format!("{alias}.toml"));
    std::fs::write(&config, format!(
        "[clusters.{alias}]\nbootstrap = \"{src_addr}\"\n{}\n[clusters.dst]\nbootstrap = \"{dst_addr}\"\n{}\n[[flows]]\nsource = \"{alias}\"\ntarget = \"dst\"\ntopics = [\"{topic}\"]\nemit_heartbeats = false\ndelivery = \"{delivery}\"\n[web]\nlisten = \"127.0.0.1:0\"\n",
        cluster_settings[0], cluster_settings[1]
    ))?;
    let remote = format!("{alias}.{topic}");
    let t = Instant::now();
    let log = std::fs::File::create(dir.join(format!("{alias}.log")))?;
    let mirror = Command::new(env!("CARGO_BIN_EXE_tern")).args(["run", "--config"]).arg(&config).stdout(Stdio::null()).stderr(log).spawn()?;
    let pid = mirror.id();
    if let Some(cpu) = cpu {
        pin(pid, cpu)?;
    }
    let (source, target) = rt.block_on(async { anyhow::Ok((Client::connect(ClientConfig::new(src_addr)).await?, Client::connect(ClientConfig::new(dst_addr)).await?)) })?;
    let mut peak_rss = 0;
    let mut first_seen: Option<Instant> = None;
    rt.block_on(async {
        // One request for all partitions, at the start and at every poll, so that watching a
        // run of 1,000 partitions does not load the brokers it measures.
        let sources: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
        let want = source.list_offsets(&sources, LATEST).await?;
        anyhow::ensure!(want.len() == sources.len(), "the end of {} of {} source partitions is unknown", sources.len() - want.len(), sources.len());
        let remote_partitions: Vec<(String, i32)> = (0..partitions).map(|p| (remote.clone(), p)).collect();
        loop {
            peak_rss = peak_rss.max(peak_rss_kib(pid));
            let ends = target.list_offsets(&remote_partitions, LATEST).await.unwrap_or_default();
            // Streaming counts from the first record on any remote partition (the mirror fetches
            // its partitions in turns, not partition 0 first).
            if first_seen.is_none() && ends.values().any(|end| *end > 0) {
                first_seen = Some(Instant::now());
            }
            // The end of a remote partition counts the commit markers of exactly-once delivery
            // too: done once every one passed its source's end.
            let done = want.iter().all(|((_, p), end)| ends.get(&(remote.clone(), *p)).is_some_and(|e| e >= end));
            if done {
                return anyhow::Ok(());
            }
            if ends.len() < remote_partitions.len() {
                // Leaders not known yet (the remote topic is being created): look again.
                let _ = target.refresh_metadata(None).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })?;
    let mirrored = t.elapsed();
    let cpu = cpu_seconds(pid);
    let streaming = first_seen.map(|f| f.elapsed()).unwrap_or(mirrored);
    Ok(Replicated { mirror, mirrored, streaming, cpu, peak_rss_kib: peak_rss })
}
