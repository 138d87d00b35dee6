//! Real failover of a flow: clients move from the source to the target.
//!
//! - **Planned** (`tern failover --planned`, the source is reachable): the flow goes
//!   `failing-over` and keeps replicating until its lag is zero (bounded by the timeout),
//!   then `failed-over`: its workers stop and leave their group on the source. The final
//!   group offsets are translated and committed to the same-named groups on the target.
//! - **Unplanned** (`--unplanned`, the source is gone): the flow goes `failed-over` at once,
//!   so its workers stop copying; the point is taken once they have stopped (they left their
//!   group, when the source still answers; the remote partitions stopped growing, when it does
//!   not), so no record they replicate is later taken for one written on the target and
//!   copied home twice by failback. Only what the target knows is used: the offset maps, the
//!   last checkpoints of every group, and the last source end offsets the workers recorded.
//!   The report says how many records were lost: written on the source (as far as the
//!   target knows) but never replicated.
//!
//! Either way the failover point (per partition, where the remote topic ended and which
//! source offset that was) is recorded in [`FAILOVER_TOPIC`] on the target, for
//! [`crate::failback`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tern_kafka::client::Client;

use crate::checkpoint::{self, Tp};
use crate::config::{ClusterConfig, Flow};
use crate::control::{self, FailoverState};
use crate::drill::{connect_bounded, last_checkpoints, partition_states};
use crate::error::{Error, Result};
use crate::clock::now_ms;
use crate::naming;
use crate::offset_map::Entry;
use crate::offset_map::store;

/// Compacted topic on the target: the last source end offsets workers saw
/// (`ends/<flow>/<topic>/<partition>`) and failover points (`point/<flow>`).
pub const FAILOVER_TOPIC: &str = "tern-failover.internal";

/// A source partition's end offset as a worker last saw it, with the worker's position then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownEnd {
    pub end: i64,
    pub at_ms: i64,
    /// The next source offset the worker had replicated: past records it did not have to copy
    /// (aborted transactions and their markers), which the offset map cannot show.
    #[serde(default)]
    pub replicated: Option<i64>,
}

/// Where one partition stood when the flow failed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointPartition {
    pub topic: String,
    pub partition: i32,
    pub remote_topic: String,
    /// End of the remote partition on the target at the failover: records from here on were
    /// written on the target after it.
    pub target_offset: i64,
    /// The source offset that corresponds to `target_offset` (the replicated end).
    pub source_offset: i64,
    /// The source's end as last known (read live in a planned failover).
    pub known_source_end: i64,
    /// When the source end was seen (ms).
    pub known_at_ms: i64,
    /// Records written on the source and never replicated (as far as known).
    pub lost_records: i64,
    /// Failback progress: the first target offset not yet copied back, and the source offset
    /// the first copied record got.
    #[serde(default)]
    pub copied_until: Option<i64>,
    #[serde(default)]
    pub copy_source_start: Option<i64>,
    /// The idempotent sequence number of the next batch copied back (with
    /// [`FailoverPoint::copy_producer`]).
    #[serde(default)]
    pub copy_sequence: Option<i32>,
}

/// The failover point of a flow, kept on the target until the next failover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverPoint {
    pub flow: String,
    /// `planned` or `unplanned`.
    pub mode: String,
    pub at_ms: i64,
    pub partitions: Vec<PointPartition>,
    /// The idempotent producer (id, epoch) that copies records back, kept so that a failback
    /// run again after a crash resends a batch whose acknowledgement it never saved under the
    /// same producer and sequence: the source recognises it and does not write it twice.
    #[serde(default)]
    pub copy_producer: Option<(i64, i16)>,
}

/// One group moved to the target, per partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedGroup {
    pub group: String,
    pub partitions: Vec<MovedPartition>,
    /// The sync's state word (`synced`, `in-sync`, `blocked`, `failed`), with the reason
    /// after a colon when there is one.
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovedPartition {
    pub topic: String,
    pub partition: i32,
    /// The group's position before the move (on the source for a failover, on the target
    /// for a failback).
    pub from_offset: i64,
    /// Where it now resumes, on the other side.
    pub to_offset: i64,
    /// Age of the source offset used (ms): 0 when read live, the checkpoint's age otherwise.
    pub age_ms: i64,
    /// Records the group will read again.
    #[serde(default)]
    pub redelivered_records: i64,
}

/// What `tern failover` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverReport {
    pub flow: String,
    pub mode: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub state: FailoverState,
    /// Records lost: written on the source, never replicated (as far as known).
    pub lost_records: i64,
    /// Whether the lag reached zero before the flow stopped (planned only).
    pub drained: bool,
    pub point: FailoverPoint,
    pub groups: Vec<MovedGroup>,
    pub errors: Vec<String>,
}

/// How a failover runs.
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Planned (the source is reachable and drained first) or unplanned.
    pub planned: bool,
    /// Bound on draining, on reaching clusters and on waiting for workers to stop.
    pub timeout: Duration,
}

fn ends_key(flow: &str, topic: &str, partition: i32) -> String {
    format!("ends/{flow}/{topic}/{partition}")
}

fn point_key(flow: &str) -> String {
    format!("point/{flow}")
}

async fn write_records(target: &Client, cluster: &str, records: Vec<(Bytes, Option<Bytes>)>) -> Result<()> {
    store::ensure_compacted(target, cluster, FAILOVER_TOPIC).await?;
    let batch = store::encode_records(&records, now_ms())?;
    target.produce(FAILOVER_TOPIC, 0, batch, -1, 30_000).await.map_err(|e| Error::cluster(cluster, e))?;
    Ok(())
}

fn json<T: Serialize>(v: &T) -> Result<Bytes> {
    serde_json::to_vec(v).map(Bytes::from).map_err(|e| Error::Local(format!("encoding a failover record: {e}")))
}

/// Records the source end offsets a worker saw and its position (called by workers with each
/// checkpoint), so an unplanned failover can tell what it lost.
pub async fn record_source_ends(flow: &Flow, target: &Client, ends: &[(Tp, i64, i64)]) -> Result<()> {
    if ends.is_empty() {
        return Ok(());
    }
    let at_ms = now_ms();
    let mut records = Vec::new();
    for ((topic, partition), end, replicated) in ends {
        let known = KnownEnd { end: *end, at_ms, replicated: Some(*replicated) };
        records.push((Bytes::from(ends_key(&flow.name(), topic, *partition)), Some(json(&known)?)));
    }
    write_records(target, &flow.target, records).await
}

/// Everything the target holds about the flow: known source ends and the failover point.
pub async fn read_state(flow: &Flow, target: &Client) -> Result<(BTreeMap<Tp, KnownEnd>, Option<FailoverPoint>)> {
    let md = target.refresh_metadata(None).await.map_err(|e| Error::cluster(&flow.target, e))?;
    let (mut ends, mut point) = (BTreeMap::new(), None);
    if !md.topics.contains_key(FAILOVER_TOPIC) {
        return Ok((ends, point));
    }
    let prefix = format!("ends/{}/", flow.name());
    for r in target.read_all(FAILOVER_TOPIC, 0).await.map_err(|e| Error::cluster(&flow.target, e))? {
        let Some(key) = r.key.and_then(|k| String::from_utf8(k.to_vec()).ok()) else { continue };
        let Some(value) = r.value else { continue };
        if key == point_key(&flow.name()) {
            match serde_json::from_slice(&value) {
                Ok(p) => point = Some(p),
                Err(e) => tracing::warn!(flow = %flow.name(), "ignoring an unreadable failover point: {e}"),
            }
        } else if let Some(rest) = key.strip_prefix(&prefix) {
            let Some((topic, partition)) = rest.rsplit_once('/') else { continue };
            let (Ok(partition), Ok(known)) = (partition.parse::<i32>(), serde_json::from_slice::<KnownEnd>(&value)) else { continue };
            ends.insert((topic.to_string(), partition), known);
        }
    }
    Ok((ends, point))
}

/// Stores the failover point (and failback progress in it).
pub async fn save_point(flow: &Flow, target: &Client, point: &FailoverPoint) -> Result<()> {
    write_records(target, &flow.target, vec![(Bytes::from(point_key(&flow.name())), Some(json(point)?))]).await
}

/// Waits (bounded) until no worker of the flow is a member of its group on the source.
pub(crate) async fn wait_workers_gone(flow: &Flow, source: &Client, deadline: Instant) -> bool {
    loop {
        match source.describe_group(&crate::names::group_id(flow)).await {
            Ok(info) if info.members == 0 => return true,
            Ok(_) | Err(_) => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Fails `flow` over to its target. See the module documentation.
pub async fn failover(flow: &Flow, clusters: &BTreeMap<String, ClusterConfig>, opts: &FailoverOptions, progress: impl Fn(&str) + Send + Sync) -> Result<FailoverReport> {
    let cluster = |name: &str| clusters.get(name).ok_or_else(|| Error::Config(format!("flow {} names unknown cluster {name}", flow.name())));
    let deadline = Instant::now() + opts.timeout;
    let started_at_ms = now_ms();
    let mode = if opts.planned { "planned" } else { "unplanned" };
    let target = connect_bounded(&flow.target, cluster(&flow.target)?, opts.timeout).await.map_err(Error::Unreachable)?;
    let current = control::read(&target, &flow.target, &flow.name()).await?;
    if current.failed_over() {
        return Err(Error::State(format!("flow {} is already {}; run `tern failback` first", flow.name(), current.state)));
    }
    if opts.planned && current.paused {
        return Err(Error::State(format!("flow {} is paused, so it cannot drain: resume it first, or use --unplanned", flow.name())));
    }
    let source = if opts.planned {
        let s = connect_bounded(&flow.source, cluster(&flow.source)?, opts.timeout).await;
        Some(s.map_err(|e| Error::Unreachable(format!("{e}; a planned failover needs the source: use --unplanned when it is gone")))?)
    } else {
        None
    };
    let reason = format!("tern failover --{mode}");
    // A planned failover drains the flow (its workers keep copying while failing over); an
    // unplanned one stops it at once.
    let first = if opts.planned { FailoverState::FailingOver } else { FailoverState::FailedOver };
    control::update(&target, &flow.target, &flow.name(), &reason, |c| c.state = first).await?;
    progress(&format!("state {first}"));
    let mut errors = Vec::new();
    let outcome = async {
        let (point, groups, drained) = match &source {
            Some(source) => planned(flow, source, &target, deadline, &progress, &mut errors).await?,
            None => {
                wait_replication_stopped(flow, cluster(&flow.source)?, &target, deadline, &progress, &mut errors).await?;
                let (p, g) = unplanned(flow, &target, &progress).await?;
                (p, g, false)
            }
        };
        save_point(flow, &target, &point).await?;
        Ok::<_, Error>((point, groups, drained))
    }
    .await;
    let (point, groups, drained) = match outcome {
        Ok(done) => done,
        Err(e) => {
            // No failover point was saved, so failback would have nothing to start from:
            // back to active, and the failover can be run again.
            if let Err(undo) = control::update(&target, &flow.target, &flow.name(), "tern failover: aborted", |c| c.state = FailoverState::Active).await {
                return Err(Error::State(format!("{e}; and the flow could not be set back to active ({undo}): set it with `tern failback` once the target answers")));
            }
            progress("failover aborted: state active again");
            return Err(e);
        }
    };
    let state = control::update(&target, &flow.target, &flow.name(), &reason, |c| c.state = FailoverState::FailedOver).await?.state;
    progress("state failed-over");
    Ok(FailoverReport {
        flow: flow.name(),
        mode: mode.into(),
        started_at_ms,
        finished_at_ms: now_ms(),
        state,
        lost_records: point.partitions.iter().map(|p| p.lost_records).sum(),
        drained,
        point,
        groups,
        errors,
    })
}

async fn planned(
    flow: &Flow,
    source: &Client,
    target: &Client,
    deadline: Instant,
    progress: &(impl Fn(&str) + Send + Sync),
    errors: &mut Vec<String>,
) -> Result<(FailoverPoint, Vec<MovedGroup>, bool)> {
    // Drain: the workers keep replicating while failing over, until nothing is left.
    let mut drained = false;
    while Instant::now() < deadline {
        let (states, _) = partition_states(flow, source, target).await?;
        let lag: i64 = states.values().map(|s| s.source_end - s.replicated_end).sum();
        if lag == 0 {
            drained = true;
            break;
        }
        progress(&format!("draining: {lag} record(s) to replicate"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !drained {
        errors.push("the lag did not reach zero within the timeout: the records left are reported as lost".into());
    }
    // Stop the workers: failed over, they leave their group on the source.
    control::update(target, &flow.target, &flow.name(), "tern failover --planned: stopping the flow", |c| c.state = FailoverState::FailedOver).await?;
    // A worker that still holds the group may still be producing: a failover point taken now
    // could miss its last records. Refused (the flow goes back to active).
    if !wait_workers_gone(flow, source, deadline.max(Instant::now() + Duration::from_secs(5))).await {
        return Err(Error::State(format!(
            "workers of {} still hold their group {} on {} (a worker that cannot read the flow's decisions, or one killed without leaving until its session ends): planned failover refused; stop them, or wait for the session timeout, and run it again",
            flow.name(),
            crate::names::group_id(flow),
            flow.source
        )));
    }
    progress("flow stopped");
    let (states, maps) = partition_states(flow, source, target).await?;
    let at_ms = now_ms();
    let point = FailoverPoint {
        flow: flow.name(),
        mode: "planned".into(),
        at_ms,
        partitions: states
            .iter()
            .map(|(tp, s)| PointPartition {
                topic: tp.0.clone(),
                partition: tp.1,
                remote_topic: s.remote.clone(),
                target_offset: s.target_end,
                source_offset: s.replicated_end,
                known_source_end: s.source_end,
                known_at_ms: at_ms,
                lost_records: s.source_end - s.replicated_end,
                copied_until: None,
                copy_source_start: None,
                copy_sequence: None,
            })
            .collect(),
        copy_producer: None,
    };
    let mut groups = Vec::new();
    // A group that cannot be read is reported and the others still move: the flow has
    // stopped, so the failover has to finish.
    let names = match source.list_groups().await {
        Ok(names) => names,
        Err(e) => {
            errors.push(format!("listing the groups on {}: {e}; no group was moved", flow.source));
            Vec::new()
        }
    };
    for group in names.into_iter().filter(|g| checkpoint::replicates_group(flow, g)) {
        let committed = match source.all_committed_offsets(&group).await {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("group {group}: reading its offsets on {}: {e}; not moved", flow.source));
                continue;
            }
        };
        let mut partitions = Vec::new();
        let mut translated = BTreeMap::new();
        for (tp, c) in committed.into_iter().filter(|(tp, _)| states.contains_key(tp)) {
            let Some(t) = maps.get(&tp).and_then(|m| m.translate(c).target()) else { continue };
            translated.insert((naming::remote_topic(flow, &tp.0), tp.1), t);
            partitions.push(MovedPartition { topic: tp.0, partition: tp.1, from_offset: c, to_offset: t, age_ms: 0, redelivered_records: 0 });
        }
        if translated.is_empty() {
            continue;
        }
        let outcome = checkpoint::sync_text(checkpoint::sync_group(target, &group, &translated).await);
        groups.push(MovedGroup { group, partitions, outcome });
    }
    Ok((point, groups, drained))
}

/// Waits (bounded by `deadline`) until the flow's workers no longer copy records: until they
/// left their group on the source when it answers, else until the remote partitions have not
/// grown for [`SETTLED`]. Records a worker still produces would land after the failover point.
async fn wait_replication_stopped(
    flow: &Flow,
    source_cluster: &ClusterConfig,
    target: &Client,
    deadline: Instant,
    progress: &(impl Fn(&str) + Send + Sync),
    errors: &mut Vec<String>,
) -> Result<()> {
    let reach = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(3));
    if let Ok(source) = connect_bounded(&flow.source, source_cluster, reach).await {
        progress(&format!("{} answers: waiting for the workers to leave group {}", flow.source, crate::names::group_id(flow)));
        if !wait_workers_gone(flow, &source, deadline).await {
            errors.push(format!(
                "workers of {} still held group {} on {} at the timeout: records they replicated after the failover point would be copied back by failback",
                flow.name(),
                crate::names::group_id(flow),
                flow.source
            ));
        }
        return Ok(());
    }
    let maps = store::load_offset_maps(flow, target).await?;
    let (ends, _) = read_state(flow, target).await?;
    let remotes: Vec<(String, i32)> = maps.keys().chain(ends.keys()).map(|(t, p)| (naming::remote_topic(flow, t), *p)).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut last = (Vec::new(), Instant::now());
    loop {
        let mut now = Vec::new();
        for (remote, p) in &remotes {
            now.push(target.list_offset_once(remote, *p, tern_kafka::client::LATEST).await.map(|(o, _)| o).unwrap_or(-1));
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= SETTLED {
            return Ok(());
        }
        if Instant::now() >= deadline {
            errors.push(format!("the remote topics of {} on {} were still growing at the timeout", flow.name(), flow.target));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long the remote partitions must stay unchanged before an unplanned failover takes
/// its point without the source: longer than a worker takes to see the decision
/// ([`control::POLL_INTERVAL`]) and send what it holds.
const SETTLED: Duration = Duration::from_secs(3);

async fn unplanned(flow: &Flow, target: &Client, progress: &(impl Fn(&str) + Send + Sync)) -> Result<(FailoverPoint, Vec<MovedGroup>)> {
    let state = store::load_target_state(flow, target).await?;
    let mut maps = state.maps.clone();
    let (ends, _) = read_state(flow, target).await?;
    let mut tps: Vec<Tp> = maps.keys().cloned().chain(ends.keys().cloned()).collect();
    tps.sort();
    tps.dedup();
    let at_ms = now_ms();
    let mut partitions = Vec::new();
    for tp in tps {
        let remote = naming::remote_topic(flow, &tp.0);
        let target_end = target.list_offset_once(&remote, tp.1, tern_kafka::client::LATEST).await.map(|(o, _)| o).unwrap_or(0);
        let known = ends.get(&tp).copied();
        let replicated = state.replicated_end(flow.delivery, &tp, target_end).into_iter().chain(known.and_then(|k| k.replicated)).max().unwrap_or(0);
        let map = maps.entry(tp.clone()).or_default();
        if map.entries().next().is_some() {
            map.set_end(Entry { source: replicated, target: target_end });
        }
        let known_end = known.map(|k| k.end).unwrap_or(replicated).max(replicated);
        partitions.push(PointPartition {
            topic: tp.0.clone(),
            partition: tp.1,
            remote_topic: remote,
            target_offset: target_end,
            source_offset: replicated,
            known_source_end: known_end,
            known_at_ms: known.map(|k| k.at_ms).unwrap_or(0),
            lost_records: known_end - replicated,
            copied_until: None,
            copy_source_start: None,
            copy_sequence: None,
        });
    }
    let lost: i64 = partitions.iter().map(|p| p.lost_records).sum();
    progress(&format!("from the target's records: {lost} record(s) written on {} were never replicated", flow.source));
    // Groups from their last checkpoints, translated again with the latest maps.
    let mut by_group: BTreeMap<String, (Vec<MovedPartition>, BTreeMap<Tp, i64>)> = BTreeMap::new();
    for ((group, _, partition), (cp, written)) in last_checkpoints(flow, target).await? {
        if !checkpoint::replicates_group(flow, &group) {
            continue;
        }
        let Some(p) = partitions.iter().find(|p| p.remote_topic == cp.topic && p.partition == partition) else { continue };
        let tp = (p.topic.clone(), partition);
        let t = maps.get(&tp).and_then(|m| m.translate(cp.upstream_offset).target()).unwrap_or(cp.downstream_offset);
        let entry = by_group.entry(group).or_default();
        entry.0.push(MovedPartition { topic: tp.0.clone(), partition, from_offset: cp.upstream_offset, to_offset: t, age_ms: (now_ms() - written).max(0), redelivered_records: 0 });
        entry.1.insert((cp.topic.clone(), partition), t);
    }
    let mut groups = Vec::new();
    for (group, (partitions, translated)) in by_group {
        let outcome = checkpoint::sync_text(checkpoint::sync_group(target, &group, &translated).await);
        groups.push(MovedGroup { group, partitions, outcome });
    }
    Ok((FailoverPoint { flow: flow.name(), mode: "unplanned".into(), at_ms, partitions, copy_producer: None }, groups))
}
