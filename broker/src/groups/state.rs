//! One classic group and its members, as Kafka's `ClassicGroup` keeps them: membership,
//! protocol votes, the state machine's data. Pure data and bookkeeping; the transitions that
//! answer requests live in `membership`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::records::{GroupValue, MemberValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports in ListGroups and DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a parked JoinGroup is answered with (version-independent; the API layer shapes it).
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// (member id, group instance id, metadata of the selected protocol); leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    pub fn error(member_id: &str, error: i16) -> JoinResult {
        JoinResult { error, generation: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> SyncResult {
        SyncResult { error, ..Default::default() }
    }
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    /// Joined but not yet through its first completed join: only the long new-member timeout
    /// applies (it cannot heartbeat without knowing its generation).
    pub is_new: bool,
    /// When the member is considered dead without a heartbeat; `None` while a rebalance
    /// deadline governs it instead.
    pub heartbeat_deadline: Option<Instant>,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// Same protocols with the same metadata in the same order (Kafka's `matches`).
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among the candidates.
    fn vote<'a>(&'a self, candidates: &HashSet<&str>) -> Option<&'a str> {
        self.protocols.iter().map(|(n, _)| n.as_str()).find(|n| candidates.contains(n))
    }

    pub fn awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }
}

/// The delayed completion of the join phase (Kafka's `InitialDelayedJoin` / `DelayedJoin`).
#[derive(Debug, Clone, Copy)]
pub enum JoinTimer {
    /// A group rebalancing from Empty waits this long for more members to arrive, extended
    /// while new ones keep arriving, up to the rebalance timeout.
    Initial { deadline: Instant, delay_ms: u64, remaining_ms: u64 },
    /// Completes when every member rejoined, or at the deadline without the stragglers.
    Regular { deadline: Instant },
}

impl JoinTimer {
    pub fn deadline(&self) -> Instant {
        match self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Regular { deadline } => *deadline,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub expire_timestamp: Option<i64>,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// Milliseconds since the epoch of the last state change.
    pub state_timestamp: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, expiring after the session timeout.
    pub pending_join: HashMap<String, Instant>,
    /// Members that have not sent SyncGroup for the current generation.
    pub pending_sync: HashSet<String>,
    pub sync_deadline: Option<Instant>,
    pub new_member_added: bool,
    pub join_timer: Option<JoinTimer>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp: now_ms,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_join: HashMap::new(),
            pending_sync: HashSet::new(),
            sync_deadline: None,
            new_member_added: false,
            join_timer: None,
            offsets: BTreeMap::new(),
        }
    }

    pub fn transition(&mut self, to: GroupState, now_ms: i64) {
        self.state = to;
        self.state_timestamp = now_ms;
    }

    pub fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// A group nobody uses: created by a join that failed, holding nothing worth keeping.
    pub fn is_unused(&self) -> bool {
        self.is(GroupState::Empty)
            && self.members.is_empty()
            && self.pending_join.is_empty()
            && self.offsets.is_empty()
            && self.generation == 0
            && self.protocol_type.is_none()
    }

    /// Kafka's `canRebalance`: the states PreparingRebalance may be entered from.
    pub fn can_rebalance(&self) -> bool {
        matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty)
    }

    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0)
    }

    fn supporting(&self, protocol: &str) -> usize {
        self.members.values().filter(|m| m.protocols.iter().any(|(n, _)| n == protocol)).count()
    }

    /// Whether a member with these protocols may join: any type and protocol while the group
    /// is empty, otherwise the group's type and at least one protocol every member supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(n, _)| self.supporting(n) == self.members.len())
    }

    /// The protocol every member supports with the most first-preference votes; ties go to the
    /// protocol that got its first vote earliest, so the choice is stable.
    pub fn select_protocol(&self) -> Option<String> {
        let all = self.members.len();
        let candidates: HashSet<&str> = self
            .members
            .values()
            .flat_map(|m| m.protocols.iter().map(|(n, _)| n.as_str()))
            .filter(|n| self.supporting(n) == all)
            .collect();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for m in self.members.values() {
            if let Some(p) = m.vote(&candidates) {
                match votes.iter_mut().find(|(n, _)| *n == p) {
                    Some((_, c)) => *c += 1,
                    None => votes.push((p, 1)),
                }
            }
        }
        let best = votes.iter().map(|(_, c)| *c).max()?;
        votes.iter().find(|(_, c)| *c == best).map(|(n, _)| n.to_string())
    }

    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), member.id.clone());
        }
        self.pending_join.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member (its parked requests are dropped, not answered) and picks a new leader
    /// if it led.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.remove(member_id);
        if let Some(m) = &removed {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_join.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.pending_join.is_empty() && self.members.values().all(Member::awaiting_join)
    }

    /// Keeps the leader if it rejoined, else hands leadership to a member that did. False when
    /// nobody rejoined.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else { return false };
        if self.members.get(&leader).is_some_and(Member::awaiting_join) {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// The member list the leader gets to compute an assignment from.
    pub fn join_members(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol))).collect()
    }

    /// Topics the members subscribed to, from the selected protocol's metadata in the consumer
    /// protocol; `None` when not a consumer group or not parseable (Kafka's `computeSubscribedTopics`).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(consumer_subscription_topics(&m.metadata(protocol))?);
        }
        Some(topics)
    }

    /// The group as a `GroupMetadataValue`, with `assignment` given by the caller where it is
    /// about to change.
    pub fn to_record(&self, assignment: &dyn Fn(&Member) -> Bytes) -> GroupValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: assignment(m),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its last `GroupMetadataValue`: Stable with its members (who must
    /// heartbeat within their session timeout) or Empty, at the stored generation.
    pub fn from_record(id: &str, v: GroupValue, now: Instant) -> Group {
        let mut g = Group::new(id, v.current_state_timestamp);
        g.generation = v.generation;
        g.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
        g.protocol_name = v.protocol.clone();
        g.leader = v.leader;
        let protocol = v.protocol.unwrap_or_default();
        for m in v.members {
            let session = std::time::Duration::from_millis(m.session_timeout.max(0) as u64);
            let member = Member {
                id: m.member_id.clone(),
                instance_id: m.group_instance_id.clone(),
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout,
                session_timeout_ms: m.session_timeout,
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline: Some(now + session),
            };
            if let Some(instance) = &m.group_instance_id {
                g.static_members.insert(instance.clone(), m.member_id.clone());
            }
            g.members.insert(m.member_id, member);
        }
        g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        if g.leader.as_ref().is_some_and(|l| !g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g
    }
}

/// The topics of a `ConsumerProtocolSubscription`, read as version 0, the prefix every
/// version shares (as Kafka reads it).
pub fn consumer_subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    use bytes::Buf;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return None;
    }
    let _version = buf.get_i16();
    let sub = ConsumerProtocolSubscription::decode(&mut buf, 0).ok()?;
    Some(sub.topics.iter().map(|t| t.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 1000,
            session_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::new())).collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            heartbeat_deadline: None,
        }
    }

    #[test]
    fn protocol_selection_takes_the_common_protocol_with_most_votes() {
        let mut g = Group::new("g", 0);
        g.add_member(member("a", &["roundrobin", "range"]));
        g.add_member(member("b", &["range", "roundrobin", "sticky"]));
        g.add_member(member("c", &["range", "roundrobin"]));
        g.state = GroupState::Stable;
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
        // "sticky" is not supported by everyone; "roundrobin" and "range" are.
        assert!(g.supports_protocols("consumer", &[("sticky".into(), Bytes::new()), ("range".into(), Bytes::new())]));
        assert!(!g.supports_protocols("consumer", &[("sticky".into(), Bytes::new())]));
        assert!(!g.supports_protocols("connect", &[("range".into(), Bytes::new())]));
    }

    #[test]
    fn removing_the_leader_elects_another_member() {
        let mut g = Group::new("g", 0);
        g.add_member(member("a", &["range"]));
        g.add_member(member("b", &["range"]));
        assert!(g.is_leader("a"));
        g.remove_member("a");
        assert!(g.is_leader("b"));
        g.remove_member("b");
        assert_eq!(g.leader, None);
    }

    #[test]
    fn subscription_topics_are_read_from_the_consumer_protocol() {
        let mut b = bytes::BytesMut::new();
        use bytes::BufMut;
        b.put_i16(1);
        b.put_i32(2);
        for t in ["orders", "payments"] {
            b.put_i16(t.len() as i16);
            b.put_slice(t.as_bytes());
        }
        b.put_i32(-1); // user data (null), ignored
        assert_eq!(consumer_subscription_topics(&b.freeze()), Some(vec!["orders".into(), "payments".into()]));
        assert_eq!(consumer_subscription_topics(&Bytes::from_static(&[0, 1, 0x7f])), None);
    }
}
