//! Admin APIs at the protocol level: CreatePartitions, the config APIs, DeleteRecords and
//! InitProducerId, with Kafka's error codes for bad input (the broker keeps serving), and
//! changes that survive a restart.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    alter_configs_request, CreatePartitionsRequest, DeleteRecordsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, MetadataRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use tern_kafka::client::Connection;

use crate::helpers::*;
use crate::protocol::produce_request;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Current timestamps: older ones would let retention delete the data across a restart.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn create_partitions(c: &mut Connection, topic: &str, count: i32, version: i16) -> (i16, Option<String>) {
    let req = CreatePartitionsRequest::default().with_timeout_ms(5000).with_topics(vec![CreatePartitionsTopic::default()
        .with_name(TopicName(s(topic)))
        .with_count(count)
        .with_assignments(None)]);
    let resp = c.call(&req, version).await.expect("create partitions");
    let r = &resp.results[0];
    (r.error_code, r.error_message.as_ref().map(|m| m.to_string()))
}

async fn partition_count(c: &mut Connection, topic: &str) -> usize {
    let req = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic)))),
    ]));
    c.call(&req, 12).await.expect("metadata").topics[0].partitions.len()
}

#[tokio::test]
async fn create_partitions_grows_only_and_persists() {
    let mut b = TestBroker::start().await;
    let mut c = b.connect().await;
    let topic = unique_topic("grow");
    create_topic(&mut c, &topic, 3, &[]).await;
    for version in 0..=3 {
        for count in [0, -1, 2, 3] {
            let (code, msg) = create_partitions(&mut c, &topic, count, version).await;
            assert_eq!(code, ResponseError::InvalidPartitions.code(), "v{version} count {count}: {msg:?}");
        }
        let (code, _) = create_partitions(&mut c, "no-such-topic", 5, version).await;
        assert_eq!(code, ResponseError::UnknownTopicOrPartition.code());
    }
    let (code, msg) = create_partitions(&mut c, &topic, 0, 3).await;
    assert_eq!(
        (code, msg.as_deref()),
        (ResponseError::InvalidPartitions.code(), Some(format!("The topic {topic} currently has 3 partition(s); 0 would not be an increase.").as_str()))
    );
    assert_eq!(partition_count(&mut c, &topic).await, 3);
    assert_eq!(create_partitions(&mut c, &topic, 6, 3).await.0, 0);
    assert_eq!(partition_count(&mut c, &topic).await, 6);
    let resp = c.call(&produce_request(&topic, 5, batch("p5", 3, now(), Compression::None), -1), 9).await.expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);

    b.restart().await;
    let mut c = b.connect().await;
    assert_eq!(partition_count(&mut c, &topic).await, 6, "the new count is persisted");
    let resp = c.call(&produce_request(&topic, 5, batch("p5", 1, now(), Compression::None), -1), 9).await.expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 3, "the new partition's data survived");
}

fn incremental(topic: &str, ops: &[(&str, i8, Option<&str>)]) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s(topic))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| AlterableConfig::default().with_name(s(k)).with_config_operation(*op).with_value(v.map(s)))
                .collect(),
        )])
}

async fn describe(c: &mut Connection, resource_type: i8, name: &str, version: i16) -> kafka_protocol::messages::DescribeConfigsResponse {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(version >= 3)
        .with_resources(vec![DescribeConfigsResource::default().with_resource_type(resource_type).with_resource_name(s(name))]);
    c.call(&req, version).await.expect("describe configs")
}

#[tokio::test]
async fn config_apis_answer_kafka_errors_and_changes_persist() {
    let mut b = TestBroker::start().await;
    let mut c = b.connect().await;
    let topic = unique_topic("configs");
    create_topic(&mut c, &topic, 1, &[]).await;

    type Case<'a> = (&'a str, Vec<(&'a str, i8, Option<&'a str>)>, ResponseError);
    let cases: Vec<Case<'_>> = vec![
        ("unknown key", vec![("no.such.config", 0, Some("1"))], ResponseError::InvalidConfig),
        ("bad value", vec![("max.message.bytes", 0, Some("-7"))], ResponseError::InvalidConfig),
        ("duplicate key", vec![("retention.ms", 0, Some("1")), ("retention.ms", 1, None)], ResponseError::InvalidRequest),
        ("unknown operation", vec![("retention.ms", 9, Some("1"))], ResponseError::InvalidRequest),
        ("lags in conflict", vec![("min.compaction.lag.ms", 0, Some("10")), ("max.compaction.lag.ms", 0, Some("5"))], ResponseError::InvalidConfig),
    ];
    for version in 0..=1 {
        for (what, ops, code) in &cases {
            let resp = c.call(&incremental(&topic, ops), version).await.expect("incremental alter");
            let r = &resp.responses[0];
            assert_eq!(r.error_code, code.code(), "v{version} {what}: {:?}", r.error_message);
        }
    }
    let resp = c.call(&incremental("no-such-topic", &[("retention.ms", 0, Some("1"))]), 1).await.expect("alter");
    assert_eq!(resp.responses[0].error_code, ResponseError::UnknownTopicOrPartition.code());

    // Broker configs are static; unknown resource types are refused.
    let broker_change = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(BROKER)
        .with_resource_name(s("1"))
        .with_configs(vec![AlterableConfig::default().with_name(s("log.retention.ms")).with_value(Some(s("1")))])]);
    let resp = c.call(&broker_change, 1).await.expect("alter broker");
    assert_eq!(resp.responses[0].error_code, ResponseError::InvalidConfig.code(), "{:?}", resp.responses[0].error_message);
    let mut odd = broker_change.clone();
    odd.resources[0].resource_type = 8;
    assert_eq!(c.call(&odd, 1).await.expect("alter").responses[0].error_code, ResponseError::InvalidRequest.code());

    // Legacy AlterConfigs refuses null values.
    let legacy = kafka_protocol::messages::AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s(&topic))
        .with_configs(vec![alter_configs_request::AlterableConfig::default().with_name(s("retention.ms")).with_value(None)])]);
    let resp = c.call(&legacy, 2).await.expect("legacy alter");
    assert_eq!(resp.responses[0].error_code, ResponseError::InvalidConfig.code());

    let ok = c.call(&incremental(&topic, &[("retention.ms", 0, Some("123456")), ("cleanup.policy", 2, Some("compact"))]), 1).await.expect("alter");
    assert_eq!(ok.responses[0].error_code, 0, "{:?}", ok.responses[0].error_message);

    for version in 1..=4 {
        let resp = describe(&mut c, TOPIC, &topic, version).await;
        let r = &resp.results[0];
        assert_eq!(r.error_code, 0);
        let entry = |k: &str| r.configs.iter().find(|e| e.name.as_str() == k).unwrap_or_else(|| panic!("v{version}: {k} missing"));
        let ret = entry("retention.ms");
        assert_eq!((ret.value.as_deref(), ret.config_source), (Some("123456"), 1), "v{version}");
        assert_eq!(ret.synonyms.iter().map(|s| (s.name.to_string(), s.source)).collect::<Vec<_>>(), vec![("retention.ms".into(), 1)], "as Apache Kafka 4.3 lists them: log.retention.ms has no default of its own");
        assert_eq!(entry("cleanup.policy").value.as_deref(), Some("delete,compact"));
        assert_eq!((entry("segment.bytes").config_source, entry("segment.bytes").read_only), (5, false));
        if version >= 3 {
            assert_eq!(ret.config_type, 5, "LONG");
            assert!(ret.documentation.as_ref().is_some_and(|d| !d.is_empty()));
        }
        let missing = describe(&mut c, TOPIC, "no-such-topic", version).await;
        assert_eq!(missing.results[0].error_code, ResponseError::UnknownTopicOrPartition.code());
        let broker = describe(&mut c, BROKER, "1", version).await;
        let keys: Vec<&str> = broker.results[0].configs.iter().map(|e| e.name.as_str()).collect();
        assert!(keys.contains(&"log.retention.ms") && keys.contains(&"log.segment.bytes") && keys.contains(&"broker.id"), "{keys:?}");
        assert_eq!(describe(&mut c, BROKER, "7", version).await.results[0].error_code, ResponseError::InvalidRequest.code());
    }

    // Persisted, and the log follows the override after a restart: keyless records refused.
    b.restart().await;
    let mut c = b.connect().await;
    let r = describe(&mut c, TOPIC, &topic, 4).await;
    let ret = r.results[0].configs.iter().find(|e| e.name.as_str() == "retention.ms").expect("retention.ms");
    assert_eq!(ret.value.as_deref(), Some("123456"));
    let keyless = crate::idempotence::keyless_batch();
    let resp = c.call(&produce_request(&topic, 0, keyless, -1), 9).await.expect("produce");
    let pr = &resp.responses[0].partition_responses[0];
    assert_eq!(pr.error_code, ResponseError::InvalidRecord.code());
    assert_eq!(pr.record_errors.len(), 1);
}

async fn delete_records(c: &mut Connection, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
    let req = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![DeleteRecordsTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(partition).with_offset(offset)])]);
    let resp = c.call(&req, 2).await.expect("delete records");
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

#[tokio::test]
async fn delete_records_moves_the_low_watermark_and_refuses_bad_offsets() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let topic = unique_topic("delrec");
    create_topic(&mut c, &topic, 2, &[]).await;
    c.call(&produce_request(&topic, 0, batch("d", 10, 1_700_000_000_000, Compression::Gzip), -1), 9).await.expect("produce");
    assert_eq!(delete_records(&mut c, &topic, 0, 4).await, (0, 4));
    assert_eq!(delete_records(&mut c, &topic, 0, 2).await, (0, 4), "never backwards");
    assert_eq!(delete_records(&mut c, &topic, 0, 11).await.0, ResponseError::OffsetOutOfRange.code());
    assert_eq!(delete_records(&mut c, &topic, 0, -5).await.0, ResponseError::OffsetOutOfRange.code());
    assert_eq!(delete_records(&mut c, &topic, 0, -1).await, (0, 10), "-1 is the high watermark");
    assert_eq!(delete_records(&mut c, &topic, 7, 0).await.0, ResponseError::UnknownTopicOrPartition.code());
    let compacted = unique_topic("delrec-compact");
    create_topic(&mut c, &compacted, 1, &[("cleanup.policy", "compact")]).await;
    assert_eq!(delete_records(&mut c, &compacted, 0, 0).await.0, ResponseError::PolicyViolation.code());
}

#[tokio::test]
async fn init_producer_id_hands_out_unique_ids_and_fences_by_transactional_id_across_restarts() {
    let mut b = TestBroker::start().await;
    let mut ids = std::collections::HashSet::new();
    // The transactional id's producer id and epochs, in order of the requests.
    let mut txn_ids = Vec::new();
    for round in 0..2 {
        let mut c = b.connect().await;
        for version in 0..=5 {
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let resp = c.call(&req, version).await.expect("init producer id");
            assert_eq!((resp.error_code, resp.producer_epoch), (0, 0));
            assert!(ids.insert(resp.producer_id.0), "round {round}: id {} handed out twice", resp.producer_id.0);
            let txn = req.clone().with_transactional_id(Some(TransactionalId(s("txn-1"))));
            let resp = c.call(&txn, version).await.expect("init producer id");
            assert_eq!(resp.error_code, 0);
            txn_ids.push((resp.producer_id.0, resp.producer_epoch));
            let too_long = txn.clone().with_transaction_timeout_ms(900_001);
            assert_eq!(c.call(&too_long, version).await.expect("init producer id").error_code, ResponseError::InvalidTransactionTimeout.code());
        }
        b.restart().await;
    }
    // One producer id, its epoch bumped by every InitProducerId (fencing the one before), the
    // restart included.
    let pid = txn_ids[0].0;
    assert!(!ids.contains(&pid), "the transactional id's producer id {pid} was handed out before");
    assert_eq!(txn_ids, (0..12).map(|e| (pid, e)).collect::<Vec<_>>());
}
