use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::groups::OFFSETS_TOPIC;
use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    // v6 names topics by name or id in `topics`; earlier versions by name in `topic_names`.
    let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        req.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        req.topic_names.into_iter().map(|n| (Some(n), uuid::Uuid::nil())).collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => state.topics.get(n),
                None => state.topics.get_by_id(id),
            };
            let result = DeletableTopicResult::default().with_name(name.clone()).with_topic_id(id);
            let Some(topic) = topic else {
                let e = if name.is_some() { ResponseError::UnknownTopicOrPartition } else { ResponseError::UnknownTopicId };
                return result.with_error_code(e.code());
            };
            let result = result.with_name(Some(topic.topic_name())).with_topic_id(topic.id);
            if topic.name == OFFSETS_TOPIC {
                // The group coordinator writes there; without it every group would be lost.
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str("The internal topic __consumer_offsets cannot be deleted")));
            }
            match state.topics.delete(&topic.name) {
                Ok(true) => {
                    tracing::info!(topic = %topic.name, "deleted topic");
                    state.groups.on_topic_deleted(&topic.name);
                    result
                }
                Ok(false) => result.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                Err(e) => {
                    tracing::error!(topic = %topic.name, "could not delete topic: {e}");
                    result
                        .with_error_code(ResponseError::KafkaStorageError.code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string())))
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
