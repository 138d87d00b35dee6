//! MirrorMaker 2 and `tern run` side by side on the same Apache Kafka source and target,
//! preloaded with the same data: throughput, cost, latency, failover exactness and
//! interoperability, measured in one run.
//!
//! - [`data`]: what the source holds: bulk topics of ~1 KiB lz4 records, the failover topics
//!   (one with a compaction hole) and the consumer groups committed on them.
//! - [`replicators`]: MirrorMaker 2 (dedicated mode, defaults and tuned) and `tern run`: their
//!   configuration files and processes, each run under cluster aliases of its own.
//! - [`measure`]: a bulk run (MB/s, CPU, RSS, first record) and end-to-end latency.
//! - [`failover`]: groups resumed on the target from the synced offsets, counted on content.
//! - [`interop`]: MM2's `RemoteClusterUtils.translateOffsets` on Tern's checkpoints, and
//!   `tern import-mm2` on the run's `mm2.properties`.
//! - [`report`]: Markdown tables, JSON and the SVG chart.
//!
//! `cargo bench --bench mm2` runs it on clusters it starts; `tests/it/mm2.rs` runs it on a tiny
//! input on the test suite's shared clusters, so it cannot rot.

pub mod data;
pub mod failover;
pub mod interop;
pub mod measure;
pub mod replicators;
pub mod report;

use std::path::PathBuf;
use std::time::Duration;

pub use replicators::Replicator;

/// Everything a run needs from outside.
pub struct Setup {
    /// Bootstrap addresses of the source and target clusters.
    pub source: String,
    pub target: String,
    pub java: PathBuf,
    /// Apache Kafka's jars (broker, connect-mirror, clients, Log4j 2).
    pub kafka_libs: PathBuf,
    pub kafka_version: String,
    /// The `tern` binary.
    pub tern: PathBuf,
    /// JVM options of MirrorMaker 2 (heap, GC), before the class path.
    pub mm2_jvm: Vec<String>,
    /// Log4j level of MirrorMaker 2 (its release configuration logs INFO).
    pub mm2_log_level: String,
    /// Configuration files and logs of every run go here.
    pub work: PathBuf,
    /// Appended to topic, group and cluster alias names, so runs on shared clusters do not
    /// meet ("" in the benchmark).
    pub tag: String,
    pub sizes: Sizes,
    pub rows: Vec<Row>,
    pub replicators: Vec<Replicator>,
}

/// How much data, and how long to wait for what.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Records per bulk row (of [`data::RECORD_BYTES`] each).
    pub bulk_records: usize,
    /// Records per partition of the failover topic (2 partitions).
    pub failover_records: usize,
    /// How far behind the lagging group is, over both partitions.
    pub lag: usize,
    /// Records per key range of the compacted topic (the hole is one range).
    pub compacted_unit: usize,
    /// Length of the steady 5,000 records/s phase.
    pub latency_phase: Duration,
    /// Least time between replication catching up and reading the synced group offsets: MM2
    /// writes the offset syncs it held back at its next offset commit (Connect's
    /// `offset.flush.interval.ms`, 60 s), so waiting longer than that shows MM2 at its best.
    pub settle: Duration,
    /// The synced offsets must stay unchanged this long before they are read.
    pub stable: Duration,
    /// Bound on one bulk run.
    pub bulk_deadline: Duration,
}

impl Sizes {
    /// About `mb` MiB per bulk row.
    pub fn full(mb: usize) -> Sizes {
        Sizes {
            bulk_records: mb * 1024 * 1024 / data::RECORD_BYTES,
            failover_records: 20_000,
            lag: 10_000,
            compacted_unit: 1_000,
            latency_phase: Duration::from_secs(20),
            settle: Duration::from_secs(75),
            stable: Duration::from_secs(12),
            bulk_deadline: Duration::from_secs(1800),
        }
    }

    /// A few thousand records everywhere: for the test that keeps the harness working.
    pub fn tiny() -> Sizes {
        Sizes {
            bulk_records: 4096,
            failover_records: 2_000,
            lag: 1_000,
            compacted_unit: 100,
            latency_phase: Duration::from_secs(3),
            settle: Duration::ZERO,
            stable: Duration::from_secs(11),
            bulk_deadline: Duration::from_secs(300),
        }
    }
}

/// A bulk payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Payload {
    /// Random bytes: lz4 gains nothing.
    Dense,
    /// JSON events: lz4 gains several times.
    Text,
}

impl Payload {
    pub fn name(self) -> &'static str {
        match self {
            Payload::Dense => "dense",
            Payload::Text => "text",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Payload::Dense => "incompressible",
            Payload::Text => "compressible",
        }
    }
}

/// One bulk measurement: a payload in a topic of so many partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub payload: Payload,
    pub partitions: i32,
}

impl Row {
    pub fn all() -> Vec<Row> {
        let mut rows = Vec::new();
        for payload in [Payload::Dense, Payload::Text] {
            for partitions in [8, 64] {
                rows.push(Row { payload, partitions });
            }
        }
        rows
    }

    /// `dense8`, `text64`: part of topic names and aliases.
    pub fn name(&self) -> String {
        format!("{}{}", self.payload.name(), self.partitions)
    }

    pub fn parse(s: &str) -> Option<Row> {
        let payload = if s.starts_with("dense") { Payload::Dense } else if s.starts_with("text") { Payload::Text } else { return None };
        let partitions = s.trim_start_matches(payload.name()).parse().ok()?;
        Some(Row { payload, partitions })
    }
}

/// Everything a run measured.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub kafka_version: String,
    pub machine: String,
    pub date: String,
    pub sizes_mb: f64,
    /// Per row: the bytes lz4 gains on its payload (uncompressed / compressed).
    pub lz4_ratio: Vec<(String, f64)>,
    pub bulk: Vec<measure::BulkResult>,
    pub latency: Vec<measure::LatencyResult>,
    pub failover: Vec<failover::GroupResult>,
    pub translate: Option<interop::TranslateCheck>,
    pub import: Option<interop::ImportCheck>,
    /// The configuration files of each replicator's failover run, as used.
    pub configs: Vec<(String, String)>,
}

/// Runs everything [`Setup`] asks for and returns the measurements.
pub async fn run(setup: &Setup) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&setup.work)?;
    let source = tern_kafka::client::Client::connect(tern_kafka::client::ClientConfig::new(&setup.source)).await?;
    let mut report = Report {
        kafka_version: setup.kafka_version.clone(),
        machine: format!("{} cores, {}", super::common::num_cpus(), super::common::cpu_model()),
        date: report::today(),
        sizes_mb: (setup.sizes.bulk_records * data::RECORD_BYTES) as f64 / 1e6,
        lz4_ratio: Vec::new(),
        bulk: Vec::new(),
        latency: Vec::new(),
        failover: Vec::new(),
        translate: None,
        import: None,
        configs: Vec::new(),
    };

    // The same data for every replicator, written before any of them starts.
    let mut bulk_topics = Vec::new();
    for row in &setup.rows {
        let (topic, ratio, took) = data::preload_bulk(&source, &setup.source, row, setup.sizes.bulk_records, &setup.tag).await?;
        println!("preloaded {topic}: {} records in {:.1} s, lz4 gains {ratio:.1}x", setup.sizes.bulk_records, took.as_secs_f64());
        report.lz4_ratio.push((row.name(), ratio));
        bulk_topics.push((*row, topic));
    }
    let fo = data::prepare_failover(&source, &setup.sizes, &setup.tag, &setup.replicators).await?;
    println!("failover topics ready: {} ({} records), {} (compaction hole at {:?})", fo.plain, 2 * setup.sizes.failover_records, fo.compacted, fo.hole);

    // Bulk rows: row by row, each replicator in turn, so load from elsewhere on the machine
    // falls on all of them alike.
    for (row, topic) in &bulk_topics {
        for rep in &setup.replicators {
            let r = measure::bulk(setup, *row, *rep, topic).await?;
            println!("{}", report::bulk_line(&r));
            report.bulk.push(r);
        }
    }

    // Latency and failover, one run per replicator.
    let mut tern_run = None;
    let mut mm2_tuned_run = None;
    for rep in &setup.replicators {
        let out = failover::run(setup, *rep, &fo).await?;
        println!("{}", report::latency_line(&out.latency));
        for g in &out.groups {
            println!("{}", report::group_line(g));
        }
        report.latency.push(out.latency);
        report.failover.extend(out.groups);
        report.configs.push((rep.label().to_string(), out.config_text.clone()));
        match rep {
            Replicator::Tern => tern_run = Some(out.run),
            Replicator::Mm2Tuned => mm2_tuned_run = Some((out.run, out.config_path)),
            Replicator::Mm2Defaults | Replicator::TernExactlyOnce => {}
        }
    }

    if let Some(run) = &tern_run {
        let check = interop::translate_check(setup, run, &fo).await?;
        println!("{}", report::translate_line(&check));
        report.translate = Some(check);
    }
    if let Some((run, path)) = &mm2_tuned_run {
        let check = interop::import_check(setup, run, path, &fo).await?;
        println!("{}", report::import_line(&check));
        report.import = Some(check);
    }
    Ok(report)
}
