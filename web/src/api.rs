//! The REST API under `/api/v1/`: JSON for everything the pages show, plus pause, resume and
//! drills. Handlers are named `<resource>_<method>`; errors are [`WebError`]s, answered as
//! `{"error": "..."}` with a 4xx or 5xx status.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::drills::StartDrill;
use crate::error::WebError;
use crate::state::AppState;

type ApiResult = Result<Response, WebError>;

fn no_such_flow(name: &str) -> WebError {
    WebError::NotFound(format!("no flow named {name:?}; flows are named source->target"))
}

/// The bearer token of a changing request.
fn authorize(state: &AppState, headers: &HeaderMap, what: &str) -> Result<(), WebError> {
    state.0.auth.check_bearer(headers).map_err(|refusal| {
        tracing::warn!("refused an API change ({what}): {}", refusal.message());
        WebError::from(refusal)
    })
}

pub async fn topology_get(State(state): State<AppState>) -> Response {
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
    Json(json!({ "clusters": clusters, "flows": edges, "config": state.config_info() })).into_response()
}

pub async fn flows_get(State(state): State<AppState>) -> Response {
    Json(json!({ "flows": state.flow_views() })).into_response()
}

pub async fn flow_get(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let flow = state.flow_view(&name).ok_or_else(|| no_such_flow(&name))?;
    Ok(Json(flow).into_response())
}

/// `?minutes=N` (1 to 60, default 60): the flow's and its partitions' lag samples.
pub async fn flow_history_get(State(state): State<AppState>, Path(name): Path<String>, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let minutes = match q.get("minutes").map(|m| m.parse::<i64>()) {
        None => 60,
        Some(Ok(m)) if (1..=60).contains(&m) => m,
        Some(_) => return Err(WebError::BadRequest("minutes must be a whole number from 1 to 60".into())),
    };
    if let Some(unknown) = q.keys().find(|k| k.as_str() != "minutes") {
        return Err(WebError::BadRequest(format!("unknown parameter {unknown:?}; the only one is minutes")));
    }
    if state.topology().flow(&name).is_none() {
        return Err(no_such_flow(&name));
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
    drop(history);
    let stored = state.0.stored.lock().unwrap_or_else(|p| p.into_inner());
    let kept = json!({
        "fine": stored.points(&name, crate::stored::Resolution::Fine),
        "coarse": stored.points(&name, crate::stored::Resolution::Coarse),
    });
    Ok(Json(json!({ "flow": name, "minutes": minutes, "samples": flow, "partitions": partitions, "stored": kept })).into_response())
}

pub async fn topics_get(State(state): State<AppState>) -> Response {
    Json(json!({ "topics": state.topic_views() })).into_response()
}

pub async fn groups_get(State(state): State<AppState>) -> Response {
    let groups: Vec<_> = state.flow_views().into_iter().flat_map(|f| f.groups).collect();
    Json(json!({ "groups": groups })).into_response()
}

/// `POST /api/v1/flows/{flow}/pause` and `.../resume`, with `Authorization: Bearer <token>`.
pub async fn flow_control_post(State(state): State<AppState>, headers: HeaderMap, Path((name, action)): Path<(String, String)>) -> ApiResult {
    authorize(&state, &headers, &format!("{action} {name}"))?;
    let control = apply_control(&state, &name, &action, "api").await?;
    Ok(Json(json!({ "flow": name, "control": control })).into_response())
}

/// Pauses or resumes a flow for all its workers by writing the decision to the flow's target
/// cluster (see `tern_mirror::control`).
pub async fn apply_control(state: &AppState, name: &str, action: &str, via: &str) -> Result<tern_mirror::control::Control, WebError> {
    let paused = match action {
        "pause" => true,
        "resume" => false,
        other => return Err(WebError::NotFound(format!("unknown action {other:?}; use pause or resume"))),
    };
    let topology = state.topology();
    let flow = topology.flow(name).ok_or_else(|| no_such_flow(name))?;
    let target = flow.target.clone();
    let client = state.client(&target).await.map_err(|e| WebError::Unavailable(format!("{e}; the flow was not changed")))?;
    let reason = format!("{via}: {action}");
    let written = tokio::time::timeout(Duration::from_secs(15), tern_mirror::control::update(&client, &target, name, &reason, |c| c.paused = paused))
        .await
        .map_err(|_| WebError::Unavailable(format!("cluster {target} did not answer within 15 s; the flow was not changed")))?
        .map_err(|e| WebError::Unavailable(format!("{e}; the flow was not changed")))?;
    tracing::info!(flow = %name, paused, via, "flow {}", if paused { "paused" } else { "resumed" });
    // This worker follows at once; the others within a second.
    if let Some(status) = state.status(name) {
        status.set_control(written.clone());
    }
    Ok(written)
}

/// The drill history, newest first.
pub async fn drills_get(State(state): State<AppState>) -> Response {
    match crate::drills::history(&state) {
        Ok(h) => Json(json!({ "drills": h })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e }))).into_response(),
    }
}

/// One drill report (the schema is in the README).
pub async fn drill_get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    Ok(Json(crate::drills::load(&state, &id)?).into_response())
}

/// `POST /api/v1/drills` with `{"flow": "a->b", "groups": "billing.*"}` and the bearer token:
/// 202 with where to follow the run.
pub async fn drills_post(State(state): State<AppState>, headers: HeaderMap, body: Result<Json<StartDrill>, JsonRejection>) -> ApiResult {
    authorize(&state, &headers, "start a drill")?;
    let Ok(Json(req)) = body else {
        return Err(WebError::BadRequest("send JSON: {\"flow\": \"source->target\", \"groups\": \"optional regex\"}".into()));
    };
    let run = crate::drills::start(&state, &req)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "run": run, "status": format!("/api/v1/drills/runs/{run}") }))).into_response())
}

/// A drill started from the web: its progress events, and its report id once done.
pub async fn drill_run_get(State(state): State<AppState>, Path(run): Path<String>) -> ApiResult {
    let found = state.0.drills.lock().unwrap_or_else(|p| p.into_inner()).get(&run).cloned();
    Ok(Json(found.ok_or_else(|| WebError::NotFound(format!("no drill run {run:?}")))?).into_response())
}
