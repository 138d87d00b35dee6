//! The offset maps on the target, and the internal topics that carry them.
//!
//! Every offset-map entry is a record in `tern-offset-map.<source>.internal` on the target,
//! keyed by (topic, partition, source offset) so compaction never drops history still
//! needed; entries below the source's log start are removed with tombstones. Each entry is
//! also written as an MM2 OffsetSync to `mm2-offset-syncs.<target>.internal` on the source,
//! where MM2 tooling looks for them. An exactly-once flow keeps each partition's source
//! position in the same topic, under keys map readers pass by.

use std::collections::{BTreeMap, HashMap};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::Compression;
use tern_kafka::client::Client;
use tern_kafka::records::{encode_batch, PlainRecord};

use crate::config::{Delivery, Flow};
use crate::error::{Error, Result};
use crate::mm2::{checkpoints_topic, offset_syncs_topic, OffsetSync};
use crate::names::Tp;

use super::{Entry, OffsetMap};

pub fn offset_map_topic(source: &str) -> String {
    format!("tern-offset-map.{source}.internal")
}

fn map_key(topic: &str, partition: i32, source: i64) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(topic.len().min(i16::MAX as usize) as i16);
    b.put_slice(&topic.as_bytes()[..topic.len().min(i16::MAX as usize)]);
    b.put_i32(partition);
    b.put_i64(source);
    b.freeze()
}

fn parse_map_key(mut key: Bytes) -> Option<(String, i32, i64)> {
    if key.remaining() < 2 {
        return None;
    }
    let len = key.get_i16();
    if len < 0 || key.remaining() < len as usize + 12 {
        return None;
    }
    let topic = String::from_utf8(key.split_to(len as usize).to_vec()).ok()?;
    Some((topic, key.get_i32(), key.get_i64()))
}

/// Encodes records (key, value or tombstone) as one batch.
pub fn encode_records(records: &[(Bytes, Option<Bytes>)], timestamp: i64) -> Result<Bytes> {
    let plain: Vec<PlainRecord> = records.iter().map(|(k, v)| PlainRecord::new(k.clone(), v.clone(), timestamp)).collect();
    Ok(encode_batch(&plain, Compression::None)?)
}

/// Creates a compacted one-partition internal topic unless the client already knows it:
/// writers that run every few seconds then send no CreateTopics.
pub async fn ensure_compacted(client: &Client, cluster: &str, topic: &str) -> Result<()> {
    if client.metadata_snapshot().topics.contains_key(topic) {
        return Ok(());
    }
    let mut compact = BTreeMap::new();
    compact.insert("cleanup.policy".to_string(), "compact".to_string());
    client.create_topic(topic, 1, &compact).await.map_err(|e| Error::cluster(cluster, e))?;
    Ok(())
}

/// Creates the internal topics a flow writes (compacted, one partition), as MM2 does.
pub async fn ensure_internal_topics(flow: &Flow, source: &Client, target: &Client) -> Result<()> {
    let mut compact = BTreeMap::new();
    compact.insert("cleanup.policy".to_string(), "compact".to_string());
    target.create_topic(&offset_map_topic(&flow.source), 1, &compact).await.map_err(|e| Error::cluster(&flow.target, e))?;
    target.create_topic(&checkpoints_topic(&flow.source), 1, &compact).await.map_err(|e| Error::cluster(&flow.target, e))?;
    if let Err(e) = source.create_topic(&offset_syncs_topic(&flow.target), 1, &compact).await {
        tracing::warn!(flow = %flow.name(), "cannot create {} on {} ({e}); MM2 tooling will not see offset syncs", offset_syncs_topic(&flow.target), flow.source);
    }
    Ok(())
}

/// The key of an exactly-once flow's source position for one partition, in the offset-map
/// topic: a negative length where a map entry's key has its topic's length, so readers of map
/// entries pass it by.
fn position_key(topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(-1);
    b.put_slice(&map_key(topic, partition, 0)[..]);
    b.freeze()
}

fn parse_position_key(mut key: Bytes) -> Option<Tp> {
    if key.remaining() < 2 || key.get_i16() != -1 {
        return None;
    }
    parse_map_key(key).map(|(t, p, _)| (t, p))
}

/// The offset-map record of an exactly-once flow's position: where replication of `tp` goes on
/// (the source offset after what the same transaction wrote); `None` forgets it (a tombstone).
pub fn position_record(tp: &Tp, next: Option<i64>) -> (Bytes, Option<Bytes>) {
    (position_key(&tp.0, tp.1), next.map(|n| Bytes::copy_from_slice(&n.to_be_bytes())))
}

/// Forgets the exactly-once position of `tp` (its source topic was recreated: the old topic's
/// offsets mean nothing for the new one).
pub async fn forget_position(flow: &Flow, target: &Client, tp: &Tp) -> Result<()> {
    let batch = encode_records(&[position_record(tp, None)], crate::clock::now_ms())?;
    target.produce(&offset_map_topic(&flow.source), 0, batch, -1, 30_000).await.map_err(|e| Error::cluster(&flow.target, e))?;
    Ok(())
}

/// What a flow keeps on its target: the offset maps, and the positions exactly-once delivery
/// committed with its records.
#[derive(Debug, Default)]
pub struct TargetState {
    pub maps: HashMap<Tp, OffsetMap>,
    pub positions: HashMap<Tp, i64>,
}

impl TargetState {
    /// The next source offset whose records the target holds, by what the target itself
    /// shows. An exactly-once flow's position, committed with the records, says it exactly:
    /// past the newest run the remote partition holds commit markers (and the records of
    /// aborted transactions), which stand for no source record. Otherwise the newest run is
    /// continued up to the remote partition's end: records acknowledged before their entry was
    /// written count. `None` when neither is known.
    pub fn replicated_end(&self, delivery: Delivery, tp: &Tp, target_end: i64) -> Option<i64> {
        match (delivery, self.positions.get(tp)) {
            (Delivery::ExactlyOnce, Some(&next)) => Some(next),
            _ => self.maps.get(tp).and_then(|m| m.replicated_source_end(target_end)),
        }
    }
}

/// Reads every offset map of the flow back from the target (tombstones applied).
pub async fn load_offset_maps(flow: &Flow, target: &Client) -> Result<HashMap<Tp, OffsetMap>> {
    Ok(load_target_state(flow, target).await?.maps)
}

/// Reads the flow's offset maps and exactly-once positions back from the target, as
/// `read_committed` consumers see them: what an aborted transaction wrote never counts, and an
/// open one is read once it ends.
pub async fn load_target_state(flow: &Flow, target: &Client) -> Result<TargetState> {
    let topic = offset_map_topic(&flow.source);
    let records = target.read_all_committed(&topic, 0).await.map_err(|e| Error::cluster(&flow.target, e))?;
    let mut entries: BTreeMap<(String, i32, i64), Option<i64>> = BTreeMap::new();
    let mut state = TargetState::default();
    for r in records {
        let Some(key) = r.key else { continue };
        let value = r.value.filter(|v| v.len() == 8).map(|mut v| v.get_i64());
        if let Some(tp) = parse_position_key(key.clone()) {
            match value {
                Some(next) => state.positions.insert(tp, next),
                None => state.positions.remove(&tp),
            };
        } else if let Some(key) = parse_map_key(key) {
            entries.insert(key, value);
        }
    }
    for ((t, p, s), target_offset) in entries {
        if let Some(target_offset) = target_offset {
            state.maps.entry((t, p)).or_default().restore(Entry { source: s, target: target_offset });
        }
    }
    Ok(state)
}

/// Offset-map records for entries added and removed (tombstones).
pub fn map_records(tp: &Tp, added: &[Entry], removed: &[Entry]) -> Vec<(Bytes, Option<Bytes>)> {
    let mut records: Vec<(Bytes, Option<Bytes>)> = added.iter().map(|e| (map_key(&tp.0, tp.1, e.source), Some(Bytes::copy_from_slice(&e.target.to_be_bytes())))).collect();
    records.extend(removed.iter().map(|e| (map_key(&tp.0, tp.1, e.source), None)));
    records
}

/// Writes new offset-map entries (and their MM2 offset syncs) before the position they
/// cover is committed.
pub async fn persist_entries(flow: &Flow, source: &Client, target: &Client, tp: &Tp, added: &[Entry], removed: &[Entry]) -> Result<()> {
    persist_changes(flow, source, target, &[(tp, added, removed)]).await
}

/// [`persist_entries`] for several partitions at once: one record batch on the target and one
/// of offset syncs on the source, whatever the number of partitions.
pub async fn persist_changes(flow: &Flow, source: &Client, target: &Client, changes: &[(&Tp, &[Entry], &[Entry])]) -> Result<()> {
    let records: Vec<(Bytes, Option<Bytes>)> = changes.iter().flat_map(|(tp, added, removed)| map_records(tp, added, removed)).collect();
    if records.is_empty() {
        return Ok(());
    }
    let batch = encode_records(&records, crate::clock::now_ms())?;
    target.produce(&offset_map_topic(&flow.source), 0, batch, -1, 30_000).await.map_err(|e| Error::cluster(&flow.target, e))?;
    let added: Vec<(&Tp, &[Entry])> = changes.iter().map(|(tp, added, _)| (*tp, *added)).collect();
    write_syncs(flow, source, &added).await;
    Ok(())
}

/// Writes MM2 offset syncs for new offset-map entries to the source, where MM2 tooling looks
/// for them. Best effort: Tern itself reads its offset maps.
pub async fn write_offset_syncs(flow: &Flow, source: &Client, tp: &Tp, added: &[Entry]) {
    write_syncs(flow, source, &[(tp, added)]).await
}

/// [`write_offset_syncs`] for several partitions, in one record batch.
async fn write_syncs(flow: &Flow, source: &Client, added: &[(&Tp, &[Entry])]) {
    let syncs: Vec<(Bytes, Option<Bytes>)> = added
        .iter()
        .flat_map(|(tp, entries)| {
            entries.iter().map(|e| {
                let s = OffsetSync { topic: tp.0.clone(), partition: tp.1, upstream_offset: e.source, downstream_offset: e.target };
                (s.key(), Some(s.value()))
            })
        })
        .collect();
    if syncs.is_empty() {
        return;
    }
    if let Ok(batch) = encode_records(&syncs, crate::clock::now_ms()) {
        if let Err(e) = source.produce(&offset_syncs_topic(&flow.target), 0, batch, -1, 30_000).await {
            tracing::debug!(flow = %flow.name(), "offset sync: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two transactions of 10 records, each followed by its commit marker: the remote
    /// partition ends at 22 for 20 source records. Exactly-once delivery goes by the committed
    /// position (20); at-least-once continues the newest run to the end (the records past it
    /// were acknowledged before their entry was written).
    #[test]
    fn an_exactly_once_flow_counts_its_markers_as_no_records() {
        let tp = ("orders".to_string(), 0);
        let mut state = TargetState::default();
        let map = state.maps.entry(tp.clone()).or_default();
        map.restore(Entry { source: 0, target: 0 });
        map.restore(Entry { source: 10, target: 11 });
        state.positions.insert(tp.clone(), 20);
        assert_eq!(state.replicated_end(Delivery::ExactlyOnce, &tp, 22), Some(20));
        assert_eq!(state.replicated_end(Delivery::AtLeastOnce, &tp, 22), Some(21));
        state.positions.clear();
        assert_eq!(state.replicated_end(Delivery::ExactlyOnce, &tp, 22), Some(21), "no position: the run continued");
        assert_eq!(state.replicated_end(Delivery::ExactlyOnce, &("other".to_string(), 0), 5), None);
    }

    #[test]
    fn positions_and_map_entries_never_read_as_each_other() {
        let key = position_key("orders", 3);
        assert_eq!(parse_position_key(key.clone()), Some(("orders".to_string(), 3)));
        assert_eq!(parse_map_key(key), None, "a map reader passes positions by");
        assert_eq!(parse_position_key(map_key("orders", 3, 17)), None);
        let (_, value) = position_record(&("orders".to_string(), 3), Some(42));
        assert_eq!(value.as_deref(), Some(&42i64.to_be_bytes()[..]));
        assert_eq!(position_record(&("orders".to_string(), 3), None).1, None, "a tombstone");
    }

    #[test]
    fn map_keys_round_trip_and_reject_garbage() {
        let k = map_key("orders", 3, 12345);
        assert_eq!(parse_map_key(k), Some(("orders".to_string(), 3, 12345)));
        assert_eq!(parse_map_key(Bytes::from_static(&[0, 9, b'x'])), None);
        assert_eq!(parse_map_key(Bytes::new()), None);
    }
}
