use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::produce::storage_error_code;
use crate::server::BrokerState;

/// Special timestamps of ListOffsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub fn handle(state: &BrokerState, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|lt| {
            let topic = state.topics.get(&lt.name);
            let partitions = lt
                .partitions
                .into_iter()
                .map(|lp| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(lp.partition_index)) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let log = partition.log();
                    let found = match lp.timestamp {
                        // read_committed consumers end at the last stable offset.
                        LATEST if req.isolation_level == 1 => Ok(Some((log.last_stable_offset(), -1))),
                        LATEST => Ok(Some((log.log_end_offset(), -1))),
                        EARLIEST => Ok(Some((log.log_start_offset(), -1))),
                        EARLIEST_LOCAL if version >= 8 => Ok(Some((log.log_start_offset(), -1))),
                        MAX_TIMESTAMP if version >= 7 => log.max_timestamp(),
                        ts if ts >= 0 => log.offset_for_timestamp(ts),
                        _ => return r.with_error_code(ResponseError::UnsupportedVersion.code()),
                    };
                    drop(log);
                    match found {
                        Ok(Some((offset, ts))) => {
                            // The leader epoch field exists from v4 on.
                            let epoch = if version >= 4 { 0 } else { -1 };
                            r.with_offset(offset).with_timestamp(ts).with_leader_epoch(epoch)
                        }
                        // No record at or after the timestamp: Kafka answers offset -1.
                        Ok(None) => r,
                        Err(e) => r.with_error_code(storage_error_code(&e).code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(lt.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
