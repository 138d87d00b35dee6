//! Entry point for the fuzz target of the mirror's batch preparation (`fuzz/`) and the
//! property tests: what the mirror does with a fetched record set from a source.

use crate::offset_map::OffsetMap;
use crate::producer::stamp_producer;
use crate::transform::prepare;

/// Prepares `data` (a fetched record set) from the offset its first 8 bytes give, as a
/// partition's fetch loop does, then stamps the producer and records the offsets as the
/// partition's producer does. Whatever the bytes it returns without panicking, and what it
/// would produce is sound: whole batches, offsets 0..n-1, as many source offsets as records,
/// and valid CRCs where the source's were valid. A batch produced as fetched keeps its
/// source's checksum (patched, not recomputed): it fails the check exactly when its source
/// batch does, so corruption reaches the target, which refuses it, and is never laundered.
/// Panics (the fuzzer's finding) only when that does not hold.
pub fn prepare_fetched(input: &[u8]) {
    let Some((from, data)) = input.split_first_chunk::<8>() else { return };
    let from = i64::from_be_bytes(*from) & 0xFFFF_FFFF;
    let data = bytes::Bytes::copy_from_slice(data);
    let mut prepared = prepare(&data, from, &mut crate::transform::Aborted::default());
    let source_sound = tern_kafka::batch::Batches::new(&data).map_while(|b| b.ok()).all(|(at, h)| tern_kafka::batch::verify_crc(&data[at..at + h.total_len()]).is_ok());
    let records: u64 = prepared.batches.iter().map(|b| b.count as u64).sum();
    assert_eq!(records, prepared.source_offsets.len(), "one source offset per record produced");
    assert!(prepared.next_offset >= from, "the position never goes back");
    stamp_producer(&mut prepared.batches, 7, 0, 0, false);
    for batch in &prepared.batches {
        let whole = batch.parts().concat();
        let h = tern_kafka::batch::BatchHeader::parse(&whole).expect("a batch the mirror built parses");
        assert_eq!(h.total_len(), whole.len(), "only whole batches are produced");
        assert_eq!(h.record_count.max(0) as usize, batch.count, "the count is the header's");
        assert_eq!(h.base_offset, 0, "a producer's batch starts at offset 0");
        let sound = tern_kafka::batch::verify_crc(&whole).is_ok();
        assert!(sound || !source_sound, "a batch the mirror built from sound batches has a valid CRC");
        // A batch produced as fetched: its records are a slice of the fetched bytes, right after
        // its source batch's header.
        let at = (batch.records.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
        if !batch.records.is_empty() && (tern_kafka::batch::HEADER_LEN..data.len()).contains(&at) {
            let fetched = &data[at - tern_kafka::batch::HEADER_LEN..at + batch.records.len()];
            assert_eq!(sound, tern_kafka::batch::verify_crc(fetched).is_ok(), "a batch produced as fetched is corrupt exactly when its source batch is");
        }
    }
    let mut map = OffsetMap::default();
    map.record_runs(&prepared.source_offsets, 0, prepared.next_offset);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;
    use proptest::prelude::*;
    use tern_kafka::records::{encode_batch, PlainRecord};

    /// Inputs the fuzzer found that once panicked, kept in the corpus.
    #[test]
    fn found_inputs_no_longer_panic() {
        // A batch whose base offset plus its last offset delta overflows i64.
        prepare_fetched(include_bytes!("../../fuzz/corpus/mirror_prepare/found-offset-overflow"));
    }

    proptest! {
        /// Fetched record sets with bytes flipped anywhere are prepared soundly or refused;
        /// the libFuzzer target (`fuzz/`) runs the same function for millions of inputs.
        #[test]
        fn a_mutated_record_set_is_prepared_soundly_or_refused(codec in 0usize..5, from in 0u64..8, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)) {
            let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
            let records: Vec<PlainRecord> = (0..5).map(|i| PlainRecord::new(format!("k{i}"), Some(bytes::Bytes::from(format!("v{i}"))), 1_800_000_000_000 + i)).collect();
            let mut input = from.to_be_bytes().to_vec();
            input.extend_from_slice(&encode_batch(&records, codecs[codec]).expect("encode"));
            for (at, xor) in flips {
                let i = 8 + at.index(input.len() - 8);
                input[i] ^= xor.max(1);
            }
            prepare_fetched(&input);
        }
    }
}
