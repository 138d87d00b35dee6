//! Log compaction for `cleanup.policy=compact`, after Kafka's `LogCleaner`.
//!
//! A pass has three steps, so that appends and reads wait only for the first and the last:
//! 1. [`PartitionLog::plan_cleaning`] (under the partition lock) picks the sealed segments below
//!    the first uncleanable offset (the active segment and anything younger than
//!    `min.compaction.lag.ms` are never touched) when enough of them is dirty.
//! 2. [`CleanPlan::run`] (no lock) maps each key of the dirty part to its latest offset, then
//!    writes each group of consecutive segments as one `<base>.log.cleaned` file.
//! 3. [`PartitionLog::finish_cleaning`] (under the lock) swaps the cleaned files in.
//!
//! The swap is crash-safe as Kafka's is: the fsynced `.cleaned` file is renamed to `.swap`
//! (the commit point), the old segments are deleted, and `.swap` is renamed to `.log`. On
//! open, a `.cleaned` file is deleted, and a `.swap` file finishes its swap: it replaces every
//! segment whose base offset lies in its offset range. The last batch of a group is always
//! kept (empty if need be) so that range ends where the group ended.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tern_kafka::batch::{BatchHeader, HEADER_LEN};

use super::compact::{drop_aborted, filter_batch, map_batch, Filter, Filtered, OffsetMap};
use super::files::{replace_file, sync_dir, tmp_path};
use super::log::PartitionLog;
use super::scan::{ChunkReader, SCAN_CHUNK};
use super::segment::{segment_path, Segment};
use super::{Error, FsyncPolicy, Result};

const CHECKPOINT_FILE: &str = "cleaner-checkpoint";

/// A sealed segment to clean, read through its own handle (the file may be unlinked by
/// retention meanwhile; the pass then drops that group at the swap).
struct Source {
    base: i64,
    size: u64,
    file: File,
}

/// The work of one pass, taken from the log under its lock.
pub struct CleanPlan {
    dir: PathBuf,
    sources: Vec<Source>,
    /// Offsets from here on are dirty (not compacted yet).
    first_dirty: i64,
    /// The first uncleanable offset.
    end: i64,
    now_ms: i64,
    delete_retention_ms: i64,
    max_group_bytes: u64,
    /// Last offset of every live idempotent producer: those batches are kept, at least empty.
    producer_last_offsets: HashMap<i64, i64>,
    /// Aborted transactions: their records neither count as a key's latest nor survive.
    aborted: Vec<super::txn::AbortedTxn>,
}

impl CleanPlan {
    /// Whether a data batch belongs to an aborted transaction (Kafka's cleaner drops those).
    fn aborted(&self, h: &tern_kafka::batch::BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted.iter().any(|a| a.producer_id == h.producer_id && a.first_offset <= h.base_offset && h.base_offset < a.last_offset)
    }
}

struct CleanedGroup {
    /// Base offset and size of each replaced segment.
    members: Vec<(i64, u64)>,
}

/// Cleaned files ready to swap in.
pub struct CleanResult {
    groups: Vec<CleanedGroup>,
    end: i64,
    tombstone_horizon: Option<i64>,
    stats: CleanStats,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_read: usize,
    pub segments_replaced: usize,
    pub records_read: usize,
    pub records_kept: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// How far a swap goes before stopping; tests stop it early to play a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SwapStep {
    Cleaned,
    Renamed,
    OldDeleted,
    Done,
}

impl PartitionLog {
    /// The next cleaning pass, or `None` when the log is not compacted or not dirty enough.
    pub fn plan_cleaning(&self, now_ms: i64) -> Result<Option<CleanPlan>> {
        let c = &self.config;
        if !c.cleanup_compact || self.old.is_empty() || self.is_offline() {
            return Ok(None);
        }
        let mut end = self.active.base;
        let mut sources = Vec::new();
        // Open transactions may still abort: cleaning stops before the last stable offset.
        let stable = self.last_stable_offset();
        for seg in self.old.values() {
            if seg.next_offset > stable {
                end = seg.base;
                break;
            }
            if c.min_compaction_lag_ms > 0 && seg.largest_timestamp()? > now_ms.saturating_sub(c.min_compaction_lag_ms) {
                end = seg.base;
                break;
            }
            sources.push(seg);
        }
        if sources.is_empty() {
            return Ok(None);
        }
        let first_dirty = self.first_dirty.clamp(sources[0].base, end);
        let next_base = |i: usize| sources.get(i + 1).map_or(end, |s| s.base);
        let (mut dirty, mut total, mut overdue) = (0u64, 0u64, false);
        for (i, seg) in sources.iter().enumerate() {
            total += seg.size;
            if next_base(i) > first_dirty {
                dirty += seg.size;
                overdue |= c.max_compaction_lag_ms < i64::MAX
                    && seg.largest_timestamp()? < now_ms.saturating_sub(c.max_compaction_lag_ms);
            }
        }
        let ratio = if total == 0 { 0.0 } else { dirty as f64 / total as f64 };
        let tombstones_due = self.tombstone_horizon.is_some_and(|h| h <= now_ms);
        if !((dirty > 0 && ratio >= c.min_cleanable_dirty_ratio) || overdue || tombstones_due) {
            return Ok(None);
        }
        let sources = sources
            .iter()
            .map(|s| Ok(Source { base: s.base, size: s.size, file: s.file_handle()? }))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(CleanPlan {
            dir: self.dir.clone(),
            sources,
            first_dirty,
            end,
            now_ms,
            delete_retention_ms: c.delete_retention_ms,
            max_group_bytes: c.segment_bytes.min(u64::from(u32::MAX) / 2),
            producer_last_offsets: self.producers.last_offsets(),
            aborted: self.txns.aborted_between(self.log_start, end),
        }))
    }

    /// Swaps the cleaned segments in and records how far the log is clean.
    pub fn finish_cleaning(&mut self, result: CleanResult) -> Result<CleanStats> {
        self.finish_cleaning_until(result, SwapStep::Done)
    }

    pub(crate) fn finish_cleaning_until(&mut self, result: CleanResult, stop: SwapStep) -> Result<CleanStats> {
        let bases: Vec<i64> = result.groups.iter().map(|g| g.members[0].0).collect();
        let finished = self.swap_in(result, stop);
        if finished.is_err() {
            // Cleaned files not yet swapped in are dropped: on a full disk they hold space.
            for base in bases {
                let _ = remove_if_exists(&segment_path(&self.dir, base, "log.cleaned"));
            }
        }
        finished
    }

    fn swap_in(&mut self, result: CleanResult, stop: SwapStep) -> Result<CleanStats> {
        let mut stats = result.stats;
        for g in result.groups {
            let base = g.members[0].0;
            let cleaned = segment_path(&self.dir, base, "log.cleaned");
            // Retention or DeleteRecords may have removed a segment meanwhile.
            if !g.members.iter().all(|(b, size)| self.old.get(b).is_some_and(|s| s.size == *size)) {
                remove_if_exists(&cleaned)?;
                continue;
            }
            if stop == SwapStep::Cleaned {
                return Ok(stats);
            }
            let last = g.members[g.members.len() - 1].0;
            let next_base = self.old.range(last + 1..).next().map_or(self.active.base, |(b, _)| *b);
            let swap = segment_path(&self.dir, base, "log.swap");
            fs::rename(&cleaned, &swap)?;
            if stop == SwapStep::Renamed {
                return Ok(stats);
            }
            // Past the commit point: a failure here leaves the group's data out of the log in
            // memory, so the partition goes offline and opening it again completes the swap.
            let swapped = self.replace_group(&g, &swap, next_base, stop);
            if let Err(e) = &swapped {
                tracing::error!(dir = %self.dir.display(), error = %e, "segment swap failed: the partition is offline until the broker restarts");
                self.offline = Some(format!("segment swap failed: {e}"));
            }
            if !swapped? {
                return Ok(stats);
            }
            stats.segments_replaced += g.members.len();
        }
        self.first_dirty = result.end;
        self.tombstone_horizon = result.tombstone_horizon;
        write_checkpoint(&self.dir, self.first_dirty, self.tombstone_horizon)?;
        Ok(stats)
    }

    /// Replaces a group's segments by its `.swap` file; `false` when `stop` ended it early.
    fn replace_group(&mut self, g: &CleanedGroup, swap: &Path, next_base: i64, stop: SwapStep) -> Result<bool> {
        sync_dir(&self.dir).map_err(Error::SyncFailed)?;
        let base = g.members[0].0;
        for (b, _) in &g.members {
            if let Some(seg) = self.old.remove(b) {
                self.size -= seg.size;
                seg.delete_files(&self.dir)?;
            }
        }
        if stop == SwapStep::OldDeleted {
            return Ok(false);
        }
        fs::rename(swap, segment_path(&self.dir, base, "log"))?;
        sync_dir(&self.dir).map_err(Error::SyncFailed)?;
        let sync = self.config.fsync != FsyncPolicy::Never;
        let seg = Segment::open_sealed(&self.dir, base, next_base, self.config.index_interval_bytes, sync)?;
        self.size += seg.size;
        self.old.insert(base, seg);
        Ok(true)
    }

    /// A whole pass under `&mut self` (tests and tools; the broker runs the steps apart).
    pub fn clean(&mut self, now_ms: i64) -> Result<Option<CleanStats>> {
        match self.plan_cleaning(now_ms)? {
            Some(plan) => Ok(Some(self.finish_cleaning(plan.run()?)?)),
            None => Ok(None),
        }
    }
}

impl CleanPlan {
    /// Builds the offset map and writes the cleaned files; reads and writes files only.
    pub fn run(self) -> Result<CleanResult> {
        let result = self.write_cleaned();
        if result.is_err() {
            // A failed pass (a full disk, say) leaves no partial file behind.
            for group in self.group_sources() {
                let _ = remove_if_exists(&segment_path(&self.dir, group[0].base, "log.cleaned"));
            }
        }
        result
    }

    fn write_cleaned(&self) -> Result<CleanResult> {
        let mut stats = CleanStats::default();
        let mut map = OffsetMap::new();
        for src in &self.sources {
            for_each_batch(&self.dir, src, |batch, h| {
                if h.last_offset() >= self.first_dirty && !self.aborted(h) {
                    map_batch(batch, h, &mut map).map_err(|e| corrupt(&self.dir, src, h, e))?;
                }
                Ok(())
            })?;
        }
        let filter = Filter { map: &map, now_ms: self.now_ms, delete_retention_ms: self.delete_retention_ms };
        let mut groups = Vec::new();
        let mut horizon: Option<i64> = None;
        for group in self.group_sources() {
            let (changed, group_horizon) = self.write_group(group, &filter, &mut stats)?;
            horizon = min_opt(horizon, group_horizon);
            if changed || group.len() > 1 {
                groups.push(CleanedGroup { members: group.iter().map(|s| (s.base, s.size)).collect() });
            } else {
                remove_if_exists(&segment_path(&self.dir, group[0].base, "log.cleaned"))?;
            }
        }
        Ok(CleanResult { groups, end: self.end, tombstone_horizon: horizon, stats })
    }

    /// Consecutive segments whose data fits one segment, as Kafka groups them.
    fn group_sources(&self) -> Vec<&[Source]> {
        let mut groups = Vec::new();
        let mut start = 0;
        while start < self.sources.len() {
            let mut end = start + 1;
            let mut bytes = self.sources[start].size;
            while let Some(next) = self.sources.get(end) {
                let span_end = self.sources.get(end + 1).map_or(self.end, |s| s.base);
                if bytes + next.size > self.max_group_bytes || span_end - self.sources[start].base > i64::from(i32::MAX) {
                    break;
                }
                bytes += next.size;
                end += 1;
            }
            groups.push(&self.sources[start..end]);
            start = end;
        }
        groups
    }

    /// Writes `<base>.log.cleaned` for a group; says whether anything changed and the earliest
    /// delete horizon of the tombstones kept.
    fn write_group(&self, group: &[Source], filter: &Filter<'_>, stats: &mut CleanStats) -> Result<(bool, Option<i64>)> {
        let path = segment_path(&self.dir, group[0].base, "log.cleaned");
        let mut out = BufWriter::new(File::create(&path)?);
        let (mut changed, mut horizon) = (false, None);
        for (i, src) in group.iter().enumerate() {
            let last_source = i + 1 == group.len();
            stats.segments_read += 1;
            stats.bytes_read += src.size;
            let mut pos = 0u64;
            for_each_batch(&self.dir, src, |batch, h| {
                pos += batch.len() as u64;
                let last_of_producer = h.producer_id >= 0 && self.producer_last_offsets.get(&h.producer_id) == Some(&h.last_offset());
                let retain_empty = last_of_producer || (last_source && pos == src.size);
                let outcome = if self.aborted(h) { drop_aborted(h, retain_empty) } else { filter_batch(batch, h, filter, retain_empty) };
                let outcome = outcome.map_err(|e| corrupt(&self.dir, src, h, e))?;
                stats.records_read += outcome.records_read;
                stats.records_kept += outcome.records_kept;
                horizon = min_opt(horizon, outcome.tombstone_horizon);
                let written: &[u8] = match &outcome.filtered {
                    Filtered::Keep => batch,
                    Filtered::Drop => &[],
                    Filtered::Rewrite { batch, .. } => batch,
                };
                changed |= !matches!(outcome.filtered, Filtered::Keep);
                out.write_all(written)?;
                stats.bytes_written += written.len() as u64;
                Ok(())
            })?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((changed, horizon))
    }
}

/// Calls `f` with every batch of a source segment, in order.
fn for_each_batch(dir: &Path, src: &Source, mut f: impl FnMut(&[u8], &BatchHeader) -> Result<()>) -> Result<()> {
    let mut reader = ChunkReader::new(&src.file, src.size, SCAN_CHUNK);
    let mut pos = 0u64;
    while pos < src.size {
        let bad = |why: &str| Error::Corrupt(format!("{}: position {pos}: {why}", segment_path(dir, src.base, "log").display()));
        let head = reader.get(pos, HEADER_LEN)?.ok_or_else(|| bad("partial batch header"))?;
        let h = BatchHeader::parse(head).map_err(|e| bad(&e.to_string()))?;
        let batch = reader.get(pos, h.total_len())?.ok_or_else(|| bad("batch runs past the end of the segment"))?;
        f(batch, &h)?;
        pos += h.total_len() as u64;
    }
    Ok(())
}

fn corrupt(dir: &Path, src: &Source, h: &BatchHeader, why: String) -> Error {
    Error::Corrupt(format!("{}: batch at offset {}: {why}", segment_path(dir, src.base, "log").display(), h.base_offset))
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Finishes swaps a crash interrupted and drops unfinished cleaned files; runs before the
/// segments of `dir` are listed.
pub(super) fn recover_interrupted_cleaning(dir: &Path) -> Result<()> {
    let mut swaps = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".log.cleaned") {
            fs::remove_file(entry.path())?;
        } else if let Some(stem) = name.strip_suffix(".log.swap") {
            if let Ok(base) = stem.parse::<i64>() {
                swaps.push((base, entry.path()));
            }
        }
    }
    swaps.sort();
    for (base, path) in swaps {
        let end = swap_end(&path)?;
        tracing::warn!(file = %path.display(), base, end, "completing a segment swap interrupted by a crash");
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else { continue };
            let replaced = stem.len() == 20 && stem.parse::<i64>().is_ok_and(|b| b >= base && b < end);
            if replaced && matches!(ext, "log" | "index" | "timeindex") {
                fs::remove_file(entry.path())?;
            }
        }
        fs::rename(&path, segment_path(dir, base, "log"))?;
        sync_dir(dir)?;
    }
    Ok(())
}

/// The offset after the last batch of a swap file.
fn swap_end(path: &Path) -> Result<i64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = ChunkReader::new(&file, len, SCAN_CHUNK);
    let (mut pos, mut end) = (0u64, 0i64);
    while let Some(head) = reader.get(pos, HEADER_LEN)? {
        let Ok(h) = BatchHeader::parse(head) else { break };
        end = h.last_offset() + 1;
        pos += h.total_len() as u64;
    }
    if pos != len {
        return Err(Error::Corrupt(format!("{}: swap file ends in a partial batch at {pos}", path.display())));
    }
    Ok(end)
}

/// The persisted first dirty offset and earliest tombstone horizon (absent or unreadable:
/// everything is dirty, which costs one full pass and is otherwise harmless).
pub(super) fn read_checkpoint(dir: &Path) -> (i64, Option<i64>) {
    let text = fs::read_to_string(dir.join(CHECKPOINT_FILE)).unwrap_or_default();
    let mut parts = text.split_whitespace().map(str::parse::<i64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(dirty)), Some(Ok(h))) => (dirty, (h >= 0).then_some(h)),
        _ => (0, None),
    }
}

fn write_checkpoint(dir: &Path, first_dirty: i64, horizon: Option<i64>) -> std::io::Result<()> {
    let path = dir.join(CHECKPOINT_FILE);
    replace_file(&tmp_path(&path), &path, format!("{first_dirty} {}\n", horizon.unwrap_or(-1)).as_bytes(), false)?;
    Ok(())
}
