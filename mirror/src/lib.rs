//! tern-mirror: the replication engine.
//!
//! - [`config`]: `tern.toml`, validated (clusters, flows, naming, filters).
//! - [`cluster_security`]: per-cluster TLS and SASL settings; secrets by reference only.
//! - [`naming`]: which source topics a flow replicates and what they are called on the target.
//! - [`flow`]: one flow at work: remote topics, fetch, produce, commit, heartbeats.
//! - Leaf modules that import nothing of the replication loop: [`clock`] (the one clock),
//!   [`cluster`] (connecting to a configured cluster), [`names`] (the flow's group, the
//!   partition type), [`producer`] (stamping batches for the idempotent producer), [`probe`]
//!   (the timestamp at an offset, for lag in seconds), [`throttle`] (a flow's bandwidth limit),
//!   [`session`] (the worker's heartbeats in its flow's group, and the fence on its producers).
//! - [`transform`]: fetched batches to target record sets (fast path and record path).
//! - [`control`]: pause and failover state, shared by every worker of a flow.
//! - [`drill`]: disaster-recovery drills (RPO, RTO, per-group verification) and their history.
//! - [`failover`], [`failback`]: moving a flow's clients to its target and back.
//! - [`states`]: every state an operator reads (health, failover, translation, drill checks,
//!   group sync), each with one spelling.
//! - [`workers`]: the flows of one `tern run`, started, stopped and restarted as the
//!   configuration changes, each without touching the others.
//! - [`status`]: per-partition positions, lag and errors, read by metrics and the dashboard.
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

pub mod checkpoint;
pub mod clock;
pub mod cluster;
pub mod cluster_security;
pub mod config;
pub mod control;
pub mod drill;
pub mod error;
pub mod failpoint;
pub mod failback;
pub mod failover;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod import_mm2;
pub mod mm2;
pub mod names;
pub mod naming;
pub mod offset_map;
pub mod probe;
pub mod producer;
pub mod session;
pub mod states;
pub mod status;
pub mod throttle;
pub mod transform;
pub mod workers;

pub use error::{Error, Result, RetryHint};

use std::collections::BTreeMap;
use std::sync::Arc;

/// Every flow's status, by flow name.
pub type Statuses = BTreeMap<String, Arc<status::FlowStatus>>;

/// The running flows: each task ends with its flow's name and how it ended.
pub type FlowTasks = tokio::task::JoinSet<(String, Result<()>)>;

/// Runs every flow of a validated configuration until `shutdown` turns true. Each flow's
/// status is published in the returned map as soon as it starts.
pub fn start(validated: config::Validated, shutdown: tokio::sync::watch::Receiver<bool>) -> (Statuses, FlowTasks) {
    let clusters = Arc::new(validated.config.clusters);
    let settings = validated.config.mirror;
    let mut statuses = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for f in validated.flows {
        let name = f.name();
        let status = Arc::new(status::FlowStatus::new(name.clone()));
        statuses.insert(name.clone(), status.clone());
        let (clusters, settings, shutdown) = (clusters.clone(), settings.clone(), shutdown.clone());
        tasks.spawn(async move { (name, flow::run(f, &clusters, settings, status, shutdown).await) });
    }
    (statuses, tasks)
}
