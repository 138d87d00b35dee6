//! Who may change things. Reading is open (the service binds to 127.0.0.1 unless told
//! otherwise); pausing, resuming and later drills and failover need the operator token:
//!
//! - API clients send it as `Authorization: Bearer <token>`. Browsers never attach that header
//!   on their own, so these requests cannot be forged cross-site.
//! - Browsers log in once with the token and get a session cookie (`HttpOnly`,
//!   `SameSite=Strict`). Every form that changes something carries the session's CSRF token,
//!   checked on submission.
//!
//! Without a configured token every mutating endpoint answers 403: the service is read-only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use tern_kafka::sasl::scram::constant_time_eq;

pub const SESSION_COOKIE: &str = "tern_session";
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub struct Auth {
    token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
}

#[derive(Clone)]
struct Session {
    csrf: String,
    expires: Instant,
}

/// Why a mutating request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token is configured: nothing can be changed from the web.
    ReadOnly,
    /// No (valid) token or session.
    Unauthenticated,
    /// A session, but the form's CSRF token is missing or wrong.
    BadCsrf,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::ReadOnly => "this Tern is read-only: start it with a web token ([web] token_env or token_file) to allow changes",
            Refusal::Unauthenticated => "log in with the operator token (or send Authorization: Bearer <token>) to change anything",
            Refusal::BadCsrf => "the form's CSRF token is missing or stale: reload the page and try again",
        }
    }
}

fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}

impl Auth {
    pub fn new(token: Option<String>) -> Auth {
        Auth { token: token.filter(|t| !t.is_empty()), sessions: Mutex::default() }
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    fn token_matches(&self, given: &str) -> bool {
        self.token.as_deref().is_some_and(|t| constant_time_eq(t.as_bytes(), given.as_bytes()))
    }

    /// Checks a login attempt; on success returns a new session id.
    pub fn login(&self, given: &str) -> Result<String, Refusal> {
        if !self.enabled() {
            return Err(Refusal::ReadOnly);
        }
        if !self.token_matches(given) {
            return Err(Refusal::Unauthenticated);
        }
        let id = random_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(id.clone(), Session { csrf: random_token(), expires: now + SESSION_LIFETIME });
        Ok(id)
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        }
    }

    /// The CSRF token of the request's session, if it has a live one: pages put it in forms.
    pub fn csrf_for(&self, headers: &HeaderMap) -> Option<String> {
        let id = session_id(headers)?;
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.get(&id).filter(|s| s.expires > Instant::now()).map(|s| s.csrf.clone())
    }

    /// An API request: the bearer token.
    pub fn check_bearer(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if !self.enabled() {
            return Err(Refusal::ReadOnly);
        }
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Refusal::Unauthenticated)?;
        if self.token_matches(given.trim()) {
            Ok(())
        } else {
            Err(Refusal::Unauthenticated)
        }
    }

    /// A form submission: a live session and its CSRF token.
    pub fn check_form(&self, headers: &HeaderMap, csrf: Option<&str>) -> Result<(), Refusal> {
        if !self.enabled() {
            return Err(Refusal::ReadOnly);
        }
        let expected = self.csrf_for(headers).ok_or(Refusal::Unauthenticated)?;
        match csrf {
            Some(given) if constant_time_eq(expected.as_bytes(), given.as_bytes()) => Ok(()),
            _ => Err(Refusal::BadCsrf),
        }
    }
}

/// The session cookie's value, if the request carries one.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(id: &str) -> String {
    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_LIFETIME.as_secs())
}

/// The `Set-Cookie` value that ends one.
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, HeaderValue::from_str(&format!("other=1; {SESSION_COOKIE}={id}")).expect("header"));
        h
    }

    #[test]
    fn sessions_need_the_token_and_forms_need_the_csrf_token() {
        let auth = Auth::new(Some("s3cret".into()));
        assert_eq!(auth.login("wrong"), Err(Refusal::Unauthenticated));
        let id = auth.login("s3cret").expect("login");
        let h = with_cookie(&id);
        let csrf = auth.csrf_for(&h).expect("csrf");
        assert_eq!(auth.check_form(&h, Some(&csrf)), Ok(()));
        assert_eq!(auth.check_form(&h, Some("forged")), Err(Refusal::BadCsrf));
        assert_eq!(auth.check_form(&h, None), Err(Refusal::BadCsrf));
        assert_eq!(auth.check_form(&with_cookie("guessed"), Some(&csrf)), Err(Refusal::Unauthenticated));
        auth.logout(&h);
        assert_eq!(auth.check_form(&h, Some(&csrf)), Err(Refusal::Unauthenticated));
    }

    #[test]
    fn bearer_tokens_and_read_only_mode() {
        let auth = Auth::new(Some("s3cret".into()));
        let mut h = HeaderMap::new();
        assert_eq!(auth.check_bearer(&h), Err(Refusal::Unauthenticated));
        h.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cre"));
        assert_eq!(auth.check_bearer(&h), Err(Refusal::Unauthenticated));
        h.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert_eq!(auth.check_bearer(&h), Ok(()));
        let open = Auth::new(None);
        assert_eq!(open.check_bearer(&h), Err(Refusal::ReadOnly));
        assert_eq!(open.login(""), Err(Refusal::ReadOnly));
    }
}
