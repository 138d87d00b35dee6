//! Groups and committed offsets live in `__consumer_offsets`, in Kafka's record formats, and
//! come back after a broker restart: members keep their ids and generation, consumers resume
//! from their commits.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError::*;
use tern_broker::groups::records::{self, GroupValue, RecordKey};
use tern_kafka::client::Connection;

use crate::durability::BrokerProcess;
use crate::groups::*;
use crate::helpers::*;
use crate::protocol::{fetch_request, produce_request};

const OFFSETS: &str = "__consumer_offsets";

/// Every record of `__consumer_offsets` partition 0 as (key, value bytes or tombstone).
async fn offsets_topic_records(c: &mut Connection) -> Vec<(RecordKey, Option<bytes::Bytes>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let resp = c.call(&fetch_request(OFFSETS, 0, offset, 0, 0, 1 << 20), 12).await.expect("fetch");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let mut records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return out;
        }
        for set in RecordBatchDecoder::decode_all(&mut records).expect("batches of __consumer_offsets") {
            for r in set.records {
                offset = r.offset + 1;
                let key = r.key.as_ref().expect("every coordinator record has a key");
                let key = records::decode_key(key).expect("Kafka record key").expect("a key this coordinator writes");
                out.push((key, r.value));
            }
        }
        if offset >= p.high_watermark {
            return out;
        }
    }
}

/// The last GroupMetadataValue written for each group.
async fn latest_group_values(c: &mut Connection) -> BTreeMap<String, GroupValue> {
    let mut out = BTreeMap::new();
    for (key, value) in offsets_topic_records(c).await {
        if let (RecordKey::Group { group }, Some(v)) = (key, value) {
            out.insert(group, records::decode_group_value(&v).expect("GroupMetadataValue"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_offsets_survive_a_restart_in_kafkas_record_format() {
    let mut b = group_broker().await;
    let mut c = b.connect().await;
    let topic = unique_topic("restart");
    create_topic(&mut c, &topic, 2, &[]).await;
    let (kept, simple, doomed) = (unique_topic("kept"), unique_topic("simple"), unique_topic("doomed"));

    let j = Join { session_ms: 3000, ..Join::consumer(&kept, &[&topic]) };
    let m = member_id(&mut c, &j).await;
    let r = join(&mut c, &Join { member: &m, ..j }, 5).await;
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    assert_eq!(sync(&mut c, &kept, 1, &m, &[(&m, b"ASSIGN")]).await.error_code, 0);
    assert_eq!(commit(&mut c, 9, &kept, 1, &m, &topic, &[(0, 11), (1, 12)]).await, vec![0, 0]);
    assert_eq!(commit(&mut c, 9, &simple, -1, "", &topic, &[(0, 5)]).await, vec![0]);
    assert_eq!(commit(&mut c, 9, &doomed, -1, "", &topic, &[(0, 9)]).await, vec![0]);
    let r = c.call(&DeleteGroupsRequest::default().with_groups_names(vec![gid(&doomed)]), 2).await.expect("delete groups");
    assert_eq!(r.results[0].error_code, 0);
    // A deleted topic takes its committed offsets along.
    let gone_topic = unique_topic("restart-gone");
    create_topic(&mut c, &gone_topic, 1, &[]).await;
    assert_eq!(commit(&mut c, 9, &simple, -1, "", &gone_topic, &[(0, 4)]).await, vec![0]);
    let del = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(sb(&gone_topic))]);
    assert_eq!(c.call(&del, 5).await.expect("delete topics").responses[0].error_code, 0);

    b.restart().await;
    let mut c = b.connect().await;
    let d = describe(&mut c, &kept).await;
    assert_eq!((d.group_state.as_str(), d.protocol_data.as_str(), d.members.len()), ("Stable", "range", 1), "{d:?}");
    assert_eq!((d.members[0].member_id.as_str(), &d.members[0].member_assignment[..]), (m.as_str(), &b"ASSIGN"[..]));
    // The member carries on with its id and generation, as if nothing happened.
    assert_eq!(heartbeat(&mut c, &kept, 1, &m, None).await, 0);
    assert_eq!(commit(&mut c, 9, &kept, 1, &m, &topic, &[(0, 13)]).await, vec![0]);
    let offsets = |v: Vec<(i64, String)>| v.into_iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(offsets(committed(&mut c, &kept, &topic, &[0, 1]).await), vec![13, 12]);
    assert_eq!(offsets(committed(&mut c, &simple, &topic, &[0]).await), vec![5]);
    assert_eq!(offsets(committed(&mut c, &doomed, &topic, &[0]).await), vec![-1]);
    assert_eq!(offsets(committed(&mut c, &simple, &gone_topic, &[0]).await), vec![-1]);
    let groups = listed(&mut c, &[]).await;
    assert!(groups.contains(&(simple.clone(), "Empty".into())) && !groups.iter().any(|(g, _)| *g == doomed), "{groups:?}");

    // The topic holds Kafka's formats: OffsetCommitKey v1 / OffsetCommitValue v3,
    // GroupMetadataKey v2 / GroupMetadataValue v3, and tombstones for the deleted group.
    let all = offsets_topic_records(&mut c).await;
    let commit_value = all
        .iter()
        .rev()
        .find_map(|(k, v)| match k {
            RecordKey::Offset { group, topic: t, partition: 0 } if *group == kept && *t == topic => v.clone(),
            _ => None,
        })
        .expect("an offset commit record");
    assert_eq!(&commit_value[..2], &[0, 3], "OffsetCommitValue version 3");
    let v = records::decode_offset_value(&commit_value).expect("offset value");
    assert_eq!((v.offset, v.metadata.as_str(), v.expire_timestamp), (13, "meta", None));
    assert!(all.iter().any(|(k, v)| *k == RecordKey::Offset { group: doomed.clone(), topic: topic.clone(), partition: 0 } && v.is_none()));
    assert!(all.iter().any(|(k, v)| *k == RecordKey::Group { group: doomed.clone() } && v.is_none()));
    let g = latest_group_values(&mut c).await.remove(&kept).expect("group metadata of the kept group");
    assert_eq!((g.protocol_type.as_str(), g.generation, g.protocol.as_deref(), g.leader.as_deref()), ("consumer", 1, Some("range"), Some(m.as_str())));
    assert_eq!((g.members.len(), g.members[0].session_timeout, &g.members[0].assignment[..]), (1, 3000, &b"ASSIGN"[..]));
    assert_eq!(g.members[0].subscription, subscription(&[&topic]));

    // Clients see an internal topic they cannot write to or delete.
    let md = c
        .call(&MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(sb(OFFSETS))))])), 12)
        .await
        .expect("metadata");
    assert!(md.topics[0].is_internal);
    let batch = batch("forged", 1, 0, Compression::None);
    let p = c.call(&produce_request(OFFSETS, 0, batch, -1), 9).await.expect("produce");
    assert_eq!(p.responses[0].partition_responses[0].error_code, InvalidTopicException.code());
    let del = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(sb(OFFSETS))]);
    assert_eq!(c.call(&del, 5).await.expect("delete topics").responses[0].error_code, InvalidRequest.code());

    // Silent after the restart, the member's session ends; the empty generation is persisted
    // too, so the next member starts generation 3.
    wait_until(Duration::from_secs(10), "the member's session to expire", async || {
        (describe(&mut c, &kept).await.group_state.as_str() == "Empty").then_some(())
    })
    .await;
    assert_eq!(heartbeat(&mut c, &kept, 1, &m, None).await, UnknownMemberId.code());
    b.restart().await;
    let mut c = b.connect().await;
    assert_eq!(describe(&mut c, &kept).await.group_state.as_str(), "Empty");
    assert_eq!(offsets(committed(&mut c, &kept, &topic, &[0, 1]).await), vec![13, 12]);
    let (_, generation) = lone_member(&mut c, &kept, &[&topic], b"again").await;
    assert_eq!(generation, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_consumers_resume_from_their_commits_after_a_restart() {
    let mut b = TestBroker::start().await;
    let topic = unique_topic("restart-confluent");
    create_topic(&mut b.connect().await, &topic, 3, &[]).await;
    let state_dir = tempfile::tempdir().expect("dir");
    let state = state_dir.path().join("state.json");
    let phase = |b: &TestBroker, phase: &str| {
        let mut cmd = Command::new(python());
        cmd.arg(compat_script("confluent_group_restart.py"))
            .args(["--bootstrap", &b.bootstrap(), "--phase", phase, "--topic", &topic, "--state"])
            .arg(&state);
        cmd
    };
    run_client(phase(&b, "before"), Duration::from_secs(120)).await;
    let before: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    let static_group = before["static"]["group"].as_str().expect("group").to_string();
    let old_member = before["static"]["member_id"].as_str().expect("member id").to_string();

    let mut c = b.connect().await;
    let generation = latest_group_values(&mut c).await[&static_group].generation;
    b.restart().await;
    let mut c = b.connect().await;
    // The static member did not leave: it is still there after the restart, same id.
    let d = describe(&mut c, &static_group).await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!((d.members[0].member_id.as_str(), d.members[0].group_instance_id.as_deref()), (old_member.as_str(), Some("tern-restart-static")));
    let dynamic = before["dynamic"]["group"].as_str().expect("group");
    assert_eq!(describe(&mut c, dynamic).await.group_state.as_str(), "Empty");

    run_client(phase(&b, "after"), Duration::from_secs(120)).await;
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(state.with_extension("json.after")).expect("state")).expect("json");
    let new_member = after["static"].as_str().expect("member id");
    // The restarted static member took its old place without a rebalance.
    let d = describe(&mut c, &static_group).await;
    assert_eq!((d.group_state.as_str(), d.members.len(), d.members[0].member_id.as_str()), ("Stable", 1, new_member));
    let g = &latest_group_values(&mut c).await[&static_group];
    assert_eq!((g.generation, g.members[0].member_id.as_str()), (generation, new_member), "no new generation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_and_group_metadata_survive_kill_9() {
    let dir = tempfile::tempdir().expect("dir");
    let mut broker = BrokerProcess::start(dir.path());
    let mut c = Connection::connect(&broker.addr).await.expect("connect");
    let topic = unique_topic("crash-commits");
    create_topic(&mut c, &topic, 3, &[]).await;
    let group = unique_topic("crash-group");
    let (member, generation) = lone_member(&mut c, &group, &[&topic], b"before the crash").await;
    for round in 1..=50i64 {
        let offsets: Vec<(i32, i64)> = (0..3).map(|p| (p, round * 10 + i64::from(p))).collect();
        assert_eq!(commit(&mut c, 9, &group, generation, &member, &topic, &offsets).await, vec![0, 0, 0]);
    }
    broker.kill_9();

    let broker = BrokerProcess::start(dir.path());
    let mut c = Connection::connect(&broker.addr).await.expect("connect after restart");
    let got: Vec<i64> = committed(&mut c, &group, &topic, &[0, 1, 2]).await.into_iter().map(|x| x.0).collect();
    assert_eq!(got, vec![500, 501, 502], "the last acknowledged commit of each partition");
    let d = describe(&mut c, &group).await;
    assert_eq!((d.group_state.as_str(), d.members.len(), &d.members[0].member_assignment[..]), ("Stable", 1, &b"before the crash"[..]));
    assert_eq!(heartbeat(&mut c, &group, generation, &member, None).await, 0);
}
