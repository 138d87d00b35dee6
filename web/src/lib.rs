//! tern-web: Tern's HTTP side. For now `/metrics` (Prometheus text), `/healthz` and
//! `/api/v1/flows` (JSON); the dashboard grows here.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = tern_web::router(tern_web::AppState::new(Default::default()));
//! axum::serve(listener, app).await
//! # }
//! ```

pub mod metrics;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tern_mirror::status::FlowStatus;

#[derive(Clone)]
pub struct AppState {
    flows: BTreeMap<String, Arc<FlowStatus>>,
    registry: Arc<prometheus::Registry>,
}

impl AppState {
    pub fn new(flows: BTreeMap<String, Arc<FlowStatus>>) -> AppState {
        let registry = prometheus::Registry::new();
        if let Err(e) = registry.register(Box::new(metrics::FlowCollector::new(flows.clone()))) {
            tracing::error!("registering flow metrics: {e}");
        }
        AppState { flows, registry: Arc::new(registry) }
    }
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_get))
        .route("/healthz", get(healthz_get))
        .route("/api/v1/flows", get(flows_get))
        .with_state(state)
}

/// Every flow with its partitions (positions, lag, errors) and consumer-group translations.
async fn flows_get(State(state): State<AppState>) -> Response {
    let now = metrics::now_ms();
    let flows: Vec<serde_json::Value> = state
        .flows
        .iter()
        .map(|(name, status)| {
            let snap = status.snapshot();
            let partitions: Vec<serde_json::Value> = snap
                .partitions
                .iter()
                .map(|((topic, partition), p)| {
                    serde_json::json!({
                        "topic": topic,
                        "partition": partition,
                        "remote_topic": p.remote_topic,
                        "replicated_offset": p.replicated_offset,
                        "source_end_offset": p.source_end_offset,
                        "lag_records": p.lag_records(),
                        "lag_seconds": metrics::lag_seconds(p, now),
                        "records": p.records,
                        "bytes": p.bytes,
                        "error": p.error,
                    })
                })
                .collect();
            let groups: Vec<serde_json::Value> = snap
                .groups
                .iter()
                .map(|((group, (topic, partition)), g)| {
                    let state = match g.translation {
                        tern_mirror::offset_map::Translation::Exact(_) => "exact",
                        tern_mirror::offset_map::Translation::AheadOfReplication { .. } => "ahead_of_replication",
                        tern_mirror::offset_map::Translation::BeforeMap => "nothing_replicated",
                    };
                    serde_json::json!({
                        "group": group,
                        "topic": topic,
                        "partition": partition,
                        "committed_offset": g.committed,
                        "translated_offset": g.translation.target(),
                        "state": state,
                        "checkpoint_age_seconds": (g.checkpoint_at >= 0).then(|| (now - g.checkpoint_at).max(0) as f64 / 1000.0),
                        "sync": g.sync,
                    })
                })
                .collect();
            serde_json::json!({
                "name": name,
                "errors": snap.errors,
                "heartbeats_sent": snap.heartbeats_sent,
                "partitions": partitions,
                "groups": groups,
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "flows": flows })).into_response()
}

async fn metrics_get(State(state): State<AppState>) -> Response {
    let families = state.registry.gather();
    match prometheus::TextEncoder::new().encode_to_string(&families) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}")).into_response(),
    }
}

/// 200 while every flow runs without flow-level errors, 503 with the reasons otherwise.
async fn healthz_get(State(state): State<AppState>) -> Response {
    let problems: Vec<String> = state
        .flows
        .iter()
        .flat_map(|(name, s)| s.snapshot().errors.into_iter().map(move |e| format!("{name}: {e}")))
        .collect();
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn metrics_carry_per_partition_lag_and_healthz_reports_errors() {
        let status = Arc::new(FlowStatus::new("a->b".into()));
        status.update("orders", 3, |s| {
            s.source_end_offset = 120;
            s.replicated_offset = 100;
            s.records = 100;
        });
        let mut groups = BTreeMap::new();
        groups.insert(
            ("billing".to_string(), ("orders".to_string(), 3)),
            tern_mirror::checkpoint::GroupPartition {
                committed: 90,
                translation: tern_mirror::offset_map::Translation::Exact(70),
                checkpoint_at: metrics::now_ms(),
                sync: "synced".into(),
            },
        );
        status.set_groups(groups);
        let mut flows = BTreeMap::new();
        flows.insert("a->b".to_string(), status.clone());
        let app = router(AppState::new(flows));
        let resp = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).expect("request")).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        let text = String::from_utf8_lossy(&body);
        let line = text.lines().find(|l| l.starts_with("tern_lag_records{")).expect("lag line");
        assert!(line.contains("flow=\"a->b\"") && line.contains("partition=\"3\"") && line.contains("topic=\"orders\""), "{line}");
        assert!(line.ends_with(" 20"), "{line}");
        let translated = text.lines().find(|l| l.starts_with("tern_group_translated_offset{")).expect("group line");
        assert!(translated.contains("group=\"billing\"") && translated.ends_with(" 70"), "{translated}");

        let resp = app.clone().oneshot(Request::get("/api/v1/flows").body(Body::empty()).expect("request")).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let flow = &json["flows"][0];
        assert_eq!(flow["name"], "a->b");
        assert_eq!(flow["partitions"][0]["lag_records"], 20);
        assert_eq!(flow["groups"][0]["translated_offset"], 70);
        assert_eq!(flow["groups"][0]["state"], "exact");

        let ok = app.clone().oneshot(Request::get("/healthz").body(Body::empty()).expect("request")).await.expect("response");
        assert_eq!(ok.status(), StatusCode::OK);
        status.set_errors(vec!["cluster b: unreachable".into()]);
        let bad = app.oneshot(Request::get("/healthz").body(Body::empty()).expect("request")).await.expect("response");
        assert_eq!(bad.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
