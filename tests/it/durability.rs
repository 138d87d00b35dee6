//! Acknowledged data survives kill -9 of a broker process; retention removes old segments.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;
use tern_kafka::client::Connection;

use crate::helpers::*;
use crate::protocol::{fetch_request, produce_request};

/// `tern broker` as a child process on an ephemeral port.
pub struct BrokerProcess {
    child: Child,
    pub addr: String,
}

impl BrokerProcess {
    pub fn start(data: &std::path::Path) -> BrokerProcess {
        Self::start_with(data, &[])
    }

    /// With more `tern broker` flags.
    pub fn start_with(data: &std::path::Path, flags: &[&str]) -> BrokerProcess {
        let mut cmd = Command::new(tern_bin());
        cmd.args(["broker", "--listen", "127.0.0.1:0", "--data"]).arg(data).args(flags);
        Self::spawn(cmd, None)
    }

    /// The broker `cmd` starts (a wrapper may exec it). With `log`, its stderr lines are kept
    /// there as well as echoed.
    pub fn spawn(mut cmd: Command, log: Option<Arc<Mutex<Vec<String>>>>) -> BrokerProcess {
        let stderr = if log.is_some() { Stdio::piped() } else { Stdio::inherit() };
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn tern broker");
        if let Some(log) = log {
            let stderr = child.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    log.lock().expect("log").push(line);
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read address line");
        let addr = line.trim().rsplit(' ').next().expect("address").to_string();
        assert!(addr.starts_with("127.0.0.1:"), "unexpected first line {line:?}");
        BrokerProcess { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill_9(&mut self) {
        // std's kill() sends SIGKILL on Unix: no shutdown, no flush.
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9() {
    let dir = tempfile::tempdir().expect("dir");
    let mut broker = BrokerProcess::start(dir.path());
    let topic = unique_topic("crash");
    let mut admin = Connection::connect(&broker.addr).await.expect("connect");
    create_topic(&mut admin, &topic, 2, &[]).await;

    // Several producers with acks=all; each remembers what the broker acknowledged.
    let acked: Arc<Mutex<Vec<(i32, i64, Vec<Bytes>)>>> = Arc::default();
    let mut producers = Vec::new();
    for w in 0..3 {
        let (addr, topic, acked) = (broker.addr.clone(), topic.clone(), acked.clone());
        producers.push(tokio::spawn(async move {
            let mut c = Connection::connect(&addr).await.expect("connect");
            for i in 0.. {
                let partition = (i % 2) as i32;
                let tag = format!("w{w}-b{i}");
                let codec = if i % 3 == 0 { Compression::Lz4 } else { Compression::None };
                // Current timestamps: the restarted broker's 7-day retention must not apply.
                let records = batch(&tag, 20, tern_now_ms(), codec);
                let Ok(resp) = c.call(&produce_request(&topic, partition, records, -1), 9).await else { return };
                let pr = &resp.responses[0].partition_responses[0];
                assert_eq!(pr.error_code, 0);
                let values = (0..20).map(|j| Bytes::from(format!("{tag}-{j}"))).collect();
                acked.lock().expect("lock").push((partition, pr.base_offset, values));
            }
        }));
    }
    wait_until(Duration::from_secs(60), "1500 acknowledged batches", async || {
        (acked.lock().expect("lock").len() >= 1500).then_some(())
    })
    .await;
    broker.kill_9();
    for p in producers {
        p.await.expect("producer task ends when the broker dies");
    }
    let acked = acked.lock().expect("lock").clone();

    let broker = BrokerProcess::start(dir.path());
    let mut c = Connection::connect(&broker.addr).await.expect("connect after restart");
    let mut ends = BTreeMap::new();
    for partition in 0..2 {
        let (records, hw) = read_partition_from(&mut c, &topic, partition, 0).await;
        // Offsets are dense from 0 and no value appears twice.
        for (i, (offset, _)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {partition}: offsets must be dense");
        }
        let mut seen = HashSet::new();
        for (offset, v) in &records {
            assert!(seen.insert(v.clone()), "partition {partition}: {v:?} stored twice (offset {offset})");
        }
        // Every acknowledged batch is there, at the offsets it was acknowledged with.
        let by_offset: BTreeMap<i64, Bytes> = records.into_iter().collect();
        let mut count = 0;
        for (_, base, values) in acked.iter().filter(|(p, _, _)| *p == partition) {
            for (j, v) in values.iter().enumerate() {
                assert_eq!(by_offset.get(&(base + j as i64)), Some(v), "partition {partition}: acknowledged record lost");
                count += 1;
            }
        }
        println!("partition {partition}: {count} acknowledged records present, {} stored, high watermark {hw}", by_offset.len());
        ends.insert(partition, hw);
    }
    // New appends continue where the recovered log ends.
    for partition in 0..2 {
        let resp = c.call(&produce_request(&topic, partition, batch("after", 3, tern_now_ms(), Compression::None), -1), 9).await.expect("produce");
        assert_eq!(resp.responses[0].partition_responses[0].base_offset, ends[&partition]);
    }
}

pub async fn earliest(c: &mut Connection, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-2)])]);
    let resp = c.call(&req, 8).await.expect("list offsets");
    resp.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_segments_and_moves_the_log_start() {
    let b = TestBroker::start_with(|c| c.maintenance_interval = Duration::from_millis(100)).await;
    let mut c = b.connect().await;
    let by_size = unique_topic("retain-bytes");
    let by_time = unique_topic("retain-time");
    create_topic(&mut c, &by_size, 1, &[("segment.bytes", "1048576"), ("retention.bytes", "2097152")]).await;
    create_topic(&mut c, &by_time, 1, &[("segment.bytes", "1048576"), ("retention.ms", "3600000")]).await;

    let value = "x".repeat(1000);
    let now = tern_now_ms();
    // 6 MiB into the size-bounded topic; 3 MiB of two-hour-old records, then fresh ones.
    for i in 0..60 {
        let r = c.call(&produce_request(&by_size, 0, batch(&format!("{value}{i}"), 100, now, Compression::None), 1), 9).await.expect("produce");
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    for i in 0..30 {
        c.call(&produce_request(&by_time, 0, batch(&format!("{value}{i}"), 100, now - 7_200_000, Compression::None), 1), 9).await.expect("produce");
    }
    for i in 0..15 {
        c.call(&produce_request(&by_time, 0, batch(&format!("{value}{i}"), 100, now, Compression::None), 1), 9).await.expect("produce");
    }

    // Each batch is about 102 KB, so a 1 MiB segment holds 10 batches, 1000 records.
    // By size (Kafka's rule: drop the oldest segment while what remains is still at least
    // retention.bytes): of six segments, three go. By time: the three segments of old records go,
    // the first with fresh records stays. Both logs then start at offset 3000.
    for topic in [&by_size, &by_time] {
        let start = wait_until(Duration::from_secs(20), "retention to move the log start to 3000", async || {
            let e = earliest(&mut c, topic).await;
            assert!(e <= 3000, "{topic}: retention removed too much (log start {e})");
            (e == 3000).then_some(e)
        })
        .await;
        // Below the log start: out of range; at it: data whose first record is the log start.
        let resp = c.call(&fetch_request(topic, 0, 0, 0, 0, 1 << 20), 12).await.expect("fetch");
        assert_eq!(resp.responses[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());
        assert_eq!(resp.responses[0].partitions[0].log_start_offset, start);
        let (records, hw) = read_partition_from(&mut c, topic, 0, start).await;
        assert_eq!(records.first().map(|r| r.0), Some(start));
        assert_eq!(records.len() as i64, hw - start);
        // A real consumer starting from the beginning gets the same first offset.
        let out = run_client(
            {
                let mut cmd = Command::new("kcat");
                cmd.args(["-b", &b.bootstrap(), "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", "1", "-e", "-f", "%o\\n"]);
                cmd
            },
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), start.to_string(), "kcat's first offset on {topic}");
        println!("{topic}: log start moved to {start}, high watermark {hw}");
    }
    // The time-based topic kept every fresh record: 1500 of them, all after the old ones.
    let from = earliest(&mut c, &by_time).await;
    let (records, _) = read_partition_from(&mut c, &by_time, 0, from).await;
    let fresh = records.iter().filter(|(o, _)| *o >= 3000).count();
    assert_eq!(fresh, 1500);
}

/// Every record of a partition from `from` to the high watermark: (offset, value).
pub async fn read_partition_from(c: &mut Connection, topic: &str, partition: i32, from: i64) -> (Vec<(i64, Bytes)>, i64) {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let resp = c.call(&fetch_request(topic, partition, next, 0, 0, 4 << 20), 12).await.expect("fetch");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch {topic}/{partition} at {next}");
        let mut records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return (out, p.high_watermark);
        }
        for set in RecordBatchDecoder::decode_all(&mut records).expect("decode") {
            for r in set.records {
                // A fetch may start inside a batch; skip the records before the offset asked for.
                if r.offset >= next {
                    next = r.offset + 1;
                    out.push((r.offset, r.value.unwrap_or_default()));
                }
            }
        }
    }
}

pub fn tern_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}
