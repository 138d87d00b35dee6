//! Replication between two brokers: content-checked copies, new topics, refused records,
//! broker restarts, bad configuration.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
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
    format!(
        "[clusters.src]\nbootstrap = \"{source}\"\n[clusters.dst]\nbootstrap = \"{target}\"\n\n[[flows]]\nsource = \"src\"\ntarget = \"dst\"\ntopics = [{topics}]\n\n[mirror]\ntopic_refresh_interval = \"500ms\"\nfetch_max_wait = \"200ms\"\n"
    )
}

/// Records with every feature a copy must keep: keys (some null), null values, headers
/// (repeated keys, null values), distinct timestamps; codecs rotate per batch.
pub fn varied_batch(partition: i32, batch: usize, count: usize) -> Bytes {
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let n = batch * count + i;
            let mut headers = indexmap_headers(n);
            if n % 7 == 0 {
                headers.clear();
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: 1_750_000_000_000 + n as i64,
                key: (n % 5 != 0).then(|| Bytes::from(format!("key-{partition}-{n}"))),
                value: (n % 11 != 0).then(|| Bytes::from(format!("value-{partition}-{n}-{}", "x".repeat(n % 97)))),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: codecs[batch % codecs.len()] }).expect("encode");
    buf.freeze()
}

fn indexmap_headers(n: usize) -> kafka_protocol::indexmap::IndexMap<StrBytes, Option<Bytes>> {
    let mut h = kafka_protocol::indexmap::IndexMap::new();
    h.insert(StrBytes::from_static_str("trace"), Some(Bytes::from(format!("t{n}"))));
    if n % 3 == 0 {
        h.insert(StrBytes::from_static_str("empty"), None);
    }
    h
}

/// Every record of a partition, in offset order.
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
    let dst = TestBroker::start().await;
    let mut s = src.connect().await;
    let mut d = dst.connect().await;
    create_topic(&mut s, "events", 3, &[]).await;
    // The target's copy exists already and takes only small records.
    create_topic(&mut d, "src.events", 3, &[("max.message.bytes", "2000")]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_rides_out_a_target_restart() {
    let src = TestBroker::start().await;
    let mut dst = TestBroker::start().await;
    let mut s = src.connect().await;
    create_topic(&mut s, "stream", 2, &[]).await;
    let mirror = TestMirror::start(&two_cluster_config(&src.bootstrap(), &dst.bootstrap(), "\"stream\""));
    let producer = {
        let addr = src.bootstrap();
        tokio::spawn(async move {
            let mut c = Connection::connect(&addr).await.expect("connect");
            for i in 0..200 {
                c.call(&produce_request("stream", i % 2, batch(&format!("r{i}"), 50, now(), Compression::Snappy), 1), 9).await.expect("produce");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Stop the target and bring it back on the same port and data directory.
    let addr = dst.broker.as_ref().expect("running").addr;
    dst.broker.take().expect("running").shutdown().await.expect("shutdown");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    dst.broker = Some(tern_broker::RunningBroker::start(tern_broker::BrokerConfig::with_data_dir(dst._dir.path()), listener).await.expect("restart"));
    producer.await.expect("producer");
    let (source, target) = (client(&src.bootstrap()).await, client(&dst.bootstrap()).await);
    wait_replicated(&source, &target, "stream", "src.stream", 2, Duration::from_secs(60)).await;
    for p in 0..2 {
        let a = partition_content(&src.bootstrap(), "stream", p).await;
        let b = partition_content(&dst.bootstrap(), "src.stream", p).await;
        assert!(b.len() >= a.len(), "partition {p}: records lost");
        // At-least-once: a record set the target wrote just before it stopped, but whose
        // acknowledgement was lost, is produced again. Values are unique per partition, so
        // repeats are recognisable; what remains must be the source, in order.
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<Content> = b.iter().filter(|r| seen.insert(r.1.clone())).cloned().collect();
        assert_eq!(unique, a, "partition {p}: every source record, in order, after the restart");
        println!("partition {p}: {} records, {} re-delivered after the restart", a.len(), b.len() - unique.len());
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
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}
