//! Mirror throughput and latency: `cargo bench --bench mirror [-- --records N]`.
//!
//! Two release brokers as child processes. In one run it measures:
//! - baseline 1, the target broker's produce limit: the same lz4 batches produced straight
//!   to the target by Tern's pipelined client;
//! - baseline 2, a naive pipe: `kcat -C (source) | kcat -P (target)`;
//! - `tern run` replicating the preloaded topic to completion: MB/s, records/s, CPU seconds
//!   per GB, peak RSS;
//! - end-to-end latency at a steady rate (producer timestamp to a consumer on the target).
//!
//! Needs Debian's kcat (`bash scripts/test.sh` installs it).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::records::Compression;
use tern_kafka::client::{Client, ClientConfig, LATEST};

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

    let config = dir.path().join("tern.toml");
    std::fs::write(&config, format!(
        "[clusters.src]\nbootstrap = \"{src_addr}\"\n[clusters.dst]\nbootstrap = \"{dst_addr}\"\n[[flows]]\nsource = \"src\"\ntarget = \"dst\"\ntopics = [\"bench\"]\nemit_heartbeats = false\n[web]\nlisten = \"127.0.0.1:0\"\n"
    ))?;
    let t = Instant::now();
    let mut mirror = Command::new(env!("CARGO_BIN_EXE_tern")).args(["run", "--config"]).arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let pid = mirror.id();
    let (source, target) = rt.block_on(async {
        anyhow::Ok((Client::connect(ClientConfig::new(&src_addr)).await?, Client::connect(ClientConfig::new(&dst_addr)).await?))
    })?;
    let mut peak_rss = 0;
    let mut first_seen: Option<Instant> = None;
    rt.block_on(async {
        let mut want = BTreeMap::new();
        for p in 0..PARTITIONS {
            want.insert(p, source.list_offset("bench", p, LATEST).await?.0);
        }
        loop {
            peak_rss = peak_rss.max(peak_rss_kib(pid));
            let mut done = true;
            if first_seen.is_none() && target.list_offset("src.bench", 0, LATEST).await.map(|o| o.0).unwrap_or(0) > 0 {
                first_seen = Some(Instant::now());
            }
            for (p, end) in &want {
                let _ = target.refresh_metadata(None).await;
                if target.list_offset("src.bench", *p, LATEST).await.map(|o| o.0).unwrap_or(-1) < *end {
                    done = false;
                    break;
                }
            }
            if done {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })?;
    let mirrored = t.elapsed();
    let cpu = cpu_seconds(pid);
    report("tern run: replicate the preloaded topic (from process start)", gib, records, mirrored);
    let streaming = first_seen.map(|f| f.elapsed()).unwrap_or(mirrored);
    report("tern run: from the first record on the target", gib, records, streaming);
    println!("    mirror CPU: {cpu:.1} s ({:.2} CPU s per GB), peak RSS {} MiB", cpu / (gib / 1000.0), peak_rss / 1024);
    println!(
        "    from process start: {:.1}x the kcat pipe, {:.0}% of the target's produce limit",
        pipe.as_secs_f64() / mirrored.as_secs_f64(),
        100.0 * direct.as_secs_f64() / mirrored.as_secs_f64()
    );
    println!(
        "    streaming: {:.1}x the kcat pipe, {:.0}% of the target's produce limit",
        pipe.as_secs_f64() / streaming.as_secs_f64(),
        100.0 * direct.as_secs_f64() / streaming.as_secs_f64()
    );

    // Steady rate: 50 records every 10 ms (5,000 records/s, ~5 MB/s) for 10 s; a consumer on
    // the target measures now minus each record's producer timestamp.
    let latencies = rt.block_on(async {
        let producer = {
            let source = Client::connect(ClientConfig::new(&src_addr)).await?;
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
            positions.insert(p, target.list_offset("src.bench", p, LATEST).await?.0);
        }
        let lat = target_latencies(&target, 1, "src.bench", &mut positions, 50_000, Instant::now() + Duration::from_secs(20), 0).await?;
        producer.await?;
        anyhow::Ok(lat)
    })?;
    let mut lat = latencies;
    lat.sort_unstable();
    println!("\nend-to-end latency at 5,000 records/s ({} records): p50 {} ms, p99 {} ms, max {} ms", lat.len(), percentile(&lat, 0.5), percentile(&lat, 0.99), lat.last().copied().unwrap_or(-1));

    let _ = mirror.kill();
    let _ = mirror.wait();
    for b in [&mut src, &mut dst] {
        let _ = b.kill();
        let _ = b.wait();
    }
    Ok(())
}
