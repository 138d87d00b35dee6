//! Honest lag: lag in seconds is the age of the oldest source record not yet on the target,
//! whatever arrived after it; a group's lag in records and seconds; the replication latency
//! histogram. On both cluster kinds.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kafka_protocol::records::Compression;
use tern_kafka::client::Connection;
use tower::ServiceExt;

use crate::clusters::*;
use crate::dashboard::parse_prometheus;
use crate::drills::{commit, hold_back, now_ms, produce, wait_caught_up, write_config};
use crate::helpers::*;
use crate::mirror::{Aliases, TestMirror};

/// How long the first held-back record waits.
const HELD: Duration = Duration::from_secs(30);

async fn get(app: &axum::Router, path: &str) -> String {
    let resp = app.clone().oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    String::from_utf8_lossy(&axum::body::to_bytes(resp.into_body(), 16 << 20).await.expect("body")).into_owned()
}

fn near(what: &str, got: Option<f64>, want: f64) {
    let got = got.unwrap_or_else(|| panic!("{what}: no value"));
    assert!((got - want).abs() <= 3.0, "{what}: {got:.1} s, expected about {want:.1} s");
}

async fn a_held_back_record_ages(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let aliases = Aliases::unique();
    let flow = aliases.flow();
    let topic = unique_topic("aging");
    let remote = aliases.remote(&topic);
    src.create_topic(&topic, 2, &[("retention.ms", "-1")]).await;
    let mut s = Connection::connect(&src.bootstrap()).await.expect("connect");
    // What is replicated first is ten minutes old: "now minus the newest replicated record"
    // would call the held-back record ten minutes late.
    let old = now_ms() - 600_000;
    for p in 0..2 {
        produce(&mut s, &topic, p, batch(&format!("old-{p}"), 10, old, Compression::None)).await;
    }
    let group = format!("reader-{}", aliases.source);
    commit(&source, &group, &[(&topic, 0, 10)]).await;
    let dir = tempfile::tempdir().expect("dir");
    let (toml, _) = write_config(dir.path(), &aliases, &src.bootstrap(), &dst.bootstrap(), &format!("\"{topic}\""));
    let mirror = TestMirror::start(&toml);
    wait_caught_up(&source, &target, &topic, &remote, 2).await;
    let status = mirror.status[&flow].clone();
    wait_until(Duration::from_secs(30), "lag 0 s", async || {
        let snap = status.snapshot();
        (snap.partitions.len() == 2 && snap.partitions.values().all(|p| p.lag_seconds(now_ms()) == Some(0.0))).then_some(())
    })
    .await;

    // Hold back one record, then keep newer records arriving on both partitions.
    hold_back(&target, &aliases, &mirror).await;
    let held_at = Instant::now();
    produce(&mut s, &topic, 0, batch("held", 1, now_ms(), Compression::None)).await;
    let mut newer = 0;
    while held_at.elapsed() < HELD {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for p in 0..2 {
            produce(&mut s, &topic, p, batch(&format!("newer-{newer}-{p}"), 1, now_ms(), Compression::None)).await;
        }
        newer += 1;
    }
    // Let the probe see the latest positions and the checkpointer the group.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let snap = status.snapshot();
    let at = |p: i32| snap.partitions.get(&(topic.clone(), p)).expect("partition status");
    let elapsed = held_at.elapsed().as_secs_f64();
    println!("{kind:?}: held {elapsed:.1} s with {newer} newer record(s) per partition: lag {:?} s / {:?} s", at(0).lag_seconds(now_ms()), at(1).lag_seconds(now_ms()));
    near("partition 0 in the status", at(0).lag_seconds(now_ms()), elapsed);
    // Partition 1's oldest held record came a second after partition 0's.
    near("partition 1 in the status", at(1).lag_seconds(now_ms()), elapsed - 1.0);
    assert_eq!(at(0).lag_records(), 1 + newer);

    // The dashboard, the API and /metrics say the same.
    let validated = tern_mirror::config::parse(&toml).expect("config");
    let app = tern_web::router(tern_web::AppState::new(tern_web::Topology::from_validated(&validated), mirror.status.clone(), None));
    let elapsed = held_at.elapsed().as_secs_f64();
    let flow_json: serde_json::Value = serde_json::from_str(&get(&app, &format!("/api/v1/flows/{}", flow.replace('>', "%3E"))).await).expect("json");
    near("the flow's lag in the API", flow_json["lag_seconds"].as_f64(), elapsed);
    let partition0 = flow_json["partitions"].as_array().expect("partitions").iter().find(|p| p["partition"] == 0).expect("partition 0").clone();
    near("partition 0 in the API", partition0["lag_seconds"].as_f64(), elapsed);
    let metrics = parse_prometheus(&get(&app, "/metrics").await);
    let elapsed = held_at.elapsed().as_secs_f64();
    let lag_metric = metrics.iter().find(|m| m.name == "tern_lag_seconds" && m.labels.get("topic") == Some(&topic) && m.labels.get("partition").map(String::as_str) == Some("0")).map(|m| m.value);
    near("tern_lag_seconds", lag_metric, elapsed);
    // The group committed at 10 on partition 0: behind by the held record and the newer ones,
    // and as old as the held record.
    let groups: serde_json::Value = serde_json::from_str(&get(&app, "/api/v1/groups").await).expect("json");
    let row = groups["groups"].as_array().expect("groups").iter().find(|g| g["group"] == group.as_str() && g["partition"] == 0).unwrap_or_else(|| panic!("{group} in {groups}")).clone();
    assert_eq!(row["lag_records"].as_i64(), Some(1 + newer));
    near("the group's lag in the API", row["lag_seconds"].as_f64(), elapsed);
    let page = get(&app, "/groups").await;
    let elapsed = held_at.elapsed().as_secs_f64();
    let doc = scraper::Html::parse_document(&page);
    let sel = |css: &str| scraper::Selector::parse(css).expect("selector");
    let tr = doc.select(&sel(&format!("#groups tr[data-group=\"{group}\"][data-partition=\"0\"]"))).next().expect("group row");
    let field = |name: &str| tr.select(&sel(&format!("[data-field={name}]"))).next().map(|c| c.text().collect::<String>()).unwrap_or_default();
    assert_eq!(field("lag_records"), (1 + newer).to_string());
    near("the group's lag on the page", field("lag_seconds").parse().ok(), elapsed);

    // Resume: everything arrives; the latency histogram counts every record, the held-back
    // ones in the buckets above HELD.
    tern_mirror::control::update(&target, &aliases.target, &flow, "test: resume", |c| c.paused = false).await.expect("resume");
    wait_caught_up(&source, &target, &topic, &remote, 2).await;
    let replicated = 20 + 1 + 2 * newer;
    wait_until(Duration::from_secs(10), "every record in the histogram", async || (status.snapshot().latency.count == replicated as u64).then_some(())).await;
    let latency = status.snapshot().latency;
    let within = |bound: f64| latency.cumulative().into_iter().find(|(b, _)| *b == bound).map(|(_, c)| c).expect("bucket");
    println!("{kind:?}: latency histogram: {} record(s), {:?}", latency.count, latency.cumulative());
    assert_eq!(within(300.0), replicated as u64 - 20, "only the ten-minute-old records are above 300 s");
    assert!(within(10.0) < within(60.0), "the held-back record waited about {HELD:?}: {:?}", latency.cumulative());
    let metrics = parse_prometheus(&get(&app, "/metrics").await);
    let count = metrics.iter().find(|m| m.name == "tern_replication_latency_seconds_count" && m.labels.get("flow") == Some(&flow)).map(|m| m.value);
    assert_eq!(count, Some(replicated as f64));
    let inf = metrics.iter().find(|m| m.name == "tern_replication_latency_seconds_bucket" && m.labels.get("le").map(String::as_str) == Some("+Inf")).map(|m| m.value);
    assert_eq!(inf, Some(replicated as f64));
    mirror.stop().await;
}

over_kinds!(a_held_back_record_ages {
    tern_lag_in_seconds_is_the_age_of_the_oldest_record_not_on_the_target: (Tern);
    kafka_lag_in_seconds_is_the_age_of_the_oldest_record_not_on_the_target: (Kafka);
});
