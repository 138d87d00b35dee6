//! Consumer-group calls: finding the coordinator, committed offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerConnection, Client};
use crate::error::{Error, Result};

/// Identity of a group member for commits; `generation -1` and an empty member id commit as
/// an admin tool would, for a group with no active members.
#[derive(Debug, Clone)]
pub struct Membership {
    pub generation_id: i32,
    pub member_id: String,
}

impl Membership {
    pub fn none() -> Membership {
        Membership { generation_id: -1, member_id: String::new() }
    }
}

/// A group as ListGroups and DescribeGroups report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub group: String,
    /// Empty, Stable, PreparingRebalance, CompletingRebalance, Dead (classic groups).
    pub state: String,
    pub members: usize,
}

impl Client {
    /// Every group on every broker of the cluster.
    pub async fn list_groups(&self) -> Result<Vec<String>> {
        use kafka_protocol::messages::ListGroupsRequest;
        let brokers: Vec<i32> = self.metadata_snapshot().brokers.keys().copied().collect();
        let mut out = Vec::new();
        for node in brokers {
            let conn = self.broker_connection(node).await?;
            let version = conn.version(ApiKey::ListGroups, (0, 4))?;
            let resp = conn.call(&ListGroupsRequest::default(), version).await?;
            if resp.error_code != 0 {
                return Err(Error::kafka(resp.error_code, format!("list groups on broker {node}")));
            }
            out.extend(resp.groups.into_iter().map(|g| g.group_id.0.to_string()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// State and member count of a group (a group nobody knows is reported as Dead).
    pub async fn describe_group(&self, group: &str) -> Result<GroupInfo> {
        use kafka_protocol::messages::DescribeGroupsRequest;
        self.on_coordinator(group, |conn| async move {
            let version = conn.version(ApiKey::DescribeGroups, (0, 5))?;
            let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
            let resp = conn.call(&req, version).await?;
            let g = resp.groups.into_iter().next().ok_or_else(|| Error::Protocol(format!("empty DescribeGroups answer for {group}")))?;
            if g.error_code != 0 {
                return Err(Error::kafka(g.error_code, format!("describe group {group}")));
            }
            Ok(GroupInfo { group: group.to_string(), state: g.group_state.to_string(), members: g.members.len() })
        })
        .await
    }

    /// Deletes groups (DeleteGroups): their committed offsets go with them. A group that does
    /// not exist counts as deleted; one with active members is refused (`NON_EMPTY_GROUP`).
    pub async fn delete_groups(&self, groups: &[String]) -> Result<()> {
        use kafka_protocol::messages::DeleteGroupsRequest;
        for group in groups {
            self.on_coordinator(group, |conn| async move {
                let version = conn.version(ApiKey::DeleteGroups, (0, 2))?;
                let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_string(group.clone()))]);
                let resp = conn.call(&req, version).await?;
                for r in resp.results {
                    // GROUP_ID_NOT_FOUND: already gone.
                    if r.error_code != 0 && r.error_code != 69 {
                        return Err(Error::kafka(r.error_code, format!("delete group {group}")));
                    }
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Every committed offset of `group`.
    pub async fn all_committed_offsets(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        Ok(self.fetch_committed(group, None).await?.into_iter().map(|(tp, (offset, _))| (tp, offset)).collect())
    }

    /// The coordinator of `group`: the broker found before, as Kafka's clients keep it, until
    /// an operation on it fails ([`Client::forget_coordinator`]); else FindCoordinator.
    pub async fn group_coordinator(&self, group: &str) -> Result<Arc<BrokerConnection>> {
        let known = self.coordinators.lock().unwrap_or_else(|p| p.into_inner()).get(group).cloned();
        if let Some(addr) = known {
            match self.connection(&addr).await {
                Ok(conn) => return Ok(conn),
                Err(_) => self.forget_coordinator(group),
            }
        }
        let (addr, conn) = self
            .with_retries(&format!("find the coordinator of group {group}"), || async {
                let conn = self.any_connection().await?;
                let version = conn.version(ApiKey::FindCoordinator, (1, 3))?;
                let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())).with_key_type(0);
                let resp = conn.call(&req, version).await?;
                if resp.error_code != 0 {
                    return Err(Error::kafka(resp.error_code, format!("find the coordinator of group {group}")));
                }
                let addr = format!("{}:{}", resp.host, resp.port);
                let conn = self.connection(&addr).await?;
                Ok((addr, conn))
            })
            .await?;
        let mut known = self.coordinators.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a client that looks up many groups (an admin listing them) keeps no more
        // than this many.
        if known.len() >= 1024 {
            known.clear();
        }
        known.insert(group.to_string(), addr);
        Ok(conn)
    }

    /// Forgets the coordinator found for `group`, so the next operation looks it up again:
    /// after an operation on it failed (it may have moved, or be gone).
    pub fn forget_coordinator(&self, group: &str) {
        self.coordinators.lock().unwrap_or_else(|p| p.into_inner()).remove(group);
    }

    /// Runs `op` on the coordinator of `group`; when it fails, the coordinator is looked up
    /// again next time.
    pub(super) async fn on_coordinator<T, F, Fut>(&self, group: &str, op: F) -> Result<T>
    where
        F: FnOnce(Arc<BrokerConnection>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let conn = self.group_coordinator(group).await?;
        let out = op(conn).await;
        if out.is_err() {
            self.forget_coordinator(group);
        }
        out
    }

    /// Committed offsets of `group` for the given partitions (absent when none committed).
    pub async fn committed_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<BTreeMap<(String, i32), i64>> {
        Ok(self.fetch_committed(group, Some(partitions)).await?.into_iter().map(|(tp, (offset, _))| (tp, offset)).collect())
    }

    /// Committed offsets of `group` for the given partitions with the leader epoch committed
    /// beside each (that of the last record before it; `None` when none was committed, or
    /// from a broker before OffsetFetch v5).
    pub async fn committed_positions(&self, group: &str, partitions: &[(String, i32)]) -> Result<BTreeMap<(String, i32), (i64, Option<i32>)>> {
        self.fetch_committed(group, Some(partitions)).await
    }

    /// OffsetFetch for some partitions of a group, or all of them when `partitions` is `None`.
    async fn fetch_committed(&self, group: &str, partitions: Option<&[(String, i32)]>) -> Result<BTreeMap<(String, i32), (i64, Option<i32>)>> {
        self.with_retries(&format!("fetch offsets of group {group}"), || self.on_coordinator(group, |conn| async move {
            // OffsetFetch v2 is the first to take a null topic list (all partitions).
            let version = conn.version(ApiKey::OffsetFetch, (2, 7))?;
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in partitions.unwrap_or_default() {
                by_topic.entry(t).or_default().push(*p);
            }
            let topics = partitions.map(|_| {
                by_topic
                    .into_iter()
                    .map(|(t, ps)| OffsetFetchRequestTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partition_indexes(ps))
                    .collect()
            });
            let req = OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_string(group.to_string()))).with_topics(topics);
            let resp = conn.call(&req, version).await?;
            if resp.error_code != 0 {
                return Err(Error::kafka(resp.error_code, format!("fetch offsets of group {group}")));
            }
            let mut out = BTreeMap::new();
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        return Err(Error::kafka(p.error_code, format!("fetch offset of {group} for {}/{}", t.name.0, p.partition_index)));
                    }
                    if p.committed_offset >= 0 {
                        let epoch = (p.committed_leader_epoch >= 0).then_some(p.committed_leader_epoch);
                        out.insert((t.name.0.to_string(), p.partition_index), (p.committed_offset, epoch));
                    }
                }
            }
            Ok(out)
        }))
        .await
    }

    /// Commits offsets for `group`; per-partition errors fail the call. Retriable errors (a
    /// coordinator loading or moving) are retried, as on every other call.
    pub async fn commit_offsets(&self, group: &str, member: &Membership, offsets: &BTreeMap<(String, i32), i64>) -> Result<()> {
        let positions = offsets.iter().map(|(tp, o)| (tp.clone(), (*o, None))).collect();
        self.commit_positions(group, member, &positions).await
    }

    /// [`Client::commit_offsets`] with the leader epoch of the last record before each offset,
    /// where known (OffsetCommit v6 on): a consumer that resumes from the offset asks the
    /// leader where that epoch ends, and learns whether the log was truncated below it
    /// meanwhile.
    pub async fn commit_positions(&self, group: &str, member: &Membership, positions: &BTreeMap<(String, i32), (i64, Option<i32>)>) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        self.with_retries(&format!("commit offsets of {group}"), || self.commit_offsets_once(group, member, positions)).await
    }

    async fn commit_offsets_once(&self, group: &str, member: &Membership, positions: &BTreeMap<(String, i32), (i64, Option<i32>)>) -> Result<()> {
        self.on_coordinator(group, |conn| async move {
            let version = conn.version(ApiKey::OffsetCommit, (2, 8))?;
            let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
            for ((t, p), (o, epoch)) in positions {
                let partition = OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o).with_committed_leader_epoch(epoch.unwrap_or(-1));
                by_topic.entry(t).or_default().push(partition);
            }
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_generation_id_or_member_epoch(member.generation_id)
                .with_member_id(StrBytes::from_string(member.member_id.clone()))
                .with_retention_time_ms(-1)
                .with_topics(
                    by_topic
                        .into_iter()
                        .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
                        .collect(),
                );
            let resp = conn.call(&req, version).await?;
            for t in resp.topics {
                for p in t.partitions {
                    if p.error_code != 0 {
                        return Err(Error::kafka(p.error_code, format!("commit offset of {group} for {}/{}", t.name.0, p.partition_index)));
                    }
                }
            }
            Ok(())
        })
        .await
    }
}
