//! Retention by time and size, and DeleteRecords.

use std::path::Path;

use kafka_protocol::records::Compression;

use super::super::{Error, LogConfig, PartitionLog};
use super::{batch, decode, fill, read_all, segment_files, small_config};

/// Base offset and size of each segment, from the files.
fn segments(dir: &Path) -> Vec<(i64, u64)> {
    segment_files(dir, "log")
        .iter()
        .map(|p| {
            let base = p
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .parse()
                .expect("base");
            (base, std::fs::metadata(p).expect("meta").len())
        })
        .collect()
}

#[test]
fn retention_by_time_deletes_old_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_config()).expect("open");
    fill(&mut log, 40, 1000);
    let records = read_all(&log);
    let segs = segments(dir.path());
    assert!(segs.len() >= 5);
    // Newest timestamp in the third segment.
    let max_ts_2 = records
        .iter()
        .filter(|r| r.0 >= segs[2].0 && r.0 < segs[3].0)
        .map(|r| r.1)
        .max()
        .expect("ts");

    log.set_config(LogConfig {
        retention_ms: -1,
        ..small_config()
    });
    assert_eq!(log.enforce_retention(i64::MAX).expect("retention"), 0);

    log.set_config(LogConfig {
        retention_ms: 1000,
        ..small_config()
    });
    assert_eq!(
        log.enforce_retention(max_ts_2 + 1000).expect("retention"),
        2,
        "third segment not yet expired"
    );
    assert_eq!(log.log_start_offset(), segs[2].0);
    assert_eq!(
        log.enforce_retention(max_ts_2 + 1001).expect("retention"),
        1
    );
    assert_eq!(log.log_start_offset(), segs[3].0);
    assert_eq!(segments(dir.path()), segs[3..].to_vec());
    assert_eq!(log.size_bytes(), segs[3..].iter().map(|s| s.1).sum::<u64>());
    assert!(matches!(
        log.read(segs[3].0 - 1, 100, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(0, 100, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
    let kept: Vec<_> = records
        .iter()
        .filter(|r| r.0 >= segs[3].0)
        .cloned()
        .collect();
    assert_eq!(read_all(&log), kept);

    // Everything expired: all but the active segment go.
    let n = segs.len();
    assert_eq!(log.enforce_retention(i64::MAX).expect("retention"), n - 4);
    assert_eq!(log.log_start_offset(), segs[n - 1].0);
    assert_eq!(segments(dir.path()).len(), 1);
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(log.log_start_offset(), segs[n - 1].0);
    assert_eq!(
        read_all(&log),
        records
            .iter()
            .filter(|r| r.0 >= segs[n - 1].0)
            .cloned()
            .collect::<Vec<_>>()
    );
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_config()).expect("open");
    fill(&mut log, 40, 1000);
    let segs = segments(dir.path());
    let total = log.size_bytes();
    let (s0, s1) = (segs[0].1, segs[1].1);

    log.set_config(LogConfig {
        retention_bytes: (total - s0 - s1 + 1) as i64,
        retention_ms: -1,
        ..small_config()
    });
    assert_eq!(log.enforce_retention(0).expect("retention"), 1);
    assert_eq!(
        (log.log_start_offset(), log.size_bytes()),
        (segs[1].0, total - s0)
    );
    log.set_config(LogConfig {
        retention_bytes: (total - s0 - s1) as i64,
        retention_ms: -1,
        ..small_config()
    });
    assert_eq!(log.enforce_retention(0).expect("retention"), 1);
    assert_eq!(
        (log.log_start_offset(), log.size_bytes()),
        (segs[2].0, total - s0 - s1)
    );
    log.set_config(LogConfig {
        retention_bytes: 0,
        retention_ms: -1,
        ..small_config()
    });
    assert_eq!(log.enforce_retention(0).expect("retention"), segs.len() - 3);
    assert_eq!(segments(dir.path()), segs[segs.len() - 1..].to_vec());
    assert!(matches!(
        log.read(0, 100, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn delete_records_moves_the_start_inside_a_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_config()).expect("open");
    // Batches of 5 records: offsets 0..4, 5..9, ...
    for i in 0..60 {
        let mut b = batch(
            1000 + 50 * i,
            5,
            super::CODECS[i as usize % 5],
            &format!("d{i}"),
        );
        log.append(&mut b, 0, false).expect("append");
    }
    let records = read_all(&log);
    let end = log.log_end_offset();
    assert_eq!(log.delete_records(7).expect("delete"), 7);
    assert_eq!(log.log_start_offset(), 7);
    let r = log.read(7, 1, true).expect("read at the new start");
    let recs = decode(&r.records);
    assert_eq!(
        recs.first().expect("record").0,
        5,
        "the whole batch holding the start"
    );
    assert_eq!(r.log_start_offset, 7);
    assert!(matches!(
        log.read(6, 100, true),
        Err(Error::OffsetOutOfRange {
            offset: 6,
            log_start: 7,
            ..
        })
    ));
    // By timestamp, records below the start are not found.
    assert_eq!(
        log.offset_for_timestamp(0).expect("lookup"),
        Some((7, records[7].1))
    );
    // Never backwards; not past the end.
    assert_eq!(log.delete_records(3).expect("delete"), 7);
    assert!(matches!(
        log.delete_records(end + 1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        segments(dir.path()).len(),
        segment_files(dir.path(), "log").len()
    );

    // Past a few segments: those wholly below go, the one holding the start stays.
    let segs = segments(dir.path());
    let target = segs[3].0 + 2;
    assert_eq!(log.delete_records(target).expect("delete"), target);
    assert_eq!(segments(dir.path()), segs[3..].to_vec());
    assert_eq!(read_all(&log).first().expect("record").0, target);
    drop(log);

    let mut log = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(log.log_start_offset(), target);
    assert!(matches!(
        log.read(target - 1, 100, true),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        read_all(&log),
        records
            .iter()
            .filter(|r| r.0 >= target)
            .cloned()
            .collect::<Vec<_>>()
    );

    // Up to the end: reads at the end are empty, appends continue.
    assert_eq!(log.delete_records(end).expect("delete"), end);
    assert!(log.read(end, 100, true).expect("read").records.is_empty());
    assert_eq!(log.max_timestamp().expect("max"), None);
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), None);
    let info = log
        .append(&mut batch(1, 2, Compression::None, "n"), 0, false)
        .expect("append");
    assert_eq!(info.base_offset, end);
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).expect("reopen");
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (end, end + 2)
    );
}

#[test]
fn a_log_start_past_the_surviving_data_starts_an_empty_log_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_config()).expect("open");
    fill(&mut log, 3, 1000);
    drop(log);
    std::fs::write(dir.path().join("log-start-offset"), "500\n").expect("write");
    let mut log = PartitionLog::open(dir.path(), small_config()).expect("open");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(
        log.append(&mut batch(1, 1, Compression::None, "x"), 0, false)
            .expect("append")
            .base_offset,
        500
    );
    assert_eq!(segments(dir.path()).len(), 1);
    std::fs::write(dir.path().join("log-start-offset"), "garbage").expect("write");
    drop(log);
    assert!(matches!(
        PartitionLog::open(dir.path(), small_config()),
        Err(Error::Corrupt(_))
    ));
}
