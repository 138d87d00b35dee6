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

/// Wrong tokens (logins and bearer tokens together) allowed per [`GUESS_WINDOW`]; past that
/// every token is refused with 429 until the window has room again, so guessing runs at a few
/// attempts a minute whoever tries.
pub const GUESSES_PER_WINDOW: usize = 10;
pub const GUESS_WINDOW: Duration = Duration::from_secs(60);

pub struct Auth {
    token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
    /// When recent wrong tokens came, oldest first.
    misses: Mutex<std::collections::VecDeque<Instant>>,
    limit: (usize, Duration),
    /// Session cookies carry `Secure` (the dashboard is served over TLS, or behind a proxy
    /// that terminates it).
    secure_cookies: std::sync::atomic::AtomicBool,
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
    /// Too many wrong tokens lately: no token is checked until the window has room again.
    TooManyAttempts,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::ReadOnly => "this Tern is read-only: start it with a web token ([web] token_env or token_file) to allow changes",
            Refusal::Unauthenticated => "log in with the operator token (or send Authorization: Bearer <token>) to change anything",
            Refusal::BadCsrf => "the form's CSRF token is missing or stale: reload the page and try again",
            Refusal::TooManyAttempts => "too many wrong tokens in the last minute: wait a minute and try again",
        }
    }
}

fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}

impl Auth {
    pub fn new(token: Option<String>) -> Auth {
        Auth::with_limit(token, GUESSES_PER_WINDOW, GUESS_WINDOW)
    }

    /// [`Auth::new`] allowing `misses` wrong tokens per `window` (tests use short windows).
    pub fn with_limit(token: Option<String>, misses: usize, window: Duration) -> Auth {
        Auth {
            token: token.filter(|t| !t.is_empty()),
            sessions: Mutex::default(),
            misses: Mutex::default(),
            limit: (misses, window),
            secure_cookies: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn set_secure_cookies(&self, on: bool) {
        self.secure_cookies.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the session cookie for this request carries `Secure`: configured so, or the
    /// request came through a proxy that terminated TLS (`X-Forwarded-Proto: https`).
    pub fn secure_for(&self, headers: &HeaderMap) -> bool {
        self.secure_cookies.load(std::sync::atomic::Ordering::Relaxed)
            || headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }

    /// Checks `given` against the token, counting wrong ones; refuses without checking while
    /// the window is full.
    fn check_token(&self, given: &str) -> Result<(), Refusal> {
        let (allowed, window) = self.limit;
        let now = Instant::now();
        let mut misses = self.misses.lock().unwrap_or_else(|p| p.into_inner());
        while misses.front().is_some_and(|t| now.duration_since(*t) >= window) {
            misses.pop_front();
        }
        if misses.len() >= allowed {
            return Err(Refusal::TooManyAttempts);
        }
        if self.token_matches(given) {
            Ok(())
        } else {
            misses.push_back(now);
            Err(Refusal::Unauthenticated)
        }
    }

    /// Seconds until a token will be checked again (0 when it would be now).
    pub fn retry_after(&self) -> u64 {
        let (allowed, window) = self.limit;
        let misses = self.misses.lock().unwrap_or_else(|p| p.into_inner());
        if misses.len() < allowed {
            return 0;
        }
        misses.front().map(|t| window.saturating_sub(t.elapsed()).as_secs() + 1).unwrap_or(0)
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
        self.check_token(given)?;
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
        self.check_token(given.trim())
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
pub fn session_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_LIFETIME.as_secs())
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

    #[test]
    fn wrong_tokens_are_throttled_and_cookies_can_be_secure() {
        let auth = Auth::with_limit(Some("s3cret".into()), 3, Duration::from_millis(300));
        let mut bearer = HeaderMap::new();
        bearer.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_static("Bearer guess"));
        assert_eq!(auth.login("guess-1"), Err(Refusal::Unauthenticated));
        assert_eq!(auth.check_bearer(&bearer), Err(Refusal::Unauthenticated));
        assert_eq!(auth.login("guess-2"), Err(Refusal::Unauthenticated));
        // Logins and bearer tokens share the limit; even the right token waits now.
        assert_eq!(auth.login("s3cret"), Err(Refusal::TooManyAttempts));
        assert_eq!(auth.check_bearer(&bearer), Err(Refusal::TooManyAttempts));
        assert!(auth.retry_after() >= 1);
        std::thread::sleep(Duration::from_millis(350));
        assert!(auth.login("s3cret").is_ok(), "the window has room again");
        assert!(!session_cookie("x", false).contains("Secure"));
        assert!(session_cookie("x", true).ends_with("; Secure"));
        let mut proxied = HeaderMap::new();
        assert!(!auth.secure_for(&proxied));
        proxied.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(auth.secure_for(&proxied));
        auth.set_secure_cookies(true);
        assert!(auth.secure_for(&HeaderMap::new()));
    }
}
