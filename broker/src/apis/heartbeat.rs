use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::string;
use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = req.group_instance_id.as_ref().map(string);
    let error = state.groups.heartbeat(&req.group_id.0, &req.member_id, instance.as_deref(), req.generation_id);
    HeartbeatResponse::default().with_error_code(error)
}
