//! Broker throughput with real clients: `cargo bench --bench broker [-- --records N --partitions P]`.
//!
//! Starts the release `tern broker` as its own process and measures, in one run:
//! - produce of 1 KiB records with acks=1 by kcat (librdkafka) and by Tern's pipelined client;
//! - fetch of everything back by kcat and by Tern's client;
//! - baselines on the same machine: writing the same bytes to a file on the same disk;
//! - the broker's peak RSS and CPU seconds.
//!
//! Needs Debian's kcat (`bash scripts/test.sh` installs it).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tern_kafka::client::Connection;

use common::*;

struct Args {
    records: usize,
    partitions: i32,
}

fn parse_args() -> Args {
    let mut a = Args { records: 1_000_000, partitions: 4 };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        match argv[i].as_str() {
            "--records" => a.records = argv.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(a.records),
            "--partitions" => a.partitions = argv.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(a.partitions),
            _ => {}
        }
        i += 1;
    }
    a
}

fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let dir = tempfile::tempdir()?;
    let (mut broker, addr) = start_broker(&dir.path().join("data"))?;
    let pid = broker.id();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    let mb = (args.records * RECORD) as f64 / 1e6;
    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!("workload: {} records of {RECORD} bytes ({mb:.0} MB), {} partitions, acks=1, no compression\n", args.records, args.partitions);

    // Baseline: the same bytes written to a file on the same disk, then fsynced.
    let payload_path = dir.path().join("payload.txt");
    let t = Instant::now();
    {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&payload_path)?);
        let mut rec = vec![b'x'; RECORD - 1];
        for i in 0..args.records {
            let tag = format!("{i:012}");
            rec[..12].copy_from_slice(tag.as_bytes());
            f.write_all(&rec)?;
            f.write_all(b"\n")?;
        }
        f.into_inner()?.sync_all()?;
    }
    report("baseline: write + fsync the same bytes to a file", mb, args.records, t.elapsed());

    rt.block_on(create(&addr, "kcat-bench", args.partitions))?;
    rt.block_on(create(&addr, "tern-bench", args.partitions))?;

    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let status = Command::new("kcat")
        .args(["-P", "-b", &addr, "-t", "kcat-bench", "-X", "acks=1", "-X", "linger.ms=5", "-X", "batch.size=1000000", "-X", "queue.buffering.max.kbytes=1048576", "-l"])
        .arg(&payload_path)
        .status()?;
    anyhow::ensure!(status.success(), "kcat produce failed");
    let produce_kcat = t.elapsed();
    report("produce, kcat (librdkafka 2.0)", mb, args.records, produce_kcat);
    println!("    broker CPU: {:.1} s", cpu_seconds(pid) - cpu0);

    let cpu0 = cpu_seconds(pid);
    let batch = encoded_batch(1000, Compression::None, 1_700_000_000_000)?;
    let produce_tern = rt.block_on(produce_pipelined(&addr, "tern-bench", args.partitions, args.records, batch, 1000))?;
    report("produce, Tern client (4 connections, 1000-record batches)", mb, args.records, produce_tern);
    println!("    broker CPU: {:.1} s", cpu_seconds(pid) - cpu0);

    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let out = Command::new("kcat")
        .args(["-C", "-b", &addr, "-t", "kcat-bench", "-o", "beginning", "-e", "-q", "-f", "%o\\n", "-X", "fetch.max.bytes=52428800"])
        .stdout(Stdio::piped())
        .output()?;
    let fetched = out.stdout.iter().filter(|b| **b == b'\n').count();
    anyhow::ensure!(fetched == args.records, "kcat consumed {fetched} of {} records", args.records);
    report("fetch, kcat (librdkafka 2.0)", mb, args.records, t.elapsed());
    println!("    broker CPU: {:.1} s", cpu_seconds(pid) - cpu0);

    let cpu0 = cpu_seconds(pid);
    let (fetch_tern, bytes) = rt.block_on(fetch_all(&addr, "tern-bench", args.partitions))?;
    report("fetch, Tern client (one connection per partition)", bytes as f64 / 1e6, args.records, fetch_tern);
    println!("    broker CPU: {:.1} s", cpu_seconds(pid) - cpu0);

    println!("\nbroker peak RSS: {} MiB", peak_rss_kib(pid) / 1024);
    let _ = broker.kill();
    let _ = broker.wait();
    Ok(())
}

async fn fetch_all(addr: &str, topic: &str, partitions: i32) -> anyhow::Result<(Duration, usize)> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..partitions {
        let (addr, topic) = (addr.to_string(), topic.to_string());
        tasks.push(tokio::spawn(async move {
            let mut c = Connection::connect(&addr).await?;
            let (mut offset, mut bytes) = (0i64, 0usize);
            loop {
                let req = FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_bytes(64 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.clone()))).with_partitions(vec![
                        FetchPartition::default().with_partition(p).with_fetch_offset(offset).with_partition_max_bytes(16 << 20),
                    ])]);
                let resp = c.call(&req, 12).await?;
                let part = &resp.responses[0].partitions[0];
                let records = part.records.clone().unwrap_or_default();
                if records.is_empty() {
                    return anyhow::Ok(bytes);
                }
                bytes += records.len();
                let mut next = offset;
                for b in tern_kafka::batch::Batches::new(&records) {
                    let (_, h) = b?;
                    next = h.last_offset() + 1;
                }
                offset = next;
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok((t.elapsed(), total))
}

