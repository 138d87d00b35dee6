//! Prometheus metrics computed from the flows' status at scrape time, so the numbers on
//! `/metrics` and on the dashboard always agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use tern_mirror::status::FlowStatus;

pub struct FlowCollector {
    flows: Arc<std::sync::Mutex<BTreeMap<String, Arc<FlowStatus>>>>,
    descs: Vec<Desc>,
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
}

const FAMILIES: &[Family] = &[
    Family { name: "tern_replicated_records_total", help: "Records replicated to the target, by source partition.", kind: MetricType::COUNTER },
    Family { name: "tern_replicated_bytes_total", help: "Record-set bytes produced to the target, by source partition.", kind: MetricType::COUNTER },
    Family { name: "tern_lag_records", help: "Source end offset minus the replicated position.", kind: MetricType::GAUGE },
    Family { name: "tern_lag_seconds", help: "Age of the oldest source record not yet on the target (0 when caught up).", kind: MetricType::GAUGE },
    Family { name: "tern_replicated_offset", help: "Next source offset to replicate (everything below is on the target).", kind: MetricType::GAUGE },
    Family { name: "tern_source_end_offset", help: "Source high watermark at the last fetch.", kind: MetricType::GAUGE },
    Family { name: "tern_partition_errors", help: "1 while the partition reports an error, else 0.", kind: MetricType::GAUGE },
    Family { name: "tern_fast_path_batches_total", help: "Batches produced as fetched (compression untouched).", kind: MetricType::COUNTER },
    Family { name: "tern_rewritten_batches_total", help: "Batches decoded and re-encoded (record path).", kind: MetricType::COUNTER },
    Family { name: "tern_heartbeats_total", help: "MM2-format heartbeats written to the target, by flow.", kind: MetricType::COUNTER },
];

/// Per consumer group and source partition, from the latest checkpoint.
const GROUP_FAMILIES: &[Family] = &[
    Family { name: "tern_group_committed_offset", help: "The group's committed offset on the source.", kind: MetricType::GAUGE },
    Family { name: "tern_group_translated_offset", help: "Where the group resumes on the target (-1 before anything was replicated).", kind: MetricType::GAUGE },
    Family { name: "tern_group_checkpoint_age_seconds", help: "Seconds since the group's last checkpoint was written.", kind: MetricType::GAUGE },
    Family { name: "tern_group_ahead_of_replication", help: "1 when the group has read past what was replicated (it resumes at the replicated end).", kind: MetricType::GAUGE },
    Family { name: "tern_group_lag_records", help: "Records between the group's committed offset and the source end.", kind: MetricType::GAUGE },
    Family { name: "tern_group_lag_seconds", help: "Age of the first record the group has not consumed (0 when caught up).", kind: MetricType::GAUGE },
    Family { name: "tern_group_sync_blocked", help: "1 when the translated offsets could not be synced onto the target group (sync state blocked or failed).", kind: MetricType::GAUGE },
];

/// What the source did under the flows: records lost before replication, by source partition,
/// and events by kind (label event: recreated, log-start-moved, truncated).
const SOURCE_FAMILIES: &[Family] = &[
    Family { name: "tern_source_lost_records_total", help: "Records the source lost before they were replicated (deleted past the replicated position, or held by a recreated topic), by source partition.", kind: MetricType::COUNTER },
    Family { name: "tern_source_events_total", help: "Source topics recreated, log starts moved past the replicated position and truncated logs, by flow (label event).", kind: MetricType::COUNTER },
];

/// By flow: this worker's membership of the flow's group on the source.
const MEMBERSHIP_FAMILIES: &[Family] = &[
    Family { name: "tern_flow_group_joins_total", help: "Joins of the flow's group on the source by this worker: the first, then one per rebalance.", kind: MetricType::COUNTER },
    Family { name: "tern_flow_group_sessions_lost_total", help: "Sessions in the flow's group this worker lost (the coordinator ended its membership, or no heartbeat was answered in time); it stopped producing and rejoined each time.", kind: MetricType::COUNTER },
];

/// By flow: seconds from each record's source timestamp to the target's acknowledgement.
const LATENCY: Family = Family {
    name: "tern_replication_latency_seconds",
    help: "Seconds from a record's source timestamp (its batch's first record's) to the target's acknowledgement, per record this worker replicated.",
    kind: MetricType::HISTOGRAM,
};

/// State sets: one sample per flow or group partition, labelled with its current state's word
/// (value 1).
const STATE_FAMILIES: &[Family] = &[
    Family { name: "tern_flow_up", help: "1 while the flow runs on this worker, 0 once it stopped by itself (an error it could not ride out, a panic).", kind: MetricType::GAUGE },
    Family { name: "tern_flow_failover_state", help: "The flow's failover state (label state: active, failing-over, failed-over, failing-back).", kind: MetricType::GAUGE },
    Family { name: "tern_group_translation_state", help: "How the group's committed offset translates (label state: exact, ahead-of-replication, nothing-replicated).", kind: MetricType::GAUGE },
    Family { name: "tern_group_sync_state", help: "What the last sync of the target group did (label state: off, synced, in-sync, blocked, failed).", kind: MetricType::GAUGE },
];

impl FlowCollector {
    pub fn new(flows: Arc<std::sync::Mutex<BTreeMap<String, Arc<FlowStatus>>>>) -> FlowCollector {
        let descs = FAMILIES
            .iter()
            .chain(GROUP_FAMILIES)
            .chain(STATE_FAMILIES)
            .chain(SOURCE_FAMILIES)
            .chain([&LATENCY])
            .filter_map(|f| Desc::new(f.name.to_string(), f.help.to_string(), vec![], Default::default()).ok())
            .collect();
        FlowCollector { flows, descs }
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn sample(labels: Vec<LabelPair>, kind: MetricType, value: f64) -> Metric {
    let mut m = Metric::default();
    m.set_label(labels);
    if kind == MetricType::COUNTER {
        let mut c = Counter::default();
        c.set_value(value);
        m.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    }
    m
}

fn histogram(labels: Vec<LabelPair>, h: &tern_mirror::status::LatencyHistogram) -> Metric {
    let mut out = Histogram::default();
    out.set_sample_count(h.count);
    out.set_sample_sum(h.sum);
    out.set_bucket(h
        .cumulative()
        .into_iter()
        .map(|(bound, count)| {
            let mut b = Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(count);
            b
        })
        .collect());
    let mut m = Metric::default();
    m.set_label(labels);
    m.set_histogram(out);
    m
}

pub use tern_mirror::clock::now_ms;

impl Collector for FlowCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut samples: Vec<Vec<Metric>> = FAMILIES.iter().map(|_| Vec::new()).collect();
        let mut group_samples: Vec<Vec<Metric>> = GROUP_FAMILIES.iter().map(|_| Vec::new()).collect();
        let mut state_samples: Vec<Vec<Metric>> = STATE_FAMILIES.iter().map(|_| Vec::new()).collect();
        let mut source_samples: Vec<Vec<Metric>> = SOURCE_FAMILIES.iter().map(|_| Vec::new()).collect();
        let mut membership_samples: Vec<Vec<Metric>> = MEMBERSHIP_FAMILIES.iter().map(|_| Vec::new()).collect();
        let mut latency = Vec::new();
        let now = now_ms();
        let flows = self.flows.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (flow, status) in &flows {
            let snap = status.snapshot();
            for ((topic, partition), p) in &snap.partitions {
                let labels = || vec![label("flow", flow), label("topic", topic), label("partition", &partition.to_string())];
                // An unknown lag in seconds is left out rather than reported as a number.
                let lag_seconds = p.lag_seconds(now).unwrap_or(f64::NAN);
                let values = [
                    p.records as f64,
                    p.bytes as f64,
                    p.lag_records() as f64,
                    lag_seconds,
                    p.replicated_offset as f64,
                    p.source_end_offset as f64,
                    if p.error.is_some() { 1.0 } else { 0.0 },
                    p.batches_fast as f64,
                    p.batches_rewritten as f64,
                ];
                for (i, v) in values.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
                    samples[i].push(sample(labels(), FAMILIES[i].kind, *v));
                }
            }
            for ((group, (topic, partition)), g) in &snap.groups {
                let labels = || vec![label("flow", flow), label("group", group), label("topic", topic), label("partition", &partition.to_string())];
                let ahead = matches!(g.translation, tern_mirror::offset_map::Translation::AheadOfReplication { .. });
                let values = [
                    g.committed as f64,
                    g.translation.target().unwrap_or(-1) as f64,
                    if g.checkpoint_at < 0 { -1.0 } else { (now - g.checkpoint_at).max(0) as f64 / 1000.0 },
                    if ahead { 1.0 } else { 0.0 },
                    g.lag_records as f64,
                    g.lag_seconds.unwrap_or(f64::NAN),
                    if g.sync.not_synced() { 1.0 } else { 0.0 },
                ];
                for (i, v) in values.iter().enumerate().filter(|(_, v)| !v.is_nan()) {
                    group_samples[i].push(sample(labels(), GROUP_FAMILIES[i].kind, *v));
                }
                for (i, state) in [(2, g.translation.state().as_str()), (3, g.sync.as_str())] {
                    let mut l = labels();
                    l.push(label("state", state));
                    state_samples[i].push(sample(l, MetricType::GAUGE, 1.0));
                }
            }
            for ((topic, partition), lost) in &snap.lost_records {
                source_samples[0].push(sample(vec![label("flow", flow), label("topic", topic), label("partition", &partition.to_string())], MetricType::COUNTER, *lost as f64));
            }
            for (event, n) in &snap.source_event_counts {
                source_samples[1].push(sample(vec![label("flow", flow), label("event", event.as_str())], MetricType::COUNTER, *n as f64));
            }
            membership_samples[0].push(sample(vec![label("flow", flow)], MetricType::COUNTER, snap.group_session.joins as f64));
            membership_samples[1].push(sample(vec![label("flow", flow)], MetricType::COUNTER, snap.group_session.sessions_lost as f64));
            latency.push(histogram(vec![label("flow", flow)], &snap.latency));
            state_samples[0].push(sample(vec![label("flow", flow)], MetricType::GAUGE, if snap.stopped.is_some() { 0.0 } else { 1.0 }));
            state_samples[1].push(sample(vec![label("flow", flow), label("state", snap.control.state.as_str())], MetricType::GAUGE, 1.0));
            let last = FAMILIES.len() - 1;
            samples[last].push(sample(vec![label("flow", flow)], MetricType::COUNTER, snap.heartbeats_sent as f64));
        }
        FAMILIES
            .iter()
            .zip(samples)
            .chain(GROUP_FAMILIES.iter().zip(group_samples))
            .chain(STATE_FAMILIES.iter().zip(state_samples))
            .chain(SOURCE_FAMILIES.iter().zip(source_samples))
            .chain(MEMBERSHIP_FAMILIES.iter().zip(membership_samples))
            .chain([(&LATENCY, latency)])
            .filter(|(_, m)| !m.is_empty())
            .map(|(f, metrics)| {
                let mut mf = MetricFamily::default();
                mf.set_name(f.name.to_string());
                mf.set_help(f.help.to_string());
                mf.set_field_type(f.kind);
                mf.set_metric(metrics);
                mf
            })
            .collect()
    }
}
