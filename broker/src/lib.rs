//! tern-broker: a single-node, Kafka-protocol broker with a durable segmented log.
//!
//! - [`server`]: accepting connections; [`RunningBroker`] runs one in-process.
//! - `apis`: one module per Kafka API, dispatched from one place.
//! - [`topics`]: topic registry and its persisted metadata; [`topic_config`]: Kafka's topic
//!   configs, validation and defaults; `config_entries`: what DescribeConfigs reports.
//! - [`storage`]: per-partition segmented log with offset and time indexes, crash recovery,
//!   idempotent producer state and log compaction.
//! - [`groups`]: the consumer-group coordinator (classic protocol), persisted in
//!   `__consumer_offsets`.
//! - [`transactions`]: the transaction coordinator, persisted in `__transaction_state`.
//! - `producer_ids`: producer ids for InitProducerId, unique across restarts.
//! - `maintenance`: retention, time-based rolls, log cleaning, interval fsync.
//! - [`auth`]: TLS on accept and per-connection SASL state; [`scram_users`]: SCRAM
//!   credentials from a users file and AlterUserScramCredentials, kept in the data directory.
//!
//! ```no_run
//! # async fn demo() -> tern_broker::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let broker = tern_broker::RunningBroker::start(
//!     tern_broker::BrokerConfig::with_data_dir("/tmp/tern-example"),
//!     listener,
//! ).await?;
//! println!("bootstrap.servers={}", broker.bootstrap());
//! broker.shutdown().await?;
//! # Ok(()) }
//! ```

mod apis;
pub mod auth;
pub mod config;
mod config_entries;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod groups;
mod maintenance;
mod producer_ids;
pub mod server;
pub mod scram_users;
pub mod storage;
pub mod topic_config;
pub mod topics;
pub mod transactions;

pub use apis::SUPPORTED;
pub use config::{BrokerConfig, ListenerSecurity, SaslListener, TlsListener, DEFAULT_MAX_CONNECTIONS};
pub use error::{Error, Result};
pub use server::{run, RunningBroker};
pub use storage::{FsyncPolicy, LogConfig};
