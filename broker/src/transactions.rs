//! The transaction coordinator, after Kafka's `TransactionCoordinator` (transaction protocol
//! version 1): each transactional id has a producer id and epoch, a timeout, a state and the
//! partitions and groups of its open transaction. Commit and abort write a marker to every
//! partition of the transaction (and, on commit, the transaction's group offsets) between a
//! `Prepare*` and a `Complete*` state.
//!
//! The state lives in the compacted internal topic `__transaction_state` (one record per
//! transactional id, JSON; only this broker reads it) and is replayed on start, so a
//! transaction survives a crash: an open one is aborted by its timeout, a prepared one is
//! completed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use tern_kafka::records::{encode_batch, PlainRecord};

use crate::apis::now_ms;
use crate::error::Result;
use crate::server::BrokerState;
use crate::storage::txn::Marker;
use crate::topics::{Topic, Topics};

pub const TXN_TOPIC: &str = "__transaction_state";
/// Kafka's `transaction.max.timeout.ms` default: longer timeouts are refused.
pub const MAX_TIMEOUT_MS: i32 = 900_000;
/// How often open transactions are checked against their timeout.
const TIMER_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's names (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    const ALL: [TxnState; 6] =
        [TxnState::Empty, TxnState::Ongoing, TxnState::PrepareCommit, TxnState::PrepareAbort, TxnState::CompleteCommit, TxnState::CompleteAbort];

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A group offset committed inside a transaction, visible once the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// One transactional id's state, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    pub offsets: Vec<PendingOffset>,
    /// When the open transaction started (-1 when none is open).
    pub start_ms: i64,
    pub updated_ms: i64,
}

/// Kafka's answer to a producer whose epoch is not the transaction's: PRODUCER_FENCED, which
/// requests before `fenced_from` do not know (they get INVALID_PRODUCER_EPOCH).
pub fn fenced(version: i16, fenced_from: i16) -> ResponseError {
    if version >= fenced_from {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

pub struct TxnCoordinator {
    /// Created with the first transactional id, as Kafka creates it.
    topic: Mutex<Option<Arc<Topic>>>,
    txns: RwLock<BTreeMap<String, TxnMeta>>,
}

/// The coordinator's state, locked for a change: no transactional append is under way while it
/// is held, so a marker can never be written between a produce's check and its append.
pub type Locked<'a> = RwLockWriteGuard<'a, BTreeMap<String, TxnMeta>>;

/// The coordinator's state, shared by the transactional appends under way: appends to
/// different partitions go on side by side, and no state change comes between an append's
/// check and the append.
pub type Shared<'a> = RwLockReadGuard<'a, BTreeMap<String, TxnMeta>>;

impl TxnCoordinator {
    /// Replays `__transaction_state` when it exists.
    pub fn open(topics: &Topics) -> Result<TxnCoordinator> {
        let topic = topics.get(TXN_TOPIC);
        let txns = match &topic {
            Some(t) => replay(t)?,
            None => BTreeMap::new(),
        };
        let open = txns.values().filter(|m| m.state == TxnState::Ongoing).count();
        if !txns.is_empty() {
            tracing::info!(transactional_ids = txns.len(), open, "loaded transactions from {TXN_TOPIC}");
        }
        Ok(TxnCoordinator { topic: Mutex::new(topic), txns: RwLock::new(txns) })
    }

    pub fn lock(&self) -> Locked<'_> {
        self.txns.write().unwrap_or_else(|p| p.into_inner())
    }

    /// `__transaction_state`, created when first needed.
    fn state_topic(&self, topics: &Topics) -> std::result::Result<Arc<Topic>, ResponseError> {
        let mut topic = self.topic.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = topic.as_ref() {
            return Ok(t.clone());
        }
        let created = match topics.get(TXN_TOPIC) {
            Some(t) => t,
            None => {
                let configs = [("cleanup.policy", "compact"), ("segment.bytes", "104857600")].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                topics.create(TXN_TOPIC, 1, configs).map_err(|e| {
                    tracing::error!("could not create {TXN_TOPIC}: {e:?}");
                    ResponseError::CoordinatorNotAvailable
                })?
            }
        };
        tracing::info!("created {TXN_TOPIC}");
        *topic = Some(created.clone());
        Ok(created)
    }

    /// Writes a transactional id's new state; the caller changes memory only after this.
    fn persist(&self, topics: &Topics, id: &str, meta: &TxnMeta) -> std::result::Result<(), ResponseError> {
        let value = serde_json::to_vec(meta).map_err(|_| ResponseError::UnknownServerError)?;
        let now = now_ms();
        let record = PlainRecord::new(Bytes::copy_from_slice(id.as_bytes()), Some(Bytes::from(value)), now);
        let buf = encode_batch(&[record], Compression::None).map_err(|_| ResponseError::UnknownServerError)?;
        let topic = self.state_topic(topics)?;
        let Some(partition) = topic.partition(0) else { return Err(ResponseError::CoordinatorNotAvailable) };
        let appended = partition.log().append(&buf, now, false);
        appended.map(|_| ()).map_err(|e| {
            tracing::error!(transactional_id = id, "could not write the transaction state: {e}");
            ResponseError::CoordinatorNotAvailable
        })
    }

    fn store(&self, topics: &Topics, txns: &mut Locked<'_>, id: &str, meta: TxnMeta) -> std::result::Result<(), ResponseError> {
        self.persist(topics, id, &meta)?;
        txns.insert(id.to_string(), meta);
        Ok(())
    }

    /// InitProducerId with a transactional id: a new producer id at epoch 0, or the same id
    /// with its epoch bumped, which fences the previous producer (its open transaction is
    /// aborted first).
    pub fn init_producer_id(&self, state: &BrokerState, id: &str, timeout_ms: i32, expected: Option<(i64, i16)>) -> std::result::Result<(i64, i16), ResponseError> {
        if timeout_ms <= 0 || timeout_ms > MAX_TIMEOUT_MS {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let mut txns = self.lock();
        let now = now_ms();
        let allocate = || {
            state.producer_ids.allocate().map_err(|e| {
                tracing::error!("cannot allocate a producer id: {e}");
                ResponseError::CoordinatorNotAvailable
            })
        };
        let Some(mut meta) = txns.get(id).cloned() else {
            let meta = TxnMeta {
                producer_id: allocate()?,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                offsets: Vec::new(),
                start_ms: -1,
                updated_ms: now,
            };
            let answer = (meta.producer_id, meta.producer_epoch);
            self.store(&state.topics, &mut txns, id, meta)?;
            tracing::info!(transactional_id = id, producer_id = answer.0, "new transactional producer");
            return Ok(answer);
        };
        // KIP-360: a producer that says who it was must be the current one.
        if let Some((pid, epoch)) = expected {
            if pid != meta.producer_id || epoch != meta.producer_epoch {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                self.complete(state, &mut txns, id)?;
                meta = txns.get(id).cloned().ok_or(ResponseError::CoordinatorNotAvailable)?;
            }
            TxnState::Ongoing => {
                tracing::info!(transactional_id = id, producer_id = meta.producer_id, "a new producer with the same transactional id aborts the open transaction");
                self.abort_fencing(state, &mut txns, id)?;
                meta = txns.get(id).cloned().ok_or(ResponseError::CoordinatorNotAvailable)?;
                // The abort bumped the epoch already: that epoch is the new producer's.
                meta.timeout_ms = timeout_ms;
                meta.updated_ms = now;
                let answer = (meta.producer_id, meta.producer_epoch);
                self.store(&state.topics, &mut txns, id, meta)?;
                return Ok(answer);
            }
            _ => {}
        }
        if meta.producer_epoch >= i16::MAX - 1 {
            meta.producer_id = allocate()?;
            meta.producer_epoch = 0;
        } else {
            meta.producer_epoch += 1;
        }
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.groups.clear();
        meta.offsets.clear();
        meta.start_ms = -1;
        meta.updated_ms = now;
        let answer = (meta.producer_id, meta.producer_epoch);
        self.store(&state.topics, &mut txns, id, meta)?;
        Ok(answer)
    }

    /// The transaction of `id`, checked to belong to this producer and to accept additions.
    fn addable(txns: &Locked<'_>, id: &str, producer_id: i64, epoch: i16, fenced: ResponseError) -> std::result::Result<TxnMeta, ResponseError> {
        let meta = txns.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != epoch {
            return Err(fenced);
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(ResponseError::ConcurrentTransactions),
            _ => Ok(meta.clone()),
        }
    }

    fn begin(meta: &mut TxnMeta, now: i64) {
        if meta.state != TxnState::Ongoing {
            meta.state = TxnState::Ongoing;
            meta.start_ms = now;
            meta.partitions.clear();
            meta.groups.clear();
            meta.offsets.clear();
        }
        meta.updated_ms = now;
    }

    /// AddPartitionsToTxn.
    pub fn add_partitions(&self, state: &BrokerState, id: &str, producer_id: i64, epoch: i16, partitions: &[(String, i32)], fenced: ResponseError) -> std::result::Result<(), ResponseError> {
        let mut txns = self.lock();
        let mut meta = Self::addable(&txns, id, producer_id, epoch, fenced)?;
        if meta.state == TxnState::Ongoing && partitions.iter().all(|p| meta.partitions.contains(p)) {
            return Ok(());
        }
        Self::begin(&mut meta, now_ms());
        meta.partitions.extend(partitions.iter().cloned());
        self.store(&state.topics, &mut txns, id, meta)
    }

    /// AddOffsetsToTxn.
    pub fn add_offsets(&self, state: &BrokerState, id: &str, producer_id: i64, epoch: i16, group: &str, fenced: ResponseError) -> std::result::Result<(), ResponseError> {
        let mut txns = self.lock();
        let mut meta = Self::addable(&txns, id, producer_id, epoch, fenced)?;
        if meta.state == TxnState::Ongoing && meta.groups.contains(group) {
            return Ok(());
        }
        Self::begin(&mut meta, now_ms());
        meta.groups.insert(group.to_string());
        self.store(&state.topics, &mut txns, id, meta)
    }

    /// TxnOffsetCommit: offsets kept with the transaction until it ends.
    pub fn commit_offsets(&self, state: &BrokerState, id: &str, producer_id: i64, epoch: i16, offsets: Vec<PendingOffset>) -> std::result::Result<(), ResponseError> {
        let mut txns = self.lock();
        let mut meta = Self::addable(&txns, id, producer_id, epoch, ResponseError::ProducerFenced)?;
        if meta.state != TxnState::Ongoing || offsets.iter().any(|o| !meta.groups.contains(&o.group)) {
            // The group was not added with AddOffsetsToTxn: its offsets would never be written.
            return Err(ResponseError::InvalidTxnState);
        }
        for o in offsets {
            meta.offsets.retain(|p| (&p.group, &p.topic, p.partition) != (&o.group, &o.topic, o.partition));
            meta.offsets.push(o);
        }
        meta.updated_ms = now_ms();
        self.store(&state.topics, &mut txns, id, meta)
    }

    /// EndTxn: commits or aborts the open transaction. A retry of a finished one is answered
    /// with success, as Kafka does.
    pub fn end(&self, state: &BrokerState, id: &str, producer_id: i64, epoch: i16, commit: bool, fenced: ResponseError) -> std::result::Result<(), ResponseError> {
        let mut txns = self.lock();
        let meta = txns.get(id).ok_or(ResponseError::InvalidProducerIdMapping)?.clone();
        if meta.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != epoch {
            return Err(fenced);
        }
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {}
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => return Err(ResponseError::ConcurrentTransactions),
            _ => return Err(ResponseError::InvalidTxnState),
        }
        let mut prepared = meta;
        prepared.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        prepared.updated_ms = now_ms();
        self.store(&state.topics, &mut txns, id, prepared)?;
        self.complete(state, &mut txns, id)
    }

    /// Aborts the open transaction of `id` with the epoch bumped, so that its producer is
    /// fenced (a timeout, or a new producer with the same transactional id).
    fn abort_fencing(&self, state: &BrokerState, txns: &mut Locked<'_>, id: &str) -> std::result::Result<(), ResponseError> {
        let mut meta = txns.get(id).cloned().ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.producer_epoch >= i16::MAX - 1 {
            // No epoch is left to fence with; the producer id is replaced after the abort.
            meta.state = TxnState::PrepareAbort;
        } else {
            meta.producer_epoch += 1;
            meta.state = TxnState::PrepareAbort;
        }
        meta.updated_ms = now_ms();
        self.store(&state.topics, txns, id, meta)?;
        self.complete(state, txns, id)
    }

    /// Writes the markers (and on commit the group offsets) of a prepared transaction, then
    /// its completed state. On failure the transaction stays prepared and the timer task
    /// tries again.
    fn complete(&self, state: &BrokerState, txns: &mut Locked<'_>, id: &str) -> std::result::Result<(), ResponseError> {
        let meta = txns.get(id).cloned().ok_or(ResponseError::InvalidProducerIdMapping)?;
        let commit = match meta.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return Ok(()),
        };
        let marker = if commit { Marker::Commit } else { Marker::Abort };
        let now = now_ms();
        for (topic, partition) in &meta.partitions {
            // A partition deleted since has nothing left to end.
            let Some(p) = state.topics.get(topic).and_then(|t| t.partition(*partition).cloned()) else { continue };
            let mut log = p.log();
            // A marker written before a crash is not written twice.
            if !log.has_open_txn(meta.producer_id) {
                continue;
            }
            if let Err(e) = log.append_marker(meta.producer_id, meta.producer_epoch, marker, 0, now) {
                tracing::error!(transactional_id = id, topic, partition, "could not write a transaction marker (tried again later): {e}");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
        }
        if commit {
            let mut by_group: BTreeMap<&str, Vec<(String, i32, i64, i32, String)>> = BTreeMap::new();
            for o in &meta.offsets {
                by_group.entry(&o.group).or_default().push((o.topic.clone(), o.partition, o.offset, o.leader_epoch, o.metadata.clone()));
            }
            for (group, offsets) in by_group {
                if let Err(e) = state.groups.commit_transactional(group, &offsets) {
                    tracing::error!(transactional_id = id, group, "could not write the transaction's offsets (tried again later): {e}");
                    return Err(ResponseError::CoordinatorNotAvailable);
                }
            }
        }
        state.topics.notify_appended();
        let mut done = meta;
        done.state = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        done.partitions.clear();
        done.groups.clear();
        done.offsets.clear();
        done.start_ms = -1;
        done.updated_ms = now_ms();
        if done.producer_epoch >= i16::MAX - 1 {
            done.producer_id = state.producer_ids.allocate().map_err(|_| ResponseError::CoordinatorNotAvailable)?;
            done.producer_epoch = 0;
        }
        tracing::debug!(transactional_id = id, producer_id = done.producer_id, commit, "transaction ended");
        self.store(&state.topics, txns, id, done)
    }

    /// Checks a transactional batch before it is appended: its producer's transaction is open,
    /// at this epoch, and holds the partition (Kafka's partition verification). The returned
    /// guard is held over the append.
    pub fn verify_produce(&self, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> std::result::Result<Shared<'_>, (ResponseError, String)> {
        let txns = self.txns.read().unwrap_or_else(|p| p.into_inner());
        let Some(meta) = txns.values().find(|m| m.producer_id == producer_id) else {
            return Err((ResponseError::InvalidTxnState, format!("producer {producer_id} has no transaction on this broker")));
        };
        if epoch < meta.producer_epoch {
            return Err((ResponseError::InvalidProducerEpoch, format!("producer {producer_id} epoch {epoch} is older than the transaction's epoch {}", meta.producer_epoch)));
        }
        if meta.state != TxnState::Ongoing || epoch != meta.producer_epoch || !meta.partitions.contains(&(topic.to_string(), partition)) {
            return Err((ResponseError::InvalidTxnState, format!("{topic}-{partition} is not part of an open transaction of producer {producer_id} at epoch {epoch}")));
        }
        Ok(txns)
    }

    /// Aborts open transactions past their timeout and completes prepared ones left by a
    /// failure; returns how many transactions were acted on.
    pub fn expire(&self, state: &BrokerState) -> usize {
        let mut txns = self.lock();
        let now = now_ms();
        let due: Vec<(String, TxnState)> = txns
            .iter()
            .filter(|(_, m)| match m.state {
                TxnState::Ongoing => m.start_ms >= 0 && now.saturating_sub(m.start_ms) > i64::from(m.timeout_ms),
                TxnState::PrepareCommit | TxnState::PrepareAbort => true,
                _ => false,
            })
            .map(|(id, m)| (id.clone(), m.state))
            .collect();
        for (id, was) in &due {
            let outcome = if *was == TxnState::Ongoing {
                tracing::info!(transactional_id = %id, "transaction aborted: open longer than its timeout");
                self.abort_fencing(state, &mut txns, id)
            } else {
                self.complete(state, &mut txns, id)
            };
            if let Err(e) = outcome {
                tracing::warn!(transactional_id = %id, "ending a transaction failed, tried again later: {e:?}");
            }
        }
        due.len()
    }

    /// Runs the timeouts until the task is dropped.
    pub async fn run_timers(state: Arc<BrokerState>) {
        let mut tick = tokio::time::interval(TIMER_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let state = state.clone();
            // Markers are disk writes: off the async workers.
            let _ = tokio::task::spawn_blocking(move || state.txns.expire(&state)).await;
        }
    }

    /// Every transactional id's state, for DescribeTransactions and ListTransactions.
    pub fn snapshot(&self) -> BTreeMap<String, TxnMeta> {
        self.lock().clone()
    }
}

/// Replays `__transaction_state`: the last value of each transactional id.
fn replay(topic: &Topic) -> Result<BTreeMap<String, TxnMeta>> {
    let mut out = BTreeMap::new();
    let Some(partition) = topic.partition(0) else { return Ok(out) };
    partition.log().replay(TXN_TOPIC, |record| {
        let Some(key) = record.key.as_ref().and_then(|k| String::from_utf8(k.to_vec()).ok()) else { return };
        match record.value.as_ref().map(|v| serde_json::from_slice::<TxnMeta>(v)) {
            Some(Ok(meta)) => {
                out.insert(key, meta);
            }
            Some(Err(e)) => tracing::warn!(offset = record.offset, "skipping an unreadable record of {TXN_TOPIC}: {e}"),
            None => {
                out.remove(&key);
            }
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    /// Holds a transactional append's check in a thread of its own (as on a connection of
    /// its own) until told to let go; says whether the check passed.
    fn append_in_thread(state: &Arc<BrokerState>, producer: (i64, i16), partition: i32) -> (std::sync::mpsc::Receiver<std::result::Result<(), String>>, std::sync::mpsc::Sender<()>) {
        let (held, done) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let state = state.clone();
        std::thread::spawn(move || {
            let guard = state.txns.verify_produce(producer.0, producer.1, "t", partition);
            let _ = held.0.send(guard.as_ref().map(|_| ()).map_err(|e| e.1.clone()));
            let _ = done.1.recv();
            drop(guard);
        });
        (held.1, done.0)
    }

    #[test]
    fn transactional_appends_share_the_coordinator_and_a_state_change_waits_for_them() {
        let dir = tempfile::tempdir().expect("dir");
        let state = Arc::new(crate::server::open_state(BrokerConfig::with_data_dir(dir.path()), "127.0.0.1:9092".parse().expect("addr")).expect("state"));
        state.topics.create("t", 2, Default::default()).map_err(|e| format!("{e:?}")).expect("topic");
        let mut producers = Vec::new();
        for (id, partition) in [("a", 0), ("b", 1)] {
            let (pid, epoch) = state.txns.init_producer_id(&state, id, 60_000, None).expect("init");
            state.txns.add_partitions(&state, id, pid, epoch, &[("t".to_string(), partition)], ResponseError::ProducerFenced).expect("add");
            producers.push((pid, epoch));
        }
        let refused = state.txns.verify_produce(producers[0].0, producers[0].1, "t", 1).map(|_| ()).expect_err("t-1 is not in a's transaction");
        assert_eq!(refused.0, ResponseError::InvalidTxnState);

        // Two appends to different partitions are under way at once.
        let (a_held, a_done) = append_in_thread(&state, producers[0], 0);
        a_held.recv_timeout(Duration::from_secs(5)).expect("a's append").expect("a's check");
        let (b_held, b_done) = append_in_thread(&state, producers[1], 1);
        b_held.recv_timeout(Duration::from_secs(5)).expect("b's append waited for a's").expect("b's check");

        // b's commit (markers included) waits until neither append is under way.
        let (tx, rx) = std::sync::mpsc::channel();
        let (s, (pid_b, epoch_b)) = (state.clone(), producers[1]);
        std::thread::spawn(move || {
            let _ = tx.send(s.txns.end(&s, "b", pid_b, epoch_b, true, ResponseError::ProducerFenced));
        });
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the commit came between an append's check and its append");
        a_done.send(()).expect("a");
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the commit came during b's append");
        b_done.send(()).expect("b");
        rx.recv_timeout(Duration::from_secs(10)).expect("the commit went on once the appends were done").expect("commit");
        let after = state.txns.verify_produce(pid_b, epoch_b, "t", 1).map(|_| ()).expect_err("b's transaction is over");
        assert_eq!(after.0, ResponseError::InvalidTxnState);
    }
}
