//! One flow at work: keep remote topics in step with the source, fetch every partition the
//! worker owns, produce to the target, and commit progress on the source only after the
//! target acknowledged (at-least-once).
//!
//! Tasks of a flow:
//! - the topic loop (every `topic_refresh_interval`): create remote topics with the source's
//!   partition count and configs, grow partitions, start replicating new partitions;
//! - the fetcher: one fetch request per source leader for all owned partitions, responses
//!   handed to per-partition queues (bounded, so a slow target slows only its partitions);
//! - one producer task per partition: produces in order, records the acknowledged position;
//! - the committer: commits acknowledged positions to the flow's group on the source;
//! - heartbeats: MM2-format heartbeat records to the target's `heartbeats` topic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tern_kafka::client::{Client, GroupMember, Isolation, Membership, TxnProducer, EARLIEST, LATEST};
use tokio::sync::{mpsc, watch, Mutex};
use tracing::Instrument;

use crate::clock::{now_ms, wait_or_shutdown};
use crate::cluster::connect;
use crate::config::{ClusterConfig, Delivery, Flow, MirrorSettings};
use crate::names::{group_id, Tp};
use crate::producer::{batch_spans, encode_one, stamp_producer};
use crate::session::Session;
use crate::error::{Error, Result, RetryHint};
use crate::mm2::{Heartbeat, HEARTBEATS_TOPIC};
use crate::checkpoint;
use crate::naming;
use crate::offset_map::{Entry, OffsetMap};
use crate::states::SourceEvent;
use crate::status::{FlowStatus, SourceEventRecord};
use crate::throttle::Throttle;
use crate::transform::{prepare, Aborted, Prepared};

/// Topic configs never copied to the target. As in MirrorMaker 2: replication throttles and
/// replica placement are the target cluster's business, and a LogAppendTime target would
/// re-stamp the source's timestamps.
pub const CONFIG_EXCLUDES: &[&str] = &[
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "unclean.leader.election.enable",
    "min.insync.replicas",
];

/// How long a flow's transaction may stay open before the target aborts it: far longer than
/// one takes (a fetched set or a few), short enough that a worker that vanished without being
/// fenced holds `read_committed` consumers of the target up for one minute at most.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The transactional id of one source partition's producer on the target: whichever worker
/// owns the partition uses it, so the new owner's InitProducerId fences the previous one.
pub fn transactional_id(flow: &Flow, tp: &Tp) -> String {
    format!("{}.{}.{}", group_id(flow), tp.0, tp.1)
}

/// Shared state of one running flow.
struct Runtime {
    flow: Flow,
    settings: MirrorSettings,
    source: Client,
    target: Client,
    status: Arc<FlowStatus>,
    /// Acknowledged next offsets not yet committed.
    acked: Mutex<BTreeMap<Tp, i64>>,
    /// Held while a commit of `acked` is in flight: one commit at a time.
    committing: Mutex<()>,
    /// Partitions whose replication stopped for good, with the reason.
    failed: std::sync::Mutex<HashMap<Tp, String>>,
    /// The worker's identity in the flow's group, for commits.
    membership: std::sync::Mutex<Membership>,
    /// The group session's heartbeats, and whether producing is still safe.
    session: Arc<Session>,
    /// Offset maps of every partition seen (loaded from the target at start).
    maps: std::sync::Mutex<HashMap<Tp, OffsetMap>>,
    /// Partitions this worker owns in the current generation.
    owned: std::sync::Mutex<HashSet<Tp>>,
    /// The worker's idempotent-producer identity on the target: a record set retried after a
    /// lost acknowledgement is then written once. `None` when the target does not offer it.
    producer: Option<(i64, i16)>,
    /// Next sequence number per partition for that producer, kept across rebalances: the
    /// target remembers the last sequence it accepted from this producer.
    sequences: std::sync::Mutex<HashMap<Tp, i32>>,
    /// The id of every replicated source topic as last seen: a new id means the topic was
    /// deleted and created again.
    topic_ids: std::sync::Mutex<HashMap<String, uuid::Uuid>>,
    /// Topics seen recreated whose partitions start over at the next assignment.
    recreated: std::sync::Mutex<HashSet<String>>,
    /// For each partition this worker gave up: the largest source end it saw and the replicated
    /// position, so that a topic deleted (its partitions revoked) and then created again is
    /// counted with what the old one held.
    last_owned: std::sync::Mutex<HashMap<Tp, (i64, i64)>>,
    /// Partitions whose source log ended below the position: since when, and the lowest end
    /// seen since. Acted on only once it lasts (a new leader's high watermark can trail for a
    /// moment).
    truncated_since: std::sync::Mutex<HashMap<Tp, (std::time::Instant, i64)>>,
    /// The source leader epoch of the last batch fetched per partition, and the position after
    /// it: where that epoch ends on the source's current leader tells a truncation and its
    /// point at once, as long as the partition is still at that position (a partition owned
    /// by another worker meanwhile may resume past it).
    last_epochs: std::sync::Mutex<HashMap<Tp, (i32, i64)>>,
}

/// How long a source log must end below the replicated position before replication goes on
/// from the lowest end seen meanwhile, so that records written after the truncation are
/// replicated too.
const TRUNCATION_CONFIRMED_AFTER: Duration = Duration::from_secs(10);

impl Runtime {
    fn exactly_once(&self) -> bool {
        self.flow.delivery == Delivery::ExactlyOnce
    }
}

/// Compares the ids of the replicated source topics in the client's metadata with the ids last
/// seen. A topic whose id changed was deleted and created again: the event is recorded for the
/// partitions this worker owns (what the old topic held past the replicated position is lost),
/// and the topic is marked so that the next assignment starts its partitions over from the new
/// log start. Returns whether a topic was found recreated.
fn note_recreated(rt: &Runtime) -> bool {
    let md = rt.source.metadata_snapshot();
    let mut found = false;
    let mut ids = rt.topic_ids.lock().unwrap_or_else(|p| p.into_inner());
    for t in md.topics.values().filter(|t| !t.internal && naming::replicates(&rt.flow, &t.name) && !t.id.is_nil()) {
        match ids.insert(t.name.clone(), t.id) {
            Some(old) if old != t.id => {
                found = true;
                rt.recreated.lock().unwrap_or_else(|p| p.into_inner()).insert(t.name.clone());
                // What the old topic held, from the partitions this worker owns or gave up
                // (the deletion may have been seen first, revoking them).
                let mut known: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
                {
                    let mut last = rt.last_owned.lock().unwrap_or_else(|p| p.into_inner());
                    last.retain(|(topic, partition), seen| {
                        if *topic != t.name {
                            return true;
                        }
                        known.insert(*partition, *seen);
                        false
                    });
                }
                for ((_, partition), s) in rt.status.snapshot().partitions.into_iter().filter(|((topic, _), _)| *topic == t.name) {
                    known.insert(partition, (s.source_end_peak.max(s.source_end_offset), s.replicated_offset));
                }
                for (partition, (end, replicated)) in &known {
                    rt.status.source_event(SourceEventRecord {
                        kind: SourceEvent::Recreated,
                        topic: t.name.clone(),
                        partition: *partition,
                        at_ms: crate::clock::now_ms(),
                        lost: Some((end - replicated).max(0)),
                        from: *replicated,
                        resumed_at: 0,
                    });
                }
                if known.is_empty() {
                    tracing::warn!(flow = %rt.flow.name(), topic = %t.name, "source topic recreated; its partitions start over from the new log start");
                }
            }
            _ => {}
        }
    }
    found
}

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
            let s = connect(&flow.source, clusters.get(&flow.source).ok_or_else(|| Error::Config(format!("unknown cluster {}", flow.source)))?).await?;
            let t = connect(&flow.target, clusters.get(&flow.target).ok_or_else(|| Error::Config(format!("unknown cluster {}", flow.target)))?).await?;
            Ok::<_, Error>((s, t))
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
    let maps = loop {
        let loaded = async {
            checkpoint::ensure_internal_topics(&flow, &source, &target).await?;
            checkpoint::load_offset_maps(&flow, &target).await
        };
        match loaded.await {
            Ok(maps) => break maps,
            Err(e) if e.retry_hint() == RetryHint::Retry => {
                tracing::warn!(flow = %flow.name(), "loading offset maps: {e}; retrying");
                if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    };
    let producer = match target.init_producer_id().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(flow = %flow.name(), "no idempotent producer on {} ({e}); retried record sets may be duplicated", flow.target);
            None
        }
    };
    status.set_errors(vec![]);
    let rt = Arc::new(Runtime {
        flow,
        settings,
        source,
        target,
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
        last_epochs: std::sync::Mutex::new(HashMap::new()),
    });
    let mut background = tokio::task::JoinSet::new();
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
    loop {
        if *shutdown.borrow() {
            break;
        }
        if !rt.status.control_read() {
            // Fail closed: nothing (not even joining the flow's group) before the operators'
            // decision is known; the control watcher keeps trying.
            if wait_or_shutdown(&mut shutdown, Duration::from_millis(100)).await {
                break;
            }
            continue;
        }
        if rt.status.control().failed_over() {
            // Clients moved to the target: give the partitions up and leave the group, so
            // that `tern failback` can set where replication resumes.
            if !left {
                rt.session.end();
                work.revoke(&rt).await;
                rt.acked.lock().await.clear();
                if let Err(e) = member.leave().await {
                    tracing::debug!(flow = %rt.flow.name(), "leaving the group: {e}");
                }
                tracing::info!(flow = %rt.flow.name(), "failed over: replication stopped and the flow's group left");
                left = true;
            }
            if wait_or_shutdown(&mut shutdown, Duration::from_millis(500)).await {
                break;
            }
            continue;
        }
        if left {
            // Back from a failover: failback may have added offset-map entries and set the
            // positions to resume from; the rejoin reads both.
            match checkpoint::load_offset_maps(&rt.flow, &rt.target).await {
                Ok(maps) => *rt.maps.lock().unwrap_or_else(|p| p.into_inner()) = maps,
                Err(e) => {
                    tracing::warn!(flow = %rt.flow.name(), "reloading offset maps after failback: {e}; retrying");
                    if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
                        break;
                    }
                    continue;
                }
            }
            tracing::info!(flow = %rt.flow.name(), "flow active again: rejoining");
            left = false;
            rejoin = true;
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
        if topics.borrow().is_none() {
            // Nothing to subscribe to before the first topic sync.
            if wait_or_shutdown(&mut shutdown, Duration::from_millis(50)).await {
                break;
            }
            continue;
        }
        if !rt.recreated.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            // A recreated topic seen by a fetch: its partitions start over at the rejoin.
            rejoin = true;
        }
        if rt.session.rejoin_asked() {
            rejoin = true;
        }
        if rejoin {
            // Eager rebalance: finish and commit the current partitions, then rejoin. The
            // session's heartbeats go on until the JoinGroup is sent.
            if let Some(why) = rt.session.fenced() {
                tracing::warn!(flow = %rt.flow.name(), partitions = work.positions.len(), "{why}: stopped producing this worker's partitions before the group may give them to another worker; rejoining");
                rt.status.set_errors(vec![format!("group session on {} lost: {why}", rt.flow.source)]);
            }
            work.revoke(&rt).await;
            rt.session.end();
            let topics: Vec<String> = subscribed.iter().map(|(t, _)| t.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            match member.join(&rt.source, &topics).await {
                Ok(assignment) => {
                    *rt.membership.lock().unwrap_or_else(|p| p.into_inner()) = member.membership();
                    tracing::info!(flow = %rt.flow.name(), member = member.member_id(), partitions = assignment.len(), "assigned");
                    rt.session.begin(member.heartbeater(), rt.settings.heartbeat_interval, rt.settings.session_timeout, rt.flow.name());
                    work.assign(&rt, assignment).await;
                    rejoin = false;
                }
                Err(e) => {
                    tracing::warn!(flow = %rt.flow.name(), "joining the flow's group on {}: {e}", rt.flow.source);
                    rt.status.set_errors(vec![format!("joining group {} on {}: {e}", group_id(&rt.flow), rt.flow.source)]);
                    if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
                        break;
                    }
                    continue;
                }
            }
        }
        if !rt.status.replicating() {
            // Paused or failed over: hold the partitions (and the group) but copy nothing;
            // keep the source ends fresh so the dashboard shows the lag growing.
            work.fetches.cancel();
            refresh_source_ends(&rt, &work.positions).await;
            if wait_or_shutdown(&mut shutdown, Duration::from_millis(500)).await {
                break;
            }
            continue;
        }
        let fetched = tokio::select! {
            r = fetch_round(&rt, &work.queues, &mut work.positions, &mut work.fetches, throttle.as_mut()) => r,
            _ = shutdown.changed() => break,
        };
        if let Err(e) = fetched {
            tracing::debug!(flow = %rt.flow.name(), "fetch: {e}");
            if wait_or_shutdown(&mut shutdown, Duration::from_millis(200)).await {
                break;
            }
        }
    }
    work.revoke(&rt).await;
    rt.session.end();
    if let Err(e) = member.leave().await {
        tracing::debug!(flow = %rt.flow.name(), "leaving the group: {e}");
    }
    background.abort_all();
    Ok(())
}

/// The partitions this worker owns in the current generation.
#[derive(Default)]
struct Assigned {
    queues: HashMap<Tp, mpsc::Sender<Prepared>>,
    positions: HashMap<Tp, i64>,
    producers: tokio::task::JoinSet<()>,
    fetches: Fetches,
}

/// What one fetch from a source leader brings back: the partitions it asked for, and the answer.
type Fetched = (i32, Vec<Tp>, tern_kafka::Result<kafka_protocol::messages::FetchResponse>);

/// The fetches in flight, at most one per source leader and one per partition: each leader is
/// fetched again as soon as its answer is handled, whatever the other leaders take, so an idle
/// leader's long poll or a slow leader never holds up another's partitions.
#[derive(Default)]
struct Fetches {
    tasks: tokio::task::JoinSet<Fetched>,
    leaders: HashSet<i32>,
    partitions: HashSet<Tp>,
}

impl Fetches {
    /// Drops every fetch in flight; positions are untouched, so nothing is skipped.
    fn cancel(&mut self) {
        self.tasks.abort_all();
        self.tasks = tokio::task::JoinSet::new();
        self.leaders.clear();
        self.partitions.clear();
    }
}

impl Assigned {
    async fn assign(&mut self, rt: &Arc<Runtime>, partitions: Vec<Tp>) {
        // Exactly-once: each partition's transactional producer first (which fences the
        // previous owner and aborts its open transaction), then the positions and offset maps
        // committed on the target, read as `read_committed` consumers see them.
        let mut txns: HashMap<Tp, TxnProducer> = HashMap::new();
        let mut on_target = None;
        let mut partitions = partitions;
        if rt.exactly_once() {
            for tp in &partitions {
                match rt.target.transactional_producer(&transactional_id(&rt.flow, tp), TRANSACTION_TIMEOUT).await {
                    Ok(p) => {
                        txns.insert(tp.clone(), p);
                    }
                    Err(e) => {
                        tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "no transactional producer on {}: {e}; the partition waits for the next rebalance", rt.flow.target);
                        rt.status.update(&tp.0, tp.1, |s| s.error = Some(format!("exactly-once: no transactional producer on {}: {e}", rt.flow.target)));
                    }
                }
            }
            match checkpoint::load_target_state(&rt.flow, &rt.target).await {
                Ok(state) => {
                    *rt.maps.lock().unwrap_or_else(|p| p.into_inner()) = state.maps;
                    on_target = Some(state.positions);
                }
                Err(e) => {
                    tracing::warn!(flow = %rt.flow.name(), "reading the positions committed on {}: {e}; replicating nothing until the next rebalance", rt.flow.target);
                    txns.clear();
                }
            }
            if txns.len() < partitions.len() {
                // Retried at a rebalance asked for a little later, not in a tight loop.
                let session = rt.session.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    session.ask_rejoin();
                });
            }
            partitions.retain(|tp| txns.contains_key(tp));
        }
        let starts = start_positions(rt, &partitions, on_target.as_ref()).await;
        // Partitions of a topic recreated on the source start over from the new log start,
        // whatever position was committed for the old topic, with an offset map of their own.
        let recreated = std::mem::take(&mut *rt.recreated.lock().unwrap_or_else(|p| p.into_inner()));
        for tp in partitions {
            let (tx, rx) = mpsc::channel(4);
            let mut start = starts.get(&tp).copied().unwrap_or(0);
            if recreated.contains(&tp.0) {
                start = rt.source.list_offset(&tp.0, tp.1, EARLIEST).await.map(|(o, _)| o).unwrap_or(0);
                let dropped: Vec<Entry> = rt.maps.lock().unwrap_or_else(|p| p.into_inner()).remove(&tp).map(|m| m.entries().collect()).unwrap_or_default();
                if let Err(e) = checkpoint::persist_entries(&rt.flow, &rt.source, &rt.target, &tp, &[], &dropped).await {
                    tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "removing the old topic's offset map: {e}");
                }
                if rt.exactly_once() {
                    if let Err(e) = checkpoint::forget_position(&rt.flow, &rt.target, &tp).await {
                        tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "forgetting the old topic's exactly-once position: {e}");
                    }
                }
                rt.acked.lock().await.insert(tp.clone(), start);
                tracing::info!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, start, "recreated source topic: replicating from its log start");
            }
            // The next record replicated lands at the remote partition's end. Asked once: a
            // remote partition not created yet (the source just grew) must not hold up the
            // others; its map then starts with the first record replicated.
            let remote = naming::remote_topic(&rt.flow, &tp.0);
            if let Ok((target_end, _)) = rt.target.list_offset_once(&remote, tp.1, LATEST).await {
                rt.maps.lock().unwrap_or_else(|p| p.into_inner()).entry(tp.clone()).or_default().set_end(Entry { source: start, target: target_end });
            }
            rt.owned.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone());
            rt.last_owned.lock().unwrap_or_else(|p| p.into_inner()).remove(&tp);
            self.positions.insert(tp.clone(), start);
            rt.status.update(&tp.0, tp.1, |s| {
                s.remote_topic = naming::remote_topic(&rt.flow, &tp.0);
                s.replicated_offset = start;
                s.error = None;
            });
            rt.failed.lock().unwrap_or_else(|p| p.into_inner()).remove(&tp);
            match txns.remove(&tp) {
                Some(txn) => self.producers.spawn(transactional_partition_producer(rt.clone(), tp.clone(), rx, txn)),
                None => self.producers.spawn(partition_producer(rt.clone(), tp.clone(), rx)),
            };
            self.queues.insert(tp, tx);
        }
    }

    /// Stops the partition producers (no new request; the answers to those in flight are
    /// awaited, within the rebalance timeout), commits what the target acknowledged, and
    /// forgets the partitions. What was not acknowledged in time is not committed, so the
    /// next owner replicates it again (at-least-once).
    async fn revoke(&mut self, rt: &Arc<Runtime>) {
        rt.session.stop_producing();
        self.fetches.cancel();
        self.queues.clear();
        rt.owned.lock().unwrap_or_else(|p| p.into_inner()).clear();
        // The member must send its JoinGroup within the rebalance timeout, or the group goes on
        // without it while its last requests may still land.
        let limit = rt.settings.rebalance_timeout.saturating_sub(Duration::from_secs(5)).max(Duration::from_secs(5));
        let drained = tokio::time::timeout(limit, async { while self.producers.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(flow = %rt.flow.name(), "partition producers had answers outstanding after {} s; their unacknowledged records will be replicated again", limit.as_secs());
            self.producers.abort_all();
        }
        commit_now(rt).await;
        let snap = rt.status.snapshot();
        let mut last = rt.last_owned.lock().unwrap_or_else(|p| p.into_inner());
        for tp in self.positions.keys() {
            if let Some(s) = snap.partitions.get(tp) {
                last.insert(tp.clone(), (s.source_end_peak.max(s.source_end_offset), s.replicated_offset));
            }
            rt.status.forget(&tp.0, tp.1);
        }
        drop(last);
        self.positions.clear();
    }
}

/// Topic discovery, in a task of its own so that a slow target never holds up the replication
/// loop (nor its answer to a rebalance): every `topic_refresh_interval` the target's topics are
/// brought in line with the source, and the source partitions to replicate are published,
/// sorted.
async fn discover_topics(rt: Arc<Runtime>, found: watch::Sender<Option<Vec<Tp>>>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match sync_topics(&rt).await {
            Ok(mut partitions) => {
                partitions.sort();
                // A recreated topic is marked for the replication loop, which rejoins.
                note_recreated(&rt);
                found.send_if_modified(|last| {
                    let changed = last.as_ref() != Some(&partitions);
                    *last = Some(partitions);
                    changed
                });
                rt.status.set_errors(vec![]);
            }
            Err(e) => {
                tracing::warn!(flow = %rt.flow.name(), "topic sync: {e}");
                rt.status.set_errors(vec![e.to_string()]);
            }
        }
        if wait_or_shutdown(&mut shutdown, rt.settings.topic_refresh_interval).await {
            return;
        }
    }
}

/// Brings the target's topics in line with the source (existence, partition count, topic
/// configs) and returns the source partitions to replicate.
async fn sync_topics(rt: &Runtime) -> Result<Vec<Tp>> {
    let md = rt.source.refresh_metadata(None).await.map_err(|e| Error::cluster(&rt.flow.source, e))?;
    let mut topics: Vec<_> = md.topics.values().filter(|t| !t.internal && naming::replicates(&rt.flow, &t.name)).cloned().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let target_md = rt.target.refresh_metadata(None).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let source_configs = topic_configs(&rt.source, &names).await;
    let remotes: Vec<String> = names.iter().map(|n| naming::remote_topic(&rt.flow, n)).filter(|r| target_md.topics.contains_key(r)).collect();
    let target_configs = topic_configs(&rt.target, &remotes).await;
    let mut out = Vec::new();
    for t in topics {
        let remote = naming::remote_topic(&rt.flow, &t.name);
        let count = t.partitions.len() as i32;
        let wanted: BTreeMap<String, String> = source_configs
            .as_ref()
            .and_then(|c| c.get(&t.name).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !CONFIG_EXCLUDES.contains(&k.as_str()))
            .collect();
        match target_md.topics.get(&remote) {
            None => {
                let created = rt.target.create_topic(&remote, count, &wanted).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
                if created {
                    tracing::info!(flow = %rt.flow.name(), topic = %t.name, remote = %remote, partitions = count, "created remote topic");
                }
            }
            Some(existing) => {
                if (existing.partitions.len() as i32) < count {
                    rt.target.create_partitions(&remote, count).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
                    tracing::info!(flow = %rt.flow.name(), remote = %remote, partitions = count, "grew remote topic");
                }
                // Only when both sides could be read: never strip the target's configs
                // because the source did not answer.
                if let (Some(_), Some(target_configs)) = (&source_configs, &target_configs) {
                    let have = target_configs.get(&remote).cloned().unwrap_or_default();
                    let set: BTreeMap<String, String> = wanted.iter().filter(|(k, v)| have.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
                    let delete: Vec<String> = have.keys().filter(|k| !wanted.contains_key(*k) && !CONFIG_EXCLUDES.contains(&k.as_str())).cloned().collect();
                    if !set.is_empty() || !delete.is_empty() {
                        rt.target.alter_topic_configs(&remote, &set, &delete).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
                        tracing::info!(flow = %rt.flow.name(), remote = %remote, set = ?set, removed = ?delete, "propagated topic config change");
                    }
                }
            }
        }
        out.extend(t.partitions.iter().map(|p| (t.name.clone(), p.partition)));
    }
    Ok(out)
}

/// Topic-level configs set on the given topics; `None` when the cluster cannot describe them
/// (remote topics are then created with the target's defaults, and nothing is altered).
async fn topic_configs(client: &Client, topics: &[String]) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
    if topics.is_empty() {
        return Some(BTreeMap::new());
    }
    match client.describe_topic_configs(topics).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!("cannot describe topic configs: {e}");
            None
        }
    }
}

/// Where replication of new partitions starts: the flow group's committed offset, else the
/// source log start. A committed offset below the log start (retention went past it) starts
/// at the log start. A partition this worker replicated past its committed offset (the commit
/// failed, as when the source was out of reach long enough to end its membership) goes on
/// after what the target acknowledged, not from the commit, which would copy that tail again.
///
/// An exactly-once flow goes on from the position its last committed transaction stored on the
/// target (`on_target`), or from the commit on the source if that is further (the flow was
/// at-least-once meanwhile, or failback set it).
async fn start_positions(rt: &Runtime, partitions: &[Tp], on_target: Option<&HashMap<Tp, i64>>) -> HashMap<Tp, i64> {
    let committed = match rt.source.committed_offsets(&group_id(&rt.flow), partitions).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(flow = %rt.flow.name(), "cannot read committed positions ({e}); starting from the log start");
            BTreeMap::new()
        }
    };
    let mut out = HashMap::new();
    for tp in partitions {
        let start = rt.source.list_offset(&tp.0, tp.1, EARLIEST).await.map(|(o, _)| o).unwrap_or(0);
        let pos = match committed.get(tp) {
            Some(c) if *c >= start => *c,
            Some(c) => {
                tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, committed = c, log_start = start, "records between the committed position and the log start were deleted on the source before they were replicated");
                start
            }
            None => start,
        };
        let pos = match on_target.and_then(|p| p.get(tp)).copied() {
            Some(stored) if stored > pos => stored,
            _ => pos,
        };
        let acked = rt.acked.lock().await.get(tp).copied();
        let pos = match acked {
            Some(acked) if acked > pos => {
                tracing::info!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, committed = pos, acknowledged = acked, "resuming after the records the target acknowledged, past the committed position");
                acked
            }
            _ => pos,
        };
        out.insert(tp.clone(), pos);
    }
    out
}

/// Sends a fetch to every source leader that has none in flight, for its partitions with room
/// in their queues (within the flow's bandwidth limit when it has one), then handles the first
/// answer to come back. Called in a loop: each leader runs at its own pace.
async fn fetch_round(
    rt: &Arc<Runtime>,
    queues: &HashMap<Tp, mpsc::Sender<Prepared>>,
    positions: &mut HashMap<Tp, i64>,
    fetches: &mut Fetches,
    mut throttle: Option<&mut Throttle>,
) -> Result<()> {
    let md = rt.source.metadata_snapshot();
    let failed: HashSet<Tp> = rt.failed.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
    let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
    for (tp, tx) in queues {
        if tx.capacity() == 0 || failed.contains(tp) || fetches.partitions.contains(tp) {
            continue;
        }
        let Some(leader) = md.leader(&tp.0, tp.1) else { continue };
        if fetches.leaders.contains(&leader) {
            continue;
        }
        let pos = positions.get(tp).copied().unwrap_or(0);
        by_leader.entry(leader).or_default().push((tp.0.clone(), tp.1, pos));
    }
    if by_leader.is_empty() && fetches.tasks.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(());
    }
    let (mut max_bytes, mut partition_max_bytes) = (rt.settings.fetch_max_bytes, rt.settings.partition_max_bytes);
    if let Some(throttle) = throttle.as_deref_mut().filter(|_| !by_leader.is_empty()) {
        match throttle.allowance(std::time::Instant::now()) {
            Ok(allowed) => {
                // Each leader's fetch gets the whole allowance: with several leaders a round
                // may take more, and the next one waits for it.
                max_bytes = max_bytes.min(allowed);
                partition_max_bytes = partition_max_bytes.min(allowed);
                let turn = throttle.next_turn();
                for parts in by_leader.values_mut() {
                    parts.sort();
                    let len = parts.len();
                    parts.rotate_left(turn % len);
                }
            }
            Err(wait) => {
                by_leader.clear();
                if fetches.tasks.is_empty() {
                    // In short steps: a batch far over the limit can mean a long wait, and the
                    // worker must keep heartbeating its group meanwhile.
                    tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
                    return Ok(());
                }
            }
        }
    }
    let wait = rt.settings.fetch_max_wait.as_millis() as i32;
    for (leader, parts) in by_leader {
        let tps: Vec<Tp> = parts.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        fetches.leaders.insert(leader);
        fetches.partitions.extend(tps.iter().cloned());
        let rt = rt.clone();
        fetches.tasks.spawn(async move { (leader, tps, rt.source.fetch_isolated(leader, &parts, wait, max_bytes, partition_max_bytes, Isolation::ReadCommitted).await) });
    }
    // The first answer, or nothing for a while: the caller heartbeats and syncs topics between
    // calls, so it must not wait on a long poll for ever.
    let next = tokio::time::timeout(rt.settings.fetch_max_wait + Duration::from_millis(100), fetches.tasks.join_next()).await;
    let (leader, asked, resp) = match next {
        Ok(Some(Ok(fetched))) => fetched,
        Ok(Some(Err(_))) => {
            // A fetch task that did not finish (aborted or panicked): start over.
            fetches.cancel();
            return Ok(());
        }
        Ok(None) | Err(_) => return Ok(()),
    };
    fetches.leaders.remove(&leader);
    for tp in &asked {
        fetches.partitions.remove(tp);
    }
    let mut refresh = false;
    if !rt.status.replicating() {
        // Paused while the fetch was in flight: drop what came back, positions unchanged.
        fetches.cancel();
        return Ok(());
    }
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(flow = %rt.flow.name(), leader, "fetch failed: {e}");
            let _ = rt.source.refresh_metadata(None).await;
            return Ok(());
        }
    };
    for t in resp.responses {
        let topic = t.topic.0.to_string();
        for p in t.partitions {
            let tp = (topic.clone(), p.partition_index);
            let Some(pos) = positions.get(&tp).copied() else { continue };
            match p.error_code {
                0 => {}
                1 => {
                    // OFFSET_OUT_OF_RANGE: the source no longer has the position.
                    out_of_range(rt, &tp, pos, positions).await?;
                    continue;
                }
                code => {
                    refresh = true;
                    tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, code, "fetch error");
                    continue;
                }
            }
            rt.status.update(&tp.0, tp.1, |s| {
                // What a read_committed reader can reach: the last stable offset (an open
                // transaction's records wait for its marker).
                s.source_end_offset = if p.last_stable_offset >= 0 { p.last_stable_offset } else { p.high_watermark };
                s.source_end_peak = s.source_end_peak.max(p.high_watermark);
            });
            let records = p.records.unwrap_or_default();
            if records.is_empty() {
                continue;
            }
            if let Some(throttle) = throttle.as_deref_mut() {
                throttle.spend(records.len());
            }
            let aborted = p.aborted_transactions.unwrap_or_default().iter().map(|t| (t.producer_id.0, t.first_offset)).collect();
            let prepared = match prepare(&records, pos, &mut Aborted::new(aborted)) {
                Ok(prepared) => prepared,
                Err(e) => {
                    fail_partition(rt, &tp, e.to_string());
                    continue;
                }
            };
            if prepared.next_offset == pos {
                continue;
            }
            positions.insert(tp.clone(), prepared.next_offset);
            if prepared.last_epoch >= 0 {
                rt.last_epochs.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), (prepared.last_epoch, prepared.next_offset));
            }
            if let Some(tx) = queues.get(&tp) {
                // Capacity was checked above and only this task sends.
                let _ = tx.try_send(prepared);
            }
        }
    }
    if refresh {
        let _ = rt.source.refresh_metadata(None).await;
    }
    Ok(())
}

/// The source answered that `pos` is out of range for `tp`. The rule, in order:
/// - the log start moved past it (retention, DeleteRecords): go on from the log start; the
///   records in between were lost before replication;
/// - the topic was recreated (its id changed): its partitions start over at the rejoin;
/// - the leader epoch of the last batch fetched ends below it on the current leader (an
///   unclean leader election): go on from there at once, so records the new leader took since
///   are replicated;
/// - without epochs (a source that does not answer OffsetForLeaderEpoch, a position from before
///   a restart), the log ends below it for [`TRUNCATION_CONFIRMED_AFTER`]: go on from the lowest
///   end seen meanwhile.
async fn out_of_range(rt: &Runtime, tp: &Tp, pos: i64, positions: &mut HashMap<Tp, i64>) -> Result<()> {
    let (start, _) = rt.source.list_offset(&tp.0, tp.1, EARLIEST).await.map_err(|e| Error::cluster(&rt.flow.source, e))?;
    if start > pos {
        rt.status.source_event(SourceEventRecord {
            kind: SourceEvent::LogStartMoved,
            topic: tp.0.clone(),
            partition: tp.1,
            at_ms: crate::clock::now_ms(),
            lost: Some(start - pos),
            from: pos,
            resumed_at: start,
        });
        positions.insert(tp.clone(), start);
        return Ok(());
    }
    let (end, _) = rt.source.list_offset(&tp.0, tp.1, LATEST).await.map_err(|e| Error::cluster(&rt.flow.source, e))?;
    if end >= pos {
        if rt.truncated_since.lock().unwrap_or_else(|p| p.into_inner()).remove(tp).is_some() {
            rt.status.update(&tp.0, tp.1, |s| s.error = None);
        }
        return Ok(());
    }
    let _ = rt.source.refresh_metadata(Some(std::slice::from_ref(&tp.0))).await;
    if note_recreated(rt) {
        return Ok(());
    }
    // Where the epoch of the last batch fetched ends on the current leader: below the position,
    // the log diverged there, whatever was written since.
    let epoch = rt.last_epochs.lock().unwrap_or_else(|p| p.into_inner()).get(tp).filter(|(_, at)| *at == pos).map(|(epoch, _)| *epoch);
    if let Some(epoch) = epoch {
        match rt.source.epoch_end_offset(&tp.0, tp.1, epoch).await {
            Ok(Some(diverged)) if diverged < pos => {
                truncated(rt, tp, pos, diverged.max(start), positions);
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "the end of leader epoch {epoch}: {e}"),
        }
    }
    let (since, lowest_end) = {
        let mut seen = rt.truncated_since.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen.entry(tp.clone()).or_insert_with(|| (std::time::Instant::now(), end));
        entry.1 = entry.1.min(end);
        *entry
    };
    rt.status.update(&tp.0, tp.1, |s| {
        s.error = Some(format!(
            "the source log ends at {lowest_end}, below the replicated position {pos}: taken as truncated if it lasts {} s",
            TRUNCATION_CONFIRMED_AFTER.as_secs()
        ))
    });
    if since.elapsed() >= TRUNCATION_CONFIRMED_AFTER {
        truncated(rt, tp, pos, lowest_end, positions);
    }
    Ok(())
}

/// The source log of `tp` was truncated below `pos`: replication goes on from `resume_at`;
/// the target keeps the records past it that the source lost.
fn truncated(rt: &Runtime, tp: &Tp, pos: i64, resume_at: i64, positions: &mut HashMap<Tp, i64>) {
    rt.truncated_since.lock().unwrap_or_else(|p| p.into_inner()).remove(tp);
    rt.last_epochs.lock().unwrap_or_else(|p| p.into_inner()).remove(tp);
    rt.status.update(&tp.0, tp.1, |s| s.error = None);
    rt.status.source_event(SourceEventRecord {
        kind: SourceEvent::Truncated,
        topic: tp.0.clone(),
        partition: tp.1,
        at_ms: crate::clock::now_ms(),
        lost: Some(0),
        from: pos,
        resumed_at: resume_at,
    });
    positions.insert(tp.clone(), resume_at);
}

fn fail_partition(rt: &Runtime, tp: &Tp, reason: String) {
    tracing::error!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "replication of this partition stopped: {reason}");
    rt.status.update(&tp.0, tp.1, |s| s.error = Some(reason.clone()));
    rt.failed.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), reason);
}

/// Batches of one partition in flight at once when the target has an idempotent producer, as
/// Kafka's producer allows (`max.in.flight.requests.per.connection` 5 with idempotence): the
/// broker keeps the last five batches of a producer per partition, so a batch resent after a
/// lost acknowledgement is recognised and answered with its first offsets.
const MAX_IN_FLIGHT: usize = 5;

/// Produces one partition's prepared record sets in order; a record counts as replicated once
/// the target acknowledged its batch.
///
/// Kafka takes exactly one record batch per partition in a produce request
/// (`ProduceRequest.validateRecords`), so a fetched set of several batches goes out one batch
/// per request, in order, up to [`MAX_IN_FLIGHT`] at a time.
async fn partition_producer(rt: Arc<Runtime>, tp: Tp, mut rx: mpsc::Receiver<Prepared>) {
    let remote = naming::remote_topic(&rt.flow, &tp.0);
    while let Some(mut set) = rx.recv().await {
        if !rt.session.may_produce() {
            // Given up (a rebalance, or the group session lost): what is queued is fetched
            // again by the next owner.
            return;
        }
        if !set.records.is_empty() {
            // Idempotent produce: every batch gets the next sequence numbers once, and retries
            // resend the same bytes, so the target writes a retried batch only once.
            let mut next_sequence = None;
            if let Some((producer_id, epoch)) = rt.producer {
                let first = rt.sequences.lock().unwrap_or_else(|p| p.into_inner()).get(&tp).copied().unwrap_or(0);
                next_sequence = Some(stamp_producer(&mut set.records, producer_id, epoch, first, false));
            }
            let records: Bytes = set.records.freeze();
            // One trace span per replicated record set (exported when OTLP is configured).
            let span = tracing::info_span!("replicate", flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, remote = %remote, records = set.source_offsets.len(), bytes = records.len());
            let spans = batch_spans(&records);
            let batches: Vec<Bytes> = spans.iter().map(|(at, len, _)| records.slice(*at..*at + *len)).collect();
            // Each acknowledgement updates the offset map at once (translation follows the
            // target closely); new entries are persisted before the position is committed.
            let mut added = Vec::new();
            let mut offsets = std::mem::take(&mut set.source_offsets);
            // The source offset after the last batch acknowledged, if any was.
            let mut acked_to = None;
            let mut on_ack = |i: usize, ack: tern_kafka::client::ProduceAck| {
                let (_, len, count) = spans[i];
                let these = offsets.split_front(count as u64);
                // The source offset after this batch: the next batch's first record, or for the
                // last batch everything the set passed (control batches after it included).
                let next = offsets.first().unwrap_or(set.next_offset);
                acked_to = Some(next);
                added.extend(rt.maps.lock().unwrap_or_else(|p| p.into_inner()).entry(tp.clone()).or_default().record_runs(&these, ack.base_offset, next));
                let (n, bytes) = (these.len(), len as u64);
                if let Ok(h) = tern_kafka::batch::BatchHeader::parse(&batches[i]) {
                    let ts = if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp };
                    rt.status.observe_latency((crate::clock::now_ms() - ts) as f64 / 1000.0, n);
                }
                rt.status.update(&tp.0, tp.1, |s| {
                    s.records += n;
                    s.bytes += bytes;
                    s.replicated_offset = next;
                    s.error = None;
                });
            };
            let by = ProduceAs {
                transactional_id: None,
                idempotent: rt.producer.is_some(),
                known: rt.producer.is_some() && rt.sequences.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&tp),
            };
            let (done, refused) = produce_in_order(&rt, &tp, &remote, &batches, by, &mut on_ack).instrument(span.clone()).await;
            if crate::failpoint::hit("abort-before-offset-map", &tp.0) {
                tracing::error!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "failpoint abort-before-offset-map: aborting after a produce, before its offset map entries are written");
                std::process::abort();
            }
            // The map entries must be durable before the position they cover is committed.
            async {
                let mut backoff = Duration::from_millis(100);
                while let Err(e) = checkpoint::persist_entries(&rt.flow, &rt.source, &rt.target, &tp, &added, &[]).await {
                    tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "persisting offset map entries: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            .instrument(span)
            .await;
            if let Some(e) = refused {
                fail_partition(&rt, &tp, format!("the target refused records for {remote}/{}: {e}", tp.1));
                return;
            }
            if done < batches.len() {
                // Stopped part-way (the partitions are given up): what was acknowledged counts,
                // and the next batch keeps its sequence number, so that if this worker sends
                // it again the target knows it.
                if let Some(seq) = next_sequence.and(tern_kafka::batch::BatchHeader::parse(&batches[done]).ok().map(|h| h.base_sequence)) {
                    rt.sequences.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), seq);
                }
                if let Some(next) = acked_to {
                    rt.acked.lock().await.insert(tp.clone(), next);
                }
                return;
            }
            if let Some(next) = next_sequence {
                rt.sequences.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), next);
            }
            rt.status.update(&tp.0, tp.1, |s| {
                s.batches_fast += set.batches_fast;
                s.batches_rewritten += set.batches_rewritten;
            });
        } else {
            rt.maps.lock().unwrap_or_else(|p| p.into_inner()).entry(tp.clone()).or_default().record(&[], 0, set.next_offset);
        }
        let next = set.next_offset;
        let ts = set.max_timestamp;
        rt.status.update(&tp.0, tp.1, |s| {
            s.replicated_offset = next;
            s.replicated_timestamp = s.replicated_timestamp.max(ts);
        });
        rt.acked.lock().await.insert(tp.clone(), next);
    }
}

/// Produces one partition's prepared record sets exactly once: each transaction on the target
/// holds the records of the sets queued (up to the queue's length), the offset-map entries
/// they add and the source position after them, so a consumer of the target reading
/// `read_committed` sees either all of it or none. The worker that owns the partition next
/// fences this producer (same transactional id) and goes on from the position the last
/// committed transaction stored.
///
/// A transaction that fails is aborted and the worker rejoins its group: the partition starts
/// over from the position committed on the target. A record the target refuses stops the
/// partition, as in at-least-once delivery.
async fn transactional_partition_producer(rt: Arc<Runtime>, tp: Tp, mut rx: mpsc::Receiver<Prepared>, mut txn: TxnProducer) {
    let remote = naming::remote_topic(&rt.flow, &tp.0);
    // Sequences start at 0 with each producer epoch, per partition written.
    let mut sequences = (0, 0);
    let mut known = false;
    while let Some(first) = rx.recv().await {
        if !rt.session.may_produce() {
            return;
        }
        let mut sets = vec![first];
        while let Ok(more) = rx.try_recv() {
            sets.push(more);
        }
        let span = tracing::info_span!("replicate", flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, remote = %remote, transactional_id = %txn.transactional_id());
        let result = replicate_in_transaction(&rt, &tp, &remote, &mut txn, &mut sequences, known, sets).instrument(span).await;
        match result {
            Ok(()) => known = true,
            Err(failure) => {
                let fenced = failure.error.as_ref().is_some_and(tern_kafka::client::is_fenced);
                if !fenced {
                    if let Err(e) = txn.end(&rt.target, false).await {
                        tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "aborting the transaction: {e}");
                    }
                }
                let why = failure.error.as_ref().map_or_else(|| "the partitions were given up".to_string(), |e| e.to_string());
                if failure.refused {
                    fail_partition(&rt, &tp, format!("the target refused records for {remote}/{}: {why}", tp.1));
                } else if rt.session.may_produce() {
                    tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, fenced, "exactly-once transaction aborted: {why}; rejoining to go on from the position committed on {}", rt.flow.target);
                    rt.status.update(&tp.0, tp.1, |s| s.error = Some(format!("transaction aborted: {why}")));
                    rt.session.ask_rejoin();
                }
                return;
            }
        }
    }
}

/// Why a transaction of [`replicate_in_transaction`] did not commit: a Kafka error (refused
/// records among them), or none when the worker stopped producing part-way.
struct TxnFailure {
    error: Option<tern_kafka::Error>,
    refused: bool,
}

impl From<tern_kafka::Error> for TxnFailure {
    fn from(e: tern_kafka::Error) -> TxnFailure {
        TxnFailure { error: Some(e), refused: false }
    }
}

/// One transaction: the sets' records to the remote partition, the offset-map entries and the
/// position to the offset-map topic, then the commit. Nothing of the sets counts (in the
/// offset map, the status or the position committed on the source) before the commit.
async fn replicate_in_transaction(rt: &Runtime, tp: &Tp, remote: &str, txn: &mut TxnProducer, sequences: &mut (i32, i32), known: bool, sets: Vec<Prepared>) -> std::result::Result<(), TxnFailure> {
    let map_topic = checkpoint::offset_map_topic(&rt.flow.source);
    txn.add_partitions(&rt.target, &[(remote.to_string(), tp.1), (map_topic.clone(), 0)]).await?;
    let (producer_id, epoch) = txn.identity();
    let id = txn.transactional_id().to_string();
    let mut map = rt.maps.lock().unwrap_or_else(|p| p.into_inner()).get(tp).cloned().unwrap_or_default();
    let mut added = Vec::new();
    let (mut records, mut bytes, mut fast, mut rewritten) = (0u64, 0u64, 0u64, 0u64);
    let mut timestamps = Vec::new();
    let (mut next, mut max_timestamp) = (-1, -1);
    let mut known = known;
    for mut set in sets {
        next = set.next_offset;
        max_timestamp = max_timestamp.max(set.max_timestamp);
        if set.records.is_empty() {
            map.record(&[], 0, set.next_offset);
            continue;
        }
        sequences.0 = stamp_producer(&mut set.records, producer_id, epoch, sequences.0, true);
        let data: Bytes = set.records.freeze();
        let spans = batch_spans(&data);
        let batches: Vec<Bytes> = spans.iter().map(|(at, len, _)| data.slice(*at..*at + *len)).collect();
        let mut offsets = std::mem::take(&mut set.source_offsets);
        let mut on_ack = |i: usize, ack: tern_kafka::client::ProduceAck| {
            let (_, len, count) = spans[i];
            let these = offsets.split_front(count as u64);
            let after = offsets.first().unwrap_or(set.next_offset);
            added.extend(map.record_runs(&these, ack.base_offset, after));
            records += these.len();
            bytes += len as u64;
            if let Ok(h) = tern_kafka::batch::BatchHeader::parse(&batches[i]) {
                timestamps.push((if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp }, these.len()));
            }
        };
        let by = ProduceAs { transactional_id: Some(&id), idempotent: true, known };
        let (done, refused) = produce_in_order(rt, tp, remote, &batches, by, &mut on_ack).await;
        if let Some(e) = refused {
            let refused = !e.is_retriable() && !tern_kafka::client::is_fenced(&e);
            return Err(TxnFailure { error: Some(e), refused });
        }
        if done < batches.len() {
            return Err(TxnFailure { error: None, refused: false });
        }
        known = true;
        fast += set.batches_fast;
        rewritten += set.batches_rewritten;
    }
    let mut state = checkpoint::map_records(tp, &added, &[]);
    state.push(checkpoint::position_record(tp, Some(next)));
    let mut batch = BytesMut::from(&checkpoint::encode_records(&state, now_ms()).map_err(|e| tern_kafka::Error::Encode(e.to_string()))?[..]);
    sequences.1 = stamp_producer(&mut batch, producer_id, epoch, sequences.1, true);
    if produce_batch(rt, tp, (&map_topic, 0), batch.freeze(), Some(&id)).await?.is_none() {
        return Err(TxnFailure { error: None, refused: false });
    }
    if crate::failpoint::hit("abort-before-commit", &tp.0) {
        tracing::error!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "failpoint abort-before-commit: aborting with a transaction written and not committed");
        std::process::abort();
    }
    txn.end(&rt.target, true).await?;
    // Committed: now it counts.
    rt.maps.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), map);
    checkpoint::write_offset_syncs(&rt.flow, &rt.source, tp, &added).await;
    let now = now_ms();
    for (ts, n) in timestamps {
        rt.status.observe_latency((now - ts) as f64 / 1000.0, n);
    }
    rt.status.update(&tp.0, tp.1, |s| {
        s.records += records;
        s.bytes += bytes;
        s.batches_fast += fast;
        s.batches_rewritten += rewritten;
        s.replicated_offset = next;
        s.replicated_timestamp = s.replicated_timestamp.max(max_timestamp);
        s.error = None;
    });
    rt.acked.lock().await.insert(tp.clone(), next);
    Ok(())
}

/// Who a partition's batches are produced as.
#[derive(Clone, Copy)]
struct ProduceAs<'a> {
    /// A transactional producer's id: its partitions were added to its open transaction.
    transactional_id: Option<&'a str>,
    /// The batches carry a producer id and sequences: up to [`MAX_IN_FLIGHT`] at a time.
    idempotent: bool,
    /// The partition has accepted a batch of this producer already: the first batch need not
    /// go alone.
    known: bool,
}

/// Produces `batches` to one partition in order, handing each acknowledgement to `on_ack` (with
/// the batch's index) as it comes. Returns how many batches were acknowledged, and the error
/// that stopped the rest, if any; with no error and fewer acknowledged, the worker stopped
/// producing (no new request once [`Session::may_produce`] says no; those in flight are
/// awaited).
///
/// With an idempotent producer up to [`MAX_IN_FLIGHT`] requests are in flight. When one fails,
/// whatever else is in flight is awaited and the batches from the failed one on are sent again
/// one at a time: a resent batch the target already wrote is one of its last five and comes back
/// as a duplicate with its original offsets, and one it did not write follows the last it did.
async fn produce_in_order(rt: &Runtime, tp: &Tp, remote: &str, batches: &[Bytes], by: ProduceAs<'_>, on_ack: &mut impl FnMut(usize, tern_kafka::client::ProduceAck)) -> (usize, Option<tern_kafka::Error>) {
    // One at a time until the partition knows this producer: a partition accepts a producer it
    // has no state for at any sequence, so a batch sent behind a refused one could be written.
    // Afterwards a batch behind a refused one is refused too (its sequence leaves a gap).
    let mut window = if by.known { MAX_IN_FLIGHT } else { 1 };
    let mut acked = 0;
    let mut in_flight: std::collections::VecDeque<tern_kafka::Result<tern_kafka::client::PendingProduce>> = std::collections::VecDeque::new();
    let mut sent = 0;
    while acked < batches.len() {
        while sent < batches.len() && in_flight.len() < window && rt.session.may_produce() {
            let request = rt.target.send_produce_as(by.transactional_id, remote, tp.1, batches[sent].clone(), -1, 30_000).await;
            let stop = request.is_err();
            in_flight.push_back(request);
            sent += 1;
            if stop {
                break;
            }
        }
        let answer = match in_flight.pop_front() {
            Some(Ok(request)) => request.ack().await,
            Some(Err(e)) => Err(e),
            None => break,
        };
        match answer {
            Ok(ack) => {
                on_ack(acked, ack);
                acked += 1;
                if by.idempotent {
                    window = MAX_IN_FLIGHT;
                }
            }
            Err(e) => {
                for request in in_flight.drain(..).flatten() {
                    let _ = request.ack().await;
                }
                if !e.is_retriable() {
                    return (acked, Some(e));
                }
                tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "produce: {e}; resending from batch {acked} of {}", batches.len());
                while acked < sent {
                    match produce_batch(rt, tp, (remote, tp.1), batches[acked].clone(), by.transactional_id).await {
                        Ok(Some(ack)) => {
                            on_ack(acked, ack);
                            acked += 1;
                        }
                        Ok(None) => return (acked, None),
                        Err(e) => return (acked, Some(e)),
                    }
                }
            }
        }
    }
    (acked, None)
}

/// Produces one batch (for source partition `tp`) to a target partition, retrying what the target may accept later (leadership moves,
/// connection trouble) with a growing backoff; `None` when the worker stopped producing first.
async fn produce_batch(rt: &Runtime, tp: &Tp, (remote, partition): (&str, i32), batch: Bytes, transactional_id: Option<&str>) -> tern_kafka::Result<Option<tern_kafka::client::ProduceAck>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        if !rt.session.may_produce() {
            return Ok(None);
        }
        let sent = async { rt.target.send_produce_as(transactional_id, remote, partition, batch.clone(), -1, 30_000).await?.ack().await };
        match sent.await {
            Ok(ack) => return Ok(Some(ack)),
            Err(e) if e.is_retriable() => {
                rt.status.update(&tp.0, tp.1, |s| s.error = Some(format!("retrying: {e}")));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                // The leader may have moved.
                let _ = rt.target.refresh_metadata(None).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Translates the flow's groups for the owned partitions every `checkpoint_interval`, and
/// trims offset maps below the source's log start.
async fn checkpointer(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    // Source end offsets last recorded on the target, for unplanned failovers.
    let mut recorded_ends: HashMap<Tp, (i64, i64)> = HashMap::new();
    loop {
        if wait_or_shutdown(&mut shutdown, rt.flow.checkpoint_interval).await {
            return;
        }
        let owned: Vec<Tp> = rt.owned.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        let starts = match rt.source.list_offsets(&owned, EARLIEST).await {
            Ok(starts) => starts,
            Err(e) => {
                tracing::debug!(flow = %rt.flow.name(), "log starts for trimming offset maps: {e}");
                BTreeMap::new()
            }
        };
        for (tp, start) in starts {
            let tp = &tp;
            let removed = rt.maps.lock().unwrap_or_else(|p| p.into_inner()).get_mut(tp).map(|m| m.trim_below(start)).unwrap_or_default();
            if let Err(e) = checkpoint::persist_entries(&rt.flow, &rt.source, &rt.target, tp, &[], &removed).await {
                tracing::debug!(flow = %rt.flow.name(), "trimming the offset map: {e}");
            }
        }
        let maps: HashMap<Tp, OffsetMap> = {
            let all = rt.maps.lock().unwrap_or_else(|p| p.into_inner());
            owned.iter().filter_map(|tp| all.get(tp).map(|m| (tp.clone(), m.clone()))).collect()
        };
        match checkpoint::checkpoint_groups(&rt.flow, &rt.source, &rt.target, &maps).await {
            Ok(mut groups) => {
                group_lag(&rt, &mut groups).await;
                rt.status.set_groups(groups)
            }
            Err(e) => tracing::debug!(flow = %rt.flow.name(), "checkpoints: {e}"),
        }
        let snapshot = rt.status.snapshot();
        let ends: Vec<(Tp, i64, i64)> = owned
            .iter()
            .filter_map(|tp| snapshot.partitions.get(tp).map(|s| (tp.clone(), s.source_end_offset, s.replicated_offset)))
            .filter(|(tp, end, replicated)| *end > 0 && recorded_ends.get(tp) != Some(&(*end, *replicated)))
            .collect();
        match crate::failover::record_source_ends(&rt.flow, &rt.target, &ends).await {
            Ok(()) => recorded_ends.extend(ends.into_iter().map(|(tp, end, replicated)| (tp, (end, replicated)))),
            Err(e) => tracing::debug!(flow = %rt.flow.name(), "recording source ends: {e}"),
        }
    }
}

/// Follows the operators' decisions about this flow (see [`crate::control`]). When the
/// target cannot be read, the last decision stays in force.
async fn control_watcher(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let mut follower = crate::control::Follower::default();
    let mut generation = 0;
    loop {
        let polled = match follower.poll(&rt.target, &rt.flow.target).await {
            Ok(()) if !follower.has_decision(&rt.flow.name()) && (!rt.status.control_read() || follower.generation() != generation) => no_decision(&rt).await,
            other => other,
        };
        match polled.map(|()| follower.decision(&rt.flow.name())) {
            // A read that started before a newer decision was applied here (the dashboard
            // sets it at once) must not undo it: epochs order decisions, not clocks. A control
            // topic created anew counts epochs from the start again.
            Ok(c) if rt.status.control_read() && c.epoch < rt.status.control().epoch && follower.generation() == generation => rt.status.set_control_error(None),
            Ok(c) => {
                let before = rt.status.control();
                if c != before {
                    tracing::info!(flow = %rt.flow.name(), paused = c.paused, state = %c.state, reason = %c.reason, "flow control changed");
                }
                generation = follower.generation();
                rt.status.set_control(c);
                rt.status.set_control_error(None);
            }
            Err(e) => {
                let e = if rt.status.control_read() {
                    format!("cannot read the flow's decisions on {}: {e}; the last one read stays in force", rt.flow.target)
                } else {
                    format!("cannot read the flow's decisions on {}: {e}; replicating nothing until they are read", rt.flow.target)
                };
                if rt.status.snapshot().control_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(flow = %rt.flow.name(), "{e}");
                }
                rt.status.set_control_error(Some(e));
            }
        }
        if wait_or_shutdown(&mut shutdown, crate::control::POLL_INTERVAL).await {
            return;
        }
    }
}

/// The control topic holds no decision about the flow (it never had one, or the topic was
/// deleted or emptied): a flow that never had one is active; but a flow with a failover point
/// on the target has been failed over, so its decisions were lost, and it copies nothing
/// until one is written again.
async fn no_decision(rt: &Runtime) -> Result<()> {
    match crate::failover::read_state(&rt.flow, &rt.target).await? {
        (_, Some(point)) => Err(Error::Other(format!(
            "{} holds no decision about the flow, but the flow has a failover point ({} failover at {} ms): its decisions were lost; write one (resume from the dashboard or the API) to replicate again",
            crate::control::CONTROL_TOPIC,
            point.mode,
            point.at_ms
        ))),
        (_, None) => Ok(()),
    }
}

/// Looks up, about once a second, the timestamp of the oldest record not yet on the target
/// for every owned partition that lags (and whose oldest record changed since the last look),
/// so lag in seconds is that record's age; paused flows included.
async fn lag_prober(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
        let owned: Vec<Tp> = rt.owned.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        let snapshot = rt.status.snapshot();
        let wanted: Vec<(Tp, i64)> = owned
            .into_iter()
            .filter_map(|tp| {
                let s = snapshot.partitions.get(&tp)?;
                let stale = s.oldest_unreplicated.map(|(offset, _)| offset) != Some(s.replicated_offset);
                (s.lag_records() > 0 && stale).then(|| (tp, s.replicated_offset))
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let found = crate::probe::batch_timestamps(&rt.source, &wanted).await;
        for (tp, offset) in wanted {
            if let Some(ts) = found.get(&tp).copied() {
                rt.status.update(&tp.0, tp.1, |s| s.oldest_unreplicated = Some((offset, ts)));
            }
        }
    }
}

/// Each group's lag on the partitions this worker owns: records between its committed offset
/// and the source end, and the age of the first of them.
async fn group_lag(rt: &Runtime, groups: &mut BTreeMap<(String, Tp), checkpoint::GroupPartition>) {
    let snapshot = rt.status.snapshot();
    let mut behind: BTreeMap<String, Vec<(Tp, i64)>> = BTreeMap::new();
    for ((group, tp), g) in groups.iter_mut() {
        let Some(end) = snapshot.partitions.get(tp).map(|s| s.source_end_offset) else { continue };
        g.lag_records = (end - g.committed).max(0);
        g.lag_seconds = (g.lag_records == 0).then_some(0.0);
        if g.lag_records > 0 {
            behind.entry(group.clone()).or_default().push((tp.clone(), g.committed));
        }
    }
    let now = crate::clock::now_ms();
    for (group, at) in behind {
        let found = crate::probe::batch_timestamps(&rt.source, &at).await;
        for (tp, ts) in found {
            if let Some(g) = groups.get_mut(&(group.clone(), tp)) {
                g.lag_seconds = Some((now - ts).max(0) as f64 / 1000.0);
            }
        }
    }
}

/// Source high watermarks of the owned partitions, for status while nothing is fetched.
async fn refresh_source_ends(rt: &Runtime, positions: &HashMap<Tp, i64>) {
    let partitions: Vec<Tp> = positions.keys().cloned().collect();
    match rt.source.list_offsets(&partitions, LATEST).await {
        Ok(ends) => {
            for ((topic, partition), end) in ends {
                rt.status.update(&topic, partition, |s| {
                    s.source_end_offset = end;
                    s.source_end_peak = s.source_end_peak.max(end);
                });
            }
        }
        Err(e) => tracing::debug!(flow = %rt.flow.name(), "source ends while not replicating: {e}"),
    }
}

async fn committer(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
        commit_now(&rt).await;
    }
}

/// Commits acknowledged positions; kept for the next attempt when the commit fails.
///
/// One commit at a time: a commit on revocation (before the worker leaves its group) waits
/// for the periodic one in flight and sends again what that one could not commit, instead of
/// finding nothing pending and leaving the group with the positions uncommitted. Partition
/// producers add positions meanwhile without waiting for the commit.
async fn commit_now(rt: &Runtime) {
    let _one = rt.committing.lock().await;
    let pending = rt.acked.lock().await.clone();
    if pending.is_empty() {
        return;
    }
    let membership = rt.membership.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match rt.source.commit_offsets(&group_id(&rt.flow), &membership, &pending).await {
        Ok(()) => rt.acked.lock().await.retain(|tp, o| pending.get(tp) != Some(o)),
        Err(e) => tracing::debug!(flow = %rt.flow.name(), "commit of replication progress failed: {e}"),
    }
}

async fn heartbeats(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let mut created = false;
    loop {
        if !created {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            created = rt.target.create_topic(HEARTBEATS_TOPIC, 1, &configs).await.is_ok();
        }
        if created {
            let hb = Heartbeat { source_cluster: rt.flow.source.clone(), target_cluster: rt.flow.target.clone(), timestamp: now_ms() };
            match encode_one(hb.key(), hb.value(), hb.timestamp) {
                Ok(records) => match rt.target.produce(HEARTBEATS_TOPIC, 0, records, -1, 10_000).await {
                    Ok(_) => rt.status.heartbeat_sent(),
                    Err(e) => tracing::debug!(flow = %rt.flow.name(), "heartbeat: {e}"),
                },
                Err(e) => tracing::error!("encoding a heartbeat: {e}"),
            }
        }
        if wait_or_shutdown(&mut shutdown, rt.settings.heartbeat_interval).await {
            return;
        }
    }
}
