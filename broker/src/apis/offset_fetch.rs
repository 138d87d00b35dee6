use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::string;
use crate::server::BrokerState;

/// v1-v7 ask for one group, v8+ for a batch. `require_stable` needs no waiting: without
/// transactions no commit is ever pending.
pub fn handle(state: &BrokerState, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let name = |t: String| TopicName(StrBytes::from_string(t));
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| ts.into_iter().map(|t| (string(&t.name.0), t.partition_indexes)).collect());
                let topics = state
                    .groups
                    .fetch_offsets(&g.group_id.0, wanted)
                    .into_iter()
                    .map(|(t, ps)| {
                        let partitions = ps
                            .into_iter()
                            .map(|(p, f)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(f.offset)
                                    .with_committed_leader_epoch(f.leader_epoch)
                                    .with_metadata(Some(StrBytes::from_string(f.metadata)))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default().with_name(name(t)).with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default().with_group_id(GroupId(g.group_id.0)).with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.map(|ts| ts.into_iter().map(|t| (string(&t.name.0), t.partition_indexes)).collect());
    let topics = state
        .groups
        .fetch_offsets(&req.group_id.0, wanted)
        .into_iter()
        .map(|(t, ps)| {
            let partitions = ps
                .into_iter()
                .map(|(p, f)| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(f.offset)
                        .with_committed_leader_epoch(if version >= 5 { f.leader_epoch } else { -1 })
                        .with_metadata(Some(StrBytes::from_string(f.metadata)))
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(name(t)).with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}
