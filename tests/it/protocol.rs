//! The broker's answers at the protocol level, driven with Tern's own connection type: version
//! negotiation, Kafka error codes, long-polling fetches and malformed input.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

use crate::helpers::*;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))])])
}

pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32, min_bytes: i32, partition_max: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(partition_max)])])
}

#[tokio::test]
async fn api_versions_lists_exactly_what_is_implemented() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for version in 0..=4 {
        let resp = c.call(&ApiVersionsRequest::default(), version).await.expect("api versions");
        assert_eq!(resp.error_code, 0);
        let mut got: Vec<(i16, i16, i16)> = resp.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect();
        let mut want: Vec<(i16, i16, i16)> = tern_broker::SUPPORTED.iter().map(|(k, a, b)| (*k as i16, *a, *b)).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "ApiVersions v{version}");
        // Old librdkafka cannot parse the optional feature fields; none are sent.
        assert!(resp.supported_features.is_empty() && resp.finalized_features.is_empty());
    }
}

#[tokio::test]
async fn unsupported_versions_and_unknown_apis_get_an_error_not_a_closed_connection() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;

    // ApiVersions at a version from the future: a v0 response with UNSUPPORTED_VERSION.
    let mut frame = vec![];
    frame.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    frame.extend_from_slice(&99i16.to_be_bytes());
    frame.extend_from_slice(&41i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    send_frame(&mut c, &frame).await;
    let mut resp = c.read_frame().await.expect("response");
    let (cid, body) = tern_kafka::frame::decode_response(ApiKey::ApiVersions, 0, &mut resp).expect("v0 body");
    assert_eq!(cid, 41);
    let kafka_protocol::messages::ResponseKind::ApiVersions(body) = body else { panic!("not ApiVersions") };
    assert_eq!(body.error_code, ResponseError::UnsupportedVersion.code());
    assert!(body.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16));

    // Produce v2 (below Kafka 4's minimum) and an api key nobody knows.
    for (key, version, cid) in [(ApiKey::Produce as i16, 2i16, 42i32), (999, 0, 43)] {
        let mut frame = vec![];
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&cid.to_be_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes());
        send_frame(&mut c, &frame).await;
        let resp = c.read_frame().await.expect("an answer, not a close");
        assert_eq!(&resp[..], &[&cid.to_be_bytes()[..], &35i16.to_be_bytes()[..]].concat()[..]);
    }
    // The same connection still works.
    let resp = c.call(&MetadataRequest::default(), 12).await.expect("metadata after errors");
    assert_eq!(resp.brokers.len(), 1);
}

async fn send_frame(c: &mut tern_kafka::client::Connection, body: &[u8]) {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    c.send_raw(&f).await.expect("send");
}

#[tokio::test]
async fn malformed_frames_close_only_that_connection() {
    let b = TestBroker::start().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized frame", (200 * 1024 * 1024i32).to_be_bytes().to_vec()),
        ("negative size", (-5i32).to_be_bytes().to_vec()),
        ("frame shorter than a header", [&3i32.to_be_bytes()[..], &[0, 3, 0]].concat()),
        ("metadata body cut short", {
            // Metadata v12 header, then a topic array that claims two billion entries.
            let mut body = vec![0, 3, 0, 12, 0, 0, 0, 7, 0, 1, b'x', 0];
            body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
            [&(body.len() as i32).to_be_bytes()[..], &body].concat()
        }),
    ];
    for (what, bytes) in cases {
        let mut bad = b.connect().await;
        bad.send_raw(&bytes).await.expect("send");
        let closed = tokio::time::timeout(Duration::from_secs(5), bad.read_frame()).await.expect("broker reacts");
        assert!(closed.is_err(), "{what}: expected the connection to be closed");
        // Everyone else is still served.
        let mut good = b.connect().await;
        let resp = good.call(&ApiVersionsRequest::default(), 3).await.unwrap_or_else(|e| panic!("after {what}: {e}"));
        assert_eq!(resp.error_code, 0);
    }
}

#[tokio::test]
async fn error_codes_for_bad_topics_and_records() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let bad = |n: &str, p: i32, cfg: Option<(&str, &str)>| {
        let mut t = CreatableTopic::default().with_name(name(n)).with_num_partitions(p).with_replication_factor(1);
        if let Some((k, v)) = cfg {
            t = t.with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.into()))
                .with_value(Some(StrBytes::from_string(v.into())))]);
        }
        t
    };
    let req = CreateTopicsRequest::default().with_timeout_ms(1000).with_topics(vec![
        bad("bad name!", 1, None),
        bad("zero-partitions", 0, None),
        bad("negative-partitions", -5, None),
        bad("unknown-config", 1, Some(("retention.forever", "yes"))),
        bad("bad-config-value", 1, Some(("retention.ms", "soon"))),
        bad(&"x".repeat(250), 1, None),
        bad("ok-topic", 2, None),
    ]);
    let resp = c.call(&req, 7).await.expect("create");
    let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::InvalidTopicException.code(),
            ResponseError::InvalidPartitions.code(),
            ResponseError::InvalidPartitions.code(),
            ResponseError::InvalidConfig.code(),
            ResponseError::InvalidConfig.code(),
            ResponseError::InvalidTopicException.code(),
            0
        ]
    );
    let again = c.call(&CreateTopicsRequest::default().with_topics(vec![bad("ok-topic", 2, None)]), 7).await.expect("create");
    assert_eq!(again.topics[0].error_code, ResponseError::TopicAlreadyExists.code());

    // Unknown topic in metadata, and no auto-creation by default.
    let md = c
        .call(&MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(name("nope"))),
        ])).with_allow_auto_topic_creation(true), 12)
        .await
        .expect("metadata");
    assert_eq!(md.topics[0].error_code, ResponseError::UnknownTopicOrPartition.code());

    // Records with a broken CRC, to an unknown partition, and a batch over max.message.bytes.
    let good = batch("v", 3, 1_700_000_000_000, Compression::None);
    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let resp = c.call(&produce_request("ok-topic", 0, Bytes::from(corrupt), -1), 9).await.expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, ResponseError::CorruptMessage.code());
    let resp = c.call(&produce_request("ok-topic", 7, good.clone(), -1), 9).await.expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, ResponseError::UnknownTopicOrPartition.code());
    create_topic(&mut c, "small-messages", 1, &[("max.message.bytes", "100")]).await;
    let big = batch(&"v".repeat(200), 2, 1_700_000_000_000, Compression::None);
    let resp = c.call(&produce_request("small-messages", 0, big, -1), 9).await.expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, ResponseError::MessageTooLarge.code());
    // Nothing was written by the refused requests; a good batch gets offset 0.
    let resp = c.call(&produce_request("ok-topic", 0, good, -1), 9).await.expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 0);
}

#[tokio::test]
async fn fetch_long_poll_wakes_when_data_arrives_and_serves_mid_batch_offsets() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let topic = unique_topic("longpoll");
    create_topic(&mut c, &topic, 1, &[]).await;

    // A fetch at the end of the log with a long max wait: it must return the records produced
    // while it waits, not an empty answer at its deadline.
    let mut waiter = b.connect().await;
    let t = topic.clone();
    let fetch = tokio::spawn(async move { waiter.call(&fetch_request(&t, 0, 0, 20_000, 1, 1 << 20), 12).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let produced = c.call(&produce_request(&topic, 0, batch("a", 5, 1_700_000_000_000, Compression::Lz4), 1), 9).await.expect("produce");
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let resp = fetch.await.expect("join").expect("fetch");
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 5);
    let records = p.records.clone().expect("records");
    assert!(!records.is_empty(), "the waiting fetch returned no data");

    // A second batch; fetching from offset 7 (inside it) returns the whole batch starting at 5.
    c.call(&produce_request(&topic, 0, batch("b", 5, 1_700_000_000_000, Compression::Zstd), 1), 9).await.expect("produce");
    let resp = c.call(&fetch_request(&topic, 0, 7, 0, 0, 1 << 20), 12).await.expect("fetch");
    let mut records = resp.responses[0].partitions[0].records.clone().expect("records");
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).expect("decode");
    let offsets: Vec<i64> = sets.iter().flat_map(|s| s.records.iter().map(|r| r.offset)).collect();
    assert_eq!(offsets, vec![5, 6, 7, 8, 9]);
    let values: Vec<Bytes> = sets.iter().flat_map(|s| s.records.iter().filter_map(|r| r.value.clone())).collect();
    assert_eq!(values[2], Bytes::from("b-2"));

    // Offsets past the end and unknown topics are Kafka errors.
    let resp = c.call(&fetch_request(&topic, 0, 99, 0, 0, 1 << 20), 12).await.expect("fetch");
    assert_eq!(resp.responses[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());
    let resp = c.call(&fetch_request("no-such-topic", 0, 0, 0, 0, 1 << 20), 12).await.expect("fetch");
    assert_eq!(resp.responses[0].partitions[0].error_code, ResponseError::UnknownTopicOrPartition.code());

    // partition_max_bytes smaller than a batch still returns that first batch (KIP-74).
    let resp = c.call(&fetch_request(&topic, 0, 0, 0, 0, 10), 12).await.expect("fetch");
    let mut records = resp.responses[0].partitions[0].records.clone().expect("records");
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).expect("decode");
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].records.len(), 5);
}
