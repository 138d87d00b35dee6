//! tern-mirror: the replication engine.
//!
//! - [`config`]: `tern.toml`, validated (clusters, flows, naming, filters).
//! - [`naming`]: which source topics a flow replicates and what they are called on the target.
//! - [`mm2`]: MirrorMaker 2's internal record formats (heartbeats, checkpoints, offset syncs).
//!
//! ```
//! let v = tern_mirror::config::parse(r#"
//! [clusters.a]
//! bootstrap = "127.0.0.1:9092"
//! [clusters.b]
//! bootstrap = "127.0.0.1:9093"
//! [[flows]]
//! source = "a"
//! target = "b"
//! topics = ["orders.*"]
//! "#).unwrap();
//! assert_eq!(v.flows[0].name(), "a->b");
//! ```

pub mod config;
pub mod error;
pub mod mm2;
pub mod naming;
pub mod transform;

pub use error::{Error, Result, RetryHint};
