//! `/login` and `/logout`: the operator token for a session cookie, and back.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::flows::CsrfForm;
use super::{error_page, render, Chrome};
use crate::auth::{self, Refusal};
use crate::error::WebError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    error: Option<String>,
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

pub async fn login_get(State(state): State<AppState>, headers: HeaderMap, uri: Uri, Query(q): Query<NextQuery>) -> Response {
    render(LoginPage { chrome: Chrome::new(&state, &headers, &uri, ""), next: safe_next(q.next.as_deref()), error: None })
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn login_post(State(state): State<AppState>, headers: HeaderMap, uri: Uri, form: Result<Form<LoginForm>, FormRejection>) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(&state, &headers, &uri, WebError::BadRequest("The login form needs a token field.".into()));
    };
    let next = safe_next(form.next.as_deref());
    match state.0.auth.login(&form.token) {
        Ok(id) => {
            tracing::info!("operator logged in to the dashboard");
            ([(header::SET_COOKIE, auth::session_cookie(&id, state.0.auth.secure_for(&headers)))], Redirect::to(&next)).into_response()
        }
        Err(refusal) => {
            tracing::warn!("dashboard login refused");
            // Slows down guessing; the token's length is what really protects it.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let status = WebError::from(refusal).status();
            let error = if refusal == Refusal::Unauthenticated { "That token is not right.".to_string() } else { refusal.message().to_string() };
            let mut resp = render(LoginPage { chrome: Chrome::new(&state, &headers, &uri, ""), next, error: Some(error) });
            *resp.status_mut() = status;
            resp
        }
    }
}

pub async fn logout_post(State(state): State<AppState>, headers: HeaderMap, form: Result<Form<CsrfForm>, FormRejection>) -> Response {
    let csrf = form.ok().and_then(|Form(f)| f.csrf);
    // Logging out is harmless, but a forged request must not end a session either.
    if state.0.auth.check_form(&headers, csrf.as_deref()).is_ok() {
        state.0.auth.logout(&headers);
    }
    ([(header::SET_COOKIE, auth::clear_cookie())], Redirect::to("/")).into_response()
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

