//! SaslHandshake: the client names its mechanism. On a listener without SASL Kafka answers
//! ILLEGAL_SASL_STATE; an unknown mechanism gets UNSUPPORTED_SASL_MECHANISM with the enabled
//! ones, and the connection closes. On an authenticated connection it begins a
//! re-authentication (KIP-368), which must keep the mechanism.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tern_kafka::sasl::scram::ScramServer;
use tern_kafka::sasl::Mechanism;

use crate::auth::{AuthState, ConnectionAuth, Exchange};

/// The response, and whether the connection closes after it.
pub fn handle(auth: &mut ConnectionAuth, request: SaslHandshakeRequest) -> (SaslHandshakeResponse, bool) {
    let Some(enabled) = auth.mechanisms.clone() else {
        return (SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code()), false);
    };
    let names: Vec<StrBytes> = enabled.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
    let refuse = |code: ResponseError| (SaslHandshakeResponse::default().with_error_code(code.code()).with_mechanisms(names.clone()), true);
    let reauthenticating = match &auth.state {
        AuthState::Handshake => false,
        AuthState::Authenticated { .. } => true,
        AuthState::Authenticate { .. } => return refuse(ResponseError::IllegalSaslState),
    };
    let Some(mechanism) = request.mechanism.parse::<Mechanism>().ok().filter(|m| enabled.contains(m)) else {
        return refuse(ResponseError::UnsupportedSaslMechanism);
    };
    if let AuthState::Authenticated { mechanism: previous } = &auth.state {
        if *previous != mechanism {
            return refuse(ResponseError::IllegalSaslState);
        }
    }
    let exchange = match mechanism.scram() {
        Some(hash) => Exchange::Scram(ScramServer::new(hash)),
        None => Exchange::Plain,
    };
    auth.state = AuthState::Authenticate { mechanism, exchange, reauthenticating };
    (SaslHandshakeResponse::default().with_mechanisms(names), false)
}
