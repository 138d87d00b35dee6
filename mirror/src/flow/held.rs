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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// One record set's bytes counted against the read-ahead.
struct Counted {
    bytes: usize,
    queue: Arc<Queue>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.queue.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        self.queue.released.notify_one();
    }
}

impl AnswerBudget {
    /// A budget of `limit` bytes of answers held for small shares, and `read_ahead` bytes of
    /// records queued for the target.
    pub(super) fn new(limit: usize, read_ahead: usize) -> AnswerBudget {
        AnswerBudget { held: Arc::new(AtomicUsize::new(0)), limit, queued: Arc::default(), read_ahead }
    }

    /// Bytes of answers held now for small shares.
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Bytes of records queued for the target now.
    pub(super) fn queued(&self) -> usize {
        self.queued.bytes.load(Ordering::Relaxed)
    }

    /// Whether the records queued reach the read-ahead: no fetch is sent until some are let go.
    pub(super) fn read_ahead_full(&self) -> bool {
        self.queued() >= self.read_ahead
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

    /// Counts a record set's `bytes` against the read-ahead.
    fn count(&self, bytes: usize) -> Counted {
        self.queued.bytes.fetch_add(bytes, Ordering::Relaxed);
        Counted { bytes, queue: self.queued.clone() }
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
    /// what the set holds until it is done (its bytes against the read-ahead, and the answer
    /// against the budget when a small share keeps a slice of it).
    pub(super) fn keep(&mut self, records: Bytes) -> (Bytes, Hold) {
        let queued = Some(self.budget.count(records.len()));
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

    fn within(slice: &Bytes, answer: &Bytes) -> bool {
        let (start, end) = (answer.as_ptr() as usize, answer.as_ptr() as usize + answer.len());
        (start..end).contains(&(slice.as_ptr() as usize))
    }

    #[test]
    fn small_shares_keep_their_slice_within_the_budget_and_release_it_when_done() {
        let budget = AnswerBudget::new(3000, 1 << 20);
        let answer = Bytes::from(vec![7u8; 1000]);
        let mut handing = Answer::new(&budget, answer.len());
        let (a, held_a) = handing.keep(answer.slice(0..10));
        let (b, held_b) = handing.keep(answer.slice(10..20));
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
        let budget = AnswerBudget::new(1500, 1 << 20);
        let first = Bytes::from(vec![1u8; 1000]);
        let (_, held) = Answer::new(&budget, first.len()).keep(first.slice(0..10));
        assert!(held._answer.is_some());
        let second = Bytes::from(vec![2u8; 1000]);
        let mut handing = Answer::new(&budget, second.len());
        let (small, none) = handing.keep(second.slice(0..10));
        assert!(none._answer.is_none() && !within(&small, &second), "a small share past the budget gets its own copy");
        assert_eq!(&small[..], &second[0..10]);
        let (large, none) = handing.keep(second.slice(0..200));
        assert!(none._answer.is_none() && within(&large, &second), "an eighth or more of its answer is never copied");
        assert_eq!(budget.held(), 1000);
        drop(held);
        let (again, held) = Answer::new(&budget, second.len()).keep(second.slice(0..10));
        assert!(held._answer.is_some() && within(&again, &second), "room again once the first answer was let go");
    }

    #[tokio::test]
    async fn queued_records_are_counted_against_the_read_ahead_until_done() {
        let budget = AnswerBudget::new(1 << 20, 150);
        let answer = Bytes::from(vec![3u8; 1000]);
        let mut handing = Answer::new(&budget, answer.len());
        let (_, large) = handing.keep(answer.slice(0..500));
        let (_, small) = handing.keep(answer.slice(500..510));
        assert_eq!(budget.queued(), 510, "every share counts its own bytes, large or small");
        assert!(budget.read_ahead_full());
        drop(large);
        assert_eq!(budget.queued(), 10);
        assert!(!budget.read_ahead_full(), "room once the target took a set");
        tokio::time::timeout(std::time::Duration::from_secs(5), budget.released()).await.expect("a release is signalled");
        drop(small);
        assert_eq!(budget.queued(), 0);
    }
}
