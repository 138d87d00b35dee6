//! Failback of a failed-over flow, once its source is back.
//!
//! 1. The flow goes `failing-back`; its workers have left their group on the source.
//! 2. Records written on the target to the remote topics after the failover point
//!    (`us-east.orders` on eu-west) are copied back, in order, into their source topics
//!    (`orders` on us-east), with keys, values, headers and timestamps. Progress is kept in
//!    the failover point, so a failback that is run again continues instead of copying twice.
//! 3. Every group's position on the target is translated back to the source and committed
//!    there: before the failover point through the offset map, after it through the copy.
//!    Records that reached the source before the failure but never the target ("stranded")
//!    lie before the copied records; a group that read copied records on the target then
//!    resumes at the first stranded record, so it loses nothing (and re-reads the copied
//!    records it had read, which the report counts).
//! 4. The flow's replication position on the source moves past the copied records (they are
//!    already on the target), the offset map learns where they came from, and the flow is
//!    `active` again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tern_kafka::client::{Membership, LATEST};
use tern_kafka::records::PlainRecord;

use crate::checkpoint;
use crate::config::{ClusterConfig, Flow};
use crate::control::{self, FailoverState};
use crate::drill::connect_bounded;
use crate::error::{Error, Result};
use crate::failover::{read_state, save_point, wait_workers_gone, MovedGroup, MovedPartition};
use crate::clock::now_ms;
use crate::offset_map::Entry;
use crate::offset_map::store;

/// Records copied back for one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopiedPartition {
    pub topic: String,
    pub partition: i32,
    pub remote_topic: String,
    /// Target offsets copied: `[from, until)`.
    pub from: i64,
    pub until: i64,
    /// Source offset of the first copied record.
    pub source_start: i64,
    /// Records on the source that never reached the target.
    pub stranded_records: i64,
}

/// What `tern failback` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailbackReport {
    pub flow: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub state: FailoverState,
    pub copied_records: i64,
    pub partitions: Vec<CopiedPartition>,
    pub groups: Vec<MovedGroup>,
    pub errors: Vec<String>,
}

/// Records read from the target per round.
const CHUNK: i64 = 500;

/// Bytes of record data per produce request: under Kafka's default `max.message.bytes` (1 MB).
const BATCH_BYTES: usize = 900_000;

/// Splits records into runs that each fit one batch; a record larger than that goes alone.
fn split_by_size(records: &[kafka_protocol::records::Record]) -> Vec<&[kafka_protocol::records::Record]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0usize);
    for (i, r) in records.iter().enumerate() {
        let len = 64 + r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()) + r.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 8).sum::<usize>();
        if i > start && size + len > BATCH_BYTES {
            out.push(&records[start..i]);
            (start, size) = (i, 0);
        }
        size += len;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// Fails `flow` back to its source. See the module documentation.
pub async fn failback(flow: &Flow, clusters: &BTreeMap<String, ClusterConfig>, timeout: Duration, progress: impl Fn(&str) + Send + Sync) -> Result<FailbackReport> {
    let cluster = |name: &str| clusters.get(name).ok_or_else(|| Error::Config(format!("flow {} names unknown cluster {name}", flow.name())));
    let deadline = Instant::now() + timeout;
    let started_at_ms = now_ms();
    let target = connect_bounded(&flow.target, cluster(&flow.target)?, timeout).await.map_err(Error::Unreachable)?;
    let current = control::read(&target, &flow.target, &flow.name()).await?;
    if !current.failed_over() {
        return Err(Error::State(format!("flow {} is {}, not failed over: nothing to fail back", flow.name(), current.state)));
    }
    let source = connect_bounded(&flow.source, cluster(&flow.source)?, timeout)
        .await
        .map_err(|e| Error::Unreachable(format!("{e}; failback needs the source back")))?;
    let (_, point) = read_state(flow, &target).await?;
    let mut point = point.ok_or_else(|| Error::State(format!("no failover point of {} on {}: was it failed over with `tern failover`?", flow.name(), flow.target)))?;
    control::update(&target, &flow.target, &flow.name(), "tern failback", |c| c.state = FailoverState::FailingBack).await?;
    progress("state failing-back");
    let mut errors = Vec::new();
    // Workers that were members when the source failed are dropped by its coordinator after
    // their session timeout.
    if !wait_workers_gone(flow, &source, deadline).await {
        return Err(Error::State(format!("workers of {} still hold group {} on {}: stop them or wait for their session timeout, then run failback again", flow.name(), crate::names::group_id(flow), flow.source)));
    }

    // Copy back, pass after pass until the remote topics stop growing. The producer is kept
    // in the point before its first batch, and each partition's next sequence number with its
    // progress: a run after a crash between a batch's acknowledgement and the saved progress
    // sends that batch again under the same producer and sequence, and the source answers it
    // as a duplicate with its first offsets instead of writing it twice.
    let producer = match point.copy_producer {
        Some(p) => Some(p),
        None => {
            let p = source.init_producer_id().await.ok().flatten();
            if p.is_some() {
                point.copy_producer = p;
                save_point(flow, &target, &point).await?;
            }
            p
        }
    };
    for i in 0..point.partitions.len() {
        loop {
            let p = &point.partitions[i];
            let from = p.copied_until.unwrap_or(p.target_offset);
            let end = target.list_offset(&p.remote_topic, p.partition, LATEST).await.map_err(|e| Error::cluster(&flow.target, e))?.0;
            if from >= end || Instant::now() >= deadline {
                if from < end {
                    errors.push(format!("{}/{}: {} record(s) written on {} after the timeout were not copied back", p.remote_topic, p.partition, end - from, flow.target));
                }
                break;
            }
            let records = target.read_range(&p.remote_topic, p.partition, from, end.min(from + CHUNK)).await.map_err(|e| Error::cluster(&flow.target, e))?;
            if records.is_empty() {
                // Only control records or a gap: step over it.
                point.partitions[i].copied_until = Some(end.min(from + CHUNK));
                continue;
            }
            let (topic, partition) = (p.topic.clone(), p.partition);
            for set in split_by_size(&records) {
                let plain: Vec<PlainRecord> = set.iter().map(PlainRecord::from).collect();
                let encoded = tern_kafka::records::encode_batch(&plain, kafka_protocol::records::Compression::None)?;
                let mut batch = [crate::producer::OutBatch::split(&encoded, plain.len())];
                // Idempotent: a retried batch whose first acknowledgement was lost is written once.
                let mut next_sequence = None;
                if let Some((id, epoch)) = producer {
                    next_sequence = Some(crate::producer::stamp_producer(&mut batch, id, epoch, point.partitions[i].copy_sequence.unwrap_or(0), false));
                }
                let ack = source.produce(&topic, partition, bytes::Bytes::from(batch[0].parts().concat()), -1, 30_000).await.map_err(|e| Error::cluster(&flow.source, e))?;
                if crate::failpoint::hit("abort-after-failback-copy", &topic) {
                    tracing::error!(topic = %topic, partition, "failpoint abort-after-failback-copy: aborting before the copy's progress is saved");
                    std::process::abort();
                }
                let p = &mut point.partitions[i];
                p.copy_source_start.get_or_insert(ack.base_offset);
                p.copied_until = set.last().map(|r| r.offset + 1);
                p.copy_sequence = next_sequence;
                save_point(flow, &target, &point).await?;
            }
            progress(&format!("copied {} record(s) of {}/{} back", records.len(), point.partitions[i].remote_topic, point.partitions[i].partition));
        }
    }

    // Where each partition's copy landed, and what lies on the source before it.
    let mut copies = Vec::new();
    for p in &point.partitions {
        let source_end = source.list_offset(&p.topic, p.partition, LATEST).await.map_err(|e| Error::cluster(&flow.source, e))?.0;
        let until = p.copied_until.unwrap_or(p.target_offset);
        let source_start = p.copy_source_start.unwrap_or(source_end);
        if until > p.target_offset && source_end - source_start != until - p.target_offset {
            errors.push(format!(
                "{}/{}: {} record(s) were written on {} beside the copied ones; the copied records' offsets there are not contiguous, so groups past the failover point may resume a little off",
                p.topic,
                p.partition,
                (source_end - source_start - (until - p.target_offset)).abs(),
                flow.source
            ));
        }
        copies.push(CopiedPartition {
            topic: p.topic.clone(),
            partition: p.partition,
            remote_topic: p.remote_topic.clone(),
            from: p.target_offset,
            until,
            source_start,
            stranded_records: (source_start - p.source_offset).max(0),
        });
    }

    // Groups back to the source.
    let maps = store::load_offset_maps(flow, &target).await?;
    let mut groups = Vec::new();
    for group in target.list_groups().await.map_err(|e| Error::cluster(&flow.target, e))?.into_iter().filter(|g| checkpoint::replicates_group(flow, g)) {
        let on_target = target.all_committed_offsets(&group).await.map_err(|e| Error::cluster(&flow.target, e))?;
        let mut partitions = Vec::new();
        let mut offsets = BTreeMap::new();
        for c in &copies {
            let Some(&g) = on_target.get(&(c.remote_topic.clone(), c.partition)) else { continue };
            let (to, redelivered) = if g >= c.from {
                let read_after = (g - c.from).min(c.until - c.from);
                if read_after > 0 && c.stranded_records > 0 {
                    // Stranded records come first on the source: resume there, re-reading
                    // the copied records already read rather than skipping the stranded.
                    (c.source_start - c.stranded_records, read_after)
                } else if read_after > 0 {
                    (c.source_start + read_after, 0)
                } else {
                    (c.source_start - c.stranded_records, 0)
                }
            } else {
                match maps.get(&(c.topic.clone(), c.partition)).and_then(|m| m.source_of(g)) {
                    Some(s) => (s, 0),
                    None => continue,
                }
            };
            offsets.insert((c.topic.clone(), c.partition), to);
            partitions.push(MovedPartition { topic: c.topic.clone(), partition: c.partition, from_offset: g, to_offset: to, age_ms: 0, redelivered_records: redelivered });
        }
        if offsets.is_empty() {
            continue;
        }
        let outcome = match source.describe_group(&group).await {
            Ok(info) if info.members > 0 => format!("not moved: {} active member(s) on {}", info.members, flow.source),
            _ => match source.commit_offsets(&group, &Membership::none(), &offsets).await {
                Ok(()) => "moved".to_string(),
                Err(e) => format!("not moved: {e}"),
            },
        };
        if outcome != "moved" {
            errors.push(format!("group {group}: {outcome}"));
        }
        groups.push(MovedGroup { group, partitions, outcome });
    }

    // The copied records are on the target already: replication resumes after them, and the
    // offset map says where they came from. Without a copy, it resumes at the failover point
    // and the stranded records replicate.
    let mut positions = BTreeMap::new();
    for c in &copies {
        let tp = (c.topic.clone(), c.partition);
        if c.until > c.from {
            store::persist_entries(flow, &source, &target, &tp, &[Entry { source: c.source_start, target: c.from }], &[]).await?;
            positions.insert(tp, c.source_start + (c.until - c.from));
        } else {
            positions.insert(tp, c.source_start - c.stranded_records);
        }
    }
    source.commit_offsets(&crate::names::group_id(flow), &Membership::none(), &positions).await.map_err(|e| Error::cluster(&flow.source, e))?;
    let state = control::update(&target, &flow.target, &flow.name(), "tern failback: done", |c| c.state = FailoverState::Active).await?.state;
    progress("state active");
    Ok(FailbackReport {
        flow: flow.name(),
        started_at_ms,
        finished_at_ms: now_ms(),
        state,
        copied_records: copies.iter().map(|c| c.until - c.from).sum(),
        partitions: copies,
        groups,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(offset: i64, value_len: usize) -> kafka_protocol::records::Record {
        kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from(vec![b'x'; value_len])),
            headers: Default::default(),
        }
    }

    #[test]
    fn copies_are_split_into_batches_under_the_size_limit() {
        let small: Vec<_> = (0..10).map(|o| record(o, 100)).collect();
        assert_eq!(split_by_size(&small).len(), 1);
        let big: Vec<_> = (0..5).map(|o| record(o, 400_000)).collect();
        let sets = split_by_size(&big);
        assert_eq!(sets.iter().map(|s| s.len()).collect::<Vec<_>>(), vec![2, 2, 1]);
        let huge = vec![record(0, 2_000_000), record(1, 10)];
        assert_eq!(split_by_size(&huge).iter().map(|s| s.len()).collect::<Vec<_>>(), vec![1, 1], "an oversized record goes alone");
        assert!(split_by_size(&[]).is_empty());
    }
}
