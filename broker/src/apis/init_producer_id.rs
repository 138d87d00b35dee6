//! InitProducerId (v0..=5) for idempotent producers. Transactions are not offered: a request
//! with a transactional id is refused with a fatal error rather than one a client would retry
//! forever.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let refused = |e: ResponseError| {
        InitProducerIdResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
        Some("") => return refused(ResponseError::InvalidRequest),
        Some(id) => {
            tracing::warn!(transactional_id = id, "InitProducerId refused: this broker does not support transactions");
            return refused(ResponseError::TransactionalIdAuthorizationFailed);
        }
        None => {}
    }
    // As Kafka does without a transactional id, every request gets a fresh id at epoch 0 (an
    // idempotent producer bumping its epoch included).
    match state.producer_ids.allocate() {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::error!("cannot allocate a producer id: {e}");
            refused(ResponseError::CoordinatorNotAvailable)
        }
    }
}
