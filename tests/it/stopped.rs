//! A flow that stops by itself (here a panic, through a test-only failpoint) is visible: on
//! the dashboard, in `/metrics` and in readiness, while the other flows go on and liveness
//! stays; `tern run` exits non-zero once every flow stopped. On both cluster kinds.

use std::time::{Duration, Instant};

use kafka_protocol::records::Compression;

use crate::clusters::*;
use crate::dashboard::parse_prometheus;
use crate::drills::{end, now_ms};
use crate::helpers::*;
use crate::mirror::Aliases;
use crate::reload::{body, config, json, Run};

async fn a_stopped_flow_is_visible(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let (forward, backward) = (format!("{a}->{b}"), format!("{b}->{a}"));
    let (there, back) = (unique_topic("there"), unique_topic("back"));
    src.create_topic(&there, 1, &[]).await;
    dst.create_topic(&back, 1, &[]).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    std::fs::write(&path, config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &there), (&b, &a, &back)])).expect("config");

    let run = Run::start_with_env(&path, &[("TERN_FAILPOINTS", &format!("flow-panic={backward}"))]);
    let web = run.dashboard().await;
    let ready = wait_until(Duration::from_secs(30), "readiness to report the stopped flow", async || {
        let r = http_get(&web, "/readyz").await;
        // Before its panic is recorded the stopped flow shows as starting; the running flow is
        // ready once it has read its decisions.
        (r.starts_with("HTTP/1.1 503") && r.contains(&format!("{backward}: stopped")) && !r.contains(&format!("{forward}:"))).then_some(r)
    })
    .await;
    assert!(body(&ready).contains("panicked"), "{ready}");
    assert!(!body(&ready).contains(&format!("{forward}:")), "the running flow is not a problem: {ready}");
    assert!(http_get(&web, "/healthz").await.starts_with("HTTP/1.1 503"));
    assert!(http_get(&web, "/livez").await.starts_with("HTTP/1.1 200"), "the process still serves: no restart");
    let flows = json(&web, "/api/v1/flows").await;
    let of = |name: &str| flows["flows"].as_array().expect("flows").iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("{name} in {flows}")).clone();
    assert_eq!(of(&backward)["health"], "error");
    assert!(of(&backward)["errors"][0].as_str().is_some_and(|e| e.contains("stopped") && e.contains("panicked")), "{}", of(&backward));
    assert!(http_get(&web, &format!("/flows/{}", backward.replace('>', "%3E"))).await.contains("panicked"), "the flow page says why");
    let metrics = parse_prometheus(body(&http_get(&web, "/metrics").await));
    let up = |flow: &str| metrics.iter().find(|m| m.name == "tern_flow_up" && m.labels.get("flow").map(String::as_str) == Some(flow)).map(|m| m.value);
    assert_eq!((up(&forward), up(&backward)), (Some(1.0), Some(0.0)));
    // The other flow replicates all the while.
    source.produce(&there, 0, batch("there", 25, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    let remote = format!("{a}.{there}");
    wait_until(Duration::from_secs(60), "the running flow to replicate", async || (end(&target, &remote, 0).await == 25).then_some(())).await;
    assert!(run.lines("flow stopped").iter().any(|l| l.contains(&backward)), "{}", run.all());
    drop(run);

    // Every flow stops: tern run exits with an error that names them.
    let mut all = Run::start_with_env(&path, &[("TERN_FAILPOINTS", "flow-panic")]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = all.child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "tern run kept running with every flow stopped:\n{}", all.all());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "exit status {status}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = all.all();
    assert!(log.contains("every flow stopped") && log.contains(&forward) && log.contains(&backward), "{log}");
}

over_kinds!(a_stopped_flow_is_visible {
    tern_a_flow_that_stops_shows_in_readiness_metrics_and_the_dashboard: (Tern);
    kafka_a_flow_that_stops_shows_in_readiness_metrics_and_the_dashboard: (Kafka);
});
