//! DescribeTopicPartitions (KIP-966): the partitions of topics, as Metadata lists them plus the
//! eligible leader replicas, paged by a cursor. Kafka's admin client asks it first when
//! describing topics (`kafka-topics --describe`) and falls back to Metadata without it.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::groups::OFFSETS_TOPIC;
use crate::server::BrokerState;
use crate::topics::validate_topic_name;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response holds.
const MAX_PARTITIONS: i32 = 2000;

/// Without ACLs every client may do everything a topic supports: READ (3), WRITE (4),
/// CREATE (5), DELETE (6), ALTER (7), DESCRIBE (8), DESCRIBE_CONFIGS (10) and ALTER_CONFIGS (11),
/// as a bit field of Kafka's AclOperation codes.
const TOPIC_OPERATIONS: i32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Topics in name order from the cursor on, each from the cursor's partition (0 for the
/// others), until the partition limit; the next cursor names where the limit stopped. An
/// unknown topic is listed with its error only when asked for by name.
pub fn handle(state: &BrokerState, req: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    match describe(state, &req) {
        Ok(resp) => resp,
        // A bad cursor fails every topic of the request, as Kafka's error response does.
        Err(error) => DescribeTopicPartitionsResponse::default().with_topics(
            req.topics
                .into_iter()
                .map(|t| DescribeTopicPartitionsResponseTopic::default().with_name(Some(t.name)).with_error_code(error.code()))
                .collect(),
        ),
    }
}

fn describe(state: &BrokerState, req: &DescribeTopicPartitionsRequest) -> Result<DescribeTopicPartitionsResponse, ResponseError> {
    let every_topic = req.topics.is_empty();
    let from_topic = req.cursor.as_ref().map(|c| c.topic_name.0.to_string()).unwrap_or_default();
    let names: BTreeSet<String> = if every_topic {
        state.topics.all().iter().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    let names: BTreeSet<String> = names.into_iter().filter(|n| *n >= from_topic).collect();
    if let Some(cursor) = &req.cursor {
        // The cursor's topic must be one of those asked for, its partition a valid index.
        if (!every_topic && !names.contains(&from_topic)) || cursor.partition_index < 0 {
            return Err(ResponseError::InvalidRequest);
        }
    }
    let first_partition = |name: &str| match &req.cursor {
        Some(c) if name == from_topic => c.partition_index,
        _ => 0,
    };
    let node = BrokerId(state.node_id());
    let mut remaining = req.response_partition_limit.clamp(1, MAX_PARTITIONS);
    let mut resp = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            // Every partition of the topics before fitted: go on with this one.
            resp.next_cursor = Some(cursor(&name, 0));
            break;
        }
        let Some(topic) = state.topics.get(&name) else {
            if !every_topic {
                let error = match validate_topic_name(&name) {
                    Ok(()) => ResponseError::UnknownTopicOrPartition,
                    Err(_) => ResponseError::InvalidTopicException,
                };
                resp.topics.push(topic_entry(&name, error.code()).with_is_internal(name == OFFSETS_TOPIC));
            }
            continue;
        };
        let count = topic.partitions.len() as i32;
        let start = first_partition(&name);
        let end = count.min(start.saturating_add(remaining));
        let partitions: Vec<_> = (start..end)
            .map(|index| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    // One replica, always in sync: nothing is eligible beyond the ISR.
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
            })
            .collect();
        remaining -= partitions.len() as i32;
        resp.topics.push(
            topic_entry(&name, 0)
                .with_topic_id(topic.id)
                .with_is_internal(name == OFFSETS_TOPIC)
                .with_partitions(partitions),
        );
        if end < count {
            resp.next_cursor = Some(cursor(&name, end));
            break;
        }
    }
    Ok(resp)
}

fn topic_entry(name: &str, error_code: i16) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error_code)
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_authorized_operations(TOPIC_OPERATIONS)
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default().with_topic_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partition_index(partition)
}

#[cfg(test)]
mod tests {
    //! The answers of Apache Kafka 4.3.1 to the same requests, on a broker holding
    //! `__consumer_offsets` (one partition) and `t1` (three).

    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};

    use super::*;
    use crate::config::BrokerConfig;

    fn request(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
        let name = |n: &str| TopicName(StrBytes::from_string(n.to_string()));
        DescribeTopicPartitionsRequest::default()
            .with_topics(topics.iter().map(|t| TopicRequest::default().with_name(name(t))).collect())
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| Cursor::default().with_topic_name(name(t)).with_partition_index(p)))
    }

    /// Each topic as `name:error:[partitions]`, then the next cursor.
    fn summary(resp: &DescribeTopicPartitionsResponse) -> (Vec<String>, Option<(String, i32)>) {
        let topics = resp
            .topics
            .iter()
            .map(|t| {
                let partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
                format!("{}:{}:{partitions:?}", t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(), t.error_code)
            })
            .collect();
        (topics, resp.next_cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index)))
    }

    #[test]
    fn pages_and_errors_as_kafka_does() {
        let dir = tempfile::tempdir().expect("dir");
        let state = crate::server::open_state(BrokerConfig::with_data_dir(dir.path()), "127.0.0.1:9092".parse().expect("addr")).expect("state");
        state.topics.create("t1", 3, Default::default()).map_err(|e| format!("{e:?}")).expect("topic");
        // Topics asked for, partition limit, cursor; then the answer and its next cursor.
        type Case<'a> = (&'a [&'a str], i32, Option<(&'a str, i32)>, &'a [&'a str], Option<(&'a str, i32)>);
        let cases: &[Case<'_>] = &[
            (&["t1", "missing"], 100, None, &["missing:3:[]", "t1:0:[0, 1, 2]"], None),
            (&[], 100, None, &["__consumer_offsets:0:[0]", "t1:0:[0, 1, 2]"], None),
            (&[], 2, None, &["__consumer_offsets:0:[0]", "t1:0:[0]"], Some(("t1", 1))),
            (&["t1"], 2, Some(("t1", 2)), &["t1:0:[2]"], None),
            (&["zz", "t1"], 1, None, &["t1:0:[0]"], Some(("t1", 1))),
            (&["t1"], 1, Some(("missing", 0)), &["t1:42:[]"], None),
            (&["t1"], 1, Some(("t1", -1)), &["t1:42:[]"], None),
            (&["t1"], 1, Some(("t1", 7)), &["t1:0:[]"], None),
            (&["bad name!"], 10, None, &["bad name!:17:[]"], None),
            (&[], 0, None, &["__consumer_offsets:0:[0]"], Some(("t1", 0))),
        ];
        for (topics, limit, cursor, want, want_cursor) in cases {
            let resp = handle(&state, request(topics, *limit, *cursor));
            let (got, next) = summary(&resp);
            assert_eq!((got, next), (want.iter().map(|s| s.to_string()).collect(), want_cursor.map(|(t, p)| (t.to_string(), p))), "{topics:?} limit {limit} from {cursor:?}");
        }
        let resp = handle(&state, request(&["t1"], 10, None));
        let t = &resp.topics[0];
        assert_eq!(t.topic_id, state.topics.get("t1").expect("t1").id);
        assert_eq!(t.topic_authorized_operations, 3576);
        assert_eq!(t.partitions[0].eligible_leader_replicas, Some(vec![]));
        assert_eq!(t.partitions[0].isr_nodes, vec![BrokerId(state.node_id())]);
    }
}
