//! Exact offset translation: groups committed on the source resume on the target at the first
//! replicated record at or after their committed offset: none skipped, none re-delivered.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use tern_kafka::client::{Client, ClientConfig, GroupMember, Membership};
use tern_kafka::records::{encode_batch, PlainRecord};
use tern_mirror::offset_map::Translation;

use crate::helpers::*;
use crate::mirror::{two_cluster_config, TestMirror};
use crate::protocol::{fetch_request, produce_request};

type Rec = (i64, Option<Bytes>, Option<Bytes>);

/// Every record of a partition with its offset.
async fn records(bootstrap: &str, topic: &str, partition: i32) -> Vec<Rec> {
    let mut c = tern_kafka::client::Connection::connect(bootstrap).await.expect("connect");
    records_on(&mut c, topic, partition).await
}

/// Every record of a partition with its offset, over `c`; none while the topic does not exist.
pub async fn records_on(c: &mut tern_kafka::client::Connection, topic: &str, partition: i32) -> Vec<Rec> {
    let (mut out, mut next) = (Vec::new(), 0i64);
    loop {
        let resp = c.call(&fetch_request(topic, partition, next, 0, 0, 8 << 20), 12).await.expect("fetch");
        let p = &resp.responses[0].partitions[0];
        if p.error_code == 1 {
            next = p.log_start_offset;
            continue;
        }
        // UNKNOWN_TOPIC_OR_PARTITION: a remote topic the mirror has not created yet.
        if p.error_code == 3 {
            return out;
        }
        assert_eq!(p.error_code, 0, "fetch {topic}/{partition}");
        let mut data = p.records.clone().unwrap_or_default();
        if data.is_empty() {
            return out;
        }
        for r in RecordBatchDecoder::decode_all(&mut data).expect("decode").into_iter().flat_map(|s| s.records) {
            if r.offset >= next {
                next = r.offset + 1;
                out.push((r.offset, r.key, r.value));
            }
        }
    }
}

fn keyed(pairs: &[(&str, &str)]) -> Bytes {
    let records: Vec<PlainRecord> = pairs.iter().map(|(k, v)| PlainRecord::new(k.to_string(), Some(Bytes::from(v.to_string())), now())).collect();
    encode_batch(&records, Compression::None).expect("encode")
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Checks one group on one partition: the target group's offset (synced by the mirror)
/// starts a consumer exactly where the source group would continue.
async fn assert_exact(src: &str, dst: &str, topic: &str, remote: &str, group: &str, committed: i64, target: &Client) -> i64 {
    let synced = wait_until(Duration::from_secs(30), &format!("group {group} synced onto the target"), async || {
        target.all_committed_offsets(group).await.ok().and_then(|o| o.get(&(remote.to_string(), 0)).copied())
    })
    .await;
    let source_rest: Vec<(Option<Bytes>, Option<Bytes>)> = records(src, topic, 0).await.into_iter().filter(|r| r.0 >= committed).map(|r| (r.1, r.2)).collect();
    let target_rest: Vec<(Option<Bytes>, Option<Bytes>)> = records(dst, remote, 0).await.into_iter().filter(|r| r.0 >= synced).map(|r| (r.1, r.2)).collect();
    // Everything from the synced offset on is exactly what the group had left to read on the
    // source: nothing skipped, nothing it had read already.
    assert_eq!(target_rest, source_rest, "group {group}: committed {committed} on {topic}, synced {synced} on {remote}");
    println!("group {group}: source {committed} -> target {synced}, {} records left to read, none skipped or repeated", source_rest.len());
    synced
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_translate_exactly_through_holes_retention_and_restarts() {
    let src = TestBroker::start_with(|c| c.maintenance_interval = Duration::from_millis(100)).await;
    let dst = TestBroker::start().await;
    let mut s = src.connect().await;
    let source = Client::connect(ClientConfig::new(&src.bootstrap())).await.expect("source client");
    let target = Client::connect(ClientConfig::new(&dst.bootstrap())).await.expect("target client");

    // "plain": 100 records, then retention (DeleteRecords) removes the first 20.
    create_topic(&mut s, "plain", 1, &[]).await;
    for i in 0..10 {
        let pairs: Vec<(String, String)> = (0..10).map(|j| (format!("k{}", i * 10 + j), format!("plain-{}", i * 10 + j))).collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.call(&produce_request("plain", 0, keyed(&refs), 1), 9).await.expect("produce");
    }
    delete_records(&mut s, "plain", 20).await;

    // "ledger": compacted; offsets 5..=9 are older versions of keys rewritten at 10..=14, so
    // compaction leaves a hole in the middle.
    create_topic(&mut s, "ledger", 1, &[("cleanup.policy", "compact"), ("segment.ms", "100"), ("min.cleanable.dirty.ratio", "0.01"), ("delete.retention.ms", "0")]).await;
    let u: Vec<(String, String)> = (0..5).map(|i| (format!("u{i}"), format!("unique-{i}"))).collect();
    let d1: Vec<(String, String)> = (0..5).map(|i| (format!("d{i}"), format!("old-{i}"))).collect();
    let d2: Vec<(String, String)> = (0..5).map(|i| (format!("d{i}"), format!("new-{i}"))).collect();
    let u2: Vec<(String, String)> = (5..10).map(|i| (format!("u{i}"), format!("unique-{i}"))).collect();
    for set in [&u, &d1, &d2, &u2] {
        let refs: Vec<(&str, &str)> = set.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.call(&produce_request("ledger", 0, keyed(&refs), 1), 9).await.expect("produce");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // A last record rolls the segment so the cleaner may touch the ones above.
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.call(&produce_request("ledger", 0, keyed(&[("tail", "tail")]), 1), 9).await.expect("produce");
    wait_until(Duration::from_secs(30), "compaction to leave a hole at 5..=9", async || {
        let offsets: Vec<i64> = records(&src.bootstrap(), "ledger", 0).await.iter().map(|r| r.0).collect();
        (!offsets.contains(&7) && offsets.contains(&10) && offsets.contains(&4)).then_some(())
    })
    .await;

    let commits: Vec<(&str, &str, i64)> = vec![
        ("g-head", "plain", 20),      // right after retention removed the head
        ("g-below", "plain", 5),      // below the source's log start
        ("g-middle", "plain", 57),
        ("g-end", "plain", 100),      // caught up
        ("g-hole", "ledger", 7),      // inside the compacted hole
        ("g-ledger", "ledger", 0),
        ("g-ahead", "plain", 1000),   // ahead of anything replicated
    ];
    for (g, t, o) in &commits {
        let mut offsets = BTreeMap::new();
        offsets.insert((t.to_string(), 0), *o);
        source.commit_offsets(g, &Membership::none(), &offsets).await.expect("commit on the source");
    }
    // A group with an active member on the target must be left alone.
    let mut active = GroupMember::new("g-active", Duration::from_secs(30), Duration::from_secs(30));
    let mut offsets = BTreeMap::new();
    offsets.insert(("plain".to_string(), 0), 40);
    source.commit_offsets("g-active", &Membership::none(), &offsets).await.expect("commit");

    let toml = two_cluster_config(&src.bootstrap(), &dst.bootstrap(), "\"plain\", \"ledger\"").replace("topics = [", "checkpoint_interval = \"500ms\"\ntopics = [");
    let mirror = TestMirror::start(&toml);
    wait_until(Duration::from_secs(30), "the remote topic for the active group", async || {
        target.topic_metadata("src.plain").await.ok().flatten().map(|_| ())
    })
    .await;
    active.join(&target, &["src.plain".to_string()]).await.expect("an active member on the target");
    let hb = tokio::spawn(async move {
        loop {
            let _ = active.heartbeat().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    for (g, t, o) in &commits[..6] {
        assert_exact(&src.bootstrap(), &dst.bootstrap(), t, &format!("src.{t}"), g, *o, &target).await;
    }
    // Tern's checkpoints decode with MM2's layout, every one of them.
    let raw = records(&dst.bootstrap(), "src.checkpoints.internal", 0).await;
    let decoded: Vec<tern_mirror::mm2::Checkpoint> =
        raw.iter().filter_map(|(_, k, v)| tern_mirror::mm2::Checkpoint::decode(k.clone()?, v.clone()?).ok()).collect();
    assert_eq!(decoded.len(), raw.len(), "every checkpoint record decodes as MM2's Checkpoint");
    assert!(
        decoded.iter().any(|c| c.group == "g-middle" && c.topic == "src.plain" && c.partition == 0 && c.upstream_offset == 57 && c.downstream_offset == 37),
        "g-middle's checkpoint: {decoded:?}"
    );

    // `tern offsets` shows the same translation without a running mirror.
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("tern.toml");
    std::fs::write(&config, &toml).expect("config");
    let out = std::process::Command::new(tern_bin())
        .args(["offsets", "--config", config.to_str().expect("path"), "--flow", "src->dst", "--group", "g-middle"])
        .output()
        .expect("tern offsets");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let row = text.lines().find(|l| l.starts_with("src.plain")).unwrap_or_else(|| panic!("no row for src.plain:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], &["src.plain", "0", "57", "37"], "{row}");
    assert!(row.ends_with("exact"), "{row}");

    let hole_target = records(&dst.bootstrap(), "src.ledger", 0).await;
    println!("src.ledger on the target: {} records for source offsets {:?}", hole_target.len(), records(&src.bootstrap(), "ledger", 0).await.iter().map(|r| r.0).collect::<Vec<_>>());

    // Ahead of replication: synced to the replicated end, and reported as such.
    let status = mirror.status["src->dst"].clone();
    let ahead = wait_until(Duration::from_secs(30), "g-ahead's translation", async || {
        status.snapshot().groups.get(&("g-ahead".to_string(), ("plain".to_string(), 0))).cloned()
    })
    .await;
    let end = tern_kafka::client::Client::list_offset(&target, "src.plain", 0, tern_kafka::client::LATEST).await.expect("end").0;
    assert_eq!(ahead.translation, Translation::AheadOfReplication { target: end }, "{ahead:?}");

    // The active group is reported, and its target offsets stay untouched.
    let active_status = wait_until(Duration::from_secs(30), "g-active's report", async || {
        status.snapshot().groups.get(&("g-active".to_string(), ("plain".to_string(), 0))).filter(|g| !g.sync.is_empty()).cloned()
    })
    .await;
    assert!(active_status.sync.contains("active member"), "{active_status:?}");
    assert!(target.all_committed_offsets("g-active").await.unwrap_or_default().is_empty(), "an active group's offsets were written");
    hb.abort();
    mirror.stop().await;

    // After the mirror restarts (from its committed positions) and more data flows, the
    // groups move on and translation stays exact.
    let mirror = TestMirror::start(&toml);
    for i in 0..5 {
        let pairs: Vec<(String, String)> = (0..10).map(|j| (format!("k{}", 100 + i * 10 + j), format!("later-{i}-{j}"))).collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.call(&produce_request("plain", 0, keyed(&refs), 1), 9).await.expect("produce");
    }
    let mut offsets = BTreeMap::new();
    offsets.insert(("plain".to_string(), 0), 123);
    source.commit_offsets("g-middle", &Membership::none(), &offsets).await.expect("commit");
    wait_until(Duration::from_secs(30), "g-middle to move forward on the target", async || {
        let o = target.all_committed_offsets("g-middle").await.ok()?;
        (o.get(&("src.plain".to_string(), 0)).copied()? > 60).then_some(())
    })
    .await;
    assert_exact(&src.bootstrap(), &dst.bootstrap(), "plain", "src.plain", "g-middle", 123, &target).await;
    mirror.stop().await;
}

async fn delete_records(c: &mut tern_kafka::client::Connection, topic: &str, before: i64) {
    use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    use kafka_protocol::messages::{DeleteRecordsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![DeleteRecordsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(before)])]);
    let resp = c.call(&req, 2).await.expect("delete records");
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
}
