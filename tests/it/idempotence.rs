//! Idempotent producers: sequence and epoch errors on the wire, state across a restart, and a
//! real librdkafka producer whose connections are cut after the broker wrote a batch but
//! before the client saw the answer, so that it retries for real.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use kafka_protocol::ResponseError;
use tern_kafka::client::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::durability::read_partition_from;
use crate::helpers::*;
use crate::protocol::produce_request;

/// A batch of `n` records of producer `pid` at `epoch`, sequences from `seq`. Timestamps are
/// current: older ones would let retention delete the batches, and with them the producer's
/// state.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: now + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("e{epoch}-s{}", seq + i as i32))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::Snappy }).expect("encode");
    buf.freeze()
}

/// One record without a key (refused by compacted topics).
pub fn keyless_batch() -> Bytes {
    let mut b = idempotent_batch(-1, -1, -1, 1);
    let mut records = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).expect("decode").records;
    records[0].key = None;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression: Compression::None }).expect("encode");
    buf.freeze()
}

async fn init_producer_id(c: &mut Connection) -> i64 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = c.call(&req, 4).await.expect("init producer id");
    assert_eq!(resp.error_code, 0);
    resp.producer_id.0
}

/// Produces and returns (error code, base offset).
async fn produce(c: &mut Connection, topic: &str, pid: i64, epoch: i16, seq: i32, n: usize) -> (i16, i64) {
    let resp = c.call(&produce_request(topic, 0, idempotent_batch(pid, epoch, seq, n), -1), 9).await.expect("produce");
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test]
async fn sequence_and_epoch_errors_and_state_across_a_restart() {
    let mut b = TestBroker::start().await;
    let mut c = b.connect().await;
    let topic = unique_topic("idem");
    create_topic(&mut c, &topic, 1, &[]).await;
    let pid = init_producer_id(&mut c).await;
    assert_eq!(produce(&mut c, &topic, pid, 0, 0, 5).await, (0, 0));
    assert_eq!(produce(&mut c, &topic, pid, 0, 5, 5).await, (0, 5));
    // A retried batch: acknowledged with its original offset, no error, not written again.
    assert_eq!(produce(&mut c, &topic, pid, 0, 0, 5).await, (0, 0));
    // A gap in the sequence.
    assert_eq!(produce(&mut c, &topic, pid, 0, 11, 1).await.0, ResponseError::OutOfOrderSequenceNumber.code());
    // A new epoch, then the old one is fenced.
    assert_eq!(produce(&mut c, &topic, pid, 1, 0, 2).await, (0, 10));
    assert_eq!(produce(&mut c, &topic, pid, 0, 10, 1).await.0, ResponseError::InvalidProducerEpoch.code());

    b.restart().await;
    let mut c = b.connect().await;
    assert_eq!(produce(&mut c, &topic, pid, 1, 0, 2).await, (0, 10), "a retry after the restart is still recognised");
    assert_eq!(produce(&mut c, &topic, pid, 1, 5, 1).await.0, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(produce(&mut c, &topic, pid, 0, 10, 1).await.0, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(produce(&mut c, &topic, pid, 1, 2, 1).await, (0, 12));
    let (records, hw) = read_partition_from(&mut c, &topic, 0, 0).await;
    assert_eq!(hw, 13);
    let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..13).collect::<Vec<_>>(), "nothing written twice");
}

/// A TCP proxy that forwards client and broker frames, and after every `every`-th produce
/// request waits for the broker's response to it, then closes both connections instead of
/// forwarding that response.
struct DroppingProxy {
    drops: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl DroppingProxy {
    fn spawn(listener: TcpListener, upstream: SocketAddr, every: usize) -> DroppingProxy {
        let drops = Arc::new(AtomicUsize::new(0));
        let produce_requests = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(broker) = TcpStream::connect(upstream).await else { continue };
                let (d, n) = (d.clone(), produce_requests.clone());
                tokio::spawn(async move {
                    let _ = relay(client, broker, every, n, d).await;
                });
            }
        });
        DroppingProxy { drops, task }
    }
}

impl Drop for DroppingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn read_frame(s: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let len = s.read_i32().await?;
    let mut buf = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes a frame in one write: a size written on its own would wait for the peer's delayed
/// acknowledgement (Nagle) before the body follows.
pub(crate) async fn write_frame(s: &mut (impl AsyncWriteExt + Unpin), body: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(body);
    s.write_all(&frame).await
}

async fn relay(client: TcpStream, broker: TcpStream, every: usize, produces: Arc<AtomicUsize>, drops: Arc<AtomicUsize>) -> std::io::Result<()> {
    let (mut cr, mut cw) = client.into_split();
    let (mut br, mut bw) = broker.into_split();
    let doomed: Arc<Mutex<HashSet<i32>>> = Arc::default();
    let marks = doomed.clone();
    let upstream = async move {
        loop {
            let frame = read_frame(&mut cr).await?;
            let api_key = i16::from_be_bytes([frame[0], frame[1]]);
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            if api_key == 0 && (produces.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(every) {
                marks.lock().expect("lock").insert(correlation_id);
            }
            write_frame(&mut bw, &frame).await?;
        }
    };
    let downstream = async move {
        loop {
            let frame = read_frame(&mut br).await?;
            let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            if doomed.lock().expect("lock").contains(&correlation_id) {
                // The broker has written the batch; the client never learns it.
                drops.fetch_add(1, Ordering::SeqCst);
                return Ok::<(), std::io::Error>(());
            }
            write_frame(&mut cw, &frame).await?;
        }
    };
    // Whichever side ends first, both connections close when this returns.
    tokio::select! {
        r = upstream => r,
        r = downstream => r,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_idempotent_producer_retrying_through_dropped_connections_writes_each_record_once() {
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let proxy_addr = proxy_listener.local_addr().expect("proxy addr");
    // Clients learn the proxy as the broker's address, so every connection goes through it.
    let b = TestBroker::start_with(|c| c.advertised = Some(proxy_addr.to_string())).await;
    let broker_addr = b.broker.as_ref().expect("running").addr;
    let proxy = DroppingProxy::spawn(proxy_listener, broker_addr, 7);
    let mut direct = Connection::connect(&broker_addr.to_string()).await.expect("connect");
    let topic = unique_topic("idem-proxy");
    create_topic(&mut direct, &topic, 2, &[]).await;

    let count = 6000;
    let mut cmd = Command::new(python());
    cmd.arg(compat_script("confluent_idempotent.py"))
        .args(["--bootstrap", &proxy_addr.to_string(), "--topic", &topic])
        .args(["--count", &count.to_string(), "--partitions", "2"]);
    run_client(cmd, Duration::from_secs(300)).await;

    let drops = proxy.drops.load(Ordering::SeqCst);
    assert!(drops >= 3, "the proxy cut only {drops} connections: retries were not forced");
    // Read straight from the broker: every record once, in order.
    for partition in 0..2 {
        let (records, hw) = read_partition_from(&mut direct, &topic, partition, 0).await;
        let values: Vec<String> = records.iter().map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect();
        let expected: Vec<String> = (0..count).filter(|i| i % 2 == partition as usize).map(|i| format!("m{i:06}")).collect();
        assert_eq!(hw as usize, expected.len(), "partition {partition}: high watermark");
        assert!(values == expected, "partition {partition}: records differ (got {}, first difference at {:?})", values.len(), values.iter().zip(&expected).position(|(a, b)| a != b));
    }
    println!("proxy dropped {drops} connections after the broker wrote a produce request; no duplicates");
}
