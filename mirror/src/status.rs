//! What each flow is doing, per partition: positions, lag, throughput counters, errors. The
//! replication tasks write it; `tern run`'s status output, metrics and the dashboard read it.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    pub remote_topic: String,
    /// Next source offset to replicate: everything below is on the target.
    pub replicated_offset: i64,
    /// Source high watermark at the last fetch.
    pub source_end_offset: i64,
    /// The largest source high watermark seen since this worker took the partition: what a
    /// recreated topic held, even once the new topic's end is known.
    pub source_end_peak: i64,
    /// Timestamp of the newest replicated record (ms), -1 before the first.
    pub replicated_timestamp: i64,
    /// The oldest source record not yet on the target as last looked up: its batch's offset
    /// and first timestamp (ms). Current while its offset is `replicated_offset`.
    pub oldest_unreplicated: Option<(i64, i64)>,
    pub records: u64,
    pub bytes: u64,
    pub batches_fast: u64,
    pub batches_rewritten: u64,
    /// Why this partition stopped or keeps failing, as the operator should read it.
    pub error: Option<String>,
}

impl Default for PartitionStatus {
    fn default() -> Self {
        PartitionStatus {
            remote_topic: String::new(),
            replicated_offset: 0,
            source_end_offset: 0,
            source_end_peak: 0,
            replicated_timestamp: -1,
            oldest_unreplicated: None,
            records: 0,
            bytes: 0,
            batches_fast: 0,
            batches_rewritten: 0,
            error: None,
        }
    }
}

impl PartitionStatus {
    pub fn lag_records(&self) -> i64 {
        (self.source_end_offset - self.replicated_offset).max(0)
    }

    /// How far the target is behind in time: the age of the oldest source record not yet on
    /// the target, 0 when caught up.
    ///
    /// The record at `replicated_offset` is looked up on the source (about once a second);
    /// between look-ups, once later records were replicated, the oldest one left is at least
    /// as new as the newest replicated record, so the age is taken from the newer of the two.
    /// `None` while lagging before the first look-up.
    pub fn lag_seconds(&self, now_ms: i64) -> Option<f64> {
        if self.lag_records() == 0 {
            return Some(0.0);
        }
        let looked_up = match self.oldest_unreplicated {
            Some((offset, ts)) if offset == self.replicated_offset => return Some(age_seconds(now_ms, ts)),
            Some((offset, ts)) if offset < self.replicated_offset => Some(ts),
            _ => None,
        };
        let newest_replicated = (self.replicated_timestamp >= 0).then_some(self.replicated_timestamp);
        looked_up.max(newest_replicated).map(|ts| age_seconds(now_ms, ts))
    }
}

fn age_seconds(now_ms: i64, ts: i64) -> f64 {
    (now_ms - ts).max(0) as f64 / 1000.0
}

/// Seconds from a record's source timestamp to the target's acknowledgement of its batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    /// Count per bucket of [`LATENCY_BUCKETS`] (not cumulative), the last for larger values.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// Upper bounds (seconds) of the replication latency histogram's buckets.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: vec![0; LATENCY_BUCKETS.len() + 1], sum: 0.0, count: 0 }
    }
}

impl LatencyHistogram {
    /// Adds `n` records of one batch, `seconds` old when acknowledged.
    pub fn observe(&mut self, seconds: f64, n: u64) {
        let seconds = seconds.max(0.0);
        let bucket = LATENCY_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[bucket] += n;
        self.sum += seconds * n as f64;
        self.count += n;
    }

    /// (upper bound, cumulative count) per bucket, as Prometheus reports them.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        LATENCY_BUCKETS.iter().zip(&self.counts).map(|(b, c)| {
            total += c;
            (*b, total)
        }).collect()
    }
}

#[derive(Debug, Default)]
pub struct FlowStatus {
    pub name: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
pub struct FlowSnapshot {
    pub partitions: BTreeMap<(String, i32), PartitionStatus>,
    /// Flow-level trouble (a cluster unreachable, a topic that cannot be created).
    pub errors: Vec<String>,
    pub heartbeats_sent: u64,
    /// Consumer-group translations of the owned partitions: (group, (topic, partition)).
    pub groups: BTreeMap<(String, (String, i32)), crate::checkpoint::GroupPartition>,
    /// The operators' latest decision (paused, failover state) as this worker last read it.
    pub control: crate::control::Control,
    /// Whether this worker has read the decisions at all: until then it replicates nothing
    /// (a flow failed over must not restart copying because its decision is not known yet).
    pub control_read: bool,
    /// Why the decisions cannot be read now (the last one read stays in force).
    pub control_error: Option<String>,
    /// Replication latency of every record this worker replicated.
    pub latency: LatencyHistogram,
    /// Why the flow stopped on this worker (an error it could not ride out, a panic); `None`
    /// while it runs.
    pub stopped: Option<String>,
    /// What the source did under the flow (a topic recreated, records deleted before they were
    /// replicated, a truncated log), newest last, the last [`SOURCE_EVENTS_KEPT`].
    pub source_events: Vec<SourceEventRecord>,
    /// Records lost on the source before replication, per partition, since the worker started.
    pub lost_records: BTreeMap<(String, i32), i64>,
    /// Source events per kind since the worker started.
    pub source_event_counts: BTreeMap<crate::states::SourceEvent, u64>,
    /// The link to the source as this worker measured it when the flow started, and the
    /// connections per source broker it fetches over.
    pub source_link: Option<Link>,
    /// The link to the target as this worker measured it when the flow started, and the
    /// connections per target broker it produces over.
    pub target_link: Option<Link>,
    /// This worker's membership of the flow's group on the source.
    pub group_session: GroupSession,
}

/// A worker's membership of its flow's group: a generation that stays put while workers come
/// and go only when they must, and the times the worker had to stop because its session was
/// lost (see [`crate::session`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupSession {
    /// The generation joined last; `None` before the first join.
    pub generation: Option<i32>,
    /// Successful joins since the worker started: the first, then one per rebalance.
    pub joins: u64,
    /// Sessions lost (the coordinator ended the membership, or no heartbeat was answered in
    /// time), each followed by a rejoin.
    pub sessions_lost: u64,
}

/// The round trip to a flow's source or target when the flow started, and the connections per
/// broker the worker fetches or produces over because of it (see [`crate::config::Connections`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub round_trip_ms: u64,
    pub connections: usize,
}

/// How many source events a flow's status keeps.
pub const SOURCE_EVENTS_KEPT: usize = 20;

/// How long a source event keeps the flow in error (dashboard) and not ready (`/readyz`), so
/// that an alert on either fires: ten minutes.
pub const SOURCE_EVENT_SHOWN_MS: i64 = 10 * 60 * 1000;

/// One thing the source did under the flow, for the dashboard, `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEventRecord {
    pub kind: crate::states::SourceEvent,
    pub topic: String,
    pub partition: i32,
    pub at_ms: i64,
    /// Records known lost: deleted before replication, or held by a recreated topic past the
    /// replicated position. `None` when this worker cannot know (it did not own the partition
    /// when the old topic went away).
    pub lost: Option<i64>,
    /// The replication position before and after.
    pub from: i64,
    pub resumed_at: i64,
}

impl SourceEventRecord {
    /// One line for the dashboard, `/readyz` and the log.
    pub fn describe(&self) -> String {
        use crate::states::SourceEvent::*;
        let lost = match self.lost {
            Some(n) => format!("{n} record(s) lost"),
            None => "an unknown number of records lost".to_string(),
        };
        let what = match self.kind {
            Recreated => format!("source topic recreated: {lost} (the old topic's past offset {}); replicating the new topic from offset {}", self.from, self.resumed_at),
            LogStartMoved => format!("source log start moved past the replicated position: {lost} (offsets {} to {} deleted before replication)", self.from, self.resumed_at - 1),
            Truncated => format!("source log truncated below the replicated position {}: replicating from offset {}, where it diverged; the target keeps the records the source lost", self.from, self.resumed_at),
        };
        format!("{}/{}: {} ({})", self.topic, self.partition, what, self.kind)
    }
}

impl FlowSnapshot {
    /// Source events of the last [`SOURCE_EVENT_SHOWN_MS`].
    pub fn recent_source_events(&self, now_ms: i64) -> impl Iterator<Item = &SourceEventRecord> {
        self.source_events.iter().filter(move |e| now_ms - e.at_ms < SOURCE_EVENT_SHOWN_MS)
    }
}

/// A flow's partitions summed up, for one-line status reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowTotals {
    pub partitions: usize,
    pub records: u64,
    pub lag_records: i64,
    /// Partitions reporting an error plus flow-level errors.
    pub errors: usize,
}

impl FlowSnapshot {
    pub fn totals(&self) -> FlowTotals {
        FlowTotals {
            partitions: self.partitions.len(),
            records: self.partitions.values().map(|p| p.records).sum(),
            lag_records: self.partitions.values().map(|p| p.lag_records()).sum(),
            errors: self.partitions.values().filter(|p| p.error.is_some()).count() + self.errors.len() + usize::from(self.stopped.is_some()),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    snapshot: FlowSnapshot,
}

impl FlowStatus {
    pub fn new(name: String) -> FlowStatus {
        FlowStatus { name, inner: Mutex::default() }
    }

    pub fn update(&self, topic: &str, partition: i32, f: impl FnOnce(&mut PartitionStatus)) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(inner.snapshot.partitions.entry((topic.to_string(), partition)).or_default());
    }

    /// Drops a partition this worker no longer owns.
    pub fn forget(&self, topic: &str, partition: i32) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.partitions.remove(&(topic.to_string(), partition));
    }

    pub fn joined(&self, generation: i32) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let session = &mut inner.snapshot.group_session;
        session.generation = Some(generation);
        session.joins += 1;
    }

    pub fn session_lost(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.group_session.sessions_lost += 1;
    }

    pub fn set_source_link(&self, link: Link) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.source_link = Some(link);
    }

    pub fn set_target_link(&self, link: Link) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.target_link = Some(link);
    }

    pub fn set_errors(&self, errors: Vec<String>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.errors = errors;
    }

    pub fn set_groups(&self, groups: BTreeMap<(String, (String, i32)), crate::checkpoint::GroupPartition>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.groups = groups;
    }

    pub fn set_control(&self, control: crate::control::Control) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.snapshot.control = control;
        inner.snapshot.control_read = true;
    }

    pub fn set_control_error(&self, error: Option<String>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.control_error = error;
    }

    /// Whether this worker has read the operators' decisions yet.
    pub fn control_read(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.control_read
    }

    /// Whether the worker should copy records: it has read the operators' decision, and the
    /// decision lets it.
    pub fn replicating(&self) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.snapshot.control_read && inner.snapshot.control.replicating()
    }

    pub fn control(&self) -> crate::control::Control {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.control.clone()
    }

    pub fn set_stopped(&self, reason: String) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.stopped = Some(reason);
    }

    /// Records what the source did; keeps the last [`SOURCE_EVENTS_KEPT`] events.
    pub fn source_event(&self, event: SourceEventRecord) {
        tracing::warn!(flow = %self.name, "{}", event.describe());
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let snap = &mut inner.snapshot;
        *snap.lost_records.entry((event.topic.clone(), event.partition)).or_default() += event.lost.unwrap_or(0);
        *snap.source_event_counts.entry(event.kind).or_default() += 1;
        snap.source_events.push(event);
        let excess = snap.source_events.len().saturating_sub(SOURCE_EVENTS_KEPT);
        snap.source_events.drain(..excess);
    }

    pub fn observe_latency(&self, seconds: f64, records: u64) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.latency.observe(seconds, records);
    }

    pub fn heartbeat_sent(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.heartbeats_sent += 1;
    }

    pub fn snapshot(&self) -> FlowSnapshot {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_in_seconds_is_the_age_of_the_oldest_record_not_on_the_target() {
        let now = 1_000_000;
        let mut p = PartitionStatus { replicated_offset: 10, source_end_offset: 10, replicated_timestamp: now - 500_000, ..Default::default() };
        assert_eq!(p.lag_seconds(now), Some(0.0), "caught up");
        p.source_end_offset = 20;
        // Before any look-up the newest replicated record bounds it.
        assert_eq!(p.lag_seconds(now), Some(500.0));
        // Looked up: the record at offset 10 is 30 s old, however old the last replicated one.
        p.oldest_unreplicated = Some((10, now - 30_000));
        assert_eq!(p.lag_seconds(now), Some(30.0));
        // Offsets 10..15 replicated since, the newest 20 s old: the oldest left is newer.
        p.replicated_offset = 15;
        p.replicated_timestamp = now - 20_000;
        assert_eq!(p.lag_seconds(now), Some(20.0));
        let fresh = PartitionStatus { source_end_offset: 5, ..Default::default() };
        assert_eq!(fresh.lag_seconds(now), None, "lagging, nothing known yet");
    }

    #[test]
    fn latency_buckets_count_records() {
        let mut h = LatencyHistogram::default();
        h.observe(0.003, 10);
        h.observe(0.2, 5);
        h.observe(5000.0, 1);
        h.observe(-1.0, 1);
        assert_eq!(h.count, 17);
        let c = h.cumulative();
        assert_eq!(c[0], (0.005, 11));
        assert_eq!(c.iter().find(|(b, _)| *b == 0.25).map(|x| x.1), Some(16));
        assert_eq!(c.last().map(|x| x.1), Some(16), "5000 s is above the last bound: only in +Inf (count)");
        assert!((h.sum - (0.03 + 1.0 + 5000.0)).abs() < 1e-9);
    }
}
