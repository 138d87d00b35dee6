//! One error type for every handler. API handlers return it as JSON (`{"error": "..."}`);
//! pages show the same status and message on the dashboard's error page
//! ([`crate::pages::error_page`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::Refusal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    /// No such page, flow, drill or endpoint.
    NotFound(String),
    /// A known path asked with a method it does not answer.
    MethodNotAllowed(String),
    /// A parameter or form field that cannot be used.
    BadRequest(String),
    /// A change without the token, with a wrong one, or with a forged form.
    Refused(Refusal),
    /// The request clashes with something already going on.
    Conflict(String),
    /// A cluster did not answer; nothing was changed.
    Unavailable(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Refused(Refusal::Unauthenticated) => StatusCode::UNAUTHORIZED,
            WebError::Refused(Refusal::ReadOnly | Refusal::BadCsrf) => StatusCode::FORBIDDEN,
            WebError::Refused(Refusal::TooManyAttempts) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A heading for the error page.
    pub fn title(&self) -> &'static str {
        match self {
            WebError::NotFound(_) => "Not Found",
            WebError::MethodNotAllowed(_) => "Method Not Allowed",
            WebError::BadRequest(_) => "Bad Request",
            WebError::Refused(_) => "Refused",
            WebError::Conflict(_) => "Already running",
            WebError::Unavailable(_) => "Cluster unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            WebError::NotFound(m) | WebError::MethodNotAllowed(m) | WebError::BadRequest(m) | WebError::Conflict(m) | WebError::Unavailable(m) => m.clone(),
            WebError::Refused(r) => r.message().to_string(),
        }
    }
}

impl From<Refusal> for WebError {
    fn from(r: Refusal) -> Self {
        WebError::Refused(r)
    }
}

/// A path segment that is not UTF-8 once percent-decoded, and the like.
impl From<axum::extract::rejection::PathRejection> for WebError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        WebError::BadRequest(r.body_text())
    }
}

/// A query string that does not decode.
impl From<axum::extract::rejection::QueryRejection> for WebError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        WebError::BadRequest(r.body_text())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), axum::Json(serde_json::json!({ "error": self.message() }))).into_response();
        if matches!(self, WebError::Refused(Refusal::TooManyAttempts)) {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(crate::auth::GUESS_WINDOW.as_secs()));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_http_statuses() {
        assert_eq!(WebError::Refused(Refusal::Unauthenticated).status(), StatusCode::UNAUTHORIZED);
        assert_eq!(WebError::Refused(Refusal::BadCsrf).status(), StatusCode::FORBIDDEN);
        assert_eq!(WebError::Refused(Refusal::ReadOnly).status(), StatusCode::FORBIDDEN);
        assert_eq!(WebError::Unavailable("x".into()).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(WebError::MethodNotAllowed("x".into()).status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
