//! The partitions a worker owns in a generation of the flow's group: taken on (producers and
//! queues started where replication resumes) and given up (drained and committed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tern_kafka::client::{TxnProducer, EARLIEST, LATEST};
use tokio::sync::mpsc;

use crate::names::Tp;
use crate::naming;
use crate::offset_map::Entry;
use crate::offset_map::store;

use super::queues::Queues;
use super::runtime::*;
use super::fetch::*;
use super::produce::*;
use super::progress::*;

/// How many partitions' transactional producers an exactly-once worker initialises at once when
/// it takes partitions on.
const TXN_PRODUCERS_AT_ONCE: usize = 16;

/// The partitions this worker owns in the current generation.
#[derive(Default)]
pub(super) struct Assigned {
    pub(super) queues: Queues,
    pub(super) positions: HashMap<Tp, i64>,
    pub(super) producers: tokio::task::JoinSet<()>,
    pub(super) fetches: Fetches,
}

impl Assigned {
    pub(super) async fn assign(&mut self, rt: &Arc<Runtime>, partitions: Vec<Tp>) {
        // Exactly-once: each partition's transactional producer first (which fences the
        // previous owner and aborts its open transaction), then the positions and offset maps
        // committed on the target, read as `read_committed` consumers see them.
        let mut txns: HashMap<Tp, TxnProducer> = HashMap::new();
        let mut on_target = None;
        let mut partitions = partitions;
        if rt.exactly_once() {
            // Several at once: each takes a few round trips to the target (and waits while the
            // previous owner's open transaction is aborted), which on a far target, taken one
            // partition after another, would hold up the assignment for as many partitions.
            let producers = futures_util::stream::iter(partitions.clone())
                .map(|tp| {
                    let rt = rt.clone();
                    async move {
                        let producer = rt.target.transactional_producer(&transactional_id(&rt.flow, &tp), TRANSACTION_TIMEOUT).await;
                        (tp, producer)
                    }
                })
                .buffer_unordered(TXN_PRODUCERS_AT_ONCE)
                .collect::<Vec<_>>()
                .await;
            for (tp, producer) in producers {
                match producer {
                    Ok(p) => {
                        txns.insert(tp.clone(), p);
                    }
                    Err(e) => {
                        tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "no transactional producer on {}: {e}; the partition waits for the next rebalance", rt.flow.target);
                        rt.status.update(&tp.0, tp.1, |s| s.error = Some(format!("exactly-once: no transactional producer on {}: {e}", rt.flow.target)));
                    }
                }
            }
            match store::load_target_state(&rt.flow, &rt.target).await {
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
        // Where the remote partitions end, for every partition at once (a request per target
        // leader). Asked once: a remote partition not created yet (the source just grew) must
        // not hold up the others; its map then starts with the first record replicated.
        let remotes: Vec<Tp> = partitions.iter().map(|tp| (naming::remote_topic(&rt.flow, &tp.0), tp.1)).collect();
        let (starts, target_ends) = tokio::join!(start_positions(rt, &partitions, on_target.as_ref()), rt.target.list_offsets(&remotes, LATEST));
        let target_ends = target_ends.unwrap_or_else(|e| {
            tracing::debug!(flow = %rt.flow.name(), "where the remote partitions end: {e}; their maps start with the first record replicated");
            Default::default()
        });
        // Partitions of a topic recreated on the source start over from the new log start,
        // whatever position was committed for the old topic, with an offset map of their own.
        let recreated = std::mem::take(&mut *rt.recreated.lock().unwrap_or_else(|p| p.into_inner()));
        for tp in partitions {
            let (tx, rx) = mpsc::channel(4);
            let mut start = starts.get(&tp).copied().unwrap_or(0);
            if recreated.contains(&tp.0) {
                start = rt.source.list_offset(&tp.0, tp.1, EARLIEST).await.map(|(o, _)| o).unwrap_or(0);
                let dropped: Vec<Entry> = rt.maps.lock().unwrap_or_else(|p| p.into_inner()).remove(&tp).map(|m| m.entries().collect()).unwrap_or_default();
                if let Err(e) = store::persist_entries(&rt.flow, &rt.source, &rt.target, &tp, &[], &dropped).await {
                    tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "removing the old topic's offset map: {e}");
                }
                if rt.exactly_once() {
                    if let Err(e) = store::forget_position(&rt.flow, &rt.target, &tp).await {
                        tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "forgetting the old topic's exactly-once position: {e}");
                    }
                }
                rt.acked.lock().await.insert(tp.clone(), start);
                tracing::info!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, start, "recreated source topic: replicating from its log start");
            }
            // The next record replicated lands at the remote partition's end.
            let remote = naming::remote_topic(&rt.flow, &tp.0);
            if let Some(target_end) = target_ends.get(&(remote, tp.1)).copied() {
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
    pub(super) async fn revoke(&mut self, rt: &Arc<Runtime>) {
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
