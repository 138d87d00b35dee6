use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::string;
use crate::groups::GroupState;
use crate::server::BrokerState;

/// Without ACLs every client may do everything a group supports: READ (3), DELETE (6) and
/// DESCRIBE (8), as a bit field of Kafka's AclOperation codes.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// An unknown group is described as Dead; from v6 (KIP-1043) it is GROUP_ID_NOT_FOUND, which
/// Kafka's admin client turns into `GroupIdNotFoundException` instead of an empty description.
pub fn handle(state: &BrokerState, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let ids: Vec<String> = req.groups.iter().map(|g| string(&g.0)).collect();
    let s = StrBytes::from_string;
    let groups = state
        .groups
        .describe(&ids)
        .into_iter()
        .map(|g| {
            let not_found = version >= 6 && g.state == GroupState::Dead;
            let members = g
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(if version >= 4 { m.instance_id.map(s) } else { None })
                        .with_client_id(s(m.client_id))
                        .with_client_host(s(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            let mut d = DescribedGroup::default()
                .with_error_code(g.error)
                .with_group_id(GroupId(s(g.group_id.clone())))
                .with_group_state(StrBytes::from_static_str(g.state.name()))
                .with_protocol_type(s(g.protocol_type))
                .with_protocol_data(s(g.protocol))
                .with_members(members);
            if not_found {
                d = d
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(s(format!("Group {} not found.", g.group_id))));
            } else if version >= 3 && req.include_authorized_operations {
                d = d.with_authorized_operations(GROUP_OPERATIONS);
            }
            d
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    /// As Apache Kafka 4.3.1 answers a group nobody knows.
    #[test]
    fn an_unknown_group_is_dead_before_v6_and_not_found_from_v6() {
        let dir = tempfile::tempdir().expect("dir");
        let state = crate::server::open_state(BrokerConfig::with_data_dir(dir.path()), "127.0.0.1:9092".parse().expect("addr")).expect("state");
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("nosuch"))])
            .with_include_authorized_operations(true);
        let v5 = &handle(&state, req.clone(), 5).groups[0];
        assert_eq!((v5.error_code, v5.group_state.as_str(), v5.authorized_operations), (0, "Dead", GROUP_OPERATIONS));
        let v6 = &handle(&state, req, 6).groups[0];
        assert_eq!((v6.error_code, v6.group_state.as_str()), (ResponseError::GroupIdNotFound.code(), "Dead"));
        assert_eq!(v6.error_message.as_deref(), Some("Group nosuch not found."));
        assert_eq!(v6.authorized_operations, i32::MIN);
    }
}
