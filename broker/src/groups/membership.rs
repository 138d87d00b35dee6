//! SyncGroup, Heartbeat and LeaveGroup, and the entry point of the coordinator's timers: the
//! rest of the classic rebalance protocol after JoinGroup (see `join`, `rebalance`).

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::rebalance::{
    code, expire_group, maybe_prepare_rebalance, next_deadline, propagate_assignment, remove_member,
    remove_pending_sync, reset_and_propagate_assignment_error, session_deadline, store_group, try_complete_join,
    validate_current_member,
};
use super::state::{GroupState, Member, SyncResult};
use super::{Ctx, GroupCoordinator, Reply};

pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}
impl GroupCoordinator {
    pub fn sync(&self, req: SyncRequest) -> Reply<SyncResult> {
        let cx = self.ctx();
        let fail = |e: ResponseError| Reply::Ready(SyncResult::error(code(e)));
        if req.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(&req.group_id) else { return fail(ResponseError::UnknownMemberId) };
        if g.is(GroupState::Dead) {
            return fail(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(e) = validate_current_member(g, &req.member_id, req.instance_id.as_deref()) {
            return fail(e);
        }
        if req.generation != g.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        let mismatch = |given: &Option<String>, ours: &Option<String>| given.is_some() && given != ours;
        if mismatch(&req.protocol_type, &g.protocol_type) || mismatch(&req.protocol_name, &g.protocol_name) {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let reply = match g.state {
            GroupState::Empty => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Dead => fail(ResponseError::CoordinatorNotAvailable),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.members.get_mut(&req.member_id) {
                    m.awaiting_sync = Some(tx);
                }
                remove_pending_sync(g, &req.member_id);
                if g.is_leader(&req.member_id) {
                    tracing::info!(group = %g.id, generation = g.generation, members = g.members.len(), "assignment received from the leader");
                    let assignment: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    let of = |m: &Member| assignment.get(&m.id).cloned().unwrap_or_default();
                    match store_group(g, &cx, &of) {
                        Ok(()) => {
                            for m in g.members.values_mut() {
                                m.assignment = of(m);
                            }
                            propagate_assignment(g, &cx, 0);
                            g.transition(GroupState::Stable, cx.now_ms);
                        }
                        Err(e) => {
                            reset_and_propagate_assignment_error(g, &cx, e);
                            maybe_prepare_rebalance(g, &cx, "the assignment could not be stored");
                        }
                    }
                }
                Reply::Parked(rx)
            }
            GroupState::Stable => {
                remove_pending_sync(g, &req.member_id);
                let (protocol_type, protocol_name) = (g.protocol_type.clone(), g.protocol_name.clone());
                match g.members.get_mut(&req.member_id) {
                    Some(m) => {
                        m.heartbeat_deadline = Some(session_deadline(m, &cx));
                        Reply::Ready(SyncResult { error: 0, protocol_type, protocol_name, assignment: m.assignment.clone() })
                    }
                    None => fail(ResponseError::UnknownMemberId),
                }
            }
        };
        drop(groups);
        self.wake.notify_one();
        reply
    }

    pub fn heartbeat(&self, group_id: &str, member_id: &str, instance_id: Option<&str>, generation: i32) -> i16 {
        let cx = self.ctx();
        if group_id.is_empty() {
            return code(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group_id) else { return code(ResponseError::UnknownMemberId) };
        if g.is(GroupState::Dead) {
            return code(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(e) = validate_current_member(g, member_id, instance_id) {
            return code(e);
        }
        if generation != g.generation {
            return code(ResponseError::IllegalGeneration);
        }
        let state = g.state;
        let Some(m) = g.members.get_mut(member_id) else { return code(ResponseError::UnknownMemberId) };
        match state {
            GroupState::Empty | GroupState::Dead => code(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.heartbeat_deadline = Some(session_deadline(m, &cx));
                code(ResponseError::RebalanceInProgress)
            }
            // Consumers may heartbeat between their JoinGroup and SyncGroup responses.
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.heartbeat_deadline = Some(session_deadline(m, &cx));
                0
            }
        }
    }

    /// LeaveGroup: one error per member, plus the top-level error. As Kafka's
    /// `classicGroupLeaveToClassicGroup`, every member named is removed first and the group
    /// reacts once afterwards: if anyone left, even a member that only held a pending id, a
    /// Stable or CompletingRebalance group rebalances and a rebalancing one may complete.
    pub fn leave(&self, group_id: &str, leaving: &[(String, Option<String>)]) -> (i16, Vec<i16>) {
        let cx = self.ctx();
        if group_id.is_empty() {
            return (code(ResponseError::InvalidGroupId), vec![]);
        }
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group_id) else {
            return (0, vec![code(ResponseError::UnknownMemberId); leaving.len()]);
        };
        if g.is(GroupState::Dead) {
            return (code(ResponseError::CoordinatorNotAvailable), vec![]);
        }
        let errors: Vec<i16> = leaving
            .iter()
            .map(|(member_id, instance_id)| {
                // Administrative removal names only the group.instance.id.
                if member_id.is_empty() {
                    return match instance_id.as_ref().and_then(|i| g.static_members.get(i)).cloned() {
                        Some(current) => {
                            tracing::info!(group = %g.id, member = %current, "static member removed by LeaveGroup");
                            remove_member(g, &current);
                            0
                        }
                        None => code(ResponseError::UnknownMemberId),
                    };
                }
                if g.pending_join.remove(member_id).is_some() {
                    tracing::info!(group = %g.id, member = %member_id, "pending member left the group");
                    return 0;
                }
                match validate_current_member(g, member_id, instance_id.as_deref()) {
                    Some(e) => code(e),
                    None => {
                        tracing::info!(group = %g.id, member = %member_id, "member left the group");
                        remove_member(g, member_id);
                        0
                    }
                }
            })
            .collect();
        if errors.contains(&0) {
            match g.state {
                GroupState::Stable | GroupState::CompletingRebalance => maybe_prepare_rebalance(g, &cx, "members left the group"),
                GroupState::PreparingRebalance => try_complete_join(g, &cx),
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        drop(groups);
        self.wake.notify_one();
        (0, errors)
    }

    /// Runs every timer that is due and returns the earliest one still pending.
    pub(super) fn expire(&self, now: Instant) -> Option<Instant> {
        let cx = Ctx { now, ..self.ctx() };
        let mut groups = self.lock();
        for g in groups.values_mut() {
            expire_group(g, &cx);
        }
        groups.retain(|_, g| !g.is_unused());
        groups.values().filter_map(next_deadline).min()
    }
}
