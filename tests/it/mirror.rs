//! Replication between two brokers: content-checked copies, new topics, refused records,
//! broker restarts, bad configuration.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use tern_kafka::records::{encode_batch, PlainRecord};
use tern_kafka::client::{Client, ClientConfig, Connection, LATEST};
use tern_mirror::status::FlowStatus;
use tokio::sync::watch;

use crate::helpers::*;
use crate::protocol::{fetch_request, produce_request};

/// A record as compared across clusters: key, value, headers, timestamp.
type Content = (Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>, i64);

/// A running mirror in this process.
pub struct TestMirror {
    pub status: BTreeMap<String, Arc<FlowStatus>>,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<(String, tern_mirror::Result<()>)>,
}

impl TestMirror {
    pub fn start(toml: &str) -> TestMirror {
        init_logs();
        let validated = tern_mirror::config::parse(toml).expect("valid config");
        let (stop, rx) = watch::channel(false);
        let (status, tasks) = tern_mirror::start(validated, rx);
        TestMirror { status, stop, tasks }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while let Some(done) = self.tasks.join_next().await {
            let (name, result) = done.expect("flow task");
            result.unwrap_or_else(|e| panic!("flow {name}: {e}"));
        }
    }
}

pub fn two_cluster_config(source: &str, target: &str, topics: &str) -> String {
    flow_config(&Aliases::plain(), source, target, topics)
}

/// The cluster aliases of a test's flow. Tests on the shared Kafka clusters need aliases of
/// their own: the flow's group (`tern.<source>.<target>`) and internal topics are named after
/// them.
pub struct Aliases {
    pub source: String,
    pub target: String,
}

impl Aliases {
    /// `src` and `dst`.
    pub fn plain() -> Aliases {
        Aliases { source: "src".into(), target: "dst".into() }
    }

    /// Aliases no other test in this run uses.
    pub fn unique() -> Aliases {
        Aliases { source: unique_topic("src"), target: unique_topic("dst") }
    }

    pub fn flow(&self) -> String {
        format!("{}->{}", self.source, self.target)
    }

    /// The remote topic of `topic` under prefix naming.
    pub fn remote(&self, topic: &str) -> String {
        format!("{}.{topic}", self.source)
    }
}

pub fn flow_config(aliases: &Aliases, source: &str, target: &str, topics: &str) -> String {
    let (a, b) = (&aliases.source, &aliases.target);
    format!(
        "[clusters.{a}]\nbootstrap = \"{source}\"\n[clusters.{b}]\nbootstrap = \"{target}\"\n\n[[flows]]\nsource = \"{a}\"\ntarget = \"{b}\"\ntopics = [{topics}]\n\n[mirror]\ntopic_refresh_interval = \"500ms\"\nfetch_max_wait = \"200ms\"\n"
    )
}

/// Records with every feature a copy must keep: keys (some null), null values, headers
/// (repeated keys, null values), distinct timestamps; codecs rotate per batch.
pub fn varied_batch(partition: i32, batch: usize, count: usize) -> Bytes {
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    let records: Vec<PlainRecord> = (0..count)
        .map(|i| {
            let n = batch * count + i;
            let mut headers = vec![
                ("trace".to_string(), Some(Bytes::from(format!("t{n}")))),
                ("hop".to_string(), Some(Bytes::from_static(b"first"))),
                ("hop".to_string(), Some(Bytes::from_static(b"second"))),
            ];
            if n % 3 == 0 {
                headers.push(("empty".to_string(), None));
            }
            if n % 7 == 0 {
                headers.clear();
            }
            PlainRecord {
                key: (n % 5 != 0).then(|| Bytes::from(format!("key-{partition}-{n}"))),
                value: (n % 11 != 0).then(|| Bytes::from(format!("value-{partition}-{n}-{}", "x".repeat(n % 97)))),
                headers,
                timestamp: 1_750_000_000_000 + n as i64,
            }
        })
        .collect();
    encode_batch(&records, codecs[batch % codecs.len()]).expect("encode")
}

/// Every record of a partition, in offset order; transaction markers are left out, as a
/// consumer never sees them.
pub async fn partition_content(bootstrap: &str, topic: &str, partition: i32) -> Vec<Content> {
    let mut c = Connection::connect(bootstrap).await.expect("connect");
    let mut out = Vec::new();
    let mut next = 0i64;
    loop {
        let resp = c.call(&fetch_request(topic, partition, next, 0, 0, 8 << 20), 12).await.expect("fetch");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch {topic}/{partition}");
        let mut records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return out;
        }
        for set in RecordBatchDecoder::decode_all(&mut records).expect("decode") {
            for r in set.records {
                if r.offset < next {
                    continue;
                }
                next = r.offset + 1;
                // A transaction marker is no record of the topic's: consumers never see one.
                if r.control {
                    continue;
                }
                let headers = r.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                out.push((r.key, r.value, headers, r.timestamp));
            }
        }
    }
}

pub async fn end_offset(client: &Client, topic: &str, partition: i32) -> i64 {
    client.list_offset(topic, partition, LATEST).await.map(|(o, _)| o).unwrap_or(-1)
}

async fn wait_replicated(source: &Client, target: &Client, topic: &str, remote: &str, partitions: i32, limit: Duration) {
    wait_until(limit, &format!("{remote} to catch up with {topic}"), async || {
        for p in 0..partitions {
            let want = end_offset(source, topic, p).await;
            let _ = target.refresh_metadata(None).await;
            if end_offset(target, remote, p).await != want {
                return None;
            }
        }
        Some(())
    })
    .await;
}

async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap)).await.expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_records_over_eight_partitions_arrive_identical() {
    let src = TestBroker::start().await;
    let dst = TestBroker::start().await;
    let topic = "orders";
    let partitions = 8;
    let per_batch = 500;
    let total: usize = std::env::var("TERN_MIRROR_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let batches_per_partition = total / partitions as usize / per_batch;
    let mut c = src.connect().await;
    create_topic(&mut c, topic, partitions, &[]).await;
    for b in 0..batches_per_partition {
        for p in 0..partitions {
            let r = c.call(&produce_request(topic, p, varied_batch(p, b, per_batch), 1), 9).await.expect("produce");
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        }
    }
    // Half before the mirror starts, half while it runs.
    let mirror = TestMirror::start(&two_cluster_config(&src.bootstrap(), &dst.bootstrap(), "\"orders\""));
    for b in batches_per_partition..2 * batches_per_partition {
        for p in 0..partitions {
            c.call(&produce_request(topic, p, varied_batch(p, b, per_batch / 2), 1), 9).await.expect("produce");
        }
    }
    let (source, target) = (client(&src.bootstrap()).await, client(&dst.bootstrap()).await);
    wait_replicated(&source, &target, topic, "src.orders", partitions, Duration::from_secs(300)).await;
    let mut compared = 0;
    for p in 0..partitions {
        let a = partition_content(&src.bootstrap(), topic, p).await;
        let b = partition_content(&dst.bootstrap(), "src.orders", p).await;
        assert_eq!(a.len(), b.len(), "partition {p}: record counts differ");
        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            panic!("partition {p}, record {i}: source {:?} but target {:?}", a[i], b[i]);
        }
        compared += a.len();
    }
    let snap = mirror.status["src->dst"].snapshot();
    let fast: u64 = snap.partitions.values().map(|s| s.batches_fast).sum();
    let rewritten: u64 = snap.partitions.values().map(|s| s.batches_rewritten).sum();
    println!("compared {compared} records over {partitions} partitions; {fast} batches on the fast path, {rewritten} rewritten");
    assert_eq!(compared, batches_per_partition * partitions as usize * (per_batch + per_batch / 2));
    assert!(fast > 0 && rewritten == 0, "plain batches take the fast path ({fast} fast, {rewritten} rewritten)");
    // Heartbeats reach the target in MM2's format.
    let hb = partition_content(&dst.bootstrap(), "heartbeats", 0).await;
    let (key, value, _, _) = hb.first().expect("a heartbeat").clone();
    let decoded = tern_mirror::mm2::Heartbeat::decode(key.expect("key"), value.expect("value")).expect("MM2 heartbeat");
    assert_eq!((decoded.source_cluster.as_str(), decoded.target_cluster.as_str()), ("src", "dst"));
    mirror.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_topics_replicate_and_refused_records_stop_only_their_partition() {
    let src = TestBroker::start().await;
    // The target cluster takes only small records (its broker-wide message.max.bytes).
    let dst = TestBroker::start_with(|c| c.log.max_message_bytes = 2000).await;
    let mut s = src.connect().await;
    create_topic(&mut s, "events", 3, &[]).await;
    let mirror = TestMirror::start(&two_cluster_config(&src.bootstrap(), &dst.bootstrap(), "\"events\", \"late.*\""));
    let big = batch(&"b".repeat(5000), 1, now(), Compression::None);
    s.call(&produce_request("events", 0, big, 1), 9).await.expect("produce big");
    for p in 0..3 {
        s.call(&produce_request("events", p, batch("small", 10, now(), Compression::Lz4), 1), 9).await.expect("produce");
    }
    // A topic created after the mirror started.
    create_topic(&mut s, "late-arrival", 2, &[]).await;
    for p in 0..2 {
        s.call(&produce_request("late-arrival", p, batch("late", 20, now(), Compression::Zstd), 1), 9).await.expect("produce");
    }
    let (source, target) = (client(&src.bootstrap()).await, client(&dst.bootstrap()).await);
    wait_replicated(&source, &target, "late-arrival", "src.late-arrival", 2, Duration::from_secs(30)).await;
    for p in 1..3 {
        wait_until(Duration::from_secs(30), "small records on partitions 1 and 2", async || {
            (end_offset(&target, "src.events", p).await == 10).then_some(())
        })
        .await;
    }
    let status = mirror.status["src->dst"].clone();
    let error = wait_until(Duration::from_secs(30), "partition 0 to report the refusal", async || {
        status.snapshot().partitions.get(&("events".to_string(), 0)).and_then(|s| s.error.clone())
    })
    .await;
    assert!(error.contains("MessageTooLarge") || error.contains("MESSAGE_TOO_LARGE") || error.contains("larger"), "{error}");
    assert_eq!(end_offset(&target, "src.events", 0).await, 0, "nothing after the refused record is replicated out of order");
    mirror.stop().await;
}

/// A batch corrupt on the source (one byte of its records changed on the source's disk, which
/// Kafka and `tern broker` serve to fetches unchecked) stops its partition, in at-least-once and
/// in exactly-once delivery, with an error that names the source and the batch's offset; the
/// batches before it arrive, nothing from it on does, and the other partition is copied whole.
/// Both ways a batch is copied are covered:
/// - as fetched (a topic of `CreateTime` records): the mirror does not check CRCs as it
///   fetches; the header it edits keeps the source's CRC patched, the target refuses the batch
///   (`CORRUPT_MESSAGE`, which Kafka counts as retriable), and only then does the mirror check
///   the batch, finding the source at fault instead of sending it again forever;
/// - re-encoded (a `LogAppendTime` topic, whose timestamps a producer may not send): the mirror
///   checks the batch before it decodes it, copies the batches before it and stops there.
async fn a_corrupt_source_batch_stops_its_partition_and_is_named(kind: crate::clusters::Kind) {
    use crate::clusters::{Side, TestCluster};
    use std::os::unix::fs::FileExt;
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (as_fetched, re_encoded) = (unique_topic("corrupt"), unique_topic("corrupt-appendtime"));
    src.create_topic(&as_fetched, 2, &[]).await;
    src.create_topic(&re_encoded, 2, &[("message.timestamp.type", "LogAppendTime")]).await;
    let source = src.client().await;
    let tag = |p: i32, b: usize| format!("p{p}-b{b}-{}", "v".repeat(40));
    let value = |p: i32, b: usize, i: usize| format!("{}-{i}", tag(p, b));
    for topic in [&as_fetched, &re_encoded] {
        for p in 0..2 {
            for b in 0..4 {
                source.produce(topic, p, batch(&tag(p, b), 10, now(), Compression::None), -1, 5000).await.expect("produce");
            }
        }
        // The third batch of partition 0 (offsets 20 to 29): a byte of its last record's value.
        let segment = src.segment_files(topic, 0).pop().unwrap_or_else(|| panic!("no segment of {topic}-0 on disk"));
        let stored = std::fs::read(&segment).expect("read the segment");
        let (at, third) = tern_kafka::batch::Batches::new(&stored).nth(2).expect("three batches on disk").expect("a whole batch");
        assert_eq!((third.base_offset, third.record_count), (20, 10));
        assert_eq!(third.is_log_append_time(), topic == &re_encoded);
        let flip = at + third.total_len() - 5;
        let file = std::fs::OpenOptions::new().write(true).open(&segment).expect("open the segment");
        file.write_all_at(&[stored[flip] ^ 0x20], flip as u64).expect("corrupt one byte");
        drop(file);
    }

    let flows: Vec<(&str, Aliases)> = vec![("at-least-once", Aliases::unique()), ("exactly-once", Aliases::unique())];
    let topics = format!("\"{as_fetched}\", \"{re_encoded}\"");
    let mirrors: Vec<TestMirror> = flows
        .iter()
        .map(|(delivery, aliases)| {
            TestMirror::start(&flow_config(aliases, &src.bootstrap(), &dst.bootstrap(), &topics).replace(&format!("topics = [{topics}]\n"), &format!("topics = [{topics}]\ndelivery = \"{delivery}\"\n")))
        })
        .collect();
    for ((delivery, aliases), mirror) in flows.iter().zip(&mirrors) {
        for topic in [&as_fetched, &re_encoded] {
            let status = mirror.status[&aliases.flow()].clone();
            let error = wait_until(Duration::from_secs(60), "partition 0 to stop on the corrupt batch", async || {
                status.snapshot().partitions.get(&(topic.clone(), 0)).and_then(|s| s.error.clone()).filter(|e| !e.starts_with("retrying"))
            })
            .await;
            assert!(error.contains("the source holds a corrupt batch at offset 20") && error.contains("CRC"), "{delivery}, {topic}: {error}");
            let read = crate::exactly_once::read_topic(&dst.bootstrap(), &aliases.remote(topic), "read_committed", 40).await;
            let whole: Vec<String> = (0..4).flat_map(|b| (0..10).map(move |i| value(1, b, i))).collect();
            assert_eq!(read.get(&1), Some(&whole), "{delivery}, {topic}: partition 1 copied whole");
            let before: Vec<String> = (0..2).flat_map(|b| (0..10).map(move |i| value(0, b, i))).collect();
            let copied = read.get(&0).cloned().unwrap_or_default();
            match (*delivery, topic == &re_encoded) {
                ("at-least-once", _) => assert_eq!(copied, before, "{delivery}, {topic}: partition 0 up to the corrupt batch"),
                // Re-encoded, the corrupt batch is found before anything is produced: the
                // batches before it are committed, then the partition stops.
                (_, true) => assert_eq!(copied, before, "{delivery}, {topic}: partition 0 up to the corrupt batch"),
                // As fetched, the transaction that held the corrupt batch was aborted: what is
                // committed comes before it.
                _ => assert!(before.starts_with(&copied), "{delivery}, {topic}: partition 0 committed {copied:?}"),
            }
            let snapshot = status.snapshot();
            let refused = snapshot.partitions.get(&(topic.clone(), 0)).expect("partition 0");
            assert!(refused.replicated_offset <= 20, "{delivery}, {topic}: replicated to {}", refused.replicated_offset);
            let path = if topic == &re_encoded { "re-encoded" } else { "as fetched" };
            println!("{kind:?}, {delivery}, {path}: partition 0 stopped with \"{error}\"; {} of its records committed on the target, partition 1 whole (40)", copied.len());
        }
    }
    for mirror in mirrors {
        mirror.stop().await;
    }
}

crate::clusters::over_kinds!(a_corrupt_source_batch_stops_its_partition_and_is_named {
    tern_a_corrupt_source_batch_stops_its_partition_and_is_named: (Tern);
    kafka_a_corrupt_source_batch_stops_its_partition_and_is_named: (Kafka);
});

/// Target partitions that take nothing (their producers stalled by the failpoint
/// `stall-produce`, standing in for a target that refuses them for a long time) fill the flow's
/// read-ahead with their records; once the target has taken nothing of them for 5 s they stop
/// counting against it (the worker says so in its log), and another topic of the same flow,
/// written afterwards, still arrives whole.
async fn a_target_topic_that_takes_nothing_holds_up_no_other(kind: crate::clusters::Kind) {
    use crate::clusters::{Side, TestCluster};
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (stuck, moving) = (unique_topic("stuck"), unique_topic("moving"));
    src.create_topic(&stuck, 4, &[]).await;
    src.create_topic(&moving, 2, &[]).await;
    let aliases = Aliases::unique();
    let source = src.client().await;
    let tag = |t: &str, p: i32, b: usize| format!("{t}{p}-{b}-{}", "x".repeat(1000));
    // 4 partitions x 8 batches x 10 records of 1 KB: 320 KB, against a read-ahead of 128 KiB
    // (two answers of 64 KiB), which the stuck partitions' queues (four sets of one 10 KB
    // batch each) fill.
    for p in 0..4 {
        for b in 0..8 {
            source.produce(&stuck, p, batch(&tag("s", p, b), 10, now(), Compression::None), -1, 5000).await.expect("produce");
        }
    }
    let topics = format!("\"{stuck}\", \"{moving}\"");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    let config = flow_config(&aliases, &src.bootstrap(), &dst.bootstrap(), &topics).replace("[mirror]\n", "[mirror]\nfetch_max_bytes = 65536\npartition_max_bytes = 16384\n") + "\n[web]\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(&path, config).expect("config");
    let run = crate::reload::Run::start_with_env(&path, &[("TERN_FAILPOINTS", &format!("stall-produce={stuck}"))]);
    let set_aside = wait_until(Duration::from_secs(60), "the stuck partitions to be set aside", async || run.lines("no longer hold up the flow's other partitions").pop()).await;
    assert_eq!(run.lines("failpoint stall-produce").len(), 4, "{}", run.all());
    // Written once the stuck partitions have filled the read-ahead and been set aside.
    for p in 0..2 {
        for b in 0..4 {
            source.produce(&moving, p, batch(&tag("m", p, b), 10, now(), Compression::None), -1, 5000).await.expect("produce");
        }
    }
    let target = client(&dst.bootstrap()).await;
    let started = std::time::Instant::now();
    for p in 0..2 {
        let remote = aliases.remote(&moving);
        wait_until(Duration::from_secs(60), "the other topic to arrive whole", async || (end_offset(&target, &remote, p).await == 40).then_some(())).await;
    }
    let waited = started.elapsed();
    let read = crate::exactly_once::read_topic(&dst.bootstrap(), &aliases.remote(&moving), "read_committed", 80).await;
    for p in 0..2 {
        let written: Vec<String> = (0..4).flat_map(|b| (0..10).map(move |i| format!("{}-{i}", tag("m", p, b)))).collect();
        assert_eq!(read.get(&p), Some(&written), "partition {p} of the other topic arrived whole and in order");
    }
    for p in 0..4 {
        assert_eq!(end_offset(&target, &aliases.remote(&stuck), p).await, 0, "nothing of the stuck topic was written");
    }
    let stuck_bytes = set_aside.split("stuck_bytes=").nth(1).and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next()).and_then(|v| v.parse::<usize>().ok()).expect("stuck_bytes in the log line");
    assert!(stuck_bytes >= 128 << 10, "the stuck partitions held the read-ahead: {set_aside}");
    println!("{kind:?}: 4 partitions taking nothing held {stuck_bytes} bytes, set aside after 5 s; the other topic's 80 records arrived {:.1} s after they were written", waited.as_secs_f64());
}

crate::clusters::over_kinds!(a_target_topic_that_takes_nothing_holds_up_no_other {
    tern_a_target_topic_that_takes_nothing_holds_up_no_other: (Tern);
    kafka_a_target_topic_that_takes_nothing_holds_up_no_other: (Kafka);
});

/// `max_bytes_per_second`: 600 KB waiting on the source cross at the flow's 100 KB/s (one
/// second's worth at once, then the rate), every partition moves along the way, the
/// dashboard's lag shows the backlog, and everything arrives identical.
async fn a_bandwidth_limit_holds(kind: crate::clusters::Kind) {
    use crate::clusters::{Side, TestCluster};
    const LIMIT: u64 = 100_000;
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let topic = unique_topic("backlog");
    src.create_topic(&topic, 4, &[]).await;
    let source = src.client().await;
    // 4 partitions x 15 batches x 10 records of 1 KB, uncompressed: 600 KB on the wire.
    for p in 0..4 {
        for b in 0..15 {
            let records: Vec<PlainRecord> =
                (0..10).map(|i| PlainRecord::new(format!("k{p}-{b}-{i}"), Some(Bytes::from(format!("{p}-{b}-{i}-{}", "x".repeat(1000)))), now())).collect();
            source.produce(&topic, p, encode_batch(&records, Compression::None).expect("encode"), -1, 5000).await.expect("produce");
        }
    }
    let aliases = Aliases::unique();
    let remote = aliases.remote(&topic);
    let config = flow_config(&aliases, &src.bootstrap(), &dst.bootstrap(), &format!("\"{topic}\"")).replace("topics = [", &format!("max_bytes_per_second = {LIMIT}\ntopics = ["));
    let mirror = TestMirror::start(&config);
    let status = mirror.status[&aliases.flow()].clone();
    let target = client(&dst.bootstrap()).await;
    // Sampled every 100 ms: seconds since the first record arrived, records per partition.
    let mut samples: Vec<(f64, [i64; 4], i64)> = Vec::new();
    let mut first: Option<std::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        tick.tick().await;
        assert!(std::time::Instant::now() < deadline, "not replicated within 60 s: {:?}", samples.last());
        let _ = target.refresh_metadata(None).await;
        let mut ends = [0i64; 4];
        for (p, end) in ends.iter_mut().enumerate() {
            *end = end_offset(&target, &remote, p as i32).await.max(0);
        }
        if ends.iter().sum::<i64>() == 0 {
            continue;
        }
        let at = first.get_or_insert_with(std::time::Instant::now).elapsed().as_secs_f64();
        samples.push((at, ends, status.snapshot().totals().lag_records));
        if ends.iter().all(|e| *e == 150) {
            break;
        }
    }
    let (took, _, _) = *samples.last().expect("samples");
    println!("{kind:?}: 600 KB at a {LIMIT} B/s limit: {took:.1} s after the first record");
    // 100 KB at once, then 100 KB/s for the other 500 KB, less one batch of overshoot.
    assert!((4.0..15.0).contains(&took), "{took:.1} s: {samples:?}");
    for (at, ends, _) in &samples {
        let bytes = ends.iter().sum::<i64>() as f64 * 1_000.0;
        // Sampling adds up to a fifth of a second before the first record was seen.
        assert!(bytes <= LIMIT as f64 * (1.2 + at) + 10_000.0, "{bytes} B replicated {at:.1} s after the first record");
    }
    assert!(samples.iter().any(|(_, ends, _)| ends.iter().all(|e| *e > 0) && ends.iter().sum::<i64>() <= 300), "every partition moves before half is across: {samples:?}");
    assert!(samples.iter().any(|(_, _, lag)| *lag >= 200), "the backlog shows as lag: {samples:?}");
    for p in 0..4 {
        assert_eq!(partition_content(&dst.bootstrap(), &remote, p).await, partition_content(&src.bootstrap(), &topic, p).await);
    }
    mirror.stop().await;
}

crate::clusters::over_kinds!(a_bandwidth_limit_holds {
    tern_a_bandwidth_limit_holds_replication_to_its_rate: (Tern);
    kafka_a_bandwidth_limit_holds_replication_to_its_rate: (Kafka);
});

/// The batches and records of a whole partition, as the broker stores them.
async fn stored_batches(client: &Client, topic: &str, partition: i32) -> (usize, i64) {
    let _ = client.refresh_metadata(None).await;
    let leader = client.metadata_snapshot().leader(topic, partition).expect("leader");
    let (mut batches, mut records, mut at) = (0, 0, 0);
    let end = end_offset(client, topic, partition).await;
    while at < end {
        let resp = client.fetch(leader, &[(topic.to_string(), partition, at)], 100, 8 << 20, 8 << 20).await.expect("fetch");
        let data = resp.responses.first().and_then(|t| t.partitions.first()).and_then(|p| p.records.clone()).unwrap_or_default();
        assert!(!data.is_empty(), "{topic}/{partition} ends at {end}, nothing at {at}");
        for batch in tern_kafka::batch::Batches::new(&data) {
            let (_, h) = batch.expect("a whole batch");
            batches += 1;
            records += h.record_count as i64;
            at = h.last_offset() + 1;
        }
    }
    (batches, records)
}

/// Every partition starts its offset map with its first acknowledgement. Those first entries
/// of 64 partitions replicated at once reach the target's offset-map topic, and the MM2 offset
/// syncs the source, in a few writes rather than one per partition, and the map of every
/// partition is there, starting where its remote partition did.
async fn offset_map_entries_of_many_partitions_are_written_together(kind: crate::clusters::Kind) {
    use crate::clusters::{Side, TestCluster};
    const PARTITIONS: i32 = 64;
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let topic = unique_topic("many");
    src.create_topic(&topic, PARTITIONS, &[]).await;
    let source = src.client().await;
    for p in 0..PARTITIONS {
        source.produce(&topic, p, batch(&format!("p{p}"), 20, now(), Compression::None), -1, 5000).await.expect("produce");
    }
    let aliases = Aliases::unique();
    let mirror = TestMirror::start(&flow_config(&aliases, &src.bootstrap(), &dst.bootstrap(), &format!("\"{topic}\"")));
    let target = client(&dst.bootstrap()).await;
    wait_replicated(&source, &target, &topic, &aliases.remote(&topic), PARTITIONS, Duration::from_secs(60)).await;
    let map_topic = tern_mirror::offset_map::store::offset_map_topic(&aliases.source);
    let syncs_topic = tern_mirror::mm2::offset_syncs_topic(&aliases.target);
    let (map_batches, map_records) =
        wait_until(Duration::from_secs(20), "an offset-map entry per partition", async || Some(stored_batches(&target, &map_topic, 0).await).filter(|(_, r)| *r >= PARTITIONS as i64)).await;
    let (sync_batches, sync_records) =
        wait_until(Duration::from_secs(20), "an offset sync per partition", async || Some(stored_batches(&source, &syncs_topic, 0).await).filter(|(_, r)| *r >= PARTITIONS as i64)).await;
    println!("{kind:?}: {PARTITIONS} partitions' first entries: {map_records} in {map_batches} offset-map batches, {sync_records} syncs in {sync_batches} batches");
    assert_eq!(map_records, PARTITIONS as i64, "one entry per partition: {map_records}");
    assert_eq!(sync_records, PARTITIONS as i64, "one sync per partition: {sync_records}");
    assert!(map_batches <= PARTITIONS as usize / 4, "{map_batches} offset-map writes for {PARTITIONS} partitions");
    assert!(sync_batches <= PARTITIONS as usize / 4, "{sync_batches} offset-sync writes for {PARTITIONS} partitions");
    let flow = tern_mirror::config::parse(&flow_config(&aliases, &src.bootstrap(), &dst.bootstrap(), &format!("\"{topic}\""))).expect("config").flows.remove(0);
    let maps = tern_mirror::offset_map::store::load_offset_maps(&flow, &target).await.expect("offset maps");
    for p in 0..PARTITIONS {
        let entries: Vec<_> = maps.get(&(topic.clone(), p)).map(|m| m.entries().collect()).unwrap_or_default();
        // The remote partitions were empty: the first record of each lands at offset 0.
        assert_eq!(entries, vec![tern_mirror::offset_map::Entry { source: 0, target: 0 }], "partition {p}");
    }
    mirror.stop().await;
}

crate::clusters::over_kinds!(offset_map_entries_of_many_partitions_are_written_together {
    tern_offset_map_entries_of_many_partitions_are_written_together: (Tern);
    kafka_offset_map_entries_of_many_partitions_are_written_together: (Kafka);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_rides_out_target_and_source_restarts() {
    let mut src = TestBroker::start().await;
    let mut dst = TestBroker::start().await;
    create_topic(&mut src.connect().await, "stream", 2, &[]).await;
    let mirror = TestMirror::start(&two_cluster_config(&src.bootstrap(), &dst.bootstrap(), "\"stream\""));
    let produce = async |src: &TestBroker, from: usize, to: usize| {
        let mut c = src.connect().await;
        for i in from..to {
            c.call(&produce_request("stream", (i % 2) as i32, batch(&format!("r{i}"), 50, now(), Compression::Snappy), 1), 9).await.expect("produce");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    produce(&src, 0, 80).await;
    // Stop each broker in turn and bring it back on the same port and data directory while
    // the mirror runs; records keep arriving in between.
    dst.restart().await;
    produce(&src, 80, 160).await;
    src.restart().await;
    produce(&src, 160, 240).await;
    let (source, target) = (client(&src.bootstrap()).await, client(&dst.bootstrap()).await);
    wait_replicated(&source, &target, "stream", "src.stream", 2, Duration::from_secs(60)).await;
    for p in 0..2 {
        let a = partition_content(&src.bootstrap(), "stream", p).await;
        let b = partition_content(&dst.bootstrap(), "src.stream", p).await;
        assert!(b.len() >= a.len(), "partition {p}: records lost");
        // A record set the target wrote just before it stopped, but whose acknowledgement was
        // lost, is produced again; the mirror's idempotent producer makes the target write it
        // once. So the copy is exact: every source record, in order, none twice.
        assert_eq!(b, a, "partition {p}: the target copy after the restarts");
        println!("partition {p}: {} records, identical after both restarts", a.len());
    }
    mirror.stop().await;
}

#[tokio::test]
async fn bad_configs_and_unreachable_clusters_give_one_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    let run = |args: &[&str]| {
        let out = Command::new(tern_bin()).args(args).output().expect("run tern");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    std::fs::write(&path, two_cluster_config("127.0.0.1:1", "127.0.0.1:2", "\"orders\"").replace("topics = ", "topicz = ")).expect("write");
    let (ok, text) = run(&["check", "--config", path.to_str().expect("path")]);
    assert!(!ok && text.contains("topicz") && text.contains("line 9"), "{text}");

    std::fs::write(&path, two_cluster_config("127.0.0.1:1", "127.0.0.1:2", "\"orders\"")).expect("write");
    let (ok, text) = run(&["check", "--config", path.to_str().expect("path"), "--offline"]);
    assert!(ok, "{text}");
    let (ok, text) = run(&["check", "--config", path.to_str().expect("path")]);
    assert!(!ok && text.contains("cluster src") && text.contains("cluster dst") && text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    // A MirrorMaker 2 configuration converts to one that validates, and what could not be
    // carried over is named.
    let mm2 = dir.path().join("mm2.properties");
    std::fs::write(&mm2, "clusters = a, b\na.bootstrap.servers = 127.0.0.1:1\nb.bootstrap.servers = 127.0.0.1:2\na->b.enabled = true\na->b.topics = orders.*\ntasks.max = 8\n").expect("write");
    let out = Command::new(tern_bin()).args(["import-mm2", mm2.to_str().expect("path")]).output().expect("import-mm2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let converted = String::from_utf8_lossy(&out.stdout);
    let v = tern_mirror::config::parse(&converted).expect("the converted config validates");
    assert_eq!(v.flows[0].name(), "a->b");
    assert!(String::from_utf8_lossy(&out.stderr).contains("tasks.max"));
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// A `tern run` worker process whose log lines are collected.
pub(crate) struct Worker {
    pub child: std::process::Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Worker {
    pub fn start(config: &std::path::Path) -> Worker {
        Worker::start_with(config, &[])
    }

    /// A worker with extra environment variables (failpoints, say).
    pub fn start_with(config: &std::path::Path, env: &[(&str, &str)]) -> Worker {
        let mut child = Command::new(tern_bin())
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tern run");
        let log: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        Worker { child, log }
    }

    /// The worker's last `n` log lines, for a test's output.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log");
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Partition count of the worker's latest assignment, if it has one.
    pub fn assigned(&self) -> Option<usize> {
        let log = self.log.lock().expect("log");
        let line = log.iter().rev().find(|l| l.contains("assigned"))?;
        let n = line.split("partitions=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?;
        n.parse().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_flow_and_the_survivor_takes_over_after_kill_9() {
    let src = TestBroker::start().await;
    let dst = TestBroker::start().await;
    let mut s = src.connect().await;
    create_topic(&mut s, "work", 8, &[]).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("tern.toml");
    std::fs::write(
        &config,
        two_cluster_config(&src.bootstrap(), &dst.bootstrap(), "\"work\"") + "session_timeout = \"6s\"\nrebalance_timeout = \"10s\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    let mut a = Worker::start(&config);
    let b = Worker::start(&config);
    wait_until(Duration::from_secs(60), "both workers to own 4 partitions each", async || {
        (a.assigned() == Some(4) && b.assigned() == Some(4)).then_some(())
    })
    .await;

    let producing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producer = {
        let (addr, producing) = (src.bootstrap(), producing.clone());
        tokio::spawn(async move {
            let mut c = Connection::connect(&addr).await.expect("connect");
            let mut i = 0;
            while producing.load(std::sync::atomic::Ordering::SeqCst) {
                c.call(&produce_request("work", i % 8, batch(&format!("w{i}"), 20, now(), Compression::Lz4), 1), 9).await.expect("produce");
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.child.kill().expect("kill -9 worker a");
    let _ = a.child.wait();
    wait_until(Duration::from_secs(60), "the survivor to own all 8 partitions", async || (b.assigned() == Some(8)).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    producing.store(false, std::sync::atomic::Ordering::SeqCst);
    let batches = producer.await.expect("producer");

    let (source, target) = (client(&src.bootstrap()).await, client(&dst.bootstrap()).await);
    let mut duplicates = 0;
    for p in 0..8 {
        let want = end_offset(&source, "work", p).await;
        wait_until(Duration::from_secs(60), "the target to hold every source record", async || {
            let _ = target.refresh_metadata(None).await;
            (end_offset(&target, "src.work", p).await >= want).then_some(())
        })
        .await;
        let a = partition_content(&src.bootstrap(), "work", p).await;
        let b = partition_content(&dst.bootstrap(), "src.work", p).await;
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<Content> = b.iter().filter(|r| seen.insert(r.1.clone())).cloned().collect();
        assert_eq!(unique, a, "partition {p}: every source record, in order");
        duplicates += b.len() - unique.len();
    }
    println!("{batches} batches of 20 produced; {duplicates} records re-delivered after the kill (the uncommitted tail)");

    // A consumer group on the source, committed in the middle of every partition: after the
    // takeover its translation is still exact (the survivor's offset maps include the runs the
    // killed worker wrote, and the re-delivered tail).
    let mut committed = BTreeMap::new();
    for p in 0..8 {
        let end = end_offset(&source, "work", p).await;
        committed.insert(("work".to_string(), p), end / 2 + p as i64);
    }
    source.commit_offsets("billing", &tern_kafka::client::Membership::none(), &committed).await.expect("commit");
    for p in 0..8 {
        let synced = wait_until(Duration::from_secs(60), "billing synced onto the target", async || {
            target.all_committed_offsets("billing").await.ok().and_then(|o| o.get(&("src.work".to_string(), p)).copied())
        })
        .await;
        let g = committed[&("work".to_string(), p)];
        let left_on_source: Vec<Content> = partition_content(&src.bootstrap(), "work", p).await.into_iter().skip(g as usize).collect();
        let from_target: Vec<Content> = partition_content(&dst.bootstrap(), "src.work", p).await.into_iter().skip(synced as usize).collect();
        // The target copy after the synced offset may hold re-delivered records only where the
        // source had them later too; read without repeats it is exactly what was left.
        let mut seen = std::collections::HashSet::new();
        let deduped: Vec<Content> = from_target.iter().filter(|r| seen.insert(r.1.clone())).cloned().collect();
        assert_eq!(deduped, left_on_source, "partition {p}: billing at {g} resumes at {synced}");
        assert_eq!(from_target.first(), left_on_source.first(), "partition {p}: the first record after the translated offset is the first one the group had not read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_partitions_and_config_changes_reach_the_target() {
    let src = TestBroker::start().await;
    let dst = TestBroker::start().await;
    let mut s = src.connect().await;
    create_topic(&mut s, "grow", 2, &[("retention.ms", "3600000"), ("min.insync.replicas", "1")]).await;
    let mirror = TestMirror::start(&two_cluster_config(&src.bootstrap(), &dst.bootstrap(), "\"grow\""));
    let (source, target) = (client(&src.bootstrap()).await, client(&dst.bootstrap()).await);
    let remote_configs = async || target.describe_topic_configs(&["src.grow".to_string()]).await.ok().and_then(|mut c| c.remove("src.grow"));
    let created = wait_until(Duration::from_secs(30), "the remote topic with the source's configs", async || remote_configs().await).await;
    assert_eq!(created.get("retention.ms").map(String::as_str), Some("3600000"));
    assert!(!created.contains_key("min.insync.replicas"), "excluded configs are not copied: {created:?}");

    source.create_partitions("grow", 4).await.expect("grow the source");
    let mut set = BTreeMap::new();
    set.insert("retention.ms".to_string(), "7200000".to_string());
    set.insert("max.message.bytes".to_string(), "2000000".to_string());
    source.alter_topic_configs("grow", &set, &[]).await.expect("alter the source");
    let _ = source.refresh_metadata(None).await;
    s.call(&produce_request("grow", 3, batch("new-partition", 5, now(), Compression::None), 1), 9).await.expect("produce");
    wait_until(Duration::from_secs(30), "partition 3 on the target", async || {
        let _ = target.refresh_metadata(None).await;
        (end_offset(&target, "src.grow", 3).await == 5).then_some(())
    })
    .await;
    let changed = wait_until(Duration::from_secs(30), "the config change on the target", async || {
        remote_configs().await.filter(|c| c.get("retention.ms").map(String::as_str) == Some("7200000"))
    })
    .await;
    assert_eq!(changed.get("max.message.bytes").map(String::as_str), Some("2000000"));
    assert_eq!(partition_content(&dst.bootstrap(), "src.grow", 3).await, partition_content(&src.bootstrap(), "grow", 3).await);
    mirror.stop().await;
}
