//! A full disk: `tern broker` on a small tmpfs refuses appends with KAFKA_STORAGE_ERROR,
//! loses nothing it acknowledged, leaves no partial files behind, and takes appends again
//! once retention has freed space, without a restart.
//!
//! The tmpfs is mounted in a mount namespace of the broker's own (`unshare`), so it goes away
//! with the broker; the test reads the broker's files through `/proc/<pid>/root`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use tern_kafka::client::Connection;
use tern_kafka::records::{encode_batch, PlainRecord};

use crate::durability::{earliest, read_partition_from, tern_now_ms, BrokerProcess};
use crate::helpers::*;
use crate::protocol::produce_request;

const DISK: &str = "24m";
const VALUE_BYTES: usize = 1000;

/// `tern broker` with its data directory on a tmpfs of [`DISK`], retention every second.
fn broker_on_small_disk(data: &Path, log: Arc<Mutex<Vec<String>>>) -> BrokerProcess {
    let mut cmd = Command::new("unshare");
    // Root mounts in a mount namespace; anyone else gets root in a user namespace first.
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o "size=$1" tern-disk-full "$2" && shift 2 && exec "$@""#)
        .args(["sh", DISK])
        .arg(data)
        .arg(tern_bin())
        .args(["broker", "--listen", "127.0.0.1:0", "--maintenance-interval-secs", "1", "--data"])
        .arg(data);
    BrokerProcess::spawn(cmd, Some(log))
}

/// One batch of records `(key, value)` with one timestamp.
fn batch_of(records: &[(String, String)], timestamp: i64) -> Bytes {
    let records: Vec<PlainRecord> =
        records.iter().map(|(k, v)| PlainRecord::new(k.clone(), Some(Bytes::from(v.clone())), timestamp)).collect();
    encode_batch(&records, Compression::None).expect("encode")
}

/// `count` records with values of `value_len` bytes after `"{tag}-{i}-"`, keys from `key(i)`.
fn records(tag: &str, count: usize, value_len: usize, key: impl Fn(usize) -> String) -> Vec<(String, String)> {
    (0..count).map(|i| (key(i), format!("{tag}-{i}-{}", "x".repeat(value_len)))).collect()
}

/// Produces `records` (acks=all): the acknowledged base offset, or the error code.
async fn produce(c: &mut Connection, topic: &str, records: Bytes) -> Result<i64, i16> {
    let resp = c.call(&produce_request(topic, 0, records, -1), 9).await.expect("produce call");
    let p = &resp.responses[0].partition_responses[0];
    if p.error_code == 0 { Ok(p.base_offset) } else { Err(p.error_code) }
}

/// Names of files in a partition directory that a finished operation must not leave behind.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".tmp"))
        .collect()
}

fn lines_with(log: &Mutex<Vec<String>>, a: &str, b: &str) -> usize {
    log.lock().expect("log").iter().filter(|l| l.contains(a) && l.contains(b)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_appends_then_retention_frees_it_without_a_restart() {
    let data = tempfile::tempdir().expect("dir");
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let broker = broker_on_small_disk(data.path(), log.clone());
    let files = |topic: &str| -> PathBuf { PathBuf::from(format!("/proc/{}/root", broker.pid())).join(data.path().strip_prefix("/").expect("absolute")).join(format!("{topic}-0")) };
    let mut c = Connection::connect(&broker.addr).await.expect("connect");

    // A compacted topic whose segments become cleanable 8 s from now (their timestamps are in
    // the future), when the disk will be full; a time-retained topic whose records expire
    // 20 s from now.
    let compacted = unique_topic("full-compacted");
    create_topic(&mut c, &compacted, 1, &[("cleanup.policy", "compact"), ("segment.bytes", "1048576"), ("min.compaction.lag.ms", "1"), ("min.cleanable.dirty.ratio", "0.01")]).await;
    let filler = unique_topic("full-filler");
    create_topic(&mut c, &filler, 1, &[("segment.bytes", "1048576"), ("retention.ms", "60000")]).await;

    let start = tern_now_ms();
    // 2.5 MB over 400 keys: two full segments to clean.
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..40 {
        let batch = records(&format!("c{round}"), 64, VALUE_BYTES, |i| format!("key-{}", (round * 64 + i) % 400));
        produce(&mut c, &compacted, batch_of(&batch, start + 8_000)).await.expect("compacted append before the disk is full");
        latest.extend(batch);
    }

    // Fill the disk: ever smaller batches until even one small record finds no free page.
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    let mut refused = 0;
    let mut batch_no = 0;
    for (count, value_len) in [(64, VALUE_BYTES), (4, VALUE_BYTES), (1, 100)] {
        loop {
            batch_no += 1;
            let batch = records(&format!("f{batch_no}"), count, value_len, |i| format!("k{i}"));
            match produce(&mut c, &filler, batch_of(&batch, start - 40_000)).await {
                Ok(base) => acked.extend((base..).zip(batch.into_iter().map(|(_, v)| v))),
                Err(code) => {
                    assert_eq!(code, ResponseError::KafkaStorageError.code(), "a full disk is KAFKA_STORAGE_ERROR");
                    refused += 1;
                    break;
                }
            }
            assert!(batch_no < 100_000, "the disk never filled");
        }
    }
    let filled_in_ms = tern_now_ms() - start;
    println!("disk full after {} acknowledged records in {filled_in_ms} ms; {refused} batch sizes refused", acked.len());
    assert!(filled_in_ms < 8_000, "filling the disk took {filled_in_ms} ms: the compacted segments became cleanable before it was full");
    let refused_batch = batch_of(&records("refused", 1, VALUE_BYTES, |_| "key-0".into()), tern_now_ms());
    assert_eq!(produce(&mut c, &compacted, refused_batch).await, Err(ResponseError::KafkaStorageError.code()));

    // The cleaner runs out of space: each failed pass removes its partial output.
    for seen in 1..=2 {
        wait_until(Duration::from_secs(30), "the cleaner to fail on the full disk", async || {
            (lines_with(&log, "log cleaning failed", &compacted) >= seen).then_some(())
        })
        .await;
        let left = leftovers(&files(&compacted));
        assert!(left.is_empty(), "a failed cleaning pass left {left:?}");
    }

    // Retention deletes the expired segments on the full disk, and appends succeed again.
    wait_until(Duration::from_secs(60), "retention to free the disk", async || {
        (lines_with(&log, "retention removed segments", &filler) >= 1).then_some(())
    })
    .await;
    let after = produce(&mut c, &filler, batch_of(&records("after", 8, VALUE_BYTES, |i| format!("k{i}")), tern_now_ms()))
        .await
        .expect("an append after retention");
    let log_start = earliest(&mut c, &filler).await;
    println!("retention moved the log start to {log_start}; the next append went to offset {after}");
    assert!(log_start > 0 && log_start <= after);

    // A third-party client writes and reads on the same broker process.
    let mut kcat = Command::new("sh");
    kcat.args(["-c", r#"echo kcat-key:kcat-after-full | kcat -b "$1" -P -t "$2" -p 0 -K :"#, "sh", &broker.addr, &filler]);
    run_client(kcat, Duration::from_secs(60)).await;
    let mut kcat = Command::new("kcat");
    kcat.args(["-b", &broker.addr, "-C", "-t", &filler, "-p", "0", "-o", "-1", "-e", "-f", "%k:%s\\n"]);
    let out = run_client(kcat, Duration::from_secs(60)).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "kcat-key:kcat-after-full");

    // Every acknowledged record retention did not remove is there, at its offset.
    let (records, _) = read_partition_from(&mut c, &filler, 0, log_start).await;
    let stored: BTreeMap<i64, String> = records.into_iter().map(|(o, v)| (o, String::from_utf8_lossy(&v).into_owned())).collect();
    let mut checked = 0;
    for (offset, value) in acked.range(log_start..) {
        assert_eq!(stored.get(offset), Some(value), "acknowledged record at offset {offset}");
        checked += 1;
    }
    assert!(checked > 0, "retention left no acknowledged record to check");
    println!("{checked} acknowledged records after the new log start are intact");

    // With space again the cleaner finishes, and the compacted topic keeps every key's last
    // value.
    wait_until(Duration::from_secs(60), "the cleaner to succeed", async || {
        (lines_with(&log, "log cleaned", &compacted) >= 1).then_some(())
    })
    .await;
    // A compacted log keeps empty batches, so it is read with a real consumer.
    let mut kcat = Command::new("kcat");
    kcat.args(["-b", &broker.addr, "-C", "-t", &compacted, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%s\\n"]);
    let out = run_client(kcat, Duration::from_secs(60)).await;
    let kept: std::collections::HashSet<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    let lost: Vec<&String> = latest.iter().filter(|(_, v)| !kept.contains(*v)).map(|(k, _)| k).collect();
    assert!(lost.is_empty(), "the latest values of {lost:?} are gone");
    println!("compacted topic: {} records hold the latest value of all {} keys", kept.len(), latest.len());
    for topic in [&compacted, &filler] {
        let left = leftovers(&files(topic));
        assert!(left.is_empty(), "{topic}: {left:?} left behind");
    }
}
