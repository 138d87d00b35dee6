//! On-disk storage: one segmented log per partition, modelled on Kafka's `UnifiedLog` and
//! `LogSegment`.
//!
//! A partition directory holds segments named by their base offset (20 digits, zero-padded):
//! `<base>.log` (record batches exactly as produced, with broker-assigned base offsets),
//! `<base>.index` (sparse offset index: relative offset u32 + position u32) and
//! `<base>.timeindex` (sparse time index: max timestamp so far i64 + relative offset u32), plus
//! `log-start-offset` (decimal text, replaced with write-temp-then-rename).
//!
//! The active (last) segment keeps its indexes in memory and is always rebuilt by scanning on
//! open, so nothing but the `.log` file has to survive a crash for it; its index files are
//! written (to a temporary file, then renamed) when it is rolled, and are trusted afterwards
//! when they look sane.
//!
//! Beside the segments: `<offset>.snapshot` (idempotent producers' state as of that offset,
//! see `producer_state`; open and aborted transactions are read from the log itself, see
//! `txn`), `cleaner-checkpoint` (how far the log is compacted, see `cleaner`)
//! and, only while the cleaner swaps segments in, `<base>.log.cleaned` / `<base>.log.swap`.

mod cleaner;
pub mod client_rules;
mod compact;
pub(crate) mod files;
mod index;
mod load;
mod log;
mod producer_state;
mod query;
mod records;
mod scan;
mod segment;
pub mod txn;

#[cfg(test)]
mod tests;

pub use cleaner::{CleanPlan, CleanResult, CleanStats};
pub use log::{AppendInfo, PartitionLog, PendingSync, ReadResult};

use std::time::Duration;

/// The broker's clock in Unix milliseconds, for state the log keeps outside record timestamps.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// When appended data is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every append, before it returns.
    Always,
    /// In the background, every this long, each partition written to since its last fsync
    /// (see `maintenance::flush_on_interval`): no append waits on the disk, and a write is on
    /// disk within about the interval whether or not another follows.
    Interval(Duration),
    /// Never by itself: left to the OS (and to `flush`). Data written by a returned append
    /// still survives a process crash, as it is in the page cache.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    /// `always`, `never`, `interval` (one second), `interval:<n>ms` or `interval:<n>s`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "always" => return Ok(FsyncPolicy::Always),
            "never" => return Ok(FsyncPolicy::Never),
            "interval" => return Ok(FsyncPolicy::Interval(Duration::from_secs(1))),
            _ => {}
        }
        let bad = || {
            format!(
                "invalid fsync policy {s:?}: expected \"always\", \"never\", \"interval\", \
                 \"interval:<n>ms\" or \"interval:<n>s\""
            )
        };
        let spec = t.strip_prefix("interval:").ok_or_else(bad)?;
        let (digits, millis) = if let Some(d) = spec.strip_suffix("ms") {
            (d, true)
        } else if let Some(d) = spec.strip_suffix('s') {
            (d, false)
        } else {
            return Err(bad());
        };
        let n: u64 = digits.trim().parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(format!(
                "invalid fsync policy {s:?}: the interval must be positive"
            ));
        }
        Ok(FsyncPolicy::Interval(if millis {
            Duration::from_millis(n)
        } else {
            Duration::from_secs(n)
        }))
    }
}

/// Per-partition log settings (Kafka's topic configs of the same names).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll the active segment before an append that would take it past this size.
    pub segment_bytes: u64,
    /// Roll the active segment when its first append is older than this.
    pub segment_ms: i64,
    /// Delete segments whose newest record is older than this; -1 keeps them forever.
    pub retention_ms: i64,
    /// Delete the oldest segments while the log stays at least this big without them;
    /// -1 is unlimited.
    pub retention_bytes: i64,
    /// The largest record batch accepted.
    pub max_message_bytes: usize,
    /// Bytes of log data between two entries of the sparse indexes.
    pub index_interval_bytes: usize,
    pub fsync: FsyncPolicy,
    /// `cleanup.policy` holds `delete`: time and size retention remove old segments.
    pub cleanup_delete: bool,
    /// `cleanup.policy` holds `compact`: the cleaner keeps the latest record per key, and
    /// appends of records without a key are refused.
    pub cleanup_compact: bool,
    /// How long a tombstone stays readable after the cleaner first saw it (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// Records younger than this are never compacted (`min.compaction.lag.ms`).
    pub min_compaction_lag_ms: i64,
    /// A dirty segment older than this is compacted whatever the dirty ratio
    /// (`max.compaction.lag.ms`).
    pub max_compaction_lag_ms: i64,
    /// Share of the cleanable bytes that must be dirty before a cleaning pass
    /// (`min.cleanable.dirty.ratio`).
    pub min_cleanable_dirty_ratio: f64,
    /// How far in the past (`message.timestamp.before.max.ms`) and the future
    /// (`message.timestamp.after.max.ms`) a producer's CreateTime timestamp may lie.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
            fsync: FsyncPolicy::Never,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            // Kafka 4.x's defaults: no limit in the past, one hour ahead (KIP-1030).
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An fsync failed. What it was to make durable may be lost, and the kernel forgets the
    /// failure, so a later fsync could report success: the partition goes offline (Kafka:
    /// KAFKA_STORAGE_ERROR until the broker restarts and recovers the log from its files).
    #[error("fsync failed: {0}")]
    SyncFailed(#[source] std::io::Error),
    /// The partition went offline after a failed fsync; it serves nothing until a restart.
    #[error("partition is offline since an fsync failed ({0}); restart the broker to recover it")]
    Offline(String),
    /// Bad header, length or CRC in appended data (Kafka: CORRUPT_MESSAGE).
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[source] tern_kafka::Error),
    /// A batch larger than `max_message_bytes` (Kafka: MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    #[error("offset {offset} is out of range: the log holds offsets {log_start} to {log_end} (exclusive)")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// On-disk state that cannot be recovered automatically; the message names the file.
    #[error("corrupt log: {0}")]
    Corrupt(String),
    /// A batch Kafka refuses from a client (base offset, counts, control batches, sequence;
    /// Kafka: INVALID_RECORD), with Kafka's message.
    #[error("{0}")]
    InvalidRecordBatch(String),
    /// Records the log's settings refuse: without a key in a compacted topic (INVALID_RECORD),
    /// a timestamp out of range (INVALID_TIMESTAMP when any is). Every refused record is listed.
    #[error("{}", record_errors_summary(*timestamp, errors))]
    RecordErrors { timestamp: bool, errors: Vec<client_rules::RecordError> },
    /// A gap or repeat in an idempotent producer's sequence numbers
    /// (Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("{0}")]
    OutOfOrderSequence(String),
    /// A batch from an older epoch of a producer (Kafka: INVALID_PRODUCER_EPOCH).
    #[error("{0}")]
    InvalidProducerEpoch(String),
    /// A transactional batch outside a transaction the coordinator knows of
    /// (Kafka: INVALID_TXN_STATE).
    #[error("{0}")]
    TransactionalBatch(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The partition-level message Kafka sends with record errors (`processRecordErrors`).
fn record_errors_summary(timestamp: bool, errors: &[client_rules::RecordError]) -> String {
    if timestamp {
        return "One or more records have been rejected due to invalid timestamp".into();
    }
    let shown: Vec<String> = errors.iter().take(3).map(|e| format!("RecordError(batchIndex={}, message='{}')", e.index, e.message)).collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    )
}

/// What the broker does with a client's record set before it touches a log, for fuzzing:
/// Kafka's client rules (for a plain, a compacted and a LogAppendTime topic) and the
/// record-level reads of each batch (ListOffsets by timestamp, the cleaner's parse). Returns;
/// never panics, whatever the bytes.
#[doc(hidden)]
pub fn fuzz_client_records(records: &[u8]) {
    let now = 1_800_000_000_000;
    let compacted = LogConfig { cleanup_compact: true, ..LogConfig::default() };
    for (config, append_time) in [(LogConfig::default(), false), (compacted, false), (LogConfig::default(), true)] {
        let _ = client_rules::check(records, &config, append_time, now, "fuzz-0");
    }
    for item in tern_kafka::batch::Batches::new(records) {
        let Ok((at, h)) = item else { break };
        let batch = &records[at..at + h.total_len()];
        let _ = records::record_times(batch, &h);
        if let Ok(body) = records::batch_body(batch, &h) {
            let _ = records::parse_records(&body, h.record_count);
        }
    }
}
