//! A bulk run (throughput, CPU, memory, first record) and end-to-end latency.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::records::Compression;
use tern_kafka::client::{Client, ClientConfig, LATEST};

use super::super::common::{cpu_seconds, encoded_batch, now_ms, peak_rss_kib, percentile, target_latencies};
use super::data::RECORD_BYTES;
use super::replicators::{self, Run};
use super::{Replicator, Row, Setup};

#[derive(Debug, Clone, serde::Serialize)]
pub struct BulkResult {
    pub row: Row,
    pub replicator: Replicator,
    pub records: usize,
    /// Uncompressed record bytes, in MB (10^6).
    pub mb: f64,
    /// From process start until the target held every record.
    pub total_secs: f64,
    /// From process start until the first record was on the target.
    pub first_record_secs: f64,
    /// MB/s from process start.
    pub mbps_from_start: f64,
    /// MB/s while the target went from 10% to 90% of the records.
    pub mbps_steady: f64,
    /// CPU seconds of the replicator process, all of them (start-up included).
    pub cpu_secs: f64,
    pub cpu_secs_per_gb: f64,
    /// CPU seconds per GB while the target went from 10% to 90%.
    pub cpu_secs_per_gb_steady: f64,
    pub peak_rss_mib: f64,
    /// 1-minute load average of the machine at the start and the end of the run.
    pub load: (f64, f64),
}

impl BulkResult {
    /// MB/s (from start) per CPU second per second: the cost figure, MB per CPU second.
    pub fn mb_per_cpu_sec(&self) -> f64 {
        self.mb / self.cpu_secs.max(1e-9)
    }
}

pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(-1.0)
}

/// Records on the target over a topic's partitions (0 while the topic is unknown).
pub async fn target_records(target: &Client, topic: &str, partitions: i32) -> anyhow::Result<i64> {
    let known = target.metadata_snapshot().topics.get(topic).is_some_and(|t| t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.leader >= 0));
    if !known {
        target.refresh_metadata(Some(&[topic.to_string()])).await?;
        let md = target.metadata_snapshot();
        if md.topics.get(topic).is_none_or(|t| t.partitions.len() != partitions as usize) {
            return Ok(0);
        }
    }
    let tps: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    Ok(target.list_offsets(&tps, LATEST).await?.values().sum())
}

/// Starts `rep` on `topic` alone and measures it until the target holds every record.
pub async fn bulk(setup: &Setup, row: Row, rep: Replicator, topic: &str) -> anyhow::Result<BulkResult> {
    let run = Run::new(rep, &row.name(), &setup.tag, vec![topic.to_string()], row.partitions, "none");
    let remote = run.remote(topic);
    let target = Client::connect(ClientConfig::new(&setup.target)).await?;
    let want = setup.sizes.bulk_records as i64;
    let load_start = load_average();
    let began = Instant::now();
    let mut process = replicators::start(setup, &run)?;
    let pid = process.proc.pid;
    // (seconds since start, records on the target, CPU seconds)
    let mut samples: Vec<(f64, i64, f64)> = Vec::new();
    let mut first = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        anyhow::ensure!(process.proc.is_running(), "{} exited during the {} run:\n{}", rep.label(), row.name(), process.proc.log_tail(40));
        let n = target_records(&target, &remote, row.partitions).await.unwrap_or(0);
        let t = began.elapsed().as_secs_f64();
        samples.push((t, n, cpu_seconds(pid)));
        if first.is_none() && n > 0 {
            first = Some(t);
        }
        if n >= want {
            break;
        }
        anyhow::ensure!(began.elapsed() < setup.sizes.bulk_deadline, "{} replicated {n} of {want} records of {topic} within {:?}:\n{}", rep.label(), setup.sizes.bulk_deadline, process.proc.log_tail(40));
    }
    let total = began.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid);
    let rss = peak_rss_kib(pid) as f64 / 1024.0;
    process.proc.kill();

    let mb = (want as usize * RECORD_BYTES) as f64 / 1e6;
    let at = |fraction: f64| samples.iter().find(|s| s.1 as f64 >= fraction * want as f64).copied();
    let (steady_mbps, steady_cpu) = match (at(0.1), at(0.9)) {
        (Some(a), Some(b)) if b.0 > a.0 && b.1 > a.1 => {
            let mb = ((b.1 - a.1) as usize * RECORD_BYTES) as f64 / 1e6;
            (mb / (b.0 - a.0), (b.2 - a.2) / (mb / 1000.0))
        }
        // Too few samples (a tiny run): from the first record to the end.
        _ => {
            let from = first.unwrap_or(0.0);
            (mb / (total - from).max(1e-3), cpu / (mb / 1000.0))
        }
    };
    Ok(BulkResult {
        row,
        replicator: rep,
        records: want as usize,
        mb,
        total_secs: total,
        first_record_secs: first.unwrap_or(total),
        mbps_from_start: mb / total,
        mbps_steady: steady_mbps,
        cpu_secs: cpu,
        cpu_secs_per_gb: cpu / (mb / 1000.0),
        cpu_secs_per_gb_steady: steady_cpu,
        peak_rss_mib: rss,
        load: (load_start, load_average()),
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyResult {
    pub replicator: Replicator,
    pub records: usize,
    pub sent: usize,
    pub p50_ms: i64,
    pub p99_ms: i64,
    pub max_ms: i64,
}

/// Writes 5,000 records/s (50 lz4 records of ~1 KiB every 10 ms, round robin over the
/// partitions) to `topic` on the source for `phase`, and measures on the target, for every
/// record of the phase, the consumer's clock minus the producer's timestamp in the record.
pub async fn latency(setup: &Setup, rep: Replicator, topic: &str, remote: &str, partitions: i32, phase: Duration) -> anyhow::Result<LatencyResult> {
    let source = Client::connect(ClientConfig::new(&setup.source)).await?;
    let target = Client::connect(ClientConfig::new(&setup.target)).await?;
    target.refresh_metadata(Some(&[remote.to_string()])).await?;
    let tps: Vec<(String, i32)> = (0..partitions).map(|p| (remote.to_string(), p)).collect();
    let mut positions: BTreeMap<i32, i64> = target.list_offsets(&tps, LATEST).await?.into_iter().map(|((_, p), o)| (p, o)).collect();
    anyhow::ensure!(positions.len() == partitions as usize, "{remote}: end offsets of {} of {partitions} partitions", positions.len());
    let ticks = (phase.as_millis() / 10) as usize;
    let started = now_ms();
    let topic_owned = topic.to_string();
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = 0;
        for i in 0..ticks {
            tick.tick().await;
            let batch = encoded_batch(50, Compression::Lz4, now_ms())?;
            source.produce(&topic_owned, i as i32 % partitions, batch, 1, 10_000).await?;
            sent += 50;
        }
        anyhow::Ok(sent)
    });
    let leader = target.metadata_snapshot().leader(remote, 0).ok_or_else(|| anyhow::anyhow!("no leader for {remote}"))?;
    let want = ticks * 50;
    // read_committed, as a consumer of exactly-once delivery must read (the same as
    // read_uncommitted on a topic written without transactions).
    let isolation = tern_kafka::client::Isolation::ReadCommitted;
    let mut lat = target_latencies(&target, leader, remote, &mut positions, want, Instant::now() + phase + Duration::from_secs(30), started, isolation).await?;
    let sent = producer.await??;
    lat.sort_unstable();
    Ok(LatencyResult { replicator: rep, records: lat.len(), sent, p50_ms: percentile(&lat, 0.5), p99_ms: percentile(&lat, 0.99), max_ms: lat.last().copied().unwrap_or(-1) })
}
