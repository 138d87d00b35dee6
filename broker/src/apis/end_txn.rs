//! EndTxn: commits or aborts the producer's open transaction; the markers are written before
//! the answer.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use crate::server::BrokerState;
use crate::transactions::fenced;

pub fn handle(state: &BrokerState, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = req.transactional_id.0.to_string();
    let outcome = state.txns.end(state, &id, req.producer_id.0, req.producer_epoch, req.committed, fenced(version, 2));
    if let Err(e) = &outcome {
        tracing::info!(transactional_id = %id, committed = req.committed, "EndTxn refused: {e:?}");
    }
    EndTxnResponse::default()
        .with_error_code(outcome.err().map_or(0, |e| e.code()))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
