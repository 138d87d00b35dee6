use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::string;
use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(string).collect();
    let types: Vec<String> = req.types_filter.iter().map(string).collect();
    let groups = state
        .groups
        .list(&states, &types)
        .into_iter()
        .map(|(id, protocol_type, group_state)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_protocol_type(StrBytes::from_string(protocol_type));
            if version >= 4 {
                g = g.with_group_state(StrBytes::from_static_str(group_state));
            }
            if version >= 5 {
                g = g.with_group_type(StrBytes::from_static_str("classic"));
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
