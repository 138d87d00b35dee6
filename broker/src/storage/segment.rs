//! One log segment: a `.log` file of record batches with its offset and time indexes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use tern_kafka::batch::{verify_crc, BatchHeader, HEADER_LEN};

use super::index::{Index, OffsetEntry, TimeEntry};
use super::scan::{ChunkReader, Headers, SCAN_CHUNK};
use super::{Error, Result};

/// Kafka's "no timestamp" value; the starting point of a segment's max timestamp.
pub(crate) const NO_TIMESTAMP: i64 = -1;

pub(crate) fn segment_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Last offset of a batch, saturating (the header may come from a damaged file).
pub(crate) fn last_offset(h: &BatchHeader) -> i64 {
    h.base_offset.saturating_add(i64::from(h.last_offset_delta))
}

pub(crate) struct Segment {
    pub base: i64,
    log_path: PathBuf,
    file: File,
    /// Bytes of valid data (the file is never longer once recovered).
    pub size: u64,
    /// Offset after the last batch; `base` when empty.
    pub next_offset: i64,
    offset_index: Index<OffsetEntry>,
    time_index: Index<TimeEntry>,
    /// Largest batch max timestamp, and the base offset of the first batch that reached it.
    pub max_ts: i64,
    pub max_ts_offset: i64,
    /// When the segment got its first data, for `segment_ms` rolling.
    pub rolling_base_ms: Option<i64>,
    bytes_since_index: usize,
    last_time_entry: i64,
    /// Written to since the last fsync.
    pub dirty: bool,
}

/// Fsyncs a segment's data; a failure is [`Error::SyncFailed`].
fn sync_data(file: &File) -> Result<()> {
    #[cfg(test)]
    if tests::FAIL_SYNC.with(|f| f.get()) {
        return Err(Error::SyncFailed(io::Error::other("injected fsync failure")));
    }
    file.sync_data().map_err(Error::SyncFailed)
}

/// An fsync of one segment prepared under the partition lock: its files, and its size when
/// prepared, so that only a segment nobody wrote to meanwhile counts as clean afterwards.
pub(crate) struct SegmentSync {
    pub base: i64,
    pub size: u64,
    log: File,
    indexes: Vec<File>,
}

impl SegmentSync {
    pub fn run(&self) -> Result<()> {
        sync_data(&self.log)?;
        for index in &self.indexes {
            index.sync_data().map_err(Error::SyncFailed)?;
        }
        Ok(())
    }
}

/// How a scan ended early: position and reason.
type Stop = Option<(u64, String)>;

impl Segment {
    fn new(dir: &Path, base: i64, file: File) -> Segment {
        Segment {
            base,
            log_path: segment_path(dir, base, "log"),
            file,
            size: 0,
            next_offset: base,
            offset_index: Index::in_memory(Vec::new()),
            time_index: Index::in_memory(Vec::new()),
            max_ts: NO_TIMESTAMP,
            max_ts_offset: base,
            rolling_base_ms: None,
            bytes_since_index: 0,
            last_time_entry: NO_TIMESTAMP,
            dirty: false,
        }
    }

    /// A new, empty active segment.
    pub fn create(dir: &Path, base: i64) -> io::Result<Segment> {
        let path = segment_path(dir, base, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Segment::new(dir, base, file))
    }

    /// Opens the last segment: scans it from the start, truncates it at the first torn or
    /// corrupt batch and rebuilds its indexes in memory (its index files are not trusted).
    pub fn open_active(dir: &Path, base: i64, interval: usize) -> Result<Segment> {
        let path = segment_path(dir, base, "log");
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let file_len = file.metadata()?.len();
        let mut seg = Segment::new(dir, base, file);
        let stop = seg.scan_and_index(file_len, interval, true)?;
        if let Some((pos, reason)) = stop {
            tracing::warn!(
                file = %path.display(), position = pos, reason = %reason,
                "truncating torn or corrupt tail of the active log segment"
            );
            seg.file.set_len(pos)?;
            seg.file.sync_all()?;
        }
        if seg.size > 0 {
            let mtime = seg.mtime_ms()?;
            let first_ts = seg
                .headers_from(0)
                .next()
                .transpose()?
                .map(|(_, h)| h.max_timestamp);
            seg.rolling_base_ms = Some(match first_ts {
                Some(ts) if ts >= 0 => ts.min(mtime),
                _ => mtime,
            });
        }
        Ok(seg)
    }

    /// Opens an older segment covering offsets `base..next_base`. Its index files are used when
    /// sane, otherwise rebuilt from a structural scan (a broken batch chain is `Corrupt`).
    pub fn open_sealed(
        dir: &Path,
        base: i64,
        next_base: i64,
        interval: usize,
        sync: bool,
    ) -> Result<Segment> {
        let path = segment_path(dir, base, "log");
        let file = OpenOptions::new().read(true).open(&path)?;
        let file_len = file.metadata()?.len();
        let span = next_base.saturating_sub(base);
        let oi = Index::<OffsetEntry>::open_sealed(&segment_path(dir, base, "index"), |e| {
            i64::from(e.rel_offset) < span && u64::from(e.position) < file_len
        })?;
        let ti = Index::<TimeEntry>::open_sealed(&segment_path(dir, base, "timeindex"), |e| {
            i64::from(e.rel_offset) < span
        })?;
        let mut seg = Segment::new(dir, base, file);
        if let (Some(oi), Some(ti)) = (oi, ti) {
            if let Some(last) = ti.last()? {
                seg.max_ts = last.timestamp;
                seg.max_ts_offset = base + i64::from(last.rel_offset);
            }
            seg.offset_index = oi;
            seg.time_index = ti;
            seg.size = file_len;
            seg.next_offset = next_base;
            return Ok(seg);
        }
        tracing::info!(file = %path.display(), "rebuilding index files of log segment");
        if let Some((pos, reason)) = seg.scan_and_index(file_len, interval, false)? {
            return Err(Error::Corrupt(format!(
                "{}: position {pos}: {reason}",
                path.display()
            )));
        }
        if seg.next_offset > next_base {
            return Err(Error::Corrupt(format!(
                "{}: ends at offset {} past the next segment's base offset {next_base}",
                path.display(),
                seg.next_offset
            )));
        }
        if seg.next_offset < next_base {
            tracing::warn!(file = %path.display(), end = seg.next_offset, next_base, "gap in offsets after log segment");
        }
        match seg.seal(dir, sync) {
            // The indexes stay in memory; the next open rebuilds the files (a full disk).
            Err(Error::Io(e)) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot write the rebuilt index files; keeping them in memory");
            }
            other => other?,
        }
        Ok(seg)
    }

    /// Reads every batch from the start, checking structure, offsets and (if `check_crc`) CRCs,
    /// and indexes it. Stops at the first bad batch and says where and why.
    fn scan_and_index(&mut self, file_len: u64, interval: usize, check_crc: bool) -> Result<Stop> {
        let file = self.file.try_clone()?;
        let mut reader = ChunkReader::new(&file, file_len, SCAN_CHUNK);
        let mut pos = 0u64;
        let stop = loop {
            if pos == file_len {
                break None;
            }
            let Some(head) = reader.get(pos, HEADER_LEN)? else {
                break Some((
                    pos,
                    format!("partial batch header ({} bytes)", file_len - pos),
                ));
            };
            let h = match BatchHeader::parse(head) {
                Ok(h) => h,
                Err(e) => break Some((pos, e.to_string())),
            };
            // Compacted segments have gaps between batches; the active segment never has.
            let offset_ok = if check_crc {
                h.base_offset == self.next_offset
            } else {
                h.base_offset >= self.next_offset
            };
            if !offset_ok {
                break Some((
                    pos,
                    format!(
                        "batch base offset {} where {} was expected",
                        h.base_offset, self.next_offset
                    ),
                ));
            }
            // Compaction leaves fewer records than offsets (even none), never more.
            if i64::from(h.record_count) > i64::from(h.last_offset_delta) + 1 {
                break Some((pos, "record count exceeds the batch's offset range".into()));
            }
            let len = h.total_len();
            let Some(batch) = reader.get(pos, len)? else {
                break Some((
                    pos,
                    format!(
                        "batch of {len} bytes runs past the end of the file ({file_len} bytes)"
                    ),
                ));
            };
            if check_crc {
                if let Err(e) = verify_crc(batch) {
                    break Some((pos, e.to_string()));
                }
            }
            self.index_batch(pos, &h, interval);
            self.next_offset = last_offset(&h) + 1;
            pos += len as u64;
            self.size = pos;
        };
        Ok(stop)
    }

    /// Updates the max timestamp and the sparse indexes for a batch written at `pos`.
    fn index_batch(&mut self, pos: u64, h: &BatchHeader, interval: usize) {
        if h.max_timestamp > self.max_ts {
            self.max_ts = h.max_timestamp;
            self.max_ts_offset = h.base_offset;
        }
        if self.bytes_since_index > interval {
            let rel = u32::try_from(h.base_offset - self.base);
            if let (Ok(rel_offset), Ok(position)) = (rel, u32::try_from(pos)) {
                self.offset_index.push(OffsetEntry {
                    rel_offset,
                    position,
                });
            }
            self.push_time_entry();
            self.bytes_since_index = 0;
        }
        self.bytes_since_index = self.bytes_since_index.saturating_add(h.total_len());
    }

    fn push_time_entry(&mut self) {
        if self.max_ts > self.last_time_entry {
            if let Ok(rel_offset) = u32::try_from(self.max_ts_offset - self.base) {
                self.time_index.push(TimeEntry {
                    timestamp: self.max_ts,
                    rel_offset,
                });
                self.last_time_entry = self.max_ts;
            }
        }
    }

    /// Appends already validated batches (`headers`: position in `data` and final header).
    /// Each batch is written as its assigned baseOffset (from its header) followed by the rest
    /// of its bytes as they are in `data`, in file order: a write cut short leaves a tail that
    /// recovery finds incomplete, never a batch with the producer's offsets.
    pub fn append(
        &mut self,
        data: &[u8],
        headers: &[(usize, BatchHeader)],
        now_ms: i64,
        interval: usize,
    ) -> io::Result<()> {
        if let Err(e) = self.write_batches(data, headers) {
            // Do not leave a partial write behind for recovery to find later.
            if let Err(e2) = self.file.set_len(self.size) {
                tracing::warn!(file = %self.log_path.display(), error = %e2, "cannot truncate after a failed write");
            }
            return Err(e);
        }
        for (p, h) in headers {
            self.index_batch(self.size + *p as u64, h, interval);
            self.next_offset = last_offset(h) + 1;
        }
        self.size += data.len() as u64;
        self.rolling_base_ms.get_or_insert(now_ms);
        self.dirty = true;
        Ok(())
    }

    fn write_batches(&self, data: &[u8], headers: &[(usize, BatchHeader)]) -> io::Result<()> {
        for (i, (pos, h)) in headers.iter().enumerate() {
            // The batch runs to the next one's start (the last to the end of `data`).
            let end = headers.get(i + 1).map_or(data.len(), |(next, _)| *next);
            let (Some(rest), Ok(at)) = (data.get(pos + 8..end), u64::try_from(*pos)) else {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "batch positions outside the record set"));
            };
            self.file.write_all_at(&h.base_offset.to_be_bytes(), self.size + at)?;
            self.file.write_all_at(rest, self.size + at + 8)?;
        }
        Ok(())
    }

    /// Makes this segment inactive: adds the final time index entry and writes both indexes to
    /// their files (temporary file, fsync, rename: small, once per segment, and an index that
    /// looks sane must be complete). `sync` also fsyncs the log data.
    pub fn seal(&mut self, dir: &Path, sync: bool) -> Result<()> {
        self.push_time_entry();
        self.offset_index
            .seal(&segment_path(dir, self.base, "index"))?;
        self.time_index
            .seal(&segment_path(dir, self.base, "timeindex"))?;
        if sync {
            sync_data(&self.file)?;
            self.dirty = false;
        }
        Ok(())
    }

    /// A second handle on the `.log` file, for reading without the partition lock.
    pub fn file_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Everything an fsync of this segment needs, so it can run after the partition lock is
    /// released.
    pub fn prepare_sync(&self) -> io::Result<SegmentSync> {
        let mut indexes = Vec::with_capacity(2);
        for handle in [self.offset_index.file_handle(), self.time_index.file_handle()].into_iter().flatten() {
            indexes.push(handle?);
        }
        Ok(SegmentSync { base: self.base, size: self.size, log: self.file.try_clone()?, indexes })
    }

    pub fn sync(&mut self) -> Result<()> {
        sync_data(&self.file)?;
        self.offset_index.sync().map_err(Error::SyncFailed)?;
        self.time_index.sync().map_err(Error::SyncFailed)?;
        self.dirty = false;
        Ok(())
    }

    pub fn mtime_ms(&self) -> io::Result<i64> {
        let t = self.file.metadata()?.modified()?;
        Ok(t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0))
    }

    /// The newest timestamp for time retention: the max timestamp, or the file's mtime when
    /// the batches carry none (as Kafka does).
    pub fn largest_timestamp(&self) -> io::Result<i64> {
        if self.max_ts >= 0 {
            Ok(self.max_ts)
        } else {
            self.mtime_ms()
        }
    }

    /// Removes the segment's files.
    pub fn delete_files(self, dir: &Path) -> io::Result<()> {
        let base = self.base;
        drop(self);
        for ext in ["log", "index", "timeindex"] {
            match fs::remove_file(segment_path(dir, base, ext)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn corrupt(&self, pos: u64, reason: impl std::fmt::Display) -> Error {
        Error::Corrupt(format!(
            "{}: position {pos}: {reason}",
            self.log_path.display()
        ))
    }

    /// Batch headers from `pos` (a batch start) to the end of the data.
    pub fn headers_from(&self, pos: u64) -> Headers<'_> {
        Headers::new(self, &self.file, pos)
    }

    /// The offset index entry at or before `offset`: a batch's base offset and position.
    fn index_entry(&self, offset: i64) -> Result<Option<(i64, u64)>> {
        let rel = (offset - self.base).clamp(0, i64::from(u32::MAX));
        Ok(match self.offset_index.floor(rel)? {
            Some(e) if u64::from(e.position) < self.size => {
                Some((self.base + i64::from(e.rel_offset), u64::from(e.position)))
            }
            _ => None,
        })
    }

    /// From the time index: the base offset of a batch before which no record has a
    /// timestamp >= `ts` (`None`: search from the segment start).
    pub fn time_lookup(&self, ts: i64) -> Result<Option<i64>> {
        Ok(self
            .time_index
            .floor(ts)?
            .map(|e| self.base + i64::from(e.rel_offset)))
    }

    /// The first batch whose last offset is >= `offset`, with its position. Starts from the
    /// offset index entry when the batch found there matches it, otherwise from the start.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset || self.size == 0 {
            return Ok(None);
        }
        if let Some((entry_offset, pos)) = self.index_entry(offset)? {
            match self.find_from(pos, Some(entry_offset), offset) {
                Ok(found) => return Ok(found),
                Err(e) => tracing::warn!(
                    file = %self.log_path.display(), error = %e,
                    "offset index is inconsistent with the log; scanning from the segment start"
                ),
            }
        }
        self.find_from(0, None, offset)
    }

    fn find_from(
        &self,
        start: u64,
        expect: Option<i64>,
        offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        for item in self.headers_from(start) {
            let (pos, h) = item?;
            if let Some(x) = expect.filter(|_| pos == start) {
                if h.base_offset != x || x > offset {
                    return Err(self.corrupt(
                        pos,
                        format!(
                            "index entry for offset {x} finds base offset {}",
                            h.base_offset
                        ),
                    ));
                }
            }
            if last_offset(&h) >= offset {
                return Ok(Some((pos, h)));
            }
        }
        Ok(None)
    }

    /// `len` bytes at `pos`, which the caller has checked lie inside the data.
    pub fn read_bytes(&self, pos: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    thread_local! {
        /// Makes this thread's segment fsyncs fail (the tests of a failed fsync).
        pub(crate) static FAIL_SYNC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
}
