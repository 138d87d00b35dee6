//! DeleteRecords (v0..=2): moves a partition's log start offset forward and returns the new
//! low watermark.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::produce::storage_error_code;
use crate::server::BrokerState;

/// Kafka's "up to the high watermark" offset.
const HIGH_WATERMARK: i64 = -1;

pub fn handle(state: &BrokerState, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
                    let Some(partition) = topic.as_ref().and_then(|tp| tp.partition(p.partition_index)) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let mut log = partition.log();
                    // Kafka refuses to delete from a log that only compacts.
                    if !log.config().cleanup_delete {
                        return r.with_error_code(ResponseError::PolicyViolation.code());
                    }
                    let offset = if p.offset == HIGH_WATERMARK { log.log_end_offset() } else { p.offset };
                    match log.delete_records(offset) {
                        Ok(low_watermark) => {
                            tracing::info!(topic = %t.name.0, partition = p.partition_index, low_watermark, "records deleted");
                            r.with_low_watermark(low_watermark)
                        }
                        Err(e) => r.with_error_code(storage_error_code(&e).code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
