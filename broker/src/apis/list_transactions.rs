//! ListTransactions v0..=1: transactional ids filtered by state, producer id and (v1) by how
//! long their transaction has been open.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use super::now_ms;
use crate::server::BrokerState;
use crate::transactions::TxnState;

pub fn handle(state: &BrokerState, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let (known, unknown): (Vec<&StrBytes>, Vec<&StrBytes>) = req.state_filters.iter().partition(|s| TxnState::from_name(s).is_some());
    let states: Vec<TxnState> = known.iter().filter_map(|s| TxnState::from_name(s)).collect();
    let now = now_ms();
    let listed = state
        .txns
        .snapshot()
        .into_iter()
        .filter(|(_, m)| req.state_filters.is_empty() || states.contains(&m.state))
        .filter(|(_, m)| req.producer_id_filters.is_empty() || req.producer_id_filters.contains(&ProducerId(m.producer_id)))
        // KIP-994: only transactions open longer than the filter (-1: no filter).
        .filter(|(_, m)| req.duration_filter < 0 || (m.start_ms >= 0 && now - m.start_ms > req.duration_filter))
        .map(|(id, m)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown.into_iter().cloned().collect()).with_transaction_states(listed)
}
