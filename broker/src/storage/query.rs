//! ListOffsets by timestamp and MAX_TIMESTAMP, at record granularity.

use tern_kafka::batch::BatchHeader;

use super::log::PartitionLog;
use super::records::record_times;
use super::segment::{last_offset, Segment};
use super::Result;

impl PartitionLog {
    /// Offset and timestamp of the first record at or after the log start offset whose
    /// timestamp is >= `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let start = self.log_start;
        for seg in self.segments_from(start) {
            if seg.size == 0 || seg.next_offset <= start || seg.max_ts < ts {
                continue;
            }
            let from = seg.time_lookup(ts)?.unwrap_or(seg.base).max(start);
            let Some((pos, _)) = seg.find_batch(from)? else {
                continue;
            };
            for item in seg.headers_from(pos) {
                let (p, h) = item?;
                if h.max_timestamp < ts || last_offset(&h) < start {
                    continue;
                }
                match batch_records(seg, p, &h)? {
                    Some(times) => {
                        if let Some(hit) = times.into_iter().find(|&(o, t)| o >= start && t >= ts) {
                            return Ok(Some(hit));
                        }
                    }
                    // Undecodable: answer at batch granularity.
                    None => return Ok(Some((h.base_offset.max(start), h.max_timestamp))),
                }
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the record with the largest timestamp (the first of equals)
    /// at or after the log start offset; `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let start = self.log_start;
        let mut best: Option<(i64, &Segment, i64)> = None;
        for seg in self.segments_from(start) {
            if seg.size == 0 || seg.next_offset <= start {
                continue;
            }
            let candidate = if seg.max_ts_offset < start {
                // The cached maximum lies below the log start offset: rescan the rest.
                max_from(seg, start)?
            } else {
                Some((seg.max_ts, seg.max_ts_offset))
            };
            if let Some((ts, off)) = candidate {
                if best.is_none_or(|(b, _, _)| ts > b) {
                    best = Some((ts, seg, off));
                }
            }
        }
        let Some((ts, seg, off)) = best else {
            return Ok(None);
        };
        let Some((pos, h)) = seg.find_batch(off.max(start))? else {
            return Ok(None);
        };
        let mut pick: Option<(i64, i64)> = None;
        for (o, t) in batch_records(seg, pos, &h)?.unwrap_or_default() {
            if o >= start && pick.is_none_or(|(_, pt)| t > pt) {
                pick = Some((o, t));
            }
        }
        Ok(Some(pick.unwrap_or((h.base_offset.max(start), ts))))
    }
}

/// The largest batch max timestamp among batches ending at or after `start`, and the base
/// offset of the first batch with it.
fn max_from(seg: &Segment, start: i64) -> Result<Option<(i64, i64)>> {
    let Some((pos, _)) = seg.find_batch(start)? else {
        return Ok(None);
    };
    let mut best: Option<(i64, i64)> = None;
    for item in seg.headers_from(pos) {
        let (_, h) = item?;
        if best.is_none_or(|(ts, _)| h.max_timestamp > ts) {
            best = Some((h.max_timestamp, h.base_offset));
        }
    }
    Ok(best)
}

/// The records' offsets and timestamps, or `None` (logged) if the batch cannot be decoded.
fn batch_records(seg: &Segment, pos: u64, h: &BatchHeader) -> Result<Option<Vec<(i64, i64)>>> {
    let batch = seg.read_bytes(pos, h.total_len())?;
    match record_times(&batch, h) {
        Ok(times) => Ok(Some(times)),
        Err(e) => {
            tracing::warn!(segment = seg.base, position = pos, error = %e, "cannot decode records of a stored batch");
            Ok(None)
        }
    }
}
