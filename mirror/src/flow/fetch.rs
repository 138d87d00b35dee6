//! Fetching: where each new partition starts, one fetch in flight per lane (a connection to a
//! source leader; several per leader on a long link), and what to do when the source no longer
//! has a position (log start moved, topic recreated, log truncated).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tern_kafka::client::{Isolation, EARLIEST, LATEST};

use crate::names::{group_id, Tp};
use crate::error::{Error, Result};
use crate::states::SourceEvent;
use crate::status::SourceEventRecord;
use crate::throttle::Throttle;
use crate::transform::{prepare, Aborted};

use super::held::{mono_ms, Answer, Queued, ReadAhead, STUCK_AFTER};
use super::queues::Queues;
use super::runtime::*;
use super::topics::*;

/// How long a source log must end below the replicated position before replication goes on
/// from the lowest end seen meanwhile, so that records written after the truncation are
/// replicated too.
pub(super) const TRUNCATION_CONFIRMED_AFTER: Duration = Duration::from_secs(10);

pub(super) use super::queues::Lane;

/// What one fetch on a lane brings back: the partitions it asked for, and the answer.
pub(super) type Fetched = (Lane, Vec<Tp>, tern_kafka::Result<kafka_protocol::messages::FetchResponse>);

/// The fetches in flight, at most one per lane (a connection to a source leader) and one per
/// partition: each lane is fetched again as soon as its answer is handled, whatever the others
/// take, so an idle leader's long poll or a slow leader never holds up another's partitions,
/// and on a long link a leader's partitions share several connections' windows.
#[derive(Default)]
pub(super) struct Fetches {
    pub(super) tasks: tokio::task::JoinSet<Fetched>,
    pub(super) lanes: HashSet<Lane>,
}

impl Fetches {
    /// Drops every fetch in flight; positions are untouched, so nothing is skipped. (The
    /// partitions' marks are cleared by the next round, which finds no fetch in flight.)
    pub(super) fn cancel(&mut self) {
        self.tasks.abort_all();
        self.tasks = tokio::task::JoinSet::new();
        self.lanes.clear();
    }
}

/// Where replication of new partitions starts: the flow group's committed offset, else the
/// source log start. A committed offset below the log start (retention went past it) starts
/// at the log start. A partition this worker replicated past its committed offset (the commit
/// failed, as when the source was out of reach long enough to end its membership) goes on
/// after what the target acknowledged, not from the commit, which would copy that tail again.
///
/// An exactly-once flow goes on from the position its last committed transaction stored on the
/// target (`on_target`), or from the commit on the source if that is further (the flow was
/// at-least-once meanwhile, or failback set it).
pub(super) async fn start_positions(rt: &Runtime, partitions: &[Tp], on_target: Option<&HashMap<Tp, i64>>) -> HashMap<Tp, i64> {
    // The committed positions and the log starts side by side, the starts all at once: on a
    // far source, one round trip for them all rather than one each.
    let group = group_id(&rt.flow);
    let (committed, starts) = tokio::join!(rt.source.committed_positions(&group, partitions), log_starts(rt, partitions));
    let committed = committed.unwrap_or_else(|e| {
        tracing::warn!(flow = %rt.flow.name(), "cannot read committed positions ({e}); starting from the log start");
        BTreeMap::new()
    });
    // Where the leader epoch committed with each position ends on the source now, side by side.
    let diverged: HashMap<&Tp, i64> = futures_util::future::join_all(committed.iter().filter_map(|(tp, (offset, epoch))| epoch.map(|e| (tp, *offset, e))).map(|(tp, offset, epoch)| async move {
        match rt.source.epoch_end_offset(&tp.0, tp.1, epoch).await {
            Ok(Some(end)) if end < offset => Some((tp, end)),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "the end of leader epoch {epoch}: {e}");
                None
            }
        }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    let mut out = HashMap::new();
    for tp in partitions {
        let start = starts.get(tp).copied().unwrap_or(0);
        let committed_at = committed.get(tp).map(|(c, _)| *c);
        let diverged_at = diverged.get(tp).copied().filter(|end| committed_at.is_some_and(|c| *end < c));
        let pos = match (committed_at, diverged_at) {
            // The log was truncated below the committed position while nobody replicated the
            // partition (an unclean leader election): records the source took since from
            // there on are replicated, not skipped.
            (Some(c), Some(end)) => {
                let resume_at = end.max(start);
                tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, committed = c, resume_at, "the source log was truncated below the committed position: resuming where it diverged");
                rt.status.source_event(SourceEventRecord { kind: SourceEvent::Truncated, topic: tp.0.clone(), partition: tp.1, at_ms: crate::clock::now_ms(), lost: Some(0), from: c, resumed_at: resume_at });
                rt.acked.lock().await.insert(tp.clone(), resume_at);
                resume_at
            }
            (Some(c), None) if c >= start => c,
            (Some(c), None) => {
                tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, committed = c, log_start = start, "records between the committed position and the log start were deleted on the source before they were replicated");
                start
            }
            (None, _) => start,
        };
        let pos = match on_target.and_then(|p| p.get(tp)).copied() {
            Some(stored) if stored > pos => stored,
            _ => pos,
        };
        // Committed before the source log was truncated below it, and not since: from where
        // replication resumed after the truncation, or as far as it got since.
        let rewound = rt.rewound.lock().unwrap_or_else(|p| p.into_inner()).get(tp).copied();
        let pos = match rewound {
            Some((from, resumed)) if pos == from => {
                tracing::info!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, committed = pos, resumed, "the committed position predates the source log's truncation: resuming where replication went on after it");
                resumed
            }
            _ => pos,
        };
        let acked = rt.acked.lock().await.get(tp).copied();
        let pos = match acked {
            Some(acked) if acked > pos => {
                tracing::info!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, committed = pos, acknowledged = acked, "resuming after the records the target acknowledged, past the committed position");
                acked
            }
            _ => pos,
        };
        out.insert(tp.clone(), pos);
    }
    out
}

/// The source log starts of `partitions`: a request per leader for them all, so that taking on
/// a thousand partitions costs a few requests rather than a thousand; those the batch left out
/// (an error, a leader not known) are asked one by one, with retries.
async fn log_starts(rt: &Runtime, partitions: &[Tp]) -> HashMap<Tp, i64> {
    let mut starts: HashMap<Tp, i64> = match rt.source.list_offsets(partitions, EARLIEST).await {
        Ok(starts) => starts.into_iter().collect(),
        Err(e) => {
            tracing::debug!(flow = %rt.flow.name(), "log starts of {} partitions at once: {e}; asking one by one", partitions.len());
            HashMap::new()
        }
    };
    let missing: Vec<&Tp> = partitions.iter().filter(|tp| !starts.contains_key(*tp)).collect();
    let asked = futures_util::future::join_all(missing.iter().map(|tp| rt.source.list_offset(&tp.0, tp.1, EARLIEST))).await;
    for (tp, start) in missing.into_iter().zip(asked) {
        if let Ok((start, _)) = start {
            starts.insert(tp.clone(), start);
        }
    }
    starts
}

/// Sends a fetch on every lane (a connection to a source leader) that has none in flight, for
/// its partitions with room in their queues (within the flow's bandwidth limit when it has
/// one), then handles the first answer to come back. Called in a loop: each lane runs at its
/// own pace.
pub(super) async fn fetch_round(
    rt: &Arc<Runtime>,
    queues: &mut Queues,
    positions: &mut HashMap<Tp, i64>,
    fetches: &mut Fetches,
    mut throttle: Option<&mut Throttle>,
) -> Result<()> {
    let lanes = rt.fetch_lanes().await;
    queues.find_lanes(&rt.source.metadata_snapshot(), lanes, |tp| rt.fetch_lane(tp, lanes));
    if fetches.tasks.is_empty() {
        queues.none_in_flight();
    }
    let failed: HashSet<Tp> = rt.failed.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
    let mut by_lane: BTreeMap<Lane, Vec<(String, i32, i64)>> = BTreeMap::new();
    for (tp, lane) in queues.ready(&fetches.lanes) {
        if !failed.is_empty() && failed.contains(tp) {
            continue;
        }
        let pos = positions.get(tp).copied().unwrap_or(0);
        by_lane.entry(lane).or_default().push((tp.0.clone(), tp.1, pos));
    }
    if by_lane.is_empty() && fetches.tasks.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(());
    }
    if !by_lane.is_empty() {
        match rt.answers.read_ahead(queues.backlogs(), mono_ms()) {
            ReadAhead::Room => {
                rt.answers.stuck_set_aside(false);
            }
            ReadAhead::RoomBesideStuck { stuck } => {
                if rt.answers.stuck_set_aside(true) {
                    tracing::info!(flow = %rt.flow.name(), stuck_bytes = stuck, "the read-ahead is full with records of partitions the target has taken nothing from for {} s: they no longer hold up the flow's other partitions", STUCK_AFTER.as_secs());
                }
            }
            ReadAhead::Full => {
                // As much is queued for the target as the flow reads ahead: no fetch until the
                // target has taken some.
                by_lane.clear();
                if fetches.tasks.is_empty() {
                    let _ = tokio::time::timeout(rt.settings.fetch_max_wait, rt.answers.released()).await;
                    return Ok(());
                }
            }
        }
    }
    let (mut max_bytes, mut partition_max_bytes) = (rt.settings.fetch_max_bytes, rt.settings.partition_max_bytes);
    if let Some(throttle) = throttle.as_deref_mut().filter(|_| !by_lane.is_empty()) {
        match throttle.allowance(std::time::Instant::now()) {
            Ok(allowed) => {
                // Each lane's fetch gets the whole allowance: with several lanes a round may
                // take more, and the next one waits for it.
                max_bytes = max_bytes.min(allowed);
                partition_max_bytes = partition_max_bytes.min(allowed);
                let turn = throttle.next_turn();
                for parts in by_lane.values_mut() {
                    parts.sort();
                    let len = parts.len();
                    parts.rotate_left(turn % len);
                }
            }
            Err(wait) => {
                by_lane.clear();
                if fetches.tasks.is_empty() {
                    // In short steps: a batch far over the limit can mean a long wait, and the
                    // worker must keep heartbeating its group meanwhile.
                    tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
                    return Ok(());
                }
            }
        }
    }
    let wait = rt.settings.fetch_max_wait.as_millis() as i32;
    for (lane, parts) in by_lane {
        let tps: Vec<Tp> = parts.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        fetches.lanes.insert(lane);
        queues.set_in_flight(&tps, true);
        let rt = rt.clone();
        fetches.tasks.spawn(async move {
            let (leader, n) = lane;
            (lane, tps, rt.source.fetch_on(leader, n, &parts, wait, max_bytes, partition_max_bytes, Isolation::ReadCommitted).await)
        });
    }
    // The first answer, or nothing for a while: the caller heartbeats and syncs topics between
    // calls, so it must not wait on a long poll for ever.
    let next = tokio::time::timeout(rt.settings.fetch_max_wait + Duration::from_millis(100), fetches.tasks.join_next()).await;
    let (lane, asked, resp) = match next {
        Ok(Some(Ok(fetched))) => fetched,
        Ok(Some(Err(_))) => {
            // A fetch task that did not finish (aborted or panicked): start over.
            fetches.cancel();
            return Ok(());
        }
        Ok(None) | Err(_) => return Ok(()),
    };
    fetches.lanes.remove(&lane);
    queues.set_in_flight(&asked, false);
    let mut refresh = false;
    if !rt.status.replicating() {
        // Paused while the fetch was in flight: drop what came back, positions unchanged.
        fetches.cancel();
        return Ok(());
    }
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(flow = %rt.flow.name(), leader = lane.0, connection = lane.1, "fetch failed: {e}");
            let _ = rt.source.refresh_metadata(None).await;
            return Ok(());
        }
    };
    let answer_len: usize = resp.responses.iter().flat_map(|t| &t.partitions).map(|p| p.records.as_ref().map_or(0, |r| r.len())).sum();
    let mut answer = Answer::new(&rt.answers, answer_len);
    for t in resp.responses {
        let topic = t.topic.0.to_string();
        for p in t.partitions {
            let tp = (topic.clone(), p.partition_index);
            let Some(pos) = positions.get(&tp).copied() else { continue };
            match p.error_code {
                0 => {}
                1 => {
                    // OFFSET_OUT_OF_RANGE: the source no longer has the position.
                    out_of_range(rt, &tp, pos, positions).await?;
                    continue;
                }
                code => {
                    refresh = true;
                    tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, code, "fetch error");
                    continue;
                }
            }
            rt.status.update(&tp.0, tp.1, |s| {
                // What a read_committed reader can reach: the last stable offset (an open
                // transaction's records wait for its marker).
                s.source_end_offset = if p.last_stable_offset >= 0 { p.last_stable_offset } else { p.high_watermark };
                s.source_end_peak = s.source_end_peak.max(p.high_watermark);
            });
            let records = p.records.unwrap_or_default();
            if records.is_empty() {
                continue;
            }
            // The batches produced keep slices of the answer, which stays in memory until the
            // last of them is acknowledged (see `held`).
            let backlog = queues.backlog(&tp).cloned().unwrap_or_default();
            let (records, held) = answer.keep(records, &backlog);
            if let Some(throttle) = throttle.as_deref_mut() {
                throttle.spend(records.len());
            }
            let aborted = p.aborted_transactions.unwrap_or_default().iter().map(|t| (t.producer_id.0, t.first_offset)).collect();
            let prepared = prepare(&records, pos, &mut Aborted::new(aborted));
            if let Some(why) = &prepared.stop {
                if prepared.next_offset == pos {
                    fail_partition(rt, &tp, why.clone());
                    continue;
                }
                // The batches before the one that cannot be copied go to the target first; the
                // partition's producer stops the partition after them. Not fetched again.
                rt.failed.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), why.clone());
            }
            if prepared.next_offset == pos {
                continue;
            }
            positions.insert(tp.clone(), prepared.next_offset);
            if prepared.last_epoch >= 0 {
                rt.last_epochs.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), (prepared.last_epoch, prepared.next_offset));
            }
            if let Some(tx) = queues.sender(&tp) {
                // Capacity was checked above and only this task sends.
                let _ = tx.try_send(Queued { set: prepared, held });
            }
        }
    }
    if refresh {
        let _ = rt.source.refresh_metadata(None).await;
    }
    Ok(())
}

/// The source answered that `pos` is out of range for `tp`. The rule, in order:
/// - the log start moved past it (retention, DeleteRecords): go on from the log start; the
///   records in between were lost before replication;
/// - the topic was recreated (its id changed): its partitions start over at the rejoin;
/// - the leader epoch of the last batch fetched ends below it on the current leader (an
///   unclean leader election): go on from there at once, so records the new leader took since
///   are replicated;
/// - without epochs (a source that does not answer OffsetForLeaderEpoch, a position from before
///   a restart), the log ends below it for [`TRUNCATION_CONFIRMED_AFTER`]: go on from the lowest
///   end seen meanwhile.
pub(super) async fn out_of_range(rt: &Runtime, tp: &Tp, pos: i64, positions: &mut HashMap<Tp, i64>) -> Result<()> {
    let (start, _) = rt.source.list_offset(&tp.0, tp.1, EARLIEST).await.map_err(|e| Error::cluster(&rt.flow.source, e))?;
    if start > pos {
        rt.status.source_event(SourceEventRecord {
            kind: SourceEvent::LogStartMoved,
            topic: tp.0.clone(),
            partition: tp.1,
            at_ms: crate::clock::now_ms(),
            lost: Some(start - pos),
            from: pos,
            resumed_at: start,
        });
        positions.insert(tp.clone(), start);
        return Ok(());
    }
    let (end, _) = rt.source.list_offset(&tp.0, tp.1, LATEST).await.map_err(|e| Error::cluster(&rt.flow.source, e))?;
    if end >= pos {
        if rt.truncated_since.lock().unwrap_or_else(|p| p.into_inner()).remove(tp).is_some() {
            rt.status.update(&tp.0, tp.1, |s| s.error = None);
        }
        return Ok(());
    }
    let _ = rt.source.refresh_metadata(Some(std::slice::from_ref(&tp.0))).await;
    // A recreated topic, noted here or by the topic watcher a moment ago (the rejoin that
    // restarts it from the new log start has not happened yet), is not a truncation: an
    // answer to a fetch sent before the recreation was seen lands here too.
    if note_recreated(rt) || rt.recreated.lock().unwrap_or_else(|p| p.into_inner()).contains(&tp.0) {
        return Ok(());
    }
    // Where the epoch of the last batch fetched ends on the current leader: below the position,
    // the log diverged there, whatever was written since.
    let epoch = rt.last_epochs.lock().unwrap_or_else(|p| p.into_inner()).get(tp).filter(|(_, at)| *at == pos).map(|(epoch, _)| *epoch);
    if let Some(epoch) = epoch {
        match rt.source.epoch_end_offset(&tp.0, tp.1, epoch).await {
            Ok(Some(diverged)) if diverged < pos => {
                truncated(rt, tp, pos, diverged.max(start), positions).await;
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "the end of leader epoch {epoch}: {e}"),
        }
    }
    let (since, lowest_end) = {
        let mut seen = rt.truncated_since.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen.entry(tp.clone()).or_insert_with(|| (std::time::Instant::now(), end));
        entry.1 = entry.1.min(end);
        *entry
    };
    rt.status.update(&tp.0, tp.1, |s| {
        s.error = Some(format!(
            "the source log ends at {lowest_end}, below the replicated position {pos}: taken as truncated if it lasts {} s",
            TRUNCATION_CONFIRMED_AFTER.as_secs()
        ))
    });
    if since.elapsed() >= TRUNCATION_CONFIRMED_AFTER {
        truncated(rt, tp, pos, lowest_end, positions).await;
    }
    Ok(())
}

/// The source log of `tp` was truncated below `pos`: replication goes on from `resume_at`;
/// the target keeps the records past it that the source lost.
pub(super) async fn truncated(rt: &Runtime, tp: &Tp, pos: i64, resume_at: i64, positions: &mut HashMap<Tp, i64>) {
    rt.truncated_since.lock().unwrap_or_else(|p| p.into_inner()).remove(tp);
    rt.last_epochs.lock().unwrap_or_else(|p| p.into_inner()).remove(tp);
    rt.status.update(&tp.0, tp.1, |s| s.error = None);
    rt.status.source_event(SourceEventRecord {
        kind: SourceEvent::Truncated,
        topic: tp.0.clone(),
        partition: tp.1,
        at_ms: crate::clock::now_ms(),
        lost: Some(0),
        from: pos,
        resumed_at: resume_at,
    });
    positions.insert(tp.clone(), resume_at);
    // Committed with the next commit (a rebalance's at the latest), as a recreated topic's new
    // start is: the position committed before the truncation lies past the log's end, and a
    // worker that took the partition up from it would see the truncation again, later, and
    // skip what was written since.
    rt.rewound.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), (pos, resume_at));
    rt.acked.lock().await.insert(tp.clone(), resume_at);
}
