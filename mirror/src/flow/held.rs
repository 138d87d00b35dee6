//! The memory of fetch answers that queued record sets hold. A record set keeps slices of the
//! answer it came in rather than a copy: the whole answer stays in memory until the last set
//! holding a slice of it is acknowledged. A partition with a large share of an answer holds at
//! most eight times what it queued; answers held for the sake of small shares are counted
//! against a budget, and past it a small share is copied, so that slow target partitions cannot
//! keep many large answers alive for a few bytes each. Within the budget nothing is copied, however
//! many partitions an answer spreads over.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::transform::Prepared;

/// A record set on its way to a partition's producer, with the answer memory it holds.
pub(super) struct Queued {
    pub(super) set: Prepared,
    /// Released when the set is done with (produced, or dropped at a rebalance).
    pub(super) held: Option<Arc<Held>>,
}

/// Bytes of answers held for small shares, and the most that may be.
pub(super) struct AnswerBudget {
    held: Arc<AtomicUsize>,
    limit: usize,
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

impl AnswerBudget {
    pub(super) fn new(limit: usize) -> AnswerBudget {
        AnswerBudget { held: Arc::new(AtomicUsize::new(0)), limit }
    }

    /// Bytes of answers held now for small shares.
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
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
    /// for a share of at least an eighth or within the budget (with the hold to keep beside
    /// it), else a copy of its own.
    pub(super) fn keep(&mut self, records: Bytes) -> (Bytes, Option<Arc<Held>>) {
        if records.len().saturating_mul(8) >= self.len {
            return (records, None);
        }
        let (budget, len) = (self.budget, self.len);
        match self.held.get_or_insert_with(|| budget.hold(len)) {
            Some(held) => (records, Some(held.clone())),
            None => (Bytes::copy_from_slice(&records), None),
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
        let budget = AnswerBudget::new(3000);
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
        let budget = AnswerBudget::new(1500);
        let first = Bytes::from(vec![1u8; 1000]);
        let (_, held) = Answer::new(&budget, first.len()).keep(first.slice(0..10));
        assert!(held.is_some());
        let second = Bytes::from(vec![2u8; 1000]);
        let mut handing = Answer::new(&budget, second.len());
        let (small, none) = handing.keep(second.slice(0..10));
        assert!(none.is_none() && !within(&small, &second), "a small share past the budget gets its own copy");
        assert_eq!(&small[..], &second[0..10]);
        let (large, none) = handing.keep(second.slice(0..200));
        assert!(none.is_none() && within(&large, &second), "an eighth or more of its answer is never copied");
        assert_eq!(budget.held(), 1000);
        drop(held);
        let (again, held) = Answer::new(&budget, second.len()).keep(second.slice(0..10));
        assert!(held.is_some() && within(&again, &second), "room again once the first answer was let go");
    }
}
