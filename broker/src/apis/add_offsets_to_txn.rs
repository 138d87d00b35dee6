//! AddOffsetsToTxn: a consumer group joins the producer's open transaction, so that offsets
//! committed with TxnOffsetCommit become visible when it commits.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use crate::server::BrokerState;
use crate::transactions::fenced;

pub fn handle(state: &BrokerState, req: AddOffsetsToTxnRequest, version: i16) -> AddOffsetsToTxnResponse {
    let outcome = state.txns.add_offsets(state, &req.transactional_id.0, req.producer_id.0, req.producer_epoch, &req.group_id.0, fenced(version, 2));
    AddOffsetsToTxnResponse::default().with_error_code(outcome.err().map_or(0, |e| e.code()))
}
