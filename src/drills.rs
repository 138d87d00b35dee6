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
            eprintln!("  {group}: applied to {drill_group} in {apply_ms} ms; read through: {read_through}")
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
    let flow_state = r.flow_state.map(|s| s.to_string()).unwrap_or_else(|| "state unknown".into());
    println!("drill {} of {} (flow {flow_state}): {}", r.id, r.flow, r.verdict);
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
        let read = g.read_through.map(|r| format!("; read through: {r}")).unwrap_or_default();
        println!("group {}: {} - {}{read}", g.group, g.verdict, g.reason);
        if g.partitions.is_empty() {
            continue;
        }
        println!(
            "  {:<30} {:>9} {:>10} {:>10} {:>11} {:>11} {:>7} {:>7}  check",
            "remote topic", "partition", "committed", "translated", "rpo records", "redelivered", "missed", "read"
        );
        for p in &g.partitions {
            let read = p.read_through.map(|r| r.as_str()).unwrap_or("-");
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

fn write_json(path: &Option<std::path::PathBuf>, json: serde_json::Result<Vec<u8>>) -> anyhow::Result<()> {
    if let Some(path) = path {
        let json = json.context("encoding the report")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn print_groups(groups: &[tern_mirror::failover::MovedGroup]) {
    for g in groups {
        println!("group {}: {}", g.group, g.outcome);
        for p in &g.partitions {
            let age = if p.age_ms > 0 { format!(" (from a checkpoint {:.1} s old)", p.age_ms as f64 / 1000.0) } else { String::new() };
            let again = if p.redelivered_records > 0 { format!(", re-reads {}", p.redelivered_records) } else { String::new() };
            println!("  {}/{}: {} -> {}{age}{again}", p.topic, p.partition, p.from_offset, p.to_offset);
        }
    }
}

/// `tern failover`.
pub async fn failover(args: crate::FailoverArgs) -> anyhow::Result<()> {
    let validated = tern_mirror::config::load(&args.config)?;
    let flow = find_flow(&validated, &args.flow, &args.config)?;
    let opts = tern_mirror::failover::FailoverOptions { planned: !args.unplanned, timeout: args.timeout };
    let r = tern_mirror::failover::failover(flow, &validated.config.clusters, &opts, |m| eprintln!("  {m}")).await?;
    println!("{} failover of {}: {} ({} record(s) lost{})", r.mode, r.flow, r.state, r.lost_records, if r.drained { ", drained" } else { "" });
    println!("{:<30} {:>9} {:>14} {:>13} {:>17} {:>6}", "remote topic", "partition", "target offset", "source offset", "known source end", "lost");
    for p in &r.point.partitions {
        println!("{:<30} {:>9} {:>14} {:>13} {:>17} {:>6}", p.remote_topic, p.partition, p.target_offset, p.source_offset, p.known_source_end, p.lost_records);
    }
    print_groups(&r.groups);
    for e in &r.errors {
        println!("warning: {e}");
    }
    write_json(&args.json, serde_json::to_vec_pretty(&r))
}

/// `tern failback`.
pub async fn failback(args: crate::FailbackArgs) -> anyhow::Result<()> {
    let validated = tern_mirror::config::load(&args.config)?;
    let flow = find_flow(&validated, &args.flow, &args.config)?;
    let r = tern_mirror::failback::failback(flow, &validated.config.clusters, args.timeout, |m| eprintln!("  {m}")).await?;
    println!("failback of {}: {} ({} record(s) copied back)", r.flow, r.state, r.copied_records);
    for p in &r.partitions {
        if p.until > p.from {
            println!("  {}/{} [{}, {}) copied to {}/{} from {}; {} record(s) on the source never reached the target", p.remote_topic, p.partition, p.from, p.until, p.topic, p.partition, p.source_start, p.stranded_records);
        } else {
            println!("  {}/{}: nothing written on the target; {} record(s) written on the source meanwhile replicate now", p.topic, p.partition, p.stranded_records);
        }
    }
    print_groups(&r.groups);
    for e in &r.errors {
        println!("warning: {e}");
    }
    write_json(&args.json, serde_json::to_vec_pretty(&r))
}

/// `tern state`.
pub async fn state(args: crate::StateArgs) -> anyhow::Result<()> {
    let validated = tern_mirror::config::load(&args.config)?;
    for flow in validated.flows.iter().filter(|f| args.flow.as_ref().is_none_or(|n| *n == f.name())) {
        let timeout = std::time::Duration::from_secs(15);
        let line = match tern_mirror::drill::connect_bounded(&flow.target, &validated.config.clusters[&flow.target], timeout).await {
            Ok(target) => match tern_mirror::control::read(&target, &flow.target, &flow.name()).await {
                Ok(c) => format!("{}{} (since {} ms, {})", c.state, if c.paused { ", paused" } else { "" }, c.updated_at_ms, if c.reason.is_empty() { "-" } else { &c.reason }),
                Err(e) => format!("unknown: {e}"),
            },
            Err(e) => format!("unknown: {e}"),
        };
        println!("{:<30} {line}", flow.name());
    }
    Ok(())
}
