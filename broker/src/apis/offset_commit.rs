use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::string;
use crate::groups::{CommitRequest, PartitionCommit};
use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    let commit = CommitRequest {
        group_id: string(&req.group_id.0),
        generation: req.generation_id_or_member_epoch,
        member_id: string(&req.member_id),
        instance_id: req.group_instance_id.as_ref().map(string),
        retention_ms: if version <= 4 { req.retention_time_ms } else { -1 },
        version,
        topics: req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| PartitionCommit {
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(string),
                    })
                    .collect();
                (string(&t.name.0), partitions)
            })
            .collect(),
    };
    let topics = state
        .groups
        .commit(&state.topics, commit)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, e)| OffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(e))
                .collect();
            OffsetCommitResponseTopic::default().with_name(TopicName(StrBytes::from_string(topic))).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
