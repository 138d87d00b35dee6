//! Writes the seed corpus of both fuzz targets: valid request frames of the APIs a broker
//! sees most (Produce with every codec, a compacted topic's keyless record, a LogAppendTime
//! batch) and fetched record sets as sources send them (every codec, several batches, a
//! compacted batch with offset gaps, a LogAppendTime batch, a control batch, a cut tail).
//!
//!     cargo +nightly run --release --manifest-path fuzz/Cargo.toml --bin seeds -- fuzz/corpus

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, FindCoordinatorRequest, GroupId, JoinGroupRequest, MetadataRequest,
    OffsetCommitRequest, ProduceRequest, RequestHeader, RequestKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tern_kafka::batch::{rewrite_crc, set_base_offset, set_log_append_time, ATTR_CONTROL};
use tern_kafka::records::{encode_batch, PlainRecord};

const CODECS: [Compression; 5] = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

fn batch(compression: Compression, count: usize, keyed: bool) -> Vec<u8> {
    let records: Vec<PlainRecord> = (0..count)
        .map(|i| PlainRecord {
            key: keyed.then(|| Bytes::from(format!("key-{i}"))),
            value: (i % 3 != 2).then(|| Bytes::from(format!("value-{i}-{}", "x".repeat(i * 7)))),
            headers: vec![("h".to_string(), Some(Bytes::from_static(b"1"))), ("h".to_string(), None)],
            timestamp: 1_800_000_000_000 + i as i64,
        })
        .collect();
    encode_batch(&records, compression).expect("encode").to_vec()
}

fn frame(key: ApiKey, version: i16, body: RequestKind) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    tern_kafka::frame::encode_request(&header, &body).expect("encode")[4..].to_vec()
}

fn produce(records: Vec<u8>) -> Vec<u8> {
    let name = TopicName(StrBytes::from_static_str("orders"));
    frame(
        ApiKey::Produce,
        9,
        RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
            TopicProduceData::default().with_name(name).with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records.into()))]),
        ])),
    )
}

fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let name = TopicName(StrBytes::from_static_str("orders"));
    let group = GroupId(StrBytes::from_static_str("billing"));
    let mut requests: Vec<(String, Vec<u8>)> = vec![
        ("api-versions".into(), frame(ApiKey::ApiVersions, 3, RequestKind::ApiVersions(ApiVersionsRequest::default().with_client_software_name(StrBytes::from_static_str("x")).with_client_software_version(StrBytes::from_static_str("1"))))),
        ("metadata".into(), frame(ApiKey::Metadata, 12, RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name.clone()))]))))),
        ("fetch".into(), frame(ApiKey::Fetch, 12, RequestKind::Fetch(FetchRequest::default().with_max_wait_ms(500).with_topics(vec![FetchTopic::default().with_topic(name.clone()).with_partitions(vec![FetchPartition::default().with_fetch_offset(5).with_partition_max_bytes(1 << 20)])])))),
        ("create-topics".into(), frame(ApiKey::CreateTopics, 7, RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default().with_name(name.clone()).with_num_partitions(3).with_replication_factor(-1)])))),
        ("find-coordinator".into(), frame(ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![StrBytes::from_static_str("billing")])))),
        ("join-group".into(), frame(ApiKey::JoinGroup, 9, RequestKind::JoinGroup(JoinGroupRequest::default().with_group_id(group.clone()).with_session_timeout_ms(10_000).with_rebalance_timeout_ms(10_000).with_protocol_type(StrBytes::from_static_str("consumer")).with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")).with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x06orders\xff\xff\xff\xff"))])))),
        ("offset-commit".into(), frame(ApiKey::OffsetCommit, 8, RequestKind::OffsetCommit(OffsetCommitRequest::default().with_group_id(group).with_generation_id_or_member_epoch(-1).with_topics(vec![OffsetCommitRequestTopic::default().with_name(name.clone()).with_partitions(vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(42)])])))),
    ];
    let mut fetched: Vec<(String, Vec<u8>)> = Vec::new();
    for codec in CODECS {
        let tag = format!("{codec:?}").to_lowercase();
        requests.push((format!("produce-{tag}"), produce(batch(codec, 6, true))));
        requests.push((format!("produce-keyless-{tag}"), produce(batch(codec, 3, false))));
        let mut two = batch(codec, 4, true);
        set_base_offset(&mut two, 6);
        let mut set = batch(codec, 6, true);
        set.extend_from_slice(&two);
        fetched.push((format!("two-batches-{tag}"), set));
    }
    let mut append_time = batch(Compression::Lz4, 3, true);
    set_log_append_time(&mut append_time, 1_800_000_001_000);
    requests.push(("produce-log-append-time".into(), produce(append_time.clone())));
    fetched.push(("log-append-time".into(), append_time));
    // A compacted batch: offsets 0, 3, 4 survive (lastOffsetDelta 4, three records).
    let records: Vec<kafka_protocol::records::Record> = [0i64, 3, 4]
        .iter()
        .map(|&o| kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: o,
            sequence: -1,
            timestamp: 1_800_000_000_000 + o,
            key: Some(Bytes::from(format!("k{o}"))),
            value: (o != 3).then(|| Bytes::from(format!("v{o}"))),
            headers: Default::default(),
        })
        .collect();
    let mut compacted = bytes::BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(&mut compacted, &records, &kafka_protocol::records::RecordEncodeOptions { version: 2, compression: Compression::Gzip }).expect("encode");
    fetched.push(("compacted".into(), compacted.to_vec()));
    let mut control = batch(Compression::None, 1, true);
    control[22] |= ATTR_CONTROL as u8;
    rewrite_crc(&mut control);
    let mut with_control = control;
    let mut after = batch(Compression::None, 2, true);
    set_base_offset(&mut after, 1);
    with_control.extend_from_slice(&after);
    fetched.push(("control-then-data".into(), with_control));
    let mut cut = batch(Compression::Zstd, 5, true);
    cut.extend_from_slice(&batch(Compression::Zstd, 5, true)[..40]);
    fetched.push(("cut-tail".into(), cut));

    for (target, seeds) in [("broker_request", requests), ("mirror_prepare", fetched.into_iter().map(|(n, s)| (n, [0u64.to_be_bytes().to_vec(), s].concat())).collect())] {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, seed) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), seed).expect("write seed");
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
}
