//! Exact offset translation: groups committed on the source resume on the target at the first
//! replicated record at or after their committed offset: none skipped, none re-delivered.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use tern_kafka::client::{Client, ClientConfig, GroupMember, Membership};
use tern_kafka::records::{encode_batch, PlainRecord};
use tern_mirror::offset_map::Translation;

use crate::clusters::*;
use crate::helpers::*;
use crate::mirror::{flow_config, Aliases, TestMirror};
use crate::protocol::{fetch_request, produce_request};

type Rec = (i64, Option<Bytes>, Option<Bytes>);

/// Every record of a partition with its offset.
pub(crate) async fn records(bootstrap: &str, topic: &str, partition: i32) -> Vec<Rec> {
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
            // OFFSET_OUT_OF_RANGE: Kafka answers it with log start -1, so ask for the start.
            let start = log_start(c, topic, partition).await;
            assert!(start > next, "{topic}/{partition}: offset {next} out of range, log start {start}");
            next = start;
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

async fn log_start(c: &mut tern_kafka::client::Connection, topic: &str, partition: i32) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-2)])]);
    let resp = c.call(&req, 4).await.expect("list offsets");
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "log start of {topic}/{partition}");
    p.offset
}

fn keyed(pairs: &[(&str, &str)]) -> Bytes {
    let records: Vec<PlainRecord> = pairs.iter().map(|(k, v)| PlainRecord::new(k.to_string(), Some(Bytes::from(v.to_string())), now())).collect();
    encode_batch(&records, Compression::None).expect("encode")
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Checks one group on one partition: the target group's offset (synced by the mirror)
/// starts a consumer exactly where the source group would continue. `since`: a time after
/// replication caught up; the group's translation must come from a checkpoint pass after it
/// (an earlier pass may have synced the group to what was replicated then).
#[allow(clippy::too_many_arguments)]
async fn assert_exact(src: &str, dst: &str, topic: &str, remote: &str, group: &str, committed: i64, target: &Client, status: &tern_mirror::status::FlowStatus, since: i64) -> i64 {
    let translated = wait_until(Duration::from_secs(30), &format!("a checkpoint of {group} after replication caught up"), async || {
        let g = status.snapshot().groups.get(&(group.to_string(), (topic.to_string(), 0))).cloned()?;
        (g.checkpoint_at > since).then_some(g.translation.target())?
    })
    .await;
    let synced = wait_until(Duration::from_secs(30), &format!("group {group} synced onto the target"), async || {
        let o = target.all_committed_offsets(group).await.ok()?.get(&(remote.to_string(), 0)).copied()?;
        (o == translated).then_some(o)
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

/// A source cluster whose compaction runs within a test: tern broker's maintenance every
/// 100 ms (Kafka's test clusters run their cleaner every 500 ms).
pub(crate) async fn compacting_source(kind: Kind) -> TestCluster {
    match kind {
        Kind::Tern => TestCluster::Tern(TestBroker::start_with(|c| c.maintenance_interval = Duration::from_millis(100)).await),
        Kind::Kafka => TestCluster::start(kind, Side::A).await,
    }
}

/// Creates `ledger`, one compacted partition, and writes 21 keyed records whose compaction
/// leaves a hole in the middle: offsets 5..=9 are older versions of keys rewritten at 10..=14.
/// Returns once the hole is there (0..=4 and 10..=20 remain).
pub(crate) async fn ledger_with_hole(src: &TestCluster, ledger: &str) {
    let mut s = tern_kafka::client::Connection::connect(&src.bootstrap()).await.expect("connect");
    src.create_topic(ledger, 1, &[("cleanup.policy", "compact"), ("segment.ms", "100"), ("min.cleanable.dirty.ratio", "0.01"), ("delete.retention.ms", "0")]).await;
    let u: Vec<(String, String)> = (0..5).map(|i| (format!("u{i}"), format!("unique-{i}"))).collect();
    let d1: Vec<(String, String)> = (0..5).map(|i| (format!("d{i}"), format!("old-{i}"))).collect();
    let d2: Vec<(String, String)> = (0..5).map(|i| (format!("d{i}"), format!("new-{i}"))).collect();
    let u2: Vec<(String, String)> = (5..10).map(|i| (format!("u{i}"), format!("unique-{i}"))).collect();
    for set in [&u, &d1, &d2, &u2] {
        let refs: Vec<(&str, &str)> = set.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.call(&produce_request(ledger, 0, keyed(&refs), 1), 9).await.expect("produce");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // A last record rolls the segment so the cleaner may touch the ones above.
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.call(&produce_request(ledger, 0, keyed(&[("tail", "tail")]), 1), 9).await.expect("produce");
    wait_until(Duration::from_secs(30), "compaction to leave a hole at 5..=9", async || {
        let offsets: Vec<i64> = records(&src.bootstrap(), ledger, 0).await.iter().map(|r| r.0).collect();
        (!offsets.contains(&7) && offsets.contains(&10) && offsets.contains(&4)).then_some(())
    })
    .await;
}

async fn translation_is_exact(kind: Kind) {
    let src = compacting_source(kind).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let mut s = tern_kafka::client::Connection::connect(&src.bootstrap()).await.expect("connect");
    let source = Client::connect(ClientConfig::new(&src.bootstrap())).await.expect("source client");
    let target = Client::connect(ClientConfig::new(&dst.bootstrap())).await.expect("target client");
    let (plain, ledger) = (unique_topic("plain"), unique_topic("ledger"));
    let (plain, ledger) = (plain.as_str(), ledger.as_str());
    let aliases = Aliases::unique();
    let (remote_plain, remote_ledger) = (aliases.remote(plain), aliases.remote(ledger));
    let g = |name: &str| format!("{name}-{}", aliases.source);

    // "plain": 100 records, then retention (DeleteRecords) removes the first 20.
    src.create_topic(plain, 1, &[]).await;
    for i in 0..10 {
        let pairs: Vec<(String, String)> = (0..10).map(|j| (format!("k{}", i * 10 + j), format!("plain-{}", i * 10 + j))).collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.call(&produce_request(plain, 0, keyed(&refs), 1), 9).await.expect("produce");
    }
    delete_records(&mut s, plain, 20).await;

    // "ledger": compacted, with a hole at 5..=9.
    ledger_with_hole(&src, ledger).await;

    let commits: Vec<(String, &str, i64)> = vec![
        (g("g-head"), plain, 20),      // right after retention removed the head
        (g("g-below"), plain, 5),      // below the source's log start
        (g("g-middle"), plain, 57),
        (g("g-end"), plain, 100),      // caught up
        (g("g-hole"), ledger, 7),      // inside the compacted hole
        (g("g-ledger"), ledger, 0),
        (g("g-ahead"), plain, 1000),   // ahead of anything replicated
    ];
    for (g, t, o) in &commits {
        let mut offsets = BTreeMap::new();
        offsets.insert((t.to_string(), 0), *o);
        source.commit_offsets(g, &Membership::none(), &offsets).await.expect("commit on the source");
    }
    // A group with an active member on the target must be left alone.
    let g_active = g("g-active");
    let mut active = GroupMember::new(&g_active, Duration::from_secs(30), Duration::from_secs(30));
    let mut offsets = BTreeMap::new();
    offsets.insert((plain.to_string(), 0), 40);
    source.commit_offsets(&g_active, &Membership::none(), &offsets).await.expect("commit");

    let toml = flow_config(&aliases, &src.bootstrap(), &dst.bootstrap(), &format!("\"{plain}\", \"{ledger}\"")).replace("topics = [", "checkpoint_interval = \"500ms\"\ntopics = [");
    let mirror = TestMirror::start(&toml);
    let status = mirror.status[&aliases.flow()].clone();
    wait_until(Duration::from_secs(30), "the remote topic for the active group", async || {
        target.topic_metadata(&remote_plain).await.ok().flatten().map(|_| ())
    })
    .await;
    active.join(&target, std::slice::from_ref(&remote_plain)).await.expect("an active member on the target");
    let heartbeats = active.heartbeater(&std::sync::Arc::new(Client::connect(ClientConfig::new(&dst.bootstrap())).await.expect("heartbeat client"))).expect("joined");
    let hb = tokio::spawn(async move {
        loop {
            let _ = heartbeats.beat().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    // Replication caught up: both remote topics hold what the source holds.
    for (topic, remote) in [(plain, &remote_plain), (ledger, &remote_ledger)] {
        let want = records(&src.bootstrap(), topic, 0).await.len();
        wait_until(Duration::from_secs(60), &format!("{remote} to catch up"), async || (records(&dst.bootstrap(), remote, 0).await.len() == want).then_some(())).await;
    }
    let caught_up = now();
    for (g, t, o) in &commits[..6] {
        assert_exact(&src.bootstrap(), &dst.bootstrap(), t, &aliases.remote(t), g, *o, &target, &status, caught_up).await;
    }
    // Tern's checkpoints decode with MM2's layout, every one of them.
    let raw = records(&dst.bootstrap(), &format!("{}.checkpoints.internal", aliases.source), 0).await;
    let decoded: Vec<tern_mirror::mm2::Checkpoint> =
        raw.iter().filter_map(|(_, k, v)| tern_mirror::mm2::Checkpoint::decode(k.clone()?, v.clone()?).ok()).collect();
    assert_eq!(decoded.len(), raw.len(), "every checkpoint record decodes as MM2's Checkpoint");
    assert!(
        decoded.iter().any(|c| c.group == g("g-middle") && c.topic == remote_plain && c.partition == 0 && c.upstream_offset == 57 && c.downstream_offset == 37),
        "g-middle's checkpoint: {decoded:?}"
    );

    // `tern offsets` shows the same translation without a running mirror.
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("tern.toml");
    std::fs::write(&config, &toml).expect("config");
    let out = std::process::Command::new(tern_bin())
        .args(["offsets", "--config", config.to_str().expect("path"), "--flow", &aliases.flow(), "--group", &g("g-middle")])
        .output()
        .expect("tern offsets");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let row = text.lines().find(|l| l.starts_with(&remote_plain)).unwrap_or_else(|| panic!("no row for {remote_plain}:\n{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], &[remote_plain.as_str(), "0", "57", "37"], "{row}");
    assert!(row.ends_with("exact"), "{row}");

    let hole_target = records(&dst.bootstrap(), &remote_ledger, 0).await;
    println!("{kind:?}: {remote_ledger} on the target: {} records for source offsets {:?}", hole_target.len(), records(&src.bootstrap(), ledger, 0).await.iter().map(|r| r.0).collect::<Vec<_>>());

    // Ahead of replication: synced to the replicated end, and reported as such.
    let ahead = wait_until(Duration::from_secs(30), "g-ahead's translation", async || {
        status.snapshot().groups.get(&(g("g-ahead"), (plain.to_string(), 0))).cloned()
    })
    .await;
    let end = tern_kafka::client::Client::list_offset(&target, &remote_plain, 0, tern_kafka::client::LATEST).await.expect("end").0;
    assert_eq!(ahead.translation, Translation::AheadOfReplication { target: end }, "{ahead:?}");

    // The active group is reported, and its target offsets stay untouched.
    let active_status = wait_until(Duration::from_secs(30), "g-active's report", async || {
        status.snapshot().groups.get(&(g_active.clone(), (plain.to_string(), 0))).filter(|g| g.sync != tern_mirror::states::SyncState::Off).cloned()
    })
    .await;
    assert_eq!(active_status.sync, tern_mirror::states::SyncState::Blocked, "{active_status:?}");
    assert!(active_status.sync_reason.as_deref().is_some_and(|r| r.contains("active member")), "{active_status:?}");
    assert!(target.all_committed_offsets(&g_active).await.unwrap_or_default().is_empty(), "an active group's offsets were written");
    hb.abort();
    mirror.stop().await;

    // After the mirror restarts (from its committed positions) and more data flows, the
    // groups move on and translation stays exact.
    let mirror = TestMirror::start(&toml);
    let status = mirror.status[&aliases.flow()].clone();
    for i in 0..5 {
        let pairs: Vec<(String, String)> = (0..10).map(|j| (format!("k{}", 100 + i * 10 + j), format!("later-{i}-{j}"))).collect();
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.call(&produce_request(plain, 0, keyed(&refs), 1), 9).await.expect("produce");
    }
    let mut offsets = BTreeMap::new();
    offsets.insert((plain.to_string(), 0), 123);
    source.commit_offsets(&g("g-middle"), &Membership::none(), &offsets).await.expect("commit");
    let want = records(&src.bootstrap(), plain, 0).await.len();
    wait_until(Duration::from_secs(60), "the new records on the target", async || (records(&dst.bootstrap(), &remote_plain, 0).await.len() == want).then_some(())).await;
    let caught_up = now();
    assert_exact(&src.bootstrap(), &dst.bootstrap(), plain, &remote_plain, &g("g-middle"), 123, &target, &status, caught_up).await;
    mirror.stop().await;
}

over_kinds!(translation_is_exact {
    tern_committed_offsets_translate_exactly_through_holes_retention_and_restarts: (Tern);
    kafka_committed_offsets_translate_exactly_through_holes_retention_and_restarts: (Kafka);
});


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
