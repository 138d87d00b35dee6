//! tern-web: Tern's HTTP side, served by `tern run` and `tern demo`.
//!
//! - The dashboard ([`pages`]): topology, flows, topics and consumer groups, server-rendered
//!   with askama; htmx refreshes the live parts. Works without JavaScript.
//! - Drills ([`drills`]): start one, watch it, read its report and the history.
//! - The REST API ([`api`]) under `/api/v1/`: the same data as JSON, plus pause, resume and
//!   drills, described by OpenAPI at `/api/v1/openapi.json`.
//! - `/metrics` (Prometheus text, [`metrics`]), `/livez` (the process serves) and `/readyz`
//!   (every flow runs without errors; `/healthz` is the same).
//! - Changes need the operator token ([`auth`]); reading does not.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let state = tern_web::AppState::new(Default::default(), Default::default(), None);
//! state.spawn_pollers();
//! axum::serve(listener, tern_web::router(state)).await
//! # }
//! ```

pub mod api;
pub mod auth;
pub mod drills;
pub mod error;
pub mod history;
pub mod metrics;
pub mod pages;
pub mod state;
pub mod stored;
pub mod telemetry;
pub mod topology;
pub mod views;

pub use error::WebError;
pub use state::{AppState, Topology};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

/// The vendored htmx, served under its versioned name.
pub const HTMX_PATH: &str = "/static/htmx-2.0.11.min.js";
const HTMX: &str = include_str!("../static/htmx-2.0.11.min.js");
const CSS: &str = include_str!("../static/tern.css");

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::topology::topology_get))
        .route("/flows", get(pages::flows::flows_get))
        .route("/flows/{name}", get(pages::flows::flow_get))
        .route("/flows/{name}/{action}", post(pages::flows::flow_control_post))
        .route("/topics", get(pages::topics::topics_get))
        .route("/groups", get(pages::groups::groups_get))
        .route("/drills", get(pages::drills::drills_get).post(pages::drills::drills_post))
        .route("/drills/runs/{run}", get(pages::drills::drill_run_get))
        .route("/drills/{id}", get(pages::drills::drill_get))
        .route("/login", get(pages::login::login_get).post(pages::login::login_post))
        .route("/logout", post(pages::login::logout_post))
        .route("/api/v1/openapi.json", get(api::openapi_get))
        .route("/api/v1/topology", get(api::topology_get))
        .route("/api/v1/clusters", get(api::clusters_get))
        .route("/api/v1/flows", get(api::flows_get))
        .route("/api/v1/flows/{name}", get(api::flow_get))
        .route("/api/v1/flows/{name}/history", get(api::flow_history_get))
        .route("/api/v1/flows/{name}/{action}", post(api::flow_control_post))
        .route("/api/v1/topics", get(api::topics_get))
        .route("/api/v1/groups", get(api::groups_get))
        .route("/api/v1/drills", get(api::drills_get).post(api::drills_post))
        .route("/api/v1/drills/runs/{run}", get(api::drill_run_get))
        .route("/api/v1/drills/{id}", get(api::drill_get))
        .route("/metrics", get(metrics_get))
        .route("/livez", get(livez_get))
        .route("/readyz", get(readyz_get))
        .route("/healthz", get(readyz_get))
        .route(HTMX_PATH, get(|| async { static_file("text/javascript; charset=utf-8", HTMX) }))
        .route("/static/tern.css", get(|| async { static_file("text/css; charset=utf-8", CSS) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(security_headers))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO)))
        .with_state(state)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// No framing (the buttons cannot be clickjacked), no sniffing, scripts and styles only from
/// this origin.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    resp
}

/// Unknown paths: an HTML page for people, JSON for API clients.
async fn not_found(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return WebError::NotFound(format!("no endpoint at {}", uri.path())).into_response();
    }
    pages::error_page(&state, &headers, &uri, WebError::NotFound(format!("There is no page at {}.", uri.path())))
}

/// A known path asked with another method (axum adds the `Allow` header).
async fn method_not_allowed(State(state): State<AppState>, headers: HeaderMap, method: Method, uri: Uri) -> Response {
    let error = WebError::MethodNotAllowed(format!("{} does not answer {method}", uri.path()));
    if uri.path().starts_with("/api/") {
        return error.into_response();
    }
    pages::error_page(&state, &headers, &uri, error)
}

async fn metrics_get(State(state): State<AppState>) -> Response {
    let families = state.0.registry.gather();
    match prometheus::TextEncoder::new().encode_to_string(&families) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}")).into_response(),
    }
}

/// Liveness: 200 while the process serves. Restart a worker only when this fails: a remote
/// cluster's outage is not cured by a restart.
async fn livez_get() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Readiness: 200 while every flow runs without flow-level errors, 503 with the reasons
/// otherwise (a flow that stopped, a cluster unreachable, a flow that has not read its
/// decisions yet). `/healthz` answers the same.
async fn readyz_get(State(state): State<AppState>) -> Response {
    let problems: Vec<String> = state
        .statuses()
        .iter()
        .flat_map(|(name, s)| {
            let snap = s.snapshot();
            let stopped = snap.stopped.as_ref().map(|r| format!("{name}: stopped: {r}"));
            let events: Vec<String> = snap.recent_source_events(tern_mirror::clock::now_ms()).map(|e| format!("{name}: {}", e.describe())).collect();
            let control = snap.control_error.iter().map(|e| format!("{name}: {e}"));
            // A worker that has not read the flow's decisions replicates nothing yet.
            let unread = (snap.stopped.is_none() && snap.errors.is_empty() && snap.control_error.is_none() && !snap.control_read)
                .then(|| format!("{name}: starting: the flow's decisions are not read yet"));
            stopped.into_iter().chain(snap.errors.iter().map(|e| format!("{name}: {e}"))).chain(events).chain(control).chain(unread).collect::<Vec<_>>()
        })
        .map(|line| state.redact(&line))
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
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use tern_mirror::status::FlowStatus;
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
                sync: tern_mirror::states::SyncState::Synced,
                sync_reason: None,
                lag_records: 0,
                lag_seconds: Some(0.0),
            },
        );
        status.set_groups(groups);
        let mut flows = BTreeMap::new();
        flows.insert("a->b".to_string(), status.clone());
        let validated = tern_mirror::config::parse("[clusters.a]\nbootstrap = \"127.0.0.1:1\"\n[clusters.b]\nbootstrap = \"127.0.0.1:1\"\n[[flows]]\nsource = \"a\"\ntarget = \"b\"\ntopics = [\"orders\"]\n").expect("config");
        let app = router(AppState::new(Topology::from_validated(&validated), flows, None));
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

        let starting = app.clone().oneshot(Request::get("/healthz").body(Body::empty()).expect("request")).await.expect("response");
        assert_eq!(starting.status(), StatusCode::SERVICE_UNAVAILABLE, "not ready before the flow's decisions are read");
        status.set_control(tern_mirror::control::Control::default());
        let ok = app.clone().oneshot(Request::get("/healthz").body(Body::empty()).expect("request")).await.expect("response");
        assert_eq!(ok.status(), StatusCode::OK);
        status.set_errors(vec!["cluster b: unreachable".into()]);
        let bad = app.oneshot(Request::get("/healthz").body(Body::empty()).expect("request")).await.expect("response");
        assert_eq!(bad.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
