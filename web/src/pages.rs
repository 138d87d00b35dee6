//! The dashboard's HTML pages. Every page renders completely on the server and works without
//! JavaScript; htmx only re-fetches the page's `#live` part every few seconds and swaps it in.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::{self, Refusal};
use crate::state::AppState;
use crate::topology::{self, Graph};
use crate::views::{ClusterView, FlowView, GroupView, TopicView};

/// What every page's frame needs: navigation, the session, the page's own address.
pub struct Chrome {
    pub section: &'static str,
    pub path: String,
    pub auth_enabled: bool,
    pub logged_in: bool,
    pub csrf: String,
    pub updated: String,
}

impl Chrome {
    pub(crate) fn new(state: &AppState, headers: &HeaderMap, uri: &Uri, section: &'static str) -> Chrome {
        let csrf = state.0.auth.csrf_for(headers);
        let secs = crate::metrics::now_ms() / 1000;
        Chrome {
            section,
            path: uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into()),
            auth_enabled: state.0.auth.enabled(),
            logged_in: csrf.is_some(),
            csrf: csrf.unwrap_or_default(),
            updated: format!("{:02}:{:02}:{:02} UTC", (secs / 3600) % 24, (secs / 60) % 60, secs % 60),
        }
    }
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    chrome: Chrome,
    graph: Graph,
    clusters: Vec<ClusterView>,
    flows: Vec<FlowView>,
    legend: [&'static str; 5],
}

#[derive(Template)]
#[template(path = "flows.html")]
struct FlowsPage {
    chrome: Chrome,
    flows: Vec<FlowView>,
}

#[derive(Template)]
#[template(path = "flow.html")]
struct FlowPage {
    chrome: Chrome,
    flow: FlowView,
}

#[derive(Template)]
#[template(path = "topics.html")]
struct TopicsPage {
    chrome: Chrome,
    topics: Vec<TopicView>,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    chrome: Chrome,
    groups: Vec<GroupView>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    chrome: Chrome,
    status: u16,
    title: String,
    message: String,
}

pub(crate) fn render(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("rendering a page: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered; see the log").into_response()
        }
    }
}

/// An HTML error page with the given status.
pub fn message(state: &AppState, headers: &HeaderMap, uri: &Uri, status: StatusCode, title: &str, message: String) -> Response {
    let page = MessagePage { chrome: Chrome::new(state, headers, uri, ""), status: status.as_u16(), title: title.to_string(), message };
    let mut resp = render(page);
    *resp.status_mut() = status;
    resp
}

pub async fn index(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let clusters = state.cluster_views();
    let flows = state.flow_views();
    let graph = topology::layout(&clusters, &flows);
    render(IndexPage { chrome: Chrome::new(&state, &headers, &uri, "topology"), graph, clusters, flows, legend: ["ok", "lagging", "paused", "failed-over", "error"] })
}

pub async fn flows(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    render(FlowsPage { chrome: Chrome::new(&state, &headers, &uri, "flows"), flows: state.flow_views() })
}

pub async fn flow(State(state): State<AppState>, headers: HeaderMap, uri: Uri, Path(name): Path<String>) -> Response {
    match state.flow_view(&name) {
        Some(flow) => render(FlowPage { chrome: Chrome::new(&state, &headers, &uri, "flows"), flow }),
        None => message(&state, &headers, &uri, StatusCode::NOT_FOUND, "No such flow", format!("There is no flow named {name:?}. Flows are named source->target.")),
    }
}

pub async fn topics(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    render(TopicsPage { chrome: Chrome::new(&state, &headers, &uri, "topics"), topics: state.topic_views() })
}

pub async fn groups(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let groups = state.flow_views().into_iter().flat_map(|f| f.groups).collect();
    render(GroupsPage { chrome: Chrome::new(&state, &headers, &uri, "groups"), groups })
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only local paths: a login must never redirect to another site. Browsers drop tabs and
/// newlines and read `\\` as `/`, so anything but visible ASCII is refused too.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn login_redirects_stay_on_this_site() {
        assert_eq!(safe_next(Some("/flows/a-%3Eb")), "/flows/a-%3Eb");
        for evil in ["//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example", "https://evil.example", "evil", "/ /x"] {
            assert_eq!(safe_next(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

pub async fn login_form(State(state): State<AppState>, headers: HeaderMap, uri: Uri, Query(q): Query<NextQuery>) -> Response {
    render(LoginPage { chrome: Chrome::new(&state, &headers, &uri, ""), next: safe_next(q.next.as_deref()), error: None })
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap, uri: Uri, form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>) -> Response {
    let Ok(Form(form)) = form else {
        return message(&state, &headers, &uri, StatusCode::BAD_REQUEST, "Bad request", "The login form needs a token field.".into());
    };
    let next = safe_next(form.next.as_deref());
    match state.0.auth.login(&form.token) {
        Ok(id) => {
            tracing::info!("operator logged in to the dashboard");
            ([(header::SET_COOKIE, auth::session_cookie(&id))], Redirect::to(&next)).into_response()
        }
        Err(refusal) => {
            tracing::warn!("dashboard login refused");
            // Slows down guessing; the token's length is what really protects it.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let status = if refusal == Refusal::ReadOnly { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
            let error = if refusal == Refusal::Unauthenticated { "That token is not right.".to_string() } else { refusal.message().to_string() };
            let mut resp = render(LoginPage { chrome: Chrome::new(&state, &headers, &uri, ""), next, error: Some(error) });
            *resp.status_mut() = status;
            resp
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap, form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>) -> Response {
    let csrf = form.ok().and_then(|Form(f)| f.csrf);
    // Logging out is harmless, but a forged request must not end a session either.
    if state.0.auth.check_form(&headers, csrf.as_deref()).is_ok() {
        state.0.auth.logout(&headers);
    }
    ([(header::SET_COOKIE, auth::clear_cookie())], Redirect::to("/")).into_response()
}

/// The pause and resume buttons: a session plus its CSRF token.
pub async fn flow_control(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path((name, action)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.ok().and_then(|Form(f)| f.csrf);
    if let Err(refusal) = state.0.auth.check_form(&headers, csrf.as_deref()) {
        tracing::warn!(flow = %name, action = %action, "refused a dashboard change: {}", refusal.message());
        let status = if refusal == Refusal::Unauthenticated { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN };
        return message(&state, &headers, &uri, status, "Refused", refusal.message().to_string());
    }
    match crate::api::apply_control(&state, &name, &action, "dashboard").await {
        Ok(_) => Redirect::to(&format!("/flows/{}", topology::encode_segment(&name))).into_response(),
        Err((status, msg)) => message(&state, &headers, &uri, status, "Could not change the flow", msg),
    }
}
