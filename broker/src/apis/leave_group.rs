use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::string;
use crate::server::BrokerState;

/// v0-v2 name one member; v3+ a batch, possibly by group.instance.id alone (admin removal).
pub fn handle(state: &BrokerState, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group = string(&req.group_id.0);
    if version < 3 {
        let (top, errors) = state.groups.leave(&group, &[(string(&req.member_id), None)]);
        // Before batching, the member's error is the response's error.
        let error = if top != 0 { top } else { errors.first().copied().unwrap_or(0) };
        return LeaveGroupResponse::default().with_error_code(error);
    }
    let leaving: Vec<(String, Option<String>)> =
        req.members.iter().map(|m| (string(&m.member_id), m.group_instance_id.as_ref().map(string))).collect();
    for m in req.members.iter().filter_map(|m| m.reason.as_ref().map(|r| (&m.member_id, r))) {
        tracing::debug!(group = %group, member = %m.0, reason = %m.1, "leave reason");
    }
    let (top, errors) = state.groups.leave(&group, &leaving);
    let members = req
        .members
        .into_iter()
        .zip(errors)
        .map(|(m, e)| MemberResponse::default().with_member_id(m.member_id).with_group_instance_id(m.group_instance_id).with_error_code(e))
        .collect();
    LeaveGroupResponse::default().with_error_code(top).with_members(members)
}
