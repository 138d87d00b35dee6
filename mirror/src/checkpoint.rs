//! What the offset maps are for: MM2 checkpoints and group offset sync (the maps themselves,
//! and how they are kept on the target, are in [`crate::offset_map`]).
//!
//! Every `checkpoint_interval` a worker translates the committed offsets of the flow's groups
//! for the partitions it owns, emits MM2 checkpoints to `<source>.checkpoints.internal` on the
//! target and, with `sync_group_offsets`, commits the translated offsets to the same-named
//! group on the target: never backwards, and never for a group with active members there.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use tern_kafka::client::{Client, Membership};

use crate::config::Flow;
use crate::error::{Error, Result};
use crate::mm2::{checkpoints_topic, Checkpoint};
use crate::naming;
use crate::offset_map::store::{encode_records, load_offset_maps};
use crate::offset_map::{Entry, OffsetMap, Translation};
use crate::states::SyncState;

pub type Tp = (String, i32);

/// Groups MirrorMaker 2 never checkpoints (console consumers, Connect, internal), plus the
/// mirror's own groups and drill groups.
pub fn is_excluded_group(group: &str) -> bool {
    group.starts_with("console-consumer-") || group.starts_with("connect-") || group.starts_with("__") || group.starts_with("tern.") || group.starts_with(crate::names::DRILL_GROUP_PREFIX)
}

pub fn replicates_group(flow: &Flow, group: &str) -> bool {
    !is_excluded_group(group) && flow.groups.iter().any(|r| r.is_match(group)) && !flow.groups_exclude.iter().any(|r| r.is_match(group))
}

/// One group's translation for one partition, as the dashboard and `tern offsets` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPartition {
    pub committed: i64,
    pub translation: Translation,
    /// When the checkpoint was emitted (ms), -1 if it could not be.
    pub checkpoint_at: i64,
    /// What the last sync of the target group did.
    pub sync: SyncState,
    /// Why a sync is blocked or failed, as the operator should read it.
    pub sync_reason: Option<String>,
    /// Records between the committed offset and the source end.
    pub lag_records: i64,
    /// Age of the first record the group has not consumed (0 when caught up); `None` when
    /// not known.
    pub lag_seconds: Option<f64>,
}

/// Translates, checkpoints and syncs the flow's groups for the owned partitions.
pub async fn checkpoint_groups(
    flow: &Flow,
    source: &Client,
    target: &Client,
    maps: &HashMap<Tp, OffsetMap>,
) -> Result<BTreeMap<(String, Tp), GroupPartition>> {
    let groups: Vec<String> = source.list_groups().await.map_err(|e| Error::cluster(&flow.source, e))?.into_iter().filter(|g| replicates_group(flow, g)).collect();
    let now = crate::clock::now_ms();
    let mut out = BTreeMap::new();
    let mut checkpoints: Vec<(Bytes, Option<Bytes>)> = Vec::new();
    for group in groups {
        let committed = match source.all_committed_offsets(&group).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(flow = %flow.name(), group, "offsets: {e}");
                continue;
            }
        };
        let mut translated: BTreeMap<Tp, i64> = BTreeMap::new();
        for (tp, offset) in committed {
            let Some(map) = maps.get(&tp) else { continue };
            let translation = map.translate(offset);
            let mut at = -1;
            if let Some(t) = translation.target() {
                let remote = (naming::remote_topic(flow, &tp.0), tp.1);
                let cp = Checkpoint { group: group.clone(), topic: remote.0.clone(), partition: tp.1, upstream_offset: offset, downstream_offset: t, metadata: String::new() };
                checkpoints.push((cp.key(), Some(cp.value())));
                translated.insert(remote, t);
                at = now;
            }
            out.insert((group.clone(), tp), GroupPartition { committed: offset, translation, checkpoint_at: at, sync: SyncState::Off, sync_reason: None, lag_records: 0, lag_seconds: None });
        }
        if flow.sync_group_offsets && !translated.is_empty() {
            let (sync, reason) = sync_group(target, &group, &translated).await;
            for (_, gp) in out.iter_mut().filter(|((g, _), _)| *g == group) {
                gp.sync = sync;
                gp.sync_reason = reason.clone();
            }
        }
    }
    if !checkpoints.is_empty() {
        let batch = encode_records(&checkpoints, now)?;
        target.produce(&checkpoints_topic(&flow.source), 0, batch, -1, 30_000).await.map_err(|e| Error::cluster(&flow.target, e))?;
    }
    Ok(out)
}

/// Commits translated offsets to the same-named group on the target, never moving it
/// backwards and never touching a group that has active members there.
pub(crate) async fn sync_group(target: &Client, group: &str, translated: &BTreeMap<Tp, i64>) -> (SyncState, Option<String>) {
    match target.describe_group(group).await {
        Ok(info) if info.members > 0 => return (SyncState::Blocked, Some(format!("{} active member(s) on the target ({})", info.members, info.state))),
        Ok(_) => {}
        Err(e) => return (SyncState::Failed, Some(e.to_string())),
    }
    let current = target.all_committed_offsets(group).await.unwrap_or_default();
    let forward: BTreeMap<Tp, i64> = translated.iter().filter(|(tp, t)| current.get(*tp).is_none_or(|c| *t > c)).map(|(tp, t)| (tp.clone(), *t)).collect();
    if forward.is_empty() {
        return (SyncState::InSync, None);
    }
    match target.commit_offsets(group, &Membership::none(), &forward).await {
        Ok(()) => (SyncState::Synced, None),
        Err(e) => (SyncState::Failed, Some(e.to_string())),
    }
}

/// A sync's outcome in one line: the state's word, and why when it has a reason.
pub fn sync_text((state, reason): (SyncState, Option<String>)) -> String {
    match reason {
        Some(r) => format!("{state}: {r}"),
        None => state.to_string(),
    }
}

/// One partition of `tern offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsRow {
    pub topic: String,
    pub partition: i32,
    pub remote_topic: String,
    pub committed: i64,
    pub translation: Translation,
    /// The target offset the next replicated record will get.
    pub replicated_end: i64,
}

/// Translates `group`'s committed offsets without a running mirror: the offset maps are read
/// from the target, and each partition's replicated end is the flow's committed position on
/// the source with the remote partition's end offset on the target.
pub async fn translate_group(flow: &Flow, source: &Client, target: &Client, group: &str) -> Result<Vec<OffsetsRow>> {
    let mut maps = load_offset_maps(flow, target).await?;
    let committed = source.all_committed_offsets(group).await.map_err(|e| Error::cluster(&flow.source, e))?;
    let tps: Vec<Tp> = committed.keys().filter(|(t, _)| naming::replicates(flow, t)).cloned().collect();
    let positions = source.committed_offsets(&crate::names::group_id(flow), &tps).await.map_err(|e| Error::cluster(&flow.source, e))?;
    let mut rows = Vec::new();
    for tp in tps {
        let remote = naming::remote_topic(flow, &tp.0);
        let end = target.list_offset(&remote, tp.1, tern_kafka::client::LATEST).await.map(|(o, _)| o).unwrap_or(0);
        let map = maps.entry(tp.clone()).or_default();
        if let Some(pos) = positions.get(&tp) {
            map.set_end(Entry { source: *pos, target: end });
        }
        rows.push(OffsetsRow {
            topic: tp.0.clone(),
            partition: tp.1,
            remote_topic: remote,
            committed: committed[&tp],
            translation: map.translate(committed[&tp]),
            replicated_end: end,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_group_excludes_follow_mm2() {
        assert!(is_excluded_group("console-consumer-123"));
        assert!(is_excluded_group("connect-sink"));
        assert!(is_excluded_group("tern.us-east.eu-west"));
        assert!(is_excluded_group("tern-drill.20261125T054512Z-3f9a.billing"));
        assert!(!is_excluded_group("billing"));
    }
}
