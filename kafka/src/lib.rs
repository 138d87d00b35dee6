//! tern-kafka: the Kafka wire layer shared by Tern's broker and its client.
//!
//! - [`frame`]: sans-io framing; size-prefixed frames to request/response headers and
//!   bodies (message structs come from the `kafka-protocol` crate).
//! - [`connection`]: reading and writing whole frames on a byte stream.
//! - [`client`]: a connection that sends typed requests and reads their responses.
//! - [`batch`]: the v2 record-batch header, its CRC-32C, and in-place rewrites.
//! - [`security`]: TLS (rustls) and SASL settings of a client, secrets that never print.
//! - [`sasl`]: PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER messages, client and server, no I/O.
//!
//! ```
//! use tern_kafka::batch::{Batches, BatchHeader};
//! // An empty record set has no batches.
//! assert_eq!(Batches::new(&[]).count(), 0);
//! assert!(BatchHeader::parse(&[0u8; 10]).is_err());
//! ```

pub mod batch;
pub mod client;
pub mod connection;
pub mod error;
pub mod frame;
pub mod records;
pub mod sasl;
pub mod security;

#[cfg(test)]
mod fuzz;

pub use error::{Error, Result};
pub use kafka_protocol;
