use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use super::string;
use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let ids: Vec<String> = req.groups_names.iter().map(|g| string(&g.0)).collect();
    let results = state
        .groups
        .delete_groups(&ids)
        .into_iter()
        .map(|(id, e)| DeletableGroupResult::default().with_group_id(GroupId(StrBytes::from_string(id))).with_error_code(e))
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
