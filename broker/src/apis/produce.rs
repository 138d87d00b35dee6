use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::now_ms;
use crate::server::BrokerState;
use crate::storage;

/// Appends every partition's record set; `None` for acks=0, which gets no response.
///
/// A retry of an idempotent producer's batch that is already in the log is answered with
/// the original offsets and no error, as Kafka answers it.
pub fn handle(state: &BrokerState, req: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks_valid = matches!(req.acks, -1 | 0 | 1);
    let mut appended = false;
    let responses: Vec<TopicProduceResponse> = req
        .topic_data
        .into_iter()
        .map(|td| {
            let topic = state.topics.get(&td.name);
            let partition_responses = td
                .partition_data
                .into_iter()
                .map(|pd| {
                    let base = PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    let fail = |e: ResponseError, msg: Option<String>| {
                        base.clone().with_error_code(e.code()).with_error_message(msg.map(StrBytes::from_string))
                    };
                    if !acks_valid {
                        return fail(ResponseError::InvalidRequiredAcks, None);
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(pd.index)) else {
                        return fail(ResponseError::UnknownTopicOrPartition, None);
                    };
                    // Only the coordinators write their internal topics, as in Kafka.
                    if [crate::groups::OFFSETS_TOPIC, crate::transactions::TXN_TOPIC].contains(&td.name.0.as_str()) {
                        return fail(ResponseError::InvalidTopicException, Some(format!("Cannot append to internal topic {}", td.name.0)));
                    }
                    let records = pd.records.unwrap_or_default();
                    if let Err((code, message)) = validate_records(version, &records) {
                        tracing::warn!(topic = %td.name.0, partition = pd.index, "produce refused: {message}");
                        return fail(code, Some(message));
                    }
                    let log_append_time = topic.as_ref().is_some_and(|t| t.log_append_time());
                    // A transactional batch must belong to its producer's open transaction; the
                    // coordinator's state stays shared over the append, so no marker can come
                    // between (appends to other partitions go on meanwhile).
                    let transactional = match tern_kafka::batch::Batches::new(&records).next() {
                        Some(Ok((_, h))) if h.is_transactional() && !h.is_control() => Some(h),
                        _ => None,
                    };
                    let _open_txn = match transactional {
                        Some(h) => match state.txns.verify_produce(h.producer_id, h.producer_epoch, &td.name.0, pd.index) {
                            Ok(lock) => Some(lock),
                            Err((code, message)) => {
                                tracing::warn!(topic = %td.name.0, partition = pd.index, "produce refused: {message}");
                                return fail(code, Some(message));
                            }
                        },
                        None => None,
                    };
                    let outcome = {
                        let mut log = partition.log();
                        log.append_from_client(&records, now_ms(), log_append_time).map(|info| (info, log.log_start_offset()))
                    };
                    match outcome {
                        Ok((info, log_start)) => {
                            appended |= !info.duplicate;
                            if info.duplicate {
                                tracing::debug!(topic = %td.name.0, partition = pd.index, offset = info.base_offset, "duplicate batch of an idempotent producer acknowledged");
                            }
                            base.with_base_offset(info.base_offset)
                                .with_log_append_time_ms(info.log_append_time.unwrap_or(-1))
                                .with_log_start_offset(log_start)
                        }
                        Err(e) => {
                            let code = storage_error_code(&e);
                            tracing::warn!(topic = %td.name.0, partition = pd.index, "produce refused: {e}");
                            let failed = fail(code, Some(e.to_string()));
                            match e {
                                // Record errors exist from v8 on (KIP-467).
                                storage::Error::RecordErrors { errors, .. } if version >= 8 => failed.with_record_errors(
                                    errors
                                        .into_iter()
                                        .map(|r| {
                                            BatchIndexAndErrorMessage::default()
                                                .with_batch_index(r.index as i32)
                                                .with_batch_index_error_message(Some(StrBytes::from_string(r.message)))
                                        })
                                        .collect(),
                                ),
                                _ => failed,
                            }
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(td.name).with_partition_responses(partition_responses)
        })
        .collect();
    if appended {
        state.topics.notify_appended();
    }
    if req.acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// `ProduceRequest.validateRecords`: from version 3 on, exactly one batch per partition, of
/// magic 2; zstd only from version 7. The rest of Kafka's rules are the log's
/// ([`storage::client_rules`]).
fn validate_records(version: i16, records: &[u8]) -> Result<(), (ResponseError, String)> {
    let invalid = |m: String| Err((ResponseError::InvalidRecord, m));
    let Some(first) = tern_kafka::batch::Batches::new(records).next() else {
        return invalid(format!("Produce requests with version {version} must have at least one record batch per partition"));
    };
    if records.get(16).is_some_and(|&magic| magic != 2) {
        return invalid(format!("Produce requests with version {version} are only allowed to contain record batches with magic version 2"));
    }
    let Ok((_, header)) = first else {
        // A header or length the log's own checks refuse (CORRUPT_MESSAGE).
        return Ok(());
    };
    if version < 7 && header.codec() == tern_kafka::batch::Codec::Zstd {
        return Err((ResponseError::UnsupportedCompressionType, format!("Produce requests with version {version} are not allowed to use ZStandard compression")));
    }
    if matches!(tern_kafka::batch::Batches::new(records).nth(1), Some(Ok(_))) {
        return invalid(format!("Produce requests with version {version} are only allowed to contain exactly one record batch per partition"));
    }
    Ok(())
}

pub fn storage_error_code(e: &storage::Error) -> ResponseError {
    match e {
        storage::Error::InvalidBatch(_) => ResponseError::CorruptMessage,
        storage::Error::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        storage::Error::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        storage::Error::Io(_) | storage::Error::Corrupt(_) | storage::Error::SyncFailed(_) | storage::Error::Offline(_) => {
            ResponseError::KafkaStorageError
        }
        storage::Error::InvalidRecordBatch(_) => ResponseError::InvalidRecord,
        storage::Error::RecordErrors { timestamp: true, .. } => ResponseError::InvalidTimestamp,
        storage::Error::RecordErrors { timestamp: false, .. } => ResponseError::InvalidRecord,
        storage::Error::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
        storage::Error::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
        storage::Error::TransactionalBatch(_) => ResponseError::InvalidTxnState,
    }
}
