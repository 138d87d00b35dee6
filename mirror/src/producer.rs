//! What the mirror writes as a producer: batches stamped with its idempotent producer's id,
//! epoch and sequences, and single-record batches for its internal topics.

use bytes::Bytes;
use tern_kafka::batch::{BatchHeader, HEADER_LEN};

use crate::error::Result;

/// One batch as the mirror produces it: its header, a copy the mirror edits (producer fields,
/// CRC), and the records after it as they were fetched (a slice of the fetch response, never
/// copied on the way to the target).
#[derive(Debug, Clone)]
pub struct OutBatch {
    pub header: [u8; HEADER_LEN],
    pub records: Bytes,
    /// How many records the batch holds.
    pub count: usize,
    /// The leader epoch of the source batch it was made from (-1 when unknown): the header
    /// sent has none, as a producer's.
    pub source_epoch: i32,
}

impl OutBatch {
    /// A whole batch (at least a header long) as header and records.
    pub fn split(batch: &Bytes, count: usize) -> OutBatch {
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&batch[..HEADER_LEN]);
        OutBatch { header, records: batch.slice(HEADER_LEN..), count, source_epoch: -1 }
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.records.len()
    }

    /// Header, then records: what a produce request carries (the header copied, the records
    /// shared).
    pub fn parts(&self) -> Vec<Bytes> {
        vec![Bytes::copy_from_slice(&self.header), self.records.clone()]
    }

    /// Checks the batch's CRC: its header as edited, its records as fetched. The CRC of an
    /// edited header is patched, not recomputed, so a batch that was corrupt on the source
    /// fails this check here too.
    pub fn verify_crc(&self) -> tern_kafka::Result<()> {
        tern_kafka::batch::verify_crc_parts(&[&self.header[..], &self.records[..]])
    }

    pub fn parsed_header(&self) -> Option<BatchHeader> {
        BatchHeader::parse(&self.header).ok()
    }
}

/// Writes the producer id, epoch and consecutive base sequences into every batch's header
/// (patching each CRC), and the transactional attribute for a transactional producer;
/// returns the sequence after the last record.
pub(crate) fn stamp_producer(batches: &mut [OutBatch], producer_id: i64, epoch: i16, mut sequence: i32, transactional: bool) -> i32 {
    for batch in batches {
        let count = batch.count as i32;
        tern_kafka::batch::set_producer(&mut batch.header, producer_id, epoch, sequence);
        if transactional {
            tern_kafka::batch::set_transactional(&mut batch.header);
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

    fn set_of(counts: &[usize]) -> Vec<OutBatch> {
        counts
            .iter()
            .enumerate()
            .map(|(b, n)| {
                let records: Vec<PlainRecord> = (0..*n).map(|i| PlainRecord::new(format!("{b}-{i}"), None, 0)).collect();
                OutBatch::split(&encode_batch(&records, kafka_protocol::records::Compression::Lz4).expect("encode"), *n)
            })
            .collect()
    }

    fn joined(set: &[OutBatch]) -> Vec<u8> {
        set.iter().flat_map(|b| b.parts().concat()).collect()
    }

    #[test]
    fn batches_get_consecutive_sequences_and_valid_crcs() {
        let mut set = set_of(&[3, 5, 1]);
        let next = stamp_producer(&mut set, 42, 7, 10, false);
        assert_eq!(next, 19);
        let set = joined(&set);
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
        let set = joined(&set);
        for item in Batches::new(&set) {
            let (at, h) = item.expect("batch");
            assert!(h.is_transactional() && !h.is_control(), "transactional, not a marker");
            assert_eq!((h.producer_id, h.producer_epoch), (9, 3));
            verify_crc(&set[at..at + h.total_len()]).expect("crc");
        }
        let mut plain = set_of(&[2]);
        stamp_producer(&mut plain, 9, 3, 0, false);
        assert!(!plain[0].parsed_header().expect("header").is_transactional());
    }

    #[test]
    fn sequences_wrap_to_zero_as_in_kafka() {
        let mut set = set_of(&[3, 2]);
        let next = stamp_producer(&mut set, 1, 0, i32::MAX - 1, false);
        let bases: Vec<i32> = set.iter().map(|b| b.parsed_header().expect("batch").base_sequence).collect();
        assert_eq!(bases, vec![i32::MAX - 1, 1]);
        assert_eq!(next, 3);
    }
}
