//! Data and admin calls routed to the right broker, each retried on retriable errors.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DescribeConfigsRequest, FetchRequest,
    FetchResponse, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::produce::{Gate, PendingProduce, ProduceAck, Queued};
use super::Client;
use crate::error::{Error, Result};

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The longest prefix of a fetched record set made of whole batches.
fn whole_batches(records: Bytes) -> Bytes {
    let end = crate::batch::Batches::new(&records).map_while(|b| b.ok()).last().map_or(0, |(at, h)| at + h.total_len());
    records.slice(..end)
}

/// How [`Client::send_produce_on`] sends a record set.
#[derive(Clone)]
pub struct ProduceTo<'a> {
    /// Which of the connections to the leader (see [`Client::connection_on`]).
    pub lane: usize,
    /// A transactional producer's id, for its batches.
    pub transactional_id: Option<&'a str>,
    /// -1 (every in-sync replica), 1 (the leader) or 0 (no answer).
    pub acks: i16,
    pub timeout_ms: i32,
    /// Asked right before the set is written (see [`Gate`]).
    pub gate: Option<Gate>,
}

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// A fetch's isolation level, as Kafka numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Everything up to the high watermark, aborted transactions included.
    ReadUncommitted = 0,
    /// Up to the last stable offset; aborted transactions listed for the reader to skip.
    ReadCommitted = 1,
}

impl Client {
    /// Appends a record set to one partition and waits for the leader's acknowledgement
    /// (`acks` -1 or 1). Retriable failures are retried, which can duplicate the set if the
    /// first attempt was written but its acknowledgement lost: at-least-once.
    pub async fn produce(&self, topic: &str, partition: i32, records: Bytes, acks: i16, timeout_ms: i32) -> Result<ProduceAck> {
        self.with_retries(&format!("produce to {topic}/{partition}"), || async {
            self.send_produce(topic, partition, records.clone(), acks, timeout_ms).await?.ack().await
        })
        .await
    }

    /// Queues a record set for the partition's leader without waiting for the answer, and
    /// without retries: [`PendingProduce::ack`] waits for it. Sets queued one after another
    /// for a partition apply in that order.
    pub async fn send_produce(&self, topic: &str, partition: i32, records: Bytes, acks: i16, timeout_ms: i32) -> Result<PendingProduce> {
        self.send_produce_as(None, topic, partition, records, acks, timeout_ms).await
    }

    /// [`Client::send_produce`] for a transactional producer's batches (`transactional_id`
    /// set): the partition must have been added to the producer's open transaction. Produce
    /// v11 at most, so the broker never adds partitions on its own (transaction protocol 2).
    pub async fn send_produce_as(&self, transactional_id: Option<&str>, topic: &str, partition: i32, records: Bytes, acks: i16, timeout_ms: i32) -> Result<PendingProduce> {
        let to = ProduceTo { lane: 0, transactional_id, acks, timeout_ms, gate: None };
        self.send_produce_on(&to, topic, partition, vec![records]).await
    }

    /// [`Client::send_produce_as`] with the records in parts (a batch's edited header and its
    /// records as fetched, say), written one after another into the request without being
    /// gathered first, on connection number `to.lane` to the partition's leader (see
    /// [`Client::connection_on`]). The set waits for the connection's next produce request,
    /// which carries one set of every partition waiting (see [`super::produce`]). A broker
    /// handles one request of a connection at a time, so partitions produced over different
    /// lanes are written side by side; sets of one partition keep their order only on one
    /// lane.
    pub async fn send_produce_on(&self, to: &ProduceTo<'_>, topic: &str, partition: i32, records: Vec<Bytes>) -> Result<PendingProduce> {
        let (leader, conn) = self.leader_connection(topic, partition).await?;
        let conn = if to.lane == 0 { conn } else { self.broker_connection_on(leader, to.lane).await? };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let topic: std::sync::Arc<str> = topic.into();
        conn.queue_produce(Queued {
            transactional_id: to.transactional_id.map(Into::into),
            acks: to.acks,
            timeout_ms: to.timeout_ms,
            topic: topic.clone(),
            partition,
            records,
            gate: to.gate.clone(),
            reply,
        });
        Ok(PendingProduce { reply: answer, topic, partition, addr: conn.addr().to_string() })
    }

    /// One `read_uncommitted` fetch request to broker `node` for the given
    /// `(topic, partition, offset)` list. Per-partition errors are in the response for the
    /// caller to handle.
    pub async fn fetch(
        &self,
        node: i32,
        partitions: &[(String, i32, i64)],
        max_wait_ms: i32,
        max_bytes: i32,
        partition_max_bytes: i32,
    ) -> Result<FetchResponse> {
        self.fetch_on(node, 0, partitions, max_wait_ms, max_bytes, partition_max_bytes, Isolation::ReadUncommitted).await
    }

    /// A fetch at the given isolation level, on connection number `lane` to the broker (see
    /// [`Client::connection_on`]; lane 0 is the one every other request uses): `read_committed`
    /// answers stop at the last stable offset and list the aborted transactions in what they
    /// return.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch_on(
        &self,
        node: i32,
        lane: usize,
        partitions: &[(String, i32, i64)],
        max_wait_ms: i32,
        max_bytes: i32,
        partition_max_bytes: i32,
        isolation: Isolation,
    ) -> Result<FetchResponse> {
        let conn = self.broker_connection_on(node, lane).await?;
        let version = conn.version(ApiKey::Fetch, (4, 12))?;
        let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for (t, p, offset) in partitions {
            by_topic.entry(t.as_str()).or_default().push(
                FetchPartition::default().with_partition(*p).with_fetch_offset(*offset).with_partition_max_bytes(partition_max_bytes),
            );
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(isolation as i8)
            .with_session_epoch(-1)
            .with_topics(by_topic.into_iter().map(|(t, ps)| FetchTopic::default().with_topic(topic_name(t)).with_partitions(ps)).collect());
        conn.call(&req, version).await
    }

    /// Every record of one partition in `[from, until)`, decoded, in offset order (control
    /// batches are skipped). For internal topics and spot checks, not for bulk data. A batch
    /// that cannot be decoded (malformed, or decompressing past kafka-protocol's bound) is
    /// skipped with a warning, so one crafted batch cannot hide every record after it.
    pub async fn read_range(&self, topic: &str, partition: i32, from: i64, until: i64) -> Result<Vec<kafka_protocol::records::Record>> {
        self.read_range_isolated(topic, partition, from, until, Isolation::ReadUncommitted).await
    }

    /// [`Client::read_range`] at an isolation level: `read_committed` leaves out the records
    /// of aborted transactions (and stops at the last stable offset).
    pub async fn read_range_isolated(&self, topic: &str, partition: i32, from: i64, until: i64, isolation: Isolation) -> Result<Vec<kafka_protocol::records::Record>> {
        let mut out = Vec::new();
        let mut next = from;
        while next < until {
            let (leader, _) = self.leader_connection(topic, partition).await?;
            let resp = self.fetch_on(leader, 0, &[(topic.to_string(), partition, next)], 100, 8 << 20, 8 << 20, isolation).await?;
            let Some(p) = resp.responses.first().and_then(|t| t.partitions.first()) else { break };
            if p.error_code != 0 {
                return Err(Error::kafka(p.error_code, format!("reading {topic}/{partition} at {next}")));
            }
            // A fetch answers with a byte range of the log, which may end inside a batch: only
            // whole batches are decoded, the rest comes with the next fetch.
            let records = whole_batches(p.records.clone().unwrap_or_default());
            if records.is_empty() {
                break;
            }
            let before = next;
            let mut aborted = crate::batch::Aborted::new(p.aborted_transactions.iter().flatten().map(|t| (t.producer_id.0, t.first_offset)).collect());
            for item in crate::batch::Batches::new(&records) {
                let (at, h) = item.map_err(|e| Error::Protocol(format!("reading {topic}/{partition} at {next}: {e}")))?;
                let skipped = aborted.skips(&h);
                if h.last_offset() < next {
                    continue;
                }
                if skipped {
                    next = h.last_offset() + 1;
                    continue;
                }
                let mut batch = records.slice(at..at + h.total_len());
                let set = match kafka_protocol::records::RecordBatchDecoder::decode(&mut batch) {
                    Ok(set) => set,
                    Err(e) => {
                        tracing::warn!(topic, partition, offset = h.base_offset, "skipping a record batch that cannot be read: {e:#}");
                        next = next.max(h.last_offset().saturating_add(1));
                        continue;
                    }
                };
                for r in set.records {
                    if r.offset < next || r.offset >= until {
                        continue;
                    }
                    next = r.offset + 1;
                    if !r.control {
                        out.push(r);
                    }
                }
            }
            if next == before {
                // Only records below `next` came back (e.g. a compacted gap): nothing more to read.
                break;
            }
        }
        Ok(out)
    }

    /// The records of a whole partition, from its log start to its end at the time of the call.
    pub async fn read_all(&self, topic: &str, partition: i32) -> Result<Vec<kafka_protocol::records::Record>> {
        let (end, _) = self.list_offset(topic, partition, LATEST).await?;
        let (start, _) = self.list_offset(topic, partition, EARLIEST).await?;
        self.read_range(topic, partition, start, end).await
    }

    /// The committed records of a whole partition (`read_committed`): from its log start to
    /// its last stable offset at the time of the call, aborted transactions left out.
    pub async fn read_all_committed(&self, topic: &str, partition: i32) -> Result<Vec<kafka_protocol::records::Record>> {
        let end = self
            .with_retries(&format!("the last stable offset of {topic}/{partition}"), || self.list_offset_isolated(topic, partition, LATEST, Isolation::ReadCommitted))
            .await?
            .0;
        let (start, _) = self.list_offset(topic, partition, EARLIEST).await?;
        self.read_range_isolated(topic, partition, start, end, Isolation::ReadCommitted).await
    }

    /// ListOffsets for one partition: `LATEST`, `EARLIEST` or a timestamp. Returns
    /// `(offset, timestamp)`; offset -1 when no record has a timestamp at or after it.
    /// Retriable errors are retried up to the client's retry deadline.
    pub async fn list_offset(&self, topic: &str, partition: i32, timestamp: i64) -> Result<(i64, i64)> {
        self.with_retries(&format!("list offsets of {topic}/{partition}"), || self.list_offset_once(topic, partition, timestamp)).await
    }

    /// [`Client::list_offset`] without retries, for callers that must not wait (a partition
    /// that does not exist yet is an error at once).
    pub async fn list_offset_once(&self, topic: &str, partition: i32, timestamp: i64) -> Result<(i64, i64)> {
        self.list_offset_isolated(topic, partition, timestamp, Isolation::ReadUncommitted).await
    }

    /// ListOffsets at an isolation level: `LATEST` is the last stable offset for
    /// `read_committed`. No retries.
    pub async fn list_offset_isolated(&self, topic: &str, partition: i32, timestamp: i64, isolation: Isolation) -> Result<(i64, i64)> {
        let (_, conn) = self.leader_connection(topic, partition).await?;
        // v2 is the first with an isolation level.
        let version = conn.version(ApiKey::ListOffsets, (if isolation == Isolation::ReadCommitted { 2 } else { 1 }, 8))?;
        let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(isolation as i8).with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp)])]);
        let resp = conn.call(&req, version).await?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| Error::Protocol(format!("empty ListOffsets response for {topic}/{partition}")))?;
        if p.error_code != 0 {
            return Err(Error::kafka(p.error_code, format!("list offsets of {topic}/{partition}")));
        }
        Ok((p.offset, p.timestamp))
    }

    /// OffsetForLeaderEpoch as a consumer asks it: where the partition's log, as its leader
    /// holds it now, ends for `epoch` (the start of the next epoch, or the log end while `epoch`
    /// is the latest). Below a consumer's position, the log was truncated there (an unclean
    /// leader election). `None` when the broker has no such API or knows no such epoch.
    pub async fn epoch_end_offset(&self, topic: &str, partition: i32, epoch: i32) -> Result<Option<i64>> {
        use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
        let (_, conn) = self.leader_connection(topic, partition).await?;
        // v3 is the first a consumer may send (it carries replica id -1).
        let Ok(version) = conn.version(ApiKey::OffsetForLeaderEpoch, (3, 4)) else { return Ok(None) };
        let req = kafka_protocol::messages::OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default().with_partition(partition).with_current_leader_epoch(-1).with_leader_epoch(epoch)])]);
        let resp = conn.call(&req, version).await?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| Error::Protocol(format!("empty OffsetForLeaderEpoch response for {topic}/{partition}")))?;
        if p.error_code != 0 {
            return Err(Error::kafka(p.error_code, format!("end offset of epoch {epoch} of {topic}/{partition}")));
        }
        Ok((p.leader_epoch >= 0 && p.end_offset >= 0).then_some(p.end_offset))
    }

    /// ListOffsets for many partitions at once: one request per leader, sent concurrently.
    /// Topics this client knows no leader for are looked up first, once; partitions whose
    /// leader is still unknown or that answer with an error are left out.
    pub async fn list_offsets(&self, partitions: &[(String, i32)], timestamp: i64) -> Result<BTreeMap<(String, i32), i64>> {
        let mut md = self.metadata_snapshot();
        let unknown: Vec<String> = partitions.iter().filter(|(t, p)| md.leader(t, *p).is_none()).map(|(t, _)| t.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        if !unknown.is_empty() {
            md = self.refresh_metadata(Some(&unknown)).await?;
        }
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        for (t, p) in partitions {
            if let Some(leader) = md.leader(t, *p) {
                by_leader.entry(leader).or_default().entry(t.as_str()).or_default().push(*p);
            }
        }
        let calls = by_leader.into_iter().map(|(leader, topics)| async move {
            let conn = self.broker_connection(leader).await?;
            let version = conn.version(ApiKey::ListOffsets, (1, 8))?;
            let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps.into_iter().map(|p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp)).collect())
                    })
                    .collect(),
            );
            conn.call(&req, version).await
        });
        let mut out = BTreeMap::new();
        for resp in futures_util::future::join_all(calls).await {
            for t in resp?.topics {
                for p in t.partitions.into_iter().filter(|p| p.error_code == 0) {
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
        Ok(out)
    }

    /// Creates a topic; `Ok(false)` when it already existed.
    pub async fn create_topic(&self, topic: &str, partitions: i32, configs: &BTreeMap<String, String>) -> Result<bool> {
        let conn = self.controller_connection().await?;
        let version = conn.version(ApiKey::CreateTopics, (2, 7))?;
        let req = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| CreatableTopicConfig::default().with_name(StrBytes::from_string(k.clone())).with_value(Some(StrBytes::from_string(v.clone()))))
                    .collect(),
            )]);
        let resp = conn.call(&req, version).await?;
        let t = resp.topics.first().ok_or_else(|| Error::Protocol("empty CreateTopics response".into()))?;
        match t.error_code {
            0 => Ok(true),
            36 => Ok(false),
            code => {
                let detail = t.error_message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
                Err(Error::kafka(code, format!("create topic {topic}{detail}")))
            }
        }
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<()> {
        let conn = self.controller_connection().await?;
        let version = conn.version(ApiKey::CreatePartitions, (0, 3))?;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(30_000)
            // The default assignment list is empty, not null: an empty list asks for no replicas.
            .with_topics(vec![CreatePartitionsTopic::default().with_name(topic_name(topic)).with_count(count).with_assignments(None)]);
        let resp = conn.call(&req, version).await?;
        match resp.results.first() {
            Some(r) if r.error_code != 0 => Err(Error::kafka(r.error_code, format!("grow {topic} to {count} partitions"))),
            _ => Ok(()),
        }
    }

    /// Topic configs that are set on the topic itself (not defaults), by topic.
    pub async fn describe_topic_configs(&self, topics: &[String]) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        let conn = self.any_connection().await?;
        let version = conn.version(ApiKey::DescribeConfigs, (1, 4))?;
        let req = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|t| DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_string(t.clone())).with_configuration_keys(None))
                .collect(),
        );
        let resp = conn.call(&req, version).await?;
        let mut out = BTreeMap::new();
        for r in resp.results {
            if r.error_code != 0 {
                return Err(Error::kafka(r.error_code, format!("describe configs of {}", r.resource_name)));
            }
            // Source 1 is DYNAMIC_TOPIC_CONFIG: what was set on the topic.
            let set: BTreeMap<String, String> = r
                .configs
                .into_iter()
                .filter(|c| c.config_source == 1)
                .filter_map(|c| c.value.map(|v| (c.name.to_string(), v.to_string())))
                .collect();
            out.insert(r.resource_name.to_string(), set);
        }
        Ok(out)
    }

    /// Sets and removes topic-level configs (IncrementalAlterConfigs SET and DELETE).
    pub async fn alter_topic_configs(&self, topic: &str, set: &BTreeMap<String, String>, delete: &[String]) -> Result<()> {
        use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        use kafka_protocol::messages::IncrementalAlterConfigsRequest;
        if set.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let conn = self.controller_connection().await?;
        let version = conn.version(ApiKey::IncrementalAlterConfigs, (0, 1))?;
        let mut configs: Vec<AlterableConfig> = set
            .iter()
            .map(|(k, v)| AlterableConfig::default().with_name(StrBytes::from_string(k.clone())).with_config_operation(0).with_value(Some(StrBytes::from_string(v.clone()))))
            .collect();
        configs.extend(delete.iter().map(|k| AlterableConfig::default().with_name(StrBytes::from_string(k.clone())).with_config_operation(1)));
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configs(configs)]);
        let resp = conn.call(&req, version).await?;
        match resp.responses.first() {
            Some(r) if r.error_code != 0 => {
                let detail = r.error_message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
                Err(Error::kafka(r.error_code, format!("alter configs of {topic}{detail}")))
            }
            _ => Ok(()),
        }
    }

    /// A producer id and epoch for idempotent produce (InitProducerId without a transactional
    /// id). `Ok(None)` when the cluster does not offer it.
    pub async fn init_producer_id(&self) -> Result<Option<(i64, i16)>> {
        use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
        self.with_retries("obtain a producer id", || async {
            let conn = self.any_connection().await?;
            let version = match conn.version(ApiKey::InitProducerId, (0, 4)) {
                Ok(v) => v,
                Err(Error::Unsupported(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            // The default transactional id is an empty string, not null: say null explicitly.
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let resp = conn.call(&req, version).await?;
            if resp.error_code != 0 {
                return Err(Error::kafka(resp.error_code, "obtain a producer id"));
            }
            Ok(Some((resp.producer_id.0, resp.producer_epoch)))
        })
        .await
    }

    /// The controller (for topic admin), or any broker when the cluster reports none.
    async fn controller_connection(&self) -> Result<std::sync::Arc<super::BrokerConnection>> {
        let controller = self.metadata_snapshot().controller;
        match self.broker_connection(controller).await {
            Ok(c) => Ok(c),
            Err(_) => self.any_connection().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::Compression;

    #[test]
    fn a_batch_cut_by_the_fetch_size_is_left_for_the_next_fetch() {
        let one = crate::records::encode_batch(&[crate::records::PlainRecord::new("k", Some(Bytes::from_static(b"v")), 1)], Compression::Lz4).expect("encode");
        let mut two = one.to_vec();
        two.extend_from_slice(&one[..one.len() - 3]);
        assert_eq!(whole_batches(Bytes::from(two)), one);
        assert!(whole_batches(one.slice(..10)).is_empty());
    }
}
