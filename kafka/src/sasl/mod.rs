//! SASL mechanisms as Kafka uses them, without I/O: the messages a client sends and a server
//! checks. The client drives them over SaslHandshake/SaslAuthenticate in
//! [`crate::client::BrokerConnection`]; the broker checks them per connection.
//!
//! - [`scram`]: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), client and server.
//! - [`plain`]: PLAIN (RFC 4616).
//! - [`oauthbearer`]: the OAUTHBEARER client's initial response (RFC 7628).

pub mod oauthbearer;
pub mod plain;
pub mod scram;

use std::fmt;

/// The SASL mechanisms Tern speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512, Mechanism::OAuthBearer];

    /// The name sent in SaslHandshake (and used in Kafka's `sasl.mechanism`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The hash of a SCRAM mechanism.
    pub fn scram(self) -> Option<scram::ScramHash> {
        match self {
            Mechanism::ScramSha256 => Some(scram::ScramHash::Sha256),
            Mechanism::ScramSha512 => Some(scram::ScramHash::Sha512),
            _ => None,
        }
    }
}

impl std::str::FromStr for Mechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown SASL mechanism {s:?} (known: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"))
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a SASL exchange failed. Messages never carry a password or a proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("malformed SASL message: {0}")]
    Malformed(String),
    #[error("authentication failed: {0}")]
    Failed(String),
}
