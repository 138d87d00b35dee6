//! AddPartitionsToTxn v0..=3, as producers send it (transaction protocol version 1): the
//! partitions join the producer's open transaction. Later versions batch transactions for
//! brokers verifying each other, which a single node never needs.

use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use kafka_protocol::ResponseError;

use crate::server::BrokerState;
use crate::transactions::fenced;

pub fn handle(state: &BrokerState, req: AddPartitionsToTxnRequest, version: i16) -> AddPartitionsToTxnResponse {
    let wanted: Vec<(String, i32)> = req.v3_and_below_topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p))).collect();
    let exists = |(t, p): &(String, i32)| state.topics.get(t).is_some_and(|topic| topic.partition(*p).is_some());
    // As Kafka: an unknown partition fails the request, the others are not attempted.
    let outcome = if wanted.iter().all(exists) {
        state.txns.add_partitions(state, &req.v3_and_below_transactional_id.0, req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch, &wanted, fenced(version, 2))
    } else {
        Err(ResponseError::OperationNotAttempted)
    };
    let code_of = |tp: &(String, i32)| match outcome {
        Ok(()) => 0,
        Err(ResponseError::OperationNotAttempted) if !exists(tp) => ResponseError::UnknownTopicOrPartition.code(),
        Err(e) => e.code(),
    };
    let results = req
        .v3_and_below_topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| AddPartitionsToTxnPartitionResult::default().with_partition_index(*p).with_partition_error_code(code_of(&(name.clone(), *p))))
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name).with_results_by_partition(partitions)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
