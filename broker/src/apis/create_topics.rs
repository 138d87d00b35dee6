use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::BrokerState;
use crate::config_entries;
use crate::topics::CreateError;

pub fn handle(state: &BrokerState, req: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    // A name given twice in one request fails for every occurrence, as in Kafka.
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        req.topics.iter().filter(|t| !seen.insert(t.name.0.to_string())).map(|t| t.name.0.to_string()).collect();

    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let fail = |e: ResponseError, msg: String| {
                result.clone().with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(msg)))
            };
            if duplicates.contains(&name) {
                return fail(ResponseError::InvalidRequest, format!("Create topics request from client contains multiple entries for topic {name}"));
            }
            let partitions = if !t.assignments.is_empty() {
                if t.num_partitions != -1 || t.replication_factor != -1 {
                    return fail(ResponseError::InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set.".into());
                }
                if !super::assigns_only_this_broker(t.assignments.iter().map(|a| a.broker_ids.as_slice()), state.node_id()) {
                    return fail(ResponseError::InvalidReplicaAssignment, format!("Replica assignment may only name broker {}", state.node_id()));
                }
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                state.config.default_partitions
            } else {
                t.num_partitions
            };
            if t.assignments.is_empty() && !(t.replication_factor == -1 || t.replication_factor == 1) {
                let msg = if t.replication_factor <= 0 {
                    "Replication factor must be larger than 0, or -1 to use the default value.".to_string()
                } else {
                    format!("Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only 1 broker(s) are registered.", t.replication_factor, t.replication_factor)
                };
                return fail(ResponseError::InvalidReplicationFactor, msg);
            }
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                match &c.value {
                    Some(v) => {
                        configs.insert(c.name.to_string(), v.to_string());
                    }
                    None => return fail(ResponseError::InvalidConfig, format!("Null value not supported for topic configs: {}", c.name)),
                }
            }
            let outcome = if req.validate_only {
                state.topics.check_create(&name, partitions, &configs).map(|_| None)
            } else {
                state.topics.create(&name, partitions, configs.clone()).map(|t| Some(t.id))
            };
            match outcome {
                Ok(id) => {
                    if id.is_some() {
                        tracing::info!(topic = %name, partitions, "created topic");
                    }
                    let mut ok = result.with_num_partitions(partitions).with_replication_factor(1);
                    if let Some(id) = id {
                        ok = ok.with_topic_id(id);
                    }
                    if version >= 5 {
                        ok = ok.with_configs(Some(described_configs(state, &configs)));
                    }
                    ok
                }
                Err(CreateError::AlreadyExists) => fail(ResponseError::TopicAlreadyExists, format!("Topic '{name}' already exists.")),
                Err(CreateError::InvalidName(m)) => fail(ResponseError::InvalidTopicException, m),
                Err(CreateError::InvalidPartitions(m)) => fail(ResponseError::InvalidPartitions, m),
                Err(CreateError::InvalidConfig(m)) => fail(ResponseError::InvalidConfig, m),
                Err(CreateError::Storage(m)) => {
                    tracing::error!(topic = %name, "could not create topic: {m}");
                    fail(ResponseError::KafkaStorageError, m)
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

fn described_configs(state: &BrokerState, overrides: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    config_entries::topic_entries(state, overrides)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(e.name))
                .with_value(e.value.map(StrBytes::from_string))
                .with_read_only(e.read_only)
                .with_config_source(e.source)
        })
        .collect()
}
