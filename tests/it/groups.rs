//! The group coordinator on the wire, driven with Tern's own connection: the classic rebalance
//! protocol, Kafka's error codes for bad requests, timeouts, and isolation between groups.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError::*;
use tern_kafka::client::Connection;

use crate::helpers::*;

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn gid(s: &str) -> GroupId {
    GroupId(sb(s))
}

/// A broker whose groups rebalance quickly and accept short session timeouts.
pub async fn group_broker() -> TestBroker {
    TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay = Duration::from_millis(50);
        c.groups.min_session_timeout = Duration::from_millis(100);
    })
    .await
}

/// Consumer-protocol subscription metadata (version 0) for the topics.
pub fn subscription(topics: &[&str]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| sb(t)).collect());
    let mut b = BytesMut::new();
    b.put_i16(0);
    sub.encode(&mut b, 0).expect("encode subscription");
    b.freeze()
}

pub struct Join<'a> {
    pub group: &'a str,
    pub member: &'a str,
    pub instance: Option<&'a str>,
    pub protocol_type: &'a str,
    pub protocols: Vec<(&'a str, Bytes)>,
    pub session_ms: i32,
    pub rebalance_ms: i32,
}

impl<'a> Join<'a> {
    pub fn consumer(group: &'a str, topics: &[&str]) -> Join<'a> {
        Join {
            group,
            member: "",
            instance: None,
            protocol_type: "consumer",
            protocols: vec![("range", subscription(topics))],
            session_ms: 10_000,
            rebalance_ms: 10_000,
        }
    }
}

pub async fn join(c: &mut Connection, j: &Join<'_>, version: i16) -> JoinGroupResponse {
    let protocols = j
        .protocols
        .iter()
        .map(|(n, m)| join_group_request::JoinGroupRequestProtocol::default().with_name(sb(n)).with_metadata(m.clone()))
        .collect();
    let req = JoinGroupRequest::default()
        .with_group_id(gid(j.group))
        .with_session_timeout_ms(j.session_ms)
        .with_rebalance_timeout_ms(j.rebalance_ms)
        .with_member_id(sb(j.member))
        .with_group_instance_id(j.instance.map(sb))
        .with_protocol_type(sb(j.protocol_type))
        .with_protocols(protocols);
    c.call(&req, version).await.expect("join group")
}

/// A dynamic member's first join at v5: MEMBER_ID_REQUIRED hands out the id to join with.
pub async fn member_id(c: &mut Connection, j: &Join<'_>) -> String {
    let r = join(c, j, 5).await;
    assert_eq!(r.error_code, MemberIdRequired.code());
    assert!(!r.member_id.is_empty());
    r.member_id.to_string()
}

/// Joins in a task of its own (the response waits for the rebalance) on a new connection.
pub fn spawn_join(b: &TestBroker, j: Join<'static>) -> tokio::task::JoinHandle<(Connection, JoinGroupResponse)> {
    let addr = b.bootstrap();
    tokio::spawn(async move {
        let mut c = Connection::connect(&addr).await.expect("connect");
        let r = join(&mut c, &j, 5).await;
        (c, r)
    })
}

pub async fn sync(c: &mut Connection, group: &str, generation: i32, member: &str, assignments: &[(&str, &[u8])]) -> SyncGroupResponse {
    let assignments = assignments
        .iter()
        .map(|(m, a)| sync_group_request::SyncGroupRequestAssignment::default().with_member_id(sb(m)).with_assignment(Bytes::copy_from_slice(a)))
        .collect();
    let req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(sb(member))
        .with_protocol_type(Some(sb("consumer")))
        .with_protocol_name(Some(sb("range")))
        .with_assignments(assignments);
    c.call(&req, 5).await.expect("sync group")
}

pub async fn heartbeat(c: &mut Connection, group: &str, generation: i32, member: &str, instance: Option<&str>) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(sb(member))
        .with_group_instance_id(instance.map(sb));
    c.call(&req, 4).await.expect("heartbeat").error_code
}

pub async fn commit(c: &mut Connection, version: i16, group: &str, generation: i32, member: &str, topic: &str, offsets: &[(i32, i64)]) -> Vec<i16> {
    let partitions = offsets
        .iter()
        .map(|(p, o)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_metadata(Some(sb("meta")))
        })
        .collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member))
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(sb(topic))).with_partitions(partitions)]);
    let resp = c.call(&req, version).await.expect("offset commit");
    resp.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
}

/// Committed offsets of the partitions, through the single-group form (v7).
pub async fn committed(c: &mut Connection, group: &str, topic: &str, partitions: &[i32]) -> Vec<(i64, String)> {
    let req = OffsetFetchRequest::default().with_group_id(gid(group)).with_topics(Some(vec![
        OffsetFetchRequestTopic::default().with_name(TopicName(sb(topic))).with_partition_indexes(partitions.to_vec()),
    ]));
    let resp = c.call(&req, 7).await.expect("offset fetch");
    assert_eq!(resp.error_code, 0);
    resp.topics[0].partitions.iter().map(|p| (p.committed_offset, p.metadata.as_deref().unwrap_or("").to_string())).collect()
}

pub async fn describe(c: &mut Connection, group: &str) -> DescribedGroup {
    let resp = c.call(&DescribeGroupsRequest::default().with_groups(vec![gid(group)]), 5).await.expect("describe groups");
    resp.groups.into_iter().next().expect("one group")
}

pub async fn listed(c: &mut Connection, states: &[&str]) -> Vec<(String, String)> {
    let req = ListGroupsRequest::default().with_states_filter(states.iter().map(|s| sb(s)).collect());
    let resp = c.call(&req, 4).await.expect("list groups");
    assert_eq!(resp.error_code, 0);
    resp.groups.iter().map(|g| (g.group_id.0.to_string(), g.group_state.to_string())).collect()
}

/// One dynamic member alone in a group, through join and sync: (member id, generation).
pub async fn lone_member(c: &mut Connection, group: &str, topics: &[&str], assignment: &[u8]) -> (String, i32) {
    let mut j = Join::consumer(group, topics);
    let id = member_id(c, &j).await;
    j.member = &id;
    let r = join(c, &j, 5).await;
    assert_eq!((r.error_code, r.leader.as_str()), (0, id.as_str()), "{r:?}");
    let s = sync(c, group, r.generation_id, &id, &[(&id, assignment)]).await;
    assert_eq!((s.error_code, &s.assignment[..]), (0, assignment));
    (id, r.generation_id)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator_names_this_broker_for_groups_and_transactions() {
    let b = group_broker().await;
    let mut c = b.connect().await;
    let (host, port) = b.bootstrap().rsplit_once(':').map(|(h, p)| (h.to_string(), p.parse::<i32>().expect("port"))).expect("addr");
    for version in 0..=3 {
        let r = c.call(&FindCoordinatorRequest::default().with_key(sb("g")), version).await.expect("find coordinator");
        assert_eq!((r.error_code, r.node_id.0, r.host.as_str(), r.port), (0, 1, host.as_str(), port), "v{version}");
    }
    for version in 1..=3 {
        let r = c.call(&FindCoordinatorRequest::default().with_key(sb("tx")).with_key_type(1), version).await.expect("find coordinator");
        assert_eq!((r.error_code, r.node_id.0, r.port), (0, 1, port), "transaction coordinator, v{version}");
    }
    for version in 4..=5 {
        let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![sb("a"), sb("b")]);
        let r = c.call(&req, version).await.expect("find coordinator");
        let got: Vec<(String, i16, i32)> = r.coordinators.iter().map(|k| (k.key.to_string(), k.error_code, k.node_id.0)).collect();
        assert_eq!(got, vec![("a".into(), 0, 1), ("b".into(), 0, 1)], "v{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_sync_heartbeat_commit_and_leave() {
    let b = group_broker().await;
    let mut admin = b.connect().await;
    let topic = leak(unique_topic("grp"));
    create_topic(&mut admin, topic, 2, &[]).await;
    let group = leak(unique_topic("group"));
    let mut c1 = b.connect().await;
    let (m1, g1) = lone_member(&mut c1, group, &[topic], b"A1").await;
    assert_eq!(g1, 1);
    assert_eq!(heartbeat(&mut c1, group, g1, &m1, None).await, 0);
    assert!(m1.starts_with("tern-"), "member ids are the client id and a UUID: {m1}");

    // A second member: the group rebalances, the first learns it from its heartbeat.
    let mut c2 = b.connect().await;
    let j2 = Join::consumer(group, &[topic]);
    let m2 = leak(member_id(&mut c2, &j2).await);
    let second = spawn_join(&b, Join { member: m2, ..Join::consumer(group, &[topic]) });
    wait_until(Duration::from_secs(5), "the rebalance to start", async || {
        (heartbeat(&mut c1, group, g1, &m1, None).await == RebalanceInProgress.code()).then_some(())
    })
    .await;
    let r1 = join(&mut c1, &Join { member: &m1, ..Join::consumer(group, &[topic]) }, 5).await;
    let (mut c2, r2) = second.await.expect("second join");
    assert_eq!((r1.error_code, r2.error_code, r1.generation_id, r2.generation_id), (0, 0, 2, 2));
    assert_eq!((r1.leader.as_str(), r2.leader.as_str()), (m1.as_str(), m1.as_str()));
    let mut seen: Vec<String> = r1.members.iter().map(|m| m.member_id.to_string()).collect();
    seen.sort();
    let mut want = vec![m1.clone(), m2.to_string()];
    want.sort();
    assert_eq!(seen, want, "the leader gets every member");
    assert!(r2.members.is_empty(), "followers get no member list");
    assert_eq!(r1.members[0].metadata, subscription(&[topic]));

    // The follower's SyncGroup waits for the leader's assignment.
    let follower = tokio::spawn(async move {
        let s = sync(&mut c2, group, 2, m2, &[]).await;
        (c2, s)
    });
    let s1 = sync(&mut c1, group, 2, &m1, &[(&m1, b"A1"), (m2, b"A2")]).await;
    let (mut c2, s2) = follower.await.expect("follower sync");
    assert_eq!((s1.error_code, &s1.assignment[..], s2.error_code, &s2.assignment[..]), (0, &b"A1"[..], 0, &b"A2"[..]));
    assert_eq!(s1.protocol_name.as_deref(), Some("range"));

    let d = describe(&mut admin, group).await;
    assert_eq!((d.group_state.as_str(), d.protocol_type.as_str(), d.protocol_data.as_str()), ("Stable", "consumer", "range"));
    assert_eq!(d.members.len(), 2);
    let desc_m2 = d.members.iter().find(|m| m.member_id.as_str() == m2).expect("m2 described");
    assert_eq!((&desc_m2.member_assignment[..], desc_m2.client_host.as_str(), desc_m2.client_id.as_str()), (&b"A2"[..], "/127.0.0.1", "tern"));

    // Commits need the current generation; the old one is refused.
    assert_eq!(commit(&mut c2, 8, group, 2, m2, topic, &[(0, 42), (1, 7)]).await, vec![0, 0]);
    assert_eq!(commit(&mut c2, 8, group, 1, m2, topic, &[(0, 43)]).await, vec![IllegalGeneration.code()]);
    assert_eq!(heartbeat(&mut c2, group, 1, m2, None).await, IllegalGeneration.code());
    assert_eq!(committed(&mut admin, group, topic, &[0, 1]).await, vec![(42, "meta".to_string()), (7, "meta".to_string())]);
    // v1 (oldest) and v8 (batched) forms see the same commits.
    let old = admin
        .call(&OffsetFetchRequest::default().with_group_id(gid(group)).with_topics(Some(vec![
            OffsetFetchRequestTopic::default().with_name(TopicName(sb(topic))).with_partition_indexes(vec![0]),
        ])), 1)
        .await
        .expect("offset fetch v1");
    assert_eq!(old.topics[0].partitions[0].committed_offset, 42);
    let batched = admin
        .call(&OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(gid(group)).with_topics(None),
            offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(gid("no-such-group")).with_topics(None),
        ]), 9)
        .await
        .expect("offset fetch v9");
    let all: Vec<(i32, i64)> = batched.groups[0].topics[0].partitions.iter().map(|p| (p.partition_index, p.committed_offset)).collect();
    assert_eq!(all, vec![(0, 42), (1, 7)]);
    assert!(batched.groups[1].topics.is_empty());

    // A batched leave (v3+) of the second member; the first rejoins alone.
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid(group))
        .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(sb(m2))]);
    let r = c2.call(&leave, 5).await.expect("leave");
    assert_eq!((r.error_code, r.members.len(), r.members[0].error_code), (0, 1, 0));
    assert_eq!(heartbeat(&mut c1, group, 2, &m1, None).await, RebalanceInProgress.code());
    let r = join(&mut c1, &Join { member: &m1, ..Join::consumer(group, &[topic]) }, 5).await;
    assert_eq!((r.error_code, r.generation_id, r.members.len()), (0, 3, 1));
    assert_eq!(sync(&mut c1, group, 3, &m1, &[(&m1, b"all")]).await.error_code, 0);

    // The old single-member form (v1) leaves the group empty.
    let r = c1.call(&LeaveGroupRequest::default().with_group_id(gid(group)).with_member_id(sb(&m1)), 1).await.expect("leave v1");
    assert_eq!(r.error_code, 0);
    let d = describe(&mut admin, group).await;
    assert_eq!((d.group_state.as_str(), d.members.len()), ("Empty", 0));
    assert!(listed(&mut admin, &["Empty"]).await.contains(&(group.to_string(), "Empty".to_string())));
    assert!(!listed(&mut admin, &["Stable"]).await.iter().any(|(g, _)| g == group));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_kafkas_error_codes() {
    let b = group_broker().await;
    let mut c = b.connect().await;
    let topic = leak(unique_topic("grp-err"));
    let other = leak(unique_topic("grp-err-other"));
    create_topic(&mut c, topic, 2, &[]).await;
    create_topic(&mut c, other, 1, &[]).await;
    let group = leak(unique_topic("errors"));
    let (m1, gen) = lone_member(&mut c, group, &[topic], b"x").await;

    // Protocols: a group's first member needs a type and a protocol; later members must match.
    let code = |r: JoinGroupResponse| r.error_code;
    let fresh = leak(unique_topic("fresh"));
    assert_eq!(code(join(&mut c, &Join { protocol_type: "", ..Join::consumer(fresh, &[topic]) }, 5).await), InconsistentGroupProtocol.code());
    assert_eq!(code(join(&mut c, &Join { protocols: vec![], ..Join::consumer(fresh, &[topic]) }, 5).await), InconsistentGroupProtocol.code());
    assert_eq!(code(join(&mut c, &Join { protocol_type: "connect", ..Join::consumer(group, &[topic]) }, 5).await), InconsistentGroupProtocol.code());
    let sticky_only = Join { protocols: vec![("cooperative-sticky", subscription(&[topic]))], ..Join::consumer(group, &[topic]) };
    assert_eq!(code(join(&mut c, &sticky_only, 5).await), InconsistentGroupProtocol.code());
    assert_eq!(code(join(&mut c, &Join { session_ms: 1, ..Join::consumer(group, &[topic]) }, 5).await), InvalidSessionTimeout.code());
    assert_eq!(code(join(&mut c, &Join::consumer("", &[topic]), 5).await), InvalidGroupId.code());
    assert_eq!(code(join(&mut c, &Join { member: "nobody", ..Join::consumer(group, &[topic]) }, 5).await), UnknownMemberId.code());
    assert_eq!(code(join(&mut c, &Join { member: "nobody", ..Join::consumer(fresh, &[topic]) }, 5).await), UnknownMemberId.code());
    assert!(!listed(&mut c, &[]).await.iter().any(|(g, _)| g == fresh), "failed joins leave no group behind");

    // Unknown members and stale generations.
    assert_eq!(sync(&mut c, group, gen, "nobody", &[]).await.error_code, UnknownMemberId.code());
    assert_eq!(sync(&mut c, group, gen + 1, &m1, &[]).await.error_code, IllegalGeneration.code());
    assert_eq!(sync(&mut c, "no-such-group", 1, &m1, &[]).await.error_code, UnknownMemberId.code());
    assert_eq!(heartbeat(&mut c, group, gen, "nobody", None).await, UnknownMemberId.code());
    assert_eq!(heartbeat(&mut c, "no-such-group", gen, &m1, None).await, UnknownMemberId.code());
    assert_eq!(heartbeat(&mut c, group, gen + 5, &m1, None).await, IllegalGeneration.code());
    let leave = c.call(&LeaveGroupRequest::default().with_group_id(gid(group)).with_member_id(sb("nobody")), 2).await.expect("leave");
    assert_eq!(leave.error_code, UnknownMemberId.code());

    // Offset commits.
    assert_eq!(commit(&mut c, 8, group, gen, "nobody", topic, &[(0, 1)]).await, vec![UnknownMemberId.code()]);
    assert_eq!(commit(&mut c, 8, group, gen + 1, &m1, topic, &[(0, 1)]).await, vec![IllegalGeneration.code()]);
    // From outside the group protocol, an active group's offsets cannot be changed.
    assert_eq!(commit(&mut c, 8, group, -1, "", topic, &[(0, 1)]).await, vec![UnknownMemberId.code()]);
    // A generation for a group that does not exist: v9 says so, older versions say the generation is wrong.
    assert_eq!(commit(&mut c, 8, "no-such-group", 3, "m", topic, &[(0, 1)]).await, vec![IllegalGeneration.code()]);
    assert_eq!(commit(&mut c, 9, "no-such-group", 3, "m", topic, &[(0, 1)]).await, vec![GroupIdNotFound.code()]);
    // Partitions that do not exist fail alone; the rest of the request is committed. As in
    // Kafka's response, the partitions refused before the coordinator come first.
    let simple = leak(unique_topic("simple"));
    assert_eq!(commit(&mut c, 2, simple, -1, "", topic, &[(0, 5), (9, 5)]).await, vec![UnknownTopicOrPartition.code(), 0]);
    assert_eq!(commit(&mut c, 9, simple, -1, "", "no-such-topic", &[(0, 5)]).await, vec![UnknownTopicOrPartition.code()]);
    assert_eq!(committed(&mut c, simple, topic, &[0, 1, 9]).await.iter().map(|x| x.0).collect::<Vec<_>>(), vec![5, -1, -1]);
    let big = "m".repeat(5000);
    let req = OffsetCommitRequest::default().with_group_id(gid(simple)).with_generation_id_or_member_epoch(-1).with_topics(vec![
        OffsetCommitRequestTopic::default().with_name(TopicName(sb(topic))).with_partitions(vec![
            OffsetCommitRequestPartition::default().with_partition_index(1).with_committed_offset(3).with_committed_metadata(Some(sb(&big))),
        ]),
    ]);
    let r = c.call(&req, 9).await.expect("commit");
    assert_eq!(r.topics[0].partitions[0].error_code, OffsetMetadataTooLarge.code());

    // Static membership: another process claiming the instance with a stale member id is fenced.
    let statics = leak(unique_topic("static"));
    let r = join(&mut c, &Join { instance: Some("i1"), ..Join::consumer(statics, &[topic]) }, 5).await;
    assert_eq!(r.error_code, 0, "static members join without MEMBER_ID_REQUIRED");
    let s1 = r.member_id.to_string();
    assert!(s1.starts_with("i1-"));
    assert_eq!(code(join(&mut c, &Join { instance: Some("i1"), member: "stale", ..Join::consumer(statics, &[topic]) }, 5).await), FencedInstanceId.code());
    assert_eq!(heartbeat(&mut c, statics, r.generation_id, "stale", Some("i1")).await, FencedInstanceId.code());
    assert_eq!(heartbeat(&mut c, statics, r.generation_id, &s1, Some("i2")).await, UnknownMemberId.code());

    // Deletion: only empty groups; offsets of subscribed topics stay while the group is active.
    let r = c.call(&DeleteGroupsRequest::default().with_groups_names(vec![gid(group), gid("no-such-group")]), 2).await.expect("delete");
    let codes: Vec<i16> = r.results.iter().map(|g| g.error_code).collect();
    assert_eq!(codes, vec![NonEmptyGroup.code(), GroupIdNotFound.code()]);
    assert_eq!(commit(&mut c, 9, group, gen, &m1, topic, &[(0, 1)]).await, vec![0]);
    assert_eq!(commit(&mut c, 9, group, gen, &m1, other, &[(0, 1)]).await, vec![0]);
    let delete_offsets = |t: &str| {
        OffsetDeleteRequest::default().with_group_id(gid(group)).with_topics(vec![offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(TopicName(sb(t)))
            .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)])])
    };
    let r = c.call(&delete_offsets(topic), 0).await.expect("offset delete");
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, GroupSubscribedToTopic.code()));
    let r = c.call(&delete_offsets(other), 0).await.expect("offset delete");
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(committed(&mut c, group, other, &[0]).await[0].0, -1);
    let r = c.call(&OffsetDeleteRequest::default().with_group_id(gid("no-such-group")), 0).await.expect("offset delete");
    assert_eq!(r.error_code, GroupIdNotFound.code());

    // After all that, the coordinator still serves the group normally.
    assert_eq!(heartbeat(&mut c, group, gen, &m1, None).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_waiting_for_a_member_does_not_hold_up_other_groups() {
    let b = group_broker().await;
    let mut c = b.connect().await;
    let topic = leak(unique_topic("grp-iso"));
    create_topic(&mut c, topic, 1, &[]).await;
    let slow = leak(unique_topic("slow"));
    let mut quiet = b.connect().await;
    let (q, _) = lone_member(&mut quiet, slow, &[topic], b"q").await;

    // A newcomer's join waits for the quiet member, which never rejoins: up to the rebalance
    // timeout (3 s), after which the quiet member is dropped.
    let mut c2 = b.connect().await;
    let short = Join { rebalance_ms: 3000, ..Join::consumer(slow, &[topic]) };
    let m2 = leak(member_id(&mut c2, &short).await);
    let started = std::time::Instant::now();
    let newcomer = spawn_join(&b, Join { member: m2, rebalance_ms: 3000, ..Join::consumer(slow, &[topic]) });
    wait_until(Duration::from_secs(5), "the slow group to rebalance", async || {
        listed(&mut c, &["PreparingRebalance"]).await.iter().any(|(g, _)| g == slow).then_some(())
    })
    .await;

    // Meanwhile another group goes through a whole life cycle on other connections.
    let fast = leak(unique_topic("fast"));
    let mut f = b.connect().await;
    let (fm, fgen) = lone_member(&mut f, fast, &[topic], b"f").await;
    assert_eq!(commit(&mut f, 9, fast, fgen, &fm, topic, &[(0, 3)]).await, vec![0]);
    assert_eq!(committed(&mut c, fast, topic, &[0]).await[0].0, 3);
    // The other group's whole life cycle fit inside the slow group's pending rebalance: it was
    // not made to wait for it.
    assert!(!newcomer.is_finished(), "the other group finished only after the slow rebalance was answered ({:?})", started.elapsed());

    let (_, r) = newcomer.await.expect("newcomer join");
    assert!(started.elapsed() >= Duration::from_millis(2900), "answered after {:?}", started.elapsed());
    assert_eq!((r.error_code, r.generation_id, r.leader.as_str(), r.members.len()), (0, 2, m2, 1), "the quiet member was dropped");
    assert_eq!(heartbeat(&mut quiet, slow, 1, &q, None).await, UnknownMemberId.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_that_stop_heartbeating_are_removed_after_their_session_timeout() {
    let b = group_broker().await;
    let mut c = b.connect().await;
    let topic = leak(unique_topic("grp-session"));
    create_topic(&mut c, topic, 1, &[]).await;
    let group = leak(unique_topic("session"));

    // The first member forms the group; a second one with a 1 s session joins, syncs, and
    // then goes silent.
    let (m1, _) = lone_member(&mut c, group, &[topic], b"alone").await;
    let silent = |member: &'static str| Join { member, session_ms: 1000, ..Join::consumer(group, &[topic]) };
    let mut c2 = b.connect().await;
    let m2 = leak(member_id(&mut c2, &silent("")).await);
    let second = spawn_join(&b, silent(m2));
    wait_until(Duration::from_secs(5), "the rebalance to start", async || {
        (heartbeat(&mut c, group, 1, &m1, None).await == RebalanceInProgress.code()).then_some(())
    })
    .await;
    let r1 = join(&mut c, &Join { member: &m1, ..Join::consumer(group, &[topic]) }, 5).await;
    let (mut c2, r2) = second.await.expect("second join");
    assert_eq!((r1.error_code, r2.error_code, r1.generation_id, r1.leader.as_str()), (0, 0, 2, m1.as_str()));
    let follower = tokio::spawn(async move { sync(&mut c2, group, 2, m2, &[]).await });
    assert_eq!(sync(&mut c, group, 2, &m1, &[(&m1, b"L"), (m2, b"F")]).await.error_code, 0);
    assert_eq!(&follower.await.expect("follower sync").assignment[..], b"F");

    let start = std::time::Instant::now();
    wait_until(Duration::from_secs(5), "the silent member's session to expire", async || {
        let e = heartbeat(&mut c, group, 2, &m1, None).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        (e == RebalanceInProgress.code()).then_some(())
    })
    .await;
    assert!(start.elapsed() >= Duration::from_millis(800), "expired after only {:?}", start.elapsed());
    let r = join(&mut c, &Join { member: &m1, ..Join::consumer(group, &[topic]) }, 5).await;
    assert_eq!((r.error_code, r.generation_id, r.members.len()), (0, 3, 1));

    // A member id handed out by MEMBER_ID_REQUIRED and never used expires too.
    let unused = leak(unique_topic("unused"));
    let mut c3 = b.connect().await;
    member_id(&mut c3, &Join { session_ms: 300, ..Join::consumer(unused, &[topic]) }).await;
    wait_until(Duration::from_secs(5), "the never-joined group to disappear", async || {
        (!listed(&mut c3, &[]).await.iter().any(|(g, _)| g == unused)).then_some(())
    })
    .await;
}
