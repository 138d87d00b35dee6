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
