//! The REST API under `/api/v1/`: JSON for everything the pages show, plus pause and resume.
//! Errors are JSON too: `{"error": "..."}` with a 4xx or 5xx status.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::Refusal;
use crate::state::AppState;

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn not_found_flow(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no flow named {name:?}; flows are named source->target"))
}

pub async fn topology(State(state): State<AppState>) -> Response {
    let clusters = state.cluster_views();
    let flows = state.flow_views();
    let edges: Vec<serde_json::Value> = flows
        .iter()
        .map(|f| {
            json!({
                "flow": f.name, "source": f.source, "target": f.target, "health": f.health,
                "records_per_second": f.outlook.records_per_second, "lag_seconds": f.lag_seconds,
                "lag_records": f.lag_records, "paused": f.paused, "failover_state": f.failover_state,
            })
        })
        .collect();
    Json(json!({ "clusters": clusters, "flows": edges })).into_response()
}

pub async fn flows(State(state): State<AppState>) -> Response {
    Json(json!({ "flows": state.flow_views() })).into_response()
}

pub async fn flow(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match state.flow_view(&name) {
        Some(f) => Json(f).into_response(),
        None => not_found_flow(&name),
    }
}

/// `?minutes=N` (1 to 60, default 60): the flow's and its partitions' lag samples.
pub async fn flow_history(State(state): State<AppState>, Path(name): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let minutes = match q.get("minutes").map(|m| m.parse::<i64>()) {
        None => 60,
        Some(Ok(m)) if (1..=60).contains(&m) => m,
        Some(_) => return error(StatusCode::BAD_REQUEST, "minutes must be a whole number from 1 to 60"),
    };
    if let Some(unknown) = q.keys().find(|k| k.as_str() != "minutes") {
        return error(StatusCode::BAD_REQUEST, format!("unknown parameter {unknown:?}; the only one is minutes"));
    }
    if state.0.topology.flow(&name).is_none() {
        return not_found_flow(&name);
    }
    let since = crate::metrics::now_ms() - minutes * 60_000;
    let history = state.0.history.lock().unwrap_or_else(|p| p.into_inner());
    let pick = |s: &crate::history::Series| s.samples().filter(|x| x.at_ms >= since).copied().collect::<Vec<_>>();
    let flow = history.flows.get(&name).map(pick).unwrap_or_default();
    let partitions: Vec<serde_json::Value> = history
        .partitions
        .iter()
        .filter(|((f, _, _), _)| *f == name)
        .map(|((_, topic, partition), s)| json!({ "topic": topic, "partition": partition, "samples": pick(s) }))
        .collect();
    Json(json!({ "flow": name, "minutes": minutes, "samples": flow, "partitions": partitions })).into_response()
}

pub async fn topics(State(state): State<AppState>) -> Response {
    Json(json!({ "topics": state.topic_views() })).into_response()
}

pub async fn groups(State(state): State<AppState>) -> Response {
    let groups: Vec<_> = state.flow_views().into_iter().flat_map(|f| f.groups).collect();
    Json(json!({ "groups": groups })).into_response()
}

/// `POST /api/v1/flows/{flow}/pause` and `.../resume`, with `Authorization: Bearer <token>`.
pub async fn flow_control(State(state): State<AppState>, headers: HeaderMap, Path((name, action)): Path<(String, String)>) -> Response {
    if let Err(refusal) = state.0.auth.check_bearer(&headers) {
        tracing::warn!(flow = %name, action = %action, "refused an API change: {}", refusal.message());
        let status = if refusal == Refusal::ReadOnly { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
        return error(status, refusal.message());
    }
    match apply_control(&state, &name, &action, "api").await {
        Ok(control) => Json(json!({ "flow": name, "control": control })).into_response(),
        Err((status, msg)) => error(status, msg),
    }
}

/// Pauses or resumes a flow for all its workers by writing the decision to the flow's target
/// cluster (see `tern_mirror::control`).
pub async fn apply_control(state: &AppState, name: &str, action: &str, via: &str) -> Result<tern_mirror::control::Control, (StatusCode, String)> {
    let paused = match action {
        "pause" => true,
        "resume" => false,
        other => return Err((StatusCode::NOT_FOUND, format!("unknown action {other:?}; use pause or resume"))),
    };
    let flow = state.0.topology.flow(name).ok_or_else(|| (StatusCode::NOT_FOUND, format!("no flow named {name:?}")))?;
    let target = flow.target.clone();
    let client = state.client(&target).await.map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, format!("{e}; the flow was not changed")))?;
    let reason = format!("{via}: {action}");
    let written = tokio::time::timeout(Duration::from_secs(15), tern_mirror::control::update(&client, &target, name, &reason, |c| c.paused = paused))
        .await
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, format!("cluster {target} did not answer within 15 s; the flow was not changed")))?
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, format!("{e}; the flow was not changed")))?;
    tracing::info!(flow = %name, paused, via, "flow {}", if paused { "paused" } else { "resumed" });
    // This worker follows at once; the others within a second.
    if let Some(status) = state.0.statuses.get(name) {
        status.set_control(written.clone());
    }
    Ok(written)
}
