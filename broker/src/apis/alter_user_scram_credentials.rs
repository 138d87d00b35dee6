//! AlterUserScramCredentials: create, replace and delete SCRAM credentials. Clients send the
//! salted password (never the password); the broker keeps the derived keys. Each user's
//! changes apply together or not at all, with Kafka's checks and messages.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tern_kafka::sasl::scram::{ScramCredential, ScramHash, MAX_ITERATIONS, MIN_ITERATIONS};

use crate::server::BrokerState;

enum Op {
    Delete(i8),
    Upsert { mechanism: i8, iterations: i32, salt: bytes::Bytes, salted_password: bytes::Bytes },
}

impl Op {
    fn mechanism(&self) -> i8 {
        match self {
            Op::Delete(m) | Op::Upsert { mechanism: m, .. } => *m,
        }
    }
}

pub fn handle(state: &BrokerState, request: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
    let mut by_user: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for d in request.deletions {
        by_user.entry(d.name.to_string()).or_default().push(Op::Delete(d.mechanism));
    }
    for u in request.upsertions {
        by_user.entry(u.name.to_string()).or_default().push(Op::Upsert {
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt,
            salted_password: u.salted_password,
        });
    }
    let results = by_user
        .into_iter()
        .map(|(user, ops)| {
            let result = AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.clone()));
            match apply(state, &user, ops) {
                Ok(()) => result,
                Err((code, message)) => result.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn apply(state: &BrokerState, user: &str, ops: Vec<Op>) -> Result<(), (ResponseError, String)> {
    if user.is_empty() {
        return Err((ResponseError::UnacceptableCredential, "Username must not be empty".into()));
    }
    if state.scram_users.from_users_file(user) {
        // Its credentials come from the broker's users file, which wins over stored ones: a
        // change here would be reported as done and have no effect.
        return Err((ResponseError::UnacceptableCredential, format!("User {user} is defined in the broker's users file; change it there")));
    }
    let mut mechanisms: Vec<i8> = ops.iter().map(Op::mechanism).collect();
    mechanisms.sort_unstable();
    if mechanisms.windows(2).any(|w| w[0] == w[1]) {
        return Err((ResponseError::DuplicateResource, "A user credential cannot be altered twice in the same request".into()));
    }
    let (mut deletions, mut upsertions) = (Vec::new(), Vec::new());
    for op in ops {
        let hash = ScramHash::from_kafka_type(op.mechanism())
            .ok_or((ResponseError::UnsupportedSaslMechanism, format!("Unknown SCRAM mechanism {}", op.mechanism())))?;
        match op {
            Op::Delete(_) => {
                if !state.scram_users.exists(user, hash) {
                    return Err((ResponseError::ResourceNotFound, "Attempt to delete a user credential that does not exist".into()));
                }
                deletions.push(hash);
            }
            Op::Upsert { iterations, salt, salted_password, .. } => {
                if iterations < MIN_ITERATIONS as i32 {
                    return Err((ResponseError::UnacceptableCredential, "Too few iterations".into()));
                }
                if iterations > MAX_ITERATIONS as i32 {
                    return Err((ResponseError::UnacceptableCredential, "Too many iterations".into()));
                }
                if salt.is_empty() || salted_password.len() != hash.output_len() {
                    return Err((ResponseError::UnacceptableCredential, "Salt and salted password must be given, the latter as long as the hash".into()));
                }
                upsertions.push((hash, ScramCredential::from_salted_password(hash, salt.to_vec(), iterations as u32, &salted_password)));
            }
        }
    }
    state
        .scram_users
        .alter(user, &deletions, upsertions)
        .map_err(|e| (ResponseError::UnknownServerError, format!("storing the credentials failed: {e}")))
}
