//! Log compaction: the latest record per key survives at its original offset, tombstones go
//! after `delete.retention.ms`, the active segment is never touched, and a crash at any step
//! of a segment swap (or a real kill -9 mid-clean) leaves a readable, correct log.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tern_kafka::batch::Batches;

use super::super::cleaner::SwapStep;
use super::super::{Error, LogConfig, PartitionLog};
use super::{segment_files, CODECS};

/// `(key, value)`; a `None` value is a tombstone.
type Kv<'a> = (Option<&'a str>, Option<&'a str>);

pub(super) fn kv_batch(producer: (i64, i16, i32), kvs: &[Kv<'_>], ts: i64, compression: Compression) -> Vec<u8> {
    batch_of(producer, false, kvs, ts, compression)
}

/// A batch of `kvs` from `producer`, transactional or not.
pub(super) fn batch_of(producer: (i64, i16, i32), transactional: bool, kvs: &[Kv<'_>], ts: i64, compression: Compression) -> Vec<u8> {
    let (producer_id, producer_epoch, base_seq) = producer;
    let records: Vec<Record> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id < 0 { i as i32 - 1 } else { base_seq.wrapping_add(i as i32) },
            timestamp: ts + i as i64,
            key: k.map(|s| Bytes::from(s.to_string())),
            value: v.map(|s| Bytes::from(s.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).expect("encode");
    buf.to_vec()
}

const NO_PRODUCER: (i64, i16, i32) = (-1, -1, -1);

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 200,
        cleanup_compact: true,
        cleanup_delete: false,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

/// `offset -> (key, value)` of every record, reading batch by batch (empty batches included).
pub(super) fn read_records(log: &PartitionLog) -> BTreeMap<i64, (String, Option<String>)> {
    let mut out = BTreeMap::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 4096, true).expect("read");
        assert!(!r.records.is_empty(), "empty read at {next} before the end {}", log.log_end_offset());
        for item in Batches::new(&r.records) {
            let (pos, h) = item.expect("stored batch");
            let mut bytes = Bytes::copy_from_slice(&r.records[pos..pos + h.total_len()]);
            for rec in RecordBatchDecoder::decode(&mut bytes).expect("decodable batch").records {
                let key = String::from_utf8(rec.key.expect("compacted records have keys").to_vec()).expect("utf8");
                let value = rec.value.map(|v| String::from_utf8(v.to_vec()).expect("utf8"));
                assert!(out.insert(rec.offset, (key, value)).is_none(), "offset {} read twice", rec.offset);
            }
            next = next.max(h.last_offset() + 1);
        }
    }
    out
}

/// The last record of each key, by offset.
fn latest(records: &BTreeMap<i64, (String, Option<String>)>) -> BTreeMap<String, (i64, Option<String>)> {
    let mut m = BTreeMap::new();
    for (o, (k, v)) in records {
        m.insert(k.clone(), (*o, v.clone()));
    }
    m
}

/// 30 rounds over keys k0..k9 (k3 and k7 deleted at round 20, k7 written again at 25).
/// Returns every record written, by offset.
fn write_history(log: &mut PartitionLog, now: i64) -> BTreeMap<i64, (String, Option<String>)> {
    let mut written = BTreeMap::new();
    let mut append = |log: &mut PartitionLog, kvs: Vec<(String, Option<String>)>, i: usize| {
        let refs: Vec<Kv<'_>> = kvs.iter().map(|(k, v)| (Some(k.as_str()), v.as_deref())).collect();
        let mut b = kv_batch(NO_PRODUCER, &refs, now, CODECS[i % CODECS.len()]);
        let info = log.append(&mut b, now, false).expect("append");
        for (n, (k, v)) in kvs.into_iter().enumerate() {
            written.insert(info.base_offset + n as i64, (k, v));
        }
    };
    for round in 0..30usize {
        let deleted = |k: usize| (round > 20 && k == 3) || ((21..25).contains(&round) && k == 7);
        let keys: Vec<usize> = (0..10).filter(|k| !deleted(*k)).collect();
        append(log, keys.iter().map(|k| (format!("k{k}"), Some(format!("r{round}-k{k}")))).collect(), round);
        if round == 20 {
            append(log, vec![("k3".into(), None), ("k7".into(), None)], round);
        }
    }
    written
}

fn roll_everything(log: &mut PartitionLog, now: i64) {
    let c = log.config().clone();
    log.set_config(LogConfig { segment_ms: 0, ..c.clone() });
    assert!(log.roll_if_due(now + 1).expect("roll"));
    log.set_config(c);
}

#[test]
fn keeps_the_latest_record_per_key_at_its_offset_and_drops_tombstones_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 1_700_000_000_000;
    let mut log = PartitionLog::open(dir.path(), compact_config()).expect("open");
    let written = write_history(&mut log, now);
    let expected = latest(&written);
    assert_eq!(expected["k3"].1, None);
    assert_eq!(expected["k7"].1.as_deref(), Some("r29-k7"));
    roll_everything(&mut log, now);
    let segments_before = segment_files(dir.path(), "log").len();
    let end = log.log_end_offset();

    let stats = log.clean(now).expect("clean").expect("a dirty log is cleaned");
    assert!(stats.records_kept < stats.records_read, "{stats:?}");
    let after = read_records(&log);
    assert_eq!(latest(&after), expected, "latest value per key, at its original offset");
    assert_eq!(after.len(), expected.len(), "one record per key: {after:?}");
    for (o, kv) in &after {
        assert_eq!(written.get(o), Some(kv), "record at {o} is the one written there");
    }
    assert_eq!(log.log_end_offset(), end);

    // Nothing new is dirty: no pass. The tombstone stays until its horizon.
    assert!(log.clean(now + 10).expect("clean").is_none());
    assert!(after.values().any(|(k, v)| k == "k3" && v.is_none()));
    log.clean(now + 1_001).expect("clean").expect("the tombstone horizon makes the log cleanable");
    let after = read_records(&log);
    let mut without_tombstone = expected.clone();
    without_tombstone.remove("k3");
    assert_eq!(latest(&after), without_tombstone);
    // The second pass found small cleaned segments and merged them (Kafka's grouping by size).
    assert!(segment_files(dir.path(), "log").len() < segments_before, "small cleaned segments are merged");

    // Reopened (index files rebuilt or trusted), the log reads the same and takes appends.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), compact_config()).expect("reopen");
    assert_eq!(latest(&read_records(&log)), without_tombstone);
    let mut b = kv_batch(NO_PRODUCER, &[(Some("k1"), Some("new"))], now, Compression::None);
    assert_eq!(log.append(&mut b, now, false).expect("append").base_offset, end);
}

#[test]
fn the_active_segment_and_young_segments_are_not_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 1_700_000_000_000;
    let mut log = PartitionLog::open(dir.path(), LogConfig { min_compaction_lag_ms: 60_000, ..compact_config() }).expect("open");
    let written = write_history(&mut log, now);
    assert!(log.clean(now).expect("clean").is_none(), "every record is younger than min.compaction.lag.ms");
    assert!(log.clean(now + 120_000).expect("clean").is_some());
    // The records of the active segment are all still there.
    let after = read_records(&log);
    let last_segment = segment_files(dir.path(), "log").pop().expect("segments");
    let active_base: i64 = last_segment.file_stem().and_then(|s| s.to_str()).expect("name").parse().expect("base");
    for (o, kv) in written.range(active_base..) {
        assert_eq!(after.get(o), Some(kv));
    }
}

#[test]
fn records_without_a_key_are_refused_by_a_compacted_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = PartitionLog::open(dir.path(), compact_config()).expect("open");
    let mut b = kv_batch(NO_PRODUCER, &[(Some("a"), Some("1")), (None, Some("2"))], 0, Compression::Lz4);
    match log.append_from_client(&mut b, 0, false) {
        Err(Error::RecordErrors { timestamp: false, errors }) => {
            assert_eq!(errors.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1]);
            assert!(errors[0].message.contains("without key"), "{:?}", errors[0]);
        }
        other => panic!("expected record errors, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 0);
    log.set_config(LogConfig { cleanup_compact: false, ..compact_config() });
    log.append_from_client(&mut b, 0, false).expect("a delete-policy log takes keyless records");
}

#[test]
fn a_crash_at_any_step_of_the_swap_leaves_a_correct_log() {
    let now = 1_700_000_000_000;
    for stop in [SwapStep::Cleaned, SwapStep::Renamed, SwapStep::OldDeleted] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), compact_config()).expect("open");
        let written = write_history(&mut log, now);
        roll_everything(&mut log, now);
        let plan = log.plan_cleaning(now).expect("plan").expect("dirty");
        let result = plan.run().expect("run");
        log.finish_cleaning_until(result, stop).expect("partial swap");
        drop(log);

        let mut log = PartitionLog::open(dir.path(), compact_config()).expect("reopen after the crash");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{stop:?}: {leftovers:?}");
        let after = read_records(&log);
        assert_eq!(latest(&after), latest(&written), "{stop:?}");
        for (o, kv) in &after {
            assert_eq!(written.get(o), Some(kv), "{stop:?}: record at {o}");
        }
        log.clean(now).expect("clean after recovery");
        assert_eq!(latest(&read_records(&log)), latest(&written), "{stop:?}");
    }
}

/// The partition directory a crash child works in.
const DIR_VAR: &str = "TERN_COMPACTION_CRASH_DIR";

#[test]
#[ignore = "run as a child process by kill_9_while_cleaning_leaves_a_correct_log"]
fn compaction_crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else { return };
    let config = LogConfig { min_cleanable_dirty_ratio: 0.0, ..compact_config() };
    let mut log = PartitionLog::open(Path::new(&dir), config).expect("open");
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000usize {
        let key = format!("k{}", i % 23);
        let value = format!("v{i}");
        let mut b = kv_batch(NO_PRODUCER, &[(Some(&key), Some(&value))], 1_000, CODECS[i % CODECS.len()]);
        let info = log.append(&mut b, 1_000, false).expect("append");
        writeln!(out, "acked {} {key} {value}", info.base_offset).expect("stdout");
        out.flush().expect("flush");
        if let Some(plan) = log.plan_cleaning(2_000).expect("plan") {
            // Tells the parent a pass starts, so its kill lands inside one.
            writeln!(out, "cleaning").expect("stdout");
            out.flush().expect("flush");
            let result = plan.run().expect("clean");
            log.finish_cleaning(result).expect("swap");
        }
    }
}

#[test]
fn kill_9_while_cleaning_leaves_a_correct_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let module = module_path!().split_once("::").expect("crate::module").1;
    let child_test = format!("{module}::compaction_crash_child");
    let mut acked: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut killed_mid_clean = 0;
    // Acknowledgements to wait for, then how long after the next pass starts to kill.
    let rounds = [(300usize, 0u64), (41, 300), (977, 1_000), (150, 2_000), (2_000, 100), (600, 3_000), (1_200, 600)];
    for (round, (wait_for, delay_us)) in rounds.into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([child_test.as_str(), "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            let mut parts = line.split(' ');
            if parts.next() == Some("acked") {
                let offset: i64 = parts.next().expect("offset").parse().expect("offset");
                let key = parts.next().expect("key").to_string();
                let value = parts.next().expect("value").to_string();
                acked.insert(key, (offset, value));
                seen += 1;
            } else if line == "cleaning" && seen >= wait_for {
                std::thread::sleep(std::time::Duration::from_micros(delay_us));
                child.kill().expect("SIGKILL");
                break;
            }
        }
        child.wait().expect("wait");
        assert!(seen >= wait_for, "round {round}: the child stopped early");

        let mid_clean: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        println!("round {round}: killed after {seen} appends; cleaner files left: {mid_clean:?}");
        killed_mid_clean += usize::from(!mid_clean.is_empty());
        let log = PartitionLog::open(dir.path(), compact_config()).expect("reopen after kill -9");
        let last = latest(&read_records(&log));
        for (key, (offset, value)) in &acked {
            let (found, v) = last.get(key).unwrap_or_else(|| panic!("round {round}: key {key} lost"));
            // A record written after the last acknowledgement may be newer; never older.
            assert!(found >= offset, "round {round}: {key} at {found}, acknowledged at {offset}");
            if found == offset {
                assert_eq!(v.as_deref(), Some(value.as_str()), "round {round}: {key}");
            }
        }
        for (key, (offset, value)) in &last {
            acked.insert(key.clone(), (*offset, value.clone().expect("no tombstones written")));
        }
    }
    println!("{killed_mid_clean} of {} kills left an unfinished cleaning pass behind", rounds.len());
    let log = PartitionLog::open(dir.path(), compact_config()).expect("reopen");
    assert!(read_records(&log).len() < 23 * 10, "the log was compacted while it grew");
}

/// A transactional batch of `(key, value)` records from `pid`.
fn txn_kv_batch(pid: i64, kvs: &[(&str, &str)], ts: i64) -> Vec<u8> {
    let kvs: Vec<Kv<'_>> = kvs.iter().map(|(k, v)| (Some(*k), Some(*v))).collect();
    batch_of((pid, 0, 0), true, &kvs, ts, Compression::None)
}

/// As Kafka's cleaner: a key's committed value survives a later aborted write of the same key
/// (aborted records are not a key's latest and are removed); markers stay; an open
/// transaction's segment is not cleaned.
#[test]
fn aborted_records_are_removed_and_never_supersede_committed_ones() {
    use super::super::txn::Marker;
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 1_700_000_000_000;
    let mut log = PartitionLog::open(dir.path(), compact_config()).expect("open");
    let mut b = txn_kv_batch(1, &[("k", "committed"), ("j", "committed")], now);
    log.append(&mut b, now, false).expect("txn 1"); // 0, 1
    log.append_marker(1, 0, Marker::Commit, 0, now).expect("commit"); // 2
    let mut b = txn_kv_batch(2, &[("k", "aborted")], now);
    log.append(&mut b, now, false).expect("txn 2"); // 3
    log.append_marker(2, 0, Marker::Abort, 0, now).expect("abort"); // 4
    let mut b = txn_kv_batch(3, &[("j", "open")], now);
    log.append(&mut b, now, false).expect("txn 3, left open"); // 5
    roll_everything(&mut log, now);
    // The open transaction keeps the whole (only) segment out of the pass.
    assert!(log.clean(now).expect("clean").is_none(), "nothing at or past the last stable offset is cleaned");
    log.append_marker(3, 0, Marker::Abort, 0, now).expect("abort 3"); // 6
    roll_everything(&mut log, now);
    log.clean(now).expect("clean").expect("a pass");
    let values: BTreeMap<i64, Option<String>> = read_records(&log).into_iter().filter(|(_, (k, _))| k.len() == 1).map(|(o, (_, v))| (o, v)).collect();
    assert_eq!(values, BTreeMap::from([(0, Some("committed".to_string())), (1, Some("committed".to_string()))]), "committed values kept, aborted ones gone");
    // The markers are still there.
    let markers = read_records(&log).keys().filter(|o| [2, 4, 6].contains(*o)).count();
    assert_eq!(markers, 3);
}
