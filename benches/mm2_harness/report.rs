//! The run as Markdown tables (for the README), one line per measurement while it runs, and
//! an SVG chart drawn by hand (no plotting library).

use super::failover::GroupResult;
use super::interop::{ImportCheck, TranslateCheck};
use super::measure::{BulkResult, LatencyResult};
use super::{Replicator, Report, Row};

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    tern_mirror::clock::format_utc(tern_mirror::clock::now_ms()).chars().take(10).collect()
}

/// One decimal below 10, none above.
fn num(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn row_label(row: &Row) -> String {
    format!("{}, {} partitions", row.payload.describe(), row.partitions)
}

pub fn bulk_line(r: &BulkResult) -> String {
    format!(
        "{:<34} {:<24} {:>7.1} MB/s from start, {:>7.1} steady, first record {:>5.1} s, {:>6.1} CPU s/GB ({:.1} steady), {:>6.0} MiB peak RSS, load {:.1}->{:.1}",
        row_label(&r.row),
        r.replicator.label(),
        r.mbps_from_start,
        r.mbps_steady,
        r.first_record_secs,
        r.cpu_secs_per_gb,
        r.cpu_secs_per_gb_steady,
        r.peak_rss_mib,
        r.load.0,
        r.load.1
    )
}

pub fn latency_line(l: &LatencyResult) -> String {
    format!("{:<24} latency at 5,000 records/s: p50 {} ms, p99 {} ms, max {} ms ({} of {} records)", l.replicator.label(), l.p50_ms, l.p99_ms, l.max_ms, l.records, l.sent)
}

pub fn group_line(g: &GroupResult) -> String {
    let unsynced = if g.unsynced.is_empty() { String::new() } else { format!(", not synced: {}", g.unsynced.join(" ")) };
    format!("{:<24} {:<24} {:>6} left to read: {:>6} re-delivered, {:>6} skipped{unsynced}   {:?}", g.replicator.label(), g.group, g.remaining, g.redelivered, g.skipped, g.offsets)
}

pub fn translate_line(t: &TranslateCheck) -> String {
    let mut s = format!("translateOffsets on Tern's checkpoints equals Tern's offsets: {}", t.equal);
    for g in &t.groups {
        s += &format!("\n  {}: translateOffsets {:?}; synced {:?}; tern offsets {:?}", g.group, g.translate_offsets, g.synced, g.tern_offsets);
    }
    s
}

pub fn import_line(i: &ImportCheck) -> String {
    format!(
        "tern import-mm2: same remote names {}, replicates them when run {}; planned {:?}; MM2 created {:?}; not carried over: {}{}",
        i.same_names,
        i.replicated_live,
        i.planned,
        i.mm2_remote,
        i.not_carried.len(),
        if i.detail.is_empty() { String::new() } else { format!(" ({})", i.detail) }
    )
}

fn find<'a>(report: &'a Report, row: &Row, rep: Replicator) -> Option<&'a BulkResult> {
    report.bulk.iter().find(|b| b.row == *row && b.replicator == rep)
}

fn rows(report: &Report) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for b in &report.bulk {
        if !rows.contains(&b.row) {
            rows.push(b.row);
        }
    }
    rows
}

fn replicators(report: &Report) -> Vec<Replicator> {
    let mut reps: Vec<Replicator> = report.bulk.iter().map(|b| b.replicator).chain(report.latency.iter().map(|l| l.replicator)).collect();
    reps.sort();
    reps.dedup();
    reps
}

/// The tables for the README.
pub fn markdown(report: &Report) -> String {
    let mut s = format!(
        "Measured {} on {}; Apache Kafka {}; {:.0} MB per row (1 KiB records, lz4).\n\n",
        report.date, report.machine, report.kafka_version, report.sizes_mb
    );
    s += "| payload | partitions | replicator | MB/s from start | MB/s steady | first record | CPU s/GB | CPU s/GB steady | MB per CPU s | peak RSS |\n";
    s += "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for row in rows(report) {
        let ratio = report.lz4_ratio.iter().find(|(n, _)| *n == row.name()).map(|r| r.1).unwrap_or(0.0);
        for rep in replicators(report) {
            if let Some(b) = find(report, &row, rep) {
                s += &format!(
                    "| {} (lz4 {:.1}x) | {} | {} | {} | {} | {:.1} s | {:.1} | {:.1} | {} | {:.0} MiB |\n",
                    row.payload.describe(),
                    ratio,
                    row.partitions,
                    rep.label(),
                    num(b.mbps_from_start),
                    num(b.mbps_steady),
                    b.first_record_secs,
                    b.cpu_secs_per_gb,
                    b.cpu_secs_per_gb_steady,
                    num(b.mb_per_cpu_sec()),
                    b.peak_rss_mib
                );
            }
        }
    }
    let with_mm2 = report.bulk.iter().any(|b| b.replicator.is_mm2());
    if with_mm2 {
        s += "\nTern against each MirrorMaker 2 configuration, per row (MB/s from start; MB per CPU second):\n\n";
        s += "| payload | partitions | vs MM2 defaults: MB/s | MB per CPU s | vs MM2 tuned: MB/s | MB per CPU s |\n|---|---:|---:|---:|---:|---:|\n";
    }
    for row in rows(report).into_iter().filter(|_| with_mm2) {
        let Some(t) = find(report, &row, Replicator::Tern) else { continue };
        let mut cells = Vec::new();
        for rep in [Replicator::Mm2Defaults, Replicator::Mm2Tuned] {
            match find(report, &row, rep) {
                Some(m) => {
                    cells.push(format!("{:.1}x", t.mbps_from_start / m.mbps_from_start));
                    cells.push(format!("{:.1}x", t.mb_per_cpu_sec() / m.mb_per_cpu_sec()));
                }
                None => cells.extend(["–".to_string(), "–".to_string()]),
            }
        }
        s += &format!("| {} | {} | {} |\n", row.payload.describe(), row.partitions, cells.join(" | "));
    }
    if report.bulk.iter().any(|b| b.replicator == Replicator::TernExactlyOnce) {
        s += "\n`tern run` with exactly-once delivery beside at-least-once, per row:\n\n";
        s += "| payload | partitions | at-least-once MB/s from start / steady | exactly-once MB/s from start / steady | exactly-once share | CPU s/GB at-least-once / exactly-once |\n|---|---:|---:|---:|---:|---:|\n";
        for row in rows(report) {
            let (Some(a), Some(e)) = (find(report, &row, Replicator::Tern), find(report, &row, Replicator::TernExactlyOnce)) else { continue };
            s += &format!(
                "| {} | {} | {} / {} | {} / {} | {:.0}% | {:.1} / {:.1} |\n",
                row.payload.describe(),
                row.partitions,
                num(a.mbps_from_start),
                num(a.mbps_steady),
                num(e.mbps_from_start),
                num(e.mbps_steady),
                100.0 * e.mbps_from_start / a.mbps_from_start,
                a.cpu_secs_per_gb,
                e.cpu_secs_per_gb
            );
        }
    }
    s += "\nEnd-to-end latency at a steady 5,000 records/s (producer timestamp to a consumer on the target):\n\n";
    s += "| replicator | p50 | p99 | max | records |\n|---|---:|---:|---:|---:|\n";
    for l in &report.latency {
        s += &format!("| {} | {} ms | {} ms | {} ms | {} |\n", l.replicator.label(), l.p50_ms, l.p99_ms, l.max_ms, l.records);
    }
    s += "\nFailover, per group: records re-delivered / skipped when a consumer resumes on the target from the synced offsets (compared on content):\n\n";
    let reps = replicators(report);
    s += "| group | left to read |";
    for rep in &reps {
        s += &format!(" {} |", rep.label());
    }
    s += "\n|---|---:|";
    for _ in &reps {
        s += "---:|";
    }
    s += "\n";
    let mut groups: Vec<&str> = Vec::new();
    for g in &report.failover {
        if !groups.contains(&g.group.as_str()) {
            groups.push(&g.group);
        }
    }
    for name in groups {
        let Some(first) = report.failover.iter().find(|g| g.group == name) else { continue };
        s += &format!("| {}: {} | {} |", first.group, first.kind, first.remaining);
        for rep in &reps {
            match report.failover.iter().find(|g| g.group == name && g.replicator == *rep) {
                Some(g) if g.unsynced.is_empty() => s += &format!(" {} / {} |", g.redelivered, g.skipped),
                Some(g) => s += &format!(" {} / {} (not synced: {}) |", g.redelivered, g.skipped, g.unsynced.len()),
                None => s += " – |",
            }
        }
        s += "\n";
    }
    s
}

const COLORS: [(&str, Replicator); 4] = [("#9aa5b1", Replicator::Mm2Defaults), ("#3e6fb0", Replicator::Mm2Tuned), ("#e07a1f", Replicator::Tern), ("#8c4fb0", Replicator::TernExactlyOnce)];

fn color(rep: Replicator) -> &'static str {
    COLORS.iter().find(|c| c.1 == rep).map(|c| c.0).unwrap_or("#000")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Where a panel goes: left, top, width, height.
struct Area(f64, f64, f64, f64);

/// One panel of grouped bars: `groups` of (label, bars of (replicator, value)).
fn panel(svg: &mut String, Area(x0, y0, w, h): Area, title: &str, groups: &[(String, Vec<(Replicator, f64)>)], fmt: &dyn Fn(f64) -> String) {
    let max = groups.iter().flat_map(|g| g.1.iter().map(|b| b.1)).fold(0.0_f64, f64::max).max(1e-9);
    let (top, bottom) = (y0 + 28.0, y0 + h - 34.0);
    *svg += &format!(r#"<text x="{:.1}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#, x0, y0 + 14.0, esc(title));
    *svg += &format!(r##"<line x1="{x0:.1}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#444"/>"##, x0 + w);
    let gw = w / groups.len().max(1) as f64;
    for (i, (label, bars)) in groups.iter().enumerate() {
        let gx = x0 + i as f64 * gw;
        let bw = (gw - 24.0) / bars.len().max(1) as f64;
        for (j, (rep, v)) in bars.iter().enumerate() {
            let bh = (bottom - top - 14.0) * v / max;
            let bx = gx + 12.0 + j as f64 * bw;
            *svg += &format!(r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#, bx + 2.0, bottom - bh, bw - 4.0, bh.max(0.5), color(*rep));
            *svg += &format!(r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#, bx + bw / 2.0, bottom - bh - 3.0, esc(&fmt(*v)));
        }
        *svg += &format!(r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#, gx + gw / 2.0, bottom + 16.0, esc(label));
    }
}

/// The chart: throughput, cost and failover exactness, one panel each.
pub fn svg(report: &Report) -> String {
    let (width, panel_h) = (960.0, 250.0);
    let reps = replicators(report);
    let throughput: Vec<(String, Vec<(Replicator, f64)>)> = rows(report)
        .iter()
        .map(|row| (row_label(row), reps.iter().filter_map(|rep| find(report, row, *rep).map(|b| (*rep, b.mbps_from_start))).collect()))
        .collect();
    let cost: Vec<(String, Vec<(Replicator, f64)>)> = rows(report)
        .iter()
        .map(|row| (row_label(row), reps.iter().filter_map(|rep| find(report, row, *rep).map(|b| (*rep, b.cpu_secs_per_gb))).collect()))
        .collect();
    let mut group_names: Vec<(String, String)> = Vec::new();
    for g in &report.failover {
        if !group_names.iter().any(|n| n.0 == g.group) {
            group_names.push((g.group.clone(), g.kind.split(", ").next().unwrap_or(&g.kind).to_string()));
        }
    }
    let failover: Vec<(String, Vec<(Replicator, f64)>)> = group_names
        .iter()
        .map(|(name, kind)| {
            let bars = reps.iter().filter_map(|rep| report.failover.iter().find(|g| &g.group == name && g.replicator == *rep).map(|g| (*rep, (g.redelivered + g.skipped) as f64))).collect();
            (kind.clone(), bars)
        })
        .collect();
    let height = 70.0 + 3.0 * panel_h;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">"#
    );
    s += r##"<rect width="100%" height="100%" fill="#fff"/>"##;
    s += &format!(
        r#"<text x="20" y="24" font-size="16" font-weight="bold">MirrorMaker 2 and tern run on Apache Kafka {}: {:.0} MB per row, 1 KiB records, lz4</text>"#,
        esc(&report.kafka_version),
        report.sizes_mb
    );
    s += &format!(r#"<text x="20" y="42" font-size="11">{}, {}; brokers, replicator and load generator share the machine</text>"#, esc(&report.date), esc(&report.machine));
    let mut lx = 20.0;
    for rep in &reps {
        s += &format!(r#"<rect x="{lx:.1}" y="52" width="12" height="12" fill="{}"/><text x="{:.1}" y="62" font-size="12">{}</text>"#, color(*rep), lx + 16.0, esc(rep.label()));
        lx += 200.0;
    }
    panel(&mut s, Area(20.0, 70.0, width - 40.0, panel_h), "Throughput: MB/s from process start (higher is better)", &throughput, &num);
    panel(&mut s, Area(20.0, 70.0 + panel_h, width - 40.0, panel_h), "Cost: CPU seconds of the replicator per GB (lower is better)", &cost, &|v| format!("{v:.1}"));
    panel(&mut s, Area(20.0, 70.0 + 2.0 * panel_h, width - 40.0, panel_h), "Failover: records re-delivered + skipped when a group resumes on the target (0 is exact)", &failover, &|v| format!("{v:.0}"));
    s += "</svg>\n";
    s
}
