//! Mirror throughput and latency: `cargo bench --bench mirror [-- --records N]`.
//!
//! Two release brokers as child processes. In one run it measures:
//! - baseline 1, the target broker's produce limit: the same lz4 batches produced straight
//!   to the target by Tern's pipelined client;
//! - baseline 2, a naive pipe: `kcat -C (source) | kcat -P (target)`;
//! - `tern run` replicating the preloaded topic to completion: MB/s, records/s, CPU seconds
//!   per GB, peak RSS; the same producing over one connection to the target broker
//!   (`produce_connections = 1`, the target writing one partition's batch at a time); then the
//!   same with `delivery = "exactly-once"`;
//! - end-to-end latency at a steady rate (producer timestamp to a consumer on the target);
//! - the mirror alone: the same replication with both brokers pinned to CPU 0 and the mirror to
//!   CPU 1, so its CPU seconds per GB and how busy it kept its own core are not mixed with the
//!   brokers' work (on a machine of two or more CPUs).
//!
//! Needs Debian's kcat (`bash scripts/test.sh` installs it).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::records::Compression;
use tern_kafka::client::{Client, ClientConfig, Isolation, LATEST};

use common::*;

const PARTITIONS: i32 = 8;
const PER_BATCH: usize = 500;

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let records: usize = argv.iter().position(|a| a == "--records").and_then(|i| argv.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
    let records = records / PER_BATCH * PER_BATCH;
    let dir = tempfile::tempdir()?;
    let (mut src, src_addr) = start_broker(&dir.path().join("source"))?;
    let (mut dst, dst_addr) = start_broker(&dir.path().join("target"))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let gib = (records * RECORD) as f64 / 1e6;
    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!("workload: {records} records of ~{RECORD} bytes ({gib:.0} MB uncompressed), lz4, {PARTITIONS} partitions\n");

    let batch = encoded_batch(PER_BATCH, Compression::Lz4, now_ms())?;
    println!("lz4 batch of {PER_BATCH} records: {} bytes ({:.1}x)", batch.len(), (PER_BATCH * RECORD) as f64 / batch.len() as f64);
    rt.block_on(create(&src_addr, "bench", PARTITIONS))?;
    rt.block_on(create(&dst_addr, "direct", PARTITIONS))?;
    rt.block_on(create(&dst_addr, "pipe", PARTITIONS))?;
    let preload = rt.block_on(produce_pipelined(&src_addr, "bench", PARTITIONS, records, batch.clone(), PER_BATCH))?;
    report("preload source (Tern client)", gib, records, preload);

    let direct = rt.block_on(produce_pipelined(&dst_addr, "direct", PARTITIONS, records, batch, PER_BATCH))?;
    report("baseline: target broker produce limit (Tern client)", gib, records, direct);

    let t = Instant::now();
    let consumer = Command::new("kcat")
        .args(["-C", "-b", &src_addr, "-t", "bench", "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n", "-X", "fetch.max.bytes=52428800"])
        .stdout(Stdio::piped())
        .spawn()?;
    let status = Command::new("kcat")
        .args(["-P", "-b", &dst_addr, "-t", "pipe", "-K", "\t", "-z", "lz4", "-X", "linger.ms=5", "-X", "batch.size=1000000", "-X", "queue.buffering.max.kbytes=1048576"])
        .stdin(consumer.stdout.ok_or_else(|| anyhow::anyhow!("no pipe"))?)
        .status()?;
    anyhow::ensure!(status.success(), "kcat pipe failed");
    let pipe = t.elapsed();
    report("baseline: kcat -C | kcat -P", gib, records, pipe);

    let alo = replicate(&rt, dir.path(), &src_addr, &dst_addr, "src", "bench", PARTITIONS, "at-least-once")?;
    alo.report("tern run", gib, records, pipe, direct);

    latency(&rt, &src_addr, &dst_addr, "src.bench", Isolation::ReadUncommitted)?;
    let mut mirror = alo.mirror;
    let _ = mirror.kill();
    let _ = mirror.wait();

    println!();
    let single = replicate_with(&rt, dir.path(), &src_addr, &dst_addr, "one", "bench", PARTITIONS, "at-least-once", ["", "produce_connections = 1"], None)?;
    single.report("tern run, produce_connections = 1", gib, records, pipe, direct);
    println!("    produce_connections \"auto\" (4 here) from process start: {:.2}x the throughput of one connection", single.mirrored.as_secs_f64() / alo.mirrored.as_secs_f64());
    let mut mirror = single.mirror;
    let _ = mirror.kill();
    let _ = mirror.wait();

    // The same preloaded topic again, in exactly-once delivery, into a remote topic of its own.
    println!();
    let eos = replicate(&rt, dir.path(), &src_addr, &dst_addr, "eos", "bench", PARTITIONS, "exactly-once")?;
    eos.report("tern run, exactly-once", gib, records, pipe, direct);
    println!("    exactly-once from process start: {:.0}% of at-least-once's throughput", 100.0 * alo.mirrored.as_secs_f64() / eos.mirrored.as_secs_f64());
    latency(&rt, &src_addr, &dst_addr, "eos.bench", Isolation::ReadCommitted)?;
    let mut mirror = eos.mirror;
    let _ = mirror.kill();
    let _ = mirror.wait();

    if num_cpus() >= 2 {
        println!();
        pin(src.id(), 0)?;
        pin(dst.id(), 0)?;
        let alone = replicate_with(&rt, dir.path(), &src_addr, &dst_addr, "alone", "bench", PARTITIONS, "at-least-once", ["", ""], Some(1))?;
        alone.report("tern run on CPU 1, brokers on CPU 0", gib, records, pipe, direct);
        let busy = alone.cpu / alone.mirrored.as_secs_f64();
        println!(
            "    the mirror kept its CPU {:.0}% busy; at {:.2} CPU s per GB one CPU of its own would carry about {:.0} MB/s, {:.1}x the kcat pipe",
            100.0 * busy,
            alone.cpu / (gib / 1000.0),
            gib / alone.cpu,
            (gib / alone.cpu) / (gib / pipe.as_secs_f64())
        );
        let mut mirror = alone.mirror;
        let _ = mirror.kill();
        let _ = mirror.wait();
    }
    for b in [&mut src, &mut dst] {
        let _ = b.kill();
        let _ = b.wait();
    }
    Ok(())
}

/// Steady rate: 50 records every 10 ms (5,000 records/s, ~5 MB/s) for 10 s; a consumer of
/// `remote` on the target at `isolation` measures now minus each record's producer timestamp.
fn latency(rt: &tokio::runtime::Runtime, src_addr: &str, dst_addr: &str, remote: &str, isolation: Isolation) -> anyhow::Result<()> {
    let mut lat = rt.block_on(async {
        let target = Client::connect(ClientConfig::new(dst_addr)).await?;
        let producer = {
            let source = Client::connect(ClientConfig::new(src_addr)).await?;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                for i in 0..1000 {
                    tick.tick().await;
                    if let Ok(batch) = encoded_batch(50, Compression::Lz4, now_ms()) {
                        let _ = source.produce("bench", i % PARTITIONS, batch, 1, 10_000).await;
                    }
                }
            })
        };
        let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
        for p in 0..PARTITIONS {
            positions.insert(p, target.list_offset(remote, p, LATEST).await?.0);
        }
        let lat = target_latencies(&target, 1, remote, &mut positions, 50_000, Instant::now() + Duration::from_secs(20), 0, isolation).await?;
        producer.await?;
        anyhow::Ok(lat)
    })?;
    lat.sort_unstable();
    println!(
        "\nend-to-end latency at 5,000 records/s, {remote} read {isolation:?} ({} records): p50 {} ms, p99 {} ms, max {} ms",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(-1)
    );
    Ok(())
}
