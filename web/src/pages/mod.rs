//! The dashboard's HTML pages, one module per page, handlers named `<page>_<method>`. Every
//! page renders completely on the server and works without JavaScript. Each page template has
//! a `live` block; htmx re-fetches the page every few seconds with `HX-Request: true`, gets only
//! that block ([`respond`]) and swaps it in.

pub mod drills;
pub mod flows;
pub mod groups;
pub mod login;
pub mod topics;
pub mod topology;

use askama::Template;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

use crate::error::WebError;
use crate::state::AppState;

/// What every page's frame needs: navigation, the session, the page's own address.
pub struct Chrome {
    pub section: &'static str,
    pub path: String,
    pub auth_enabled: bool,
    pub logged_in: bool,
    pub csrf: String,
    pub updated: String,
    /// When the running configuration was loaded (UTC), empty when not known.
    pub config_loaded: String,
    pub config_summary: String,
    /// Why the newest version of the configuration file was refused.
    pub config_error: Option<String>,
}

impl Chrome {
    pub(crate) fn new(state: &AppState, headers: &HeaderMap, uri: &Uri, section: &'static str) -> Chrome {
        let csrf = state.0.auth.csrf_for(headers);
        let config = state.config_info();
        Chrome {
            config_loaded: if config.loaded_at_ms > 0 { tern_mirror::drill::format_utc(config.loaded_at_ms) } else { String::new() },
            config_summary: config.summary,
            config_error: config.error,
            section,
            path: uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into()),
            auth_enabled: state.0.auth.enabled(),
            logged_in: csrf.is_some(),
            csrf: csrf.unwrap_or_default(),
            updated: tern_mirror::drill::format_utc(crate::metrics::now_ms()),
        }
    }
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

/// Whether htmx asked (for the live part only).
pub(crate) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v.as_bytes() == b"true")
}

/// The whole page, or only its `live` block when htmx asks.
macro_rules! respond {
    ($headers:expr, $page:expr) => {{
        let page = $page;
        if $crate::pages::is_htmx(&$headers) {
            $crate::pages::render(page.as_live())
        } else {
            $crate::pages::render(page)
        }
    }};
}
pub(crate) use respond;

/// The dashboard's error page for `error`, with its status.
pub fn error_page(state: &AppState, headers: &HeaderMap, uri: &Uri, error: WebError) -> Response {
    let status = error.status();
    let page = MessagePage { chrome: Chrome::new(state, headers, uri, ""), status: status.as_u16(), title: error.title().to_string(), message: error.message() };
    let mut resp = render(page);
    *resp.status_mut() = status;
    resp
}
