//! The memory of fetch answers that queued record sets hold. A record set keeps slices of the
//! answer it came in rather than a copy: the whole answer stays in memory until the last set
//! holding a slice of it is acknowledged. A partition with a large share of an answer holds at
//! most eight times what it queued; answers held for the sake of small shares are counted
//! against a budget, and past it a small share is copied, so that slow target partitions cannot
//! keep many large answers alive for a few bytes each. Within the budget nothing is copied, however
//! many partitions an answer spreads over.
//!
//! The records queued for the target are counted too: past the flow's read-ahead the fetch loop
//! sends no fetch until the target has taken some (as a producer's buffer memory bounds what a
//! consumer hands it). Without that bound a worker with many partitions reads the whole of their
//! backlog into memory before the target has taken much of it, and memory first touched costs
//! the kernel a page fault and a zeroed page: on a virtual machine that was most of a run's CPU.
//! A partition the target has taken nothing from for [`STUCK_AFTER`] stops counting against the
//! read-ahead (its own queue of four sets still bounds it), so a few target partitions that take
//! nothing (a leader the target lost, a quota) do not hold up the flow's other partitions.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::transform::Prepared;

/// A record set on its way to a partition's producer, with the answer memory it holds.
pub(super) struct Queued {
    pub(super) set: Prepared,
    /// Released when the set is done with (produced, or dropped at a rebalance).
    pub(super) held: Hold,
}

/// What a queued record set holds until it is done with: its bytes, counted against the
/// read-ahead, and the answer it keeps slices of when that is counted against the budget.
pub(super) struct Hold {
    _queued: Option<Counted>,
    _answer: Option<Arc<Held>>,
}

impl Hold {
    /// Holds nothing (a set made up elsewhere than in the fetch loop).
    #[cfg(test)]
    pub(super) fn none() -> Hold {
        Hold { _queued: None, _answer: None }
    }
}

/// Bytes of answers held for small shares, and the most that may be; bytes of records queued
/// for the target, and the most the fetch loop reads ahead.
pub(super) struct AnswerBudget {
    held: Arc<AtomicUsize>,
    limit: usize,
    queued: Arc<Queue>,
    read_ahead: usize,
    /// Whether the read-ahead last had room only beside stuck partitions.
    stuck_aside: std::sync::atomic::AtomicBool,
}

/// Whether the fetch loop may send fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadAhead {
    /// Less is queued than the flow reads ahead.
    Room,
    /// As much is queued as the flow reads ahead: no fetch until the target takes some.
    Full,
    /// The read-ahead is full only with the `stuck` bytes of partitions the target has taken
    /// nothing from for [`STUCK_AFTER`]: the others are fetched.
    RoomBesideStuck { stuck: usize },
}

/// Bytes of records queued for the target, and a signal when some are let go.
#[derive(Default)]
struct Queue {
    bytes: AtomicUsize,
    released: Notify,
}

/// One answer counted against the budget, given back when the last set holding it is done.
pub(super) struct Held {
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// How long a partition's queued records may wait without the target taking any of them before
/// they stop counting against the flow's read-ahead.
pub(super) const STUCK_AFTER: Duration = Duration::from_secs(5);

/// One partition's records queued for the target, and when it last moved: when the target took
/// one of its sets, or when a set was queued while none was.
#[derive(Default)]
pub(super) struct Backlog {
    bytes: AtomicUsize,
    /// [`mono_ms`] of the last move.
    moved_ms: AtomicU64,
}

impl Backlog {
    /// The bytes queued, if the target has taken nothing of them for [`STUCK_AFTER`] by `now_ms`.
    fn stuck_bytes(&self, now_ms: u64) -> usize {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let moved = self.moved_ms.load(Ordering::Relaxed);
        if bytes > 0 && now_ms.saturating_sub(moved) >= STUCK_AFTER.as_millis() as u64 {
            bytes
        } else {
            0
        }
    }
}

/// Milliseconds on a clock that only goes forward, from the first call.
pub(super) fn mono_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// One record set's bytes counted against the read-ahead and its partition's backlog.
struct Counted {
    bytes: usize,
    queue: Arc<Queue>,
    backlog: Arc<Backlog>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.backlog.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        self.backlog.moved_ms.store(mono_ms(), Ordering::Relaxed);
        self.queue.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        self.queue.released.notify_one();
    }
}

impl AnswerBudget {
    /// A budget of `limit` bytes of answers held for small shares, and `read_ahead` bytes of
    /// records queued for the target.
    pub(super) fn new(limit: usize, read_ahead: usize) -> AnswerBudget {
        AnswerBudget { held: Arc::new(AtomicUsize::new(0)), limit, queued: Arc::default(), read_ahead, stuck_aside: Default::default() }
    }

    /// Bytes of answers held now for small shares.
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Bytes of records queued for the target now.
    pub(super) fn queued(&self) -> usize {
        self.queued.bytes.load(Ordering::Relaxed)
    }

    /// Whether the records queued reach the read-ahead, not counting the `backlogs` stuck by
    /// `now_ms` (see [`STUCK_AFTER`]): no fetch is sent until some are let go.
    pub(super) fn read_ahead<'a>(&self, backlogs: impl Iterator<Item = &'a Backlog>, now_ms: u64) -> ReadAhead {
        let queued = self.queued();
        if queued < self.read_ahead {
            return ReadAhead::Room;
        }
        let stuck: usize = backlogs.map(|b| b.stuck_bytes(now_ms)).sum();
        if queued.saturating_sub(stuck) >= self.read_ahead {
            ReadAhead::Full
        } else {
            ReadAhead::RoomBesideStuck { stuck }
        }
    }

    /// Notes whether partitions stuck are set aside now; true when they just began to be.
    pub(super) fn stuck_set_aside(&self, now: bool) -> bool {
        self.stuck_aside.swap(now, Ordering::Relaxed) != now && now
    }

    /// Completes once a queued record set was let go since the last call (at once if one was).
    pub(super) async fn released(&self) {
        self.queued.released.notified().await;
    }

    /// Counts an answer of `bytes` against the budget, if it fits.
    fn hold(&self, bytes: usize) -> Option<Arc<Held>> {
        // Only the fetch loop adds; releases run anywhere, and only lower the count.
        if self.held().saturating_add(bytes) > self.limit {
            return None;
        }
        self.held.fetch_add(bytes, Ordering::Relaxed);
        Some(Arc::new(Held { bytes, held: self.held.clone() }))
    }

    /// Counts a record set's `bytes` against the read-ahead and its partition's `backlog`.
    fn count(&self, bytes: usize, backlog: &Arc<Backlog>) -> Counted {
        self.queued.bytes.fetch_add(bytes, Ordering::Relaxed);
        // Only the fetch loop adds: a backlog that was empty starts waiting now.
        if backlog.bytes.fetch_add(bytes, Ordering::Relaxed) == 0 {
            backlog.moved_ms.store(mono_ms(), Ordering::Relaxed);
        }
        Counted { bytes, queue: self.queued.clone(), backlog: backlog.clone() }
    }
}

/// One answer's record sets as they are handed out: the answer is counted against the budget
/// once, with the first small share that keeps a slice of it.
pub(super) struct Answer<'a> {
    budget: &'a AnswerBudget,
    len: usize,
    /// `None` until a small share asked; then the answer's hold, or `None` past the budget.
    held: Option<Option<Arc<Held>>>,
}

impl<'a> Answer<'a> {
    pub(super) fn new(budget: &'a AnswerBudget, len: usize) -> Answer<'a> {
        Answer { budget, len, held: None }
    }

    /// A partition's records from this answer, as the record set keeps them: the slice itself
    /// for a share of at least an eighth or within the budget, else a copy of its own; with
    /// what the set holds until it is done (its bytes against the read-ahead and its
    /// partition's `backlog`, and the answer against the budget when a small share keeps a slice
    /// of it).
    pub(super) fn keep(&mut self, records: Bytes, backlog: &Arc<Backlog>) -> (Bytes, Hold) {
        let queued = Some(self.budget.count(records.len(), backlog));
        if records.len().saturating_mul(8) >= self.len {
            return (records, Hold { _queued: queued, _answer: None });
        }
        let (budget, len) = (self.budget, self.len);
        match self.held.get_or_insert_with(|| budget.hold(len)) {
            Some(held) => (records, Hold { _queued: queued, _answer: Some(held.clone()) }),
            None => (Bytes::copy_from_slice(&records), Hold { _queued: queued, _answer: None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog() -> Arc<Backlog> {
        Arc::new(Backlog::default())
    }

    fn within(slice: &Bytes, answer: &Bytes) -> bool {
        let (start, end) = (answer.as_ptr() as usize, answer.as_ptr() as usize + answer.len());
        (start..end).contains(&(slice.as_ptr() as usize))
    }

    #[test]
    fn small_shares_keep_their_slice_within_the_budget_and_release_it_when_done() {
        let part = backlog();
        let budget = AnswerBudget::new(3000, 1 << 20);
        let answer = Bytes::from(vec![7u8; 1000]);
        let mut handing = Answer::new(&budget, answer.len());
        let (a, held_a) = handing.keep(answer.slice(0..10), &part);
        let (b, held_b) = handing.keep(answer.slice(10..20), &part);
        assert!(within(&a, &answer) && within(&b, &answer), "small shares within the budget are not copied");
        assert_eq!(budget.held(), 1000, "the answer is counted once, whatever the number of shares");
        drop(handing);
        drop(held_a);
        assert_eq!(budget.held(), 1000, "held while any share is queued");
        drop(held_b);
        assert_eq!(budget.held(), 0, "given back when the last share is done");
    }

    #[test]
    fn past_the_budget_small_shares_are_copied_and_large_shares_never_are() {
        let part = backlog();
        let budget = AnswerBudget::new(1500, 1 << 20);
        let first = Bytes::from(vec![1u8; 1000]);
        let (_, held) = Answer::new(&budget, first.len()).keep(first.slice(0..10), &part);
        assert!(held._answer.is_some());
        let second = Bytes::from(vec![2u8; 1000]);
        let mut handing = Answer::new(&budget, second.len());
        let (small, none) = handing.keep(second.slice(0..10), &part);
        assert!(none._answer.is_none() && !within(&small, &second), "a small share past the budget gets its own copy");
        assert_eq!(&small[..], &second[0..10]);
        let (large, none) = handing.keep(second.slice(0..200), &part);
        assert!(none._answer.is_none() && within(&large, &second), "an eighth or more of its answer is never copied");
        assert_eq!(budget.held(), 1000);
        drop(held);
        let (again, held) = Answer::new(&budget, second.len()).keep(second.slice(0..10), &part);
        assert!(held._answer.is_some() && within(&again, &second), "room again once the first answer was let go");
    }

    #[tokio::test]
    async fn queued_records_are_counted_against_the_read_ahead_until_done() {
        let part = backlog();
        let budget = AnswerBudget::new(1 << 20, 150);
        let answer = Bytes::from(vec![3u8; 1000]);
        let mut handing = Answer::new(&budget, answer.len());
        let (_, large) = handing.keep(answer.slice(0..500), &part);
        let (_, small) = handing.keep(answer.slice(500..510), &part);
        assert_eq!(budget.queued(), 510, "every share counts its own bytes, large or small");
        let now = mono_ms();
        assert_eq!(budget.read_ahead([&*part].into_iter(), now), ReadAhead::Full);
        drop(large);
        assert_eq!(budget.queued(), 10);
        assert_eq!(budget.read_ahead([&*part].into_iter(), now), ReadAhead::Room, "room once the target took a set");
        tokio::time::timeout(std::time::Duration::from_secs(5), budget.released()).await.expect("a release is signalled");
        drop(small);
        assert_eq!(budget.queued(), 0);
    }

    /// Two partitions fill the read-ahead; once the target has taken nothing of one of them for
    /// `STUCK_AFTER`, its records stop counting and the other may be fetched again. When the
    /// stuck one moves, it counts again.
    #[test]
    fn a_partition_the_target_takes_nothing_from_stops_holding_up_the_others() {
        let budget = AnswerBudget::new(1 << 20, 150);
        let (stuck, moving) = (backlog(), backlog());
        let answer = Bytes::from(vec![5u8; 400]);
        let mut handing = Answer::new(&budget, answer.len());
        let (_, stuck_first) = handing.keep(answer.slice(0..100), &stuck);
        let (_, _stuck_second) = handing.keep(answer.slice(100..200), &stuck);
        let (_, moving_first) = handing.keep(answer.slice(200..300), &moving);
        let both = || [&*stuck, &*moving].into_iter();
        let now = mono_ms();
        assert_eq!(budget.read_ahead(both(), now), ReadAhead::Full, "300 bytes queued against 150");
        // The target took a set of the moving partition and another was queued: it moved now.
        drop(moving_first);
        let (_, _moving_second) = handing.keep(answer.slice(300..400), &moving);
        assert_eq!(budget.read_ahead(both(), now), ReadAhead::Full, "300 bytes again");
        // A minute and a half on: the moving partition moved a second ago, the stuck one at 0.
        let later = 90_000;
        stuck.moved_ms.store(0, std::sync::atomic::Ordering::Relaxed);
        moving.moved_ms.store(later - 1000, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(budget.read_ahead(both(), later), ReadAhead::RoomBesideStuck { stuck: 200 }, "the stuck partition's 200 bytes do not count: 100 of 150");
        let just_before = STUCK_AFTER.as_millis() as u64 - 1;
        assert_eq!(budget.read_ahead(both(), just_before), ReadAhead::Full, "before STUCK_AFTER had passed they did");
        assert!(budget.stuck_set_aside(true) && !budget.stuck_set_aside(true), "noted once as it begins");
        assert!(!budget.stuck_set_aside(false) && budget.stuck_set_aside(true), "and again after a time without");
        // It moves: counted again (its moved time is now, the moving one's too).
        drop(stuck_first);
        assert_eq!(budget.queued(), 200);
        assert_eq!(budget.read_ahead(both(), mono_ms()), ReadAhead::Full, "both moved within STUCK_AFTER: 200 of 150");
    }
}
