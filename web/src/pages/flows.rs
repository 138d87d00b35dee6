//! `/flows` and `/flows/{source}->{target}`: every flow, one flow's partitions and groups, and
//! its Pause and Resume buttons.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{error_page, respond, Chrome};
use crate::error::WebError;
use crate::state::AppState;
use crate::topology::encode_segment;
use crate::stored::Resolution;
use crate::views::FlowView;

#[derive(Template)]
#[template(path = "flows.html", blocks = ["live"])]
struct FlowsPage {
    chrome: Chrome,
    flows: Vec<FlowView>,
}

#[derive(Template)]
#[template(path = "flow.html", blocks = ["live"])]
struct FlowPage {
    chrome: Chrome,
    flow: FlowView,
    /// Lag over the last 24 hours and the last hour, from the stored history.
    day_chart: String,
    hour_chart: String,
}

pub async fn flows_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    respond!(headers, FlowsPage { chrome: Chrome::new(&state, &headers, &uri, "flows"), flows: state.flow_views() })
}

pub async fn flow_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri, Path(name): Path<String>) -> Response {
    match state.flow_view(&name) {
        Some(flow) => {
            let (day, hour) = {
                let stored = state.0.stored.lock().unwrap_or_else(|p| p.into_inner());
                (stored.points(&name, Resolution::Coarse), stored.points(&name, Resolution::Fine))
            };
            let now = crate::metrics::now_ms();
            let day_chart = crate::stored::chart("history-24h", &day, now, 24 * 3_600_000);
            let hour_chart = crate::stored::chart("history-1h", &hour, now, 3_600_000);
            respond!(headers, FlowPage { chrome: Chrome::new(&state, &headers, &uri, "flows"), flow, day_chart, hour_chart })
        }
        None => error_page(&state, &headers, &uri, WebError::NotFound(format!("There is no flow named {name:?}. Flows are named source->target."))),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

/// The Pause and Resume buttons: a session plus its CSRF token.
pub async fn flow_control_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path((name, action)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let csrf = form.ok().and_then(|Form(f)| f.csrf);
    if let Err(refusal) = state.0.auth.check_form(&headers, csrf.as_deref()) {
        tracing::warn!(flow = %name, action = %action, "refused a dashboard change: {}", refusal.message());
        return error_page(&state, &headers, &uri, refusal.into());
    }
    match crate::api::apply_control(&state, &name, &action, "dashboard").await {
        Ok(_) => Redirect::to(&format!("/flows/{}", encode_segment(&name))).into_response(),
        Err(e) => error_page(&state, &headers, &uri, e),
    }
}
