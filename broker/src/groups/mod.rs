//! The consumer-group coordinator, classic protocol, as Apache Kafka runs it: this single node
//! coordinates every group.
//!
//! - `state`: a group, its members and the bookkeeping of Kafka's `ClassicGroup`.
//! - `join`, `membership`: JoinGroup; SyncGroup, Heartbeat, LeaveGroup.
//! - `rebalance`: the transitions they share and the timers (session timeouts, the join
//!   phase's delays, members that never sync) — the state machine Empty / PreparingRebalance /
//!   CompletingRebalance / Stable / Dead.
//! - `offsets`: OffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups, ListGroups, DescribeGroups.
//! - `records`, `store`: Kafka's record formats in the internal `__consumer_offsets` topic, which
//!   is the only durable state; startup replays it.
//!
//! All groups sit behind one mutex: requests hold it for microseconds (plus one log append
//! where Kafka writes a record), and a single lock keeps the transitions easy to reason about.
//! JoinGroup and SyncGroup responses that must wait for other members are parked on oneshot
//! channels; the request handler awaits them outside the lock, which blocks only that
//! connection, as in Kafka.

mod join;
mod membership;
mod offsets;
mod rebalance;
pub mod records;
mod state;
mod store;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

use crate::apis::now_ms;
use crate::error::Result;
use crate::topics::Topics;

pub use join::JoinRequest;
pub use membership::SyncRequest;
pub use offsets::{CommitRequest, FetchedOffset, GroupSummary, MemberSummary, PartitionCommit};
pub use state::{GroupState, JoinResult, SyncResult};
use state::Group;
use store::Store;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Group coordinator settings (Kafka's broker configs of the same meaning).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members, so a group starting together gets one generation instead of one per
    /// member. Kafka's default is 3 s; a short one keeps tests and demos fast.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// `offsets.topic.num.partitions`, used when the topic is created; an existing topic keeps
    /// its partition count.
    pub offsets_topic_partitions: i32,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(300),
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(30 * 60),
            offsets_topic_partitions: 1,
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// A response that is either there or will be once other members act.
pub enum Reply<T> {
    Ready(T),
    Parked(oneshot::Receiver<T>),
}

pub struct GroupCoordinator {
    config: GroupConfig,
    groups: Mutex<BTreeMap<String, Group>>,
    store: Store,
    /// Wakes the timer task when a deadline earlier than the one it sleeps towards was set.
    wake: Notify,
}

/// What every transition needs besides the group: where records go, settings and the clock
/// (passed in, so a whole request sees one instant).
struct Ctx<'a> {
    store: &'a Store,
    config: &'a GroupConfig,
    now: Instant,
    now_ms: i64,
}

impl GroupCoordinator {
    /// Creates `__consumer_offsets` if missing and rebuilds every group and committed offset
    /// from it.
    pub fn open(topics: &Topics, config: GroupConfig) -> Result<GroupCoordinator> {
        let store = Store::open(topics, config.offsets_topic_partitions)?;
        let loaded = store.replay()?;
        let now = Instant::now();
        let mut groups = BTreeMap::new();
        let (mut members, mut offsets) = (0usize, 0usize);
        for (id, value) in loaded.groups {
            let g = Group::from_record(&id, value, now);
            members += g.members.len();
            groups.insert(id, g);
        }
        for (id, committed) in loaded.offsets {
            if committed.is_empty() {
                continue;
            }
            offsets += committed.len();
            groups.entry(id.clone()).or_insert_with(|| Group::new(&id, now_ms())).offsets = committed;
        }
        if !groups.is_empty() {
            tracing::info!(groups = groups.len(), members, offsets, "loaded consumer groups from {OFFSETS_TOPIC}");
        }
        Ok(GroupCoordinator { config, groups: Mutex::new(groups), store, wake: Notify::new() })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        // Transitions never leave a group half-updated across a panic point that matters more
        // than continuing to serve the other groups.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx { store: &self.store, config: &self.config, now: Instant::now(), now_ms: now_ms() }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Runs the coordinator's timers until the task is dropped: session expiry, join-phase
    /// completion, members that never sent SyncGroup, MEMBER_ID_REQUIRED ids never used.
    pub async fn run_timers(&self) {
        loop {
            let now = Instant::now();
            let next = self.expire(now);
            // Sleeping at most a second keeps a missed wake-up from ever mattering.
            let until = next.unwrap_or(now + Duration::from_secs(1)).min(now + Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

/// Kafka's `partitionFor`: Java's `String.hashCode` of the group id, made non-negative, modulo
/// the partition count, so groups land where Kafka tooling looks for them.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_matches_kafka() {
        // Known Java hashCodes: "hello" is 99162322; "polygenelubricants" is Integer.MIN_VALUE,
        // which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("anything", 1), 0);
    }
}
