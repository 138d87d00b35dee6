//! One worker across a long link: `cargo bench --bench link [-- --mb N --partitions N --kafka-only --tern-only]`.
//!
//! The source cluster sits behind a userspace proxy ([`common::link`]) that delays every byte by
//! half the round trip and lets a window of 4 MiB per connection and direction be on the way (a
//! Linux sender's default ceiling); the target is reached directly, as when the worker runs in
//! the target's region. The source advertises the proxy, so every connection of the worker to
//! it goes through the proxy. For each source kind (`tern broker`, then Apache Kafka, each
//! replicating to a target of its kind) one topic of 8 partitions (`--partitions`) holding incompressible 1 KiB
//! records (lz4 batches of 500) is preloaded, then replicated four times to completion, each
//! time into a remote topic of its own:
//! - no delay, `"auto"` (which picks one connection), first and last: what the same proxy
//!   passes, the baseline (the mean of the two);
//! - 100 ms round trip, `fetch_connections = 1`: one connection's window per round trip;
//! - 100 ms round trip, `"auto"`: the worker times the link and picks its connections.
//!
//! MB/s count from process start (connecting, timing the link and joining the group through
//! the proxy included) and from the first record on the target (streaming).

mod common;

use std::time::Duration;

use kafka_protocol::records::Compression;

use common::kafka::{KafkaCluster, BROKER_JVM};
use common::link::{LinkProxy, LINUX_WINDOW};
use common::*;

const PER_BATCH: usize = 500;

fn arg(argv: &[String], name: &str) -> Option<String> {
    argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).cloned()
}

/// One replication through the proxy.
struct Row {
    round_trip: Duration,
    setting: &'static str,
    connections: String,
    from_start: f64,
    streaming: f64,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let mb: usize = arg(&argv, "--mb").map(|v| v.parse()).transpose()?.unwrap_or(1024);
    let partitions: i32 = arg(&argv, "--partitions").map(|v| v.parse()).transpose()?.unwrap_or(8);
    anyhow::ensure!((1..=1000).contains(&partitions), "--partitions {partitions}: from 1 to 1000");
    let records = (mb << 20) / RECORD / PER_BATCH * PER_BATCH;
    let megabytes = (records * RECORD) as f64 / 1e6;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    println!("workload: {records} records of ~{RECORD} bytes ({megabytes:.0} MB), incompressible, lz4 batches of {PER_BATCH}, {partitions} partitions");
    println!("link: the source behind a proxy, window {} MiB per connection and direction\n", LINUX_WINDOW >> 20);
    let batch = encoded_batch(PER_BATCH, Compression::Lz4, now_ms())?;
    let dir = tempfile::tempdir()?;

    if !argv.iter().any(|a| a == "--kafka-only") {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let proxy_addr = listener.local_addr()?.to_string();
        let (mut src, src_addr) = start_broker_with(&dir.path().join("source"), &["--advertised", &proxy_addr])?;
        let (mut dst, dst_addr) = start_broker(&dir.path().join("target"))?;
        let proxy = rt.block_on(async { LinkProxy::spawn(listener, src_addr.clone(), LINUX_WINDOW) });
        rt.block_on(create(&src_addr, "bench", partitions))?;
        rt.block_on(produce_pipelined(&src_addr, "bench", partitions, records, batch.clone(), PER_BATCH))?;
        let rows = runs(&rt, dir.path(), &proxy, &proxy_addr, &dst_addr, "tern", partitions, megabytes, records)?;
        summary("tern broker -> tern broker", &rows);
        drop(proxy);
        for b in [&mut src, &mut dst] {
            let _ = b.kill();
            let _ = b.wait();
        }
    }
    if !argv.iter().any(|a| a == "--tern-only") {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let proxy_addr = listener.local_addr()?.to_string();
        let src = KafkaCluster::start(&dir.path().join("kafka-source"), BROKER_JVM, &format!("advertised.listeners=PLAINTEXT://{proxy_addr}\n"))?;
        let dst = KafkaCluster::start(&dir.path().join("kafka-target"), BROKER_JVM, "")?;
        println!("Apache Kafka {}: source and target started in {:.1} s and {:.1} s", kafka::kafka_version(), src.started_in.as_secs_f64(), dst.started_in.as_secs_f64());
        let proxy = rt.block_on(async { LinkProxy::spawn(listener, src.bootstrap.clone(), LINUX_WINDOW) });
        rt.block_on(create(&src.bootstrap, "bench", partitions))?;
        rt.block_on(produce_pipelined(&src.bootstrap, "bench", partitions, records, batch, PER_BATCH))?;
        let rows = runs(&rt, dir.path(), &proxy, &proxy_addr, &dst.bootstrap, "kafka", partitions, megabytes, records)?;
        summary("Apache Kafka -> Apache Kafka", &rows);
    }
    Ok(())
}

/// The four replications of the preloaded topic through `proxy`.
#[allow(clippy::too_many_arguments)]
fn runs(rt: &tokio::runtime::Runtime, dir: &std::path::Path, proxy: &LinkProxy, proxy_addr: &str, dst_addr: &str, kind: &str, partitions: i32, megabytes: f64, records: usize) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, (round_trip, setting)) in [(0, "\"auto\""), (100, "1"), (100, "\"auto\""), (0, "\"auto\"")].into_iter().enumerate() {
        let round_trip = Duration::from_millis(round_trip);
        proxy.set_round_trip(round_trip);
        let alias = format!("{kind}{i}{}", if setting == "1" { "one" } else { "auto" });
        let run = replicate_with(rt, dir, proxy_addr, dst_addr, &alias, "bench", partitions, "at-least-once", [&format!("fetch_connections = {setting}"), ""], None)?;
        let log = std::fs::read_to_string(dir.join(format!("{alias}.log"))).unwrap_or_default();
        let connections = log
            .lines()
            .find(|l| l.contains("connection(s) per broker"))
            .and_then(|l| l.split(" over ").nth(1)?.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        report(&format!("{kind}: {} ms round trip, fetch_connections = {setting} ({connections})", round_trip.as_millis()), megabytes, records, run.mirrored);
        report("    streaming", megabytes, records, run.streaming);
        let mut mirror = run.mirror;
        let _ = mirror.kill();
        let _ = mirror.wait();
        rows.push(Row {
            round_trip,
            setting: if setting == "1" { "1" } else { "auto" },
            connections,
            from_start: megabytes / run.mirrored.as_secs_f64(),
            streaming: megabytes / run.streaming.as_secs_f64(),
        });
    }
    Ok(rows)
}

fn summary(what: &str, rows: &[Row]) {
    let baseline = |f: fn(&Row) -> f64| {
        let base: Vec<f64> = rows.iter().filter(|r| r.round_trip.is_zero()).map(f).collect();
        base.iter().sum::<f64>() / base.len() as f64
    };
    let (start, streaming) = (baseline(|r| r.from_start), baseline(|r| r.streaming));
    println!("\n{what}: MB/s, and the share of what the same proxy passes with no delay (the mean of the no-delay runs: {start:.0} MB/s from start, {streaming:.0} streaming)");
    println!("| round trip | fetch_connections | connections | MB/s from start | of no delay | MB/s streaming | of no delay |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} ms | {} | {} | {:.0} | {:.0}% | {:.0} | {:.0}% |",
            r.round_trip.as_millis(),
            r.setting,
            r.connections,
            r.from_start,
            100.0 * r.from_start / start,
            r.streaming,
            100.0 * r.streaming / streaming
        );
    }
    println!();
}
