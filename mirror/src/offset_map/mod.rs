//! The offset map of one partition: where each replicated source offset landed on the target.
//!
//! The target assigns consecutive offsets; the source may skip offsets (compaction holes,
//! transaction markers, records deleted before replication). So `target - source` is constant
//! over runs, and the map keeps one entry per run: a new entry only where the delta changes.
//! A plain topic needs one entry per mirror start; each gap costs one entry.
//!
//! Translation follows Tern's rule: a group committed at source offset `g` resumes on the target
//! at the first replicated record whose source offset is `>= g`: never past a record not yet
//! replicated, never before a record the group already consumed.

pub mod store;

use std::collections::BTreeMap;

/// One run: from `source` on, source offsets map to `target + (offset - source)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub source: i64,
    pub target: i64,
}

/// Ascending source offsets as runs of consecutive offsets `(first, count)`: a batch costs one
/// run whatever record count its header claims, so a header claiming 2^31 records costs no
/// more than one claiming one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetRuns {
    runs: std::collections::VecDeque<(i64, u64)>,
    len: u64,
}

impl OffsetRuns {
    /// Appends `count` consecutive offsets from `first` (above every offset held).
    pub fn push_run(&mut self, first: i64, count: u64) {
        if count == 0 {
            return;
        }
        self.len += count;
        if let Some((start, n)) = self.runs.back_mut() {
            if start.saturating_add(*n as i64) == first {
                *n += count;
                return;
            }
        }
        self.runs.push_back((first, count));
    }

    pub fn push(&mut self, offset: i64) {
        self.push_run(offset, 1);
    }

    /// How many offsets.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn first(&self) -> Option<i64> {
        self.runs.front().map(|(s, _)| *s)
    }

    /// The highest offset held.
    pub fn last(&self) -> Option<i64> {
        self.runs.back().map(|(s, count)| s + *count as i64 - 1)
    }

    /// Takes the first `n` offsets (all of them when there are fewer).
    pub fn split_front(&mut self, mut n: u64) -> OffsetRuns {
        let mut out = OffsetRuns::default();
        while n > 0 {
            let Some((s, count)) = self.runs.pop_front() else { break };
            let take = count.min(n);
            out.push_run(s, take);
            if take < count {
                self.runs.push_front((s + take as i64, count - take));
            }
            self.len -= take;
            n -= take;
        }
        out
    }

    pub fn runs(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.runs.iter().copied()
    }
}

impl From<&[i64]> for OffsetRuns {
    fn from(offsets: &[i64]) -> Self {
        let mut out = OffsetRuns::default();
        for &o in offsets {
            out.push(o);
        }
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetMap {
    /// Runs by source offset.
    entries: BTreeMap<i64, i64>,
    /// Next source offset to replicate and the target offset it will get: the replicated end.
    end: Option<Entry>,
    /// Source offset of the last record replicated.
    last_source: Option<i64>,
}

/// Where a committed source offset resumes on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// The target offset of the first replicated record at or after the committed offset.
    Exact(i64),
    /// The group is at or ahead of what was replicated: it resumes at the replicated end (the
    /// records it is missing are not on the target yet).
    AheadOfReplication { target: i64 },
    /// Nothing was replicated yet: no answer.
    BeforeMap,
}

impl Translation {
    /// The state's one spelling, for reports, pages and metrics.
    pub fn state(&self) -> crate::states::TranslationState {
        use crate::states::TranslationState;
        match self {
            Translation::Exact(_) => TranslationState::Exact,
            Translation::AheadOfReplication { .. } => TranslationState::AheadOfReplication,
            Translation::BeforeMap => TranslationState::NothingReplicated,
        }
    }

    pub fn target(&self) -> Option<i64> {
        match self {
            Translation::Exact(t) | Translation::AheadOfReplication { target: t } => Some(*t),
            Translation::BeforeMap => None,
        }
    }
}

impl OffsetMap {
    /// Records that the source records at `source_offsets` (ascending) were appended on the
    /// target from `target_base` on, followed by nothing else up to source `next_source`.
    /// Returns the entries this added (to persist them).
    pub fn record(&mut self, source_offsets: &[i64], target_base: i64, next_source: i64) -> Vec<Entry> {
        self.record_runs(&OffsetRuns::from(source_offsets), target_base, next_source)
    }

    /// [`OffsetMap::record`] for runs of consecutive source offsets: the work is per run (and
    /// per stale entry a run overwrites), not per record.
    pub fn record_runs(&mut self, source_offsets: &OffsetRuns, target_base: i64, next_source: i64) -> Vec<Entry> {
        let mut added = Vec::new();
        let mut t = target_base;
        for (s, n) in source_offsets.runs() {
            // The run continues the current one only if its first record directly follows the
            // last one on both sides; otherwise (a gap on the source, a restart that replicates
            // some records again) a new run starts here.
            let continues = self.end == Some(Entry { source: s, target: t }) && self.delta_at(s) == Some(t - s);
            if !continues {
                self.entries.insert(s, t);
                added.push(Entry { source: s, target: t });
            }
            // Inside the run every record follows the one before on both sides; an older entry
            // there with another delta (records replicated before) is replaced.
            let end = s.saturating_add(n as i64);
            let stale: Vec<i64> = self.entries.range(s + 1..end).filter(|(es, et)| *et - *es != t - s).map(|(es, _)| *es).collect();
            for es in stale {
                let et = t + (es - s);
                self.entries.insert(es, et);
                added.push(Entry { source: es, target: et });
            }
            self.end = Some(Entry { source: end, target: t + n as i64 });
            self.last_source = Some(end - 1);
            t += n as i64;
        }
        // Source offsets after the last record that hold nothing to replicate (control
        // batches) are passed: a group committed there resumes at the next target record.
        if let Some(e) = &mut self.end {
            e.source = e.source.max(next_source);
        }
        added
    }

    /// Restores a persisted entry (on startup).
    pub fn restore(&mut self, entry: Entry) {
        self.entries.insert(entry.source, entry.target);
    }

    /// Sets the replicated end explicitly (on startup, from the target's end offset and the
    /// committed source position).
    pub fn set_end(&mut self, end: Entry) {
        self.end = Some(end);
        self.last_source = self.last_source.map(|l| l.min(end.source - 1)).or(Some(end.source - 1));
    }

    pub fn end(&self) -> Option<Entry> {
        self.end
    }

    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.entries.iter().map(|(s, t)| Entry { source: *s, target: *t })
    }

    /// Drops runs that lie wholly below `source_log_start` (the source deleted them, so no
    /// group can commit there any more); the run containing it is kept. Returns the dropped.
    pub fn trim_below(&mut self, source_log_start: i64) -> Vec<Entry> {
        let keep_from = self.entries.range(..=source_log_start).next_back().map(|(s, _)| *s);
        let Some(keep_from) = keep_from else { return Vec::new() };
        let dropped: Vec<Entry> = self.entries.range(..keep_from).map(|(s, t)| Entry { source: *s, target: *t }).collect();
        self.entries = self.entries.split_off(&keep_from);
        dropped
    }

    fn delta_at(&self, source: i64) -> Option<i64> {
        self.entries.range(..=source).next_back().map(|(s, t)| t - s)
    }

    /// The next source offset to replicate, as the target's content shows it: the newest run
    /// (the entry with the highest target offset) continued up to the remote partition's
    /// end. `None` when the map has no entry.
    pub fn replicated_source_end(&self, target_end: i64) -> Option<i64> {
        let (s, t) = self.entries.iter().max_by_key(|(_, t)| **t)?;
        Some(s + (target_end - t).max(0))
    }

    /// The source offset of the record at target offset `target`: the newest run that starts
    /// at or before it. `None` below the first run.
    pub fn source_of(&self, target: i64) -> Option<i64> {
        self.entries.iter().filter(|(_, t)| **t <= target).max_by_key(|(_, t)| **t).map(|(s, t)| s + (target - t))
    }

    pub fn translate(&self, committed: i64) -> Translation {
        let Some(end) = self.end else { return Translation::BeforeMap };
        if self.last_source.is_none_or(|last| committed > last) {
            return Translation::AheadOfReplication { target: end.target };
        }
        let Some((&s, &t)) = self.entries.range(..=committed).next_back() else {
            // Below the first run: the source deleted those records before they were
            // replicated, or after (the map is trimmed below the source's log start). Either
            // way the first record at or after the committed offset is the first run's.
            return match self.entries.iter().next() {
                Some((_, &t)) => Translation::Exact(t),
                None => Translation::BeforeMap,
            };
        };
        // Within a run offsets map one to one; a committed offset inside the gap before the
        // next run maps to that run's first record.
        let continued = t + (committed - s);
        let next_run = self.entries.range(committed + 1..).next().map(|(_, t)| *t).unwrap_or(end.target);
        Translation::Exact(continued.min(next_run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_topic_needs_one_entry() {
        let mut m = OffsetMap::default();
        assert_eq!(m.record(&[0, 1, 2], 0, 3), vec![Entry { source: 0, target: 0 }]);
        assert!(m.record(&[3, 4], 3, 5).is_empty());
        assert_eq!(m.entries().count(), 1);
        assert_eq!(m.translate(0), Translation::Exact(0));
        assert_eq!(m.translate(4), Translation::Exact(4));
        assert_eq!(m.translate(5), Translation::AheadOfReplication { target: 5 });
        assert_eq!(m.translate(50), Translation::AheadOfReplication { target: 5 });
    }

    #[test]
    fn gaps_map_to_the_next_real_record() {
        let mut m = OffsetMap::default();
        // Source 0..=4 replicated, 5..=9 compacted away, then 10, 11; then a control batch at 12.
        m.record(&[0, 1, 2, 3, 4], 100, 5);
        m.record(&[10, 11], 105, 13);
        assert_eq!(m.entries().collect::<Vec<_>>(), vec![Entry { source: 0, target: 100 }, Entry { source: 10, target: 105 }]);
        assert_eq!(m.translate(3), Translation::Exact(103));
        assert_eq!(m.translate(5), Translation::Exact(105), "inside the hole: the first record after it");
        assert_eq!(m.translate(9), Translation::Exact(105));
        assert_eq!(m.translate(11), Translation::Exact(106));
        assert_eq!(m.translate(12), Translation::AheadOfReplication { target: 107 }, "past the marker: nothing more yet");
    }

    #[test]
    fn a_restart_that_re_replicates_starts_a_new_run() {
        let mut m = OffsetMap::default();
        m.record(&[0, 1, 2, 3], 0, 4);
        // The mirror restarted from committed position 2: 2 and 3 land again at 4 and 5.
        m.set_end(Entry { source: 2, target: 4 });
        let added = m.record(&[2, 3, 4], 4, 5);
        assert_eq!(added, vec![Entry { source: 2, target: 4 }]);
        // A group that consumed 0 and 1 resumes at the re-replicated copy of 2: no record
        // skipped. (It re-reads nothing it had consumed from this copy either.)
        assert_eq!(m.translate(2), Translation::Exact(4));
        assert_eq!(m.translate(1), Translation::Exact(1));
        assert_eq!(m.translate(4), Translation::Exact(6));
        assert_eq!(m.replicated_source_end(7), Some(5));
        assert_eq!(m.source_of(1), Some(1));
        assert_eq!(m.source_of(5), Some(3), "the re-replicated copy");
    }

    #[test]
    fn trimming_keeps_the_run_that_holds_the_log_start() {
        let mut m = OffsetMap::default();
        m.record(&[0, 1], 0, 2);
        m.record(&[5, 6], 2, 7);
        m.record(&[9], 4, 10);
        let dropped = m.trim_below(6);
        assert_eq!(dropped, vec![Entry { source: 0, target: 0 }]);
        assert_eq!(m.translate(6), Translation::Exact(3));
        assert_eq!(m.translate(1), Translation::Exact(2), "below the map: its first record");
        assert_eq!(OffsetMap::default().translate(0), Translation::BeforeMap);
    }

    /// The per-record rule `record_runs` implements per run.
    fn record_each(m: &mut OffsetMap, offsets: &[i64], target_base: i64, next_source: i64) -> Vec<Entry> {
        let mut added = Vec::new();
        for (i, &s) in offsets.iter().enumerate() {
            let t = target_base + i as i64;
            let continues = m.end == Some(Entry { source: s, target: t }) && m.delta_at(s) == Some(t - s);
            if !continues {
                m.entries.insert(s, t);
                added.push(Entry { source: s, target: t });
            }
            m.end = Some(Entry { source: s + 1, target: t + 1 });
            m.last_source = Some(s);
        }
        if let Some(e) = &mut m.end {
            e.source = e.source.max(next_source);
        }
        added
    }

    #[test]
    fn a_batch_claiming_two_billion_records_costs_one_run() {
        let mut runs = OffsetRuns::default();
        runs.push_run(0, i32::MAX as u64);
        let mut m = OffsetMap::default();
        let added = m.record_runs(&runs, 0, i32::MAX as i64);
        assert_eq!(added, vec![Entry { source: 0, target: 0 }]);
        assert_eq!(m.translate(1_000_000_000), Translation::Exact(1_000_000_000));
        let first = runs.split_front(5);
        assert_eq!((first.len(), first.first(), runs.len(), runs.first()), (5, Some(0), i32::MAX as u64 - 5, Some(5)));
    }

    proptest::proptest! {
        /// Runs give the same map, entries and persisted additions as records one by one,
        /// including records replicated again after a restart (source offsets going back).
        #[test]
        fn runs_record_as_records_do(
            steps in proptest::collection::vec((-6i64..4, 1usize..8, 0i64..3, 0usize..3), 1..30),
        ) {
            let (mut by_runs, mut by_records) = (OffsetMap::default(), OffsetMap::default());
            let (mut next_source, mut next_target) = (10i64, 0i64);
            for (shift, count, trailing, holes) in steps {
                let first = (next_source + shift).max(0);
                // Offsets with up to `holes` gaps of one inside.
                let mut offsets = Vec::new();
                let mut o = first;
                for i in 0..count {
                    offsets.push(o);
                    o += if i < holes { 2 } else { 1 };
                }
                let after = o + trailing;
                let a = by_runs.record_runs(&OffsetRuns::from(&offsets[..]), next_target, after);
                let b = record_each(&mut by_records, &offsets, next_target, after);
                proptest::prop_assert_eq!(a, b);
                proptest::prop_assert_eq!(&by_runs, &by_records);
                next_source = after;
                next_target += count as i64;
            }
        }
    }

    proptest::proptest! {
        /// Against brute force: records replicated in batches with random source gaps; every
        /// committed offset translates to the target offset of the first replicated record at
        /// or after it, or to the replicated end when there is none.
        #[test]
        fn translation_matches_brute_force(
            steps in proptest::collection::vec((0i64..4, 1usize..6, 0i64..3), 1..30),
            probes in proptest::collection::vec(0i64..200, 1..40),
        ) {
            let mut m = OffsetMap::default();
            let mut replicated: Vec<(i64, i64)> = Vec::new();
            let (mut next_source, mut next_target) = (0i64, 0i64);
            for (gap, count, trailing) in steps {
                let first = next_source + gap;
                let offsets: Vec<i64> = (first..first + count as i64).collect();
                let after = first + count as i64 + trailing;
                m.record(&offsets, next_target, after);
                for (i, s) in offsets.iter().enumerate() {
                    replicated.push((*s, next_target + i as i64));
                }
                next_source = after;
                next_target += count as i64;
            }
            for g in probes {
                let want = replicated.iter().find(|(s, _)| *s >= g).map(|(_, t)| *t);
                match m.translate(g) {
                    Translation::Exact(t) => proptest::prop_assert_eq!(Some(t), want, "g={}", g),
                    Translation::AheadOfReplication { target } => {
                        proptest::prop_assert_eq!(want, None, "g={}", g);
                        proptest::prop_assert_eq!(target, next_target);
                    }
                    Translation::BeforeMap => proptest::prop_assert!(false, "g={} before the map", g),
                }
            }
            // One entry per run: the number of gaps plus one at most.
            proptest::prop_assert!(m.entries().count() <= replicated.len());
        }
    }
}
