//! Looking up the timestamp of the record at an offset, cheaply: one fetch per leader that
//! asks for a single byte per partition, so each partition answers with its first batch only,
//! whose header gives the timestamp without decompressing anything.
//!
//! Lag in seconds (the age of the oldest record not yet on the target) and a consumer group's
//! lag in seconds (the age of the first record it has not consumed) both come from here.

use std::collections::{BTreeMap, HashMap};

use tern_kafka::batch::BatchHeader;
use tern_kafka::client::Client;

use crate::names::Tp;

/// At most this many bytes per look-up fetch: partitions past it wait for the next look-up.
const MAX_BYTES: i32 = 1 << 20;

/// The timestamp (ms) of the batch holding each requested offset: its first record's, or the
/// broker's append time on LogAppendTime topics. The first record's time is the oldest of its
/// batch, so for an offset inside a batch it errs on the old side. Partitions the source could
/// not answer for (no leader, an error, nothing at that offset) are left out.
pub async fn batch_timestamps(client: &Client, at: &[(Tp, i64)]) -> HashMap<Tp, i64> {
    let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
    {
        let md = client.metadata_snapshot();
        for ((topic, partition), offset) in at {
            if let Some(leader) = md.leader(topic, *partition) {
                by_leader.entry(leader).or_default().push((topic.clone(), *partition, *offset));
            }
        }
    }
    let mut out = HashMap::new();
    for (leader, parts) in by_leader {
        let resp = match client.fetch(leader, &parts, 0, MAX_BYTES, 1).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(leader, "timestamp look-up: {e}");
                continue;
            }
        };
        for t in resp.responses {
            let topic = t.topic.0.to_string();
            for p in t.partitions {
                if p.error_code != 0 {
                    continue;
                }
                let Some(records) = p.records else { continue };
                let Ok(h) = BatchHeader::parse(&records) else { continue };
                let ts = if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp };
                out.insert((topic.clone(), p.partition_index), ts);
            }
        }
    }
    out
}
