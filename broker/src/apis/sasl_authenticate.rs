//! SaslAuthenticate: one round of the mechanism chosen by SaslHandshake. A failure answers
//! SASL_AUTHENTICATION_FAILED with Kafka's message (which never says whether the user
//! exists) and closes the connection, so clients fail at once instead of retrying.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tern_kafka::sasl::scram::ScramHash;
use tern_kafka::sasl::{plain, Mechanism};
use tokio::time::Instant;

use crate::auth::{AuthState, ConnectionAuth, Exchange};
use crate::server::BrokerState;

/// The response, and whether the connection closes after it.
pub fn handle(state: &BrokerState, auth: &mut ConnectionAuth, request: SaslAuthenticateRequest, version: i16) -> (SaslAuthenticateResponse, bool) {
    let AuthState::Authenticate { mechanism, exchange, reauthenticating } = std::mem::replace(&mut auth.state, AuthState::Handshake) else {
        // Kafka's answer on a listener without SASL, or after authentication completed.
        let close = auth.mechanisms.is_some();
        return (
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str("SaslAuthenticate request received after successful authentication"))),
            close,
        );
    };
    let during = if reauthenticating { "re-authentication" } else { "authentication" };
    let failed = |message: String| {
        tracing::info!(%mechanism, "{message}");
        (
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message))),
            true,
        )
    };
    let invalid = || format!("Authentication failed during {during} due to invalid credentials with SASL mechanism {mechanism}");
    let (reply, user) = match exchange {
        Exchange::Plain => match plain::parse_client_message(&request.auth_bytes) {
            Ok((user, password)) => {
                let ok = [ScramHash::Sha512, ScramHash::Sha256]
                    .into_iter()
                    .find_map(|h| state.scram_users.get(&user, h).map(|c| c.matches_password(h, &password)))
                    .unwrap_or(false);
                if !ok {
                    return failed(invalid());
                }
                (Bytes::new(), user)
            }
            Err(_) => return failed(invalid()),
        },
        Exchange::Scram(mut server) => {
            let hash = mechanism.scram().unwrap_or(ScramHash::Sha512);
            if !server.is_final_step() {
                return match server.server_first(&request.auth_bytes, |u| state.scram_users.get(u, hash)) {
                    Ok(first) => {
                        auth.state = AuthState::Authenticate { mechanism, exchange: Exchange::Scram(server), reauthenticating };
                        (SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(first)), false)
                    }
                    Err(_) => failed(invalid()),
                };
            }
            match server.server_final(&request.auth_bytes) {
                Ok((last, user)) => (Bytes::from(last), user),
                Err(_) => return failed(invalid()),
            }
        }
    };
    if reauthenticating && auth.principal.as_deref() != Some(user.as_str()) {
        return failed("Cannot change principals during re-authentication".into());
    }
    complete(auth, mechanism, user, reply, version)
}

fn complete(auth: &mut ConnectionAuth, mechanism: Mechanism, user: String, reply: Bytes, version: i16) -> (SaslAuthenticateResponse, bool) {
    tracing::debug!(%mechanism, %user, "authenticated");
    auth.state = AuthState::Authenticated { mechanism };
    auth.principal = Some(user);
    auth.expires_at = auth.session_lifetime.map(|l| Instant::now() + l);
    let mut response = SaslAuthenticateResponse::default().with_auth_bytes(reply);
    // v0 cannot carry a lifetime: such clients are closed when the session ends.
    if version >= 1 {
        response.session_lifetime_ms = auth.session_lifetime.map_or(0, |l: Duration| l.as_millis() as i64);
    }
    (response, false)
}
