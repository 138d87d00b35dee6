//! The per-partition log: appends (with idempotent producer checks), reads, rolling,
//! retention and DeleteRecords. Compaction lives in `cleaner`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tern_kafka::batch::{
    set_log_append_time, verify_crc, BatchHeader, Batches, ATTR_TIMESTAMP_TYPE,
    LOG_OVERHEAD,
};
use tern_kafka::error::BatchFault;

use super::cleaner::read_checkpoint;
use super::files::sync_dir;
use super::load::{self, write_log_start};
use super::producer_state::{ProducerState, Verdict};
use super::txn::{self, AbortedTxn, Marker, TxnIndex};
use super::client_rules;
use super::segment::{Segment, SegmentSync};
use super::{Error, FsyncPolicy, LogConfig, Result};

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The timestamp stamped on the batches when the topic uses LogAppendTime.
    pub log_append_time: Option<i64>,
    pub batch_count: usize,
    /// The record set repeated an idempotent producer's batch already in the log: nothing
    /// was written and the offsets are the original ones (Kafka answers such a retry so).
    pub duplicate: bool,
}

/// An fsync of a partition's written-to segments and its directory, prepared under the
/// partition lock by [`PartitionLog::prepare_sync`] and run without it.
pub struct PendingSync {
    segments: Vec<SegmentSync>,
    dir: PathBuf,
}

impl PendingSync {
    /// How many segments it fsyncs.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// The slow part: the fsyncs themselves.
    pub fn run(&self) -> Result<()> {
        for seg in &self.segments {
            seg.run()?;
        }
        match sync_dir(&self.dir) {
            // The topic was deleted while the fsync ran: nothing left to make durable.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            synced => synced.map_err(Error::SyncFailed),
        }
    }
}

/// Whole batches read from the log, with the log's bounds at the time of the read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// A partition's segmented log. Single node: the high watermark is the log end offset.
pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Inactive segments by base offset.
    pub(super) old: BTreeMap<i64, Segment>,
    pub(super) active: Segment,
    pub(super) log_start: i64,
    pub(super) size: u64,
    pub(super) producers: ProducerState,
    /// Open and aborted transactions.
    pub(super) txns: TxnIndex,
    /// Compaction progress: offsets below this are clean; tombstones kept by the cleaner may
    /// be removed from `tombstone_horizon` on.
    pub(super) first_dirty: i64,
    pub(super) tombstone_horizon: Option<i64>,
    /// Why the partition is offline: an fsync failed, so what was written may be lost while
    /// a later fsync could report success. Reads and writes are refused until a restart
    /// recovers the log from its files.
    pub(super) offline: Option<String>,
}

impl PartitionLog {
    /// Opens (creating the directory if needed) and recovers the log.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        let loaded = load::load(dir, &config)?;
        let size = loaded.old.values().map(|s| s.size).sum::<u64>() + loaded.active.size;
        let (first_dirty, tombstone_horizon) = read_checkpoint(dir);
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            old: loaded.old,
            active: loaded.active,
            log_start: loaded.log_start,
            size,
            producers: ProducerState::default(),
            txns: TxnIndex::default(),
            first_dirty,
            tombstone_horizon,
            offline: None,
        };
        log.rebuild_producer_state()?;
        log.rebuild_txns()?;
        Ok(log)
    }

    /// Every transactional batch header from the log start, and each marker's record.
    fn rebuild_txns(&mut self) -> Result<()> {
        let mut txns = TxnIndex::default();
        for seg in self.segments_from(self.log_start) {
            for item in seg.headers_from(0) {
                let (pos, h) = item?;
                if h.last_offset() < self.log_start || !h.is_transactional() {
                    continue;
                }
                let marker = if h.is_control() { txn::marker_of(&seg.read_bytes(pos, h.total_len())?, &h) } else { None };
                txns.observe(&h, marker);
            }
        }
        self.txns = txns;
        Ok(())
    }

    /// The newest producer state snapshot, then every batch header after it.
    fn rebuild_producer_state(&mut self) -> Result<()> {
        let (mut state, from) = match ProducerState::load_snapshot(&self.dir, self.log_end_offset())? {
            Some(found) => found,
            None => (ProducerState::default(), self.log_start),
        };
        // Producers found on disk count as active from now on, for expiry.
        let now = super::wall_clock_ms();
        for seg in self.segments_from(from) {
            for item in seg.headers_from(0) {
                let (_, h) = item?;
                if h.last_offset() >= from {
                    state.update(&h, now);
                }
            }
        }
        state.truncate_head(self.log_start);
        self.producers = state;
        Ok(())
    }

    /// Names the partition in messages to clients, as Kafka's `topic-partition`.
    fn partition_name(&self) -> String {
        self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Validates the whole record set first (all or nothing), assigns offsets, optionally
    /// stamps LogAppendTime, and appends it. The caller's bytes are not changed and, unless
    /// LogAppendTime is stamped (which changes checksummed fields), not copied: the segment
    /// writes each batch's assigned baseOffset beside the rest of the batch.
    pub fn append(
        &mut self,
        records: &[u8],
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendInfo> {
        self.online()?;
        let mut headers = validate(records, self.config.max_message_bytes)?;
        let verdict = self.producers.check(&headers, self.active.next_offset, &self.partition_name())?;
        if let Verdict::Duplicate(b) = verdict {
            return Ok(AppendInfo {
                base_offset: b.first_offset,
                last_offset: b.last_offset,
                log_append_time: log_append_time.then_some(b.timestamp),
                batch_count: 0,
                duplicate: true,
            });
        }
        let span: i64 = headers
            .iter()
            .map(|(_, h)| i64::from(h.last_offset_delta) + 1)
            .sum();
        let len = records.len() as u64;
        if self.active.size > 0 {
            // Positions in the offset index are u32, relative offsets at most i32::MAX.
            let limit = self.config.segment_bytes.min(u64::from(u32::MAX));
            let full = self.active.size.saturating_add(len) > limit;
            let offsets_full =
                self.active.next_offset + span - 1 - self.active.base > i64::from(i32::MAX);
            if full || offsets_full || self.roll_due(now_ms) {
                let rolled = self.roll();
                self.offline_on_sync_failure(rolled)?;
            }
        }
        let base_offset = self.active.next_offset;
        let mut next = base_offset;
        let mut stamped = log_append_time.then(|| records.to_vec());
        for (pos, h) in headers.iter_mut() {
            h.base_offset = next;
            if let Some(copy) = stamped.as_mut() {
                // Validation found each batch inside the record set; `get_mut` keeps it so.
                if let Some(batch) = copy.get_mut(*pos..*pos + h.total_len()) {
                    set_log_append_time(batch, now_ms);
                }
                h.max_timestamp = now_ms;
                h.attributes |= ATTR_TIMESTAMP_TYPE;
            }
            next += i64::from(h.last_offset_delta) + 1;
        }
        let records = stamped.as_deref().unwrap_or(records);
        self.active
            .append(records, &headers, now_ms, self.config.index_interval_bytes)?;
        self.size += len;
        for (pos, h) in &headers {
            self.producers.update(h, now_ms);
            let marker = h.is_control().then(|| txn::marker_of(&records[*pos..*pos + h.total_len()], h)).flatten();
            self.txns.observe(h, marker);
        }
        // Not acknowledged when the fsync fails, and nothing later is: the partition goes offline.
        let synced = self.fsync_after_append();
        self.offline_on_sync_failure(synced)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: log_append_time.then_some(now_ms),
            batch_count: headers.len(),
            duplicate: false,
        })
    }

    /// Appends a client's record set: Kafka's client rules first (see [`client_rules`]), then
    /// [`PartitionLog::append`].
    pub fn append_from_client(&mut self, records: &[u8], now_ms: i64, log_append_time: bool) -> Result<AppendInfo> {
        client_rules::check(records, &self.config, log_append_time, now_ms, &self.partition_name())?;
        self.append(records, now_ms, log_append_time)
    }

    /// Ends a producer's transaction in this partition with a marker, as the transaction
    /// coordinator does on commit or abort (durable by the log's fsync policy, as any append).
    pub fn append_marker(&mut self, producer_id: i64, producer_epoch: i16, marker: Marker, coordinator_epoch: i32, now_ms: i64) -> Result<AppendInfo> {
        let batch = txn::marker_batch(producer_id, producer_epoch, marker, coordinator_epoch, now_ms).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        self.append(&batch, now_ms, false)
    }

    /// The first offset a `read_committed` consumer may not read yet: the start of the oldest
    /// open transaction, or the log end.
    pub fn last_stable_offset(&self) -> i64 {
        self.txns.first_unstable().unwrap_or(self.active.next_offset)
    }

    /// Aborted transactions with records in `[from, to)`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.txns.aborted_between(from, to)
    }

    /// Whether the producer has an open transaction in this partition.
    pub fn has_open_txn(&self, producer_id: i64) -> bool {
        self.txns.is_open(producer_id)
    }

    /// Only the `always` policy fsyncs in the append; `interval` is the broker's background
    /// flusher's, `never` the operating system's.
    fn fsync_after_append(&mut self) -> Result<()> {
        if self.config.fsync == FsyncPolicy::Always {
            self.active.sync()?;
        }
        Ok(())
    }

    /// Refuses everything while the partition is offline.
    fn online(&self) -> Result<()> {
        match &self.offline {
            Some(why) => Err(Error::Offline(why.clone())),
            None => Ok(()),
        }
    }

    /// Takes the partition offline when `result` is a failed fsync.
    fn offline_on_sync_failure<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(Error::SyncFailed(e)) = &result {
            tracing::error!(dir = %self.dir.display(), error = %e, "fsync failed: the partition is offline until the broker restarts");
            self.offline = Some(e.to_string());
        }
        result
    }

    /// Whether an fsync failure took the partition offline.
    pub fn is_offline(&self) -> bool {
        self.offline.is_some()
    }

    fn roll_due(&self, now_ms: i64) -> bool {
        self.active
            .rolling_base_ms
            .is_some_and(|t| now_ms.saturating_sub(t) > self.config.segment_ms)
    }

    /// Seals the active segment and starts a new one at the log end offset.
    fn roll(&mut self) -> Result<()> {
        let sync = self.config.fsync != FsyncPolicy::Never;
        self.active.seal(&self.dir, sync)?;
        let new = Segment::create(&self.dir, self.active.next_offset)?;
        if sync {
            sync_dir(&self.dir).map_err(Error::SyncFailed)?;
        }
        let old = std::mem::replace(&mut self.active, new);
        self.old.insert(old.base, old);
        // Recovery then replays only the new active segment. A lost snapshot costs a longer
        // replay, so a failure here does not fail the append.
        if let Err(e) = self.producers.write_snapshot(&self.dir, self.active.base) {
            tracing::warn!(dir = %self.dir.display(), "cannot write producer state snapshot: {e}");
        }
        Ok(())
    }

    /// Segments that may hold `offset`, then all later ones.
    pub(super) fn segments_from(&self, offset: i64) -> impl Iterator<Item = &Segment> {
        let from = self
            .old
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(k, _)| *k);
        self.old
            .range(from..)
            .map(|(_, s)| s)
            .chain(std::iter::once(&self.active))
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (the first batch alone
    /// even if larger when `min_one`). Stops at a segment end.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<ReadResult> {
        self.online()?;
        let (log_start, log_end) = (self.log_start, self.active.next_offset);
        if offset < log_start || offset > log_end {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let result = |records| ReadResult {
            records,
            log_start_offset: log_start,
            log_end_offset: log_end,
        };
        for seg in self.segments_from(offset) {
            let Some((pos, h)) = seg.find_batch(offset)? else {
                continue;
            };
            let first = h.total_len();
            if first > max_bytes {
                if !min_one {
                    return Ok(result(Bytes::new()));
                }
                return Ok(result(Bytes::from(seg.read_bytes(pos, first)?)));
            }
            let n = (max_bytes as u64).min(seg.size - pos) as usize;
            let mut buf = seg.read_bytes(pos, n)?;
            buf.truncate(whole_batches(&buf));
            return Ok(result(Bytes::from(buf)));
        }
        Ok(result(Bytes::new()))
    }

    /// Every data record from the log start to the end, in order (an internal topic replayed
    /// on start). A batch that does not decode is skipped with a warning naming `what`.
    pub fn replay(&self, what: &str, mut apply: impl FnMut(&kafka_protocol::records::Record)) -> Result<()> {
        use bytes::Buf;
        let end = self.log_end_offset();
        let mut offset = self.log_start_offset();
        while offset < end {
            let read = self.read(offset, 1 << 20, true)?;
            if read.records.is_empty() {
                break;
            }
            let mut buf = read.records;
            let mut next = offset;
            while buf.has_remaining() {
                let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
                    Ok(set) => set,
                    Err(e) => {
                        tracing::warn!(offset = next, "unreadable batch in {what}, skipped: {e}");
                        break;
                    }
                };
                for record in set.records {
                    next = next.max(record.offset + 1);
                    if record.offset >= offset && !record.control {
                        apply(&record);
                    }
                }
            }
            if next <= offset {
                tracing::warn!(offset, "replay of {what} made no progress; stopping");
                break;
            }
            offset = next;
        }
        Ok(())
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// Deletes old segments by time, then by size (Kafka's rules; never the active segment),
    /// and moves the log start offset to the first remaining segment.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize> {
        // A compact-only topic keeps everything the cleaner keeps (Kafka's rule).
        if !self.config.cleanup_delete {
            return Ok(0);
        }
        let olds: Vec<&Segment> = self.old.values().collect();
        let mut doomed = 0;
        if self.config.retention_ms >= 0 {
            while let Some(seg) = olds.get(doomed) {
                if now_ms.saturating_sub(seg.largest_timestamp()?) <= self.config.retention_ms {
                    break;
                }
                doomed += 1;
            }
        }
        if self.config.retention_bytes >= 0 {
            let freed: u64 = olds[..doomed].iter().map(|s| s.size).sum();
            let mut excess = (self.size - freed) as i64 - self.config.retention_bytes;
            while let Some(seg) = olds.get(doomed) {
                if excess - (seg.size as i64) < 0 {
                    break;
                }
                excess -= seg.size as i64;
                doomed += 1;
            }
        }
        if doomed == 0 {
            return Ok(0);
        }
        // Segments first, oldest first, then the log start file: on a full disk the file cannot
        // be written until space is freed. The new start is the first remaining segment's
        // base, which opening the log derives from the files if the file is not rewritten.
        let deleted = (0..doomed).try_for_each(|_| self.delete_oldest());
        let before = self.log_start;
        self.move_log_start(self.old.first_key_value().map_or(self.active.base, |(b, _)| *b));
        // Written even when a deletion failed, so the file matches the segments left.
        if self.log_start > before {
            if let Err(e) = write_log_start(&self.dir, self.log_start) {
                tracing::warn!(dir = %self.dir.display(), "cannot persist the log start offset after retention: {e}");
            }
        }
        deleted?;
        Ok(doomed)
    }

    /// Rolls the active segment if it is non-empty and `segment_ms` has passed since its first
    /// append.
    pub fn roll_if_due(&mut self, now_ms: i64) -> Result<bool> {
        self.online()?;
        if self.active.size > 0 && self.roll_due(now_ms) {
            let rolled = self.roll();
            self.offline_on_sync_failure(rolled)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Kafka DeleteRecords: moves the log start offset forward to `offset` (persisted) and
    /// deletes the segments wholly below it. Returns the log start offset.
    pub fn delete_records(&mut self, offset: i64) -> Result<i64> {
        let log_end = self.log_end_offset();
        if offset < 0 || offset > log_end {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start: self.log_start,
                log_end,
            });
        }
        // Whole segments below the new start go first, so a full disk has room for the log
        // start file; until that file is written the log starts at the first remaining
        // segment, as opening it would find.
        while self
            .old
            .first_key_value()
            .is_some_and(|(_, s)| s.next_offset <= offset)
        {
            self.delete_oldest()?;
        }
        let first_kept = self.old.first_key_value().map_or(self.active.base, |(b, _)| *b);
        self.move_log_start(first_kept.min(offset));
        if offset > self.log_start {
            write_log_start(&self.dir, offset)?;
            self.move_log_start(offset);
        }
        Ok(self.log_start)
    }

    fn move_log_start(&mut self, offset: i64) {
        if offset > self.log_start {
            self.log_start = offset;
            self.producers.truncate_head(offset);
            self.txns.truncate_head(offset);
        }
    }

    fn delete_oldest(&mut self) -> Result<()> {
        if let Some((_, seg)) = self.old.pop_first() {
            self.size -= seg.size;
            seg.delete_files(&self.dir)?;
        }
        Ok(())
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Producer ids with state in this partition.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Forgets idempotent producers idle for `max_idle_ms`; returns how many.
    pub fn expire_producers(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        self.producers.expire(now_ms, max_idle_ms)
    }

    /// Fsyncs every segment written since its last fsync, and the directory.
    pub fn flush(&mut self) -> Result<()> {
        let pending = self.prepare_sync()?;
        let synced = pending.run();
        self.finish_sync(pending, synced)
    }

    /// The first half of [`PartitionLog::flush`]: the handles of the segments written since
    /// their last fsync. Run the [`PendingSync`] without the partition lock, then hand its
    /// result to [`PartitionLog::finish_sync`], so produce and fetch never wait on the disk.
    pub fn prepare_sync(&self) -> Result<PendingSync> {
        self.online()?;
        let mut segments = Vec::new();
        for seg in self.old.values().chain(std::iter::once(&self.active)) {
            if seg.dirty {
                segments.push(seg.prepare_sync()?);
            }
        }
        Ok(PendingSync { segments, dir: self.dir.clone() })
    }

    /// Marks the segments of a finished fsync clean, unless written to since it was prepared;
    /// a failed fsync takes the partition offline, as any other.
    pub fn finish_sync(&mut self, pending: PendingSync, synced: Result<()>) -> Result<()> {
        self.offline_on_sync_failure(synced)?;
        for done in pending.segments {
            let seg = if done.base == self.active.base { Some(&mut self.active) } else { self.old.get_mut(&done.base) };
            if let Some(seg) = seg.filter(|seg| seg.size == done.size) {
                seg.dirty = false;
            }
        }
        Ok(())
    }

    /// Removes the partition directory (topic deletion).
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(dir)?;
        Ok(())
    }
}

/// Checks every batch before anything is written: header, lengths, no trailing bytes, size
/// limit, record count, CRC. Returns each batch's position and header.
fn validate(records: &[u8], max: usize) -> Result<Vec<(usize, BatchHeader)>> {
    if records.is_empty() {
        return Err(Error::InvalidBatch(tern_kafka::Error::MalformedBatch(
            BatchFault::ShortHeader,
        )));
    }
    let mut out = Vec::new();
    for item in Batches::new(records) {
        let (pos, h) = item.map_err(Error::InvalidBatch)?;
        let len = h.total_len();
        if len > max {
            return Err(Error::RecordTooLarge { size: len, max });
        }
        if i64::from(h.record_count) != i64::from(h.last_offset_delta) + 1 {
            return Err(Error::InvalidBatch(tern_kafka::Error::MalformedBatch(
                BatchFault::BadCounts,
            )));
        }
        verify_crc(&records[pos..pos + len]).map_err(Error::InvalidBatch)?;
        out.push((pos, h));
    }
    Ok(out)
}

/// Length of the longest prefix of `buf` made of whole batches (stored data: lengths valid).
fn whole_batches(buf: &[u8]) -> usize {
    let mut end = 0usize;
    while let Some(len) = buf.get(end + 8..end + LOG_OVERHEAD) {
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let Ok(len) = usize::try_from(len) else { break };
        let next = end + LOG_OVERHEAD + len;
        if next > buf.len() {
            break;
        }
        end = next;
    }
    end
}
