//! Progress and what it feeds: commits of replicated positions on the source, checkpoints and
//! offset-map trimming, lag probes, source ends for unplanned failovers, MM2 heartbeats.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tern_kafka::client::{EARLIEST, LATEST};
use tokio::sync::watch;

use crate::clock::{now_ms, wait_or_shutdown};
use crate::names::{group_id, Tp};
use crate::producer::encode_one;
use crate::mm2::{Heartbeat, HEARTBEATS_TOPIC};
use crate::checkpoint;
use crate::offset_map::OffsetMap;
use crate::offset_map::store;

use super::runtime::*;

/// Translates the flow's groups for the owned partitions every `checkpoint_interval`, and
/// trims offset maps below the source's log start.
pub(super) async fn checkpointer(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    // Source end offsets last recorded on the target, for unplanned failovers.
    let mut recorded_ends: HashMap<Tp, (i64, i64)> = HashMap::new();
    loop {
        if wait_or_shutdown(&mut shutdown, rt.flow.checkpoint_interval).await {
            return;
        }
        let owned: Vec<Tp> = rt.owned.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        let starts = match rt.source.list_offsets(&owned, EARLIEST).await {
            Ok(starts) => starts,
            Err(e) => {
                tracing::debug!(flow = %rt.flow.name(), "log starts for trimming offset maps: {e}");
                BTreeMap::new()
            }
        };
        // Every partition's trimmed entries in one write.
        let removed: Vec<(Tp, Vec<crate::offset_map::Entry>)> = {
            let mut maps = rt.maps.lock().unwrap_or_else(|p| p.into_inner());
            starts.into_iter().filter_map(|(tp, start)| maps.get_mut(&tp).map(|m| (tp, m.trim_below(start)))).filter(|(_, r)| !r.is_empty()).collect()
        };
        let changes: Vec<(&Tp, &[crate::offset_map::Entry], &[crate::offset_map::Entry])> = removed.iter().map(|(tp, r)| (tp, &[][..], &r[..])).collect();
        if let Err(e) = store::persist_changes(&rt.flow, &rt.source, &rt.target, &changes).await {
            tracing::debug!(flow = %rt.flow.name(), "trimming the offset maps: {e}");
        }
        let maps: HashMap<Tp, OffsetMap> = {
            let all = rt.maps.lock().unwrap_or_else(|p| p.into_inner());
            owned.iter().filter_map(|tp| all.get(tp).map(|m| (tp.clone(), m.clone()))).collect()
        };
        match checkpoint::checkpoint_groups(&rt.flow, &rt.source, &rt.target, &maps).await {
            Ok(mut groups) => {
                group_lag(&rt, &mut groups).await;
                rt.status.set_groups(groups)
            }
            Err(e) => tracing::debug!(flow = %rt.flow.name(), "checkpoints: {e}"),
        }
        let snapshot = rt.status.snapshot();
        let ends: Vec<(Tp, i64, i64)> = owned
            .iter()
            .filter_map(|tp| snapshot.partitions.get(tp).map(|s| (tp.clone(), s.source_end_offset, s.replicated_offset)))
            .filter(|(tp, end, replicated)| *end > 0 && recorded_ends.get(tp) != Some(&(*end, *replicated)))
            .collect();
        match crate::failover::record_source_ends(&rt.flow, &rt.target, &ends).await {
            Ok(()) => recorded_ends.extend(ends.into_iter().map(|(tp, end, replicated)| (tp, (end, replicated)))),
            Err(e) => tracing::debug!(flow = %rt.flow.name(), "recording source ends: {e}"),
        }
    }
}

/// Looks up, about once a second, the timestamp of the oldest record not yet on the target
/// for every owned partition that lags (and whose oldest record changed since the last look),
/// so lag in seconds is that record's age; paused flows included.
pub(super) async fn lag_prober(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
        let owned: Vec<Tp> = rt.owned.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        let snapshot = rt.status.snapshot();
        let wanted: Vec<(Tp, i64)> = owned
            .into_iter()
            .filter_map(|tp| {
                let s = snapshot.partitions.get(&tp)?;
                let stale = s.oldest_unreplicated.map(|(offset, _)| offset) != Some(s.replicated_offset);
                (s.lag_records() > 0 && stale).then(|| (tp, s.replicated_offset))
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let found = crate::probe::batch_timestamps(&rt.source, &wanted).await;
        for (tp, offset) in wanted {
            if let Some(ts) = found.get(&tp).copied() {
                rt.status.update(&tp.0, tp.1, |s| s.oldest_unreplicated = Some((offset, ts)));
            }
        }
    }
}

/// Each group's lag on the partitions this worker owns: records between its committed offset
/// and the source end, and the age of the first of them.
pub(super) async fn group_lag(rt: &Runtime, groups: &mut BTreeMap<(String, Tp), checkpoint::GroupPartition>) {
    let snapshot = rt.status.snapshot();
    let mut behind: BTreeMap<String, Vec<(Tp, i64)>> = BTreeMap::new();
    for ((group, tp), g) in groups.iter_mut() {
        let Some(end) = snapshot.partitions.get(tp).map(|s| s.source_end_offset) else { continue };
        g.lag_records = (end - g.committed).max(0);
        g.lag_seconds = (g.lag_records == 0).then_some(0.0);
        if g.lag_records > 0 {
            behind.entry(group.clone()).or_default().push((tp.clone(), g.committed));
        }
    }
    let now = crate::clock::now_ms();
    for (group, at) in behind {
        let found = crate::probe::batch_timestamps(&rt.source, &at).await;
        for (tp, ts) in found {
            if let Some(g) = groups.get_mut(&(group.clone(), tp)) {
                g.lag_seconds = Some((now - ts).max(0) as f64 / 1000.0);
            }
        }
    }
}

/// Source high watermarks of the owned partitions, for status while nothing is fetched.
pub(super) async fn refresh_source_ends(rt: &Runtime, positions: &HashMap<Tp, i64>) {
    let partitions: Vec<Tp> = positions.keys().cloned().collect();
    match rt.source.list_offsets(&partitions, LATEST).await {
        Ok(ends) => {
            for ((topic, partition), end) in ends {
                rt.status.update(&topic, partition, |s| {
                    s.source_end_offset = end;
                    s.source_end_peak = s.source_end_peak.max(end);
                });
            }
        }
        Err(e) => tracing::debug!(flow = %rt.flow.name(), "source ends while not replicating: {e}"),
    }
}

pub(super) async fn committer(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
        commit_now(&rt).await;
    }
}

/// Commits acknowledged positions; kept for the next attempt when the commit fails.
///
/// One commit at a time: a commit on revocation (before the worker leaves its group) waits
/// for the periodic one in flight and sends again what that one could not commit, instead of
/// finding nothing pending and leaving the group with the positions uncommitted. Partition
/// producers add positions meanwhile without waiting for the commit.
pub(super) async fn commit_now(rt: &Runtime) {
    let _one = rt.committing.lock().await;
    let pending = rt.acked.lock().await.clone();
    if pending.is_empty() {
        return;
    }
    let membership = rt.membership.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Each position with the leader epoch of the batch before it, when that is what was
    // acknowledged last (not a position moved on past control batches, or rewound).
    let positions = {
        let epochs = rt.acked_epochs.lock().unwrap_or_else(|p| p.into_inner());
        pending.iter().map(|(tp, o)| (tp.clone(), (*o, epochs.get(tp).filter(|(_, at)| at == o).map(|(epoch, _)| *epoch)))).collect()
    };
    match rt.source.commit_positions(&group_id(&rt.flow), &membership, &positions).await {
        Ok(()) => {
            rt.acked.lock().await.retain(|tp, o| pending.get(tp) != Some(o));
            rt.rewound.lock().unwrap_or_else(|p| p.into_inner()).retain(|tp, _| !pending.contains_key(tp));
        }
        Err(e) => tracing::debug!(flow = %rt.flow.name(), "commit of replication progress failed: {e}"),
    }
}

pub(super) async fn heartbeats(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let mut created = false;
    loop {
        if !created {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            created = rt.target.create_topic(HEARTBEATS_TOPIC, 1, &configs).await.is_ok();
        }
        if created {
            let hb = Heartbeat { source_cluster: rt.flow.source.clone(), target_cluster: rt.flow.target.clone(), timestamp: now_ms() };
            match encode_one(hb.key(), hb.value(), hb.timestamp) {
                Ok(records) => match rt.target.produce(HEARTBEATS_TOPIC, 0, records, -1, 10_000).await {
                    Ok(_) => rt.status.heartbeat_sent(),
                    Err(e) => tracing::debug!(flow = %rt.flow.name(), "heartbeat: {e}"),
                },
                Err(e) => tracing::error!("encoding a heartbeat: {e}"),
            }
        }
        if wait_or_shutdown(&mut shutdown, rt.settings.heartbeat_interval).await {
            return;
        }
    }
}
