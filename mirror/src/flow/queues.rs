//! The queues of the partitions a worker owns, in a list the fetch loop scans every round
//! without hashing a topic name. A round comes with each answer, and with many partitions the
//! answers come often and small, so what the scan costs per partition is what grows with the
//! partition count: here a flag, a queue's free room and a lane found once per metadata change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tern_kafka::client::ClusterMetadata;
use tokio::sync::mpsc;

use crate::names::Tp;

use super::held::{Backlog, Queued};

/// One connection to a source leader: the leader's id and the connection's number.
pub(super) type Lane = (i32, usize);

/// One owned partition's queue to its producer, where it is fetched from, and whether a fetch
/// for it is in flight.
struct Slot {
    tp: Tp,
    tx: mpsc::Sender<Queued>,
    /// The records queued, counted for the read-ahead (see [`super::held`]).
    backlog: Arc<Backlog>,
    lane: Option<Lane>,
    in_flight: bool,
}

#[derive(Default)]
pub(super) struct Queues {
    slots: Vec<Slot>,
    index: HashMap<Tp, usize>,
    /// The source metadata the lanes were found in, and the number of lanes per leader. Holding
    /// the snapshot also keeps a refresh from editing it in place (the client copies a snapshot
    /// someone holds), so another pointer means other metadata.
    lanes_from: Option<(Arc<ClusterMetadata>, usize)>,
}

impl Queues {
    pub(super) fn insert(&mut self, tp: Tp, tx: mpsc::Sender<Queued>) {
        let slot = Slot { tp: tp.clone(), tx, backlog: Arc::default(), lane: None, in_flight: false };
        match self.index.get(&tp) {
            Some(&at) => self.slots[at] = slot,
            None => {
                self.index.insert(tp, self.slots.len());
                self.slots.push(slot);
            }
        }
        self.lanes_from = None;
    }

    pub(super) fn clear(&mut self) {
        *self = Queues::default();
    }

    pub(super) fn sender(&self, tp: &Tp) -> Option<&mpsc::Sender<Queued>> {
        self.index.get(tp).and_then(|at| self.slots.get(*at)).map(|s| &s.tx)
    }

    /// What `tp` has queued for the target, counted for the read-ahead.
    pub(super) fn backlog(&self, tp: &Tp) -> Option<&Arc<Backlog>> {
        self.index.get(tp).and_then(|at| self.slots.get(*at)).map(|s| &s.backlog)
    }

    /// What every partition has queued for the target.
    pub(super) fn backlogs(&self) -> impl Iterator<Item = &Backlog> {
        self.slots.iter().map(|s| &*s.backlog)
    }

    /// Marks the partitions of a fetch sent (`true`) or answered (`false`).
    pub(super) fn set_in_flight(&mut self, tps: &[Tp], in_flight: bool) {
        for tp in tps {
            if let Some(slot) = self.index.get(tp).and_then(|at| self.slots.get_mut(*at)) {
                slot.in_flight = in_flight;
            }
        }
    }

    /// No fetch is in flight (none was sent yet, or they were dropped).
    pub(super) fn none_in_flight(&mut self) {
        for slot in &mut self.slots {
            slot.in_flight = false;
        }
    }

    /// Finds every partition's lane again when the metadata or the number of lanes changed:
    /// its leader, and which of the leader's `lanes` connections it is fetched over.
    pub(super) fn find_lanes(&mut self, md: &Arc<ClusterMetadata>, lanes: usize, lane_of: impl Fn(&Tp) -> usize) {
        if self.lanes_from.as_ref().is_some_and(|(seen, n)| Arc::ptr_eq(seen, md) && *n == lanes) {
            return;
        }
        for slot in &mut self.slots {
            slot.lane = md.leader(&slot.tp.0, slot.tp.1).map(|leader| (leader, lane_of(&slot.tp)));
        }
        self.lanes_from = Some((md.clone(), lanes));
    }

    /// The partitions a fetch may ask for now, with their lane: a leader known, room in the
    /// queue, no fetch in flight for the partition or on its lane.
    pub(super) fn ready<'a>(&'a self, busy: &'a HashSet<Lane>) -> impl Iterator<Item = (&'a Tp, Lane)> + 'a {
        self.slots.iter().filter(|s| !s.in_flight && s.tx.capacity() > 0).filter_map(|s| s.lane.map(|lane| (&s.tp, lane))).filter(|(_, lane)| !busy.contains(lane))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_kafka::client::{PartitionMetadata, TopicMetadata};

    fn metadata(leaders: &[i32]) -> Arc<ClusterMetadata> {
        let mut md = ClusterMetadata::default();
        let partitions = leaders.iter().enumerate().map(|(p, leader)| PartitionMetadata { partition: p as i32, leader: *leader, leader_epoch: 0, error_code: 0 }).collect();
        md.topics.insert("t".into(), TopicMetadata { name: "t".into(), id: uuid::Uuid::nil(), internal: false, partitions });
        Arc::new(md)
    }

    fn ready(q: &Queues, busy: &HashSet<Lane>) -> Vec<(i32, Lane)> {
        q.ready(busy).map(|(tp, lane)| (tp.1, lane)).collect()
    }

    #[tokio::test]
    async fn ready_partitions_follow_room_flights_busy_lanes_and_new_metadata() {
        let mut q = Queues::default();
        let mut rxs = Vec::new();
        for p in 0..3 {
            let (tx, rx) = mpsc::channel(1);
            q.insert(("t".into(), p), tx);
            rxs.push(rx);
        }
        let md = metadata(&[1, 2, -1]);
        q.find_lanes(&md, 1, |_| 0);
        let idle = HashSet::new();
        assert_eq!(ready(&q, &idle), vec![(0, (1, 0)), (1, (2, 0))], "a partition without a leader is not fetched");
        q.set_in_flight(&[("t".into(), 0)], true);
        assert_eq!(ready(&q, &idle), vec![(1, (2, 0))], "nor one in flight");
        let busy: HashSet<Lane> = [(2, 0)].into();
        assert!(ready(&q, &busy).is_empty(), "nor one whose lane has a fetch in flight");
        q.set_in_flight(&[("t".into(), 0)], false);
        q.sender(&("t".into(), 1)).expect("queue").try_send(Queued { set: Default::default(), held: super::super::held::Hold::none() }).expect("room");
        assert_eq!(ready(&q, &idle), vec![(0, (1, 0))], "nor one whose queue is full");
        // The same snapshot: lanes are not looked up again. Another: they are.
        q.find_lanes(&md, 1, |_| 5);
        assert_eq!(ready(&q, &idle), vec![(0, (1, 0))]);
        q.find_lanes(&metadata(&[3, 3, 3]), 2, |tp| tp.1 as usize % 2);
        assert_eq!(ready(&q, &idle), vec![(0, (3, 0)), (2, (3, 0))]);
        q.set_in_flight(&[("t".into(), 0), ("t".into(), 2)], true);
        q.none_in_flight();
        assert_eq!(ready(&q, &idle).len(), 2);
        q.clear();
        assert!(ready(&q, &idle).is_empty() && q.sender(&("t".into(), 0)).is_none());
        drop(rxs);
    }
}
