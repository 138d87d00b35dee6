//! The shared state of a running flow, and what every task of it may do to a partition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tern_kafka::client::{Client, Gate, Membership, ProduceTo};
use tokio::sync::Mutex;

use crate::config::{Connections, Delivery, Flow, MirrorSettings};
use crate::names::{group_id, Tp};
use crate::session::Session;
use crate::offset_map::OffsetMap;
use crate::status::FlowStatus;

/// How long a flow's transaction may stay open before the target aborts it: far longer than
/// one takes (a fetched set or a few), short enough that a worker that vanished without being
/// fenced holds `read_committed` consumers of the target up for one minute at most.
pub(super) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The transactional id of one source partition's producer on the target: whichever worker
/// owns the partition uses it, so the new owner's InitProducerId fences the previous one.
pub fn transactional_id(flow: &Flow, tp: &Tp) -> String {
    format!("{}.{}.{}", group_id(flow), tp.0, tp.1)
}

/// Shared state of one running flow.
pub(super) struct Runtime {
    pub(super) flow: Flow,
    pub(super) settings: MirrorSettings,
    pub(super) source: Arc<Client>,
    pub(super) target: Client,
    /// Connections each source broker is fetched over, as configured.
    pub(super) fetch_connections: Connections,
    /// Connections each source broker is fetched over, once decided (see
    /// [`Runtime::fetch_lanes`]).
    pub(super) fetch_lanes: tokio::sync::OnceCell<usize>,
    /// Connections each target broker is produced over, as configured.
    pub(super) produce_connections: Connections,
    /// Connections each target broker is produced over, once decided (see
    /// [`Runtime::produce_lanes`]).
    pub(super) produce_lanes: tokio::sync::OnceCell<usize>,
    pub(super) status: Arc<FlowStatus>,
    /// Where partition producers hand their new offset-map entries over, to be written with
    /// other partitions'.
    pub(super) map_writes: super::map_writes::MapWrites,
    /// The memory of fetch answers that queued record sets may hold for small shares, and the
    /// records queued for the target.
    pub(super) answers: super::held::AnswerBudget,
    /// Acknowledged next offsets not yet committed.
    pub(super) acked: Mutex<BTreeMap<Tp, i64>>,
    /// Held while a commit of `acked` is in flight: one commit at a time.
    pub(super) committing: Mutex<()>,
    /// Partitions whose replication stopped for good, with the reason.
    pub(super) failed: std::sync::Mutex<HashMap<Tp, String>>,
    /// The worker's identity in the flow's group, for commits.
    pub(super) membership: std::sync::Mutex<Membership>,
    /// The group session's heartbeats, and whether producing is still safe.
    pub(super) session: Arc<Session>,
    /// Offset maps of every partition seen (loaded from the target at start).
    pub(super) maps: std::sync::Mutex<HashMap<Tp, OffsetMap>>,
    /// Partitions this worker owns in the current generation.
    pub(super) owned: std::sync::Mutex<HashSet<Tp>>,
    /// The worker's idempotent-producer identity on the target: a record set retried after a
    /// lost acknowledgement is then written once. `None` when the target does not offer it.
    pub(super) producer: Option<(i64, i16)>,
    /// Next sequence number per partition for that producer, kept across rebalances: the
    /// target remembers the last sequence it accepted from this producer.
    pub(super) sequences: std::sync::Mutex<HashMap<Tp, i32>>,
    /// The id of every replicated source topic as last seen: a new id means the topic was
    /// deleted and created again.
    pub(super) topic_ids: std::sync::Mutex<HashMap<String, uuid::Uuid>>,
    /// Topics seen recreated whose partitions start over at the next assignment.
    pub(super) recreated: std::sync::Mutex<HashSet<String>>,
    /// For each partition this worker gave up: the largest source end it saw and the replicated
    /// position, so that a topic deleted (its partitions revoked) and then created again is
    /// counted with what the old one held.
    pub(super) last_owned: std::sync::Mutex<HashMap<Tp, (i64, i64)>>,
    /// Partitions whose source log ended below the position: since when, and the lowest end
    /// seen since. Acted on only once it lasts (a new leader's high watermark can trail for a
    /// moment).
    pub(super) truncated_since: std::sync::Mutex<HashMap<Tp, (std::time::Instant, i64)>>,
    /// Partitions whose source log was truncated, with the position replicated before (now past
    /// the log's end) and where replication resumed, until a commit records the new position:
    /// a worker that rejoins meanwhile (its session lost, the commit refused) resumes there
    /// rather than from the stale committed position.
    pub(super) rewound: std::sync::Mutex<HashMap<Tp, (i64, i64)>>,
    /// The source leader epoch of the last batch fetched per partition, and the position after
    /// it: where that epoch ends on the source's current leader tells a truncation and its
    /// point at once, as long as the partition is still at that position (a partition owned
    /// by another worker meanwhile may resume past it).
    pub(super) last_epochs: std::sync::Mutex<HashMap<Tp, (i32, i64)>>,
    /// The source leader epoch of the last batch the target acknowledged per partition, and
    /// the position after it: committed with that position, so that a worker resuming from it
    /// (this one restarted, or another) asks the source where that epoch ends and sees a log
    /// truncated below the position while nobody was replicating it.
    pub(super) acked_epochs: std::sync::Mutex<HashMap<Tp, (i32, i64)>>,
}

impl Runtime {
    pub(super) fn exactly_once(&self) -> bool {
        self.flow.delivery == Delivery::ExactlyOnce
    }

    /// How many connections each source broker is fetched over: as configured, or from the
    /// round trip to the source. Decided once, by whichever asks first: the flow times the
    /// link while it joins its group, and the first fetch waits for that if it must.
    pub(super) async fn fetch_lanes(&self) -> usize {
        *self
            .fetch_lanes
            .get_or_init(|| async {
                let link = self.decide_lanes(&self.source, &self.flow.source, self.fetch_connections, Connections::FETCH_LEAST, "fetching from").await;
                self.status.set_source_link(link);
                link.connections
            })
            .await
    }

    /// How many connections each target broker is produced over: as configured, or from the
    /// round trip to the target (never fewer than [`Connections::PRODUCE_LEAST`]). Decided
    /// once, like [`Runtime::fetch_lanes`].
    pub(super) async fn produce_lanes(&self) -> usize {
        *self
            .produce_lanes
            .get_or_init(|| async {
                let link = self.decide_lanes(&self.target, &self.flow.target, self.produce_connections, Connections::PRODUCE_LEAST, "producing to").await;
                self.status.set_target_link(link);
                link.connections
            })
            .await
    }

    /// Times the round trip to a cluster (zero when it cannot be timed: the link is then taken
    /// as near), decides the connections per broker from it, and logs both ("`doing` X over N
    /// connection(s) per broker").
    async fn decide_lanes(&self, client: &Client, cluster: &str, setting: Connections, least: usize, doing: &str) -> crate::status::Link {
        let round_trip = match client.round_trip().await {
            Ok(rtt) => rtt,
            Err(e) => {
                tracing::debug!(flow = %self.flow.name(), "timing a round trip to {cluster}: {e}");
                Duration::ZERO
            }
        };
        let lanes = setting.for_round_trip(round_trip, least);
        let round_trip_ms = round_trip.as_millis() as u64;
        tracing::info!(flow = %self.flow.name(), round_trip_ms, connections = lanes, "{doing} {cluster} over {lanes} connection(s) per broker");
        crate::status::Link { round_trip_ms, connections: lanes }
    }

    /// The connection (of `lanes` per broker) a partition is fetched over: always the same one,
    /// and a topic's partitions spread over all of them.
    pub(super) fn fetch_lane(&self, tp: &Tp, lanes: usize) -> usize {
        lane_of(tp, lanes)
    }

    /// The connection a partition is produced over: always the same one (a partition's
    /// requests keep their order only on one connection), and never lane 0, which carries the
    /// worker's other requests to the target (offset maps, metadata), so those do not wait
    /// behind record sets.
    pub(super) async fn produce_lane(&self, tp: &Tp) -> usize {
        1 + lane_of(tp, self.produce_lanes().await)
    }

    /// How a partition's batches go to the target: on its lane, every in-sync replica
    /// acknowledging, and only while this worker may still produce (a batch still queued when
    /// the worker gives its partitions up is not written; see [`Session::may_produce`]).
    pub(super) async fn produce_to<'a>(&self, tp: &Tp, transactional_id: Option<&'a str>) -> ProduceTo<'a> {
        let session = self.session.clone();
        let gate: Gate = Arc::new(move || session.may_produce());
        ProduceTo { lane: self.produce_lane(tp).await, transactional_id, acks: -1, timeout_ms: 30_000, gate: Some(gate) }
    }
}

/// One of `lanes` connections for a partition: the same for as long as the worker runs.
fn lane_of(tp: &Tp, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if lanes <= 1 {
        return 0;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tp.0.hash(&mut h);
    (h.finish() as usize).wrapping_add(tp.1.max(0) as usize) % lanes
}

pub(super) fn fail_partition(rt: &Runtime, tp: &Tp, reason: String) {
    tracing::error!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "replication of this partition stopped: {reason}");
    rt.status.update(&tp.0, tp.1, |s| s.error = Some(reason.clone()));
    rt.failed.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), reason);
}
