//! kill -9 at arbitrary moments: a child process (this test binary, running the ignored
//! `crash_child` test) appends as fast as it can and reports each acknowledged offset; the
//! parent kills it with SIGKILL and checks that the reopened log has every acknowledged record
//! (above the last acknowledged DeleteRecords start), once, in order, and that appends continue
//! from the right offset.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use super::super::{LogConfig, PartitionLog};
use super::{batch_ts, read_all, CODECS};

const DIR_VAR: &str = "TERN_STORAGE_CRASH_DIR";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 6000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

/// A batch of `n` records whose values carry the batch's future base offset and the record's
/// index in it, so duplicates or gaps show.
fn numbered_batch(first: i64, n: usize, i: usize) -> Vec<u8> {
    let ts: Vec<i64> = (0..n as i64).map(|k| 1_000_000 + first + k).collect();
    batch_ts(&ts, CODECS[i % CODECS.len()], &format!("o{first}"))
}

#[test]
#[ignore = "run as a child process by kill_9_loses_no_acknowledged_append"]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let mut log = PartitionLog::open(std::path::Path::new(&dir), config()).expect("open");
    let mut out = std::io::stdout().lock();
    for i in 0..200_000usize {
        let first = log.log_end_offset();
        let mut b = numbered_batch(first, 1 + i % 5, i);
        let info = log.append(&mut b, 0, false).expect("append");
        assert_eq!(info.base_offset, first);
        writeln!(out, "acked {}", info.last_offset).expect("stdout");
        if i % 250 == 249 {
            // DeleteRecords now and then: moves the start and deletes whole segments.
            let start = log
                .delete_records(info.last_offset - 40)
                .expect("delete records");
            writeln!(out, "start {start}").expect("stdout");
        }
        out.flush().expect("flush");
    }
}

#[test]
fn kill_9_loses_no_acknowledged_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    // The test's path without the crate name, wherever this module is mounted.
    let module = module_path!().split_once("::").expect("crate::module").1;
    let child_test = format!("{module}::crash_child");
    let (mut acked, mut start) = (-1i64, 0i64);
    for (round, wait_for) in [40usize, 333, 97, 1200, 5, 777].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([
                child_test.as_str(),
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if let Some(n) = line.strip_prefix("start ") {
                start = start.max(n.parse().expect("offset"));
            }
            if let Some(n) = line.strip_prefix("acked ") {
                acked = acked.max(n.parse().expect("offset"));
                seen += 1;
                if seen == wait_for {
                    child.kill().expect("SIGKILL");
                    break;
                }
            }
        }
        child.wait().expect("wait");
        assert_eq!(seen, wait_for, "round {round}: the child stopped early");

        let mut log = PartitionLog::open(dir.path(), config()).expect("reopen after kill");
        assert!(
            log.log_end_offset() > acked,
            "round {round}: acked {acked}, end {}",
            log.log_end_offset()
        );
        let log_start = log.log_start_offset();
        assert!(
            log_start >= start,
            "round {round}: start {log_start}, acked {start}"
        );
        start = log_start;
        let records = read_all(&log);
        assert_eq!(
            records.len() as i64,
            log.log_end_offset() - log_start,
            "round {round}"
        );
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.0, log_start + i as i64);
            // "o<base offset>-<index in batch>-xxx"
            let mut parts = r.2.split('-');
            let first: i64 = parts
                .next()
                .expect("tag")
                .trim_start_matches('o')
                .parse()
                .expect("base");
            let k: i64 = parts.next().expect("index").parse().expect("index");
            assert_eq!(first + k, r.0, "round {round}: record {} is {}", r.0, r.2);
            assert_eq!(r.1, 1_000_000 + r.0, "round {round}: timestamp of {}", r.0);
        }
        let end = log.log_end_offset();
        let info = log
            .append(&mut numbered_batch(end, 2, round), 0, false)
            .expect("append after recovery");
        assert_eq!(info.base_offset, end);
        acked = info.last_offset;
    }
}
