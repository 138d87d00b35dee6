//! Disaster-recovery drills from the dashboard and the API: start one (operator token), watch
//! its progress, read its report and the history of past drills with their numbers over time.
//! The drill itself is `tern_mirror::drill`, exactly what `tern drill` runs.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, Json, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tern_mirror::drill::{self, DrillOptions, DrillProgress, DrillReport, DrillSummary};

use crate::api::error;
use crate::auth::Refusal;
use crate::pages::{message, render, Chrome};
use crate::state::AppState;

/// A drill started from the web, as it progresses.
#[derive(Debug, Clone, Serialize)]
pub struct DrillRun {
    pub run: String,
    pub flow: String,
    pub started_at_ms: i64,
    pub events: Vec<DrillProgress>,
    /// Set when the drill finished with a report.
    pub report_id: Option<String>,
    pub verdict: Option<String>,
    /// Set when the drill could not run at all.
    pub error: Option<String>,
    pub done: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StartDrill {
    flow: String,
    /// Anchored regex of the groups to check; all of the flow's groups when empty.
    #[serde(default)]
    groups: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
}

fn history(state: &AppState) -> Result<Vec<DrillSummary>, String> {
    match &state.0.topology.state_dir {
        None => Ok(Vec::new()),
        Some(dir) => drill::history::list(&drill::history_dir(dir)).map_err(|e| e.to_string()),
    }
}

fn load(state: &AppState, id: &str) -> Result<DrillReport, (StatusCode, String)> {
    let dir = state.0.topology.state_dir.as_ref().ok_or((StatusCode::NOT_FOUND, "this Tern keeps no drill history (no state directory)".to_string()))?;
    drill::history::load(&drill::history_dir(dir), id).map_err(|e| (StatusCode::NOT_FOUND, format!("no drill {id:?} in the history: {e}")))
}

/// Starts a drill in the background; returns the run's id.
fn start(state: &AppState, req: &StartDrill) -> Result<String, (StatusCode, String)> {
    let flow = state.0.topology.flow(&req.flow).cloned().ok_or_else(|| (StatusCode::NOT_FOUND, format!("no flow named {:?}", req.flow)))?;
    let opts = match req.groups.as_deref().map(str::trim).filter(|g| !g.is_empty()) {
        Some(g) => DrillOptions::with_groups(g).map_err(|e| (StatusCode::BAD_REQUEST, format!("groups: {e}")))?,
        None => DrillOptions::default(),
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    {
        let mut runs = state.0.drills.lock().unwrap_or_else(|p| p.into_inner());
        if runs.values().any(|r| r.flow == req.flow && !r.done) {
            return Err((StatusCode::CONFLICT, format!("a drill of {} is already running", req.flow)));
        }
        runs.insert(
            run_id.clone(),
            DrillRun { run: run_id.clone(), flow: req.flow.clone(), started_at_ms: crate::metrics::now_ms(), events: vec![], report_id: None, verdict: None, error: None, done: false },
        );
    }
    let clusters: BTreeMap<String, tern_mirror::config::ClusterConfig> = state.0.topology.clusters.iter().map(|(n, c)| (n.clone(), c.config().clone())).collect();
    let (state, run) = (state.clone(), run_id.clone());
    tracing::info!(flow = %flow.name(), run = %run, "drill started from the web");
    tokio::spawn(async move {
        let events = state.clone();
        let progress_run = run.clone();
        let result = drill::run(&flow, &clusters, &opts, move |p| {
            if let Some(r) = events.0.drills.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&progress_run) {
                r.events.push(p);
            }
        })
        .await;
        let saved = match (&result, &state.0.topology.state_dir) {
            (Ok(report), Some(dir)) => drill::history::save(&drill::history_dir(dir), report).map(|_| ()).map_err(|e| e.to_string()),
            _ => Ok(()),
        };
        let mut runs = state.0.drills.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = runs.get_mut(&run) {
            match result {
                Ok(report) => {
                    tracing::info!(flow = %report.flow, id = %report.id, verdict = %report.verdict, rpo_records = report.rpo_records, "drill finished");
                    r.report_id = Some(report.id.clone());
                    r.verdict = Some(report.verdict.to_string());
                    r.error = saved.err().map(|e| format!("the report could not be kept: {e}"));
                }
                Err(e) => r.error = Some(e.to_string()),
            }
            r.done = true;
        }
        // Keep the last 50 runs.
        while runs.len() > 50 {
            let Some(oldest) = runs.values().filter(|r| r.done).min_by_key(|r| r.started_at_ms).map(|r| r.run.clone()) else { break };
            runs.remove(&oldest);
        }
    });
    Ok(run_id)
}

/// One progress event as a line of text.
pub fn describe(p: &DrillProgress) -> String {
    match p {
        DrillProgress::Started { id, flow } => format!("drill {id} of {flow} started"),
        DrillProgress::Connected { cluster, error: None } => format!("cluster {cluster} reachable"),
        DrillProgress::Connected { cluster, error: Some(e) } => format!("cluster {cluster} unreachable: {e}"),
        DrillProgress::Groups { groups } => format!("{} group(s) to check: {}", groups.len(), groups.join(", ")),
        DrillProgress::Checked { group, verdict } => format!("{group}: translation checked against the data: {verdict}"),
        DrillProgress::Applied { group, drill_group, apply_ms, read_through } => {
            format!("{group}: applied to {drill_group} and read through in {apply_ms} ms: {}", if *read_through { "ok" } else { "FAILED" })
        }
        DrillProgress::CleanedUp { deleted } => format!("{deleted} drill group(s) deleted from the target"),
        DrillProgress::Finished { verdict } => format!("finished: {verdict}"),
    }
}

/// A polyline of `values` scaled into a `w` x `h` box, oldest first.
fn chart(values: &[f64], w: f64, h: f64) -> String {
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let step = if values.len() > 1 { w / (values.len() - 1) as f64 } else { 0.0 };
    values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, h - 2.0 - v / max * (h - 4.0))).collect::<Vec<_>>().join(" ")
}

/// RPO and RTO of a flow's past drills, oldest first, for the history chart.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub flow: String,
    pub drills: usize,
    pub rpo_points: String,
    pub rto_points: String,
    pub max_rpo: i64,
    pub max_rto_ms: u64,
}

fn trends(history: &[DrillSummary]) -> Vec<Trend> {
    let mut by_flow: BTreeMap<&str, Vec<&DrillSummary>> = BTreeMap::new();
    for d in history {
        by_flow.entry(&d.flow).or_default().push(d);
    }
    by_flow
        .into_iter()
        .map(|(flow, mut ds)| {
            ds.sort_by_key(|d| d.started_at_ms);
            let rpo: Vec<f64> = ds.iter().map(|d| d.rpo_records as f64).collect();
            let rto: Vec<f64> = ds.iter().map(|d| d.rto_ms.unwrap_or(0) as f64).collect();
            Trend {
                flow: flow.to_string(),
                drills: ds.len(),
                rpo_points: chart(&rpo, 240.0, 40.0),
                rto_points: chart(&rto, 240.0, 40.0),
                max_rpo: ds.iter().map(|d| d.rpo_records).max().unwrap_or(0),
                max_rto_ms: ds.iter().filter_map(|d| d.rto_ms).max().unwrap_or(0),
            }
        })
        .collect()
}

/// `2026-11-25 05:45:12 UTC` from milliseconds since the epoch (templates pass a reference).
pub fn when(ms: &i64) -> String {
    drill::format_utc(*ms)
}

#[derive(Template)]
#[template(path = "drills.html")]
struct DrillsPage {
    chrome: Chrome,
    flows: Vec<String>,
    running: Vec<DrillRun>,
    history: Vec<DrillSummary>,
    history_error: Option<String>,
    keeps_history: bool,
    trends: Vec<Trend>,
}

#[derive(Template)]
#[template(path = "drill_run.html")]
struct RunPage {
    chrome: Chrome,
    run: DrillRun,
    lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "drill.html")]
struct ReportPage {
    chrome: Chrome,
    report: DrillReport,
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let (history, history_error) = match history(&state) {
        Ok(h) => (h, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut running: Vec<DrillRun> = state.0.drills.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    running.sort_by_key(|r| std::cmp::Reverse(r.started_at_ms));
    render(DrillsPage {
        chrome: Chrome::new(&state, &headers, &uri, "drills"),
        flows: state.0.topology.flows.iter().map(|f| f.name()).collect(),
        running,
        trends: trends(&history),
        history,
        history_error,
        keeps_history: state.0.topology.state_dir.is_some(),
    })
}

/// The Start button: a session plus its CSRF token.
pub async fn start_form(State(state): State<AppState>, headers: HeaderMap, uri: Uri, form: Result<Form<StartDrill>, FormRejection>) -> Response {
    let Ok(Form(req)) = form else {
        return message(&state, &headers, &uri, StatusCode::BAD_REQUEST, "Bad request", "A drill needs a flow.".into());
    };
    if let Err(refusal) = state.0.auth.check_form(&headers, req.csrf.as_deref()) {
        tracing::warn!(flow = %req.flow, "refused a drill from the dashboard: {}", refusal.message());
        let status = if refusal == Refusal::Unauthenticated { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
        return message(&state, &headers, &uri, status, "Refused", refusal.message().to_string());
    }
    match start(&state, &req) {
        Ok(run) => Redirect::to(&format!("/drills/runs/{run}")).into_response(),
        Err((status, msg)) => message(&state, &headers, &uri, status, "The drill did not start", msg),
    }
}

pub async fn run_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri, Path(run): Path<String>) -> Response {
    let found = state.0.drills.lock().unwrap_or_else(|p| p.into_inner()).get(&run).cloned();
    match found {
        Some(run) => {
            let lines = run.events.iter().map(describe).collect();
            render(RunPage { chrome: Chrome::new(&state, &headers, &uri, "drills"), run, lines })
        }
        None => message(&state, &headers, &uri, StatusCode::NOT_FOUND, "No such drill run", format!("No drill run {run:?} is known to this Tern (runs are kept in memory until it restarts).")),
    }
}

pub async fn report_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Response {
    match load(&state, &id) {
        Ok(report) => render(ReportPage { chrome: Chrome::new(&state, &headers, &uri, "drills"), report }),
        Err((status, msg)) => message(&state, &headers, &uri, status, "No such drill", msg),
    }
}

pub async fn api_list(State(state): State<AppState>) -> Response {
    match history(&state) {
        Ok(h) => Json(json!({ "drills": h })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

pub async fn api_report(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match load(&state, &id) {
        Ok(r) => Json(r).into_response(),
        Err((status, msg)) => error(status, msg),
    }
}

/// `POST /api/v1/drills` with `{"flow": "a->b", "groups": "billing.*"}` and the bearer token.
pub async fn api_start(State(state): State<AppState>, headers: HeaderMap, body: Result<Json<StartDrill>, JsonRejection>) -> Response {
    if let Err(refusal) = state.0.auth.check_bearer(&headers) {
        let status = if refusal == Refusal::ReadOnly { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
        return error(status, refusal.message());
    }
    let Ok(Json(req)) = body else {
        return error(StatusCode::BAD_REQUEST, "send JSON: {\"flow\": \"source->target\", \"groups\": \"optional regex\"}");
    };
    match start(&state, &req) {
        Ok(run) => (StatusCode::ACCEPTED, Json(json!({ "run": run, "status": format!("/api/v1/drills/runs/{run}") }))).into_response(),
        Err((status, msg)) => error(status, msg),
    }
}

pub async fn api_run(State(state): State<AppState>, Path(run): Path<String>) -> Response {
    match state.0.drills.lock().unwrap_or_else(|p| p.into_inner()).get(&run) {
        Some(r) => Json(r.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no drill run {run:?}")),
    }
}

pub(crate) type Runs = std::sync::Mutex<BTreeMap<String, DrillRun>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_charts() {
        assert_eq!(when(&0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(&1_795_585_522_267), "2026-11-25 05:45:22 UTC");
        assert_eq!(chart(&[0.0, 10.0], 100.0, 40.0), "0.0,38.0 100.0,2.0");
        assert_eq!(chart(&[5.0], 100.0, 40.0), "0.0,2.0");
    }
}
