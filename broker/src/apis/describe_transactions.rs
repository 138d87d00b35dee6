//! DescribeTransactions: each transactional id's state, producer, timeout and partitions.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let all = state.txns.snapshot();
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let Some(m) = all.get(id.0.as_str()) else {
                return TransactionState::default().with_transactional_id(id).with_error_code(ResponseError::TransactionalIdNotFound.code());
            };
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.partitions {
                topics.entry(t).or_default().push(*p);
            }
            TransactionState::default()
                .with_transactional_id(id)
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| TopicData::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
                        .collect(),
                )
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
