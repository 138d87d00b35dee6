//! Topic discovery: the target's remote topics kept in line with the source (existence,
//! partition count, configs), and source topics found recreated.

use std::collections::BTreeMap;
use std::sync::Arc;

use tern_kafka::client::Client;
use tokio::sync::watch;

use crate::clock::wait_or_shutdown;
use crate::names::Tp;
use crate::error::{Error, Result};
use crate::naming;
use crate::states::SourceEvent;
use crate::status::SourceEventRecord;

use super::runtime::*;

/// Topic configs never copied to the target. As in MirrorMaker 2: replication throttles and
/// replica placement are the target cluster's business, and a LogAppendTime target would
/// re-stamp the source's timestamps.
pub const CONFIG_EXCLUDES: &[&str] = &[
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "unclean.leader.election.enable",
    "min.insync.replicas",
];

/// Compares the ids of the replicated source topics in the client's metadata with the ids last
/// seen. A topic whose id changed was deleted and created again: the event is recorded for the
/// partitions this worker owns (what the old topic held past the replicated position is lost),
/// and the topic is marked so that the next assignment starts its partitions over from the new
/// log start. Returns whether a topic was found recreated.
pub(super) fn note_recreated(rt: &Runtime) -> bool {
    let md = rt.source.metadata_snapshot();
    let mut found = false;
    let mut ids = rt.topic_ids.lock().unwrap_or_else(|p| p.into_inner());
    for t in md.topics.values().filter(|t| !t.internal && naming::replicates(&rt.flow, &t.name) && !t.id.is_nil()) {
        match ids.insert(t.name.clone(), t.id) {
            Some(old) if old != t.id => {
                found = true;
                rt.recreated.lock().unwrap_or_else(|p| p.into_inner()).insert(t.name.clone());
                // What the old topic held, from the partitions this worker owns or gave up
                // (the deletion may have been seen first, revoking them).
                let mut known: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
                {
                    let mut last = rt.last_owned.lock().unwrap_or_else(|p| p.into_inner());
                    last.retain(|(topic, partition), seen| {
                        if *topic != t.name {
                            return true;
                        }
                        known.insert(*partition, *seen);
                        false
                    });
                }
                for ((_, partition), s) in rt.status.snapshot().partitions.into_iter().filter(|((topic, _), _)| *topic == t.name) {
                    known.insert(partition, (s.source_end_peak.max(s.source_end_offset), s.replicated_offset));
                }
                for (partition, (end, replicated)) in &known {
                    rt.status.source_event(SourceEventRecord {
                        kind: SourceEvent::Recreated,
                        topic: t.name.clone(),
                        partition: *partition,
                        at_ms: crate::clock::now_ms(),
                        lost: Some((end - replicated).max(0)),
                        from: *replicated,
                        resumed_at: 0,
                    });
                }
                if known.is_empty() {
                    tracing::warn!(flow = %rt.flow.name(), topic = %t.name, "source topic recreated; its partitions start over from the new log start");
                }
            }
            _ => {}
        }
    }
    found
}

/// Topic discovery, in a task of its own so that a slow target never holds up the replication
/// loop (nor its answer to a rebalance): every `topic_refresh_interval` the target's topics are
/// brought in line with the source, and the source partitions to replicate are published,
/// sorted.
pub(super) async fn discover_topics(rt: Arc<Runtime>, found: watch::Sender<Option<Vec<Tp>>>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match sync_topics(&rt).await {
            Ok(mut partitions) => {
                partitions.sort();
                // A recreated topic is marked for the replication loop, which rejoins.
                note_recreated(&rt);
                found.send_if_modified(|last| {
                    let changed = last.as_ref() != Some(&partitions);
                    *last = Some(partitions);
                    changed
                });
                rt.status.set_errors(vec![]);
            }
            Err(e) => {
                tracing::warn!(flow = %rt.flow.name(), "topic sync: {e}");
                rt.status.set_errors(vec![e.to_string()]);
            }
        }
        if wait_or_shutdown(&mut shutdown, rt.settings.topic_refresh_interval).await {
            return;
        }
    }
}

/// Brings the target's topics in line with the source (existence, partition count, topic
/// configs) and returns the source partitions to replicate.
pub(super) async fn sync_topics(rt: &Runtime) -> Result<Vec<Tp>> {
    let md = rt.source.refresh_metadata(None).await.map_err(|e| Error::cluster(&rt.flow.source, e))?;
    let mut topics: Vec<_> = md.topics.values().filter(|t| !t.internal && naming::replicates(&rt.flow, &t.name)).cloned().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let target_md = rt.target.refresh_metadata(None).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let source_configs = topic_configs(&rt.source, &names).await;
    let remotes: Vec<String> = names.iter().map(|n| naming::remote_topic(&rt.flow, n)).filter(|r| target_md.topics.contains_key(r)).collect();
    let target_configs = topic_configs(&rt.target, &remotes).await;
    let mut out = Vec::new();
    for t in topics {
        let remote = naming::remote_topic(&rt.flow, &t.name);
        let count = t.partitions.len() as i32;
        let wanted: BTreeMap<String, String> = source_configs
            .as_ref()
            .and_then(|c| c.get(&t.name).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !CONFIG_EXCLUDES.contains(&k.as_str()))
            .collect();
        match target_md.topics.get(&remote) {
            None => {
                let created = rt.target.create_topic(&remote, count, &wanted).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
                if created {
                    tracing::info!(flow = %rt.flow.name(), topic = %t.name, remote = %remote, partitions = count, "created remote topic");
                }
            }
            Some(existing) => {
                if (existing.partitions.len() as i32) < count {
                    rt.target.create_partitions(&remote, count).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
                    tracing::info!(flow = %rt.flow.name(), remote = %remote, partitions = count, "grew remote topic");
                }
                // Only when both sides could be read: never strip the target's configs
                // because the source did not answer.
                if let (Some(_), Some(target_configs)) = (&source_configs, &target_configs) {
                    let have = target_configs.get(&remote).cloned().unwrap_or_default();
                    let set: BTreeMap<String, String> = wanted.iter().filter(|(k, v)| have.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
                    let delete: Vec<String> = have.keys().filter(|k| !wanted.contains_key(*k) && !CONFIG_EXCLUDES.contains(&k.as_str())).cloned().collect();
                    if !set.is_empty() || !delete.is_empty() {
                        rt.target.alter_topic_configs(&remote, &set, &delete).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
                        tracing::info!(flow = %rt.flow.name(), remote = %remote, set = ?set, removed = ?delete, "propagated topic config change");
                    }
                }
            }
        }
        out.extend(t.partitions.iter().map(|p| (t.name.clone(), p.partition)));
    }
    Ok(out)
}

/// Topic-level configs set on the given topics; `None` when the cluster cannot describe them
/// (remote topics are then created with the target's defaults, and nothing is altered).
pub(super) async fn topic_configs(client: &Client, topics: &[String]) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
    if topics.is_empty() {
        return Some(BTreeMap::new());
    }
    match client.describe_topic_configs(topics).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!("cannot describe topic configs: {e}");
            None
        }
    }
}
