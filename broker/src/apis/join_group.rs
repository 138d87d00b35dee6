use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{string, RequestContext};
use crate::groups::{JoinRequest, JoinResult, Reply};
use crate::server::BrokerState;

/// Waits, when the group is rebalancing, until the join phase completes: only this connection
/// is held, as in Kafka.
pub async fn handle(state: &BrokerState, req: JoinGroupRequest, version: i16, cx: &RequestContext) -> JoinGroupResponse {
    let instance_id = if version >= 5 { req.group_instance_id.as_ref().map(string) } else { None };
    let member_id = string(&req.member_id);
    let join = JoinRequest {
        group_id: string(&req.group_id.0),
        member_id: member_id.clone(),
        require_known_member_id: version >= 4 && instance_id.is_none(),
        supports_skip_assignment: version >= 9,
        instance_id,
        client_id: cx.client_id.clone(),
        client_host: cx.client_host.clone(),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        session_timeout_ms: req.session_timeout_ms,
        protocol_type: string(&req.protocol_type),
        protocols: req.protocols.into_iter().map(|p| (string(&p.name), p.metadata)).collect(),
    };
    let result = match state.groups.join(join) {
        Reply::Ready(r) => r,
        // The member was replaced by a newer JoinGroup of its own, or the broker is stopping.
        Reply::Parked(rx) => rx.await.unwrap_or_else(|_| JoinResult::error(&member_id, ResponseError::RebalanceInProgress.code())),
    };
    response(result, version)
}

fn response(r: JoinResult, version: i16) -> JoinGroupResponse {
    let s = StrBytes::from_string;
    let members = r
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(s(id))
                .with_group_instance_id(if version >= 5 { instance.map(s) } else { None })
                .with_metadata(metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation)
        .with_protocol_type(if version >= 7 { r.protocol_type.map(s) } else { None })
        // Null only from v7; before, "no protocol" is the empty string.
        .with_protocol_name(if version >= 7 { r.protocol_name.map(s) } else { Some(s(r.protocol_name.unwrap_or_default())) })
        .with_leader(s(r.leader))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(s(r.member_id))
        .with_members(members)
}
