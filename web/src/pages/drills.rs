//! `/drills`: start a drill (operator token), follow its progress, read its report and the
//! RPO and RTO of past drills over time.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use tern_mirror::drill::{DrillReport, DrillSummary};

use super::{error_page, render, respond, Chrome};
use crate::drills::{DrillRun, StartDrill, Trend};
use crate::error::WebError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "drills.html", blocks = ["live"])]
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
#[template(path = "drill_run.html", blocks = ["live"])]
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

pub async fn drills_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let (history, history_error) = match crate::drills::history(&state) {
        Ok(h) => (h, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut running: Vec<DrillRun> = state.0.drills.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    running.sort_by_key(|r| std::cmp::Reverse(r.started_at_ms));
    respond!(headers, DrillsPage {
        chrome: Chrome::new(&state, &headers, &uri, "drills"),
        flows: state.topology().flows.iter().map(|f| f.name()).collect(),
        running,
        trends: crate::drills::trends(&history),
        history,
        history_error,
        keeps_history: state.topology().state_dir.is_some(),
    })
}

/// The Start button: a session plus its CSRF token.
pub async fn drills_post(State(state): State<AppState>, headers: HeaderMap, uri: Uri, form: Result<Form<StartDrill>, FormRejection>) -> Response {
    let Ok(Form(req)) = form else {
        return error_page(&state, &headers, &uri, WebError::BadRequest("A drill needs a flow.".into()));
    };
    if let Err(refusal) = state.0.auth.check_form(&headers, req.csrf.as_deref()) {
        tracing::warn!(flow = %req.flow, "refused a drill from the dashboard: {}", refusal.message());
        return error_page(&state, &headers, &uri, refusal.into());
    }
    match crate::drills::start(&state, &req) {
        Ok(run) => Redirect::to(&format!("/drills/runs/{run}")).into_response(),
        Err(e) => error_page(&state, &headers, &uri, e),
    }
}

pub async fn drill_run_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri, Path(run): Path<String>) -> Response {
    let found = state.0.drills.lock().unwrap_or_else(|p| p.into_inner()).get(&run).cloned();
    match found {
        Some(run) => {
            let lines = run.events.iter().map(crate::drills::describe).collect();
            respond!(headers, RunPage { chrome: Chrome::new(&state, &headers, &uri, "drills"), run, lines })
        }
        None => error_page(&state, &headers, &uri, WebError::NotFound(format!("No drill run {run:?} is known to this Tern (runs are kept in memory until it restarts)."))),
    }
}

pub async fn drill_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri, Path(id): Path<String>) -> Response {
    match crate::drills::load(&state, &id) {
        Ok(report) => render(ReportPage { chrome: Chrome::new(&state, &headers, &uri, "drills"), report }),
        Err(e) => error_page(&state, &headers, &uri, e),
    }
}

