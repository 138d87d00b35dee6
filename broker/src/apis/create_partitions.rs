//! CreatePartitions (v0..=3): grows a topic; Kafka never shrinks one.

use std::collections::HashSet;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::BrokerState;
use crate::topics::AlterError;

pub fn handle(state: &BrokerState, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> =
        req.topics.iter().filter(|t| !seen.insert(t.name.0.to_string())).map(|t| t.name.0.to_string()).collect();
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let fail = |e: ResponseError, msg: Option<String>| {
                result.clone().with_error_code(e.code()).with_error_message(msg.map(StrBytes::from_string))
            };
            if duplicates.contains(&name) {
                return fail(ResponseError::InvalidRequest, Some(format!("Duplicate topic in request: {name}")));
            }
            if let Some(assignments) = &t.assignments {
                if !super::assigns_only_this_broker(assignments.iter().map(|a| a.broker_ids.as_slice()), state.node_id()) {
                    return fail(
                        ResponseError::InvalidReplicaAssignment,
                        Some(format!("Replica assignment may only name broker {}", state.node_id())),
                    );
                }
                let current = state.topics.get(&name).map_or(0, |tp| tp.partitions.len() as i64);
                if assignments.len() as i64 != i64::from(t.count) - current && t.count as i64 > current {
                    return fail(
                        ResponseError::InvalidReplicaAssignment,
                        Some(format!(
                            "Attempted to add {} additional partition(s), but only {} assignment(s) were specified.",
                            i64::from(t.count) - current,
                            assignments.len()
                        )),
                    );
                }
            }
            match state.topics.create_partitions(&name, t.count, req.validate_only) {
                Ok(()) => {
                    if !req.validate_only {
                        tracing::info!(topic = %name, partitions = t.count, "added partitions");
                    }
                    result
                }
                Err(AlterError::UnknownTopic) => fail(ResponseError::UnknownTopicOrPartition, None),
                Err(AlterError::InvalidPartitions(m)) => fail(ResponseError::InvalidPartitions, Some(m)),
                Err(AlterError::InvalidConfig(m)) => fail(ResponseError::InvalidConfig, Some(m)),
                Err(AlterError::Storage(m)) => {
                    tracing::error!(topic = %name, "could not add partitions: {m}");
                    fail(ResponseError::KafkaStorageError, Some(m))
                }
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
