//! ListOffsets by timestamp and MAX_TIMESTAMP, checked against a brute-force answer.

use kafka_protocol::records::Compression;

use super::super::{LogConfig, PartitionLog};
use super::{batch_ts, read_all, small_config, CODECS};

fn expected_for(records: &[(i64, i64, String)], ts: i64) -> Option<(i64, i64)> {
    records.iter().find(|r| r.1 >= ts).map(|r| (r.0, r.1))
}

fn expected_max(records: &[(i64, i64, String)]) -> Option<(i64, i64)> {
    let max = records.iter().map(|r| r.1).max()?;
    records.iter().find(|r| r.1 == max).map(|r| (r.0, r.1))
}

/// Pseudo-random timestamps: rising on the whole, but not monotonic within or across batches.
fn fill_jittered(log: &mut PartitionLog, batches: usize, seed: u64) {
    let mut x = seed;
    let mut base = 10_000i64;
    for i in 0..batches {
        let n = 1 + i % 6;
        let ts: Vec<i64> = (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                base + ((x >> 33) % 400) as i64 - 150
            })
            .collect();
        base += 60;
        log.append(
            &mut batch_ts(&ts, CODECS[i % 5], &format!("j{i}")),
            0,
            false,
        )
        .expect("append");
    }
}

fn check_all(log: &PartitionLog) {
    let records = read_all(log);
    for ts in (9_000..(10_000 + 60 * 120 + 400)).step_by(3) {
        assert_eq!(
            log.offset_for_timestamp(ts).expect("lookup"),
            expected_for(&records, ts),
            "ts {ts}"
        );
    }
    assert_eq!(log.max_timestamp().expect("max"), expected_max(&records));
}

#[test]
fn offset_for_timestamp_finds_records_inside_compressed_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open");
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), None);
    assert_eq!(log.max_timestamp().expect("max"), None);
    // One batch per codec, four records each 10 ms apart: 1000, 1010, ... 1190.
    for (i, codec) in CODECS.iter().enumerate() {
        let ts: Vec<i64> = (0..4).map(|k| 1000 + 40 * i as i64 + 10 * k).collect();
        log.append(&mut batch_ts(&ts, *codec, "t"), 0, false)
            .expect("append");
    }
    assert_eq!(
        log.offset_for_timestamp(0).expect("lookup"),
        Some((0, 1000))
    );
    assert_eq!(
        log.offset_for_timestamp(1000).expect("lookup"),
        Some((0, 1000))
    );
    assert_eq!(
        log.offset_for_timestamp(1015).expect("lookup"),
        Some((2, 1020))
    );
    assert_eq!(
        log.offset_for_timestamp(1041).expect("lookup"),
        Some((5, 1050)),
        "gzip"
    );
    assert_eq!(
        log.offset_for_timestamp(1090).expect("lookup"),
        Some((9, 1090)),
        "snappy"
    );
    assert_eq!(
        log.offset_for_timestamp(1125).expect("lookup"),
        Some((13, 1130)),
        "lz4"
    );
    assert_eq!(
        log.offset_for_timestamp(1171).expect("lookup"),
        Some((18, 1180)),
        "zstd"
    );
    assert_eq!(
        log.offset_for_timestamp(1190).expect("lookup"),
        Some((19, 1190))
    );
    assert_eq!(log.offset_for_timestamp(1191).expect("lookup"), None);
    assert_eq!(log.max_timestamp().expect("max"), Some((19, 1190)));
}

#[test]
fn max_timestamp_is_the_first_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), small_config()).expect("open");
    log.append(
        &mut batch_ts(&[100, 900, 200], Compression::None, "a"),
        0,
        false,
    )
    .expect("append");
    log.append(
        &mut batch_ts(&[300, 950, 400, 950], Compression::Lz4, "b"),
        0,
        false,
    )
    .expect("append");
    log.append(&mut batch_ts(&[500, 950], Compression::Zstd, "c"), 0, false)
        .expect("append");
    log.append(&mut batch_ts(&[600], Compression::None, "d"), 0, false)
        .expect("append");
    assert_eq!(log.max_timestamp().expect("max"), Some((4, 950)));
    // A later segment can hold a tie: still the first one.
    assert!(log.roll_if_due(i64::MAX).expect("roll"));
    log.append(&mut batch_ts(&[950, 10], Compression::Gzip, "e"), 0, false)
        .expect("append");
    assert_eq!(log.max_timestamp().expect("max"), Some((4, 950)));
    assert_eq!(
        log.offset_for_timestamp(901).expect("lookup"),
        Some((4, 950))
    );
    drop(log);
    let mut log = PartitionLog::open(dir.path(), small_config()).expect("open");
    assert_eq!(log.max_timestamp().expect("max"), Some((4, 950)));
    // Once the log start passes it, the next one counts.
    log.delete_records(5).expect("delete");
    assert_eq!(log.max_timestamp().expect("max"), Some((6, 950)));
    log.delete_records(7).expect("delete");
    assert_eq!(log.max_timestamp().expect("max"), Some((8, 950)));
    log.delete_records(9).expect("delete");
    assert_eq!(log.max_timestamp().expect("max"), Some((10, 950)));
    log.delete_records(11).expect("delete");
    assert_eq!(log.max_timestamp().expect("max"), Some((11, 10)));
}

#[test]
fn timestamp_lookups_match_brute_force_across_segments_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone()).expect("open");
    fill_jittered(&mut log, 120, 42);
    assert!(super::segment_files(dir.path(), "log").len() >= 5);
    check_all(&log);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config).expect("reopen");
    check_all(&log);
    // With the log start inside a batch in the middle of a segment.
    let start = log.log_end_offset() / 3 + 1;
    log.delete_records(start).expect("delete");
    check_all(&log);
}
