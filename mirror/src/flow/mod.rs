//! One flow at work: keep remote topics in step with the source, fetch every partition the
//! worker owns, produce to the target, and count a record as replicated only once the target
//! acknowledged it (at-least-once) or committed its transaction (exactly-once).
//!
//! `run` is the replication loop: it follows the operators' decisions, joins the flow's group
//! on the source, takes partitions on and gives them up, and fetches. Its tasks, a file each:
//! - [`runtime`]: the state every task shares, and stopping a partition for good;
//! - [`topics`]: every `topic_refresh_interval`, remote topics created with the source's
//!   partition count and configs, grown, their configs kept in line; recreated source topics;
//! - [`fetch`]: where each partition starts, one fetch in flight per connection to a source
//!   leader (so a slow leader holds up only its own partitions; a far source gets several
//!   connections per leader), record sets handed to bounded per-partition queues, and
//!   positions the source no longer has;
//! - [`produce`]: one producer task per partition, in order, idempotent with up to five requests
//!   in flight, or in transactions that carry the source position (exactly-once);
//! - [`progress`]: commits of acknowledged positions on the source, checkpoints, lag probes,
//!   source ends for unplanned failovers, MM2 heartbeats;
//! - [`decisions`]: the operators' decisions (pause, failover) from the control topic;
//! - [`assignment`]: the partitions of one generation, taken on and given up.

mod runtime;
mod held;
mod map_writes;
mod queues;
mod topics;
mod fetch;
mod produce;
mod progress;
mod decisions;
mod assignment;

pub use runtime::transactional_id;
pub use topics::CONFIG_EXCLUDES;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tern_kafka::client::{GroupMember, Membership};
use tokio::sync::{watch, Mutex};

use crate::clock::wait_or_shutdown;
use crate::cluster::connect;
use crate::config::{ClusterConfig, Flow, MirrorSettings};
use crate::names::{group_id, Tp};
use crate::session::Session;
use crate::error::{Error, Result, RetryHint};
use crate::status::FlowStatus;
use crate::throttle::Throttle;
use crate::offset_map::store;

use runtime::*;
use topics::*;
use fetch::*;
use progress::*;
use decisions::*;
use assignment::*;

/// Fetch answers (of up to `fetch_max_bytes` each) that record sets queued for the target may
/// hold for the sake of partitions with a small share of them, before such shares are copied
/// (see [`held`]).
const ANSWERS_HELD: usize = 8;

/// Fetch answers' worth of records (of `fetch_max_bytes` each) queued for the target past which
/// no fetch is sent (see [`held`]).
const ANSWERS_AHEAD: usize = 2;

/// Runs `flow` until `shutdown` turns true.
pub async fn run(
    flow: Flow,
    clusters: &BTreeMap<String, ClusterConfig>,
    settings: MirrorSettings,
    status: Arc<FlowStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    if crate::failpoint::hit("flow-panic", &flow.name()) {
        panic!("failpoint flow-panic: flow {} panics on purpose", flow.name());
    }
    let (source, target) = loop {
        let attempt = async {
            let known = |name: &str| clusters.get(name).ok_or_else(|| Error::Config(format!("unknown cluster {name}")));
            let (source, target) = (known(&flow.source)?, known(&flow.target)?);
            // Side by side: on a far link each connection costs round trips.
            tokio::try_join!(connect(&flow.source, source), connect(&flow.target, target))
        };
        match attempt.await {
            Ok(pair) => break pair,
            Err(e) if e.retry_hint() == RetryHint::Retry => {
                tracing::warn!(flow = %flow.name(), "{e}; retrying");
                status.set_errors(vec![e.to_string()]);
                if wait_or_shutdown(&mut shutdown, Duration::from_secs(2)).await {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    };
    // Start-up on a far link is a chain of round trips; those that need not wait for each
    // other go side by side.
    let (loaded, producer) = tokio::join!(
        async {
            loop {
                let loaded = async {
                    store::ensure_internal_topics(&flow, &source, &target).await?;
                    store::load_offset_maps(&flow, &target).await
                };
                match loaded.await {
                    Ok(maps) => break Ok(Some(maps)),
                    Err(e) if e.retry_hint() == RetryHint::Retry => {
                        tracing::warn!(flow = %flow.name(), "loading offset maps: {e}; retrying");
                        if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
                            break Ok(None);
                        }
                    }
                    Err(e) => break Err(e),
                }
            }
        },
        async {
            match target.init_producer_id().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(flow = %flow.name(), "no idempotent producer on {} ({e}); retried record sets may be duplicated", flow.target);
                    None
                }
            }
        },
    );
    let Some(maps) = loaded? else { return Ok(()) };
    let fetch_connections = clusters.get(&flow.source).map(|c| c.fetch_connections).unwrap_or_default();
    let produce_connections = clusters.get(&flow.target).map(|c| c.produce_connections).unwrap_or_default();
    status.set_errors(vec![]);
    let (map_writes, to_write) = map_writes::MapWrites::new();
    let rt = Arc::new(Runtime {
        flow,
        map_writes,
        answers: held::AnswerBudget::new(ANSWERS_HELD * settings.fetch_max_bytes.max(0) as usize, ANSWERS_AHEAD * settings.fetch_max_bytes.max(0) as usize),
        settings,
        source: Arc::new(source),
        target,
        fetch_connections,
        fetch_lanes: tokio::sync::OnceCell::new(),
        produce_connections,
        produce_lanes: tokio::sync::OnceCell::new(),
        status,
        acked: Mutex::new(BTreeMap::new()),
        committing: Mutex::new(()),
        failed: std::sync::Mutex::new(HashMap::new()),
        membership: std::sync::Mutex::new(Membership::none()),
        session: Arc::new(Session::default()),
        maps: std::sync::Mutex::new(maps),
        owned: std::sync::Mutex::new(HashSet::new()),
        producer,
        sequences: std::sync::Mutex::new(HashMap::new()),
        topic_ids: std::sync::Mutex::new(HashMap::new()),
        recreated: std::sync::Mutex::new(HashSet::new()),
        last_owned: std::sync::Mutex::new(HashMap::new()),
        truncated_since: std::sync::Mutex::new(HashMap::new()),
        rewound: std::sync::Mutex::new(HashMap::new()),
        last_epochs: std::sync::Mutex::new(HashMap::new()),
        acked_epochs: std::sync::Mutex::new(HashMap::new()),
    });
    let mut background = tokio::task::JoinSet::new();
    background.spawn({
        let rt = rt.clone();
        async move { map_writes::writer((&rt.flow, &rt.source, &rt.target), to_write).await }
    });
    // The links to the source and the target are timed while the worker finds its topics and
    // joins its group.
    background.spawn({
        let rt = rt.clone();
        async move {
            tokio::join!(rt.fetch_lanes(), rt.produce_lanes());
        }
    });
    if rt.flow.emit_heartbeats {
        background.spawn(heartbeats(rt.clone(), shutdown.clone()));
    }
    background.spawn(committer(rt.clone(), shutdown.clone()));
    background.spawn(checkpointer(rt.clone(), shutdown.clone()));
    background.spawn(control_watcher(rt.clone(), shutdown.clone()));
    background.spawn(lag_prober(rt.clone(), shutdown.clone()));
    let (found, mut topics) = watch::channel(None);
    background.spawn(discover_topics(rt.clone(), found, shutdown.clone()));

    let mut member = GroupMember::new(&group_id(&rt.flow), rt.settings.session_timeout, rt.settings.rebalance_timeout);
    let mut work = Assigned::default();
    let mut throttle = rt.flow.max_bytes_per_second.map(|limit| Throttle::new(limit, std::time::Instant::now()));
    // The replicated source partitions as last seen, and whether the group must rebalance.
    let mut subscribed: Vec<Tp> = Vec::new();
    let mut rejoin = true;
    // Whether the worker left the flow's group because the flow failed over.
    let mut left = false;
    let mut was = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if topics.has_changed().unwrap_or(false) {
            if let Some(partitions) = topics.borrow_and_update().clone() {
                if partitions != subscribed {
                    // New topics or partitions: the group's leader must hand them out.
                    subscribed = partitions;
                    rejoin = true;
                }
            }
        }
        let phase = Phase::now(&rt, left, rejoin, topics.borrow().is_some());
        if was != Some(phase) {
            tracing::debug!(flow = %rt.flow.name(), ?phase, "replication loop");
            was = Some(phase);
        }
        let pause = match phase {
            Phase::AwaitingDecision => Some(Duration::from_millis(20)),
            Phase::FailedOver => {
                if !left {
                    // Give the partitions up and leave the group, so that `tern failback` can
                    // set where replication resumes.
                    rt.session.end();
                    work.revoke(&rt).await;
                    rt.acked.lock().await.clear();
                    if let Err(e) = member.leave(&rt.source).await {
                        tracing::debug!(flow = %rt.flow.name(), "leaving the group: {e}");
                    }
                    tracing::info!(flow = %rt.flow.name(), "failed over: replication stopped and the flow's group left");
                    left = true;
                }
                Some(Duration::from_millis(500))
            }
            Phase::Returning => match store::load_offset_maps(&rt.flow, &rt.target).await {
                // Failback may have added offset-map entries and set the positions to resume
                // from; the join reads both.
                Ok(maps) => {
                    *rt.maps.lock().unwrap_or_else(|p| p.into_inner()) = maps;
                    tracing::info!(flow = %rt.flow.name(), "flow active again: rejoining");
                    left = false;
                    rejoin = true;
                    None
                }
                Err(e) => {
                    tracing::warn!(flow = %rt.flow.name(), "reloading offset maps after failback: {e}; retrying");
                    Some(Duration::from_secs(1))
                }
            },
            Phase::AwaitingTopics => Some(Duration::from_millis(20)),
            Phase::Joining => {
                // Eager rebalance: finish and commit the current partitions, then rejoin. The
                // session's heartbeats go on until the JoinGroup is sent.
                if let Some(why) = rt.session.fenced() {
                    rt.status.session_lost();
                    tracing::warn!(flow = %rt.flow.name(), partitions = work.positions.len(), "{why}: stopped producing this worker's partitions before the group may give them to another worker; rejoining");
                    rt.status.set_errors(vec![format!("group session on {} lost: {why}", rt.flow.source)]);
                }
                work.revoke(&rt).await;
                rt.session.end();
                let topics: Vec<String> = subscribed.iter().map(|(t, _)| t.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
                match member.join(&rt.source, &topics).await {
                    Ok(assignment) => {
                        *rt.membership.lock().unwrap_or_else(|p| p.into_inner()) = member.membership();
                        rt.status.joined(member.membership().generation_id);
                        tracing::info!(flow = %rt.flow.name(), member = member.member_id(), partitions = assignment.len(), "assigned");
                        rt.session.begin(member.heartbeater(&rt.source), rt.settings.heartbeat_interval, rt.settings.session_timeout, rt.flow.name());
                        work.assign(&rt, assignment).await;
                        rejoin = false;
                        None
                    }
                    Err(e) => {
                        tracing::warn!(flow = %rt.flow.name(), "joining the flow's group on {}: {e}", rt.flow.source);
                        rt.status.set_errors(vec![format!("joining group {} on {}: {e}", group_id(&rt.flow), rt.flow.source)]);
                        Some(Duration::from_secs(1))
                    }
                }
            }
            Phase::Holding => {
                // Hold the partitions (and the group) but copy nothing; keep the source ends
                // fresh so the dashboard shows the lag growing.
                work.fetches.cancel();
                refresh_source_ends(&rt, &work.positions).await;
                Some(Duration::from_millis(500))
            }
            Phase::Replicating => {
                let fetched = tokio::select! {
                    r = fetch_round(&rt, &mut work.queues, &mut work.positions, &mut work.fetches, throttle.as_mut()) => r,
                    _ = shutdown.changed() => break,
                };
                fetched.err().map(|e| {
                    tracing::debug!(flow = %rt.flow.name(), "fetch: {e}");
                    Duration::from_millis(200)
                })
            }
        };
        if let Some(pause) = pause {
            if wait_or_shutdown(&mut shutdown, pause).await {
                break;
            }
        }
    }
    work.revoke(&rt).await;
    rt.session.end();
    if let Err(e) = member.leave(&rt.source).await {
        tracing::debug!(flow = %rt.flow.name(), "leaving the group: {e}");
    }
    background.abort_all();
    Ok(())
}

/// What the worker does on one turn of the replication loop, decided afresh each turn from the
/// operators' decision, the topics seen and the group session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The operators' decision about the flow is not known yet: nothing, not even joining the
    /// flow's group (fail closed); the control watcher keeps trying.
    AwaitingDecision,
    /// Clients moved to the target: the partitions are given up and the group left.
    FailedOver,
    /// Active again after a failover: the offset maps are read again before joining.
    Returning,
    /// Before the first topic sync: nothing to subscribe to.
    AwaitingTopics,
    /// The group must hand the partitions out again: the first turn, new topics or partitions,
    /// a recreated topic, a lost session, a failed transaction.
    Joining,
    /// Paused: the partitions and the group are held, nothing is copied.
    Holding,
    /// Fetching, and handing record sets to the partitions' producers.
    Replicating,
}

impl Phase {
    fn now(rt: &Runtime, left: bool, rejoin: bool, topics_known: bool) -> Phase {
        if !rt.status.control_read() {
            Phase::AwaitingDecision
        } else if rt.status.control().failed_over() {
            Phase::FailedOver
        } else if left {
            Phase::Returning
        } else if !topics_known {
            Phase::AwaitingTopics
        } else if rejoin || rt.session.rejoin_asked() || !rt.recreated.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            // A recreated topic seen by a fetch: its partitions start over at the rejoin.
            Phase::Joining
        } else if !rt.status.replicating() {
            Phase::Holding
        } else {
            Phase::Replicating
        }
    }
}
