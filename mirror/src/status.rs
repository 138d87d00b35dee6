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
    /// Timestamp of the newest replicated record (ms), -1 before the first.
    pub replicated_timestamp: i64,
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
            replicated_timestamp: -1,
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
            errors: self.partitions.values().filter(|p| p.error.is_some()).count() + self.errors.len(),
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

    pub fn set_errors(&self, errors: Vec<String>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.errors = errors;
    }

    pub fn set_groups(&self, groups: BTreeMap<(String, (String, i32)), crate::checkpoint::GroupPartition>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.groups = groups;
    }

    pub fn set_control(&self, control: crate::control::Control) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.control = control;
    }

    pub fn control(&self) -> crate::control::Control {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.control.clone()
    }

    pub fn heartbeat_sent(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.heartbeats_sent += 1;
    }

    pub fn snapshot(&self) -> FlowSnapshot {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).snapshot.clone()
    }
}
