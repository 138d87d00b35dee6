//! Idempotent producers: duplicates answered with their original offsets, gaps and old epochs
//! refused, state kept across restarts (with and without snapshots), after compaction and
//! after the log start offset moves past a producer.

use kafka_protocol::records::Compression;

use super::super::{Error, LogConfig, PartitionLog};
use super::compaction::{kv_batch, read_records};

const PID: i64 = 4242;

fn produce(log: &mut PartitionLog, epoch: i16, seq: i32, n: usize) -> Result<(i64, bool), Error> {
    let values: Vec<String> = (0..n).map(|i| format!("e{epoch}-s{}", seq as i64 + i as i64)).collect();
    let kvs: Vec<(Option<&str>, Option<&str>)> = values.iter().map(|v| (Some("key"), Some(v.as_str()))).collect();
    let mut b = kv_batch((PID, epoch, seq), &kvs, 1_000, Compression::None);
    log.append(&mut b, 1_000, false).map(|i| (i.base_offset, i.duplicate))
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 600, ..LogConfig::default() }
}

#[test]
fn duplicates_gaps_and_epochs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    // A producer the log does not know may start anywhere.
    assert_eq!(produce(&mut log, 0, 10, 3).expect("first"), (0, false));
    assert_eq!(produce(&mut log, 0, 13, 2).expect("next"), (3, false));
    // A retry of either of the last batches: original offsets, nothing written.
    assert_eq!(produce(&mut log, 0, 10, 3).expect("retry"), (0, true));
    assert_eq!(produce(&mut log, 0, 13, 2).expect("retry"), (3, true));
    assert_eq!(log.log_end_offset(), 5);
    // A gap, and a repeat that is not an exact earlier batch.
    assert!(matches!(produce(&mut log, 0, 16, 1), Err(Error::OutOfOrderSequence(_))));
    assert!(matches!(produce(&mut log, 0, 14, 1), Err(Error::OutOfOrderSequence(_))));
    // A new epoch starts at sequence 0; after it the old epoch is fenced.
    assert!(matches!(produce(&mut log, 1, 5, 1), Err(Error::OutOfOrderSequence(_))));
    assert_eq!(produce(&mut log, 1, 0, 1).expect("new epoch"), (5, false));
    match produce(&mut log, 0, 15, 1) {
        Err(Error::InvalidProducerEpoch(m)) => assert!(m.contains("smaller than the last seen epoch 1"), "{m}"),
        other => panic!("expected InvalidProducerEpoch, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    let start = i32::MAX - 3;
    let mut seq = start;
    for i in 0..7 {
        assert_eq!(produce(&mut log, 0, seq, 1).expect("append").0, i);
        seq = if seq == i32::MAX { 0 } else { seq + 1 };
    }
    // Sequences went MAX-3 .. MAX, 0, 1, 2: the last five are MAX-1 .. 2.
    assert_eq!(produce(&mut log, 0, i32::MAX, 1).expect("retry"), (3, true));
    assert_eq!(produce(&mut log, 0, 2, 1).expect("retry"), (6, true));
    assert!(matches!(produce(&mut log, 0, start, 1), Err(Error::OutOfOrderSequence(_))));
}

#[test]
fn producer_state_survives_a_restart_with_or_without_snapshots() {
    for keep_snapshots in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config()).expect("open");
        let mut seq = 0;
        for _ in 0..40 {
            produce(&mut log, 3, seq, 2).expect("append");
            seq += 2;
        }
        let snapshots = super::segment_files(dir.path(), "snapshot");
        assert!(!snapshots.is_empty() && snapshots.len() <= 2, "{snapshots:?}");
        if !keep_snapshots {
            for s in snapshots {
                std::fs::remove_file(s).expect("remove snapshot");
            }
        }
        drop(log);
        let mut log = PartitionLog::open(dir.path(), config()).expect("reopen");
        let end = log.log_end_offset();
        assert_eq!(produce(&mut log, 3, seq - 2, 2).expect("retry after restart"), (end - 2, true), "snapshots kept: {keep_snapshots}");
        assert!(matches!(produce(&mut log, 3, seq + 1, 1), Err(Error::OutOfOrderSequence(_))));
        assert!(matches!(produce(&mut log, 2, seq, 1), Err(Error::InvalidProducerEpoch(_))));
        assert_eq!(produce(&mut log, 3, seq, 1).expect("in sequence"), (end, false));
    }
}

#[test]
fn compaction_keeps_the_last_batch_of_a_live_producer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let compact = LogConfig { cleanup_compact: true, cleanup_delete: false, ..config() };
    let mut log = PartitionLog::open(dir.path(), compact.clone()).expect("open");
    for i in 0..10 {
        produce(&mut log, 0, i * 2, 2).expect("append");
    }
    // Another writer supersedes the producer's key; then roll so all of it is cleanable.
    let mut other = kv_batch((-1, -1, -1), &[(Some("key"), Some("other"))], 1_000, Compression::None);
    log.append(&mut other, 1_000, false).expect("append");
    log.set_config(LogConfig { segment_ms: 0, ..compact.clone() });
    log.roll_if_due(10_000).expect("roll");
    log.set_config(compact.clone());
    log.clean(10_000).expect("clean").expect("cleaned");
    let records = read_records(&log);
    assert_eq!(records.len(), 1, "{records:?}");
    // Without snapshots, the state comes from the log: the producer's last batch is there
    // (empty), so a retry is still recognised.
    for s in super::segment_files(dir.path(), "snapshot") {
        std::fs::remove_file(s).expect("remove snapshot");
    }
    drop(log);
    let mut log = PartitionLog::open(dir.path(), compact).expect("reopen");
    assert_eq!(produce(&mut log, 0, 18, 2).expect("retry"), (18, true));
    assert!(matches!(produce(&mut log, 0, 25, 1), Err(Error::OutOfOrderSequence(_))));
}

#[test]
fn a_producer_below_the_log_start_is_forgotten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    produce(&mut log, 0, 0, 5).expect("append");
    assert_eq!(log.producer_count(), 1);
    log.delete_records(5).expect("delete records");
    assert_eq!(log.producer_count(), 0);
    // As in Kafka, an unknown producer may continue at any sequence.
    assert_eq!(produce(&mut log, 0, 77, 1).expect("append"), (5, false));
}

#[test]
fn idle_producers_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    produce(&mut log, 0, 0, 2).expect("append at t=1000");
    assert_eq!(log.expire_producers(1_500, 1_000), 0);
    assert_eq!(log.expire_producers(2_000, 1_000), 1);
    assert_eq!(produce(&mut log, 0, 50, 1).expect("any sequence once forgotten"), (2, false));
}

/// A transactional batch of `n` records from `pid` at `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let values: Vec<String> = (0..n).map(|i| format!("{pid}-{}", seq as usize + i)).collect();
    let kvs: Vec<(Option<&str>, Option<&str>)> = values.iter().map(|v| (None, Some(v.as_str()))).collect();
    super::compaction::batch_of((pid, epoch, seq), true, &kvs, 1_000, Compression::None)
}

/// Open transactions hold the last stable offset at their first record; a marker ends them,
/// an abort marker leaves a range that `read_committed` fetches report; the log read again
/// from its files (kill -9) knows the same, and a producer fenced by a marker's bumped epoch
/// is refused.
#[test]
fn transactions_set_the_last_stable_offset_and_aborted_ranges_and_survive_a_restart() {
    use super::super::txn::{AbortedTxn, Marker};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    log.append(&mut txn_batch(1, 0, 0, 3), 1_000, false).expect("txn 1"); // 0..=2
    log.append(&mut txn_batch(2, 0, 0, 2), 1_000, false).expect("txn 2"); // 3..=4
    assert_eq!(log.last_stable_offset(), 0);
    log.append(&mut txn_batch(1, 0, 3, 2), 1_000, false).expect("txn 1 again"); // 5..=6
    assert!(log.has_open_txn(1) && log.has_open_txn(2));
    log.append_marker(1, 1, Marker::Abort, 0, 1_000).expect("abort 1"); // 7
    assert_eq!(log.last_stable_offset(), 3);
    log.append_marker(2, 0, Marker::Commit, 0, 1_000).expect("commit 2"); // 8
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
    let aborted = vec![AbortedTxn { producer_id: 1, first_offset: 0, last_offset: 7 }];
    assert_eq!(log.aborted_between(0, 9), aborted);
    assert!(log.aborted_between(8, 9).is_empty());
    // The abort marker bumped producer 1's epoch: epoch 0 is fenced.
    assert!(matches!(log.append(&mut txn_batch(1, 0, 5, 1), 1_000, false), Err(Error::InvalidProducerEpoch(_))));
    log.append(&mut txn_batch(2, 0, 2, 1), 1_000, false).expect("a new transaction of producer 2"); // 9
    let end = log.log_end_offset();
    drop(log);
    let log = PartitionLog::open(dir.path(), config()).expect("reopen");
    assert_eq!((log.log_end_offset(), log.last_stable_offset()), (end, 9));
    assert_eq!(log.aborted_between(0, end), aborted);
    assert!(log.has_open_txn(2) && !log.has_open_txn(1));
}

/// Clients may not write markers: only the coordinator does.
#[test]
fn clients_cannot_write_transaction_markers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), config()).expect("open");
    log.append(&mut txn_batch(1, 0, 0, 1), 1_000, false).expect("txn");
    let mut marker = super::super::txn::marker_batch(1, 0, super::super::txn::Marker::Commit, 0, 1_000).expect("marker");
    assert!(matches!(log.append_from_client(&mut marker, 1_000, false), Err(Error::InvalidRecordBatch(_))));
    assert_eq!(log.last_stable_offset(), 0);
}

