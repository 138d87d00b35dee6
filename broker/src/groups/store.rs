//! The coordinator's durable state: record batches in `__consumer_offsets`, written through the
//! partition log like any produce, and replayed on startup.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record};
use tern_kafka::records::{encode_batch, PlainRecord};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use super::records::{self, GroupValue, RecordKey};
use super::state::CommittedOffset;
use super::{partition_for, OFFSETS_TOPIC};
use crate::apis::now_ms;
use crate::error::{Error, Result};
use crate::storage;
use crate::topics::{Topic, Topics};

/// A key and its value; `None` is a tombstone.
pub type KeyValue = (Bytes, Option<Bytes>);

pub struct Store {
    topic: Arc<Topic>,
    /// Wakes long-polling fetches of `__consumer_offsets` after an append.
    appended: watch::Sender<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Log(#[from] storage::Error),
    #[error("encoding a record batch: {0}")]
    Encode(String),
}

impl StoreError {
    /// Kafka's mapping of a failed coordinator write to what the client is told: too large is
    /// final, anything else sends the client to find the coordinator again and retry.
    pub fn code(&self, too_large: ResponseError) -> i16 {
        match self {
            StoreError::Log(storage::Error::RecordTooLarge { .. }) => too_large.code(),
            _ => ResponseError::NotCoordinator.code(),
        }
    }
}

/// Everything the log held, latest value per key.
#[derive(Default)]
pub struct Loaded {
    pub groups: BTreeMap<String, GroupValue>,
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
}

impl Store {
    pub fn open(topics: &Topics, partitions: i32) -> Result<Store> {
        let topic = match topics.get(OFFSETS_TOPIC) {
            Some(t) => t,
            None => {
                // Kafka's offsets topic configs: compacted, 100 MiB segments, producer compression.
                let configs = [("cleanup.policy", "compact"), ("compression.type", "producer"), ("segment.bytes", "104857600")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let t = topics.create(OFFSETS_TOPIC, partitions.max(1), configs).map_err(|e| Error::Metadata {
                    path: OFFSETS_TOPIC.to_string(),
                    reason: format!("could not create the offsets topic: {e:?}"),
                })?;
                tracing::info!(partitions = t.partitions.len(), "created {OFFSETS_TOPIC}");
                t
            }
        };
        Ok(Store { topic, appended: topics.append_notifier() })
    }

    fn partition(&self, group: &str) -> Result<&Arc<crate::topics::Partition>, StoreError> {
        let index = partition_for(group, self.topic.partitions.len() as i32);
        self.topic.partition(index).ok_or_else(|| StoreError::Encode(format!("no partition {index} in {OFFSETS_TOPIC}")))
    }

    /// Appends the records as one batch to the group's partition: all of them or none.
    pub fn append(&self, group: &str, entries: &[KeyValue]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let plain: Vec<PlainRecord> = entries.iter().map(|(key, value)| PlainRecord::new(key.clone(), value.clone(), now)).collect();
        let mut buf = encode_batch(&plain, Compression::None).map_err(|e| StoreError::Encode(e.to_string()))?.to_vec();
        let partition = self.partition(group)?;
        partition.log().append(&mut buf, now, false)?;
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Reads every partition from its log start and keeps the last value of each key. A record
    /// that does not parse is skipped with a warning rather than keeping the broker down.
    pub fn replay(&self) -> Result<Loaded> {
        let mut loaded = Loaded::default();
        for partition in &self.topic.partitions {
            partition.log().replay(&format!("{OFFSETS_TOPIC}-{}", partition.index), |record| apply(&mut loaded, record))?;
        }
        Ok(loaded)
    }
}

fn apply(loaded: &mut Loaded, record: &Record) {
    let Some(key) = &record.key else { return };
    let warn = |e: &dyn std::fmt::Display| tracing::warn!(offset = record.offset, "skipping a record of {OFFSETS_TOPIC}: {e}");
    let key = match records::decode_key(key) {
        Ok(Some(k)) => k,
        Ok(None) => return,
        Err(e) => return warn(&e),
    };
    match (key, &record.value) {
        (RecordKey::Offset { group, topic, partition }, Some(value)) => match records::decode_offset_value(value) {
            Ok(v) => {
                let committed = CommittedOffset {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata,
                    commit_timestamp: v.commit_timestamp,
                    expire_timestamp: v.expire_timestamp,
                };
                loaded.offsets.entry(group).or_default().insert((topic, partition), committed);
            }
            Err(e) => warn(&e),
        },
        (RecordKey::Offset { group, topic, partition }, None) => {
            if let Some(offsets) = loaded.offsets.get_mut(&group) {
                offsets.remove(&(topic, partition));
            }
        }
        (RecordKey::Group { group }, Some(value)) => match records::decode_group_value(value) {
            Ok(v) => {
                loaded.groups.insert(group, v);
            }
            Err(e) => warn(&e),
        },
        (RecordKey::Group { group }, None) => {
            loaded.groups.remove(&group);
        }
    }
}

/// Tombstones and values for the records a transition writes.
pub fn offset_commit(group: &str, topic: &str, partition: i32, c: &CommittedOffset) -> KeyValue {
    let value = records::OffsetValue {
        offset: c.offset,
        leader_epoch: c.leader_epoch,
        metadata: c.metadata.clone(),
        commit_timestamp: c.commit_timestamp,
        expire_timestamp: c.expire_timestamp,
    };
    (records::offset_key(group, topic, partition), Some(records::offset_value(&value)))
}

pub fn offset_tombstone(group: &str, topic: &str, partition: i32) -> KeyValue {
    (records::offset_key(group, topic, partition), None)
}

pub fn group_metadata(group: &str, value: &GroupValue) -> KeyValue {
    (records::group_key(group), Some(records::group_value(value)))
}

pub fn group_tombstone(group: &str) -> KeyValue {
    (records::group_key(group), None)
}
