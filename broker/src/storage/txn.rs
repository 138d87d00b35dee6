//! Transactions as one partition's log sees them, as Kafka's `ProducerStateManager` and
//! transaction index keep them: the first offset of each producer's open transaction (the
//! earliest bounds the last stable offset, which `read_committed` consumers do not pass) and
//! every aborted transaction's range (sent with `read_committed` fetches so consumers skip
//! those records).
//!
//! Both are rebuilt on open by reading the batch headers of the whole log (and the one record
//! of each transaction marker), so nothing but the segments has to survive a crash.

use std::collections::HashMap;

use bytes::BytesMut;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tern_kafka::batch::BatchHeader;

use super::records::{batch_body, parse_records};

/// A transaction marker: the control record that ends a producer's transaction in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

/// An aborted transaction's records in this partition: from its first batch to its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The abort marker's offset.
    pub last_offset: i64,
}

#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    /// Producer id -> the first offset of its open transaction.
    open: HashMap<i64, i64>,
    /// In marker order, so by `last_offset`.
    aborted: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Takes in a batch written at its final offsets; `marker` is the type of a control batch.
    pub fn observe(&mut self, h: &BatchHeader, marker: Option<Marker>) {
        if !h.is_transactional() || h.producer_id < 0 {
            return;
        }
        if !h.is_control() {
            self.open.entry(h.producer_id).or_insert(h.base_offset);
            return;
        }
        // A marker without an open transaction here (the producer wrote nothing to this
        // partition, or a marker sent again) ends nothing.
        let Some(first_offset) = self.open.remove(&h.producer_id) else { return };
        if marker == Some(Marker::Abort) {
            self.aborted.push(AbortedTxn { producer_id: h.producer_id, first_offset, last_offset: h.base_offset });
        }
    }

    /// The first offset of the oldest open transaction.
    pub fn first_unstable(&self) -> Option<i64> {
        self.open.values().min().copied()
    }

    /// Whether the producer has a transaction open in this partition.
    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// Aborted transactions with records in `[from, to)`, as Kafka's `collectAbortedTxns`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..].iter().filter(|a| a.first_offset < to).copied().collect()
    }

    /// Forgets aborted transactions wholly below the log start.
    pub fn truncate_head(&mut self, log_start: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }

    #[cfg(test)]
    pub fn aborted(&self) -> &[AbortedTxn] {
        &self.aborted
    }
}

/// The marker type of a stored control batch; `None` when its record cannot be read.
pub(crate) fn marker_of(batch: &[u8], h: &BatchHeader) -> Option<Marker> {
    let body = batch_body(batch, h).ok()?;
    let record = parse_records(&body, 1).ok()?.into_iter().next()?;
    match record.key? {
        [0, 0, 0, 0] => Some(Marker::Abort),
        [0, 0, 0, 1] => Some(Marker::Commit),
        _ => None,
    }
}

/// A transaction marker batch as Kafka's coordinator writes it: one control record, key
/// (version 0, type), value (version 0, coordinator epoch), the producer's id and epoch.
pub fn marker_batch(producer_id: i64, producer_epoch: i16, marker: Marker, coordinator_epoch: i32, now_ms: i64) -> Result<Vec<u8>, String> {
    let kind: i16 = match marker {
        Marker::Abort => 0,
        Marker::Commit => 1,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.into()),
        value: Some(value.into()),
        headers: Vec::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, [&record], &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| format!("encoding a transaction marker: {e}"))?;
    Ok(buf.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_kafka::batch::Batches;

    fn header(pid: i64, base: i64, control: bool) -> BatchHeader {
        let mut attributes = tern_kafka::batch::ATTR_TRANSACTIONAL;
        if control {
            attributes |= tern_kafka::batch::ATTR_CONTROL;
        }
        BatchHeader { producer_id: pid, base_offset: base, attributes, ..BatchHeader::default() }
    }

    #[test]
    fn markers_close_transactions_and_aborted_ranges_are_found_by_overlap() {
        let mut t = TxnIndex::default();
        t.observe(&header(1, 0, false), None);
        t.observe(&header(2, 3, false), None);
        t.observe(&header(1, 5, false), None);
        assert_eq!(t.first_unstable(), Some(0));
        t.observe(&header(1, 8, true), Some(Marker::Abort));
        assert_eq!(t.first_unstable(), Some(3));
        t.observe(&header(2, 9, true), Some(Marker::Commit));
        assert_eq!(t.first_unstable(), None);
        // A marker sent again ends nothing.
        t.observe(&header(2, 10, true), Some(Marker::Abort));
        assert_eq!(t.aborted(), &[AbortedTxn { producer_id: 1, first_offset: 0, last_offset: 8 }]);
        assert_eq!(t.aborted_between(8, 20).len(), 1);
        assert!(t.aborted_between(9, 20).is_empty());
        assert!(t.aborted_between(-5, 0).is_empty());
        t.truncate_head(9);
        assert!(t.aborted().is_empty());
    }

    #[test]
    fn a_marker_batch_reads_back_as_its_type() {
        for marker in [Marker::Abort, Marker::Commit] {
            let batch = marker_batch(7, 3, marker, 0, 1_700_000_000_000).expect("encode");
            let (_, h) = Batches::new(&batch).next().expect("one batch").expect("valid");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.record_count), (7, 3, 1));
            assert_eq!(marker_of(&batch, &h), Some(marker));
        }
    }
}
