//! Disaster-recovery drills: what a failover of a flow would lose and re-deliver, per
//! consumer group, proven against the data, without touching production consumers or
//! producers.
//!
//! For every group of the flow (and `--groups` filter) and every partition it committed on,
//! a drill measures:
//! - **RPO**: records of the source not yet on the target (and the age of the oldest), for
//!   the flow and for the records each group has not consumed yet;
//! - **translation**: the target offset the group would resume at, and a check that a
//!   consumer starting there neither skips nor re-reads a record: the target records around
//!   the translated offset are compared (key, value, headers, timestamp) with the source
//!   records around the committed offset, and the records that would be re-delivered or
//!   missed are counted;
//! - **RTO**: the time to compute the translations and apply them to drill-only groups on
//!   the target (`tern-drill.<id>.<group>`, which never clash with real groups and are
//!   deleted afterwards), and to read through them with a consumer of each drill group.
//!
//! The dashboard runs drills through [`run`] (progress as [`DrillProgress`]) and keeps them
//! with [`history`].

pub mod history;
pub mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use regex::Regex;
use tern_kafka::client::{Client, GroupMember, Membership, EARLIEST, LATEST};

pub use report::{DrillReport, DrillSummary, GroupPartitionReport, GroupReport, PartitionRpo, Verdict, SCHEMA_VERSION};

use crate::checkpoint::{self, Tp};
use crate::config::{ClusterConfig, Flow};
use crate::error::{Error, Result};
use crate::clock::now_ms;
use crate::naming;
use crate::offset_map::{Entry, OffsetMap, Translation};
use crate::states::{Check, ReadThrough};
use crate::offset_map::store;

/// How a drill runs.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Only groups matching this (anchored) regex; all the flow's groups when `None`.
    pub groups: Option<Regex>,
    /// The pattern as the user gave it, for the report.
    pub groups_pattern: Option<String>,
    /// Commit translations to drill groups and read through them (measures RTO).
    pub apply: bool,
    /// Bound on reaching a cluster and on each group's work.
    pub timeout: Duration,
    /// Records compared on each side of a committed offset.
    pub window: i64,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions { groups: None, groups_pattern: None, apply: true, timeout: Duration::from_secs(30), window: 500 }
    }
}

impl DrillOptions {
    /// Options with a `--groups` pattern, anchored like the config's patterns.
    pub fn with_groups(pattern: &str) -> Result<DrillOptions> {
        let groups = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| Error::Config(format!("--groups {pattern:?}: {e}")))?;
        Ok(DrillOptions { groups: Some(groups), groups_pattern: Some(pattern.to_string()), ..DrillOptions::default() })
    }
}

/// What a running drill reports as it goes, for progress bars and live pages. As JSON:
/// `{"event": "checked", "group": "billing", "verdict": "pass"}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum DrillProgress {
    Started { id: String, flow: String },
    /// A cluster answered, or did not (`error`).
    Connected { cluster: String, error: Option<String> },
    /// The groups the drill will check.
    Groups { groups: Vec<String> },
    /// One group's translation was verified against the data.
    Checked { group: String, verdict: Verdict },
    /// One group's translation was applied to its drill group and read through.
    Applied { group: String, drill_group: String, apply_ms: u64, read_through: ReadThrough },
    /// Drill groups deleted from the target.
    CleanedUp { deleted: usize },
    Finished { verdict: Verdict },
}

/// A new drill id: UTC time to the second plus four hex digits, e.g. `20261125T054512Z-3f9a`.
pub fn new_id() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::clock::civil_from_days(days);
    let salt = (now.subsec_nanos() ^ std::process::id().wrapping_mul(2_654_435_761)) & 0xffff;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{salt:04x}", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub use crate::clock::format_utc;

/// Where drill reports are kept inside the config's state directory.
pub fn history_dir(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("drills")
}

/// The drill group that receives `group`'s translation in drill `id`.
pub fn drill_group(id: &str, group: &str) -> String {
    format!("{}{id}.{group}", crate::names::DRILL_GROUP_PREFIX)
}

/// Connects within `timeout`; the error is one line naming the cluster.
pub async fn connect_bounded(name: &str, cluster: &ClusterConfig, timeout: Duration) -> std::result::Result<Client, String> {
    match tokio::time::timeout(timeout, crate::cluster::connect(name, cluster)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("cluster {name}: no answer from {} within {timeout:?}", cluster.bootstrap)),
    }
}

/// Runs one drill of `flow`. Cluster trouble does not make this fail: it becomes the
/// report's `error` verdict (per group where it can); only a flow naming an unknown cluster
/// is an `Err`.
pub async fn run(flow: &Flow, clusters: &BTreeMap<String, ClusterConfig>, opts: &DrillOptions, progress: impl Fn(DrillProgress) + Send + Sync) -> Result<DrillReport> {
    let cluster = |name: &str| clusters.get(name).ok_or_else(|| Error::Config(format!("flow {} names unknown cluster {name}", flow.name())));
    let (source_cfg, target_cfg) = (cluster(&flow.source)?, cluster(&flow.target)?);
    let id = new_id();
    progress(DrillProgress::Started { id: id.clone(), flow: flow.name() });
    let mut report = DrillReport {
        schema_version: SCHEMA_VERSION,
        id,
        flow: flow.name(),
        source: flow.source.clone(),
        target: flow.target.clone(),
        groups_filter: opts.groups_pattern.clone(),
        started_at_ms: now_ms(),
        finished_at_ms: 0,
        flow_state: None,
        verdict: Verdict::Pass,
        rpo_records: 0,
        rpo_seconds: 0.0,
        rto_ms: None,
        redelivered_records: 0,
        missed_records: 0,
        partitions: Vec::new(),
        groups: Vec::new(),
        errors: Vec::new(),
    };
    let source = connect_bounded(&flow.source, source_cfg, opts.timeout).await;
    progress(DrillProgress::Connected { cluster: flow.source.clone(), error: source.as_ref().err().cloned() });
    let target = connect_bounded(&flow.target, target_cfg, opts.timeout).await;
    progress(DrillProgress::Connected { cluster: flow.target.clone(), error: target.as_ref().err().cloned() });
    if let Ok(t) = &target {
        match crate::control::read(t, &flow.target, &flow.name()).await {
            Ok(c) => report.flow_state = Some(c.state),
            Err(e) => report.errors.push(format!("reading the flow's control state: {e}")),
        }
    }
    match (source, target) {
        (Ok(source), Ok(target)) => {
            // Each step is bounded inside (per group), so many groups do not time the drill out.
            if let Err(e) = drill(flow, &source, &target, opts, &progress, &mut report).await {
                report.errors.push(e.to_string());
            }
        }
        (source, target) => unreachable_report(flow, opts, source, target, &mut report).await,
    }
    report.redelivered_records = report.groups.iter().map(|g| g.redelivered_records).sum();
    report.missed_records = report.groups.iter().map(|g| g.missed_records).sum();
    let worst = report.groups.iter().map(|g| g.verdict).filter(|v| !v.ok()).max();
    report.verdict = if !report.errors.is_empty() { Verdict::Error } else { worst.unwrap_or(Verdict::Pass) };
    report.finished_at_ms = now_ms();
    progress(DrillProgress::Finished { verdict: report.verdict });
    Ok(report)
}

/// One side cannot be reached: every group the other side knows of gets an `error` verdict
/// that says which cluster and why.
async fn unreachable_report(
    flow: &Flow,
    opts: &DrillOptions,
    source: std::result::Result<Client, String>,
    target: std::result::Result<Client, String>,
    report: &mut DrillReport,
) {
    let wanted = |g: &str| checkpoint::replicates_group(flow, g) && opts.groups.as_ref().is_none_or(|r| r.is_match(g));
    let mut groups: BTreeMap<String, String> = BTreeMap::new();
    match (&source, &target) {
        (Err(s), Ok(target)) => {
            // The source is gone: the target's checkpoints still name its groups.
            let last = last_checkpoints(flow, target).await.unwrap_or_default();
            for ((group, _, _), (cp, at)) in last.iter().filter(|((g, _, _), _)| wanted(g)) {
                let age = (now_ms() - at).max(0) as f64 / 1000.0;
                groups.entry(group.clone()).or_insert_with(|| {
                    format!("source unreachable ({s}): committed offsets cannot be read; its last checkpoint ({}: source {} -> target {}) is {age:.1} s old", cp.topic, cp.upstream_offset, cp.downstream_offset)
                });
            }
            report.errors.push(s.clone());
        }
        (Ok(source), Err(t)) => {
            for g in source.list_groups().await.unwrap_or_default().into_iter().filter(|g| wanted(g)) {
                groups.insert(g, format!("target unreachable ({t}): nothing can be translated or verified there"));
            }
            report.errors.push(t.clone());
        }
        (Err(s), Err(t)) => {
            report.errors.push(s.clone());
            report.errors.push(t.clone());
        }
        (Ok(_), Ok(_)) => {}
    }
    report.groups = groups.into_iter().map(|(group, reason)| error_group(group, reason)).collect();
}

fn error_group(group: String, reason: String) -> GroupReport {
    GroupReport {
        group,
        verdict: Verdict::Error,
        reason,
        drill_group: None,
        rpo_records: 0,
        rpo_seconds: 0.0,
        redelivered_records: 0,
        missed_records: 0,
        apply_ms: None,
        read_through: None,
        partitions: Vec::new(),
    }
}

/// The newest checkpoint per (group, remote topic, partition) on the target, with the time
/// it was written.
pub(crate) async fn last_checkpoints(flow: &Flow, target: &Client) -> Result<BTreeMap<(String, String, i32), (crate::mm2::Checkpoint, i64)>> {
    let topic = crate::mm2::checkpoints_topic(&flow.source);
    let md = target.refresh_metadata(None).await.map_err(|e| Error::cluster(&flow.target, e))?;
    let mut out = BTreeMap::new();
    if !md.topics.contains_key(&topic) {
        return Ok(out);
    }
    for r in target.read_all(&topic, 0).await.map_err(|e| Error::cluster(&flow.target, e))? {
        let (Some(k), Some(v)) = (r.key, r.value) else { continue };
        if let Ok(cp) = crate::mm2::Checkpoint::decode(k, v) {
            out.insert((cp.group.clone(), cp.topic.clone(), cp.partition), (cp, r.timestamp));
        }
    }
    Ok(out)
}

/// A source partition as the drill found it.
#[derive(Debug, Clone)]
pub(crate) struct PartitionState {
    pub remote: String,
    pub source_start: i64,
    pub source_end: i64,
    pub target_start: i64,
    pub target_end: i64,
    pub replicated_end: i64,
    pub rpo_seconds: f64,
}

/// Every replicated partition of the flow with its ends on both sides and its offset map
/// (whose end is set to the replicated end, as a running mirror's would be).
pub(crate) async fn partition_states(flow: &Flow, source: &Client, target: &Client) -> Result<(BTreeMap<Tp, PartitionState>, HashMap<Tp, OffsetMap>)> {
    let md = source.refresh_metadata(None).await.map_err(|e| Error::cluster(&flow.source, e))?;
    let mut tps: Vec<Tp> = md
        .topics
        .values()
        .filter(|t| !t.internal && naming::replicates(flow, &t.name) && !naming::is_heartbeats(&t.name))
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
        .collect();
    tps.sort();
    let state = store::load_target_state(flow, target).await?;
    let mut maps = state.maps.clone();
    let positions = source.committed_offsets(&crate::names::group_id(flow), &tps).await.map_err(|e| Error::cluster(&flow.source, e))?;
    let _ = target.refresh_metadata(None).await;
    let mut out = BTreeMap::new();
    for tp in tps {
        let remote = naming::remote_topic(flow, &tp.0);
        let (source_start, _) = source.list_offset(&tp.0, tp.1, EARLIEST).await.map_err(|e| Error::cluster(&flow.source, e))?;
        let (source_end, _) = source.list_offset(&tp.0, tp.1, LATEST).await.map_err(|e| Error::cluster(&flow.source, e))?;
        // A remote partition not created yet holds nothing.
        let target_end = target.list_offset_once(&remote, tp.1, LATEST).await.map(|(o, _)| o).unwrap_or(0);
        let target_start = target.list_offset_once(&remote, tp.1, EARLIEST).await.map(|(o, _)| o).unwrap_or(0);
        // The worker's committed position covers only acknowledged records, and passes what
        // the map cannot show: aborted transactions and their markers after the last run.
        let replicated_end = state
            .replicated_end(flow.delivery, &tp, target_end)
            .into_iter()
            .chain(positions.get(&tp).copied())
            .max()
            .unwrap_or(source_start)
            .clamp(source_start.min(source_end), source_end);
        let map = maps.entry(tp.clone()).or_default();
        if map.entries().next().is_some() || target_end > 0 {
            map.set_end(Entry { source: replicated_end, target: target_end });
        }
        let rpo_seconds = if replicated_end < source_end { age_of_first(source, &tp, replicated_end, source_end).await } else { 0.0 };
        out.insert(tp, PartitionState { remote, source_start, source_end, target_start, target_end, replicated_end, rpo_seconds });
    }
    Ok((out, maps))
}

/// Age in seconds of the first record at or after `from` (0 when it cannot be read).
async fn age_of_first(client: &Client, tp: &Tp, from: i64, end: i64) -> f64 {
    match client.read_range(&tp.0, tp.1, from, end.min(from + 100)).await {
        Ok(records) => records.first().map(|r| (now_ms() - r.timestamp).max(0) as f64 / 1000.0).unwrap_or(0.0),
        Err(_) => 0.0,
    }
}

/// What is compared across clusters: key, value, headers (in order), timestamp.
type Content = (Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>, i64);

fn content(r: &kafka_protocol::records::Record) -> Content {
    (r.key.clone(), r.value.clone(), r.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), r.timestamp)
}

async fn drill(flow: &Flow, source: &Client, target: &Client, opts: &DrillOptions, progress: &(impl Fn(DrillProgress) + Send + Sync), report: &mut DrillReport) -> Result<()> {
    let listed = tokio::time::timeout(opts.timeout, source.list_groups()).await.map_err(|_| Error::TimedOut(format!("listing groups on {} took over {:?}", flow.source, opts.timeout)))?;
    let groups: Vec<String> = listed
        .map_err(|e| Error::cluster(&flow.source, e))?
        .into_iter()
        .filter(|g| checkpoint::replicates_group(flow, g) && opts.groups.as_ref().is_none_or(|r| r.is_match(g)))
        .collect();
    progress(DrillProgress::Groups { groups: groups.clone() });
    // RTO, part one: what a failover computes before it can commit anything.
    let computing = Instant::now();
    let (states, maps) = tokio::time::timeout(opts.timeout, partition_states(flow, source, target))
        .await
        .map_err(|_| Error::TimedOut(format!("reading the flow's offsets and offset maps took over {:?}", opts.timeout)))??;
    let mut compute_ms = computing.elapsed().as_millis() as u64;
    report.partitions = states
        .iter()
        .map(|(tp, s)| PartitionRpo {
            topic: tp.0.clone(),
            partition: tp.1,
            remote_topic: s.remote.clone(),
            source_end: s.source_end,
            replicated_end: s.replicated_end,
            rpo_records: s.source_end - s.replicated_end,
            rpo_seconds: s.rpo_seconds,
        })
        .collect();
    report.rpo_records = report.partitions.iter().map(|p| p.rpo_records).sum();
    report.rpo_seconds = report.partitions.iter().map(|p| p.rpo_seconds).fold(0.0, f64::max);

    let mut applied = Vec::new();
    let mut apply_total = 0u64;
    for group in groups {
        let one = tokio::time::timeout(opts.timeout, check_group(flow, source, target, opts, &states, &maps, &group, &mut compute_ms)).await;
        let mut g = match one {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => error_group(group.clone(), e.to_string()),
            Err(_) => error_group(group.clone(), format!("not checked within {:?}", opts.timeout)),
        };
        progress(DrillProgress::Checked { group: group.clone(), verdict: g.verdict });
        if opts.apply && g.partitions.iter().any(|p| p.translated.is_some()) {
            let name = drill_group(&report.id, &group);
            let started = Instant::now();
            // The member is left on every path, a timeout included: a drill group with a live
            // member could not be deleted.
            let mut member = GroupMember::new(&name, Duration::from_secs(10), Duration::from_secs(10));
            let applied_and_read = tokio::time::timeout(opts.timeout, apply_and_read(target, &name, &states, &mut g, &mut member)).await;
            if let Err(e) = member.leave(target).await {
                tracing::debug!(group = %name, "leaving the drill group: {e}");
            }
            match applied_and_read {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    g.read_through = Some(ReadThrough::Failed);
                    g.verdict = g.verdict.max(Verdict::Error);
                    g.reason = format!("{}; applying to drill group {name} failed: {e}", g.reason);
                }
                Err(_) => {
                    g.read_through = Some(ReadThrough::Failed);
                    g.verdict = g.verdict.max(Verdict::Error);
                    g.reason = format!("{}; applying to drill group {name} did not finish within {:?}", g.reason, opts.timeout);
                }
            }
            let ms = started.elapsed().as_millis() as u64;
            apply_total += ms;
            g.apply_ms = Some(ms);
            g.drill_group = Some(name.clone());
            progress(DrillProgress::Applied { group: group.clone(), drill_group: name.clone(), apply_ms: ms, read_through: g.read_through.unwrap_or(ReadThrough::Failed) });
            applied.push(name);
        }
        report.groups.push(g);
    }
    if !applied.is_empty() {
        report.rto_ms = Some(compute_ms + apply_total);
        // One by one, so that one group that cannot be deleted leaves no other behind.
        let mut deleted = 0;
        for name in &applied {
            match target.delete_groups(std::slice::from_ref(name)).await {
                Ok(()) => deleted += 1,
                Err(e) => report.errors.push(format!("deleting drill group {name} on {}: {e}", flow.target)),
            }
        }
        progress(DrillProgress::CleanedUp { deleted });
    }
    Ok(())
}

/// Translates and verifies one group on every replicated partition it committed on.
#[allow(clippy::too_many_arguments)]
async fn check_group(
    flow: &Flow,
    source: &Client,
    target: &Client,
    opts: &DrillOptions,
    states: &BTreeMap<Tp, PartitionState>,
    maps: &HashMap<Tp, OffsetMap>,
    group: &str,
    compute_ms: &mut u64,
) -> Result<GroupReport> {
    let computing = Instant::now();
    let committed = source.all_committed_offsets(group).await.map_err(|e| Error::cluster(&flow.source, e))?;
    let committed: BTreeMap<Tp, i64> = committed.into_iter().filter(|(tp, _)| states.contains_key(tp)).collect();
    let translations: BTreeMap<Tp, Translation> = committed.iter().map(|(tp, c)| (tp.clone(), maps.get(tp).map(|m| m.translate(*c)).unwrap_or(Translation::BeforeMap))).collect();
    *compute_ms += computing.elapsed().as_millis() as u64;
    if committed.is_empty() {
        let mut g = error_group(group.to_string(), format!("no committed offsets on the topics {} replicates: nothing to move; its consumers would start by auto.offset.reset", flow.name()));
        g.verdict = Verdict::NoOffsets;
        return Ok(g);
    }
    let mut partitions = Vec::new();
    for (tp, c) in &committed {
        let state = &states[tp];
        partitions.push(verify_partition(source, target, opts.window, tp, state, *c, translations[tp]).await?);
    }
    let sum = |f: fn(&GroupPartitionReport) -> i64| partitions.iter().map(f).sum::<i64>();
    let (rpo, redelivered, missed) = (sum(|p| p.rpo_records), sum(|p| p.redelivered_records), sum(|p| p.missed_records));
    let rpo_seconds = partitions.iter().map(|p| p.rpo_seconds).fold(0.0, f64::max);
    let mismatched: Vec<String> = partitions.iter().filter(|p| p.check == Check::Mismatch).map(|p| format!("{}/{}", p.remote_topic, p.partition)).collect();
    // Nothing replicated matters only where the group has records left to read: a partition
    // it has read to the end (an empty one, say) loses nothing.
    let nothing: Vec<String> = partitions.iter().filter(|p| p.translated.is_none() && p.committed < p.source_end).map(|p| format!("{}/{}", p.topic, p.partition)).collect();
    let mut problems = Vec::new();
    if rpo > 0 {
        problems.push(format!("would lose {rpo} record(s) not yet replicated (oldest {rpo_seconds:.1} s old)"));
    }
    if missed > 0 {
        problems.push(format!("would skip {missed} record(s)"));
    }
    if redelivered > 0 {
        problems.push(format!("would re-read {redelivered} record(s) it already consumed"));
    }
    if !mismatched.is_empty() {
        problems.push(format!("the target record at the translated offset matches no source record near the committed one on {}", mismatched.join(", ")));
    }
    if !nothing.is_empty() {
        problems.push(format!("nothing replicated yet on {}", nothing.join(", ")));
    }
    let (verdict, reason) = if problems.is_empty() {
        (Verdict::Pass, format!("resumes exactly on {} partition(s): nothing lost, skipped or re-read", partitions.len()))
    } else {
        (Verdict::Fail, format!("a failover now: {}", problems.join("; ")))
    };
    Ok(GroupReport {
        group: group.to_string(),
        verdict,
        reason,
        drill_group: None,
        rpo_records: rpo,
        rpo_seconds,
        redelivered_records: redelivered,
        missed_records: missed,
        apply_ms: None,
        read_through: None,
        partitions,
    })
}

/// Compares the target records around the translated offset with the source records around
/// the committed offset and counts what a consumer starting there would skip or re-read.
async fn verify_partition(source: &Client, target: &Client, window: i64, tp: &Tp, s: &PartitionState, committed: i64, translation: Translation) -> Result<GroupPartitionReport> {
    let rpo_records = if committed >= s.source_end { 0 } else { s.source_end - committed.max(s.replicated_end) };
    let rpo_seconds = if rpo_records > 0 { age_of_first(source, tp, committed.max(s.replicated_end), s.source_end).await } else { 0.0 };
    let mut row = GroupPartitionReport {
        topic: tp.0.clone(),
        partition: tp.1,
        remote_topic: s.remote.clone(),
        committed,
        translated: translation.target(),
        translation: translation.state(),
        source_end: s.source_end,
        replicated_end: s.replicated_end,
        rpo_records,
        rpo_seconds,
        check: Check::NothingToCompare,
        redelivered_records: 0,
        missed_records: 0,
        read_through_offset: None,
        read_through: None,
    };
    let Some(t) = translation.target() else { return Ok(row) };
    let lo = (committed - window).max(s.source_start);
    let hi = (committed + window).min(s.source_end);
    let src: Vec<(i64, Content)> = if lo < hi {
        source.read_range(&tp.0, tp.1, lo, hi).await.map_err(|e| Error::during(format!("reading {}/{} on the source", tp.0, tp.1), e))?.iter().map(|r| (r.offset, content(r))).collect()
    } else {
        Vec::new()
    };
    let tlo = (t - 16).max(s.target_start);
    let thi = (t + 1).min(s.target_end);
    let dst = if tlo < thi {
        target.read_range(&s.remote, tp.1, tlo, thi).await.map_err(|e| Error::during(format!("reading {}/{} on the target", s.remote, tp.1), e))?
    } else {
        Vec::new()
    };
    let prev = dst.iter().rev().find(|r| r.offset < t).map(content);
    let next = dst.iter().find(|r| r.offset >= t).map(content);
    let cmp = compare(&src, prev.as_ref(), next.as_ref(), committed);
    row.check = cmp.check;
    row.redelivered_records = cmp.redelivered;
    row.missed_records = cmp.missed;
    Ok(row)
}

/// The outcome of comparing the target records at a resume point with the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Comparison {
    check: Check,
    redelivered: i64,
    missed: i64,
}

/// Finds the target records just before (`prev`) and at (`next`) the resume point among the
/// source records `src` around the committed offset, and counts what a consumer resuming
/// there would re-read (the source records from `next`'s up to the committed offset) or skip
/// (those from the committed offset up to `next`'s, or up to and including `prev`'s). Source
/// offsets that hold no record (compaction, markers) count for nothing.
fn compare(src: &[(i64, Content)], prev: Option<&Content>, next: Option<&Content>, committed: i64) -> Comparison {
    let find = |c: &Content, near: i64| src.iter().filter(|(_, x)| x == c).min_by_key(|(o, _)| (o - near).abs()).map(|(o, _)| *o);
    let count = |from: i64, to: i64| src.iter().filter(|(o, _)| *o >= from && *o < to).count() as i64;
    let mut out = Comparison { check: Check::NothingToCompare, redelivered: 0, missed: 0 };
    if let Some(next) = next {
        out.check = match find(next, committed) {
            Some(at) if at >= committed && count(committed, at) == 0 => Check::Match,
            Some(at) if at > committed => {
                out.missed = count(committed, at);
                Check::Skips
            }
            Some(at) => {
                out.redelivered = count(at, committed);
                Check::Repeats
            }
            None => Check::Mismatch,
        };
    }
    if let Some(at) = prev.and_then(|prev| find(prev, committed - 1)) {
        if at >= committed {
            // The record just before the resume point is one the group never consumed.
            out.missed = out.missed.max(count(committed, at + 1));
            out.check = Check::Skips;
        } else if next.is_none() {
            out.check = Check::Match;
        }
    }
    out
}

/// Commits the group's translations to its drill group on the target, then joins that group
/// as a consumer, fetches its committed offsets and reads the record at each: the proof that
/// a consumer of the real group would start where the drill says.
async fn apply_and_read(target: &Client, drill_group: &str, states: &BTreeMap<Tp, PartitionState>, g: &mut GroupReport, member: &mut GroupMember) -> Result<()> {
    let offsets: BTreeMap<Tp, i64> = g.partitions.iter().filter_map(|p| Some(((p.remote_topic.clone(), p.partition), p.translated?))).collect();
    target.commit_offsets(drill_group, &Membership::none(), &offsets).await?;
    let topics: Vec<String> = offsets.keys().map(|(t, _)| t.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let assigned = member.join(target, &topics).await?;
    let got = target.committed_offsets(drill_group, &assigned).await?;
    let mut results = Vec::new();
    for p in g.partitions.iter_mut() {
        let Some(t) = p.translated else { continue };
        let tp = (p.remote_topic.clone(), p.partition);
        let offset = got.get(&tp).copied();
        p.read_through_offset = offset;
        let end = states.get(&(p.topic.clone(), p.partition)).map(|s| s.target_end).unwrap_or(0);
        let result = match offset {
            Some(o) if o == t && o < end => {
                // The consumer's first record is the one the verification compared.
                let first = target.read_range(&p.remote_topic, p.partition, o, (o + 100).min(end)).await?;
                if !first.is_empty() && p.check != Check::Mismatch { ReadThrough::Read } else { ReadThrough::Failed }
            }
            // At the end of what was replicated: nothing to read yet, and nothing to get wrong.
            Some(o) if o == t => ReadThrough::NothingToRead,
            _ => ReadThrough::Failed,
        };
        // The drill group's consumer must have been given every partition that got an offset
        // (partitions of the same topics without one are assigned too, and do not matter).
        let result = if assigned.contains(&tp) { result } else { ReadThrough::Failed };
        p.read_through = Some(result);
        results.push(result);
    }
    g.read_through = Some(ReadThrough::combine(results));
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::clock::civil_from_days;
    use super::*;

    #[test]
    fn ids_are_sortable_times_and_valid_names() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let id = new_id();
        assert_eq!(id.len(), "20261125T054512Z-3f9a".len(), "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{id}");
        assert_eq!(drill_group("x", "billing"), "tern-drill.x.billing");
    }

    fn rec(n: i64) -> Content {
        (Some(Bytes::from(format!("k{n}"))), Some(Bytes::from(format!("v{n}"))), vec![("h".into(), None)], 1_000 + n)
    }

    #[test]
    fn comparisons_count_what_a_consumer_would_skip_or_re_read() {
        // Source offsets 10..30 with a compacted hole at 15..=17.
        let src: Vec<(i64, Content)> = (10..30).filter(|o| !(15..=17).contains(o)).map(|o| (o, rec(o))).collect();
        let cmp = |prev: Option<i64>, next: Option<i64>, committed| compare(&src, prev.map(rec).as_ref(), next.map(rec).as_ref(), committed);
        let ok = |check| Comparison { check, redelivered: 0, missed: 0 };
        assert_eq!(cmp(Some(19), Some(20), 20), ok(Check::Match));
        assert_eq!(cmp(Some(14), Some(18), 15), ok(Check::Match), "committed inside the hole: the next record is the first after it");
        assert_eq!(cmp(Some(14), Some(18), 20), Comparison { check: Check::Repeats, redelivered: 2, missed: 0 }, "18 and 19; nothing exists at 15..=17");
        assert_eq!(cmp(Some(19), Some(20), 23), Comparison { check: Check::Repeats, redelivered: 3, missed: 0 });
        assert_eq!(cmp(Some(24), Some(25), 21), Comparison { check: Check::Skips, redelivered: 0, missed: 4 });
        assert_eq!(cmp(Some(29), None, 30), ok(Check::Match), "caught up: nothing after the resume point yet");
        assert_eq!(cmp(Some(29), None, 27), Comparison { check: Check::Skips, redelivered: 0, missed: 3 }, "the end of the target is past the group");
        assert_eq!(cmp(None, Some(99), 20).check, Check::Mismatch);
        assert_eq!(cmp(None, None, 20), ok(Check::NothingToCompare));
    }

    #[test]
    fn a_drill_can_run_on_a_spawned_task() {
        fn spawnable<T: Send + 'static>(_: T) {}
        let v = crate::config::parse("[clusters.a]\nbootstrap = \"127.0.0.1:1\"\n[clusters.b]\nbootstrap = \"127.0.0.1:2\"\n[[flows]]\nsource = \"a\"\ntarget = \"b\"\ntopics = [\".*\"]\n").expect("config");
        let (flow, clusters) = (v.flows[0].clone(), std::sync::Arc::new(v.config.clusters));
        spawnable(async move { run(&flow, &clusters, &DrillOptions::default(), |_| {}).await });
    }

    #[test]
    fn progress_events_serialize_for_live_pages() {
        let e = DrillProgress::Checked { group: "billing".into(), verdict: Verdict::Pass };
        assert_eq!(serde_json::to_string(&e).expect("json"), r#"{"event":"checked","group":"billing","verdict":"pass"}"#);
    }

    #[test]
    fn the_groups_filter_is_anchored() {
        let o = DrillOptions::with_groups("bill.*").expect("regex");
        let r = o.groups.expect("set");
        assert!(r.is_match("billing") && !r.is_match("rebilling"));
        assert!(DrillOptions::with_groups("(").is_err());
    }
}
