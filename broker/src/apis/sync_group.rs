use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::string;
use crate::groups::{Reply, SyncRequest, SyncResult};
use crate::server::BrokerState;

/// Followers wait here until the leader's SyncGroup brings their assignment.
pub async fn handle(state: &BrokerState, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let sync = SyncRequest {
        group_id: string(&req.group_id.0),
        generation: req.generation_id,
        member_id: string(&req.member_id),
        instance_id: req.group_instance_id.as_ref().map(string),
        protocol_type: req.protocol_type.as_ref().map(string),
        protocol_name: req.protocol_name.as_ref().map(string),
        assignments: req.assignments.into_iter().map(|a| (string(&a.member_id), a.assignment)).collect(),
    };
    let result = match state.groups.sync(sync) {
        Reply::Ready(r) => r,
        Reply::Parked(rx) => rx.await.unwrap_or_else(|_| SyncResult::error(ResponseError::RebalanceInProgress.code())),
    };
    let v5 = |x: Option<String>| if version >= 5 { x.map(StrBytes::from_string) } else { None };
    SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_protocol_type(v5(result.protocol_type))
        .with_protocol_name(v5(result.protocol_name))
        .with_assignment(result.assignment)
}
