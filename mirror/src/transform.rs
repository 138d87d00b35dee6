//! Turning fetched source batches into a record set for the target.
//!
//! Fast path: a batch is produced as fetched (compressed bytes untouched and not even copied:
//! the records after the header stay a slice of the fetch response; only a copy of the header
//! is edited, its producer-owned fields reset and the CRC patched). Its CRC is not checked
//! here: the patch carries the source's checksum through, so a batch corrupt on the source
//! stays corrupt, the target refuses it (as Kafka and `tern broker` check every batch
//! produced), and the producer then checks it to name the source as the culprit
//! ([`crate::producer::OutBatch::verify_crc`]). Record path: the batch is
//! decoded and re-encoded with the same codec when the fast path would be wrong:
//! - it starts before the next offset to replicate (a fetch from inside a batch);
//! - its offsets have gaps (compacted), which brokers refuse from producers;
//! - its timestamps are LogAppendTime, which brokers refuse from producers.
//!
//! Control batches (transaction markers) are skipped: they are not data. Fetches are
//! `read_committed`: batches of the aborted transactions the source lists in its answer are
//! skipped too, as Kafka's consumer skips them, and become gaps in the offset map.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tern_kafka::batch::{make_plain, BatchHeader, Batches, HEADER_LEN};

use crate::producer::OutBatch;

/// What one fetched record set becomes.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Batches to produce, in order.
    pub batches: Vec<OutBatch>,
    /// Source offset of each record produced, in order (the target assigns them consecutive
    /// offsets from the produce response's base offset), as runs: memory per batch, not per
    /// record a header claims.
    pub source_offsets: crate::offset_map::OffsetRuns,
    /// The next source offset after everything consumed here (skipped control batches and
    /// records below `from` included).
    pub next_offset: i64,
    /// Largest record timestamp seen, for lag in seconds.
    pub max_timestamp: i64,
    pub batches_fast: u64,
    pub batches_rewritten: u64,
    /// The source leader epoch of the last batch consumed (-1: none), to ask the source where
    /// that epoch ends should the position later be out of range.
    pub last_epoch: i32,
    /// Records of aborted transactions skipped.
    pub aborted_records: u64,
    /// Why the partition stops after these batches: the batch at `next_offset` cannot be
    /// copied (corrupt, or malformed). The batches before it are copied first.
    pub stop: Option<String>,
}

pub use tern_kafka::batch::Aborted;

impl Prepared {
    /// The batches to produce, one after another, as one buffer (a copy).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.batches.iter().map(OutBatch::wire_len).sum());
        for b in &self.batches {
            out.extend_from_slice(&b.header);
            out.extend_from_slice(&b.records);
        }
        out
    }
}

/// Prepares the complete batches of `data` from source offset `from` on. A partial batch at
/// the end (cut by the fetch size) is left for the next fetch. Batches that take the fast path
/// keep slices of `data`, which stays in memory while any of them waits to be produced. A batch
/// that cannot be copied ends the set, with the reason in [`Prepared::stop`].
pub fn prepare(data: &Bytes, from: i64, aborted: &mut Aborted) -> Prepared {
    let mut out = Prepared { next_offset: from, max_timestamp: -1, last_epoch: -1, ..Default::default() };
    for item in Batches::new(data) {
        let (at, h) = match item {
            Ok(v) => v,
            // A truncated batch at the end of a fetch response is normal.
            Err(tern_kafka::Error::MalformedBatch(tern_kafka::error::BatchFault::Truncated | tern_kafka::error::BatchFault::ShortHeader)) => break,
            Err(e) => {
                out.stop = Some(format!("the source sent a malformed batch at offset {}: {e}; it is not copied and the partition stops there", out.next_offset));
                break;
            }
        };
        let bytes = &data[at..at + h.total_len()];
        let skipped = aborted.skips(&h);
        if h.last_offset() < out.next_offset {
            continue;
        }
        out.last_epoch = h.partition_leader_epoch;
        if skipped {
            out.next_offset = h.last_offset() + 1;
            out.aborted_records += h.record_count.max(0) as u64;
            continue;
        }
        if h.is_control() {
            out.next_offset = h.last_offset() + 1;
            continue;
        }
        let dense = h.record_count > 0 && h.record_count as i64 == h.last_offset_delta as i64 + 1;
        if h.base_offset >= out.next_offset && dense && !h.is_log_append_time() {
            let mut header = [0u8; HEADER_LEN];
            header.copy_from_slice(&bytes[..HEADER_LEN]);
            make_plain(&mut header);
            out.batches.push(OutBatch { header, records: data.slice(at + HEADER_LEN..at + h.total_len()), count: h.record_count as usize, source_epoch: h.partition_leader_epoch });
            out.source_offsets.push_run(h.base_offset, h.record_count as u64);
            out.batches_fast += 1;
        } else {
            // Re-encoded batches get a new CRC, which would hide corruption: checked first.
            let rewritten = tern_kafka::batch::verify_crc(bytes)
                .map_err(|e| format!("the source holds a corrupt batch at offset {}: its bytes do not match its CRC ({e})", h.base_offset))
                .and_then(|()| rewrite(bytes, &h, &mut out));
            if let Err(why) = rewritten {
                out.stop = Some(format!("{why}; it is not copied and the partition stops there"));
                break;
            }
            out.batches_rewritten += 1;
        }
        out.max_timestamp = out.max_timestamp.max(h.max_timestamp);
        out.next_offset = h.last_offset() + 1;
    }
    out
}

/// Decodes a batch and encodes its records from `out.next_offset` on as a producer sends them;
/// `out` gains them only if the whole batch could be rewritten.
fn rewrite(bytes: &[u8], h: &BatchHeader, out: &mut Prepared) -> std::result::Result<(), String> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let set = RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| format!("the source batch at offset {} does not decode: {e}", h.base_offset))?;
    let from = out.next_offset;
    let mut records: Vec<_> = set.records.into_iter().filter(|r| r.offset >= from).collect();
    if records.is_empty() {
        return Ok(());
    }
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    for (i, r) in records.iter_mut().enumerate() {
        if h.is_log_append_time() {
            r.timestamp = h.max_timestamp;
        }
        r.timestamp_type = TimestampType::Creation;
        r.transactional = false;
        r.producer_id = -1;
        r.producer_epoch = -1;
        r.partition_leader_epoch = -1;
        // Offsets 0..n-1 as a producer sends them, and offset - sequence constant so the
        // encoder keeps one batch with base sequence -1.
        r.offset = i as i64;
        r.sequence = i as i32 - 1;
    }
    let compression = match set.compression {
        c @ (Compression::None | Compression::Gzip | Compression::Snappy | Compression::Lz4 | Compression::Zstd) => c,
    };
    let mut encoded = BytesMut::new();
    RecordBatchEncoder::encode(&mut encoded, &records, &RecordEncodeOptions { version: 2, compression })
        .map_err(|e| format!("re-encoding the source batch at offset {}: {e}", h.base_offset))?;
    let encoded = encoded.freeze();
    let mut batches = Vec::new();
    for item in Batches::new(&encoded) {
        let (at, built) = item.map_err(|e| format!("re-encoding the source batch at offset {}: {e}", h.base_offset))?;
        let mut batch = OutBatch::split(&encoded.slice(at..at + built.total_len()), built.record_count.max(0) as usize);
        batch.source_epoch = h.partition_leader_epoch;
        batches.push(batch);
    }
    for offset in offsets {
        out.source_offsets.push(offset);
    }
    out.batches.extend(batches);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offset_map::OffsetRuns;
    use kafka_protocol::records::Record;

    fn batch(base: i64, offsets: &[i64], compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = offsets
            .iter()
            .map(|&o| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: o,
                sequence: o as i32,
                timestamp: 1_700_000_000_000 + o,
                key: Some(Bytes::from(format!("k{o}"))),
                value: Some(Bytes::from(format!("v{o}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).expect("encode");
        let mut v = buf.to_vec();
        tern_kafka::batch::set_base_offset(&mut v, base);
        v
    }

    /// A batch of `producer`'s transaction (or its marker, when `control`), at `offsets`.
    fn txn_batch(producer: i64, offsets: &[i64], control: bool) -> Vec<u8> {
        let mut v = batch(offsets[0], offsets, Compression::None);
        let attributes = i16::from_be_bytes([v[21], v[22]]) | tern_kafka::batch::ATTR_TRANSACTIONAL | if control { tern_kafka::batch::ATTR_CONTROL } else { 0 };
        v[21..23].copy_from_slice(&attributes.to_be_bytes());
        v[43..51].copy_from_slice(&producer.to_be_bytes());
        tern_kafka::batch::rewrite_crc(&mut v);
        v
    }

    /// Each batch sent keeps the source leader epoch of the batch it came from (committed with
    /// the position after it), whether it goes out as fetched or rewritten, while its header
    /// carries none, as a producer's; the last offset held tells where it ends.
    #[test]
    fn batches_keep_their_source_leader_epoch_aside() {
        let mut first = batch(0, &[0, 1, 2], Compression::Lz4);
        tern_kafka::batch::set_partition_leader_epoch(&mut first, 4);
        let mut second = batch(3, &[3, 4], Compression::None);
        tern_kafka::batch::set_partition_leader_epoch(&mut second, 7);
        let data = Bytes::from([first, second].concat());
        // From 0 both go out as fetched; from 1 the first is rewritten without offset 0.
        for (from, fast) in [(0, 2), (1, 1)] {
            let p = prepare(&data, from, &mut Aborted::default());
            assert_eq!(p.batches_fast, fast, "from {from}");
            assert_eq!(p.batches.iter().map(|b| b.source_epoch).collect::<Vec<_>>(), [4, 7], "from {from}");
            assert!(p.batches.iter().all(|b| b.parsed_header().expect("header").partition_leader_epoch == -1));
            assert_eq!(p.source_offsets.last(), Some(4));
        }
    }

    /// Kafka's read_committed rule: producer 7's transaction at 0..=2 was aborted (marker at
    /// 3); producer 8's at 4..=5 committed (marker at 6), interleaved with producer 7's next
    /// transaction at 7..=8, which committed too (marker at 9). A fetch from 1 (inside the
    /// aborted one) skips it as well.
    #[test]
    fn batches_of_aborted_transactions_are_skipped_and_leave_gaps() {
        let mut data = txn_batch(7, &[0, 1, 2], false);
        data.extend(txn_batch(7, &[3], true));
        data.extend(txn_batch(8, &[4, 5], false));
        data.extend(txn_batch(8, &[6], true));
        data.extend(txn_batch(7, &[7, 8], false));
        data.extend(txn_batch(7, &[9], true));
        data.extend(batch(10, &[10], Compression::Lz4));
        for from in [0, 1] {
            let p = prepare(&Bytes::from(data.clone()), from, &mut Aborted::new(vec![(7, 0)]));
            assert_eq!(p.source_offsets, OffsetRuns::from(&[4, 5, 7, 8, 10][..]), "from {from}");
            assert_eq!((p.next_offset, p.aborted_records), (11, 3));
            let values: Vec<String> = decode(&p.to_bytes()).into_iter().map(|r| r.1).collect();
            assert_eq!(values, ["v4", "v5", "v7", "v8", "v10"]);
            // What reaches the target is plain: no transactional bit, no producer of the source.
            assert!(Batches::new(&p.to_bytes()).all(|b| !b.expect("batch").1.is_transactional()));
        }
        // Without the fetch's list (read_uncommitted), nothing is skipped.
        let p = prepare(&Bytes::from(data.clone()), 0, &mut Aborted::default());
        assert_eq!((p.source_offsets.len(), p.aborted_records), (8, 0));
    }

    /// A CRC-valid header claiming 2^31 - 1 records and holding none is one run, not a vector
    /// of two billion offsets; the target then refuses it (Kafka's record count check).
    #[test]
    fn a_header_claiming_two_billion_records_costs_one_run() {
        let mut b = batch(0, &[0], Compression::None)[..tern_kafka::batch::HEADER_LEN].to_vec();
        b[8..12].copy_from_slice(&((tern_kafka::batch::HEADER_LEN - 12) as i32).to_be_bytes());
        b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        tern_kafka::batch::rewrite_crc(&mut b);
        let p = prepare(&Bytes::from(b.clone()), 0, &mut Aborted::default());
        assert_eq!(p.source_offsets.len(), i32::MAX as u64);
        assert_eq!(p.source_offsets.runs().count(), 1);
        assert_eq!(p.next_offset, i32::MAX as i64);
    }

    fn decode(records: &[u8]) -> Vec<(i64, String, i64)> {
        let mut b = Bytes::copy_from_slice(records);
        RecordBatchDecoder::decode_all(&mut b)
            .expect("decode")
            .into_iter()
            .flat_map(|s| s.records)
            .map(|r| (r.producer_id, String::from_utf8_lossy(&r.value.unwrap_or_default()).to_string(), r.timestamp))
            .collect()
    }

    #[test]
    fn whole_dense_batches_pass_through_with_plain_producer_fields() {
        let mut data = batch(10, &[10, 11, 12], Compression::Lz4);
        data.extend(batch(13, &[13, 14], Compression::Zstd));
        let p = prepare(&Bytes::from(data.clone()), 10, &mut Aborted::default());
        assert_eq!((p.batches_fast, p.batches_rewritten), (2, 0));
        assert_eq!(p.source_offsets, OffsetRuns::from(&[10, 11, 12, 13, 14][..]));
        assert_eq!(p.next_offset, 15);
        let got = decode(&p.to_bytes());
        assert!(got.iter().all(|(pid, _, _)| *pid == -1));
        assert_eq!(got.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(), vec!["v10", "v11", "v12", "v13", "v14"]);
        // Every batch starts at offset 0, as a producer's do (Kafka checks the inner offsets of
        // compressed batches).
        assert!(Batches::new(&p.to_bytes()).all(|b| b.expect("batch").1.base_offset == 0));
        // Compressed bytes are untouched, and not copied: the records after each header are a
        // slice of the fetched data; only the header changed.
        let first_len = BatchHeader::parse(&data).expect("h").total_len();
        let fetched = Bytes::from(data.clone());
        let p = prepare(&fetched, 10, &mut Aborted::default());
        assert_eq!(&p.batches[0].records[..], &data[61..first_len]);
        assert_eq!(p.batches[0].records.as_ptr(), fetched[61..].as_ptr(), "a slice of the fetched bytes, not a copy");
        assert_eq!(p.batches[1].records.as_ptr(), fetched[first_len + 61..].as_ptr());
    }

    #[test]
    fn a_fetch_from_inside_a_batch_drops_the_records_before_it() {
        let data = batch(0, &[0, 1, 2, 3], Compression::Gzip);
        let p = prepare(&Bytes::from(data.clone()), 2, &mut Aborted::default());
        assert_eq!(p.batches_rewritten, 1);
        assert_eq!(p.source_offsets, OffsetRuns::from(&[2, 3][..]));
        assert_eq!(decode(&p.to_bytes()).iter().map(|g| g.1.clone()).collect::<Vec<_>>(), vec!["v2", "v3"]);
    }

    #[test]
    fn compacted_batches_are_rewritten_dense_and_keep_their_source_offsets() {
        // What compaction leaves: offsets 0, 3 and 4 of a batch with lastOffsetDelta 4.
        let data = batch(0, &[0, 3, 4], Compression::Snappy);
        let h = BatchHeader::parse(&data).expect("h");
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 4);
        let p = prepare(&Bytes::from(data.clone()), 0, &mut Aborted::default());
        assert_eq!(p.batches_rewritten, 1);
        assert_eq!(p.source_offsets, OffsetRuns::from(&[0, 3, 4][..]));
        let out = BatchHeader::parse(&p.to_bytes()).expect("out header");
        assert_eq!(out.record_count as i64, out.last_offset_delta as i64 + 1, "dense on the target");
        assert_eq!(out.base_offset, 0, "as a producer sends it");
    }

    #[test]
    fn log_append_time_batches_become_create_time_with_the_append_time() {
        let mut data = batch(0, &[0, 1], Compression::None);
        tern_kafka::batch::set_log_append_time(&mut data, 1_800_000_000_000);
        let p = prepare(&Bytes::from(data.clone()), 0, &mut Aborted::default());
        assert_eq!(p.batches_rewritten, 1);
        let out = BatchHeader::parse(&p.to_bytes()).expect("h");
        assert!(!out.is_log_append_time());
        assert!(decode(&p.to_bytes()).iter().all(|g| g.2 == 1_800_000_000_000));
    }

    #[test]
    fn partial_tail_is_left_for_the_next_fetch_and_corruption_is_carried_or_refused() {
        let mut data = batch(0, &[0, 1], Compression::None);
        let second = batch(2, &[2, 3], Compression::None);
        data.extend_from_slice(&second[..second.len() - 5]);
        let p = prepare(&Bytes::from(data.clone()), 0, &mut Aborted::default());
        assert_eq!(p.next_offset, 2);
        // A corrupt batch on the fast path keeps a CRC that does not match, so the target
        // refuses it; one that would be re-encoded (and get a CRC of its own) is an error here.
        let mut bad = batch(0, &[0, 1], Compression::None);
        let n = bad.len();
        bad[n - 1] ^= 1;
        let p = prepare(&Bytes::from(bad.clone()), 0, &mut Aborted::default());
        assert_eq!(p.batches_fast, 1);
        assert!(matches!(p.batches[0].verify_crc(), Err(tern_kafka::Error::CorruptBatch { .. })));
        let mut stamped = p.batches.clone();
        crate::producer::stamp_producer(&mut stamped, 5, 0, 0, true);
        assert!(stamped[0].verify_crc().is_err(), "still corrupt with the producer's fields patched in");
        // From inside the batch: re-encoded, so checked.
        let p = prepare(&Bytes::from(bad.clone()), 1, &mut Aborted::default());
        let e = p.stop.expect("a corrupt batch stops the set");
        assert!(e.contains("the source holds a corrupt batch at offset 0") && e.contains("CRC"), "{e}");
        assert!(p.batches.is_empty() && p.source_offsets.is_empty() && p.next_offset == 1, "nothing of it is copied");
        // A corrupt batch on the record path (offsets with a gap) after a good one: the good one
        // is copied, the set stops at the corrupt one.
        let mut data = batch(0, &[0, 1], Compression::None);
        let mut gapped = batch(2, &[2, 4], Compression::Lz4);
        let n = gapped.len();
        gapped[n - 2] ^= 0x10;
        data.extend_from_slice(&gapped);
        let p = prepare(&Bytes::from(data), 0, &mut Aborted::default());
        let e = p.stop.expect("the corrupt batch stops the set");
        assert!(e.contains("the source holds a corrupt batch at offset 2") && e.contains("CRC"), "{e}");
        assert_eq!((p.batches.len(), p.source_offsets.len(), p.next_offset), (1, 2, 2), "the batch before it is copied, and the position stops at it");
        let good = prepare(&Bytes::from(batch(0, &[0, 1], Compression::None)), 0, &mut Aborted::default());
        good.batches[0].verify_crc().expect("a good batch checks");
    }
}
