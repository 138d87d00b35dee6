//! DescribeConfigs (v1..=4): a topic's configs with their sources, or the broker's own
//! settings; synonyms and documentation when asked for.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::resource::{self, Resource};
use crate::config_entries::{self, ConfigEntry};
use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| describe(state, r, req.include_synonyms, req.include_documentation, version))
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    state: &BrokerState,
    r: DescribeConfigsResource,
    synonyms: bool,
    documentation: bool,
    version: i16,
) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name.clone());
    let entries = match resource::resolve(state, r.resource_type, &r.resource_name) {
        Ok(Resource::Topic(topic)) => config_entries::topic_entries(state, &topic.configs),
        Ok(Resource::Broker) => config_entries::broker_entries(state),
        // The cluster-wide dynamic defaults: this broker has none.
        Ok(Resource::ClusterDefault) => Vec::new(),
        Err((code, message)) => {
            return result.with_error_code(code.code()).with_error_message(message.map(StrBytes::from_string));
        }
    };
    // Null or empty asks for every key, as in Kafka.
    let wanted = |e: &ConfigEntry| {
        r.configuration_keys.as_ref().is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| **k == *e.name))
    };
    let configs = entries
        .into_iter()
        .filter(wanted)
        .map(|e| to_wire(e, synonyms, documentation, version))
        .collect();
    result.with_configs(configs)
}

fn to_wire(e: ConfigEntry, synonyms: bool, documentation: bool, version: i16) -> DescribeConfigsResourceResult {
    let synonyms = if synonyms {
        e.synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(s.name))
                    .with_value(s.value.map(StrBytes::from_string))
                    .with_source(s.source)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut out = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(e.name))
        .with_value(e.value.map(StrBytes::from_string))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(false)
        .with_synonyms(synonyms);
    // Type and documentation exist from v3 on.
    if version >= 3 {
        out = out.with_config_type(e.config_type);
        if documentation {
            out = out.with_documentation(Some(StrBytes::from_static_str(e.documentation)));
        }
    }
    out
}
