//! AlterConfigs (v0..=2), the legacy form: the given set replaces all of a topic's overrides.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::ResponseError;

use super::resource::{self, refuse_broker_change, Resource, ResourceError};
use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: AlterConfigsRequest) -> AlterConfigsResponse {
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
    AlterConfigsResponse::default().with_responses(responses)
}

fn alter(state: &BrokerState, r: &AlterConfigsResource, validate_only: bool) -> Result<(), ResourceError> {
    let keys: Vec<String> = r.configs.iter().map(|c| c.name.to_string()).collect();
    if let Some(dup) = resource::duplicate_key(r.configs.iter().map(|c| c.name.as_str())) {
        return Err((ResponseError::InvalidRequest, Some(format!("Duplicate config key in request: {dup}"))));
    }
    match resource::resolve(state, r.resource_type, &r.resource_name)? {
        Resource::Topic(topic) => {
            let nulls: Vec<&str> = r.configs.iter().filter(|c| c.value.is_none()).map(|c| c.name.as_str()).collect();
            if !nulls.is_empty() {
                return Err((ResponseError::InvalidConfig, Some(format!("Null value not supported for topic configs: {}", nulls.join(",")))));
            }
            let configs: BTreeMap<String, String> = r
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                .collect();
            super::incremental_alter_configs::apply(state, &topic.name, configs, validate_only)
        }
        Resource::Broker | Resource::ClusterDefault if keys.is_empty() => Ok(()),
        Resource::Broker | Resource::ClusterDefault => Err(refuse_broker_change(&keys)),
    }
}
