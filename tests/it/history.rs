//! The flow's lag history is kept on the target cluster: it survives a restart of the worker
//! and every worker's dashboard shows the same. On both cluster kinds.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kafka_protocol::records::Compression;
use tern_kafka::client::Connection;
use tern_web::stored::{Point, Resolution, Resolutions};
use tower::ServiceExt;

use crate::clusters::*;
use crate::drills::{hold_back, now_ms, produce, wait_caught_up, write_config};
use crate::helpers::*;
use crate::mirror::{Aliases, TestMirror};

/// Short buckets so a test sees many: a second (fine) and two seconds (coarse).
const RES: Resolutions = Resolutions { fine_ms: 1000, fine_window_ms: 120_000, coarse_ms: 2000, coarse_window_ms: 600_000 };

async fn get(app: &axum::Router, path: &str) -> String {
    let resp = app.clone().oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    String::from_utf8_lossy(&axum::body::to_bytes(resp.into_body(), 16 << 20).await.expect("body")).into_owned()
}

/// One worker's dashboard over `mirror`, syncing the stored history every second.
fn dashboard(toml: &str, mirror: &TestMirror) -> (axum::Router, tern_web::AppState, tern_web::state::Pollers) {
    let validated = tern_mirror::config::parse(toml).expect("config");
    let state = tern_web::AppState::new(tern_web::Topology::from_validated(&validated), mirror.status.clone(), None);
    state.set_history_resolutions(RES);
    let pollers = state.spawn_pollers_every(Duration::from_millis(200));
    (tern_web::router(state.clone()), state, pollers)
}

async fn stored(app: &axum::Router, flow: &str, r: Resolution) -> Vec<Point> {
    let json: serde_json::Value = serde_json::from_str(&get(app, &format!("/api/v1/flows/{}/history", flow.replace('>', "%3E"))).await).expect("json");
    let key = match r {
        Resolution::Fine => "fine",
        Resolution::Coarse => "coarse",
    };
    serde_json::from_value(json["stored"][key].clone()).expect("points")
}

/// Points of buckets that ended before `before_ms` (later ones may still be written).
fn settled(points: &[Point], before_ms: i64) -> Vec<Point> {
    points.iter().filter(|p| p.at_ms < before_ms - RES.coarse_ms).copied().collect()
}

async fn history_survives_a_restart(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let aliases = Aliases::unique();
    let flow = aliases.flow();
    let topic = unique_topic("kept");
    let remote = aliases.remote(&topic);
    src.create_topic(&topic, 2, &[]).await;
    let dir = tempfile::tempdir().expect("dir");
    let (toml, _) = write_config(dir.path(), &aliases, &src.bootstrap(), &dst.bootstrap(), &format!("\"{topic}\""));
    let first = TestMirror::start(&toml);
    let (app1, _state1, pollers1) = dashboard(&toml, &first);

    // Lag that builds while the flow is paused, then drains: something worth keeping.
    let mut s = Connection::connect(&src.bootstrap()).await.expect("connect");
    produce(&mut s, &topic, 0, batch("before", 10, now_ms(), Compression::None)).await;
    wait_caught_up(&source, &target, &topic, &remote, 2).await;
    hold_back(&target, &aliases, &first).await;
    for i in 0..5 {
        for p in 0..2 {
            produce(&mut s, &topic, p, batch(&format!("held-{i}-{p}"), 20, now_ms(), Compression::None)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tern_mirror::control::update(&target, &aliases.target, &flow, "test: resume", |c| c.paused = false).await.expect("resume");
    wait_caught_up(&source, &target, &topic, &remote, 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = stored(&app1, &flow, Resolution::Coarse).await;
    let peak = before.iter().map(|p| p.lag_records).max().unwrap_or(0);
    println!("{kind:?}: {} coarse and {} fine point(s) kept on the target, peak lag {peak}", before.len(), stored(&app1, &flow, Resolution::Fine).await.len());
    assert!(before.len() >= 4, "{before:?}");
    assert!(peak >= 100, "the paused stretch is in the history: {before:?}");
    assert_eq!(before.last().map(|p| p.lag_records), Some(0), "and the catch-up after it");

    // Restart: the worker and its dashboard stop; a new one starts from the target's topic.
    pollers1.stop();
    first.stop().await;
    let stopped_at = now_ms();
    let restarted = TestMirror::start(&toml);
    let (app2, _state2, _pollers2) = dashboard(&toml, &restarted);
    let after = wait_until(Duration::from_secs(30), "the history read back after the restart", async || {
        let points = stored(&app2, &flow, Resolution::Coarse).await;
        (settled(&points, stopped_at).len() >= settled(&before, stopped_at).len()).then_some(points)
    })
    .await;
    assert_eq!(settled(&after, stopped_at), settled(&before, stopped_at), "what was kept before the restart is shown after it");
    // The flow page draws it: the 24-hour chart has a point per stored minute bucket.
    let page = scraper::Html::parse_document(&get(&app2, &format!("/flows/{}", flow.replace('>', "%3E"))).await);
    let chart = page.select(&scraper::Selector::parse("svg#history-24h").expect("selector")).next().expect("the 24-hour chart");
    let drawn: usize = chart.value().attr("data-points").and_then(|n| n.parse().ok()).expect("data-points");
    assert!(drawn >= settled(&before, stopped_at).len(), "{drawn} point(s) drawn");
    assert_eq!(chart.value().attr("data-peak"), Some(peak.to_string().as_str()));

    // A second worker of the flow shows the same history.
    let second = TestMirror::start(&toml);
    let (app3, _state3, _pollers3) = dashboard(&toml, &second);
    let now = now_ms();
    wait_until(Duration::from_secs(30), "the second worker's history", async || {
        let (a, b) = (stored(&app2, &flow, Resolution::Coarse).await, stored(&app3, &flow, Resolution::Coarse).await);
        (!a.is_empty() && settled(&a, now) == settled(&b, now)).then_some(())
    })
    .await;
    let fine = (stored(&app2, &flow, Resolution::Fine).await, stored(&app3, &flow, Resolution::Fine).await);
    assert_eq!(settled(&fine.0, now), settled(&fine.1, now));
    second.stop().await;
    restarted.stop().await;
}

over_kinds!(history_survives_a_restart {
    tern_lag_history_survives_a_restart_and_is_the_same_on_every_worker: (Tern);
    kafka_lag_history_survives_a_restart_and_is_the_same_on_every_worker: (Kafka);
});
