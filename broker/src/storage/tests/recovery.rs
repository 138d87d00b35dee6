//! Reopening: torn tails, corrupt and missing index files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use kafka_protocol::records::Compression;

use super::super::{LogConfig, PartitionLog};
use super::{batch, fill, read_all, segment_files, small_config};

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, small_config()).expect("open")
}

fn append_raw(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open")
        .write_all(bytes)
        .expect("write");
}

fn last_log(dir: &Path) -> std::path::PathBuf {
    segment_files(dir, "log").pop().expect("a segment")
}

/// Lookups that exercise both indexes; must not change across reopens.
fn probes(log: &PartitionLog) -> Vec<Option<(i64, i64)>> {
    let mut v: Vec<_> = (990..1700)
        .step_by(7)
        .map(|t| log.offset_for_timestamp(t).expect("lookup"))
        .collect();
    v.push(log.max_timestamp().expect("max"));
    v
}

#[test]
fn reopen_keeps_everything_and_continues_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path());
    let ts = fill(&mut log, 30, 1000);
    let (end, size, records, answers) = (
        log.log_end_offset(),
        log.size_bytes(),
        read_all(&log),
        probes(&log),
    );
    assert!(segment_files(dir.path(), "log").len() >= 3);
    drop(log);

    let mut log = open(dir.path());
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (0, end, size)
    );
    assert_eq!(read_all(&log), records);
    assert_eq!(probes(&log), answers);
    let info = log
        .append(&mut batch(ts, 4, Compression::Zstd, "more"), ts, false)
        .expect("append");
    assert_eq!((info.base_offset, info.last_offset), (end, end + 3));
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.log_end_offset(), end + 4);
    assert_eq!(read_all(&log).len() as i64, end + 4);
}

#[test]
fn torn_tail_is_truncated_on_reopen() {
    // A partial batch (as from a write cut short) and plain garbage.
    for tail in [
        batch(5000, 4, Compression::Lz4, "torn")[..70].to_vec(),
        vec![0xab; 100],
        vec![0; 5],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(dir.path());
        fill(&mut log, 12, 1000);
        let (end, size, records) = (log.log_end_offset(), log.size_bytes(), read_all(&log));
        drop(log);
        let path = last_log(dir.path());
        let good_len = fs::metadata(&path).expect("meta").len();
        append_raw(&path, &tail);

        let mut log = open(dir.path());
        assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
        assert_eq!(
            fs::metadata(&path).expect("meta").len(),
            good_len,
            "file truncated"
        );
        assert_eq!(read_all(&log), records);
        let info = log
            .append(&mut batch(9000, 2, Compression::None, "new"), 0, false)
            .expect("append");
        assert_eq!(info.base_offset, end);
        drop(log);
        let log = open(dir.path());
        assert_eq!(log.log_end_offset(), end + 2);
        assert_eq!(read_all(&log)[..records.len()], records[..]);
    }
}

#[test]
fn corrupt_last_batch_is_dropped_and_earlier_batches_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    fill(&mut log, 5, 1000);
    let (before, size_before_last) = (read_all(&log), log.size_bytes());
    let last = log
        .append(&mut batch(2000, 3, Compression::Gzip, "last"), 0, false)
        .expect("append");
    drop(log);
    let path = last_log(dir.path());
    let mut bytes = fs::read(&path).expect("read");
    let n = bytes.len();
    bytes[n - 10] ^= 0x01; // inside the CRC-covered records of the last batch
    fs::write(&path, &bytes).expect("write");

    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    assert_eq!(log.log_end_offset(), last.base_offset);
    assert_eq!(log.size_bytes(), size_before_last);
    assert_eq!(read_all(&log), before);
    let info = log
        .append(&mut batch(3000, 1, Compression::None, "again"), 0, false)
        .expect("append");
    assert_eq!(info.base_offset, last.base_offset);
}

#[test]
fn torn_batch_alone_in_a_fresh_segment_leaves_it_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path());
    fill(&mut log, 20, 1000);
    assert!(log.roll_if_due(i64::MAX).expect("roll"));
    let (end, records) = (log.log_end_offset(), read_all(&log));
    drop(log);
    let path = last_log(dir.path());
    assert_eq!(fs::metadata(&path).expect("meta").len(), 0);
    let mut torn = batch(1, 3, Compression::None, "t");
    torn[..8].copy_from_slice(&end.to_be_bytes());
    append_raw(&path, &torn[..torn.len() - 1]);

    let mut log = open(dir.path());
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(fs::metadata(&path).expect("meta").len(), 0);
    assert_eq!(read_all(&log), records);
    assert_eq!(
        log.append(&mut batch(1, 1, Compression::None, "n"), 0, false)
            .expect("append")
            .base_offset,
        end
    );
}

#[test]
fn missing_and_corrupt_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path());
    fill(&mut log, 40, 1000);
    let (records, answers) = (read_all(&log), probes(&log));
    drop(log);
    let indexes = segment_files(dir.path(), "index");
    let timeindexes = segment_files(dir.path(), "timeindex");
    assert!(indexes.len() >= 4);
    let original: Vec<Vec<u8>> = indexes
        .iter()
        .chain(&timeindexes)
        .map(|p| fs::read(p).expect("read"))
        .collect();
    assert!(
        original.iter().all(|b| !b.is_empty()),
        "dense enough to have entries"
    );

    fs::remove_file(&indexes[0]).expect("rm");
    fs::remove_file(&timeindexes[0]).expect("rm");
    let mut odd = fs::read(&timeindexes[1]).expect("read");
    odd.truncate(odd.len() - 5); // not a whole number of entries
    fs::write(&timeindexes[1], odd).expect("write");
    let mut bad = fs::read(&indexes[2]).expect("read");
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes()); // last entry points outside
    fs::write(&indexes[2], bad).expect("write");

    let log = open(dir.path());
    assert_eq!(read_all(&log), records);
    assert_eq!(probes(&log), answers);
    let rebuilt: Vec<Vec<u8>> = indexes
        .iter()
        .chain(&timeindexes)
        .map(|p| fs::read(p).expect("read"))
        .collect();
    assert_eq!(
        rebuilt, original,
        "rebuilt indexes are the ones written at roll"
    );
}

#[test]
fn sane_looking_but_wrong_index_entries_do_not_break_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path());
    fill(&mut log, 40, 1000);
    let (records, answers) = (read_all(&log), probes(&log));
    drop(log);
    // Entries that pass the sanity check but point into the middle of batches, or at the
    // wrong batch, or are out of order.
    for (i, path) in segment_files(dir.path(), "index").iter().enumerate() {
        let n = fs::read(path).expect("read").len() / 8;
        let mut bytes = Vec::new();
        for k in 0..n as u32 {
            let rel = if i % 2 == 0 { 1 + k } else { n as u32 - k };
            bytes.extend_from_slice(&rel.to_be_bytes());
            bytes.extend_from_slice(&(7 + 13 * k).to_be_bytes());
        }
        fs::write(path, bytes).expect("write");
    }
    for path in segment_files(dir.path(), "timeindex") {
        let mut bytes = fs::read(&path).expect("read");
        let n = bytes.len();
        bytes[..n - 12].fill(0x11); // keep the last (max) entry
        fs::write(&path, bytes).expect("write");
    }
    let log = open(dir.path());
    assert_eq!(read_all(&log), records);
    assert_eq!(probes(&log), answers);
}

#[test]
fn active_segment_index_files_and_leftovers_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path());
    fill(&mut log, 30, 1000);
    let (records, answers) = (read_all(&log), probes(&log));
    drop(log);
    let active = last_log(dir.path());
    fs::write(active.with_extension("index"), [0xffu8; 16]).expect("write");
    fs::write(active.with_extension("timeindex"), [0x7fu8; 24]).expect("write");
    fs::write(dir.path().join("00000000000000999999.index"), [1u8; 8]).expect("orphan");
    fs::write(dir.path().join("00000000000000000000.index.tmp"), [1u8; 3]).expect("tmp");
    fs::write(dir.path().join("notes.txt"), "hello").expect("other");

    let log = open(dir.path());
    assert_eq!(read_all(&log), records);
    assert_eq!(probes(&log), answers);
    assert!(!dir.path().join("00000000000000999999.index").exists());
    assert!(!dir.path().join("00000000000000000000.index.tmp").exists());
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn corrupt_old_segment_without_index_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path());
    fill(&mut log, 30, 1000);
    drop(log);
    let first = segment_files(dir.path(), "log").remove(0);
    fs::remove_file(first.with_extension("index")).expect("rm");
    let mut bytes = fs::read(&first).expect("read");
    bytes[8..12].copy_from_slice(&5i32.to_be_bytes()); // impossible batch length
    fs::write(&first, bytes).expect("write");
    match PartitionLog::open(dir.path(), small_config()) {
        Err(super::super::Error::Corrupt(msg)) => {
            assert!(msg.contains("00000000000000000000.log"), "{msg}")
        }
        other => panic!("expected Corrupt, got {:?}", other.err()),
    }
}
