//! The broker's resource bounds: `max.connections`, `connections.max.idle.ms`, memory that
//! follows the bytes that arrived rather than the frame sizes peers announce, and
//! `fetch.max.bytes`. Thousands of idle connections and clients that announce 100 MiB frames
//! and trickle them in a byte a second cost the broker process little memory, a normal client
//! is still served, connections beyond the limit are closed at once and idle ones after the
//! idle time.

use std::time::{Duration, Instant};

use kafka_protocol::records::Compression;
use tern_kafka::client::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::durability::{tern_now_ms, BrokerProcess};
use crate::helpers::*;
use crate::protocol::{fetch_request, produce_request};

/// (VmRSS, VmData) of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {status}"));
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
    };
    (field("VmRSS:"), field("VmData:"))
}

/// Whether the broker closed `s` (end of stream or reset) before `deadline`.
async fn closed_by(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

/// A normal client creates a topic, produces and fetches back what it produced.
async fn served(addr: &str) {
    let mut c = Connection::connect(addr).await.expect("a normal client connects");
    let topic = unique_topic("limits");
    create_topic(&mut c, &topic, 1, &[]).await;
    let resp = c.call(&produce_request(&topic, 0, batch("served", 100, tern_now_ms(), Compression::None), -1), 9).await.expect("produce");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    let fetched = c.call(&fetch_request(&topic, 0, 0, 0, 0, 1 << 20), 12).await.expect("fetch");
    let part = &fetched.responses[0].partitions[0];
    assert_eq!((part.error_code, part.high_watermark), (0, 100));
    assert!(part.records.as_ref().is_some_and(|r| !r.is_empty()), "fetched records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_cost_little_and_the_limits_hold() {
    const IDLE: usize = 2000;
    const TRICKLING: usize = 50;
    const LIMIT: usize = 2060;
    let dir = tempfile::tempdir().expect("dir");
    // Long enough that everything before the idle check is done well within it on a loaded
    // machine (about 12 s here).
    let idle_time = Duration::from_secs(45);
    let broker = BrokerProcess::start_with(dir.path(), &["--max-connections", &LIMIT.to_string(), "--connections-max-idle", "45s"]);
    let addr = broker.addr.clone();
    served(&addr).await;
    let (rss_before, data_before) = memory(broker.pid());

    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(&addr).await.expect("idle connection"));
    }
    // Each announces a frame just under socket.request.max.bytes and sends one byte a second.
    let mut trickling = Vec::with_capacity(TRICKLING);
    for _ in 0..TRICKLING {
        let mut s = TcpStream::connect(&addr).await.expect("trickling connection");
        s.write_all(&(100_000_000i32).to_be_bytes()).await.expect("frame size");
        trickling.push(s);
    }
    let trickle = tokio::spawn(async move {
        let mut sent = 0usize;
        for _ in 0..8 {
            for s in &mut trickling {
                if s.write_all(&[0]).await.is_ok() {
                    sent += 1;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        (trickling, sent)
    });

    // Meanwhile a normal client is served, and the broker holds little for its peers.
    served(&addr).await;
    let (trickling, sent) = trickle.await.expect("trickle");
    assert!(sent >= TRICKLING * 7, "the broker kept reading the trickled frames ({sent} bytes sent)");
    served(&addr).await;
    let (rss, data) = memory(broker.pid());
    let (rss_grew, data_grew) = (rss.saturating_sub(rss_before), data.saturating_sub(data_before));
    println!("{IDLE} idle and {TRICKLING} trickling connections: RSS {} -> {} MiB, data {} -> {} MiB", rss_before >> 20, rss >> 20, data_before >> 20, data >> 20);
    // Reserving the announced sizes would take 50 x 100 MB of address space.
    assert!(rss_grew < 64 << 20, "RSS grew by {} MiB", rss_grew >> 20);
    assert!(data_grew < 512 << 20, "the data segment grew by {} MiB", data_grew >> 20);

    // Beyond max.connections a connection is closed as soon as it is accepted: with the idle
    // and trickling ones open (and the normal clients gone), ten more fit and ten do not.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut extra = Vec::new();
    for _ in 0..20 {
        extra.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let soon = Instant::now() + Duration::from_secs(10);
    let mut refused = 0;
    for s in &mut extra {
        if closed_by(s, soon).await {
            refused += 1;
        }
    }
    assert_eq!(refused, 20 - (LIMIT - IDLE - TRICKLING), "connections closed beyond max.connections={LIMIT}");
    assert!(opened.elapsed() < idle_time, "the limit was checked before any connection idled out ({:?})", opened.elapsed());

    // connections.max.idle.ms: the idle ones, the trickling ones (no complete request) and the
    // extra ones are closed after the idle time, not before, and slots free up again.
    let not_before = opened + idle_time - Duration::from_secs(5);
    let (first, rest) = idle.split_at_mut(1);
    assert!(!closed_by(&mut first[0], not_before).await, "an idle connection was closed before connections.max.idle.ms");
    let by = Instant::now() + idle_time + Duration::from_secs(15);
    let mut open = 0;
    for s in first.iter_mut().chain(rest.iter_mut()).chain(trickling.into_iter().collect::<Vec<_>>().iter_mut()).chain(extra.iter_mut()) {
        if !closed_by(s, by).await {
            open += 1;
        }
    }
    assert_eq!(open, 0, "connections still open after connections.max.idle.ms");
    served(&addr).await;
}

/// `fetch.max.bytes` caps what a request may ask for, and a max_bytes of 0 or less returns the
/// first batch (KIP-74), as Kafka does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_max_bytes_caps_every_request() {
    let dir = tempfile::tempdir().expect("dir");
    let broker = BrokerProcess::start_with(dir.path(), &["--fetch-max-bytes", "4096"]);
    let mut c = Connection::connect(&broker.addr).await.expect("connect");
    let topic = unique_topic("fetch-cap");
    create_topic(&mut c, &topic, 1, &[]).await;
    let mut sizes = Vec::new();
    for i in 0..10 {
        let records = batch(&format!("b{i}"), 100, tern_now_ms(), Compression::None);
        sizes.push(records.len());
        let resp = c.call(&produce_request(&topic, 0, records, -1), 9).await.expect("produce");
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    assert!(sizes[0] < 4096 && sizes.iter().sum::<usize>() > 4096, "batches of {sizes:?}");
    for max_bytes in [i32::MAX, 0, -1] {
        let req = fetch_request(&topic, 0, 0, 0, 0, i32::MAX).with_max_bytes(max_bytes);
        let resp = c.call(&req, 12).await.expect("fetch");
        let part = &resp.responses[0].partitions[0];
        assert_eq!(part.error_code, 0);
        let got = part.records.as_ref().map_or(0, |r| r.len());
        if max_bytes > 0 {
            assert!(got >= sizes[0] && got <= 4096, "max_bytes {max_bytes} under fetch.max.bytes 4096: {got} bytes");
        } else {
            assert_eq!(got, sizes[0], "max_bytes {max_bytes}: exactly the first batch");
        }
    }
}
