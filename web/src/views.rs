//! What the pages show, computed once per request from the flows' status, the lag history
//! and the cluster polls. The JSON API serializes these same structures, so the API carries
//! everything the pages show.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::history::{Outlook, Sample, Series, Trend};
use crate::metrics::now_ms;
use crate::state::AppState;

/// Above this many seconds of lag a flow shows as lagging.
pub const LAGGING_SECONDS: f64 = 30.0;

/// A growing lag makes a flow lagging only once its oldest waiting record is this old: under a
/// steady load the lag in records wobbles by a batch or two, and that is not news.
pub const GROWING_FLOOR_SECONDS: f64 = 5.0;

/// Whether a flow's lag is worth an operator's look: old, or growing and no longer fresh.
pub fn is_lagging(lag_seconds: f64, trend: Trend) -> bool {
    lag_seconds > LAGGING_SECONDS || (trend == Trend::Growing && lag_seconds >= GROWING_FLOOR_SECONDS)
}

pub use tern_mirror::states::Health;
use tern_mirror::states::{FailoverState, SyncState, TranslationState};

#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub name: String,
    pub region: Option<String>,
    pub cloud: Option<String>,
    /// `None` until the first poll finished.
    pub reachable: Option<bool>,
    pub brokers: usize,
    /// Why the last poll failed, without addresses.
    pub error: Option<String>,
    pub health: Health,
    /// The flows that replicate from this cluster, and into it.
    pub source_of: Vec<String>,
    pub target_of: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionView {
    pub topic: String,
    pub partition: i32,
    pub remote_topic: String,
    pub replicated_offset: i64,
    pub source_end_offset: i64,
    pub lag_records: i64,
    /// `None` while lagging with no replicated timestamp to measure from.
    pub lag_seconds: Option<f64>,
    pub records: u64,
    pub bytes: u64,
    pub error: Option<String>,
    /// Whether this worker replicates the partition. Other workers' partitions show the
    /// position the flow's group committed on the source (up to a second behind) and no rates.
    pub owned_here: bool,
    #[serde(flatten)]
    pub outlook: Outlook,
    /// (time ms, lag records) over the last hour.
    pub lag_history: Vec<(i64, i64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub flow: String,
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub translated_offset: Option<i64>,
    pub state: TranslationState,
    pub checkpoint_age_seconds: Option<f64>,
    /// Records between the group's committed offset and the source end.
    pub lag_records: i64,
    /// Age of the first record the group has not consumed; `None` when not known.
    pub lag_seconds: Option<f64>,
    pub sync: SyncState,
    /// Why the sync is blocked or failed.
    pub sync_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowView {
    pub name: String,
    pub source: String,
    pub target: String,
    pub health: Health,
    pub paused: bool,
    pub failover_state: FailoverState,
    /// Whether this worker has read the flow's decisions (until then `paused` and
    /// `failover_state` are defaults, and it replicates nothing).
    pub decisions_read: bool,
    pub control_reason: String,
    pub partitions: Vec<PartitionView>,
    pub lag_records: i64,
    /// The largest partition lag in seconds.
    pub lag_seconds: f64,
    #[serde(flatten)]
    pub outlook: Outlook,
    pub lag_history: Vec<(i64, i64)>,
    pub errors: Vec<String>,
    pub groups: Vec<GroupView>,
    pub heartbeats_sent: u64,
    /// The round trip to the source this worker measured when the flow started.
    pub source_round_trip_ms: Option<u64>,
    /// Connections per source broker this worker fetches over.
    pub fetch_connections: Option<usize>,
    /// The round trip to the target this worker measured when the flow started.
    pub target_round_trip_ms: Option<u64>,
    /// Connections per target broker this worker produces over.
    pub produce_connections: Option<usize>,
    /// This worker's generation of the flow's group on the source.
    pub group_generation: Option<i32>,
    /// Group joins since the worker started (the first, then one per rebalance).
    pub group_joins: u64,
    /// Sessions in the flow's group this worker lost since it started.
    pub group_sessions_lost: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigRow {
    pub key: String,
    pub source: Option<String>,
    pub target: Option<String>,
    /// Source and target differ on a key that is replicated.
    pub drift: bool,
    /// Never replicated (see the flow's exclusion list).
    pub excluded: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicView {
    pub flow: String,
    pub topic: String,
    pub remote_topic: String,
    pub source_partitions: Option<usize>,
    pub target_partitions: Option<usize>,
    pub configs: Vec<ConfigRow>,
    /// Any replicated config or the partition count differs.
    pub drift: bool,
}

impl PartitionView {
    pub fn sparkline(&self) -> String {
        crate::history::sparkline(&self.lag_history)
    }
}

impl FlowView {
    pub fn sparkline(&self) -> String {
        crate::history::sparkline(&self.lag_history)
    }
}

/// A partition row as a history sample. Throughput is measured by the replicated position,
/// which keeps counting the same way when the partition moves between workers.
fn sample_of(p: &PartitionView, now: i64) -> Sample {
    Sample { at_ms: now, lag_records: p.lag_records, lag_seconds: p.lag_seconds.unwrap_or(0.0), records: p.replicated_offset.max(0) as u64, bytes: p.bytes }
}

impl AppState {
    pub fn cluster_views(&self) -> Vec<ClusterView> {
        let health = self.0.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let topology = self.topology();
        topology
            .clusters
            .iter()
            .map(|(name, info)| {
                let h = health.get(name).cloned().unwrap_or_default();
                let flows = |side: fn(&tern_mirror::config::Flow) -> &String| topology.flows.iter().filter(|f| side(f) == name).map(|f| f.name()).collect();
                ClusterView {
                    name: name.clone(),
                    region: info.region.clone(),
                    cloud: info.cloud.clone(),
                    reachable: h.reachable,
                    brokers: h.brokers,
                    error: h.error.clone(),
                    health: match h.reachable {
                        None => Health::Unknown,
                        Some(true) => Health::Ok,
                        Some(false) => Health::Error,
                    },
                    source_of: flows(|f| &f.source),
                    target_of: flows(|f| &f.target),
                }
            })
            .collect()
    }

    pub fn flow_views(&self) -> Vec<FlowView> {
        self.topology().flows.iter().filter_map(|f| self.flow_view(&f.name())).collect()
    }

    /// The rows of a flow's partitions without their history: this worker's partitions from
    /// its status, the others' from the source's view of the flow's group.
    fn partition_rows(&self, flow: &tern_mirror::config::Flow, snap: &tern_mirror::status::FlowSnapshot, now: i64) -> Vec<PartitionView> {
        let unknown = Outlook { records_per_second: 0.0, bytes_per_second: 0.0, trend: Trend::Unknown, catch_up_seconds: None };
        let mut rows: Vec<PartitionView> = snap
            .partitions
            .iter()
            .map(|((topic, partition), p)| PartitionView {
                topic: topic.clone(),
                partition: *partition,
                remote_topic: p.remote_topic.clone(),
                replicated_offset: p.replicated_offset,
                source_end_offset: p.source_end_offset,
                lag_records: p.lag_records(),
                lag_seconds: p.lag_seconds(now),
                records: p.records,
                bytes: p.bytes,
                error: p.error.as_deref().map(|e| self.redact(e)),
                owned_here: true,
                outlook: unknown.clone(),
                lag_history: Vec::new(),
            })
            .collect();
        let progress = self.0.progress.lock().unwrap_or_else(|p| p.into_inner()).get(&flow.name()).cloned().unwrap_or_default();
        for ((topic, partition), end) in &progress.ends {
            if snap.partitions.contains_key(&(topic.clone(), *partition)) {
                continue;
            }
            let position = progress.committed.get(&(topic.clone(), *partition)).copied().unwrap_or(0);
            let lag = (end - position).max(0);
            rows.push(PartitionView {
                topic: topic.clone(),
                partition: *partition,
                remote_topic: tern_mirror::naming::remote_topic(flow, topic),
                replicated_offset: position,
                source_end_offset: *end,
                lag_records: lag,
                lag_seconds: (lag == 0).then_some(0.0),
                records: 0,
                bytes: 0,
                error: None,
                owned_here: false,
                outlook: unknown.clone(),
                lag_history: Vec::new(),
            });
        }
        rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        rows
    }

    /// Samples every flow's partitions into the lag history (the sampler calls this).
    pub(crate) fn record_history(&self, now: i64) {
        let rows: Vec<(String, Vec<PartitionView>)> = self
            .topology()
            .flows
            .iter()
            .map(|f| {
                let snap = self.status(&f.name()).map(|s| s.snapshot()).unwrap_or_default();
                (f.name(), self.partition_rows(f, &snap, now))
            })
            .collect();
        let mut history = self.0.history.lock().unwrap_or_else(|p| p.into_inner());
        for (flow, parts) in rows {
            history.record(&flow, parts.iter().map(|p| ((p.topic.clone(), p.partition), sample_of(p, now))), now);
        }
    }

    /// One flow, `None` if no such flow is configured.
    pub fn flow_view(&self, name: &str) -> Option<FlowView> {
        let topology = self.topology();
        let flow = topology.flow(name)?;
        let snap = self.status(name).map(|s| s.snapshot()).unwrap_or_default();
        let now = now_ms();
        let mut partitions = self.partition_rows(flow, &snap, now);
        let history = self.0.history.lock().unwrap_or_else(|p| p.into_inner());
        let empty = Series::default();
        for p in &mut partitions {
            let series = history.partitions.get(&(name.to_string(), p.topic.clone(), p.partition)).unwrap_or(&empty);
            p.outlook = series.outlook_at(Some(sample_of(p, now)));
            p.lag_history = series.lag_points();
        }
        let series = history.flows.get(name).unwrap_or(&empty);
        let lag_records = partitions.iter().map(|p| p.lag_records).sum();
        let mut outlook = series.outlook_at(Some(Sample { at_ms: now, lag_records, lag_seconds: 0.0, records: partitions.iter().map(|p| p.replicated_offset.max(0) as u64).sum(), bytes: partitions.iter().map(|p| p.bytes).sum() }));
        if partitions.is_empty() {
            outlook.trend = Trend::Unknown;
        }
        let lag_secs = partitions.iter().filter_map(|p| p.lag_seconds).fold(0.0, f64::max);
        let mut errors: Vec<String> = snap.errors.iter().map(|e| self.redact(e)).collect();
        // What the source did under the flow stays an error for a while, so that it is seen.
        errors.extend(snap.recent_source_events(now).map(|e| self.redact(&e.describe())));
        errors.extend(snap.control_error.iter().map(|e| self.redact(e)));
        if let Some(reason) = &snap.stopped {
            errors.insert(0, format!("the flow stopped on this worker: {}", self.redact(reason)));
        }
        let control = &snap.control;
        let health = if !errors.is_empty() || partitions.iter().any(|p| p.error.is_some()) {
            Health::Error
        } else if !snap.control_read {
            // This worker has not read the flow's decisions yet: it does not replicate, and
            // what it would do is not known.
            Health::Unknown
        } else if control.state != FailoverState::Active {
            Health::FailedOver
        } else if control.paused {
            Health::Paused
        } else if partitions.is_empty() {
            Health::Unknown
        } else if is_lagging(lag_secs, outlook.trend) {
            Health::Lagging
        } else {
            Health::Ok
        };
        let groups = snap
            .groups
            .iter()
            .map(|((group, (topic, partition)), g)| GroupView {
                flow: name.to_string(),
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
                committed_offset: g.committed,
                translated_offset: g.translation.target(),
                state: g.translation.state(),
                checkpoint_age_seconds: (g.checkpoint_at >= 0).then(|| (now - g.checkpoint_at).max(0) as f64 / 1000.0),
                lag_records: g.lag_records,
                lag_seconds: g.lag_seconds,
                sync: g.sync,
                sync_reason: g.sync_reason.as_deref().map(|r| self.redact(r)),
            })
            .collect();
        Some(FlowView {
            name: name.to_string(),
            source: flow.source.clone(),
            target: flow.target.clone(),
            health,
            paused: control.paused,
            failover_state: control.state,
            decisions_read: snap.control_read,
            control_reason: control.reason.clone(),
            partitions,
            lag_records,
            lag_seconds: lag_secs,
            outlook,
            lag_history: series.lag_points(),
            errors,
            groups,
            heartbeats_sent: snap.heartbeats_sent,
            source_round_trip_ms: snap.source_link.map(|l| l.round_trip_ms),
            fetch_connections: snap.source_link.map(|l| l.connections),
            target_round_trip_ms: snap.target_link.map(|l| l.round_trip_ms),
            produce_connections: snap.target_link.map(|l| l.connections),
            group_generation: snap.group_session.generation,
            group_joins: snap.group_session.joins,
            group_sessions_lost: snap.group_session.sessions_lost,
        })
    }

    /// Every replicated topic of every flow, with both sides' configs.
    pub fn topic_views(&self) -> Vec<TopicView> {
        let health = self.0.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let none = crate::state::ClusterHealth::default();
        let mut out = Vec::new();
        for f in &self.topology().flows {
            let source = health.get(&f.source).unwrap_or(&none);
            let target = health.get(&f.target).unwrap_or(&none);
            for (topic, count) in source.partitions.iter().filter(|(t, _)| tern_mirror::naming::replicates(f, t)) {
                let remote = tern_mirror::naming::remote_topic(f, topic);
                let empty = BTreeMap::new();
                let sc = source.configs.get(topic).unwrap_or(&empty);
                let tc = target.configs.get(&remote).unwrap_or(&empty);
                let keys: BTreeSet<&String> = sc.keys().chain(tc.keys()).collect();
                let configs: Vec<ConfigRow> = keys
                    .into_iter()
                    .map(|k| {
                        let excluded = tern_mirror::flow::CONFIG_EXCLUDES.contains(&k.as_str());
                        let (s, t) = (sc.get(k).cloned(), tc.get(k).cloned());
                        ConfigRow { key: k.clone(), drift: !excluded && s != t, excluded, source: s, target: t }
                    })
                    .collect();
                let target_partitions = target.partitions.get(&remote).copied();
                let drift = configs.iter().any(|c| c.drift) || target_partitions.is_some_and(|t| t != *count);
                out.push(TopicView {
                    flow: f.name(),
                    topic: topic.clone(),
                    remote_topic: remote,
                    source_partitions: Some(*count),
                    target_partitions,
                    configs,
                    drift,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wobble_is_not_lagging_an_old_or_growing_old_lag_is() {
        assert!(!is_lagging(0.4, Trend::Growing), "a batch in flight under steady load");
        assert!(is_lagging(6.0, Trend::Growing));
        assert!(!is_lagging(20.0, Trend::Steady));
        assert!(is_lagging(31.0, Trend::Shrinking));
    }
}
