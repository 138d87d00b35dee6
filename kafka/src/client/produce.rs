//! Produce requests of one connection, combined: the batches of every partition waiting when a
//! request goes out ride in it together, one batch per partition (Kafka refuses a request with
//! two batches for one partition), so a thousand partitions led by one broker cost a handful of
//! requests per round rather than a thousand. Nothing waits on a timer to be combined: a
//! request goes out as soon as the connection is free, with whatever queued while the one
//! before was written and whatever the producers running at the same moment queued.
//!
//! Order is kept per partition: the batches of a partition go out in the order they were
//! queued, each in a later request than the one before, and a broker handles the requests of
//! a connection in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ProduceResponse;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::frame::ProducePartition;

/// What the leader said about an appended record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    pub base_offset: i64,
    pub log_append_time: i64,
}

/// Asked right before a queued batch is written: whether it still may go out. A producer that
/// lost the right to write its partitions (its group moved them, say) says no, and its batches
/// still queued are answered [`Error::Withdrawn`] instead of being written.
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

/// Past this many bytes of records a request takes no more partitions (one batch always goes,
/// however large); well below Kafka's `socket.request.max.bytes`.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// One partition's batch waiting for a request.
pub(super) struct Queued {
    pub transactional_id: Option<Arc<str>>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topic: Arc<str>,
    pub partition: i32,
    pub records: Vec<Bytes>,
    pub gate: Option<Gate>,
    pub reply: oneshot::Sender<Result<ProduceAck>>,
}

impl Queued {
    fn len(&self) -> usize {
        self.records.iter().map(|r| r.len()).sum()
    }

    /// Whether the batch can share a request that `other` is in.
    fn goes_with(&self, other: &Queued) -> bool {
        (&self.transactional_id, self.acks, self.timeout_ms) == (&other.transactional_id, other.acks, other.timeout_ms)
    }

    fn fail(self, e: Error) {
        let _ = self.reply.send(Err(e));
    }
}

/// A produce request on its way; [`PendingProduce::ack`] reads the leader's answer.
pub struct PendingProduce {
    pub(super) reply: oneshot::Receiver<Result<ProduceAck>>,
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) addr: String,
}

impl PendingProduce {
    pub async fn ack(self) -> Result<ProduceAck> {
        match self.reply.await {
            Ok(answer) => answer,
            // The connection went away with the batch queued or in flight.
            Err(_) => Err(Error::Disconnected(format!("{} (producing to {}/{})", self.addr, self.topic, self.partition))),
        }
    }
}

/// The batches the next request carries, taken from the front of `waiting` in order: those
/// that go with the first, at most one per partition and none behind a batch of the same
/// partition left waiting, up to [`MAX_REQUEST_BYTES`].
pub(super) fn next_request(waiting: &mut VecDeque<Queued>) -> Vec<Queued> {
    let mut taken: Vec<Queued> = Vec::new();
    let mut left = VecDeque::new();
    let mut seen: HashSet<(Arc<str>, i32)> = HashSet::new();
    let mut bytes = 0;
    for q in waiting.drain(..) {
        let first_seen = seen.insert((q.topic.clone(), q.partition));
        let fits = match taken.first() {
            None => true,
            Some(first) => q.goes_with(first) && bytes + q.len() <= MAX_REQUEST_BYTES,
        };
        if first_seen && fits {
            bytes += q.len();
            taken.push(q);
        } else {
            left.push_back(q);
        }
    }
    *waiting = left;
    taken
}

/// The batches of one request grouped by topic, topics in the order they first come.
pub(super) fn by_topic(batches: &[Queued]) -> Vec<(&str, Vec<ProducePartition<'_>>)> {
    let mut topics: Vec<(&str, Vec<ProducePartition<'_>>)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for q in batches {
        let i = *at.entry(&q.topic).or_insert_with(|| {
            topics.push((&q.topic, Vec::new()));
            topics.len() - 1
        });
        if let Some((_, partitions)) = topics.get_mut(i) {
            partitions.push(ProducePartition { index: q.partition, records: &q.records });
        }
    }
    topics
}

/// Hands every batch of a request its partition's answer.
pub(super) fn answer(batches: Vec<Queued>, response: Result<ProduceResponse>) {
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            for q in batches {
                let e = e.again();
                q.fail(e);
            }
            return;
        }
    };
    // Kafka answers partitions in no particular order.
    let mut by_partition = HashMap::new();
    for t in &response.responses {
        for p in &t.partition_responses {
            by_partition.insert((t.name.0.as_str(), p.index), p);
        }
    }
    for q in batches {
        let (topic, partition) = (&*q.topic, q.partition);
        let answer = match by_partition.get(&(topic, partition)) {
            None => Err(Error::Protocol(format!("no answer for {topic}/{partition} in the produce response"))),
            Some(p) if p.error_code != 0 => {
                let detail = p.error_message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
                Err(Error::kafka(p.error_code, format!("produce to {topic}/{partition}{detail}")))
            }
            Some(p) => Ok(ProduceAck { base_offset: p.base_offset, log_append_time: p.log_append_time_ms }),
        };
        let _ = q.reply.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(topic: &str, partition: i32, len: usize, txn: Option<&str>) -> (Queued, oneshot::Receiver<Result<ProduceAck>>) {
        let (reply, rx) = oneshot::channel();
        let q = Queued {
            transactional_id: txn.map(Arc::from),
            acks: -1,
            timeout_ms: 30_000,
            topic: Arc::from(topic),
            partition,
            records: vec![Bytes::from(vec![0u8; len])],
            gate: None,
            reply,
        };
        (q, rx)
    }

    fn names(batches: &[Queued]) -> Vec<String> {
        batches.iter().map(|q| format!("{}/{}", q.topic, q.partition)).collect()
    }

    #[test]
    fn a_request_takes_one_batch_per_partition_and_keeps_each_partitions_order() {
        let mut waiting: VecDeque<Queued> = [("a", 0), ("a", 1), ("a", 0), ("b", 0), ("a", 1), ("a", 2)]
            .into_iter()
            .enumerate()
            .map(|(i, (t, p))| {
                let (mut q, _) = queued(t, p, 10, None);
                q.records = vec![Bytes::from(vec![i as u8])];
                q
            })
            .collect();
        let first = next_request(&mut waiting);
        assert_eq!(names(&first), ["a/0", "a/1", "b/0", "a/2"]);
        assert_eq!(first.iter().map(|q| q.records[0][0]).collect::<Vec<_>>(), [0, 1, 3, 5], "the first batch of each partition");
        let second = next_request(&mut waiting);
        assert_eq!(names(&second), ["a/0", "a/1"]);
        assert_eq!(second.iter().map(|q| q.records[0][0]).collect::<Vec<_>>(), [2, 4]);
        assert!(waiting.is_empty());
        let topics = by_topic(&first);
        assert_eq!(topics.iter().map(|(t, ps)| (*t, ps.iter().map(|p| p.index).collect::<Vec<_>>())).collect::<Vec<_>>(), [("a", vec![0, 1, 2]), ("b", vec![0])]);
    }

    #[test]
    fn a_batch_left_out_holds_back_the_later_batches_of_its_partition() {
        // Another transactional id, then too large: neither goes, nor anything behind them of
        // their partitions; other partitions still do.
        let big = MAX_REQUEST_BYTES;
        let mut waiting: VecDeque<Queued> = [
            queued("t", 0, 100, Some("x")).0,
            queued("t", 1, 100, Some("y")).0,
            queued("t", 2, big, Some("x")).0,
            queued("t", 1, 100, Some("x")).0,
            queued("t", 2, 100, Some("x")).0,
            queued("t", 3, 100, Some("x")).0,
        ]
        .into_iter()
        .collect();
        assert_eq!(names(&next_request(&mut waiting)), ["t/0", "t/3"]);
        assert_eq!(names(&next_request(&mut waiting)), ["t/1"], "y's batch goes alone");
        assert_eq!(names(&next_request(&mut waiting)), ["t/2"], "a batch at the size bound goes in a request of its own");
        assert_eq!(names(&next_request(&mut waiting)), ["t/1", "t/2"]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn each_batch_gets_its_partitions_answer() {
        use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
        use kafka_protocol::messages::TopicName;
        use kafka_protocol::protocol::StrBytes;
        let (a, mut ra) = queued("t", 0, 1, None);
        let (b, mut rb) = queued("t", 1, 1, None);
        let (c, mut rc) = queued("u", 0, 1, None);
        let response = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(vec![
                PartitionProduceResponse::default().with_index(1).with_error_code(6),
                PartitionProduceResponse::default().with_index(0).with_base_offset(42),
            ])]);
        answer(vec![a, b, c], Ok(response));
        assert_eq!(ra.try_recv().expect("answered").expect("ok").base_offset, 42);
        assert_eq!(rb.try_recv().expect("answered").expect_err("refused").code(), Some(6));
        assert!(matches!(rc.try_recv().expect("answered"), Err(Error::Protocol(_))), "a partition the broker left out");
        let (d, mut rd) = queued("t", 0, 1, None);
        let (e, mut re) = queued("t", 1, 1, None);
        answer(vec![d, e], Err(Error::Timeout("produce".into())));
        for rx in [&mut rd, &mut re] {
            assert!(rx.try_recv().expect("answered").expect_err("timed out").is_retriable());
        }
    }
}
