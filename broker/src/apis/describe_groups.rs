use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use super::string;
use crate::server::BrokerState;

/// Without ACLs every client may do everything a group supports: READ (3), DELETE (6) and
/// DESCRIBE (8), as a bit field of Kafka's AclOperation codes.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(state: &BrokerState, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let ids: Vec<String> = req.groups.iter().map(|g| string(&g.0)).collect();
    let s = StrBytes::from_string;
    let groups = state
        .groups
        .describe(&ids)
        .into_iter()
        .map(|g| {
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
                .with_group_id(GroupId(s(g.group_id)))
                .with_group_state(StrBytes::from_static_str(g.state))
                .with_protocol_type(s(g.protocol_type))
                .with_protocol_data(s(g.protocol))
                .with_members(members);
            if version >= 3 && req.include_authorized_operations {
                d = d.with_authorized_operations(GROUP_OPERATIONS);
            }
            d
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
