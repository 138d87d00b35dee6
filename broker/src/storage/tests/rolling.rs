//! Rolling segments by size and age, reads across segments, configuration changes.

use kafka_protocol::records::Compression;
use tern_kafka::batch::BatchHeader;

use super::super::{LogConfig, PartitionLog};
use super::{batch, decode, read_all, segment_files};

fn open(dir: &std::path::Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).expect("open")
}

#[test]
fn rolls_by_segment_bytes_and_reads_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let mut expected = Vec::new();
    for i in 0..40 {
        let codec = super::CODECS[i % 5];
        let mut b = batch(1000 + 100 * i as i64, 1 + i % 4, codec, &format!("v{i}"));
        let info = log.append(&mut b, 0, false).expect("append");
        for (j, o) in (info.base_offset..=info.last_offset).enumerate() {
            expected.push((
                o,
                1000 + 100 * i as i64 + 10 * j as i64,
                format!("v{i}-{j}-{}", "x".repeat(40)),
            ));
        }
    }
    let logs = segment_files(dir.path(), "log");
    assert!(logs.len() >= 5, "only {} segments", logs.len());
    let mut total = 0;
    for (k, path) in logs.iter().enumerate() {
        let len = std::fs::metadata(path).expect("meta").len();
        assert!(len <= 1000, "segment {path:?} has {len} bytes");
        total += len;
        if k + 1 < logs.len() {
            // Sealed segments have both index files.
            assert!(
                path.with_extension("index").exists() && path.with_extension("timeindex").exists()
            );
        }
    }
    assert_eq!(total, log.size_bytes());
    assert_eq!(read_all(&log), expected);
    // Every offset reads back the batch holding it, whichever segment it is in.
    for &(o, ..) in &expected {
        let r = log.read(o, 1, true).expect("read");
        let recs = decode(&r.records);
        assert!(recs.first().expect("record").0 <= o && recs.last().expect("record").0 >= o);
    }
    // A segment's base offset is its file name.
    let second = logs[1]
        .file_stem()
        .expect("stem")
        .to_string_lossy()
        .parse::<i64>()
        .expect("base");
    let r = log.read(second, 1, true).expect("read");
    assert_eq!(
        BatchHeader::parse(&r.records).expect("header").base_offset,
        second
    );
}

#[test]
fn rolls_by_segment_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let t0 = 1_700_000_000_000;
    assert!(
        !log.roll_if_due(t0).expect("roll"),
        "an empty segment is never rolled"
    );
    log.append(&mut batch(t0, 2, Compression::None, "a"), t0, false)
        .expect("append");
    log.append(&mut batch(t0, 2, Compression::None, "b"), t0 + 500, false)
        .expect("append");
    log.append(&mut batch(t0, 2, Compression::None, "c"), t0 + 1000, false)
        .expect("append");
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    // Due: the append rolls first, so the new batch starts the second segment.
    log.append(&mut batch(t0, 2, Compression::None, "d"), t0 + 1001, false)
        .expect("append");
    let logs = segment_files(dir.path(), "log");
    assert_eq!(logs.len(), 2);
    assert!(logs[1].ends_with("00000000000000000006.log"));
    assert!(!log.roll_if_due(t0 + 2000).expect("roll"));
    assert!(log.roll_if_due(t0 + 2002).expect("roll"));
    assert_eq!(segment_files(dir.path(), "log").len(), 3);
    assert!(
        !log.roll_if_due(t0 + 9999).expect("roll"),
        "the new segment is empty"
    );
    assert_eq!(read_all(&log).len(), 8);
}

#[test]
fn config_can_change_and_delete_removes_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let part = dir.path().join("topic-0");
    let mut log = open(&part, LogConfig::default());
    assert!(part.is_dir());
    log.append(&mut batch(1, 3, Compression::None, "a"), 0, false)
        .expect("append");
    log.set_config(LogConfig {
        segment_bytes: 1,
        ..LogConfig::default()
    });
    assert_eq!(log.config().segment_bytes, 1);
    log.append(&mut batch(1, 3, Compression::None, "b"), 0, false)
        .expect("append");
    assert_eq!(segment_files(&part, "log").len(), 2);
    log.delete().expect("delete");
    assert!(!part.exists());
}
