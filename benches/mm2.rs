//! MirrorMaker 2 side by side with `tern run`: `cargo bench --bench mm2 [-- OPTIONS]`.
//!
//! Starts two single-node Apache Kafka clusters (source and target; the jars of
//! `scripts/install-kafka.sh`, release heap and JVM options, Kafka's defaults), preloads the
//! source, and measures in one run, on the same data: MirrorMaker 2 in dedicated mode with its
//! defaults, MirrorMaker 2 tuned, and `tern run` (this build, release) with its defaults.
//! See `mm2_harness` for what is measured and how.
//!
//! Options:
//!   --mb N               MiB per bulk row (default 1024)
//!   --tiny               a few thousand records everywhere (checks the harness, measures nothing)
//!   --rows dense8,text64 only these rows (default: dense8, dense64, text8, text64)
//!   --replicators mm2d,mm2t,tern,terneos
//!   --json FILE          the measurements as JSON
//!   --markdown FILE      the README tables
//!   --chart FILE         the SVG chart (docs/mm2-vs-tern.svg)

mod common;
mod mm2_harness;

use std::path::PathBuf;

use common::kafka::{self, KafkaCluster};
use mm2_harness::{report, Replicator, Row, Setup, Sizes};

fn arg(argv: &[String], name: &str) -> Option<String> {
    argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).cloned()
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let mb: usize = arg(&argv, "--mb").map(|v| v.parse()).transpose()?.unwrap_or(1024);
    let tiny = argv.iter().any(|a| a == "--tiny");
    let rows = match arg(&argv, "--rows") {
        Some(list) => list.split(',').map(|r| Row::parse(r).ok_or_else(|| anyhow::anyhow!("--rows: unknown row {r:?} (dense8, text64, ...)"))).collect::<anyhow::Result<Vec<_>>>()?,
        None => Row::all(),
    };
    let replicators = match arg(&argv, "--replicators") {
        Some(list) => list
            .split(',')
            .map(|k| Replicator::all().into_iter().find(|r| r.key() == k).ok_or_else(|| anyhow::anyhow!("--replicators: unknown {k:?} (mm2d, mm2t, tern, terneos)")))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Replicator::all(),
    };
    let tern = PathBuf::from(env!("CARGO_BIN_EXE_tern"));
    anyhow::ensure!(tern.exists(), "{} is missing: cargo bench builds it", tern.display());
    let kafka_libs = kafka::kafka_libs()?;
    let dir = tempfile::Builder::new().prefix("tern-mm2-bench-").tempdir()?;

    // Both clusters at once; each formats its storage first.
    let (src_root, dst_root) = (dir.path().join("source"), dir.path().join("target"));
    let extra = "log.cleaner.backoff.ms=500\n";
    let target_thread = std::thread::spawn(move || KafkaCluster::start(&dst_root, kafka::BROKER_JVM, extra));
    let source = KafkaCluster::start(&src_root, kafka::BROKER_JVM, extra)?;
    let target = target_thread.join().map_err(|_| anyhow::anyhow!("starting the target cluster panicked"))??;
    println!(
        "Apache Kafka {}: source {} (ready in {:.1} s), target {} (ready in {:.1} s)",
        kafka::kafka_version(),
        source.bootstrap,
        source.started_in.as_secs_f64(),
        target.bootstrap,
        target.started_in.as_secs_f64()
    );
    println!("machine: {} cores, {}; load average {:.2}\n", common::num_cpus(), common::cpu_model(), mm2_harness::measure::load_average());

    let setup = Setup {
        source: source.bootstrap.clone(),
        target: target.bootstrap.clone(),
        java: kafka::java(),
        kafka_libs,
        kafka_version: kafka::kafka_version(),
        tern,
        mm2_jvm: kafka::CONNECT_JVM.iter().map(|s| s.to_string()).collect(),
        mm2_log_level: "INFO".into(),
        work: dir.path().join("work"),
        tag: String::new(),
        sizes: if tiny { Sizes::tiny() } else { Sizes::full(mb) },
        rows,
        replicators,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = rt.block_on(mm2_harness::run(&setup));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            // Keep the logs of a failed run.
            let kept = dir.keep();
            anyhow::bail!("{e:#}\n(configuration files and logs kept in {})", kept.join("work").display());
        }
    };
    let markdown = report::markdown(&report);
    println!("\n{markdown}");
    for (label, config) in &report.configs {
        println!("--- {label}, failover run:\n{config}");
    }
    if let Some(i) = &report.import {
        println!("--- tern import-mm2 of MirrorMaker 2 (tuned)'s mm2.properties:\n{}\nnot carried over:\n  {}", i.toml, i.not_carried.join("\n  "));
    }
    if let Some(path) = arg(&argv, "--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = arg(&argv, "--markdown") {
        std::fs::write(&path, &markdown)?;
    }
    if let Some(path) = arg(&argv, "--chart") {
        std::fs::write(&path, report::svg(&report))?;
        println!("chart written to {path}");
    }
    drop(source);
    drop(target);
    Ok(())
}
