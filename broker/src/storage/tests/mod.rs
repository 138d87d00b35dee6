//! Tests of the storage engine. Batches are built with kafka-protocol's encoder.

mod basic;
mod compaction;
mod crash;
mod failed_sync;
mod producers;
mod recovery;
mod retention;
mod rolling;
mod timestamps;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use tern_kafka::records::{encode_batch, PlainRecord};

use super::{LogConfig, PartitionLog};

/// One v2 batch whose records have the given timestamps; values are `"<tag>-<i>"` padded so
/// the codecs have something to compress.
pub(super) fn batch_ts(ts: &[i64], compression: Compression, tag: &str) -> Vec<u8> {
    let records: Vec<PlainRecord> = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| PlainRecord::new(format!("key-{i}"), Some(Bytes::from(format!("{tag}-{i}-{}", "x".repeat(40)))), t))
        .collect();
    encode_batch(&records, compression).expect("encode").to_vec()
}

/// A batch of `n` records with timestamps `first_ts`, `first_ts + 10`, ...
pub(super) fn batch(first_ts: i64, n: usize, compression: Compression, tag: &str) -> Vec<u8> {
    let ts: Vec<i64> = (0..n as i64).map(|i| first_ts + 10 * i).collect();
    batch_ts(&ts, compression, tag)
}

pub(super) const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Small segments and dense indexes so tests cross segment boundaries and use the indexes.
pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

/// `(offset, timestamp, value)` of every record in a record set.
pub(super) fn decode(bytes: &[u8]) -> Vec<(i64, i64, String)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decode");
    sets.into_iter()
        .flat_map(|s| s.records)
        .map(|r| {
            let v = r
                .value
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            (r.offset, r.timestamp, v)
        })
        .collect()
}

/// Every record from the log start to the end, reading in small steps.
pub(super) fn read_all(log: &PartitionLog) -> Vec<(i64, i64, String)> {
    let mut out: Vec<(i64, i64, String)> = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 700, true).expect("read");
        assert!(
            !r.records.is_empty(),
            "empty read at {next} before the end {}",
            log.log_end_offset()
        );
        for rec in decode(&r.records) {
            if rec.0 >= next {
                next = rec.0 + 1;
                out.push(rec);
            }
        }
    }
    out
}

pub(super) fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Appends `n` batches of 3..6 records cycling through the codecs, timestamps increasing by 10
/// per record from `ts0`. Returns the timestamp after the last record.
pub(super) fn fill(log: &mut PartitionLog, n: usize, ts0: i64) -> i64 {
    let mut ts = ts0;
    for i in 0..n {
        let count = 3 + i % 4;
        let mut b = batch(ts, count, CODECS[i % CODECS.len()], &format!("b{i}"));
        log.append(&mut b, ts, false).expect("append");
        ts += 10 * count as i64;
    }
    ts
}
