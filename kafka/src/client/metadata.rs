//! The client's view of the cluster: brokers, topics, partition leaders.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::Client;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller: i32,
    /// Broker id to `host:port`.
    pub brokers: BTreeMap<i32, String>,
    pub topics: HashMap<String, TopicMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub id: uuid::Uuid,
    pub internal: bool,
    pub partitions: Vec<PartitionMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub error_code: i16,
}

impl ClusterMetadata {
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let t = self.topics.get(topic)?;
        // Partitions are kept sorted by index (usually 0, 1, 2, ... so the index is the
        // position): a lookup costs the same for a topic of 1,000 partitions as for one of 8.
        let p = match t.partitions.get(partition.max(0) as usize) {
            Some(p) if p.partition == partition => p,
            _ => t.partitions.binary_search_by_key(&partition, |p| p.partition).ok().and_then(|at| t.partitions.get(at))?,
        };
        (p.leader >= 0).then_some(p.leader)
    }
}

const METADATA_VERSIONS: (i16, i16) = (1, 12);

impl Client {
    /// Reloads metadata: all topics when `topics` is `None`, else just those (merged into the
    /// cache; a topic the cluster does not know is removed from it).
    pub async fn refresh_metadata(&self, topics: Option<&[String]>) -> Result<std::sync::Arc<ClusterMetadata>> {
        let conn = self.any_connection_for_metadata().await?;
        let version = conn.version(ApiKey::Metadata, METADATA_VERSIONS)?;
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone())))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let resp = conn.call(&request, version).await?;
        let mut shared = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        // Copied only when a snapshot of the old metadata is still held somewhere.
        let md = std::sync::Arc::make_mut(&mut shared);
        md.cluster_id = resp.cluster_id.map(|s| s.to_string());
        md.controller = resp.controller_id.0;
        md.brokers = resp.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
        if topics.is_none() {
            md.topics.clear();
        }
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else { continue };
            if t.error_code != 0 {
                md.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            md.topics.insert(name.clone(), TopicMetadata { name, id: t.topic_id, internal: t.is_internal, partitions });
        }
        Ok(shared.clone())
    }

    /// Metadata for one topic, refreshed from the cluster.
    pub async fn topic_metadata(&self, topic: &str) -> Result<Option<TopicMetadata>> {
        let md = self.refresh_metadata(Some(&[topic.to_string()])).await?;
        Ok(md.topics.get(topic).cloned())
    }

    async fn any_connection_for_metadata(&self) -> Result<std::sync::Arc<super::BrokerConnection>> {
        self.any_connection().await
    }

    /// The leader's connection for a partition, refreshing metadata once if it is unknown.
    pub async fn leader_connection(&self, topic: &str, partition: i32) -> Result<(i32, std::sync::Arc<super::BrokerConnection>)> {
        // Looked up under the lock, not from a snapshot: a clone of the whole cluster's
        // metadata per produce request would cost in proportion to the cluster's size.
        let mut leader = self.metadata.lock().unwrap_or_else(|p| p.into_inner()).leader(topic, partition);
        if leader.is_none() {
            leader = self.refresh_metadata(Some(&[topic.to_string()])).await?.leader(topic, partition);
        }
        let leader = leader.ok_or_else(|| Error::kafka(5, format!("leader of {topic}/{partition}")))?;
        Ok((leader, self.broker_connection(leader).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaders_are_found_by_partition_index_with_gaps_and_bad_indexes() {
        let part = |partition, leader| PartitionMetadata { partition, leader, leader_epoch: 0, error_code: 0 };
        let mut md = ClusterMetadata::default();
        let partitions = vec![part(0, 1), part(2, 3), part(3, -1), part(7, 2)];
        md.topics.insert("t".into(), TopicMetadata { name: "t".into(), id: uuid::Uuid::nil(), internal: false, partitions });
        assert_eq!(md.leader("t", 0), Some(1), "at its own position");
        assert_eq!(md.leader("t", 2), Some(3), "past a gap");
        assert_eq!(md.leader("t", 7), Some(2));
        assert_eq!(md.leader("t", 1), None, "a partition the topic does not have");
        assert_eq!(md.leader("t", 3), None, "no leader elected");
        assert_eq!(md.leader("t", -1), None);
        assert_eq!(md.leader("t", i32::MAX), None);
        assert_eq!(md.leader("u", 0), None);
    }
}
