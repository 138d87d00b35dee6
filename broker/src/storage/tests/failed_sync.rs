//! A failed fsync is never acknowledged and takes the partition offline until the log is
//! opened again.

use std::time::Duration;

use kafka_protocol::records::Compression;

use super::super::segment::tests::FAIL_SYNC;
use super::super::{Error, FsyncPolicy, LogConfig, PartitionLog};
use super::{batch, read_all, small_config};

fn with_failing_fsync<T>(f: impl FnOnce() -> T) -> T {
    FAIL_SYNC.with(|s| s.set(true));
    let out = f();
    FAIL_SYNC.with(|s| s.set(false));
    out
}

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig { fsync, ..small_config() }
}

#[test]
fn a_failed_fsync_before_the_acknowledgement_takes_the_partition_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config(FsyncPolicy::Always)).expect("open");
    log.append(&mut batch(1000, 3, Compression::None, "acked"), 1000, false).expect("append");

    let failed = with_failing_fsync(|| log.append(&mut batch(2000, 3, Compression::None, "lost"), 2000, false));
    assert!(matches!(failed, Err(Error::SyncFailed(_))), "{failed:?}");
    assert!(log.is_offline());

    // The kernel forgets a failed fsync: a later one would succeed although the data may be
    // gone, so nothing more is acknowledged, and nothing is served.
    let later = log.append(&mut batch(3000, 3, Compression::None, "later"), 3000, false);
    assert!(matches!(later, Err(Error::Offline(_))), "{later:?}");
    assert!(matches!(log.read(0, 1 << 20, true), Err(Error::Offline(_))));
    assert!(matches!(log.flush(), Err(Error::Offline(_))));
    assert!(matches!(log.roll_if_due(i64::MAX), Err(Error::Offline(_))));
    let message = log.append(&mut batch(3000, 1, Compression::None, "x"), 3000, false).expect_err("offline").to_string();
    assert!(message.contains("restart the broker"), "{message}");

    // Opening the log again recovers it from its files; the acknowledged records are there.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), config(FsyncPolicy::Always)).expect("reopen");
    assert!(!log.is_offline());
    let values: Vec<String> = read_all(&log).into_iter().map(|r| r.2).collect();
    assert!(values[..3].iter().all(|v| v.starts_with("acked-")), "{values:?}");
    let next = log.append(&mut batch(4000, 2, Compression::None, "after"), 4000, false).expect("append after reopen");
    assert_eq!(next.base_offset, log.log_end_offset() - 2);
}

#[test]
fn a_failed_interval_fsync_takes_the_partition_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config(FsyncPolicy::Interval(Duration::from_secs(3600)))).expect("open");
    log.append(&mut batch(1000, 3, Compression::None, "a"), 1000, false).expect("first append syncs");
    log.append(&mut batch(2000, 3, Compression::None, "b"), 2000, false).expect("append within the interval");
    let failed = with_failing_fsync(|| log.flush());
    assert!(matches!(failed, Err(Error::SyncFailed(_))), "{failed:?}");
    let later = log.append(&mut batch(3000, 3, Compression::None, "c"), 3000, false);
    assert!(matches!(later, Err(Error::Offline(_))), "{later:?}");
}

#[test]
fn a_failed_fsync_at_a_segment_roll_is_not_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config(FsyncPolicy::Always)).expect("open");
    // Small segments: the tenth batch rolls.
    let mut ts = 1000;
    while log.size_bytes() < 900 {
        log.append(&mut batch(ts, 3, Compression::None, "fill"), ts, false).expect("append");
        ts += 100;
    }
    let end = log.log_end_offset();
    let failed = with_failing_fsync(|| log.append(&mut batch(ts, 3, Compression::None, "roll"), ts, false));
    assert!(matches!(failed, Err(Error::SyncFailed(_))), "{failed:?}");
    assert_eq!(log.log_end_offset(), end, "nothing appended");
    assert!(log.is_offline());
}

#[test]
fn an_fsync_prepared_under_the_lock_leaves_a_segment_written_meanwhile_dirty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config(FsyncPolicy::Never)).expect("open");
    log.append(&mut batch(1000, 3, Compression::None, "a"), 1000, false).expect("append");
    let pending = log.prepare_sync().expect("prepare");
    assert_eq!(pending.segments(), 1);

    // An append while the fsync runs without the partition lock.
    log.append(&mut batch(2000, 3, Compression::None, "b"), 2000, false).expect("append during the fsync");
    let synced = pending.run();
    log.finish_sync(pending, synced).expect("finish");
    assert_eq!(log.prepare_sync().expect("prepare").segments(), 1, "the append after the prepare is not counted as synced");

    log.flush().expect("flush");
    assert_eq!(log.prepare_sync().expect("prepare").segments(), 0, "nothing written since the flush");
    let values: Vec<String> = read_all(&log).into_iter().map(|r| r.2).collect();
    assert_eq!(values.len(), 6);
}

#[test]
fn a_failed_fsync_run_without_the_lock_takes_the_partition_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config(FsyncPolicy::Never)).expect("open");
    log.append(&mut batch(1000, 3, Compression::None, "a"), 1000, false).expect("append");
    let pending = log.prepare_sync().expect("prepare");
    let synced = with_failing_fsync(|| pending.run());
    let finished = log.finish_sync(pending, synced);
    assert!(matches!(finished, Err(Error::SyncFailed(_))), "{finished:?}");
    assert!(log.is_offline());
    assert!(matches!(log.prepare_sync(), Err(Error::Offline(_))));
    let later = log.append(&mut batch(2000, 3, Compression::None, "b"), 2000, false);
    assert!(matches!(later, Err(Error::Offline(_))), "{later:?}");
}

#[test]
fn an_fsync_of_a_partition_deleted_meanwhile_is_not_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let part = dir.path().join("t-0");
    let mut log = PartitionLog::open(&part, config(FsyncPolicy::Never)).expect("open");
    log.append(&mut batch(1000, 3, Compression::None, "a"), 1000, false).expect("append");
    let pending = log.prepare_sync().expect("prepare");
    std::fs::remove_dir_all(&part).expect("the topic deleted");
    let synced = pending.run();
    assert!(synced.is_ok(), "{synced:?}");
    log.finish_sync(pending, synced).expect("finish");
    assert!(!log.is_offline());
}
