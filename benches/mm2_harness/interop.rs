//! Interoperability with MirrorMaker 2's tooling and configuration:
//! - MM2's `RemoteClusterUtils.translateOffsets` (Java), pointed at Tern's checkpoints topic,
//!   must return exactly the offsets Tern translated;
//! - `tern import-mm2` on the run's `mm2.properties` must give a `tern.toml` that replicates
//!   the same topics under the same remote names (checked by name, then by running it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tern_kafka::client::{Client, ClientConfig, LATEST};

use super::data::FailoverData;
use super::replicators::{self, Run};
use super::Setup;

type Offsets = BTreeMap<(String, i32), i64>;

#[derive(Debug, Clone, serde::Serialize)]
pub struct TranslateCheck {
    pub groups: Vec<GroupTranslation>,
    pub equal: bool,
}

/// One group's target offsets, three ways.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupTranslation {
    pub group: String,
    /// What MM2's translateOffsets returned from Tern's checkpoints.
    pub translate_offsets: Vec<((String, i32), i64)>,
    /// What Tern committed to the group on the target.
    pub synced: Vec<((String, i32), i64)>,
    /// What `tern offsets` prints as the translation.
    pub tern_offsets: Vec<((String, i32), i64)>,
}

/// MM2's translateOffsets on Tern's `<alias>.checkpoints.internal`, against Tern's own numbers.
pub async fn translate_check(setup: &Setup, run: &Run, fo: &FailoverData) -> anyhow::Result<TranslateCheck> {
    let groups: Vec<String> = fo.groups.iter().map(|g| g.name.clone()).collect();
    let java = translate_offsets(setup, &run.source_alias, &groups)?;
    let target = Client::connect(ClientConfig::new(&setup.target)).await?;
    let config = setup.work.join(&run.source_alias).join("tern.toml");
    let mut out = TranslateCheck { groups: Vec::new(), equal: true };
    for g in &fo.groups {
        let tps: Vec<(String, i32)> = g.committed.keys().map(|(t, p)| (run.remote(t), *p)).collect();
        let synced = target.committed_offsets(&g.name, &tps).await?;
        let cli = tern_offsets(setup, &config, run, &g.name)?;
        let from_java = java.get(&g.name).cloned().unwrap_or_default();
        out.equal &= !from_java.is_empty() && from_java == synced && from_java == cli;
        out.groups.push(GroupTranslation {
            group: g.name.clone(),
            translate_offsets: from_java.into_iter().collect(),
            synced: synced.into_iter().collect(),
            tern_offsets: cli.into_iter().collect(),
        });
    }
    Ok(out)
}

/// Runs `TranslateOffsets.java` (single-file source launch) for `alias` and `groups`.
fn translate_offsets(setup: &Setup, alias: &str, groups: &[String]) -> anyhow::Result<BTreeMap<String, Offsets>> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/mm2_harness/TranslateOffsets.java");
    let log4j = setup.work.join("translate-log4j2.xml");
    std::fs::write(&log4j, super::super::common::kafka::log4j2_xml("WARN"))?;
    let out = Command::new(&setup.java)
        .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .arg("-cp")
        .arg(format!("{}/*", setup.kafka_libs.display()))
        .arg(&source)
        .arg(&setup.target)
        .arg(format!("{alias}={}", groups.join(",")))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "TranslateOffsets.java failed ({}):\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let mut result: BTreeMap<String, Offsets> = groups.iter().map(|g| (g.clone(), Offsets::new())).collect();
    for line in stdout.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if let [_alias, group, topic, partition, offset] = cols[..] {
            result.entry(group.to_string()).or_default().insert((topic.to_string(), partition.parse()?), offset.parse()?);
        }
    }
    Ok(result)
}

/// The translated target offsets `tern offsets` prints for a group.
fn tern_offsets(setup: &Setup, config: &Path, run: &Run, group: &str) -> anyhow::Result<Offsets> {
    let flow = format!("{}->{}", run.source_alias, run.target_alias);
    let out = Command::new(&setup.tern).args(["offsets", "--config"]).arg(config).args(["--flow", &flow, "--group", group]).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "tern offsets failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut offsets = Offsets::new();
    for line in stdout.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if let (Some(topic), Some(Ok(p)), Some(Ok(target))) = (cols.first(), cols.get(1).map(|s| s.parse()), cols.get(3).map(|s| s.parse())) {
            offsets.insert((topic.to_string(), p), target);
        }
    }
    Ok(offsets)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportCheck {
    pub properties: String,
    pub toml: String,
    pub not_carried: Vec<String>,
    /// Source topic -> remote topic, as the imported configuration names them.
    pub planned: Vec<(String, String)>,
    /// Remote topics MM2 created on the target in its run (heartbeats aside).
    pub mm2_remote: Vec<String>,
    pub same_names: bool,
    /// Running the imported configuration appended every source record to those same
    /// remote topics, and created no others.
    pub replicated_live: bool,
    pub detail: String,
}

/// `tern import-mm2` on MM2's `mm2.properties` of `run`, compared with what MM2 did.
pub async fn import_check(setup: &Setup, run: &Run, properties: &Path, _fo: &FailoverData) -> anyhow::Result<ImportCheck> {
    let out = Command::new(&setup.tern).arg("import-mm2").arg(properties).output()?;
    anyhow::ensure!(out.status.success(), "tern import-mm2 failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let toml = String::from_utf8(out.stdout)?;
    let not_carried: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().map(|l| l.trim_start_matches("not carried over: ").to_string()).collect();
    let validated = tern_mirror::config::parse(&toml)?;
    anyhow::ensure!(validated.flows.len() == 1, "the imported configuration has {} flows, the run had one", validated.flows.len());
    let flow = &validated.flows[0];

    let source = Client::connect(ClientConfig::new(&setup.source)).await?;
    let target = Client::connect(ClientConfig::new(&setup.target)).await?;
    let skip = |t: &str| tern_mirror::naming::is_heartbeats(t);
    let source_topics: Vec<String> = source.refresh_metadata(None).await?.topics.keys().cloned().collect();
    let planned: BTreeMap<String, String> = source_topics
        .iter()
        .filter(|t| tern_mirror::naming::replicates(flow, t) && !skip(t))
        .map(|t| (t.clone(), tern_mirror::naming::remote_topic(flow, t)))
        .collect();
    let prefix = format!("{}.", run.source_alias);
    let remote_now = |md: std::sync::Arc<tern_kafka::client::ClusterMetadata>| -> BTreeSet<String> {
        md.topics.keys().filter(|t| t.starts_with(&prefix) && !tern_mirror::naming::is_internal(t) && !skip(t)).cloned().collect()
    };
    let mm2_remote = remote_now(target.refresh_metadata(None).await?);
    let planned_remote: BTreeSet<String> = planned.values().cloned().collect();
    let same_names = planned_remote == mm2_remote && planned.keys().cloned().collect::<BTreeSet<_>>() == run.topics.iter().cloned().collect();
    let mut detail = String::new();
    if !same_names {
        detail += &format!("imported plan {planned:?}, MM2 created {mm2_remote:?}; ");
    }

    // Run it: every source record must be appended again to MM2's remote topics, and no other
    // remote topic may appear.
    let dir = setup.work.join(format!("{}-imported", run.source_alias));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("tern.toml");
    // A dashboard port of its own; the rest as imported.
    std::fs::write(&config, format!("{toml}\n[web]\nlisten = \"127.0.0.1:0\"\n"))?;
    let mut want: Vec<((String, i32), i64)> = Vec::new();
    for (topic, remote) in &planned {
        let partitions = source.metadata_snapshot().topics.get(topic).map(|t| t.partitions.len() as i32).unwrap_or(0);
        for p in 0..partitions {
            let records = super::data::values(&source, topic, p).await?.len() as i64;
            let end = target.list_offset(remote, p, LATEST).await?.0;
            want.push(((remote.clone(), p), end + records));
        }
    }
    let mut tern = replicators::start_tern(setup, &config, &dir.join("tern.log"))?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut replicated_live = false;
    while Instant::now() < deadline && tern.is_running() {
        let mut all = true;
        for ((remote, p), end) in &want {
            all &= target.list_offset(remote, *p, LATEST).await.map(|o| o.0 >= *end).unwrap_or(false);
        }
        if all {
            replicated_live = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !tern.is_running() {
        detail += &format!("tern run on the imported configuration exited:\n{}", tern.log_tail(20));
    }
    tern.kill();
    let extra: Vec<String> = remote_now(target.refresh_metadata(None).await?).difference(&mm2_remote).cloned().collect();
    if !extra.is_empty() {
        replicated_live = false;
        detail += &format!("new remote topics appeared: {extra:?}; ");
    }
    if !replicated_live && detail.is_empty() {
        detail += "the imported configuration did not copy every record within 180 s";
    }
    Ok(ImportCheck {
        properties: std::fs::read_to_string(properties)?,
        toml,
        not_carried,
        planned: planned.into_iter().collect(),
        mm2_remote: mm2_remote.into_iter().collect(),
        same_names,
        replicated_live,
        detail,
    })
}
