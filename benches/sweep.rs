//! Partition sweep: `cargo bench --bench sweep [-- --mb N --points 8,64,1000 --chart FILE]`.
//!
//! Two release brokers as child processes. For each partition count (8, 32, 128, 512 and 1,000
//! by default) the source gets a topic of that many partitions holding the same amount of
//! incompressible 1 KiB records (256 MiB by default, lz4 batches of 64 records spread evenly),
//! and one `tern run` replicates it to completion. Per point: MB/s from process start and from
//! the first record on the target, the mirror's CPU seconds per GB and peak RSS, and its CPU
//! while idle afterwards (every partition owned, nothing to copy) over 10 s. Flat lines mean the
//! mirror's cost per byte does not grow with the number of partitions; the idle CPU is the cost
//! of owning them.
//!
//! `--chart FILE` writes the figures as an SVG chart (docs/partition-sweep.svg). `--pinned` runs
//! the mirror alone on CPU 1 and the brokers and this process on CPU 0, so that the mirror's
//! cost per byte is not blurred by sharing its CPU with them.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use kafka_protocol::records::Compression;

use common::*;

const PER_BATCH: usize = 64;

/// One point of the sweep.
struct Point {
    partitions: i32,
    from_start_mbps: f64,
    streaming_mbps: f64,
    cpu_secs_per_gb: f64,
    idle_cpu_percent: f64,
    peak_rss_mib: u64,
}

fn arg(argv: &[String], name: &str) -> Option<String> {
    argv.iter().position(|a| a == name).and_then(|i| argv.get(i + 1)).cloned()
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let mb: usize = arg(&argv, "--mb").map(|v| v.parse()).transpose()?.unwrap_or(256);
    let points: Vec<i32> = match arg(&argv, "--points") {
        Some(list) => list.split(',').map(|p| p.trim().parse()).collect::<Result<_, _>>()?,
        None => vec![8, 32, 128, 512, 1000],
    };
    anyhow::ensure!(points.iter().all(|p| (1..=10_000).contains(p)), "--points: partition counts from 1 to 10,000");
    let chart = arg(&argv, "--chart");
    let pinned = argv.iter().any(|a| a == "--pinned");
    anyhow::ensure!(!pinned || num_cpus() >= 2, "--pinned needs two CPUs");
    let records = (mb << 20) / RECORD / PER_BATCH * PER_BATCH;
    let megabytes = (records * RECORD) as f64 / 1e6;
    let dir = tempfile::tempdir()?;
    let (mut src, src_addr) = start_broker(&dir.path().join("source"))?;
    let (mut dst, dst_addr) = start_broker(&dir.path().join("target"))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let machine = format!("{} cores, {}", num_cpus(), cpu_model());
    if pinned {
        for pid in [src.id(), dst.id(), std::process::id()] {
            pin(pid, 0)?;
        }
    }
    println!("machine: {machine}{}", if pinned { "; mirror pinned to CPU 1, brokers and load generator to CPU 0" } else { "" });
    println!("workload per point: {records} records of ~{RECORD} bytes ({megabytes:.0} MB), incompressible, lz4 batches of {PER_BATCH}\n");
    let batch = encoded_batch(PER_BATCH, Compression::Lz4, now_ms())?;

    let mut out = Vec::new();
    for &partitions in &points {
        let topic = format!("sweep{partitions}");
        rt.block_on(create(&src_addr, &topic, partitions))?;
        rt.block_on(produce_pipelined(&src_addr, &topic, partitions, records, batch.clone(), PER_BATCH))?;
        let run = replicate_with(&rt, dir.path(), &src_addr, &dst_addr, &format!("p{partitions}"), &topic, partitions, "at-least-once", ["", ""], pinned.then_some(1))?;
        let pid = run.mirror.id();
        let before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(10));
        let idle = (cpu_seconds(pid) - before) / 10.0;
        let mut mirror = run.mirror;
        let _ = mirror.kill();
        let _ = mirror.wait();
        let point = Point {
            partitions,
            from_start_mbps: megabytes / run.mirrored.as_secs_f64(),
            streaming_mbps: megabytes / run.streaming.as_secs_f64(),
            cpu_secs_per_gb: run.cpu / (megabytes / 1000.0),
            idle_cpu_percent: idle * 100.0,
            peak_rss_mib: run.peak_rss_kib / 1024,
        };
        println!(
            "{:>5} partitions: {:>6.0} MB/s from start, {:>6.0} MB/s streaming, {:.2} CPU s/GB, idle {:.1}% of a core, peak RSS {} MiB",
            point.partitions, point.from_start_mbps, point.streaming_mbps, point.cpu_secs_per_gb, point.idle_cpu_percent, point.peak_rss_mib
        );
        out.push(point);
    }
    println!("\n| partitions | MB/s from start | MB/s streaming | CPU s/GB | idle CPU | peak RSS |\n|---:|---:|---:|---:|---:|---:|");
    for p in &out {
        println!("| {} | {:.0} | {:.0} | {:.2} | {:.1}% | {} MiB |", p.partitions, p.from_start_mbps, p.streaming_mbps, p.cpu_secs_per_gb, p.idle_cpu_percent, p.peak_rss_mib);
    }
    if let Some(path) = chart {
        let date = std::process::Command::new("date").arg("+%Y-%m-%d").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
        std::fs::write(&path, svg(&out, &format!("{date}, {machine}; {megabytes:.0} MB per point; {}", if pinned { "mirror pinned to CPU 1, brokers and load generator to CPU 0" } else { "brokers, mirror and load generator share the machine" })))?;
        println!("\nchart written to {path}");
    }
    for b in [&mut src, &mut dst] {
        let _ = b.kill();
        let _ = b.wait();
    }
    Ok(())
}

/// Three panels over the partition count (log scale): throughput, CPU per GB, idle CPU.
fn svg(points: &[Point], subtitle: &str) -> String {
    let (width, panel_h) = (900.0, 210.0);
    let height = 70.0 + 3.0 * panel_h;
    let mut s = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">"#);
    s += r#"<rect width="100%" height="100%" fill="white"/>"#;
    s += r#"<text x="20" y="24" font-size="16" font-weight="bold">tern run: partition sweep (at-least-once, tern broker to tern broker)</text>"#;
    let _ = write!(s, r#"<text x="20" y="44" font-size="11">{}</text>"#, subtitle.replace('&', "&amp;").replace('<', "&lt;"));
    let panels: [(&str, &str, Box<dyn Fn(&Point) -> f64>); 3] = [
        ("MB/s (higher is better): streaming (orange) and from process start (grey)", "#e07a1f", Box::new(|p| p.streaming_mbps)),
        ("Mirror CPU seconds per GB (lower is better)", "#3e6fb0", Box::new(|p| p.cpu_secs_per_gb)),
        ("Idle mirror CPU, % of a core, owning every partition (lower is better)", "#8c4fb0", Box::new(|p| p.idle_cpu_percent)),
    ];
    let (min_p, max_p) = (points.iter().map(|p| p.partitions).min().unwrap_or(1) as f64, points.iter().map(|p| p.partitions).max().unwrap_or(1) as f64);
    let x_of = |n: f64, x0: f64, w: f64| if max_p > min_p { x0 + (n.ln() - min_p.ln()) / (max_p.ln() - min_p.ln()) * w } else { x0 + w / 2.0 };
    for (i, (title, color, value)) in panels.iter().enumerate() {
        let (x0, y0, w) = (70.0, 60.0 + i as f64 * panel_h, width - 110.0);
        let (top, bottom) = (y0 + 30.0, y0 + panel_h - 30.0);
        let mut max = points.iter().map(|p| value(p)).fold(0.0_f64, f64::max);
        if i == 0 {
            max = max.max(points.iter().map(|p| p.from_start_mbps).fold(0.0, f64::max));
        }
        let max = if max > 0.0 { max * 1.15 } else { 1.0 };
        let y_of = |v: f64| bottom - (bottom - top) * v / max;
        let _ = write!(s, r#"<text x="{x0}" y="{:.1}" font-size="13" font-weight="bold">{title}</text>"#, y0 + 16.0);
        let _ = write!(s, r##"<line x1="{x0}" y1="{bottom:.1}" x2="{:.1}" y2="{bottom:.1}" stroke="#444"/><line x1="{x0}" y1="{top:.1}" x2="{x0}" y2="{bottom:.1}" stroke="#444"/>"##, x0 + w);
        for frac in [0.5, 1.0] {
            let v = max / 1.15 * frac;
            let _ = write!(s, r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text><line x1="{x0}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/>"##, x0 - 6.0, y_of(v) + 3.0, fmt(v), y_of(v), x0 + w, y_of(v));
        }
        let mut series: Vec<(&str, Vec<(f64, f64)>)> = vec![(color, points.iter().map(|p| (p.partitions as f64, value(p))).collect())];
        if i == 0 {
            series.push(("#9aa5b1", points.iter().map(|p| (p.partitions as f64, p.from_start_mbps)).collect()));
        }
        for (c, line) in &series {
            let path: Vec<String> = line.iter().map(|(n, v)| format!("{:.1},{:.1}", x_of(*n, x0, w), y_of(*v))).collect();
            let _ = write!(s, r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#, path.join(" "));
            for (n, v) in line {
                let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#, x_of(*n, x0, w), y_of(*v), x_of(*n, x0, w), y_of(*v) - 7.0, fmt(*v));
            }
        }
        for p in points {
            let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#, x_of(p.partitions as f64, x0, w), bottom + 14.0, p.partitions);
        }
        let _ = write!(s, r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">partitions (log scale)</text>"#, x0 + w / 2.0, bottom + 26.0);
    }
    s += "</svg>\n";
    s
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
