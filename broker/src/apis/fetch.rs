use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::produce::storage_error_code;
use crate::server::BrokerState;
use crate::storage;
use crate::topics::Topic;

/// Kafka's fetch: answer at once when `min_bytes` are there (or on any error), otherwise
/// long-poll until data arrives or `max_wait_ms` passes.
///
/// Fetch sessions (KIP-227) are not offered: every response has session id 0, which tells the
/// client to keep sending full fetch requests.
pub async fn handle(state: &BrokerState, req: FetchRequest) -> FetchResponse {
    if req.session_id != 0 {
        return FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let topics: Vec<(Option<Arc<Topic>>, &kafka_protocol::messages::fetch_request::FetchTopic)> =
        req.topics.iter().map(|ft| (state.topics.get(&ft.topic), ft)).collect();
    let read_committed = req.isolation_level == 1;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    // As Kafka: the request's max_bytes, never more than fetch.max.bytes; 0 or less still
    // returns the first batch (KIP-74).
    let max_bytes = (req.max_bytes.max(0) as usize).min(state.config.fetch_max_bytes);
    let mut appends = state.topics.subscribe_appends();
    loop {
        appends.borrow_and_update();
        let (response, bytes, errors) = collect(&topics, max_bytes, read_committed);
        if bytes >= min_bytes || errors || Instant::now() >= deadline {
            return response;
        }
        match tokio::time::timeout_at(deadline, appends.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out (or the broker is shutting down): answer with whatever is there now.
            _ => return collect(&topics, max_bytes, read_committed).0,
        }
    }
}

fn collect(
    topics: &[(Option<Arc<Topic>>, &kafka_protocol::messages::fetch_request::FetchTopic)],
    max_bytes: usize,
    read_committed: bool,
) -> (FetchResponse, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let responses = topics
        .iter()
        .map(|(topic, ft)| {
            let partitions = ft
                .partitions
                .iter()
                .map(|fp| {
                    let data = PartitionData::default()
                        .with_partition_index(fp.partition)
                        .with_aborted_transactions(read_committed.then(Vec::new));
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                        errors = true;
                        return data
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_high_watermark(-1)
                            .with_records(Some(Bytes::new()));
                    };
                    let limit = (fp.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
                    let log = partition.log();
                    let (hw, lso, log_start) = (log.log_end_offset(), log.last_stable_offset(), log.log_start_offset());
                    let data = data.with_high_watermark(hw).with_last_stable_offset(lso).with_log_start_offset(log_start);
                    // KIP-74: the first batch of the first partition with data is returned even
                    // when it is larger than the limits, so a consumer can always progress.
                    let read = if limit == 0 && total > 0 {
                        Ok(Bytes::new())
                    } else {
                        log.read(fp.fetch_offset, limit, total == 0).map(|r| r.records)
                    };
                    // read_committed: nothing from the last stable offset on, and the aborted
                    // transactions among what is returned, for the consumer to skip.
                    let read = read.map(|records| if read_committed { below(records, lso) } else { records });
                    let aborted = match &read {
                        Ok(records) if read_committed && !records.is_empty() => log.aborted_between(fp.fetch_offset, lso),
                        _ => Vec::new(),
                    };
                    drop(log);
                    match read {
                        Ok(records) => {
                            total += records.len();
                            let data = if read_committed {
                                data.with_aborted_transactions(Some(
                                    aborted
                                        .into_iter()
                                        .map(|a| AbortedTransaction::default().with_producer_id(ProducerId(a.producer_id)).with_first_offset(a.first_offset))
                                        .collect(),
                                ))
                            } else {
                                data
                            };
                            data.with_records(Some(records))
                        }
                        Err(e) => {
                            errors = true;
                            if !matches!(e, storage::Error::OffsetOutOfRange { .. }) {
                                tracing::error!(topic = %ft.topic.0, partition = fp.partition, "fetch failed: {e}");
                            }
                            data.with_error_code(storage_error_code(&e).code()).with_records(Some(Bytes::new()))
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default().with_topic(ft.topic.clone()).with_topic_id(ft.topic_id).with_partitions(partitions)
        })
        .collect();
    (FetchResponse::default().with_responses(responses), total, errors)
}

/// The whole batches of `records` that start below `end`.
fn below(records: Bytes, end: i64) -> Bytes {
    let mut keep = 0;
    for item in tern_kafka::batch::Batches::new(&records) {
        match item {
            Ok((at, h)) if h.base_offset < end => keep = at + h.total_len(),
            _ => break,
        }
    }
    records.slice(..keep)
}
