//! Appends, reads, validation, rolling and configuration.

use std::time::Duration;

use kafka_protocol::records::Compression;
use tern_kafka::batch::{set_base_offset, set_log_append_time, verify_crc, BatchHeader};

use super::super::{Error, FsyncPolicy, LogConfig, PartitionLog};
use super::{batch, decode, read_all, segment_files, small_config};

fn open(dir: &std::path::Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).expect("open")
}

/// A batch as the log stores it: the bytes as sent, with the base offset the log assigned.
fn at(mut batch: Vec<u8>, base: i64) -> Vec<u8> {
    set_base_offset(&mut batch, base);
    batch
}

#[test]
fn append_assigns_offsets_and_reads_back_the_exact_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.size_bytes()
        ),
        (0, 0, 0)
    );

    let mut b1 = batch(1000, 5, Compression::None, "a");
    let mut b2 = batch(2000, 3, Compression::Lz4, "b");
    let mut b3 = batch(3000, 4, Compression::Zstd, "c");
    let i1 = log.append(&mut b1, 10, false).expect("append");
    let i2 = log.append(&mut b2, 11, false).expect("append");
    let i3 = log.append(&mut b3, 12, false).expect("append");
    assert_eq!(
        (
            i1.base_offset,
            i1.last_offset,
            i1.batch_count,
            i1.log_append_time
        ),
        (0, 4, 1, None)
    );
    assert_eq!((i2.base_offset, i2.last_offset), (5, 7));
    assert_eq!((i3.base_offset, i3.last_offset), (8, 11));
    // The caller's bytes are left as they were: the log writes the assigned base offsets.
    let sent = b2.clone();
    assert_eq!(BatchHeader::parse(&sent).expect("header").base_offset, 0);
    let stored = log.read(5, 1 << 20, false).expect("read").records;
    assert_eq!(BatchHeader::parse(&stored).expect("header").base_offset, 5);
    assert_eq!(&stored[8..sent.len()], &sent[8..], "the rest of the batch is stored as sent");
    verify_crc(&stored[..sent.len()]).expect("crc still valid");

    // A record set of several batches in one append.
    let mut set = batch(4000, 2, Compression::Gzip, "d");
    set.extend_from_slice(&batch(5000, 6, Compression::Snappy, "e"));
    let i4 = log.append(&mut set, 13, false).expect("append set");
    assert_eq!(
        (i4.base_offset, i4.last_offset, i4.batch_count),
        (12, 19, 2)
    );
    assert_eq!(log.log_end_offset(), 20);

    // What the log holds: the batches as sent, each with its assigned base offset.
    let second = BatchHeader::parse(&set).expect("header").total_len();
    let mut set_stored = at(set.clone(), 12);
    set_base_offset(&mut set_stored[second..], 14);
    let all = [at(b1.clone(), 0), at(b2.clone(), 5), at(b3.clone(), 8), set_stored].concat();
    assert_eq!(log.size_bytes(), all.len() as u64);
    let r = log.read(0, 1 << 20, false).expect("read");
    assert_eq!(&r.records[..], &all[..]);
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 20));

    let recs = decode(&r.records);
    let offsets: Vec<i64> = recs.iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>());
    assert_eq!(recs[6].2, format!("b-1-{}", "x".repeat(40)));
    assert_eq!(recs[6].1, 2010);
    assert_eq!(recs[19].2, format!("e-5-{}", "x".repeat(40)));
}

#[test]
fn read_from_the_middle_of_a_batch_returns_that_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    let mut b1 = batch(1000, 5, Compression::None, "a");
    let mut b2 = batch(2000, 3, Compression::Gzip, "b");
    log.append(&mut b1, 0, false).expect("append");
    log.append(&mut b2, 0, false).expect("append");
    let b2 = at(b2, 5);
    for offset in 5..8 {
        let r = log.read(offset, 1 << 20, false).expect("read");
        assert_eq!(&r.records[..], &b2[..], "offset {offset}");
    }
    let r = log.read(3, 1 << 20, false).expect("read");
    assert_eq!(&r.records[..], &[b1.clone(), b2.clone()].concat()[..]);
    // The log end offset gives an empty read; past it and below the start are out of range.
    let r = log.read(8, 1 << 20, true).expect("read at end");
    assert!(r.records.is_empty());
    assert_eq!(r.log_end_offset, 8);
    assert!(matches!(
        log.read(9, 100, true),
        Err(Error::OffsetOutOfRange {
            offset: 9,
            log_start: 0,
            log_end: 8
        })
    ));
    assert!(matches!(
        log.read(-1, 100, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn max_bytes_returns_whole_batches_and_min_one_allows_one_big_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    let mut b1 = batch(1000, 5, Compression::None, "a");
    let mut b2 = batch(2000, 3, Compression::None, "b");
    let mut b3 = batch(3000, 2, Compression::None, "c");
    for b in [&mut b1, &mut b2, &mut b3] {
        log.append(b, 0, false).expect("append");
    }
    let (b2, b3) = (at(b2, 5), at(b3, 8));
    let (l1, l2) = (b1.len(), b2.len());
    assert!(log.read(0, l1 - 1, false).expect("read").records.is_empty());
    assert_eq!(
        &log.read(0, l1 - 1, true).expect("read").records[..],
        &b1[..]
    );
    assert_eq!(&log.read(0, 0, true).expect("read").records[..], &b1[..]);
    assert_eq!(&log.read(0, l1, false).expect("read").records[..], &b1[..]);
    assert_eq!(
        &log.read(0, l1 + l2 / 2, false).expect("read").records[..],
        &b1[..]
    );
    assert_eq!(
        &log.read(0, l1 + l2, false).expect("read").records[..],
        &[b1.clone(), b2.clone()].concat()[..]
    );
    assert_eq!(
        &log.read(2, l1 + l2 + 1, true).expect("read").records[..],
        &[b1.clone(), b2.clone()].concat()[..]
    );
    assert_eq!(
        &log.read(6, usize::MAX, false).expect("read").records[..],
        &[b2, b3].concat()[..]
    );
}

#[test]
fn oversized_batch_is_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 300,
            ..LogConfig::default()
        },
    );
    let small = batch(1000, 1, Compression::None, "s");
    let big = batch(1000, 8, Compression::None, "big");
    assert!(small.len() <= 300 && big.len() > 300);
    let mut set = [small.clone(), big.clone()].concat();
    match log.append(&mut set, 0, false) {
        Err(Error::RecordTooLarge { size, max: 300 }) => assert_eq!(size, big.len()),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
    let files = segment_files(dir.path(), "log");
    assert_eq!(std::fs::metadata(&files[0]).expect("meta").len(), 0);
    let mut ok = small.clone();
    assert_eq!(
        log.append(&mut ok, 0, false).expect("append").base_offset,
        0
    );
}

#[test]
fn invalid_record_sets_are_rejected_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    let b1 = batch(1000, 3, Compression::None, "a");
    let b2 = batch(2000, 3, Compression::Lz4, "b");

    // A bad CRC in the second of two batches: nothing is written.
    let mut set = [b1.clone(), b2.clone()].concat();
    let last = set.len() - 5;
    set[last] ^= 0x10;
    assert!(matches!(
        log.append(&mut set, 0, false),
        Err(Error::InvalidBatch(tern_kafka::Error::CorruptBatch { .. }))
    ));
    // Trailing partial bytes after a good batch.
    let mut set = [b1.clone(), b2[..30].to_vec()].concat();
    assert!(matches!(
        log.append(&mut set, 0, false),
        Err(Error::InvalidBatch(_))
    ));
    // A length running past the buffer.
    let mut set = b1[..b1.len() - 1].to_vec();
    assert!(matches!(
        log.append(&mut set, 0, false),
        Err(Error::InvalidBatch(_))
    ));
    // Wrong magic, and an empty record set.
    let mut v1 = b1.clone();
    v1[16] = 1;
    assert!(matches!(
        log.append(&mut v1, 0, false),
        Err(Error::InvalidBatch(_))
    ));
    assert!(matches!(
        log.append(&mut [], 0, false),
        Err(Error::InvalidBatch(_))
    ));
    // Record count disagreeing with the last offset delta (CRC recomputed so only that is wrong).
    let mut counts = b1.clone();
    counts[57..61].copy_from_slice(&7i32.to_be_bytes());
    tern_kafka::batch::rewrite_crc(&mut counts);
    assert!(matches!(
        log.append(&mut counts, 0, false),
        Err(Error::InvalidBatch(_))
    ));

    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
    assert_eq!(
        std::fs::metadata(&segment_files(dir.path(), "log")[0])
            .expect("meta")
            .len(),
        0
    );
    let mut set = [b1, b2].concat();
    let info = log.append(&mut set, 0, false).expect("append");
    assert_eq!(
        (info.base_offset, info.last_offset, info.batch_count),
        (0, 5, 2)
    );
}

#[test]
fn log_append_time_stamps_every_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    let mut set = [
        batch(1000, 3, Compression::None, "a"),
        batch(1100, 2, Compression::Zstd, "b"),
    ]
    .concat();
    let sent = set.clone();
    let info = log.append(&mut set, 777_000, true).expect("append");
    assert_eq!(info.log_append_time, Some(777_000));
    assert_eq!(set, sent, "the caller's bytes are not stamped");
    let second = BatchHeader::parse(&set).expect("header").total_len();
    let mut stored = set.clone();
    set_log_append_time(&mut stored[..second], 777_000);
    set_log_append_time(&mut stored[second..], 777_000);
    set_base_offset(&mut stored[second..], 3);
    let r = log.read(0, 1 << 20, false).expect("read");
    assert_eq!(&r.records[..], &stored[..]);
    let h = BatchHeader::parse(&r.records).expect("header");
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 777_000);
    verify_crc(&r.records[..h.total_len()]).expect("crc");
    assert_eq!(
        log.offset_for_timestamp(777_000).expect("lookup"),
        Some((0, 777_000))
    );
    assert_eq!(log.offset_for_timestamp(777_001).expect("lookup"), None);
    assert_eq!(log.max_timestamp().expect("max"), Some((0, 777_000)));
}

#[test]
fn fsync_policies_parse_and_work() {
    assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
    assert_eq!("Never".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Never));
    assert_eq!(
        "interval".parse::<FsyncPolicy>(),
        Ok(FsyncPolicy::Interval(Duration::from_secs(1)))
    );
    assert_eq!(
        "interval:250ms".parse::<FsyncPolicy>(),
        Ok(FsyncPolicy::Interval(Duration::from_millis(250)))
    );
    assert_eq!(
        "interval:5s".parse::<FsyncPolicy>(),
        Ok(FsyncPolicy::Interval(Duration::from_secs(5)))
    );
    for bad in [
        "sometimes",
        "interval:",
        "interval:5",
        "interval:xms",
        "interval:0s",
        "interval:-1s",
    ] {
        let e = bad.parse::<FsyncPolicy>().expect_err(bad);
        assert!(e.contains("fsync policy"), "{e}");
    }
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(100)),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(
            dir.path(),
            LogConfig {
                fsync,
                ..small_config()
            },
        );
        let end = super::fill(&mut log, 20, 1000);
        assert!(end > 1000);
        log.flush().expect("flush");
        drop(log);
        let log = open(
            dir.path(),
            LogConfig {
                fsync,
                ..small_config()
            },
        );
        assert_eq!(read_all(&log).len(), 90);
    }
}
