//! The transitions every request and timer shares: entering PreparingRebalance, completing
//! the join phase into a new generation, handing out assignments, removing members, and the
//! timers (session expiry, the join phase's delays, members that never sync). Kafka's
//! `GroupCoordinator` `prepareRebalance` / `onCompleteJoin` / `onExpireHeartbeat` and friends.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::state::{Group, GroupState, JoinResult, JoinTimer, Member, SyncResult};
use super::store;
use super::Ctx;

pub(super) fn code(e: ResponseError) -> i16 {
    e.code()
}

pub(super) fn session_deadline(m: &Member, cx: &Ctx) -> Instant {
    cx.now + Duration::from_millis(m.session_timeout_ms.max(0) as u64)
}

pub(super) fn rebalance_deadline(g: &Group, cx: &Ctx) -> Instant {
    cx.now + Duration::from_millis(g.rebalance_timeout_ms().max(0) as u64)
}

/// A known static member id must match the group.instance.id, and the member must exist.
pub(super) fn validate_current_member(g: &Group, member_id: &str, instance_id: Option<&str>) -> Option<ResponseError> {
    if let Some(instance) = instance_id {
        match g.static_members.get(instance) {
            Some(current) if current != member_id => {
                tracing::info!(group = %g.id, instance, member_id, current = %current, "fenced a stale static member");
                return Some(ResponseError::FencedInstanceId);
            }
            Some(_) => {}
            None => return Some(ResponseError::UnknownMemberId),
        }
    }
    (!g.members.contains_key(member_id)).then_some(ResponseError::UnknownMemberId)
}

/// The current generation as a JoinGroup answer; the member list only for the leader.
pub(super) fn current_generation(g: &Group, member_id: &str, with_members: bool, skip_assignment: bool) -> JoinResult {
    JoinResult {
        error: 0,
        generation: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        leader: g.leader.clone().unwrap_or_default(),
        skip_assignment,
        member_id: member_id.to_string(),
        members: if with_members { g.join_members() } else { vec![] },
    }
}

pub(super) fn maybe_prepare_rebalance(g: &mut Group, cx: &Ctx, reason: &str) {
    if g.can_rebalance() {
        prepare_rebalance(g, cx, reason);
    }
}

pub(super) fn prepare_rebalance(g: &mut Group, cx: &Ctx, reason: &str) {
    if g.is(GroupState::CompletingRebalance) {
        reset_and_propagate_assignment_error(g, cx, code(ResponseError::RebalanceInProgress));
    }
    g.pending_sync.clear();
    g.sync_deadline = None;
    let rebalance_ms = g.rebalance_timeout_ms().max(0) as u64;
    g.join_timer = Some(if g.is(GroupState::Empty) {
        let delay_ms = cx.config.initial_rebalance_delay.as_millis() as u64;
        JoinTimer::Initial {
            deadline: cx.now + Duration::from_millis(delay_ms),
            delay_ms,
            remaining_ms: rebalance_ms.saturating_sub(delay_ms),
        }
    } else {
        JoinTimer::Regular { deadline: cx.now + Duration::from_millis(rebalance_ms) }
    });
    tracing::info!(group = %g.id, from = g.state.name(), generation = g.generation, reason, "preparing to rebalance");
    g.transition(GroupState::PreparingRebalance, cx.now_ms);
    try_complete_join(g, cx);
}

/// Completes the join phase early once every member rejoined (never during the initial delay,
/// which exists to wait for members not known yet).
pub(super) fn try_complete_join(g: &mut Group, cx: &Ctx) {
    if g.is(GroupState::PreparingRebalance)
        && matches!(g.join_timer, Some(JoinTimer::Regular { .. }))
        && g.has_all_members_joined()
    {
        complete_join(g, cx);
    }
}

/// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, start the next
/// generation and answer every parked JoinGroup (the member list goes to the leader only).
fn complete_join(g: &mut Group, cx: &Ctx) {
    g.join_timer = None;
    let stragglers: Vec<String> =
        g.members.values().filter(|m| !m.awaiting_join() && m.instance_id.is_none()).map(|m| m.id.clone()).collect();
    for id in &stragglers {
        tracing::info!(group = %g.id, member = %id, "member did not rejoin in time; removed");
        g.remove_member(id);
    }
    if g.is(GroupState::Dead) {
        return;
    }
    if !g.maybe_elect_new_joined_leader() && !g.members.is_empty() {
        // Only static members remain and none rejoined: wait for them (or their session
        // timeouts) another rebalance timeout.
        g.join_timer = Some(JoinTimer::Regular { deadline: rebalance_deadline(g, cx) });
        return;
    }
    g.generation += 1;
    g.pending_sync.clear();
    if g.members.is_empty() {
        g.protocol_name = None;
        g.transition(GroupState::Empty, cx.now_ms);
        tracing::info!(group = %g.id, generation = g.generation, "group is now empty");
        if let Err(e) = store_group(g, cx, &|_| Bytes::new()) {
            // A lost empty generation is harmless: the previous one has no live members either
            // once their sessions time out after a restart.
            tracing::warn!(group = %g.id, error = e, "could not write the empty group's metadata");
        }
        return;
    }
    g.protocol_name = g.select_protocol();
    g.transition(GroupState::CompletingRebalance, cx.now_ms);
    tracing::info!(group = %g.id, generation = g.generation, members = g.members.len(), protocol = ?g.protocol_name, "rebalance: join phase complete");
    let members = g.join_members();
    let template = current_generation(g, "", false, false);
    for m in g.members.values_mut() {
        if let Some(tx) = m.awaiting_join.take() {
            let leads = template.leader == m.id;
            let r = JoinResult { member_id: m.id.clone(), members: if leads { members.clone() } else { vec![] }, ..template.clone() };
            let _ = tx.send(r);
        }
        m.heartbeat_deadline = Some(session_deadline(m, cx));
        m.is_new = false;
    }
    g.pending_sync = g.members.keys().cloned().collect();
    g.sync_deadline = Some(rebalance_deadline(g, cx));
}

pub(super) fn remove_pending_sync(g: &mut Group, member_id: &str) {
    g.pending_sync.remove(member_id);
    if g.pending_sync.is_empty() {
        g.sync_deadline = None;
    }
}

/// Answers every parked SyncGroup with the member's assignment (or only the error).
pub(super) fn propagate_assignment(g: &mut Group, cx: &Ctx, error: i16) {
    let (protocol_type, protocol_name) =
        if error == 0 { (g.protocol_type.clone(), g.protocol_name.clone()) } else { (None, None) };
    for m in g.members.values_mut() {
        if let Some(tx) = m.awaiting_sync.take() {
            let r = SyncResult { error, protocol_type: protocol_type.clone(), protocol_name: protocol_name.clone(), assignment: m.assignment.clone() };
            let _ = tx.send(r);
            // Sessions that lapsed while the member waited for the leader restart now.
            m.heartbeat_deadline = Some(session_deadline(m, cx));
        }
    }
}

pub(super) fn reset_and_propagate_assignment_error(g: &mut Group, cx: &Ctx, error: i16) {
    for m in g.members.values_mut() {
        m.assignment = Bytes::new();
    }
    propagate_assignment(g, cx, error);
}

/// Removes a member whose JoinGroup may be parked: it is answered UNKNOWN_MEMBER_ID, so a
/// live client joins again (Kafka's `removeCurrentMemberFromClassicGroup`).
pub(super) fn remove_member(g: &mut Group, member_id: &str) {
    if let Some(tx) = g.members.get_mut(member_id).and_then(|m| m.awaiting_join.take()) {
        let _ = tx.send(JoinResult::error("", code(ResponseError::UnknownMemberId)));
    }
    g.remove_member(member_id);
}

/// Kafka's `removeMemberAndUpdateGroup`: the member goes (see [`remove_member`]) and the group
/// rebalances without it.
pub(super) fn remove_member_and_update_group(g: &mut Group, cx: &Ctx, member_id: &str) {
    remove_member(g, member_id);
    match g.state {
        GroupState::Stable | GroupState::CompletingRebalance => maybe_prepare_rebalance(g, cx, &format!("member {member_id} removed")),
        GroupState::PreparingRebalance => try_complete_join(g, cx),
        GroupState::Empty | GroupState::Dead => {}
    }
}

/// Writes the group's metadata record; the error is the code to answer with.
pub(super) fn store_group(g: &Group, cx: &Ctx, assignment: &dyn Fn(&Member) -> Bytes) -> Result<(), i16> {
    let record = store::group_metadata(&g.id, &g.to_record(assignment));
    cx.store.append(&g.id, &[record]).map_err(|e| {
        tracing::error!(group = %g.id, "could not write group metadata: {e}");
        e.code(ResponseError::UnknownServerError)
    })
}

pub(super) fn expire_group(g: &mut Group, cx: &Ctx) {
    let lapsed: Vec<String> = g.pending_join.iter().filter(|(_, d)| **d <= cx.now).map(|(id, _)| id.clone()).collect();
    for id in lapsed {
        g.pending_join.remove(&id);
        try_complete_join(g, cx);
    }
    let due: Vec<String> =
        g.members.values().filter(|m| m.heartbeat_deadline.is_some_and(|d| d <= cx.now)).map(|m| m.id.clone()).collect();
    for id in due {
        let Some(m) = g.members.get_mut(&id) else { continue };
        // A member waiting in a rebalance is governed by the rebalance's deadlines, except a
        // new one, which only the new-member timeout bounds.
        if !m.is_new && (m.awaiting_join.is_some() || m.awaiting_sync.is_some()) {
            m.heartbeat_deadline = None;
            continue;
        }
        tracing::info!(group = %g.id, member = %id, "member session expired; removed");
        remove_member_and_update_group(g, cx, &id);
    }
    if let Some(timer) = g.join_timer.filter(|t| t.deadline() <= cx.now) {
        if !g.is(GroupState::PreparingRebalance) {
            g.join_timer = None;
        } else {
            match timer {
                JoinTimer::Initial { delay_ms, remaining_ms, .. } if g.new_member_added && remaining_ms > 0 => {
                    // Members kept arriving: wait once more, within the rebalance timeout.
                    g.new_member_added = false;
                    let delay = (cx.config.initial_rebalance_delay.as_millis() as u64).min(remaining_ms);
                    g.join_timer = Some(JoinTimer::Initial {
                        deadline: cx.now + Duration::from_millis(delay),
                        delay_ms: delay,
                        remaining_ms: remaining_ms.saturating_sub(delay_ms),
                    });
                }
                _ => complete_join(g, cx),
            }
        }
    }
    if g.sync_deadline.is_some_and(|d| d <= cx.now) {
        g.sync_deadline = None;
        if matches!(g.state, GroupState::CompletingRebalance | GroupState::Stable) && !g.pending_sync.is_empty() {
            let missing: Vec<String> = g.pending_sync.drain().collect();
            for id in &missing {
                tracing::info!(group = %g.id, member = %id, "member never sent SyncGroup; removed");
                g.remove_member(id);
            }
            prepare_rebalance(g, cx, "members never sent SyncGroup");
        }
    }
}

pub(super) fn next_deadline(g: &Group) -> Option<Instant> {
    let members = g.members.values().filter_map(|m| m.heartbeat_deadline);
    let pending = g.pending_join.values().copied();
    members.chain(pending).chain(g.join_timer.map(|t| t.deadline())).chain(g.sync_deadline).min()
}
