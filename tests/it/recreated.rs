//! A source topic deleted and created again under a running flow (by confluent-kafka's admin
//! client, as an operator's tool would) is seen within seconds: the flow shows the event with
//! the records the old topic held past the replicated position, on the dashboard's API, in
//! `/readyz` and in `/metrics`, and replicates the new topic from its log start. Records
//! deleted on the source before they were replicated (the log start moved past the position)
//! are counted the same way. On both cluster kinds.

use std::process::Command;
use std::time::Duration;

use kafka_protocol::records::Compression;

use crate::clusters::*;
use crate::dashboard::parse_prometheus;
use crate::drills::{end, now_ms};
use crate::helpers::*;
use crate::reload::{body, json, OneFlow, Run};

/// tests/compat/topic_ops.py with `args` on `topic`.
pub(crate) async fn topic_ops(bootstrap: &str, topic: &str, args: &[&str]) {
    let mut cmd = Command::new(python());
    cmd.arg(compat_script("topic_ops.py")).args(["--bootstrap", bootstrap, "--topic", topic]).args(args);
    run_client(cmd, Duration::from_secs(120)).await;
}

async fn a_recreated_source_topic_is_seen(kind: Kind) {
    let one = OneFlow::start(kind, kind, "recreated", 2).await;
    let (src, source, target, b, flow, topic, remote) = (&one.src, &one.source, &one.target, &one.b, &one.flow, &one.topic, &one.remote);
    for p in 0..2 {
        source.produce(topic, p, batch(&format!("old-{p}"), 15, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    }
    let run = Run::start(&one.path);
    let web = run.dashboard().await;
    for p in 0..2 {
        wait_until(Duration::from_secs(60), "the old topic replicated", async || (end(target, remote, p).await == 15).then_some(())).await;
    }

    // Paused, ten more records per partition stay on the source; then the topic goes away.
    let flow_path = &one.api_path;
    let decide = async |paused: bool| {
        tern_mirror::control::update(target, b, flow, "test", |c| c.paused = paused).await.expect("decision");
        wait_until(Duration::from_secs(30), "the decision to apply", async || (json(&web, flow_path).await["paused"] == paused).then_some(())).await;
    };
    decide(true).await;
    for p in 0..2 {
        source.produce(topic, p, batch(&format!("unreplicated-{p}"), 10, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let last = json(&web, flow_path).await;
        // Only this topic's partitions: a flow also replicates the source's `heartbeats` topic,
        // which another test may have written on a shared Kafka cluster.
        let ends: Vec<i64> = last["partitions"].as_array().into_iter().flatten().filter(|p| p["topic"] == topic.as_str()).filter_map(|p| p["source_end_offset"].as_i64()).collect();
        if ends == [25, 25] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the flow did not see the source ends of 25 within 60 s: {last}\n{}", run.all());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    topic_ops(&src.bootstrap(), topic, &["recreate", "--partitions", "2"]).await;
    for p in 0..2 {
        source.produce(topic, p, batch(&format!("new-{p}"), 7, now_ms(), Compression::None), -1, 5000).await.expect("produce to the new topic");
    }
    decide(false).await;

    // Seen within seconds, with what was lost, everywhere an operator looks.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let errors = loop {
        let f = json(&web, flow_path).await;
        let errors: Vec<String> = f["errors"].as_array().into_iter().flatten().filter_map(|e| e.as_str().map(String::from)).filter(|e| e.contains("recreated")).collect();
        if errors.len() == 2 {
            break errors;
        }
        assert!(std::time::Instant::now() < deadline, "the flow did not show the recreated topic within 30 s: {f}\n{}", run.all());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for p in 0..2 {
        let line = errors.iter().find(|e| e.starts_with(&format!("{topic}/{p}:"))).unwrap_or_else(|| panic!("partition {p} in {errors:?}"));
        assert!(line.contains("10 record(s) lost") && line.contains("past offset 15"), "{line}");
    }
    assert_eq!(json(&web, flow_path).await["health"], "error");
    let ready = http_get(&web, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503") && body(&ready).contains("source topic recreated"), "{ready}");
    let metrics = parse_prometheus(body(&http_get(&web, "/metrics").await));
    let lost: f64 = metrics.iter().filter(|m| m.name == "tern_source_lost_records_total" && m.labels.get("topic") == Some(&topic)).map(|m| m.value).sum();
    assert_eq!(lost, 20.0, "lost records in /metrics");
    let events = metrics.iter().find(|m| m.name == "tern_source_events_total" && m.labels.get("event").map(String::as_str) == Some("recreated")).map(|m| m.value);
    assert_eq!(events, Some(2.0));

    // The new topic is replicated from its start, after what the old one gave.
    for p in 0..2 {
        wait_until(Duration::from_secs(60), "the new topic replicated", async || (end(target, remote, p).await == 22).then_some(())).await;
        let values: Vec<String> = target.read_range(remote, p, 15, 22).await.expect("read").iter().filter_map(|r| r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())).collect();
        let want: Vec<String> = (0..7).map(|i| format!("new-{p}-{i}")).collect();
        assert_eq!(values, want, "partition {p} of {remote}");
    }

    // Records deleted before they were replicated: the log start moves past the position.
    decide(true).await;
    source.produce(topic, 0, batch("deleted", 5, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    topic_ops(&src.bootstrap(), topic, &["delete-records", "--partition", "0", "--before", "12"]).await;
    decide(false).await;
    let moved = wait_until(Duration::from_secs(30), "the flow to show the moved log start", async || {
        let f = json(&web, flow_path).await;
        f["errors"].as_array()?.iter().filter_map(|e| e.as_str()).find(|e| e.contains("log-start-moved")).map(String::from)
    })
    .await;
    assert!(moved.contains(&format!("{topic}/0:")) && moved.contains("5 record(s) lost") && moved.contains("offsets 7 to 11"), "{moved}");
    assert!(!run.all().contains("panicked"), "{}", run.all());
}

over_kinds!(a_recreated_source_topic_is_seen {
    tern_a_recreated_source_topic_is_seen_and_replicated_from_its_start: (Tern);
    kafka_a_recreated_source_topic_is_seen_and_replicated_from_its_start: (Kafka);
});

/// Cuts the log file `path` after its first `keep` record batches, as an unclean leader
/// election leaves a partition whose new leader lacks the tail; returns the bytes kept.
fn cut_log_after(path: &std::path::Path, keep: usize) -> u64 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut at = 0usize;
    for _ in 0..keep {
        let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("batch length"));
        at += 12 + usize::try_from(len).expect("batch length");
    }
    let f = std::fs::OpenOptions::new().write(true).open(path).expect("open the log");
    f.set_len(at as u64).expect("truncate the log");
    f.sync_all().expect("sync");
    at as u64
}

/// Stops the source's only node, cuts partition 0 of `topic` after `keep` batches, starts it
/// again.
async fn truncate_source(src: &mut TestCluster, topic: &str, keep: usize) {
    let segment = format!("{topic}-0/00000000000000000000.log");
    match src {
        TestCluster::Tern(b) => b.restart_with(|data| _ = cut_log_after(&data.join(&segment), keep)).await,
        TestCluster::OwnKafka(k) => tokio::task::block_in_place(|| {
            // kill -9: an unclean stop, so Kafka recovers the segment on start.
            k.kill_node(1);
            cut_log_after(&k.nodes[0].dir.join("data").join(&segment), keep);
            k.restart_node(1);
        }),
        TestCluster::Kafka(_) => panic!("a shared cluster is not for truncating"),
    }
}

/// The source log ends below the replicated position (what an unclean leader election does):
/// the flow shows `truncated` and goes on from where the log diverged, so records written to
/// the source after the truncation arrive; the target keeps what the source lost. Apache
/// Kafka tells where at once (OffsetForLeaderEpoch for the epoch of the last batch fetched:
/// its node restarted, so new records have a new epoch); from `tern broker` the flow takes the
/// lowest end it saw once the log has ended below the position for 10 s.
async fn a_truncated_source_log_is_seen(kind: Kind) {
    let mut src = TestCluster::start(kind, Side::Own).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let aliases = crate::mirror::Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let topic = unique_topic("truncated");
    let remote = format!("{a}.{topic}");
    src.create_topic(&topic, 1, &[]).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    std::fs::write(&path, crate::reload::config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &topic)])).expect("config");
    let flow_path = format!("/api/v1/flows/{a}-%3E{b}");
    let source = src.client().await;
    for i in 0..20 {
        source.produce(&topic, 0, batch(&format!("old-{i}"), 1, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    }
    let run = Run::start(&path);
    let web = run.dashboard().await;
    let target = dst.client().await;
    wait_until(Duration::from_secs(60), "the 20 records replicated", async || (end(&target, &remote, 0).await == 20).then_some(())).await;

    truncate_source(&mut src, &topic, 12).await;
    let source = src.client().await;
    wait_until(Duration::from_secs(30), "the source log to end at 12 after the cut", async || (end(&source, &topic, 0).await == 12).then_some(())).await;
    if kind == Kind::Tern {
        // tern broker keeps no leader epochs: the flow learns where the log diverged only by
        // seeing it end below the position, which it shows.
        let suspected = wait_until(Duration::from_secs(30), "the flow to see the log end below its position", async || {
            json(&web, &flow_path).await["partitions"].as_array()?.iter().filter_map(|p| p["error"].as_str()).find(|e| e.contains("taken as truncated")).map(String::from)
        })
        .await;
        assert!(suspected.contains("ends at 12, below the replicated position 20"), "{suspected}");
    }
    // Written after the truncation, before the flow may act on it.
    source.produce(&topic, 0, batch("after-cut", 3, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    let truncated_at = std::time::Instant::now();
    let event = wait_until(Duration::from_secs(60), "the flow to show the truncation", async || {
        json(&web, &flow_path).await["errors"].as_array()?.iter().filter_map(|e| e.as_str()).find(|e| e.contains("truncated")).map(String::from)
    })
    .await;
    assert!(event.starts_with(&format!("{topic}/0:")) && event.contains("position 20") && event.contains("from offset 12,"), "{event}");
    if kind == Kind::Kafka {
        assert!(truncated_at.elapsed() < Duration::from_secs(10), "Kafka's leader epochs tell the truncation at once, not after the 10 s without them");
    }
    let ready = http_get(&web, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503") && body(&ready).contains("truncated"), "{ready}");
    let metrics = parse_prometheus(body(&http_get(&web, "/metrics").await));
    let events = metrics.iter().find(|m| m.name == "tern_source_events_total" && m.labels.get("event").map(String::as_str) == Some("truncated")).map(|m| m.value);
    assert_eq!(events, Some(1.0), "the truncation counted in /metrics");

    // The target keeps the 20 it had, then the source's records from offset 12 on.
    source.produce(&topic, 0, batch("later", 2, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while end(&target, &remote, 0).await < 25 {
        assert!(std::time::Instant::now() < deadline, "the records after the truncation were not replicated within 60 s: {}\n{}", json(&web, &flow_path).await, run.all());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let values: Vec<String> = target.read_range(&remote, 0, 0, 25).await.expect("read").iter().filter_map(|r| r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())).collect();
    let mut want: Vec<String> = (0..20).map(|i| format!("old-{i}-0")).collect();
    want.extend((0..3).map(|i| format!("after-cut-{i}")));
    want.extend((0..2).map(|i| format!("later-{i}")));
    assert_eq!(values, want, "{remote}");
    println!("{kind:?}: the source log cut from 20 to 12 records; the flow showed \"{event}\" {:.1} s after the records written after the cut", truncated_at.elapsed().as_secs_f64());
    assert!(!run.all().contains("panicked"), "{}", run.all());
}

over_kinds!(a_truncated_source_log_is_seen {
    tern_a_truncated_source_log_is_seen_and_replication_goes_on_from_its_end: (Tern);
    kafka_a_truncated_source_log_is_seen_and_replication_goes_on_from_its_end: (Kafka);
});

/// A worker that is not running while the source log is truncated below its committed position
/// (an unclean leader election) and more records than were lost are written after the cut: when
/// it starts again it asks the source where the leader epoch committed with the position ends,
/// and resumes there, so the records written after the cut are all replicated. Without the
/// epoch it would resume from the committed position, now inside the new records, and skip the
/// ones before it. Apache Kafka only: `tern broker` keeps no leader epochs, so a flow from it
/// learns of a truncation only by seeing the log end below its position (see the test above).
#[tokio::test(flavor = "multi_thread")]
async fn kafka_a_worker_started_after_a_truncation_resumes_where_the_log_diverged() {
    let mut src = TestCluster::start(Kind::Kafka, Side::Own).await;
    let dst = TestCluster::start(Kind::Kafka, Side::B).await;
    let aliases = crate::mirror::Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let topic = unique_topic("truncated-away");
    let remote = format!("{a}.{topic}");
    src.create_topic(&topic, 1, &[]).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    let config = crate::reload::config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &topic)]);
    std::fs::write(&path, &config).expect("config");
    let group = tern_mirror::names::group_id(&tern_mirror::config::parse(&config).expect("config").flows.remove(0));
    let source = src.client().await;
    for i in 0..20 {
        source.produce(&topic, 0, batch(&format!("old-{i}"), 1, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    }
    let run = Run::start(&path);
    let target = dst.client().await;
    wait_until(Duration::from_secs(60), "the 20 records replicated", async || (end(&target, &remote, 0).await == 20).then_some(())).await;
    let tp = (topic.clone(), 0);
    let committed = wait_until(Duration::from_secs(30), "the position 20 committed with its leader epoch", async || {
        source.committed_positions(&group, std::slice::from_ref(&tp)).await.ok()?.get(&tp).copied().filter(|(o, epoch)| *o == 20 && epoch.is_some())
    })
    .await;
    assert!(!run.all().contains("panicked"), "{}", run.all());
    drop(run);

    // With no worker running: the log cut to 12 records, then 10 new ones (offsets 12 to 21),
    // so the log ends past the committed 20 again.
    truncate_source(&mut src, &topic, 12).await;
    let source = src.client().await;
    wait_until(Duration::from_secs(30), "the source log to end at 12 after the cut", async || (end(&source, &topic, 0).await == 12).then_some(())).await;
    for i in 0..10 {
        source.produce(&topic, 0, batch(&format!("after-cut-{i}"), 1, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    }
    assert_eq!(end(&source, &topic, 0).await, 22);

    let run = Run::start(&path);
    let web = run.dashboard().await;
    let flow_path = format!("/api/v1/flows/{a}-%3E{b}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while end(&target, &remote, 0).await < 30 {
        assert!(std::time::Instant::now() < deadline, "the 10 records written after the cut did not all arrive within 60 s (the target ends at {}): {}\n{}", end(&target, &remote, 0).await, json(&web, &flow_path).await, run.all());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let values: Vec<String> = target.read_range(&remote, 0, 0, 30).await.expect("read").iter().filter_map(|r| r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())).collect();
    let mut want: Vec<String> = (0..20).map(|i| format!("old-{i}-0")).collect();
    want.extend((0..10).map(|i| format!("after-cut-{i}-0")));
    assert_eq!(values, want, "{remote}");
    let flow = json(&web, &flow_path).await;
    let event = flow["errors"].as_array().and_then(|e| e.iter().filter_map(|e| e.as_str()).find(|e| e.contains("truncated")).map(String::from));
    let event = event.unwrap_or_else(|| panic!("the flow does not show the truncation it resumed from: {flow}"));
    assert!(event.starts_with(&format!("{topic}/0:")) && event.contains("position 20") && event.contains("from offset 12,"), "{event}");
    assert!(run.lines("the source log was truncated below the committed position").len() == 1, "{}", run.all());
    println!("Kafka: position 20 committed with leader epoch {:?}; the log cut to 12 and 10 records written while no worker ran; the restarted worker showed \"{event}\" and copied all 10", committed.1);
    assert!(!run.all().contains("panicked"), "{}", run.all());
}
