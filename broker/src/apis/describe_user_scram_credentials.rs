//! DescribeUserScramCredentials: users and the SCRAM mechanisms (with iterations) they have.

use std::collections::HashSet;

use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::BrokerState;

fn infos(list: &[(tern_kafka::sasl::scram::ScramHash, u32)]) -> Vec<CredentialInfo> {
    list.iter().map(|(h, i)| CredentialInfo::default().with_mechanism(h.kafka_type()).with_iterations(*i as i32)).collect()
}

pub fn handle(state: &BrokerState, request: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    let all = state.scram_users.describe();
    let results = match request.users.filter(|u| !u.is_empty()) {
        // Null or empty: every user.
        None => all
            .iter()
            .map(|(user, list)| DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.clone())).with_credential_infos(infos(list)))
            .collect(),
        Some(users) => {
            let mut seen = HashSet::new();
            let duplicated: HashSet<String> = users.iter().map(|u| u.name.to_string()).filter(|n| !seen.insert(n.clone())).collect();
            let mut done = HashSet::new();
            users
                .iter()
                .map(|u| u.name.to_string())
                .filter(|n| done.insert(n.clone()))
                .map(|name| {
                    let result = DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(name.clone()));
                    if duplicated.contains(&name) {
                        return result
                            .with_error_code(ResponseError::DuplicateResource.code())
                            .with_error_message(Some(StrBytes::from_static_str("Cannot describe SCRAM credentials for the same user twice in a single request")));
                    }
                    match all.get(&name) {
                        Some(list) => result.with_credential_infos(infos(list)),
                        None => result
                            .with_error_code(ResponseError::ResourceNotFound.code())
                            .with_error_message(Some(StrBytes::from_string(format!("Attempt to describe nonexistent user: {name}")))),
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
