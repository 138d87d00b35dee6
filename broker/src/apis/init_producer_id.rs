//! InitProducerId (v0..=5): idempotent producers get a fresh id; transactional ones get their
//! transactional id's producer id with a new epoch from the transaction coordinator.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::server::BrokerState;

pub fn handle(state: &BrokerState, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let refused = |e: ResponseError| {
        InitProducerIdResponse::default().with_error_code(e.code()).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    let granted = |(id, epoch): (i64, i16)| InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch);
    match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
        Some("") => refused(ResponseError::InvalidRequest),
        Some(id) => {
            let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
            match state.txns.init_producer_id(state, id, req.transaction_timeout_ms, expected) {
                Ok(answer) => granted(answer),
                Err(e) => {
                    tracing::info!(transactional_id = id, "InitProducerId refused: {e:?}");
                    refused(e)
                }
            }
        }
        // As Kafka does without a transactional id, every request gets a fresh id at epoch 0
        // (an idempotent producer bumping its epoch included).
        None => match state.producer_ids.allocate() {
            Ok(id) => granted((id, 0)),
            Err(e) => {
                tracing::error!("cannot allocate a producer id: {e}");
                refused(ResponseError::CoordinatorNotAvailable)
            }
        },
    }
}
