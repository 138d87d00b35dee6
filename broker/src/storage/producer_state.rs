//! Idempotent producers' state per partition, as Kafka's `ProducerStateManager` keeps it: each
//! producer id's epoch and its last five batches (sequence range and offsets), so that a
//! retried batch is answered with its original offsets instead of being written twice, and a
//! gap in sequence numbers is refused.
//!
//! The state is rebuilt on open from a snapshot plus the batch headers written after it.
//! Snapshots (`<offset>.snapshot`, JSON) are written when a segment rolls and hold the state
//! as of that offset; the two newest are kept. A snapshot that cannot be read is ignored: the
//! state is then rebuilt from an older one or from the whole log, which the cleaner keeps
//! usable by retaining each live producer's last batch (as Kafka does).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tern_kafka::batch::BatchHeader;

use super::files::{replace_file, tmp_path};
use super::{Error, Result};

/// Batches remembered per producer, as in Kafka (and the most a producer has in flight).
const BATCHES_KEPT: usize = 5;
const SNAPSHOTS_KEPT: usize = 2;
const SNAPSHOT_EXT: &str = "snapshot";

/// Where and when one batch of a producer was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp (the log append time on LogAppendTime topics).
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProducerEntry {
    producer_id: i64,
    epoch: i16,
    /// Oldest first.
    batches: VecDeque<BatchMeta>,
    /// Broker clock at the producer's last append (at load for state read from disk), for
    /// expiry. The broker's clock rather than record timestamps, which a replicating producer
    /// copies from old data.
    #[serde(default)]
    last_append_ms: i64,
}

impl ProducerEntry {
    fn last(&self) -> Option<&BatchMeta> {
        self.batches.back()
    }

    fn push(&mut self, epoch: i16, meta: BatchMeta) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_KEPT {
            self.batches.pop_front();
        }
        self.batches.push_back(meta);
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    offset: i64,
    producers: Vec<ProducerEntry>,
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
pub(crate) fn last_sequence(h: &BatchHeader) -> i32 {
    let (base, delta) = (h.base_sequence, h.last_offset_delta);
    if base > i32::MAX - delta {
        delta - (i32::MAX - base) - 1
    } else {
        base + delta
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// What the producer checks decided for an append.
pub(crate) enum Verdict {
    /// Write the batches.
    Append,
    /// The record set repeats a batch already written: answer with its metadata.
    Duplicate(BatchMeta),
}

#[derive(Debug, Default)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    /// Checks every idempotent batch of a record set against the state, in order, as if the
    /// earlier ones had been written. `first_offset` is where the set would start; `partition`
    /// names the log in messages.
    pub fn check(&self, headers: &[(usize, BatchHeader)], first_offset: i64, partition: &str) -> Result<Verdict> {
        let mut pending: HashMap<i64, ProducerEntry> = HashMap::new();
        let mut offset = first_offset;
        for (_, h) in headers {
            let at = offset;
            offset += i64::from(h.last_offset_delta) + 1;
            if h.producer_id < 0 {
                continue;
            }
            let pid = h.producer_id;
            // Transaction markers come from the coordinator, never from a client (the client
            // rules refuse them), and carry no sequence.
            if h.is_control() {
                continue;
            }
            let current = self.producers.get(&pid);
            if let Some(e) = current.filter(|e| e.epoch == h.producer_epoch) {
                let last_seq = last_sequence(h);
                if let Some(dup) = e.batches.iter().find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq) {
                    return Ok(Verdict::Duplicate(*dup));
                }
            }
            let entry = pending.get(&pid).or(current);
            if let Some(e) = entry {
                if h.producer_epoch < e.epoch {
                    return Err(Error::InvalidProducerEpoch(format!(
                        "Epoch of producer {pid} at offset {at} in {partition} is {}, which is smaller than the last seen epoch {}",
                        h.producer_epoch, e.epoch
                    )));
                }
                if h.producer_epoch != e.epoch {
                    if h.base_sequence != 0 {
                        return Err(Error::OutOfOrderSequence(format!(
                            "Invalid sequence number for new epoch of producer {pid} at offset {at} in partition {partition}: {} (request epoch), {} (seq. number), {} (current producer epoch)",
                            h.producer_epoch, h.base_sequence, e.epoch
                        )));
                    }
                } else if let Some(last) = e.last() {
                    if !in_sequence(last.last_seq, h.base_sequence) {
                        return Err(Error::OutOfOrderSequence(format!(
                            "Out of order sequence number for producer {pid} at offset {at} in partition {partition}: {} (incoming seq. number), {} (current end sequence number)",
                            h.base_sequence, last.last_seq
                        )));
                    }
                }
            }
            // A producer the log does not know (new, or its batches were all deleted by
            // retention or DeleteRecords) may start at any sequence, as in Kafka.
            let mut next = entry.cloned().unwrap_or(ProducerEntry {
                producer_id: pid,
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_append_ms: 0,
            });
            next.push(h.producer_epoch, meta(h, at));
            pending.insert(pid, next);
        }
        Ok(Verdict::Append)
    }

    /// Records a batch written to the log (headers carry their final offsets) at `now_ms`.
    pub fn update(&mut self, h: &BatchHeader, now_ms: i64) {
        if h.producer_id < 0 {
            return;
        }
        if h.is_control() {
            // A marker written with a bumped epoch (a transaction aborted by its timeout or by
            // a new producer with the same transactional id) fences the older epoch here too.
            if let Some(e) = self.producers.get_mut(&h.producer_id).filter(|e| h.producer_epoch > e.epoch) {
                e.epoch = h.producer_epoch;
                e.batches.clear();
            }
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_insert_with(|| ProducerEntry {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            batches: VecDeque::new(),
            last_append_ms: now_ms,
        });
        entry.push(h.producer_epoch, meta(h, h.base_offset));
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
    }

    /// Forgets producers that have not appended for `max_idle_ms` (Kafka's
    /// `producer.id.expiration.ms`); returns how many.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| now_ms.saturating_sub(e.last_append_ms) < max_idle_ms);
        before - self.producers.len()
    }

    /// Forgets producers whose last batch lies wholly below the log start offset.
    pub fn truncate_head(&mut self, log_start: i64) {
        self.producers.retain(|_, e| e.last().is_some_and(|b| b.last_offset >= log_start));
    }

    /// Each producer's last written offset: the cleaner keeps those batches.
    pub fn last_offsets(&self) -> HashMap<i64, i64> {
        self.producers.iter().filter_map(|(pid, e)| e.last().map(|b| (*pid, b.last_offset))).collect()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Writes the state as of `offset` and prunes older snapshots. Snapshots can be rebuilt,
    /// so no fsync: a torn one is ignored on open.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> std::io::Result<()> {
        let mut producers: Vec<ProducerEntry> = self.producers.values().cloned().collect();
        producers.sort_by_key(|e| e.producer_id);
        let text = serde_json::to_vec(&Snapshot { offset, producers }).map_err(std::io::Error::other)?;
        let path = snapshot_path(dir, offset);
        replace_file(&tmp_path(&path), &path, &text, false)?;
        let all = list_snapshots(dir)?;
        for (_, old) in all.iter().rev().skip(SNAPSHOTS_KEPT) {
            fs::remove_file(old)?;
        }
        Ok(())
    }

    /// The newest readable snapshot at or below `log_end`, and its offset. Snapshots past the
    /// log end (the tail they describe was lost) and unreadable ones are deleted.
    pub fn load_snapshot(dir: &Path, log_end: i64) -> Result<Option<(ProducerState, i64)>> {
        for (offset, path) in list_snapshots(dir)?.into_iter().rev() {
            if offset > log_end {
                fs::remove_file(&path)?;
                continue;
            }
            let parsed = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Snapshot>(&b).ok());
            match parsed {
                Some(s) if s.offset == offset => {
                    let now = super::wall_clock_ms();
                    let producers = s.producers.into_iter().map(|e| (e.producer_id, ProducerEntry { last_append_ms: now, ..e })).collect();
                    return Ok(Some((ProducerState { producers }, offset)));
                }
                _ => {
                    tracing::warn!(file = %path.display(), "ignoring unreadable producer state snapshot");
                    fs::remove_file(&path)?;
                }
            }
        }
        Ok(None)
    }
}

fn meta(h: &BatchHeader, first_offset: i64) -> BatchMeta {
    BatchMeta {
        first_seq: h.base_sequence,
        last_seq: last_sequence(h),
        first_offset,
        last_offset: first_offset + i64::from(h.last_offset_delta),
        timestamp: h.max_timestamp,
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_EXT}"))
}

/// Snapshot files of `dir` by offset.
fn list_snapshots(dir: &Path) -> std::io::Result<BTreeMap<i64, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else { continue };
        if ext == SNAPSHOT_EXT && stem.len() == 20 {
            if let Ok(offset) = stem.parse::<i64>() {
                out.insert(offset, entry.path());
            }
        }
    }
    Ok(out)
}
