use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::string;
use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions = req
        .topics
        .into_iter()
        .map(|t| (string(&t.name.0), t.partitions.into_iter().map(|p| p.partition_index).collect()))
        .collect();
    match state.groups.delete_offsets(&state.topics, &req.group_id.0, partitions) {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e),
        Ok(results) => {
            let topics = results
                .into_iter()
                .map(|(t, ps)| {
                    let partitions = ps
                        .into_iter()
                        .map(|(p, e)| OffsetDeleteResponsePartition::default().with_partition_index(p).with_error_code(e))
                        .collect();
                    OffsetDeleteResponseTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
