//! What Kafka checks in a batch a client produces, beyond what every append checks (header,
//! length, CRC, size): `UnifiedLog.analyzeAndValidateRecords` and `LogValidator` with origin
//! CLIENT, with Kafka's error codes and messages. Appends of the broker's own (the group
//! coordinator's records) skip these.
//!
//! Batch rules refuse the partition with INVALID_RECORD. Record rules (a record without a key
//! in a compacted topic, a timestamp out of the topic's range, a LogAppendTime batch) are
//! collected for every record, as Kafka collects them, into one [`Error::RecordErrors`].

use tern_kafka::batch::{BatchHeader, Batches};

use super::records::{batch_body, parse_records};
use super::{Error, LogConfig, Result};

/// One record's refusal: its index in the batch and Kafka's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub index: usize,
    pub message: String,
}

/// Checks a client's record set for partition `tp` (Kafka's `topic-partition` name).
/// `log_append_time`: the topic stamps append times (`message.timestamp.type`).
pub(crate) fn check(records: &[u8], config: &LogConfig, log_append_time: bool, now_ms: i64, tp: &str) -> Result<()> {
    let mut record_errors = Vec::new();
    let mut timestamp_error = false;
    let mut before = 0usize;
    for item in Batches::new(records) {
        let (at, h) = item.map_err(Error::InvalidBatch)?;
        let batch = &records[at..at + h.total_len()];
        check_batch(&h, tp)?;
        // Records are read only where a record rule applies (as Kafka, which skips nothing,
        // but a topic without timestamp limits needs no timestamp pass).
        let ranged = config.timestamp_before_max_ms != i64::MAX || config.timestamp_after_max_ms != i64::MAX;
        // Every record's timestamp is checked, as Kafka does, whatever the header says.
        let (earliest, latest) = (now_ms.saturating_sub(config.timestamp_before_max_ms), now_ms.saturating_add(config.timestamp_after_max_ms));
        let compressed = h.codec() != tern_kafka::batch::Codec::None;
        let timestamps_to_read = !log_append_time && ranged;
        let wants_records = config.cleanup_compact || timestamps_to_read || h.is_log_append_time();
        // Every batch's records are counted, as Kafka's validation iterates them: a header may
        // claim neither more nor fewer records than the batch holds. A compressed batch is
        // decompressed for it, within kafka-protocol's bound (MAX_DECOMPRESSED_BYTES).
        let decompressed;
        let body: &[u8] = if compressed {
            decompressed = batch_body(batch, &h).map_err(|e| Error::InvalidRecordBatch(format!("Failed to decompress record stream: {e}")))?;
            &decompressed
        } else {
            &batch[tern_kafka::batch::HEADER_LEN..]
        };
        count_records(body, h.record_count)?;
        if !wants_records {
            before += h.record_count as usize;
            continue;
        }
        let views = parse_records(body, h.record_count).map_err(|e| {
            Error::InvalidRecordBatch(if e.starts_with("batch holds") { "Incorrect declared batch size, premature EOF reached".into() } else { format!("Found invalid record structure: {e}") })
        })?;
        let used: usize = record_bytes(body, h.record_count);
        if used < body.len() {
            return Err(Error::InvalidRecordBatch("Incorrect declared batch size, records still remaining in file".into()));
        }
        for (i, r) in views.iter().enumerate() {
            let index = before + i;
            if config.cleanup_compact && r.key.is_none() {
                record_errors.push(RecordError { index, message: format!("Compacted topic cannot accept message without key in topic partition {tp}") });
                continue;
            }
            let timestamp = if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp.wrapping_add(r.timestamp_delta) };
            if !log_append_time && timestamp != -1 {
                if timestamp < earliest || timestamp > latest {
                    let offset = h.base_offset + i64::from(r.offset_delta);
                    record_errors.push(RecordError {
                        index,
                        message: format!("Timestamp {timestamp} of message with offset {offset} is out of range. The timestamp should be within [{earliest}, {latest}]"),
                    });
                    timestamp_error = true;
                }
            } else if h.is_log_append_time() {
                // Kafka names the record as its DefaultRecord.toString() prints it.
                let (offset, key, value) = (h.base_offset + i64::from(r.offset_delta), r.key.map_or(0, <[u8]>::len), r.value.map_or(0, <[u8]>::len));
                record_errors.push(RecordError {
                    index,
                    message: format!(
                        "Invalid timestamp type in message DefaultRecord(offset={offset}, timestamp={timestamp}, key={key} bytes, value={value} bytes). Producer should not set timestamp type to LogAppendTime."
                    ),
                });
                timestamp_error = true;
            }
        }
        before += h.record_count as usize;
    }
    if record_errors.is_empty() {
        Ok(())
    } else {
        Err(Error::RecordErrors { timestamp: timestamp_error, errors: record_errors })
    }
}

/// `LogValidator.validateBatch` and the base-offset rule of `UnifiedLog`, in Kafka's order.
fn check_batch(h: &BatchHeader, tp: &str) -> Result<()> {
    let refuse = |m: String| Err(Error::InvalidRecordBatch(m));
    if h.base_offset != 0 {
        return refuse(format!("The baseOffset of the record batch in the append to {tp} should be 0, but it is {}", h.base_offset));
    }
    if h.last_offset_delta < 0 {
        return refuse(format!("Batch has an invalid offset range: [{}, {}] in topic partition {tp}", h.base_offset, h.last_offset()));
    }
    if h.record_count <= 0 {
        return refuse(format!("Invalid reported count for record batch: {} in topic partition {tp}", h.record_count));
    }
    if i64::from(h.last_offset_delta) + 1 != i64::from(h.record_count) {
        return refuse(format!("Inconsistent batch offset range [{}, {}] and count of records {} in topic partition {tp}", h.base_offset, h.last_offset(), h.record_count));
    }
    if h.is_control() {
        return refuse(format!("Clients are not allowed to write control records in topic partition {tp}"));
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return refuse(format!("Invalid sequence number {} in record batch with producerId {} in topic partition {tp}", h.base_sequence, h.producer_id));
    }
    Ok(())
}

/// Walks the records of a decompressed body by their lengths alone and checks there are exactly
/// `count`, with Kafka's messages (`DefaultRecordBatch`'s record iterator).
fn count_records(body: &[u8], count: i32) -> Result<()> {
    let refuse = |m: &str| Err(Error::InvalidRecordBatch(m.to_string()));
    let mut p = 0usize;
    for _ in 0..count.max(0) {
        if p >= body.len() {
            return refuse("Incorrect declared batch size, premature EOF reached");
        }
        let len = super::records::read_varint(body, &mut p).map_err(|e| Error::InvalidRecordBatch(format!("Found invalid record structure: {e}")))?;
        if len <= 0 {
            return refuse("Found invalid record structure: a record of no bytes");
        }
        p = match p.checked_add(len as usize) {
            Some(end) if end <= body.len() => end,
            _ => return refuse("Incorrect declared batch size, premature EOF reached"),
        };
    }
    if p < body.len() {
        return refuse("Incorrect declared batch size, records still remaining in file");
    }
    Ok(())
}

/// Bytes the first `count` records of a decompressed body take (they parsed already).
fn record_bytes(body: &[u8], count: i32) -> usize {
    let mut p = 0usize;
    for _ in 0..count.max(0) {
        let start = p;
        let Ok(len) = super::records::read_varint(body, &mut p) else { return start };
        p = p.saturating_add(len.max(0) as usize);
    }
    p.min(body.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::records::Compression;
    use tern_kafka::batch::{set_base_offset, set_producer, rewrite_crc, ATTR_CONTROL};
    use tern_kafka::records::{encode_batch, PlainRecord};

    const NOW: i64 = 1_800_000_000_000;

    fn batch(records: &[(Option<&str>, i64)], compression: Compression) -> Vec<u8> {
        let rs: Vec<PlainRecord> = records
            .iter()
            .map(|(k, ts)| PlainRecord { key: k.map(|k| Bytes::from(k.to_string())), value: Some(Bytes::from_static(b"v")), headers: vec![], timestamp: *ts })
            .collect();
        encode_batch(&rs, compression).expect("encode").to_vec()
    }

    fn refused(records: &[u8], config: &LogConfig) -> String {
        match check(records, config, false, NOW, "t-0") {
            Err(Error::InvalidRecordBatch(m)) => m,
            other => panic!("expected INVALID_RECORD, got {other:?}"),
        }
    }

    #[test]
    fn batches_a_producer_would_never_send_are_refused_with_kafkas_messages() {
        let config = LogConfig::default();
        let mut b = batch(&[(Some("a"), NOW)], Compression::Lz4);
        check(&b, &config, false, NOW, "t-0").expect("a producer's batch");
        set_base_offset(&mut b, 7);
        assert_eq!(refused(&b, &config), "The baseOffset of the record batch in the append to t-0 should be 0, but it is 7");
        set_base_offset(&mut b, 0);
        set_producer(&mut b, 5, 0, -1);
        assert_eq!(refused(&b, &config), "Invalid sequence number -1 in record batch with producerId 5 in topic partition t-0");
        let mut c = batch(&[(Some("a"), NOW)], Compression::None);
        c[22] |= ATTR_CONTROL as u8;
        rewrite_crc(&mut c);
        assert_eq!(refused(&c, &config), "Clients are not allowed to write control records in topic partition t-0");
        let mut d = batch(&[(Some("a"), NOW), (Some("b"), NOW)], Compression::None);
        d[57..61].copy_from_slice(&3i32.to_be_bytes());
        rewrite_crc(&mut d);
        assert_eq!(refused(&d, &config), "Inconsistent batch offset range [0, 1] and count of records 3 in topic partition t-0");
    }

    #[test]
    fn record_rules_collect_every_refused_record() {
        let compact = LogConfig { cleanup_compact: true, ..LogConfig::default() };
        let b = batch(&[(Some("a"), NOW), (None, NOW), (Some("c"), NOW + 7_200_000)], Compression::Zstd);
        match check(&b, &compact, false, NOW, "t-0") {
            Err(Error::RecordErrors { timestamp, errors }) => {
                assert!(timestamp, "one record's timestamp is an hour past the default limit");
                assert_eq!(errors.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2]);
                assert_eq!(errors[0].message, "Compacted topic cannot accept message without key in topic partition t-0");
                assert!(errors[1].message.starts_with(&format!("Timestamp {} of message with offset 2 is out of range", NOW + 7_200_000)), "{}", errors[1].message);
            }
            other => panic!("expected record errors, got {other:?}"),
        }
        // A LogAppendTime topic stamps its own time: any producer timestamp is fine.
        let future = batch(&[(Some("a"), NOW + 7_200_000)], Compression::None);
        check(&future, &LogConfig::default(), true, NOW, "t-0").expect("LogAppendTime topic");
        // Before the limit: the default reaches back forever.
        check(&batch(&[(Some("a"), 0)], Compression::None), &LogConfig::default(), false, NOW, "t-0").expect("old timestamps");
    }
}
