use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::BrokerState;
use crate::topics::{validate_topic_name, Topic};

pub fn handle(state: &BrokerState, req: MetadataRequest, version: i16) -> MetadataResponse {
    let node = BrokerId(state.node_id());
    let broker = MetadataResponseBroker::default()
        .with_node_id(node)
        .with_host(StrBytes::from_string(state.advertised_host.clone()))
        .with_port(state.advertised_port);

    // v0 has no null list: an empty list means every topic; from v1 null means every topic.
    let requested = match req.topics {
        None => None,
        Some(list) if version == 0 && list.is_empty() => None,
        Some(list) => Some(list),
    };
    let topics = match requested {
        None => state.topics.all().iter().map(|t| describe(t, node)).collect(),
        Some(list) => list
            .into_iter()
            .map(|rt| match rt.name {
                Some(name) => by_name(state, name, req.allow_auto_topic_creation, node),
                None => match state.topics.get_by_id(rt.topic_id) {
                    Some(t) => describe(&t, node),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(rt.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string(state.cluster_id.clone())))
        .with_controller_id(node)
        .with_topics(topics)
}

fn by_name(state: &BrokerState, name: TopicName, allow_auto_create: bool, node: BrokerId) -> MetadataResponseTopic {
    if let Some(t) = state.topics.get(&name) {
        return describe(&t, node);
    }
    let error = |e: ResponseError| {
        MetadataResponseTopic::default().with_name(Some(name.clone())).with_error_code(e.code())
    };
    if validate_topic_name(&name).is_err() {
        return error(ResponseError::InvalidTopicException);
    }
    if allow_auto_create && state.config.auto_create_topics {
        let created = state.topics.create(&name, state.config.default_partitions, Default::default());
        return match created {
            Ok(t) => {
                tracing::info!(topic = %name.0, "auto-created topic");
                // Kafka reports a just-created topic as LEADER_NOT_AVAILABLE once; ours is
                // ready at once, so describe it.
                describe(&t, node)
            }
            Err(_) => match state.topics.get(&name) {
                Some(t) => describe(&t, node),
                None => error(ResponseError::UnknownTopicOrPartition),
            },
        };
    }
    error(ResponseError::UnknownTopicOrPartition)
}

fn describe(topic: &Topic, node: BrokerId) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic.topic_name()))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name == crate::groups::OFFSETS_TOPIC || topic.name == crate::transactions::TXN_TOPIC)
        .with_partitions(partitions)
}
