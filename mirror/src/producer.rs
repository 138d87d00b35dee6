//! What the mirror writes as a producer: batches stamped with its idempotent producer's id,
//! epoch and sequences, and single-record batches for its internal topics.

use bytes::Bytes;

use crate::error::Result;

/// `(position, length, record count)` of every batch of a prepared record set.
pub(crate) fn batch_spans(records: &[u8]) -> Vec<(usize, usize, usize)> {
    tern_kafka::batch::Batches::new(records)
        .filter_map(|b| b.ok())
        .map(|(at, h)| (at, h.total_len(), h.record_count.max(0) as usize))
        .collect()
}

/// Writes the producer id, epoch and consecutive base sequences into every batch of a record
/// set (patching each CRC), and the transactional attribute for a transactional producer;
/// returns the sequence after the last record.
pub(crate) fn stamp_producer(records: &mut [u8], producer_id: i64, epoch: i16, mut sequence: i32, transactional: bool) -> i32 {
    for (at, len, count) in batch_spans(records) {
        let count = count as i32;
        tern_kafka::batch::set_producer(&mut records[at..at + len], producer_id, epoch, sequence);
        if transactional {
            tern_kafka::batch::set_transactional(&mut records[at..at + len]);
        }
        // Kafka's sequences wrap to 0 after i32::MAX.
        sequence = if sequence > i32::MAX - count { count - (i32::MAX - sequence) - 1 } else { sequence + count };
    }
    sequence
}

/// One record as a batch of its own.
pub fn encode_one(key: Bytes, value: Bytes, timestamp: i64) -> Result<Bytes> {
    Ok(tern_kafka::records::encode_batch(&[tern_kafka::records::PlainRecord::new(key, Some(value), timestamp)], kafka_protocol::records::Compression::None)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_kafka::batch::{verify_crc, BatchHeader, Batches};
    use tern_kafka::records::{encode_batch, PlainRecord};

    fn set_of(counts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for (b, n) in counts.iter().enumerate() {
            let records: Vec<PlainRecord> = (0..*n).map(|i| PlainRecord::new(format!("{b}-{i}"), None, 0)).collect();
            out.extend_from_slice(&encode_batch(&records, kafka_protocol::records::Compression::Lz4).expect("encode"));
        }
        out
    }

    #[test]
    fn batches_get_consecutive_sequences_and_valid_crcs() {
        let mut set = set_of(&[3, 5, 1]);
        let next = stamp_producer(&mut set, 42, 7, 10, false);
        assert_eq!(next, 19);
        let headers: Vec<BatchHeader> = Batches::new(&set).map(|b| b.expect("batch").1).collect();
        assert_eq!(headers.iter().map(|h| (h.producer_id, h.producer_epoch, h.base_sequence)).collect::<Vec<_>>(), vec![(42, 7, 10), (42, 7, 13), (42, 7, 18)]);
        for item in Batches::new(&set) {
            let (at, h) = item.expect("batch");
            verify_crc(&set[at..at + h.total_len()]).expect("crc");
        }
    }

    #[test]
    fn a_transactional_producer_marks_every_batch_and_keeps_the_crcs_valid() {
        let mut set = set_of(&[2, 4]);
        assert_eq!(stamp_producer(&mut set, 9, 3, 0, true), 6);
        for item in Batches::new(&set) {
            let (at, h) = item.expect("batch");
            assert!(h.is_transactional() && !h.is_control(), "transactional, not a marker");
            assert_eq!((h.producer_id, h.producer_epoch), (9, 3));
            verify_crc(&set[at..at + h.total_len()]).expect("crc");
        }
        let mut plain = set_of(&[2]);
        stamp_producer(&mut plain, 9, 3, 0, false);
        assert!(!BatchHeader::parse(&plain).expect("header").is_transactional());
    }

    #[test]
    fn sequences_wrap_to_zero_as_in_kafka() {
        let mut set = set_of(&[3, 2]);
        let next = stamp_producer(&mut set, 1, 0, i32::MAX - 1, false);
        let bases: Vec<i32> = Batches::new(&set).map(|b| b.expect("batch").1.base_sequence).collect();
        assert_eq!(bases, vec![i32::MAX - 1, 1]);
        assert_eq!(next, 3);
    }
}
