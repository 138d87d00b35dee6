//! IncrementalAlterConfigs (v0..=1): SET, DELETE, APPEND and SUBTRACT on single keys of a
//! topic, validated as a whole against the resulting override set.

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::ResponseError;

use super::resource::{self, refuse_broker_change, Resource, ResourceError};
use crate::server::BrokerState;
use crate::topic_config;
use crate::topics::AlterError;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub fn handle(state: &BrokerState, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let (code, message) = resource::outcome(alter(state, &r, req.validate_only));
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn alter(state: &BrokerState, r: &AlterConfigsResource, validate_only: bool) -> Result<(), ResourceError> {
    let keys: Vec<String> = r.configs.iter().map(|c| c.name.to_string()).collect();
    if resource::duplicate_key(r.configs.iter().map(|c| c.name.as_str())).is_some() {
        return Err((ResponseError::InvalidRequest, Some("Error due to duplicate config keys".into())));
    }
    let topic = match resource::resolve(state, r.resource_type, &r.resource_name)? {
        Resource::Topic(t) => t,
        Resource::Broker | Resource::ClusterDefault if keys.is_empty() => return Ok(()),
        Resource::Broker | Resource::ClusterDefault => return Err(refuse_broker_change(&keys)),
    };
    let invalid = |m: String| (ResponseError::InvalidConfig, Some(m));
    let mut configs = topic.configs.clone();
    for c in &r.configs {
        let name = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string());
        match (c.config_operation, value) {
            (SET, Some(v)) => {
                configs.insert(name, v);
            }
            (SET, None) | (DELETE, _) => {
                configs.remove(&name);
            }
            (op @ (APPEND | SUBTRACT), v) => {
                let verb = if op == APPEND { "APPEND" } else { "SUBTRACT" };
                let def = topic_config::find(&name)
                    .filter(|d| topic_config::is_list(d))
                    .ok_or_else(|| invalid(format!("Can't {verb} to key {name} because its type is not LIST.")))?;
                let current = configs.get(&name).cloned().unwrap_or_else(|| topic_config::default_value(def, state.topics.defaults()));
                let mut items: Vec<String> = topic_config::list_items(&current).into_iter().map(str::to_string).collect();
                for item in topic_config::list_items(v.as_deref().unwrap_or_default()) {
                    if op == APPEND && !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    } else if op == SUBTRACT {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(name, items.join(","));
            }
            (op, _) => return Err((ResponseError::InvalidRequest, Some(format!("Unknown config operation {op} for key {name}")))),
        }
    }
    apply(state, &topic.name, configs, validate_only)
}

/// Installs a topic's new override set, mapping refusals to Kafka's codes.
pub fn apply(state: &BrokerState, topic: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), ResourceError> {
    match state.topics.alter_configs(topic, configs, validate_only) {
        Ok(()) => {
            if !validate_only {
                tracing::info!(topic, "altered topic configs");
            }
            Ok(())
        }
        Err(AlterError::UnknownTopic) => Err((ResponseError::UnknownTopicOrPartition, Some(format!("The topic '{topic}' does not exist.")))),
        Err(AlterError::InvalidConfig(m)) => Err((ResponseError::InvalidConfig, Some(m))),
        Err(AlterError::InvalidPartitions(m)) => Err((ResponseError::InvalidPartitions, Some(m))),
        Err(AlterError::Storage(m)) => {
            tracing::error!(topic, "could not persist topic configs: {m}");
            Err((ResponseError::KafkaStorageError, Some(m)))
        }
    }
}
