//! Kafka's produce rules, differentially: the same crafted produce requests go to Apache Kafka
//! and to `tern broker`, and the answers (error code, which records were refused) must agree,
//! as well as match what Kafka's source says they are.

use bytes::Bytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;
use tern_kafka::batch::{rewrite_crc, set_base_offset, set_producer, ATTR_CONTROL, ATTR_TIMESTAMP_TYPE};
use tern_kafka::client::Connection;
use tern_kafka::records::{encode_batch, PlainRecord};

use crate::clusters::*;
use crate::helpers::*;
use crate::protocol::produce_request;

/// The answer to one produce: error code, refused record indexes, base offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    code: i16,
    refused_records: Vec<i32>,
    base_offset: i64,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

fn records(keys: &[Option<&str>], timestamp: i64, compression: Compression) -> Vec<u8> {
    let rs: Vec<PlainRecord> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| PlainRecord { key: k.map(|k| Bytes::from(k.to_string())), value: Some(Bytes::from(format!("v{i}"))), headers: vec![], timestamp: timestamp + i as i64 })
        .collect();
    encode_batch(&rs, compression).expect("encode").to_vec()
}

fn with(mut b: Vec<u8>, change: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    change(&mut b);
    Bytes::from(b)
}

/// The batch's header with `count` records claimed (and a consistent lastOffsetDelta), and
/// its records section dropped.
pub(crate) fn claims(batch: &[u8], count: i32) -> Bytes {
    let mut b = batch[..tern_kafka::batch::HEADER_LEN].to_vec();
    b[8..12].copy_from_slice(&((tern_kafka::batch::HEADER_LEN - 12) as i32).to_be_bytes());
    recount(&b, count)
}

/// The batch with `count` records claimed and a consistent lastOffsetDelta, records kept.
fn recount(batch: &[u8], count: i32) -> Bytes {
    with(batch.to_vec(), |b| {
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        rewrite_crc(b)
    })
}

async fn produce(c: &mut Connection, topic: &str, batch: Bytes, version: i16) -> Answer {
    let resp = c.call(&produce_request(topic, 0, batch, -1), version).await.expect("produce");
    let p = &resp.responses[0].partition_responses[0];
    if p.error_code != 0 {
        println!("  {topic}: error {} {:?} {:?}", p.error_code, p.error_message, p.record_errors.iter().map(|r| (r.batch_index, r.batch_index_error_message.clone())).collect::<Vec<_>>());
    }
    Answer { code: p.error_code, refused_records: p.record_errors.iter().map(|r| r.batch_index).collect(), base_offset: p.base_offset }
}

/// Runs every case against one cluster; returns the answers in order, with each case's name.
async fn cases(cluster: &TestCluster) -> Vec<(&'static str, Answer)> {
    let plain = unique_topic("rules");
    let compacted = unique_topic("rules-compacted");
    let appendtime = unique_topic("rules-appendtime");
    cluster.create_topic(&plain, 1, &[]).await;
    cluster.create_topic(&compacted, 1, &[("cleanup.policy", "compact")]).await;
    cluster.create_topic(&appendtime, 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    let addr = cluster.bootstrap();
    let mut c = Connection::connect(addr.split(',').next().expect("address")).await.expect("connect");
    let now = now();
    let ok = records(&[Some("a"), Some("b")], now, Compression::Lz4);
    let mut out = Vec::new();
    out.push(("a producer's batch", produce(&mut c, &plain, Bytes::from(ok.clone()), 9).await));
    let two: Vec<u8> = [ok.clone(), ok.clone()].concat();
    out.push(("two batches in one partition", produce(&mut c, &plain, Bytes::from(two), 9).await));
    out.push(("base offset 5, compressed", produce(&mut c, &plain, with(ok.clone(), |b| set_base_offset(b, 5)), 9).await));
    let none = records(&[Some("a"), Some("b")], now, Compression::None);
    out.push(("base offset 5, uncompressed", produce(&mut c, &plain, with(none.clone(), |b| set_base_offset(b, 5)), 9).await));
    out.push((
        "count disagrees with lastOffsetDelta",
        produce(&mut c, &plain, with(none.clone(), |b| { b[57..61].copy_from_slice(&3i32.to_be_bytes()); rewrite_crc(b) }), 9).await,
    ));
    // A CRC-valid 61-byte batch, records section empty, claiming 2^31 - 1 records.
    out.push(("a header alone claiming 2^31 - 1 records", produce(&mut c, &plain, claims(&none, i32::MAX), 9).await));
    // Two records each, claiming three (compressed) and one (uncompressed).
    out.push(("fewer records than claimed, compressed", produce(&mut c, &plain, recount(&ok, 3), 9).await));
    out.push(("more records than claimed, uncompressed", produce(&mut c, &plain, recount(&none, 1), 9).await));
    out.push(("a control batch", produce(&mut c, &plain, with(none.clone(), |b| { b[22] |= ATTR_CONTROL as u8; rewrite_crc(b) }), 9).await));
    out.push(("a producer id without a sequence", produce(&mut c, &plain, with(none.clone(), |b| set_producer(b, 1234, 0, -1)), 9).await));
    out.push(("magic 1", produce(&mut c, &plain, with(none.clone(), |b| b[16] = 1), 9).await));
    out.push(("zstd before produce v7", produce(&mut c, &plain, Bytes::from(records(&[Some("a")], now, Compression::Zstd)), 6).await));
    out.push(("a timestamp two hours ahead", produce(&mut c, &plain, Bytes::from(records(&[Some("a"), Some("b")], now + 7_200_000, Compression::Gzip)), 9).await));
    // Record 1 is two hours ahead; the header's max timestamp says it is not.
    let ahead: Vec<PlainRecord> = [(now, "a"), (now + 7_200_000, "b")]
        .iter()
        .map(|(ts, k)| PlainRecord { key: Some(Bytes::from(k.to_string())), value: Some(Bytes::from("v")), headers: vec![], timestamp: *ts })
        .collect();
    let understated = with(encode_batch(&ahead, Compression::Gzip).expect("encode").to_vec(), |b| {
        b[35..43].copy_from_slice(&now.to_be_bytes());
        rewrite_crc(b)
    });
    out.push(("a compressed header that understates a record's timestamp", produce(&mut c, &plain, understated, 9).await));
    out.push(("a timestamp from 1970", produce(&mut c, &plain, Bytes::from(records(&[Some("a")], 1, Compression::None)), 9).await));
    out.push(("a keyless record in a compacted topic", produce(&mut c, &compacted, Bytes::from(records(&[Some("a"), None, Some("c"), None], now, Compression::Snappy)), 9).await));
    out.push((
        "a LogAppendTime batch into a LogAppendTime topic",
        produce(&mut c, &appendtime, with(none.clone(), |b| { b[22] |= ATTR_TIMESTAMP_TYPE as u8; rewrite_crc(b) }), 9).await,
    ));
    out.push(("a future timestamp into a LogAppendTime topic", produce(&mut c, &appendtime, Bytes::from(records(&[Some("a")], now + 7_200_000, Compression::None)), 9).await));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_broker_refuses_what_apache_kafka_refuses() {
    let kafka = TestCluster::start(Kind::Kafka, Side::A).await;
    let tern = TestCluster::start(Kind::Tern, Side::A).await;
    println!("Apache Kafka:");
    let from_kafka = cases(&kafka).await;
    println!("tern broker:");
    let from_tern = cases(&tern).await;
    let code = |e: ResponseError| e.code();
    // What Kafka's source says (ProduceRequest.validateRecords, UnifiedLog, LogValidator).
    let expected: &[(&str, i16, &[i32])] = &[
        ("a producer's batch", 0, &[]),
        ("two batches in one partition", code(ResponseError::InvalidRecord), &[]),
        ("base offset 5, compressed", code(ResponseError::InvalidRecord), &[]),
        ("base offset 5, uncompressed", code(ResponseError::InvalidRecord), &[]),
        ("count disagrees with lastOffsetDelta", code(ResponseError::InvalidRecord), &[]),
        ("a header alone claiming 2^31 - 1 records", code(ResponseError::InvalidRecord), &[]),
        ("fewer records than claimed, compressed", code(ResponseError::InvalidRecord), &[]),
        ("more records than claimed, uncompressed", code(ResponseError::InvalidRecord), &[]),
        ("a control batch", code(ResponseError::InvalidRecord), &[]),
        ("a producer id without a sequence", code(ResponseError::InvalidRecord), &[]),
        ("magic 1", code(ResponseError::InvalidRecord), &[]),
        ("zstd before produce v7", code(ResponseError::UnsupportedCompressionType), &[]),
        ("a timestamp two hours ahead", code(ResponseError::InvalidTimestamp), &[0, 1]),
        ("a compressed header that understates a record's timestamp", code(ResponseError::InvalidTimestamp), &[1]),
        ("a timestamp from 1970", 0, &[]),
        ("a keyless record in a compacted topic", code(ResponseError::InvalidRecord), &[1, 3]),
        ("a LogAppendTime batch into a LogAppendTime topic", code(ResponseError::InvalidTimestamp), &[0, 1]),
        ("a future timestamp into a LogAppendTime topic", 0, &[]),
    ];
    let mut differences = Vec::new();
    for (((name, k), (_, t)), (want_name, want_code, want_records)) in from_kafka.iter().zip(&from_tern).zip(expected) {
        assert_eq!(name, want_name);
        if (k.code, &k.refused_records) != (*want_code, &want_records.to_vec()) {
            differences.push(format!("{name}: Kafka answered {k:?}, its source says {want_code} {want_records:?}"));
        }
        if (k.code, &k.refused_records) != (t.code, &t.refused_records) {
            differences.push(format!("{name}: Kafka {k:?}, tern broker {t:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    println!("{} produce cases answered alike by Apache Kafka {} and tern broker", expected.len(), crate::apache_kafka::kafka_version());
}
