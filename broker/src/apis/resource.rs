//! The config resources of Describe/Alter/IncrementalAlterConfigs: which topic or broker a
//! request names, or the Kafka error for one it cannot name.

use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::BrokerState;
use crate::topics::{validate_topic_name, Topic};

/// Kafka's `ConfigResource.Type` codes.
pub const TYPE_TOPIC: i8 = 2;
pub const TYPE_BROKER: i8 = 4;

pub enum Resource {
    Topic(Arc<Topic>),
    /// This broker, named by its id.
    Broker,
    /// The broker resource with an empty name: cluster-wide dynamic defaults.
    ClusterDefault,
}

pub type ResourceError = (ResponseError, Option<String>);

pub fn resolve(state: &BrokerState, resource_type: i8, name: &str) -> Result<Resource, ResourceError> {
    match resource_type {
        TYPE_TOPIC => {
            validate_topic_name(name).map_err(|m| (ResponseError::InvalidTopicException, Some(m)))?;
            match state.topics.get(name) {
                Some(t) => Ok(Resource::Topic(t)),
                None => Err((ResponseError::UnknownTopicOrPartition, Some(format!("The topic '{name}' does not exist.")))),
            }
        }
        TYPE_BROKER if name.is_empty() => Ok(Resource::ClusterDefault),
        TYPE_BROKER if name.trim().parse::<i32>().ok() == Some(state.node_id()) => Ok(Resource::Broker),
        TYPE_BROKER => Err((
            ResponseError::InvalidRequest,
            Some(format!("Unexpected broker id, expected {} or empty string, but received {name}", state.node_id())),
        )),
        other => Err((ResponseError::InvalidRequest, Some(format!("Unsupported resource type {other}")))),
    }
}

/// Broker settings are static here; Kafka would update the dynamic ones.
pub fn refuse_broker_change(keys: &[String]) -> ResourceError {
    (
        ResponseError::InvalidConfig,
        Some(format!(
            "Cannot update these configs dynamically: {}. Broker configs of this broker are static; set them at startup",
            keys.join(",")
        )),
    )
}

/// The error code and message a resource's entry in an alter response carries.
pub fn outcome(result: Result<(), ResourceError>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((e, m)) => (e.code(), m.map(StrBytes::from_string)),
    }
}

/// The first config name given twice in one resource of an alter request.
pub fn duplicate_key<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}
