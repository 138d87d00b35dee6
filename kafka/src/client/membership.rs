//! The client side of Kafka's classic group protocol with protocol type "consumer" and the
//! range assignor, so standard tools show the group, its members and their partitions.
//!
//! Eager rebalancing: a member stops work on its partitions before it rejoins, and the leader
//! hands out partitions afresh in each generation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{BrokerConnection, Client, Membership};
use crate::error::{Error, Result};

const MEMBER_ID_REQUIRED: i16 = 79;
const REBALANCE_IN_PROGRESS: i16 = 27;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const FENCED_INSTANCE_ID: i16 = 82;

/// One member of a group, with what it was assigned in the current generation.
pub struct GroupMember {
    group: String,
    member_id: String,
    generation_id: i32,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    pub assignment: Vec<(String, i32)>,
}

/// What a heartbeat found out.
#[derive(Debug, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    Stable,
    /// The group is rebalancing (a member came or went): stop work and rejoin. The member is
    /// still in the group until the rebalance timeout, and its heartbeats keep it there.
    Rejoin,
    /// The member is no longer in this generation (its session expired, or the group moved on
    /// without it): its partitions may already be someone else's.
    Gone,
}

/// What it takes to heartbeat one generation of a group, apart from the member: a task of its
/// own can keep the session alive whatever the member's work is doing.
#[derive(Clone)]
pub struct Heartbeater {
    group: String,
    member_id: String,
    generation_id: i32,
    client: Arc<Client>,
}

impl Heartbeater {
    /// One heartbeat, to the group's coordinator as the client knows it. After a failure
    /// (the coordinator restarted, moved to another broker, or is out of reach) the next beat
    /// looks the coordinator up again, as Kafka's consumers do: a member whose coordinator
    /// came back within the session timeout stays in its generation.
    pub async fn beat(&self) -> Result<HeartbeatOutcome> {
        self.client.on_coordinator(&self.group, |conn| heartbeat_on(conn, &self.group, &self.member_id, self.generation_id)).await
    }
}

async fn heartbeat_on(conn: Arc<BrokerConnection>, group: &str, member_id: &str, generation_id: i32) -> Result<HeartbeatOutcome> {
    let version = conn.version(ApiKey::Heartbeat, (1, 4))?;
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id(generation_id)
        .with_member_id(StrBytes::from_string(member_id.to_string()));
    let resp = conn.call(&req, version).await?;
    match resp.error_code {
        0 => Ok(HeartbeatOutcome::Stable),
        REBALANCE_IN_PROGRESS => Ok(HeartbeatOutcome::Rejoin),
        UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION | FENCED_INSTANCE_ID => Ok(HeartbeatOutcome::Gone),
        code => Err(Error::kafka(code, format!("heartbeat in group {group}"))),
    }
}

impl GroupMember {
    pub fn new(group: &str, session_timeout: Duration, rebalance_timeout: Duration) -> GroupMember {
        GroupMember {
            group: group.to_string(),
            member_id: String::new(),
            generation_id: -1,
            session_timeout,
            rebalance_timeout,
            assignment: Vec::new(),
        }
    }

    pub fn membership(&self) -> Membership {
        Membership { generation_id: self.generation_id, member_id: self.member_id.clone() }
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.group.clone()))
    }

    /// Joins (or rejoins) the group subscribed to `topics`; when this member is elected
    /// leader it assigns partitions with the range assignor. Returns the new assignment.
    pub async fn join(&mut self, client: &Client, topics: &[String]) -> Result<Vec<(String, i32)>> {
        let deadline = tokio::time::Instant::now() + self.rebalance_timeout + self.session_timeout;
        loop {
            match self.try_join(client, topics).await {
                Ok(a) => return Ok(a),
                Err(e) if tokio::time::Instant::now() < deadline && (e.is_retriable() || matches!(e.code(), Some(REBALANCE_IN_PROGRESS | UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION))) => {
                    if matches!(e.code(), Some(UNKNOWN_MEMBER_ID)) {
                        self.member_id.clear();
                    }
                    if e.is_retriable() {
                        // The coordinator may have moved: look it up again.
                        client.forget_coordinator(&self.group);
                    }
                    tracing::debug!(group = %self.group, "join: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_join(&mut self, client: &Client, topics: &[String]) -> Result<Vec<(String, i32)>> {
        let conn = client.group_coordinator(&self.group).await?;
        let version = conn.version(ApiKey::JoinGroup, (4, 7))?;
        let subscription = encode_versioned(
            &ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| StrBytes::from_string(t.clone())).collect()),
            0,
        )?;
        let (group_id, session_ms, rebalance_ms) =
            (self.group_id(), self.session_timeout.as_millis() as i32, self.rebalance_timeout.as_millis() as i32);
        let request = |member_id: &str| {
            JoinGroupRequest::default()
                .with_group_id(group_id.clone())
                .with_session_timeout_ms(session_ms)
                .with_rebalance_timeout_ms(rebalance_ms)
                .with_member_id(StrBytes::from_string(member_id.to_string()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")).with_metadata(subscription.clone())])
        };
        let mut resp = conn.call(&request(&self.member_id), version).await?;
        if resp.error_code == MEMBER_ID_REQUIRED {
            // KIP-394: the first join only obtains a member id.
            self.member_id = resp.member_id.to_string();
            resp = conn.call(&request(&self.member_id), version).await?;
        }
        if resp.error_code != 0 {
            return Err(Error::kafka(resp.error_code, format!("join group {}", self.group)));
        }
        self.member_id = resp.member_id.to_string();
        self.generation_id = resp.generation_id;
        let assignments = if resp.leader == resp.member_id {
            let mut subscriptions = BTreeMap::new();
            for m in &resp.members {
                let sub = decode_versioned::<ConsumerProtocolSubscription>(&m.metadata)?;
                subscriptions.insert(m.member_id.to_string(), sub.topics.iter().map(|t| t.to_string()).collect::<Vec<_>>());
            }
            let mut counts = BTreeMap::new();
            // The cached metadata, as Kafka's consumers assign from theirs, unless it lacks a
            // subscribed topic: one round trip less per rebalance on a far link. A partition
            // count that grew since shows up in the next metadata refresh, and the group is
            // rebalanced then.
            let cached = client.metadata_snapshot();
            let md = if subscriptions.values().flatten().all(|t| cached.topics.contains_key(t)) { cached } else { client.refresh_metadata(None).await? };
            for topics in subscriptions.values() {
                for t in topics {
                    if let Some(tm) = md.topics.get(t) {
                        counts.insert(t.clone(), tm.partitions.len() as i32);
                    }
                }
            }
            range_assign(&subscriptions, &counts)
                .into_iter()
                .map(|(member, parts)| {
                    let a = encode_assignment(&parts)?;
                    Ok(SyncGroupRequestAssignment::default().with_member_id(StrBytes::from_string(member)).with_assignment(a))
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let sync_version = conn.version(ApiKey::SyncGroup, (3, 5))?;
        let sync = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str("range")))
            .with_assignments(assignments);
        let resp = conn.call(&sync, sync_version).await?;
        if resp.error_code != 0 {
            return Err(Error::kafka(resp.error_code, format!("sync group {}", self.group)));
        }
        self.assignment = if resp.assignment.is_empty() {
            Vec::new()
        } else {
            let a = decode_versioned::<ConsumerProtocolAssignment>(&resp.assignment)?;
            a.assigned_partitions.iter().flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic.0.to_string(), *p))).collect()
        };
        Ok(self.assignment.clone())
    }

    /// One heartbeat of the current generation (see [`Heartbeater::beat`]); `Gone` before a join.
    pub async fn heartbeat(&self, client: &Client) -> Result<HeartbeatOutcome> {
        if !self.joined() {
            return Ok(HeartbeatOutcome::Gone);
        }
        client.on_coordinator(&self.group, |conn| heartbeat_on(conn, &self.group, &self.member_id, self.generation_id)).await
    }

    /// The current generation's heartbeats, for a task of their own; `None` before a join.
    pub fn heartbeater(&self, client: &Arc<Client>) -> Option<Heartbeater> {
        self.joined().then(|| Heartbeater { group: self.group.clone(), member_id: self.member_id.clone(), generation_id: self.generation_id, client: client.clone() })
    }

    fn joined(&self) -> bool {
        self.generation_id >= 0 && !self.member_id.is_empty()
    }

    /// Leaves the group so the others take over at once instead of after the session timeout.
    pub async fn leave(&mut self, client: &Client) -> Result<()> {
        if !self.joined() {
            return Ok(());
        }
        let member_id = std::mem::take(&mut self.member_id);
        self.generation_id = -1;
        let group_id = self.group_id();
        client
            .on_coordinator(&self.group, |conn| async move {
                let version = conn.version(ApiKey::LeaveGroup, (3, 5))?;
                let req = LeaveGroupRequest::default().with_group_id(group_id).with_members(vec![MemberIdentity::default().with_member_id(StrBytes::from_string(member_id))]);
                conn.call(&req, version).await?;
                Ok(())
            })
            .await
    }
}

/// Kafka's range assignor: per topic, partitions split into contiguous ranges over the
/// members subscribed to it, in member-id order; the first members get one more when the
/// split is uneven.
pub fn range_assign(subscriptions: &BTreeMap<String, Vec<String>>, partition_counts: &BTreeMap<String, i32>) -> BTreeMap<String, Vec<(String, i32)>> {
    let mut out: BTreeMap<String, Vec<(String, i32)>> = subscriptions.keys().map(|m| (m.clone(), Vec::new())).collect();
    for (topic, count) in partition_counts {
        let members: Vec<&String> = subscriptions.iter().filter(|(_, ts)| ts.contains(topic)).map(|(m, _)| m).collect();
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let take = per + if (i as i32) < extra { 1 } else { 0 };
            if let Some(list) = out.get_mut(*m) {
                list.extend((next..next + take).map(|p| (topic.clone(), p)));
            }
            next += take;
        }
    }
    out
}

fn encode_assignment(parts: &[(String, i32)]) -> Result<Bytes> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| AssignedPartitions::default().with_topic(TopicName(StrBytes::from_string(t.to_string()))).with_partitions(ps))
            .collect(),
    );
    encode_versioned(&a, 0)
}

/// The consumer protocol's embedded structs carry their own version in front.
fn encode_versioned<T: Encodable>(value: &T, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    value.encode(&mut buf, version).map_err(|e| Error::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

fn decode_versioned<T: Decodable>(bytes: &Bytes) -> Result<T> {
    let mut b = bytes.clone();
    if b.len() < 2 {
        return Err(Error::Protocol("consumer protocol data shorter than its version".into()));
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = b.split_to(2);
    // Newer versions only add fields at the end: read what we know.
    T::decode(&mut b, version.clamp(0, 3)).map_err(|e| Error::Protocol(format!("consumer protocol data: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignor_matches_kafka() {
        let mut subs = BTreeMap::new();
        subs.insert("a".to_string(), vec!["t".to_string(), "u".to_string()]);
        subs.insert("b".to_string(), vec!["t".to_string()]);
        let mut counts = BTreeMap::new();
        counts.insert("t".to_string(), 5);
        counts.insert("u".to_string(), 2);
        let got = range_assign(&subs, &counts);
        assert_eq!(got["a"], vec![("t".into(), 0), ("t".into(), 1), ("t".into(), 2), ("u".into(), 0), ("u".into(), 1)]);
        assert_eq!(got["b"], vec![("t".into(), 3), ("t".into(), 4)]);
    }

    #[test]
    fn assignment_round_trips_through_the_consumer_protocol() {
        let parts = vec![("t".to_string(), 0), ("t".to_string(), 3), ("u".to_string(), 1)];
        let bytes = encode_assignment(&parts).expect("encode");
        let a = decode_versioned::<ConsumerProtocolAssignment>(&bytes).expect("decode");
        let back: Vec<(String, i32)> = a.assigned_partitions.iter().flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic.0.to_string(), *p))).collect();
        assert_eq!(back, parts);
    }
}
