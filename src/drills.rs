//! `tern drill`, `tern failover`, `tern failback`: the command-line side of
//! `tern_mirror::drill` and `tern_mirror::failover`.

use anyhow::Context;
use tern_mirror::drill::{self, DrillOptions, DrillProgress, DrillReport};

use crate::DrillArgs;

/// Finds `--flow` in the configuration.
pub fn find_flow<'a>(validated: &'a tern_mirror::config::Validated, name: &str, config: &std::path::Path) -> anyhow::Result<&'a tern_mirror::config::Flow> {
    validated.flows.iter().find(|f| f.name() == name).ok_or_else(|| {
        anyhow::anyhow!("no flow {name} in {} (flows: {})", config.display(), validated.flows.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "))
    })
}

/// Runs a drill, prints it, stores it in the history and returns the exit code.
pub async fn drill(args: DrillArgs) -> anyhow::Result<i32> {
    let validated = tern_mirror::config::load(&args.config)?;
    let flow = find_flow(&validated, &args.flow, &args.config)?;
    let mut opts = match &args.groups {
        Some(g) => DrillOptions::with_groups(g)?,
        None => DrillOptions::default(),
    };
    opts.timeout = args.timeout;
    let report = drill::run(flow, &validated.config.clusters, &opts, |p| match p {
        DrillProgress::Started { id, flow } => eprintln!("drill {id} of {flow}"),
        DrillProgress::Connected { cluster, error: Some(e) } => eprintln!("  cluster {cluster}: unreachable: {e}"),
        DrillProgress::Groups { groups } => eprintln!("  {} group(s) to check", groups.len()),
        DrillProgress::Applied { group, drill_group, apply_ms, read_through } => {
            eprintln!("  {group}: applied to {drill_group} and read through in {apply_ms} ms ({})", if read_through { "ok" } else { "FAILED" })
        }
        _ => {}
    })
    .await?;
    print_report(&report);
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report).context("encoding the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let dir = drill::history_dir(&validated.config.state_dir(&args.config));
    match drill::history::save(&dir, &report) {
        Ok(path) => println!("report saved in {}", path.display()),
        Err(e) => eprintln!("the report could not be kept in the drill history: {e}"),
    }
    Ok(report.exit_code())
}

fn print_report(r: &DrillReport) {
    println!("drill {} of {} (flow {}): {}", r.id, r.flow, r.flow_state, r.verdict.to_string().to_uppercase());
    let rto = r.rto_ms.map(|ms| format!("{ms} ms")).unwrap_or_else(|| "not measured".into());
    println!("RPO {} record(s), {:.1} s   RTO {rto}   re-delivered {}   missed {}", r.rpo_records, r.rpo_seconds, r.redelivered_records, r.missed_records);
    for e in &r.errors {
        println!("error: {e}");
    }
    if !r.partitions.is_empty() {
        println!();
        println!("{:<30} {:>9} {:>12} {:>14} {:>11} {:>9}", "topic", "partition", "source end", "replicated end", "rpo records", "rpo s");
        for p in &r.partitions {
            println!("{:<30} {:>9} {:>12} {:>14} {:>11} {:>9.1}", p.topic, p.partition, p.source_end, p.replicated_end, p.rpo_records, p.rpo_seconds);
        }
    }
    for g in &r.groups {
        println!();
        println!("group {}: {} - {}", g.group, g.verdict.to_string().to_uppercase(), g.reason);
        if g.partitions.is_empty() {
            continue;
        }
        println!(
            "  {:<30} {:>9} {:>10} {:>10} {:>11} {:>11} {:>7} {:>7}  check",
            "remote topic", "partition", "committed", "translated", "rpo records", "redelivered", "missed", "read"
        );
        for p in &g.partitions {
            let read = match p.read_through {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "-",
            };
            println!(
                "  {:<30} {:>9} {:>10} {:>10} {:>11} {:>11} {:>7} {:>7}  {}",
                p.remote_topic,
                p.partition,
                p.committed,
                p.translated.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                p.rpo_records,
                p.redelivered_records,
                p.missed_records,
                read,
                p.check
            );
        }
    }
}
