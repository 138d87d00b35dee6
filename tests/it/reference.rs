//! Replication proven on Apache Kafka: the same test for every pairing of Apache Kafka and
//! `tern broker` as source and target, the sources written by third-party producers
//! (confluent-kafka with every codec, Kafka's own Java producer), every record compared one by
//! one on both sides.

use std::time::Duration;

use bytes::Bytes;
use tern_kafka::batch::{BatchHeader, Batches};
use tern_kafka::client::{Client, LATEST};
use tern_mirror::status::FlowStatus;

use crate::apache_kafka::kafka_tool_with_input;
use crate::clusters::*;
use crate::helpers::*;
use crate::mirror::{flow_config, Aliases, TestMirror};

/// Writes `records` per partition with confluent-kafka (see tests/compat/confluent_produce.py).
pub async fn confluent_produce(bootstrap: &str, topic: &str, partitions: i32, records: usize, extra: &[&str]) {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(compat_script("confluent_produce.py"))
        .args(["--bootstrap", bootstrap, "--topic", topic])
        .args(["--partitions", &partitions.to_string(), "--records", &records.to_string()])
        .args(extra);
    run_client(cmd, Duration::from_secs(180)).await;
}

/// Writes `lines` with Kafka's console producer (the Java client, idempotent by default),
/// keys and headers parsed from each line: `h1:v1,h2:v2<TAB>key<TAB>value`.
async fn java_produce(bootstrap: &str, topic: &str, lines: &str) {
    kafka_tool_with_input(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server", bootstrap, "--topic", topic, "--compression-codec", "lz4",
            "--producer-property", "enable.idempotence=true", "--producer-property", "acks=all",
            "--property", "parse.key=true", "--property", "parse.headers=true",
        ],
        lines.as_bytes(),
        Duration::from_secs(120),
    )
    .await;
}

/// The headers of every batch of a partition, as stored.
async fn stored_batches(c: &Client, topic: &str, partition: i32) -> Vec<BatchHeader> {
    let (leader, _) = c.leader_connection(topic, partition).await.expect("leader");
    let resp = c.fetch(leader, &[(topic.to_string(), partition, 0)], 100, 8 << 20, 8 << 20).await.expect("fetch");
    let records = resp.responses[0].partitions[0].records.clone().unwrap_or_default();
    Batches::new(&records).map(|b| b.expect("stored batch").1).collect()
}

async fn end(c: &Client, topic: &str, partition: i32) -> i64 {
    c.list_offset(topic, partition, LATEST).await.map(|(o, _)| o).unwrap_or(-1)
}

/// Waits until every partition of `remote` on the target holds as many records as `topic` on
/// the source, then compares them record by record.
async fn assert_copied(source: &Client, target: &Client, topic: &str, remote: &str, partitions: i32, status: &FlowStatus) -> usize {
    let mut compared = 0;
    for p in 0..partitions {
        let want = end(source, topic, p).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while end(target, remote, p).await != want {
            assert!(
                std::time::Instant::now() < deadline,
                "{remote}/{p} did not reach {want} within 120 s; the mirror's view: {:?}",
                status.snapshot()
            );
            let _ = target.refresh_metadata(None).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let a = read_partition(source, topic, p).await;
        let b = read_partition(target, remote, p).await;
        assert_eq!(a.len(), b.len(), "{topic}/{p}: record counts differ");
        if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
            panic!("{topic}/{p}, record {i}: source {:?}\nbut target {:?}", a[i], b[i]);
        }
        compared += a.len();
    }
    compared
}

async fn replicates_every_record_exactly(source_kind: Kind, target_kind: Kind) {
    let src = TestCluster::start(source_kind, Side::A).await;
    let dst = TestCluster::start(target_kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let codecs = unique_topic("codecs");
    let java = unique_topic("java");
    let compacted = unique_topic("compacted");
    let appended = unique_topic("appendtime");
    src.create_topic(&codecs, 5, &[]).await;
    src.create_topic(&java, 2, &[]).await;
    src.create_topic(&compacted, 2, &[("cleanup.policy", "compact")]).await;
    // The broker stamps these batches with its clock: the mirror's record path turns them into
    // CreateTime records carrying that append time.
    src.create_topic(&appended, 1, &[("message.timestamp.type", "LogAppendTime")]).await;

    // Partition i of `codecs` is written with codec i: none, gzip, snappy, lz4, zstd.
    confluent_produce(&src.bootstrap(), &codecs, 5, 400, &[]).await;
    confluent_produce(&src.bootstrap(), &compacted, 2, 300, &["--keyed", "--tombstones", "--codecs", "zstd", "--tag", "c"]).await;
    confluent_produce(&src.bootstrap(), &appended, 1, 200, &["--codecs", "snappy", "--tag", "a"]).await;
    let lines: String = (0..600).map(|i| format!("trace:j{i},hop:first,hop:second\tjava-key-{}\tjava-value-{i}\n", i % 23)).collect();
    java_produce(&src.bootstrap(), &java, &lines).await;
    // Kafka's Java producer is idempotent: its batches carry a producer id and sequences.
    let java_batches: Vec<BatchHeader> = [stored_batches(&source, &java, 0).await, stored_batches(&source, &java, 1).await].concat();
    assert!(!java_batches.is_empty() && java_batches.iter().all(|h| h.producer_id >= 0 && h.base_sequence >= 0), "idempotent batches: {java_batches:?}");

    let topics = [&codecs, &java, &compacted, &appended].map(|t| format!("\"{t}\"")).join(", ");
    let late = unique_topic("late");
    let aliases = Aliases::unique();
    let config = flow_config(&aliases, &src.bootstrap(), &dst.bootstrap(), &format!("{topics}, \"{late}\""));
    let mirror = TestMirror::start(&config);
    let status = mirror.status[&aliases.flow()].clone();
    let remote = |t: &str| aliases.remote(t);

    // While the mirror runs (it has copied the first topic): a topic created, and a topic grown
    // from 5 to 7 partitions.
    assert_copied(&source, &target, &codecs, &remote(&codecs), 5, &status).await;
    assert!(target.topic_metadata(&remote(&late)).await.expect("metadata").is_none(), "the late topic does not exist yet");
    src.create_topic(&late, 3, &[]).await;
    confluent_produce(&src.bootstrap(), &late, 3, 150, &["--codecs", "lz4,none,gzip", "--tag", "l"]).await;
    source.create_partitions(&codecs, 7).await.expect("grow the source topic");
    wait_leaders(&source, &codecs, 7).await;
    confluent_produce(&src.bootstrap(), &codecs, 7, 50, &["--tag", "grown"]).await;

    let mut compared = 0;
    compared += assert_copied(&source, &target, &codecs, &remote(&codecs), 7, &status).await;
    compared += assert_copied(&source, &target, &java, &remote(&java), 2, &status).await;
    compared += assert_copied(&source, &target, &compacted, &remote(&compacted), 2, &status).await;
    compared += assert_copied(&source, &target, &appended, &remote(&appended), 1, &status).await;
    compared += assert_copied(&source, &target, &late, &remote(&late), 3, &status).await;

    // Repeated header keys arrived as two headers, in order, on both paths.
    let on_target = read_partition(&target, &remote(&codecs), 3).await;
    let hops: Vec<&(String, Option<Bytes>)> = on_target[1].2.iter().filter(|(k, _)| k == "hop").collect();
    assert_eq!(hops, [&("hop".to_string(), Some(Bytes::from_static(b"first"))), &("hop".to_string(), Some(Bytes::from_static(b"second")))]);
    let stamped = read_partition(&target, &remote(&appended), 0).await;
    assert_eq!(stamped[1].2.iter().filter(|(k, _)| k == "hop").count(), 2, "record path keeps repeated headers: {:?}", stamped[1].2);
    let source_appended = stored_batches(&source, &appended, 0).await;
    assert!(source_appended.iter().all(|h| h.is_log_append_time()), "the source stamped append times");
    assert!(stored_batches(&target, &remote(&appended), 0).await.iter().all(|h| !h.is_log_append_time()));

    let snap = status.snapshot();
    let errors: Vec<String> = snap.partitions.iter().filter_map(|(tp, s)| s.error.as_ref().map(|e| format!("{tp:?}: {e}"))).collect();
    assert!(errors.is_empty(), "partition errors: {errors:?}");
    println!("{source_kind:?} -> {target_kind:?}: {compared} records identical over 15 partitions of 5 topics");
    mirror.stop().await;
}

over_kinds!(replicates_every_record_exactly {
    kafka_to_kafka_every_record_exactly: (Kafka, Kafka);
    tern_to_kafka_every_record_exactly: (Tern, Kafka);
    kafka_to_tern_every_record_exactly: (Kafka, Tern);
    tern_to_tern_every_record_exactly: (Tern, Tern);
});
