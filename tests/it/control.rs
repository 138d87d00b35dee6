//! The operators' decisions about a flow cannot be lost or reordered. Concurrent changes (a
//! dashboard resume racing `tern failover`, each from its own connection) all take effect,
//! each once, by compare-and-set on the decision's epoch; and a worker applies a later decision
//! even when an earlier writer's clock ran an hour ahead. On both cluster kinds.

use std::time::Duration;

use tern_mirror::control::{self, Control, FailoverState};

use crate::clusters::*;
use crate::drills::now_ms;
use crate::helpers::*;
use crate::reload::{json, OneFlow, Run};

async fn decisions_are_never_lost_or_reordered(kind: Kind) {
    let one = OneFlow::start(kind, kind, "control", 1).await;
    let (dst, target, b, flow) = (&one.dst, &one.target, one.b.clone(), one.flow.clone());

    // Nine writers at once, each with a client of its own: eight pause or resume, one fails
    // the flow over. Without compare-and-set a resume that read the decision before the
    // failover wrote it puts the flow back to active.
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..9 {
        let (client, b, flow) = (dst.client().await, b.clone(), flow.clone());
        writers.spawn(async move {
            if i == 4 {
                control::update(&client, &b, &flow, "test: failover", |c| c.state = FailoverState::FailedOver).await
            } else {
                control::update(&client, &b, &flow, &format!("test: writer {i}"), move |c| c.paused = i % 2 == 0).await
            }
        });
    }
    let mut epochs = Vec::new();
    while let Some(done) = writers.join_next().await {
        epochs.push(done.expect("writer").expect("update").epoch);
    }
    epochs.sort();
    assert_eq!(epochs, (1..=9).collect::<Vec<u64>>(), "each change took one epoch of its own");
    let decided = control::read(target, &b, &flow).await.expect("read");
    assert_eq!((decided.state, decided.epoch), (FailoverState::FailedOver, 9), "the failover survives the resumes racing it: {decided:?}");

    // A worker follows the decisions by epoch, not by the writers' clocks.
    control::update(target, &b, &flow, "test: active again", |c| {
        c.state = FailoverState::Active;
        c.paused = false;
    })
    .await
    .expect("update");
    let run = Run::start(&one.path);
    let web = run.dashboard().await;
    let flow_path = &one.api_path;
    let shows = async |paused: bool, reason: &str| {
        wait_until(Duration::from_secs(30), &format!("the worker to show {reason:?}"), async || {
            let f = json(&web, flow_path).await;
            (f["paused"] == paused && f["control_reason"] == reason).then_some(())
        })
        .await
    };
    shows(false, "test: active again").await;
    // A writer whose clock runs an hour ahead pauses the flow...
    let current = control::read(target, &b, &flow).await.expect("read");
    let skewed = Control { paused: true, updated_at_ms: now_ms() + 3_600_000, reason: "test: a writer an hour ahead".into(), epoch: current.epoch + 1, ..current };
    control::write(target, &b, &flow, &skewed).await.expect("write");
    shows(true, "test: a writer an hour ahead").await;
    // ...and a resume written after it, by a clock that is right, applies.
    let resumed = control::update(target, &b, &flow, "test: resume by the right clock", |c| c.paused = false).await.expect("resume");
    assert!(resumed.updated_at_ms < skewed.updated_at_ms && resumed.epoch == skewed.epoch + 1, "{resumed:?}");
    shows(false, "test: resume by the right clock").await;
    assert!(!run.all().contains("panicked"), "{}", run.all());
}

over_kinds!(decisions_are_never_lost_or_reordered {
    tern_decisions_are_never_lost_or_reordered: (Tern);
    kafka_decisions_are_never_lost_or_reordered: (Kafka);
});

/// A planned failover while a worker still holds the flow's group (here one killed with -9,
/// whose member stays until its session ends) is refused and leaves the flow active; once the
/// group is empty it goes through.
async fn a_planned_failover_waits_for_the_workers(kind: Kind) {
    let one = OneFlow::start(kind, kind, "held", 1).await;
    let (source, target, a, b, flow, topic, remote, path) = (&one.source, &one.target, &one.a, &one.b, &one.flow, &one.topic, &one.remote, &one.path);
    source.produce(topic, 0, batch("held", 10, now_ms(), kafka_protocol::records::Compression::None), -1, 5000).await.expect("produce");
    let run = Run::start(path);
    wait_until(Duration::from_secs(60), "the records on the target", async || (crate::drills::end(target, remote, 0).await == 10).then_some(())).await;
    let group = format!("tern.{a}.{b}");
    wait_until(Duration::from_secs(30), "the worker in the flow's group", async || (source.describe_group(&group).await.ok()?.members == 1).then_some(())).await;
    drop(run); // kill -9: the worker does not leave its group

    let failover = || {
        let out = std::process::Command::new(tern_bin())
            .args(["failover", "--config"])
            .arg(path)
            .args(["--flow", flow, "--planned", "--timeout", "3s"])
            .output()
            .expect("tern failover");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let (ok, said) = failover();
    assert!(!ok && said.contains("still hold their group") && said.contains("refused"), "{said}");
    assert_eq!(control::read(target, b, flow).await.expect("read").state, FailoverState::Active, "a refused failover leaves the flow active");

    // The killed worker's session (10 s) ends; then the failover goes through.
    wait_until(Duration::from_secs(60), "the group to empty", async || (source.describe_group(&group).await.ok()?.members == 0).then_some(())).await;
    let (ok, said) = failover();
    assert!(ok, "{said}");
    assert_eq!(control::read(target, b, flow).await.expect("read").state, FailoverState::FailedOver);
}

over_kinds!(a_planned_failover_waits_for_the_workers {
    tern_a_planned_failover_waits_for_the_workers: (Tern);
    kafka_a_planned_failover_waits_for_the_workers: (Kafka);
});

/// The flow's decisions become unreadable while it is failed over (its control topic deleted
/// on the target): the running worker keeps the last decision and copies nothing, a worker
/// started meanwhile copies nothing either (the flow's failover point shows it was failed
/// over), and both say why on the dashboard and in readiness. A decision written again (a
/// new control topic, epochs from 1) applies on both.
async fn lost_decisions_fail_closed(kind: Kind) {
    // The test deletes the target's control topic, which every flow into that cluster shares:
    // on Kafka the target is a cluster of its own.
    let one = OneFlow::start_on(kind, kind, Side::Own, "lost-control", 1).await;
    let (source, target, a, b, flow, topic, remote, path) = (&one.source, &one.target, &one.a, &one.b, &one.flow, &one.topic, &one.remote, &one.path);
    source.produce(topic, 0, batch("before", 10, now_ms(), kafka_protocol::records::Compression::None), -1, 5000).await.expect("produce");
    let first = Run::start(path);
    let web = first.dashboard().await;
    wait_until(Duration::from_secs(60), "the records on the target", async || (crate::drills::end(target, remote, 0).await == 10).then_some(())).await;
    let config = path.to_str().expect("path");
    assert_eq!(crate::drills::tern(&["failover", "--config", config, "--flow", flow, "--planned", "--timeout", "30s"]).0, 0);
    wait_until(Duration::from_secs(30), "the worker to follow the failover", async || (json(&web, &one.api_path).await["failover_state"] == "failed-over").then_some(())).await;
    let group = format!("tern.{a}.{b}");
    let committed = source.all_committed_offsets(&group).await.expect("offsets");
    assert_eq!(committed.get(&(topic.clone(), 0)), Some(&10), "the worker committed what it replicated before it left the group");

    crate::recreated::topic_ops(&one.dst.bootstrap(), control::CONTROL_TOPIC, &["delete"]).await;
    source.produce(topic, 0, batch("after", 10, now_ms(), kafka_protocol::records::Compression::None), -1, 5000).await.expect("produce");
    let second = Run::start(path);
    let web2 = second.dashboard().await;
    let says = async |web: &str, what: &str| {
        wait_until(Duration::from_secs(30), &format!("the dashboard at {web} to say {what:?}"), async || {
            let f = json(web, &one.api_path).await;
            let errors = f["errors"].as_array()?.iter().filter_map(|e| e.as_str()).map(str::to_string).collect::<Vec<_>>();
            errors.iter().any(|e| e.contains(what)).then_some(errors)
        })
        .await
    };
    says(&web, "the last one read stays in force").await;
    says(&web2, "the flow has a failover point").await;
    for web in [&web, &web2] {
        let ready = http_get(web, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 503") && ready.contains(control::CONTROL_TOPIC), "{ready}");
    }
    assert_eq!(json(&web, &one.api_path).await["failover_state"], "failed-over", "the last decision read stands");
    // Several control polls later nothing was fetched: nothing reached the target and no
    // worker is in the flow's group on the source.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(crate::drills::end(target, remote, 0).await, 10, "a failed-over flow whose decisions are unreadable copies nothing");
    assert_eq!(source.describe_group(&group).await.expect("group").members, 0);

    // An operator resumes the flow: the decision (epoch 1 of a new topic) applies on both.
    let resumed = control::update(target, b, flow, "test: active again", |c| {
        c.state = FailoverState::Active;
        c.paused = false;
    })
    .await
    .expect("update");
    assert_eq!(resumed.epoch, 1);
    wait_until(Duration::from_secs(60), "the records written meanwhile on the target", async || (crate::drills::end(target, remote, 0).await == 20).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let on_target = crate::mirror::partition_content(&one.dst.bootstrap(), remote, 0).await;
    assert_eq!(on_target, crate::mirror::partition_content(&one.src.bootstrap(), topic, 0).await, "each record once");
    for web in [&web, &web2] {
        wait_until(Duration::from_secs(30), "the workers to follow the new decision", async || {
            let f = json(web, &one.api_path).await;
            (f["failover_state"] == "active" && f["errors"].as_array().is_some_and(|e| e.is_empty())).then_some(())
        })
        .await;
    }
    for run in [&first, &second] {
        assert!(!run.all().contains("panicked"), "{}", run.all());
    }
}

over_kinds!(lost_decisions_fail_closed {
    tern_lost_decisions_fail_closed: (Tern);
    kafka_lost_decisions_fail_closed: (Kafka);
});

/// An unplanned failover while the source is alive and still written to, then failback: the
/// records the workers replicated are not taken for records written on the target, so
/// failback copies home only what was written there, and no record is twice on the source.
async fn unplanned_failover_of_a_live_source(kind: Kind) {
    let one = OneFlow::start(kind, kind, "live", 1).await;
    let (target, flow, topic, remote, path) = (&one.target, &one.flow, &one.topic, &one.remote, &one.path);
    let config = path.to_str().expect("path");
    let run = Run::start(path);
    // A producer writes a record every 10 ms to the source until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (client, topic, stop) = (one.src.client().await, topic.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                client.produce(&topic, 0, batch(&format!("live-{i}"), 1, now_ms(), kafka_protocol::records::Compression::None), -1, 5000).await.expect("produce");
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            i
        })
    };
    wait_until(Duration::from_secs(60), "replication under way", async || (crate::drills::end(target, remote, 0).await >= 100).then_some(())).await;
    assert_eq!(crate::drills::tern(&["failover", "--config", config, "--flow", flow, "--unplanned"]).0, 0);
    // Clients on the target write there; the source keeps being written a while longer.
    let mut t = tern_kafka::client::Connection::connect(&one.dst.bootstrap()).await.expect("connect");
    crate::drills::produce(&mut t, remote, 0, batch("on-target", 5, now_ms(), kafka_protocol::records::Compression::None)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = producer.await.expect("producer");

    assert_eq!(crate::drills::tern(&["failback", "--config", config, "--flow", flow]).0, 0);
    let values = |content: Vec<crate::clusters::Content>| content.into_iter().map(|r| String::from_utf8_lossy(&r.1.unwrap_or_default()).to_string()).collect::<Vec<_>>();
    let on_source = values(crate::mirror::partition_content(&one.src.bootstrap(), topic, 0).await);
    let mut seen = std::collections::BTreeMap::new();
    for v in &on_source {
        *seen.entry(v.clone()).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).map(|(v, _)| v.clone()).collect();
    assert!(twice.is_empty(), "records twice on the source: {twice:?}");
    assert_eq!(on_source.iter().filter(|v| v.starts_with("live-")).count(), written, "every record the producer wrote, once");
    assert_eq!(on_source.iter().filter(|v| v.starts_with("on-target-")).count(), 5, "the target's records copied home, once");
    println!("{kind:?}: {written} records written on the live source, 5 on the target, {} on the source after failback, none twice", on_source.len());
    assert!(!run.all().contains("panicked"), "{}", run.all());
}

over_kinds!(unplanned_failover_of_a_live_source {
    tern_an_unplanned_failover_of_a_live_source_then_failback_writes_nothing_twice: (Tern);
    kafka_an_unplanned_failover_of_a_live_source_then_failback_writes_nothing_twice: (Kafka);
});
