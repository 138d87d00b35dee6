//! TxnOffsetCommit: a group's offsets committed inside a transaction, written to the group
//! when the transaction commits and dropped when it aborts.

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;

use crate::server::BrokerState;
use crate::transactions::PendingOffset;

pub fn handle(state: &BrokerState, req: TxnOffsetCommitRequest, version: i16) -> TxnOffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let exists = |t: &str, p: i32| state.topics.get(t).is_some_and(|topic| topic.partition(p).is_some());
    let too_large = |m: &Option<kafka_protocol::protocol::StrBytes>| m.as_ref().is_some_and(|m| m.len() > state.groups.config().offset_metadata_max_bytes);
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            if exists(&t.name.0, p.partition_index) && !too_large(&p.committed_metadata) {
                offsets.push(PendingOffset {
                    group: group.clone(),
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                });
            }
        }
    }
    let outcome = state.txns.commit_offsets(state, &req.transactional_id.0, req.producer_id.0, req.producer_epoch, offsets);
    let outcome = match outcome {
        Err(ResponseError::ProducerFenced) if version < 2 => Err(ResponseError::InvalidProducerEpoch),
        other => other,
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if !exists(&t.name.0, p.partition_index) {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if too_large(&p.committed_metadata) {
                        ResponseError::OffsetMetadataTooLarge.code()
                    } else {
                        outcome.err().map_or(0, |e| e.code())
                    };
                    TxnOffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
