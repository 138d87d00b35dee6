//! Who is on the other end of a connection: TLS on accept, then per-connection SASL state
//! following Kafka's `SaslServerAuthenticator`. Before a SASL listener has authenticated a
//! connection it takes ApiVersions and SaslHandshake, then SaslAuthenticate only; anything
//! else closes the connection, as Kafka does. A session with a lifetime
//! (`connections.max.reauth.ms`) is renewed in place by a new SaslHandshake (KIP-368); a
//! request on an expired session closes the connection.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use tern_kafka::sasl::scram::ScramServer;
use tern_kafka::sasl::Mechanism;
use tern_kafka::security::{load_certs, load_key};
use tokio::time::Instant;

use crate::config::{ListenerSecurity, TlsListener};
use crate::error::{Error, Result};

/// The acceptor of a TLS listener, from the configured PEM files.
pub fn tls_acceptor(security: &ListenerSecurity) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    let Some(TlsListener { cert_file, key_file, client_ca_file }) = &security.tls else { return Ok(None) };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let builder = match client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots.add(cert).map_err(|e| Error::Config(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| Error::Config(format!("client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(load_certs(cert_file)?, load_key(key_file)?)
        .map_err(|e| Error::Config(format!("TLS certificate {} with key {}: {e}", cert_file.display(), key_file.display())))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// SASL state of one connection.
pub struct ConnectionAuth {
    /// Mechanisms of a SASL listener; `None` on a listener without SASL.
    pub(crate) mechanisms: Option<Vec<Mechanism>>,
    pub(crate) session_lifetime: Option<Duration>,
    pub(crate) state: AuthState,
    /// The authenticated user, kept across re-authentications (which must not change it).
    pub(crate) principal: Option<String>,
    pub(crate) expires_at: Option<Instant>,
}

pub(crate) enum AuthState {
    /// Waiting for ApiVersions or SaslHandshake.
    Handshake,
    /// SaslHandshake chose `mechanism`; SaslAuthenticate rounds follow.
    Authenticate { mechanism: Mechanism, exchange: Exchange, reauthenticating: bool },
    Authenticated { mechanism: Mechanism },
}

pub(crate) enum Exchange {
    Plain,
    Scram(ScramServer),
}

impl ConnectionAuth {
    pub fn new(security: &ListenerSecurity) -> ConnectionAuth {
        let mechanisms = security.sasl.as_ref().map(|s| s.mechanisms.clone());
        let state = if mechanisms.is_some() { AuthState::Handshake } else { AuthState::Authenticated { mechanism: Mechanism::Plain } };
        ConnectionAuth {
            mechanisms,
            session_lifetime: security.sasl.as_ref().and_then(|s| s.session_lifetime),
            state,
            principal: None,
            expires_at: None,
        }
    }

    /// Whether the connection may send any request: a listener without SASL, or a session
    /// authenticated and not expired.
    pub fn is_authenticated(&self) -> bool {
        self.mechanisms.is_none()
            || (matches!(self.state, AuthState::Authenticated { .. }) && self.expires_at.is_none_or(|t| Instant::now() < t))
    }

    /// Whether a request of `api` may be handled now; `Err` says why the connection closes.
    pub fn admit(&self, api: ApiKey) -> std::result::Result<(), String> {
        if self.mechanisms.is_none() {
            return Ok(());
        }
        match &self.state {
            AuthState::Handshake if matches!(api, ApiKey::ApiVersions | ApiKey::SaslHandshake) => Ok(()),
            AuthState::Handshake => Err(format!("unexpected {api:?} request during SASL handshake (not authenticated)")),
            AuthState::Authenticate { .. } if api == ApiKey::SaslAuthenticate => Ok(()),
            AuthState::Authenticate { .. } => Err(format!("unexpected {api:?} request during SASL authentication")),
            AuthState::Authenticated { .. } => match self.expires_at {
                Some(t) if Instant::now() >= t && api != ApiKey::SaslHandshake => {
                    Err(format!("SASL session of {} expired and was not re-authenticated", self.principal.as_deref().unwrap_or("?")))
                }
                _ => Ok(()),
            },
        }
    }
}
