use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::BrokerState;

/// This node coordinates every group and every transaction; share groups (key type 2) are not
/// supported.
pub fn handle(state: &BrokerState, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let refusal = match req.key_type {
        0 | 1 => None,
        _ => Some((ResponseError::InvalidRequest, "Unsupported coordinator key type")),
    };
    let (error, message, node, host, port) = match refusal {
        None => (0, None, state.node_id(), state.advertised_host.clone(), state.advertised_port),
        Some((e, m)) => (e.code(), Some(StrBytes::from_static_str(m)), -1, String::new(), -1),
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(port)
                    .with_error_code(error)
                    .with_error_message(message.clone())
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_error_message(if version >= 1 { message } else { None })
        .with_node_id(BrokerId(node))
        .with_host(StrBytes::from_string(host))
        .with_port(port)
}
