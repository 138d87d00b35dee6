//! JoinGroup: a new member gets an id (MEMBER_ID_REQUIRED from v4), a known one rejoins, a
//! static member (`group.instance.id`) takes over its old id; each either gets the current
//! generation back at once or waits in the rebalance it starts. Kafka's `GroupCoordinator`
//! join paths, decision for decision.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::rebalance::{code, current_generation, maybe_prepare_rebalance, prepare_rebalance, session_deadline, store_group, try_complete_join, validate_current_member};
use super::state::{Group, GroupState, JoinResult, Member, SyncResult};
use super::{Ctx, GroupCoordinator, Reply};

/// How long a member that joined but never completed a join may stay: it cannot heartbeat
/// before it knows its generation, and a dead client must not hold a rebalance forever.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// JoinGroup v4+ from a dynamic member: a first join only gets a member id back.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader can be told to skip the assignment.
    pub supports_skip_assignment: bool,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

impl GroupCoordinator {
    pub fn join(&self, req: JoinRequest) -> Reply<JoinResult> {
        let cx = self.ctx();
        let fail = |e: ResponseError| Reply::Ready(JoinResult::error(&req.member_id, code(e)));
        if req.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        let session = i64::from(req.session_timeout_ms);
        if session < self.config.min_session_timeout.as_millis() as i64 || session > self.config.max_session_timeout.as_millis() as i64 {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        let mut groups = self.lock();
        let unknown = req.member_id.is_empty();
        if !groups.contains_key(&req.group_id) {
            // Only a member without id creates a group; one with an id lost its group.
            if !unknown {
                return fail(ResponseError::UnknownMemberId);
            }
            groups.insert(req.group_id.clone(), Group::new(&req.group_id, cx.now_ms));
        }
        let group_id = req.group_id.clone();
        let Some(g) = groups.get_mut(&group_id) else { return fail(ResponseError::CoordinatorNotAvailable) };
        let reply = if unknown { new_member_join(g, req, &cx) } else { current_member_join(g, req, &cx) };
        if g.is(GroupState::PreparingRebalance) {
            try_complete_join(g, &cx);
        }
        if g.is_unused() {
            groups.remove(&group_id);
        }
        drop(groups);
        self.wake.notify_one();
        reply
    }
}

/// Kafka's `doNewMemberJoinGroup`.
fn new_member_join(g: &mut Group, req: JoinRequest, cx: &Ctx) -> Reply<JoinResult> {
    if g.is(GroupState::Dead) {
        return Reply::Ready(JoinResult::error("", code(ResponseError::CoordinatorNotAvailable)));
    }
    if !g.supports_protocols(&req.protocol_type, &req.protocols) {
        return Reply::Ready(JoinResult::error("", code(ResponseError::InconsistentGroupProtocol)));
    }
    let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
    let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
    match req.instance_id.clone() {
        Some(instance) => match g.static_members.get(&instance).cloned() {
            Some(old_id) => update_static_member_and_rebalance(g, &instance, &old_id, &new_id, req, cx),
            None => add_member_and_rebalance(g, new_id, req, cx),
        },
        None if req.require_known_member_id => {
            let expiry = cx.now + Duration::from_millis(req.session_timeout_ms.max(0) as u64);
            g.pending_join.insert(new_id.clone(), expiry);
            Reply::Ready(JoinResult::error(&new_id, code(ResponseError::MemberIdRequired)))
        }
        None => add_member_and_rebalance(g, new_id, req, cx),
    }
}

/// Kafka's `doCurrentMemberJoinGroup`.
fn current_member_join(g: &mut Group, req: JoinRequest, cx: &Ctx) -> Reply<JoinResult> {
    let member_id = req.member_id.clone();
    let fail = |e: ResponseError| Reply::Ready(JoinResult::error(&member_id, code(e)));
    if g.is(GroupState::Dead) {
        return fail(ResponseError::CoordinatorNotAvailable);
    }
    if !g.supports_protocols(&req.protocol_type, &req.protocols) {
        return fail(ResponseError::InconsistentGroupProtocol);
    }
    if g.pending_join.contains_key(&member_id) {
        // Pending ids come from dynamic joins only; pairing one with an instance id is a
        // confused client.
        if req.instance_id.is_some() {
            return fail(ResponseError::InvalidRequest);
        }
        return add_member_and_rebalance(g, member_id.clone(), req, cx);
    }
    if let Some(e) = validate_current_member(g, &member_id, req.instance_id.as_deref()) {
        return fail(e);
    }
    let (is_leader, matches) = match g.members.get(&member_id) {
        Some(m) => (g.is_leader(&member_id), m.matches(&req.protocols)),
        None => return fail(ResponseError::UnknownMemberId),
    };
    match g.state {
        GroupState::PreparingRebalance => update_member_and_rebalance(g, &member_id, req, cx),
        // A member that lost its JoinGroup response asks again: same generation, same answer.
        GroupState::CompletingRebalance if matches => Reply::Ready(current_generation(g, &member_id, is_leader, false)),
        GroupState::CompletingRebalance => update_member_and_rebalance(g, &member_id, req, cx),
        // The leader rejoining forces a rebalance: it is how it reacts to metadata changes
        // (new partitions) that do not change any member's subscription.
        GroupState::Stable if is_leader || !matches => update_member_and_rebalance(g, &member_id, req, cx),
        GroupState::Stable => Reply::Ready(current_generation(g, &member_id, false, false)),
        GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
    }
}

fn add_member_and_rebalance(g: &mut Group, member_id: String, req: JoinRequest, cx: &Ctx) -> Reply<JoinResult> {
    let (tx, rx) = oneshot::channel();
    if g.is(GroupState::PreparingRebalance) && g.generation == 0 {
        g.new_member_added = true;
    }
    tracing::info!(group = %g.id, member = %member_id, instance = ?req.instance_id, state = g.state.name(), "member joins");
    let reason = format!("new member {member_id} joins");
    g.add_member(Member {
        id: member_id,
        instance_id: req.instance_id,
        client_id: req.client_id,
        client_host: req.client_host,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        session_timeout_ms: req.session_timeout_ms,
        protocol_type: req.protocol_type,
        protocols: req.protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(tx),
        awaiting_sync: None,
        is_new: true,
        heartbeat_deadline: Some(cx.now + NEW_MEMBER_JOIN_TIMEOUT),
    });
    maybe_prepare_rebalance(g, cx, &reason);
    Reply::Parked(rx)
}

fn update_member_and_rebalance(g: &mut Group, member_id: &str, req: JoinRequest, cx: &Ctx) -> Reply<JoinResult> {
    let (tx, rx) = oneshot::channel();
    if let Some(m) = g.members.get_mut(member_id) {
        m.protocols = req.protocols;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        // A second JoinGroup of the same member replaces the first; the first connection's
        // parked request is answered with an error when its sender is dropped here.
        m.awaiting_join = Some(tx);
    }
    let reason = if g.is_leader(member_id) { "the leader rejoins" } else { "a member rejoins with new metadata" };
    maybe_prepare_rebalance(g, cx, &format!("{reason} ({member_id})"));
    Reply::Parked(rx)
}

/// A static member rejoined without its member id (a restarted process): it takes over the
/// old id's place, and the old id is fenced. Kafka's `updateStaticMemberAndRebalance`.
fn update_static_member_and_rebalance(g: &mut Group, instance: &str, old_id: &str, new_id: &str, req: JoinRequest, cx: &Ctx) -> Reply<JoinResult> {
    let current_leader = g.leader.clone().unwrap_or_default();
    let Some(old) = g.members.get(old_id) else {
        return Reply::Ready(JoinResult::error("", code(ResponseError::UnknownMemberId)));
    };
    let saved = (old.protocols.clone(), old.rebalance_timeout_ms, old.session_timeout_ms);
    replace_static_member(g, instance, old_id, new_id);
    let (tx, rx) = oneshot::channel();
    if let Some(m) = g.members.get_mut(new_id) {
        m.heartbeat_deadline = Some(session_deadline(m, cx));
        m.protocols = req.protocols;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
    }
    tracing::info!(group = %g.id, instance, old_id, new_id, state = g.state.name(), "static member rejoins");
    match g.state {
        GroupState::Stable if g.select_protocol() == g.protocol_name => {
            // Nothing changes for the others: persist the new member id and hand back the
            // current generation without a rebalance.
            if let Err(e) = store_group(g, cx, &|m| m.assignment.clone()) {
                if let Some(m) = g.members.get_mut(new_id) {
                    (m.protocols, m.rebalance_timeout_ms, m.session_timeout_ms) = saved;
                }
                replace_static_member(g, instance, new_id, old_id);
                if let Some(m) = g.members.get_mut(old_id) {
                    m.heartbeat_deadline = Some(session_deadline(m, cx));
                }
                let mut r = current_generation(g, "", false, false);
                r.error = e;
                r.leader = current_leader;
                return Reply::Ready(r);
            }
            if req.supports_skip_assignment {
                // v9+: the leader learns it leads (to keep watching metadata) but must not
                // compute an assignment the stable group would ignore.
                let is_leader = g.is_leader(new_id);
                Reply::Ready(current_generation(g, new_id, is_leader, is_leader))
            } else {
                // Before v9 the old leader id is returned, so a rejoining leader does not
                // believe it leads and does not run a pointless assignment.
                let mut r = current_generation(g, new_id, false, false);
                r.leader = current_leader;
                Reply::Ready(r)
            }
        }
        GroupState::Stable => {
            set_awaiting_join(g, new_id, tx);
            maybe_prepare_rebalance(g, cx, "a static member rejoins with protocols that change the group's protocol");
            Reply::Parked(rx)
        }
        // The leader may already have computed an assignment naming the old id.
        GroupState::CompletingRebalance => {
            set_awaiting_join(g, new_id, tx);
            prepare_rebalance(g, cx, "a static member rejoins before the assignment was sent");
            Reply::Parked(rx)
        }
        GroupState::PreparingRebalance => {
            set_awaiting_join(g, new_id, tx);
            Reply::Parked(rx)
        }
        GroupState::Empty | GroupState::Dead => Reply::Ready(JoinResult::error("", code(ResponseError::UnknownMemberId))),
    }
}

fn set_awaiting_join(g: &mut Group, member_id: &str, tx: oneshot::Sender<JoinResult>) {
    if let Some(m) = g.members.get_mut(member_id) {
        m.awaiting_join = Some(tx);
    }
}

/// Moves a static member to a new member id; whoever waits under the old id is fenced.
fn replace_static_member(g: &mut Group, instance: &str, from: &str, to: &str) {
    let Some(mut m) = g.members.remove(from) else { return };
    if let Some(tx) = m.awaiting_join.take() {
        let _ = tx.send(JoinResult::error(from, code(ResponseError::FencedInstanceId)));
    }
    if let Some(tx) = m.awaiting_sync.take() {
        let _ = tx.send(SyncResult::error(code(ResponseError::FencedInstanceId)));
    }
    m.id = to.to_string();
    g.members.insert(to.to_string(), m);
    if g.is_leader(from) {
        g.leader = Some(to.to_string());
    }
    if g.pending_sync.remove(from) {
        g.pending_sync.insert(to.to_string());
    }
    g.static_members.insert(instance.to_string(), to.to_string());
}
