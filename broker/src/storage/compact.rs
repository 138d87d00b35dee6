//! Compaction of one stored batch, following Kafka's `LogCleaner` record filter: keep a record
//! when it is the latest for its key; drop keyless records; keep a tombstone (null value)
//! until its batch's delete horizon has passed.
//!
//! A rewritten batch keeps its base offset and last offset delta, so every surviving record
//! keeps its offset (gaps appear, as in Kafka), and keeps its producer id, epoch and base
//! sequence. The first time a batch with tombstones is cleaned it gets a delete horizon
//! (KIP-534): attribute bit 6 set and the base timestamp replaced by `now +
//! delete.retention.ms`, record timestamp deltas re-encoded against it so every record keeps
//! its timestamp.

use std::collections::HashMap;

use bytes::Bytes;
use tern_kafka::batch::{compute_crc, BatchHeader, Codec, ATTR_COMPRESSION_MASK, HEADER_LEN, LOG_OVERHEAD};

use super::records::{batch_body, compress, encode_record, parse_records, RecordView};

/// Attribute bit telling that the base timestamp holds the delete horizon.
pub(crate) const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Latest offset of each key in the part of the log being cleaned.
pub(crate) type OffsetMap = HashMap<Bytes, i64>;

pub(crate) struct Filter<'a> {
    pub map: &'a OffsetMap,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
}

/// What becomes of a batch.
#[derive(Debug)]
pub(crate) enum Filtered {
    /// Unchanged: copy the stored bytes.
    Keep,
    /// Nothing of it is needed.
    Drop,
    /// A rebuilt batch.
    Rewrite { batch: Vec<u8> },
}

pub(crate) struct Outcome {
    pub filtered: Filtered,
    pub records_read: usize,
    pub records_kept: usize,
    /// Horizon of the tombstones kept, for batches kept unchanged too.
    pub tombstone_horizon: Option<i64>,
}

pub(crate) fn horizon(h: &BatchHeader) -> Option<i64> {
    (h.attributes & ATTR_DELETE_HORIZON != 0).then_some(h.base_timestamp)
}

/// Adds the keys of one batch to the offset map.
pub(crate) fn map_batch(batch: &[u8], h: &BatchHeader, map: &mut OffsetMap) -> Result<(), String> {
    if h.is_control() || h.record_count == 0 {
        return Ok(());
    }
    let body = batch_body(batch, h)?;
    for r in parse_records(&body, h.record_count)? {
        if let Some(k) = r.key {
            map.insert(Bytes::copy_from_slice(k), h.base_offset + i64::from(r.offset_delta));
        }
    }
    Ok(())
}

/// Filters one batch. `retain_empty`: keep the batch's header even when no record survives
/// (the last batch of a live idempotent producer, or the last batch of a cleaned segment, whose
/// offsets recovery relies on).
pub(crate) fn filter_batch(batch: &[u8], h: &BatchHeader, f: &Filter<'_>, retain_empty: bool) -> Result<Outcome, String> {
    if h.is_control() {
        return Ok(Outcome { filtered: Filtered::Keep, records_read: 0, records_kept: 0, tombstone_horizon: None });
    }
    let body = batch_body(batch, h)?;
    let records = parse_records(&body, h.record_count)?;
    let old_horizon = horizon(h);
    let retain = |r: &RecordView<'_>| {
        let Some(key) = r.key else { return false };
        let offset = h.base_offset + i64::from(r.offset_delta);
        let latest = f.map.get(key).is_none_or(|&o| offset >= o);
        latest && (r.value.is_some() || old_horizon.is_none_or(|hz| f.now_ms < hz))
    };
    let kept: Vec<RecordView<'_>> = records.iter().filter(|r| retain(r)).copied().collect();
    let has_tombstones = kept.iter().any(|r| r.value.is_none());
    let new_horizon = match old_horizon {
        Some(hz) => Some(hz),
        None if has_tombstones => Some(f.now_ms.saturating_add(f.delete_retention_ms)),
        None => None,
    };
    let tombstone_horizon = new_horizon.filter(|_| has_tombstones);
    let outcome = |filtered| Outcome { filtered, records_read: records.len(), records_kept: kept.len(), tombstone_horizon };
    if kept.len() == records.len() && new_horizon == old_horizon {
        return Ok(outcome(Filtered::Keep));
    }
    if kept.is_empty() && !retain_empty {
        return Ok(outcome(Filtered::Drop));
    }
    let batch = rebuild(h, &kept, new_horizon)?;
    Ok(outcome(Filtered::Rewrite { batch }))
}

/// An aborted transaction's batch: none of its records survive (Kafka's cleaner removes
/// them); with `retain_empty` its header stays, holding no record.
pub(crate) fn drop_aborted(h: &BatchHeader, retain_empty: bool) -> Result<Outcome, String> {
    let records_read = h.record_count.max(0) as usize;
    let filtered = if retain_empty { Filtered::Rewrite { batch: rebuild(h, &[], None)? } } else { Filtered::Drop };
    Ok(Outcome { filtered, records_read, records_kept: 0, tombstone_horizon: None })
}

/// A batch with the header of `h` (offsets, producer fields) holding `kept`.
fn rebuild(h: &BatchHeader, kept: &[RecordView<'_>], horizon: Option<i64>) -> Result<Vec<u8>, String> {
    let abs = |r: &RecordView<'_>| h.base_timestamp.wrapping_add(r.timestamp_delta);
    let base_ts = horizon.or_else(|| kept.first().map(abs)).unwrap_or(h.base_timestamp);
    let max_ts = if h.is_log_append_time() || kept.is_empty() {
        h.max_timestamp
    } else {
        kept.iter().map(abs).max().unwrap_or(h.max_timestamp)
    };
    let mut raw = Vec::new();
    for r in kept {
        encode_record(&mut raw, r, abs(r).wrapping_sub(base_ts));
    }
    // An empty batch is written uncompressed, as Kafka writes one.
    let codec = if kept.is_empty() { Codec::None } else { h.codec() };
    let records = compress(codec, &raw)?;
    let mut attributes = h.attributes & !ATTR_DELETE_HORIZON;
    if kept.is_empty() {
        attributes &= !ATTR_COMPRESSION_MASK;
    }
    if horizon.is_some() {
        attributes |= ATTR_DELETE_HORIZON;
    }
    let total = HEADER_LEN + records.len();
    let mut b = Vec::with_capacity(total);
    b.extend_from_slice(&h.base_offset.to_be_bytes());
    b.extend_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
    b.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&h.producer_id.to_be_bytes());
    b.extend_from_slice(&h.producer_epoch.to_be_bytes());
    b.extend_from_slice(&h.base_sequence.to_be_bytes());
    b.extend_from_slice(&(kept.len() as i32).to_be_bytes());
    b.extend_from_slice(&records);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn encode(records: &[(Option<&str>, Option<&str>)], compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: 100 + i as i64,
                sequence: 40 + i as i32,
                timestamp: 1_000 + 10 * i as i64,
                key: k.map(|s| Bytes::from(s.to_string())),
                value: v.map(|s| Bytes::from(s.to_string())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).expect("encode");
        buf.to_vec()
    }

    #[test]
    fn keeps_offsets_timestamps_and_producer_fields_and_sets_a_horizon() {
        for compression in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let b = encode(&[(Some("a"), Some("1")), (Some("b"), Some("2")), (Some("a"), Some("3")), (Some("c"), None), (None, Some("x"))], compression);
            let h = BatchHeader::parse(&b).expect("header");
            let mut map = OffsetMap::new();
            map_batch(&b, &h, &mut map).expect("map");
            map.insert(Bytes::from_static(b"b"), 500);
            let f = Filter { map: &map, now_ms: 50_000, delete_retention_ms: 1_000 };
            let out = filter_batch(&b, &h, &f, false).expect("filter");
            assert_eq!(out.tombstone_horizon, Some(51_000));
            let Filtered::Rewrite { batch } = out.filtered else { panic!("expected a rewrite") };
            let nh = BatchHeader::parse(&batch).expect("new header");
            assert_eq!((nh.base_offset, nh.last_offset_delta, nh.record_count), (100, 4, 2));
            assert_eq!((nh.producer_id, nh.producer_epoch, nh.base_sequence), (7, 1, 40));
            assert_eq!(horizon(&nh), Some(51_000));
            tern_kafka::batch::verify_crc(&batch).expect("crc");
            let decoded = RecordBatchDecoder::decode(&mut Bytes::from(batch.clone())).expect("decodable").records;
            let got: Vec<(i64, i64, Option<Bytes>)> = decoded.iter().map(|r| (r.offset, r.timestamp, r.value.clone())).collect();
            assert_eq!(got, vec![(102, 1_020, Some(Bytes::from_static(b"3"))), (103, 1_030, None)], "{compression:?}");

            // Once the horizon has passed, the tombstone goes too.
            let f = Filter { map: &map, now_ms: 52_000, delete_retention_ms: 1_000 };
            let again = filter_batch(&batch, &nh, &f, false).expect("filter");
            assert_eq!(again.tombstone_horizon, None);
            let Filtered::Rewrite { batch } = again.filtered else { panic!("expected a rewrite") };
            let nh = BatchHeader::parse(&batch).expect("header");
            assert_eq!((nh.record_count, nh.last_offset()), (1, 104));
        }
    }

    #[test]
    fn unchanged_batches_are_kept_and_superseded_ones_dropped_or_emptied() {
        let b = encode(&[(Some("a"), Some("1")), (Some("b"), Some("2"))], Compression::None);
        let h = BatchHeader::parse(&b).expect("header");
        let mut map = OffsetMap::new();
        map_batch(&b, &h, &mut map).expect("map");
        let f = Filter { map: &map, now_ms: 0, delete_retention_ms: 0 };
        assert!(matches!(filter_batch(&b, &h, &f, false).expect("filter").filtered, Filtered::Keep));
        map.insert(Bytes::from_static(b"a"), 900);
        map.insert(Bytes::from_static(b"b"), 901);
        let f = Filter { map: &map, now_ms: 0, delete_retention_ms: 0 };
        assert!(matches!(filter_batch(&b, &h, &f, false).expect("filter").filtered, Filtered::Drop));
        let Filtered::Rewrite { batch } = filter_batch(&b, &h, &f, true).expect("filter").filtered else { panic!("expected an empty batch") };
        let nh = BatchHeader::parse(&batch).expect("header");
        assert_eq!((nh.base_offset, nh.last_offset(), nh.record_count, nh.base_sequence), (100, 101, 0, 40));
        tern_kafka::batch::verify_crc(&batch).expect("crc");
    }
}
