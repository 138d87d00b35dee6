//! Committed offsets and the group administration APIs: OffsetCommit, OffsetFetch,
//! OffsetDelete, DeleteGroups, ListGroups, DescribeGroups.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::rebalance::validate_current_member;
use super::state::{CommittedOffset, Group, GroupState};
use super::store;
use super::GroupCoordinator;
use crate::topics::Topics;

pub struct CommitRequest {
    pub group_id: String,
    /// -1 for commits from outside the group protocol (admin tools, simple consumers).
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// OffsetCommit v2-v4 retention; -1 means the broker's.
    pub retention_ms: i64,
    pub version: i16,
    pub topics: Vec<(String, Vec<PartitionCommit>)>,
}

pub struct PartitionCommit {
    pub partition: i32,
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// What OffsetFetch returns for a partition: offset -1 and empty metadata when none.
#[derive(Clone)]
pub struct FetchedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

pub struct GroupSummary {
    pub error: i16,
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// Per topic, per partition: what a request gets back.
pub type PartitionResults<T> = Vec<(String, Vec<(i32, T)>)>;

fn partition_exists(topics: &Topics, topic: &str, partition: i32) -> bool {
    topics.get(topic).is_some_and(|t| t.partition(partition).is_some())
}

impl GroupCoordinator {
    /// OffsetCommit: an error code per partition.
    pub fn commit(&self, topics: &Topics, req: CommitRequest) -> PartitionResults<i16> {
        let cx = self.ctx();
        // As Kafka's request handler does before the coordinator sees the request.
        let mut results: PartitionResults<Option<i16>> = req
            .topics
            .iter()
            .map(|(t, ps)| {
                let r = ps.iter().map(|c| {
                    (c.partition, (!partition_exists(topics, t, c.partition)).then(|| ResponseError::UnknownTopicOrPartition.code()))
                });
                (t.clone(), r.collect())
            })
            .collect();
        let refused: Vec<(bool, Vec<bool>)> =
            results.iter().map(|(t, ps)| (topics.get(t).is_some(), ps.iter().map(|(_, e)| e.is_some()).collect())).collect();
        let finish = |results: PartitionResults<Option<i16>>| kafka_commit_order(results, &refused);
        let fail_rest = |results: &mut PartitionResults<Option<i16>>, e: i16| {
            for (_, ps) in results.iter_mut() {
                for (_, r) in ps.iter_mut() {
                    r.get_or_insert(e);
                }
            }
        };
        if results.iter().all(|(_, ps)| ps.iter().all(|(_, e)| e.is_some())) {
            return finish(results);
        }
        let mut groups = self.lock();
        if !groups.contains_key(&req.group_id) {
            if req.generation >= 0 {
                let e = if req.version >= 9 { ResponseError::GroupIdNotFound } else { ResponseError::IllegalGeneration };
                fail_rest(&mut results, e.code());
                return finish(results);
            }
            tracing::info!(group = %req.group_id, "simple consumer group created by an offset commit");
            groups.insert(req.group_id.clone(), Group::new(&req.group_id, cx.now_ms));
        }
        let Some(g) = groups.get_mut(&req.group_id) else {
            fail_rest(&mut results, ResponseError::CoordinatorNotAvailable.code());
            return finish(results);
        };
        if let Some(e) = validate_commit(g, &req) {
            fail_rest(&mut results, e.code());
            if g.is_unused() {
                groups.remove(&req.group_id);
            }
            return finish(results);
        }
        if matches!(g.state, GroupState::Stable | GroupState::PreparingRebalance) {
            // A commit proves the member alive, as a heartbeat does.
            if let Some(m) = g.members.get_mut(&req.member_id) {
                m.heartbeat_deadline = Some(cx.now + std::time::Duration::from_millis(m.session_timeout_ms.max(0) as u64));
            }
        }
        let expire_timestamp = (req.retention_ms != -1).then(|| cx.now_ms.saturating_add(req.retention_ms));
        let mut accepted = Vec::new();
        for ((topic, partitions), (_, errors)) in req.topics.into_iter().zip(results.iter_mut()) {
            for (c, (_, error)) in partitions.into_iter().zip(errors.iter_mut()) {
                if error.is_some() {
                    continue;
                }
                let metadata = c.metadata.unwrap_or_default();
                if metadata.len() > self.config.offset_metadata_max_bytes {
                    *error = Some(ResponseError::OffsetMetadataTooLarge.code());
                    continue;
                }
                let committed =
                    CommittedOffset { offset: c.offset, leader_epoch: c.leader_epoch, metadata, commit_timestamp: cx.now_ms, expire_timestamp };
                accepted.push((topic.clone(), c.partition, committed));
            }
        }
        let records: Vec<_> = accepted.iter().map(|(t, p, c)| store::offset_commit(&g.id, t, *p, c)).collect();
        match cx.store.append(&g.id, &records) {
            Ok(()) => {
                for (t, p, c) in accepted {
                    g.offsets.insert((t, p), c);
                }
                fail_rest(&mut results, 0);
            }
            Err(e) => {
                tracing::error!(group = %g.id, "could not write offset commit: {e}");
                fail_rest(&mut results, e.code(ResponseError::InvalidCommitOffsetSize));
            }
        }
        if g.is_unused() {
            groups.remove(&req.group_id);
        }
        finish(results)
    }

    /// Offsets a transaction committed (TxnOffsetCommit, made visible by its commit marker):
    /// written without the member checks an OffsetCommit gets, as Kafka materializes them.
    pub fn commit_transactional(&self, group_id: &str, offsets: &[(String, i32, i64, i32, String)]) -> Result<(), String> {
        if offsets.is_empty() {
            return Ok(());
        }
        let cx = self.ctx();
        let mut groups = self.lock();
        let g = groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, cx.now_ms));
        let accepted: Vec<(String, i32, CommittedOffset)> = offsets
            .iter()
            .map(|(t, p, offset, leader_epoch, metadata)| {
                (t.clone(), *p, CommittedOffset { offset: *offset, leader_epoch: *leader_epoch, metadata: metadata.clone(), commit_timestamp: cx.now_ms, expire_timestamp: None })
            })
            .collect();
        let records: Vec<_> = accepted.iter().map(|(t, p, c)| store::offset_commit(group_id, t, *p, c)).collect();
        cx.store.append(group_id, &records).map_err(|e| e.to_string())?;
        for (t, p, c) in accepted {
            g.offsets.insert((t, p), c);
        }
        Ok(())
    }

    /// OffsetFetch for one group: the committed offset, leader epoch and metadata of each asked
    /// partition (-1 when none), or of every committed partition when `topics` is `None`.
    pub fn fetch_offsets(&self, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> PartitionResults<FetchedOffset> {
        let groups = self.lock();
        let offsets = groups.get(group_id).filter(|g| !g.is(GroupState::Dead)).map(|g| &g.offsets);
        let none = FetchedOffset { offset: -1, leader_epoch: -1, metadata: String::new() };
        let found = |c: &CommittedOffset| FetchedOffset { offset: c.offset, leader_epoch: c.leader_epoch, metadata: c.metadata.clone() };
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let r = ps
                        .into_iter()
                        .map(|p| (p, offsets.and_then(|o| o.get(&(t.clone(), p))).map(found).unwrap_or_else(|| none.clone())))
                        .collect();
                    (t, r)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, FetchedOffset)>> = BTreeMap::new();
                for ((t, p), c) in offsets.into_iter().flatten() {
                    by_topic.entry(t.clone()).or_default().push((*p, found(c)));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// ListGroups, with the v4 state filter and v5 type filter (case-insensitive, as Kafka).
    pub fn list(&self, states: &[String], types: &[String]) -> Vec<(String, String, &'static str)> {
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
            return vec![];
        }
        let groups = self.lock();
        groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .filter(|g| states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(g.state.name())))
            .map(|g| (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state.name()))
            .collect()
    }

    /// DescribeGroups; protocol metadata and assignments are shown only for a Stable group, as
    /// Kafka does. An unknown group is described as Dead.
    pub fn describe(&self, ids: &[String]) -> Vec<GroupSummary> {
        let groups = self.lock();
        ids.iter()
            .map(|id| match groups.get(id) {
                None => GroupSummary {
                    error: 0,
                    group_id: id.clone(),
                    state: GroupState::Dead,
                    protocol_type: String::new(),
                    protocol: String::new(),
                    members: vec![],
                },
                Some(g) => {
                    let stable = g.is(GroupState::Stable);
                    let protocol = if stable { g.protocol_name.clone().unwrap_or_default() } else { String::new() };
                    let members = g
                        .members
                        .values()
                        .map(|m| MemberSummary {
                            member_id: m.id.clone(),
                            instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
                            assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                        })
                        .collect();
                    GroupSummary {
                        error: 0,
                        group_id: id.clone(),
                        state: g.state,
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        protocol,
                        members,
                    }
                }
            })
            .collect()
    }

    /// DeleteGroups: only groups without members; their offsets go with them.
    pub fn delete_groups(&self, ids: &[String]) -> Vec<(String, i16)> {
        let cx = self.ctx();
        let mut groups = self.lock();
        ids.iter()
            .map(|id| {
                let found = groups.get(id).map(|g| (g.state, g.offsets.keys().cloned().collect::<Vec<_>>()));
                let error = match found {
                    None | Some((GroupState::Dead, _)) => ResponseError::GroupIdNotFound.code(),
                    Some((GroupState::Empty, offsets)) => {
                        let mut records: Vec<_> = offsets.iter().map(|(t, p)| store::offset_tombstone(id, t, *p)).collect();
                        records.push(store::group_tombstone(id));
                        match cx.store.append(id, &records) {
                            Ok(()) => {
                                tracing::info!(group = %id, offsets = offsets.len(), "group deleted");
                                groups.remove(id);
                                0
                            }
                            Err(e) => {
                                tracing::error!(group = %id, "could not delete group: {e}");
                                e.code(ResponseError::UnknownServerError)
                            }
                        }
                    }
                    Some(_) => ResponseError::NonEmptyGroup.code(),
                };
                (id.clone(), error)
            })
            .collect()
    }

    /// OffsetDelete: the group-level error, or an error per partition. Offsets of topics an
    /// active consumer group subscribes to stay.
    pub fn delete_offsets(&self, topics: &Topics, group_id: &str, partitions: Vec<(String, Vec<i32>)>) -> Result<PartitionResults<i16>, i16> {
        let cx = self.ctx();
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group_id).filter(|g| !g.is(GroupState::Dead)) else {
            return Err(ResponseError::GroupIdNotFound.code());
        };
        let consumer = g.protocol_type.as_deref() == Some("consumer");
        if !g.is(GroupState::Empty) && !consumer {
            return Err(ResponseError::NonEmptyGroup.code());
        }
        let subscribed = g.subscribed_topics();
        let is_subscribed = |t: &str| match &subscribed {
            Some(s) => s.contains(t),
            None => consumer,
        };
        let mut doomed = Vec::new();
        let results: PartitionResults<i16> = partitions
            .into_iter()
            .map(|(t, ps)| {
                let subscribed = is_subscribed(&t);
                let r = ps
                    .into_iter()
                    .map(|p| {
                        let e = if !partition_exists(topics, &t, p) {
                            ResponseError::UnknownTopicOrPartition.code()
                        } else if subscribed {
                            ResponseError::GroupSubscribedToTopic.code()
                        } else {
                            if g.offsets.contains_key(&(t.clone(), p)) {
                                doomed.push((t.clone(), p));
                            }
                            0
                        };
                        (p, e)
                    })
                    .collect();
                (t, r)
            })
            .collect();
        let records: Vec<_> = doomed.iter().map(|(t, p)| store::offset_tombstone(group_id, t, *p)).collect();
        if let Err(e) = cx.store.append(group_id, &records) {
            tracing::error!(group = %group_id, "could not delete offsets: {e}");
            return Err(e.code(ResponseError::UnknownServerError));
        }
        for key in doomed {
            g.offsets.remove(&key);
        }
        if g.is_unused() {
            groups.remove(group_id);
        }
        Ok(results)
    }

    /// A deleted topic takes its committed offsets with it, in every group.
    pub fn on_topic_deleted(&self, topic: &str) {
        let cx = self.ctx();
        let mut groups = self.lock();
        for g in groups.values_mut() {
            let doomed: Vec<(String, i32)> = g.offsets.keys().filter(|(t, _)| t == topic).cloned().collect();
            if doomed.is_empty() {
                continue;
            }
            let records: Vec<_> = doomed.iter().map(|(t, p)| store::offset_tombstone(&g.id, t, *p)).collect();
            match cx.store.append(&g.id, &records) {
                Ok(()) => {
                    for key in doomed {
                        g.offsets.remove(&key);
                    }
                }
                Err(e) => tracing::error!(group = %g.id, topic, "could not remove offsets of a deleted topic: {e}"),
            }
        }
        groups.retain(|_, g| !g.is_unused());
    }
}

/// The order of Kafka's OffsetCommit response: its request handler answers what it refuses
/// itself (unknown topics and partitions) first, topic by topic, then adds the coordinator's
/// answers, each topic's to that topic when it is already in the response, else as a new topic
/// at the end (`OffsetCommitResponse.Builder`). `refused` says, per requested topic, whether
/// it exists and which partitions were refused before the coordinator.
fn kafka_commit_order(results: PartitionResults<Option<i16>>, refused: &[(bool, Vec<bool>)]) -> PartitionResults<i16> {
    fn append(to: &mut PartitionResults<i16>, topic: String, partitions: Vec<(i32, i16)>) {
        match to.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, ps)) => ps.extend(partitions),
            None => to.push((topic, partitions)),
        }
    }
    let (mut handler, mut coordinator): (PartitionResults<i16>, PartitionResults<i16>) = (Vec::new(), Vec::new());
    for ((topic, partitions), (topic_exists, refused)) in results.into_iter().zip(refused) {
        let (mut early, mut late) = (Vec::new(), Vec::new());
        for ((p, e), refused) in partitions.into_iter().zip(refused) {
            if *refused { early.push((p, e.unwrap_or(0))) } else { late.push((p, e.unwrap_or(0))) }
        }
        if !topic_exists || !early.is_empty() {
            append(&mut handler, topic.clone(), early);
        }
        if !late.is_empty() {
            coordinator.push((topic, late));
        }
    }
    if handler.is_empty() {
        return coordinator;
    }
    for (topic, partitions) in coordinator {
        append(&mut handler, topic, partitions);
    }
    handler
}

/// Kafka's `ClassicGroup.validateOffsetCommit` for non-transactional commits.
fn validate_commit(g: &Group, req: &CommitRequest) -> Option<ResponseError> {
    if g.is(GroupState::Dead) {
        return Some(ResponseError::CoordinatorNotAvailable);
    }
    if req.generation < 0 && g.is(GroupState::Empty) {
        return None;
    }
    if req.generation >= 0 || !req.member_id.is_empty() || req.instance_id.is_some() {
        if let Some(e) = validate_current_member(g, &req.member_id, req.instance_id.as_deref()) {
            return Some(e);
        }
        if req.generation != g.generation {
            return Some(ResponseError::IllegalGeneration);
        }
    } else {
        // Outside the group protocol, offsets of a group with members cannot be changed.
        return Some(ResponseError::UnknownMemberId);
    }
    // The member has its new generation but not yet its assignment.
    g.is(GroupState::CompletingRebalance).then_some(ResponseError::RebalanceInProgress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_response_puts_what_the_handler_refused_first_as_kafka_does() {
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let s = |t: &str| t.to_string();
        // Known topic "a" with partition 7 missing, then unknown topic "b", then known "c".
        let results = vec![
            (s("a"), vec![(1, Some(0)), (7, Some(unknown)), (0, Some(0))]),
            (s("b"), vec![(0, Some(unknown))]),
            (s("c"), vec![(2, Some(0))]),
        ];
        let refused = vec![(true, vec![false, true, false]), (false, vec![true]), (true, vec![false])];
        assert_eq!(
            kafka_commit_order(results, &refused),
            vec![(s("a"), vec![(7, unknown), (1, 0), (0, 0)]), (s("b"), vec![(0, unknown)]), (s("c"), vec![(2, 0)])]
        );
        // Nothing refused: the coordinator's answer as it is.
        let results = vec![(s("a"), vec![(1, Some(0)), (0, Some(0))])];
        assert_eq!(kafka_commit_order(results, &[(true, vec![false, false])]), vec![(s("a"), vec![(1, 0), (0, 0)])]);
        // A known topic after an unknown one moves behind it.
        let results = vec![(s("a"), vec![(0, Some(0))]), (s("b"), vec![(0, Some(unknown))])];
        assert_eq!(
            kafka_commit_order(results, &[(true, vec![false]), (false, vec![true])]),
            vec![(s("b"), vec![(0, unknown)]), (s("a"), vec![(0, 0)])]
        );
    }
}
