//! The replicators under test, their configuration files and processes.
//!
//! Every run (a replicator on a set of topics) gets cluster aliases of its own: the remote
//! topics (`<source alias>.<topic>`), MM2's Connect topics (`mm2-*.<alias>.internal`), offset
//! syncs and checkpoints, and Tern's flow group are all named after them, so no run sees
//! another's state.

use std::path::{Path, PathBuf};

use super::super::common::kafka::{log4j2_xml, Watched};
use super::Setup;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Replicator {
    /// MirrorMaker 2 in dedicated mode with its defaults.
    Mm2Defaults,
    /// MirrorMaker 2 tuned: a task per partition, producer batching and compression like the
    /// source's, larger fetches, five requests in flight.
    Mm2Tuned,
    /// `tern run` with its defaults.
    Tern,
    /// `tern run` with its defaults and `delivery = "exactly-once"`.
    TernExactlyOnce,
}

impl Replicator {
    pub fn all() -> Vec<Replicator> {
        vec![Replicator::Mm2Defaults, Replicator::Mm2Tuned, Replicator::Tern, Replicator::TernExactlyOnce]
    }

    /// Short name used in aliases and topic names.
    pub fn key(self) -> &'static str {
        match self {
            Replicator::Mm2Defaults => "mm2d",
            Replicator::Mm2Tuned => "mm2t",
            Replicator::Tern => "tern",
            Replicator::TernExactlyOnce => "terneos",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Replicator::Mm2Defaults => "MirrorMaker 2, defaults",
            Replicator::Mm2Tuned => "MirrorMaker 2, tuned",
            Replicator::Tern => "tern run",
            Replicator::TernExactlyOnce => "tern run, exactly-once",
        }
    }

    pub fn is_mm2(self) -> bool {
        !matches!(self, Replicator::Tern | Replicator::TernExactlyOnce)
    }
}

/// One replicator process on some topics, under aliases of its own.
#[derive(Debug, Clone)]
pub struct Run {
    pub replicator: Replicator,
    pub source_alias: String,
    pub target_alias: String,
    pub topics: Vec<String>,
    /// Partitions over all `topics` (MM2 tuned runs that many tasks).
    pub partitions: i32,
    pub groups_regex: String,
}

impl Run {
    /// `what` names the run ("dense8", "failover").
    pub fn new(replicator: Replicator, what: &str, tag: &str, topics: Vec<String>, partitions: i32, groups_regex: &str) -> Run {
        let source_alias = format!("{}-{what}{tag}", replicator.key());
        Run { replicator, target_alias: format!("{source_alias}-target"), source_alias, topics, partitions, groups_regex: groups_regex.to_string() }
    }

    /// A source topic's name on the target (prefix naming, MM2's default).
    pub fn remote(&self, topic: &str) -> String {
        format!("{}.{topic}", self.source_alias)
    }
}

/// MirrorMaker 2's `mm2.properties` for a run.
pub fn mm2_properties(setup: &Setup, run: &Run) -> String {
    let (s, t) = (&run.source_alias, &run.target_alias);
    let mut p = format!(
        "# {label}: {s} -> {t}\n\
         clusters = {s}, {t}\n\
         {s}.bootstrap.servers = {src}\n\
         {t}.bootstrap.servers = {dst}\n\
         {s}->{t}.enabled = true\n\
         {s}->{t}.topics = {topics}\n\
         {s}->{t}.groups = {groups}\n\
         \n\
         # Single-node clusters: replication factor 1 for remote and internal topics.\n\
         replication.factor = 1\n\
         checkpoints.topic.replication.factor = 1\n\
         heartbeats.topic.replication.factor = 1\n\
         offset-syncs.topic.replication.factor = 1\n\
         offset.storage.replication.factor = 1\n\
         status.storage.replication.factor = 1\n\
         config.storage.replication.factor = 1\n\
         \n\
         # Consumer groups resume on the target: offsets synced, at short intervals.\n\
         sync.group.offsets.enabled = true\n\
         sync.group.offsets.interval.seconds = 5\n\
         emit.checkpoints.interval.seconds = 5\n\
         refresh.groups.interval.seconds = 5\n",
        label = run.replicator.label(),
        src = setup.source,
        dst = setup.target,
        topics = run.topics.join(", "),
        groups = run.groups_regex,
    );
    if run.replicator == Replicator::Mm2Tuned {
        p += &format!(
            "\n\
             # Tuned: a task per partition; the producer batches and compresses as the source's\n\
             # producer did (lz4, 512 KiB batches) with five requests in flight, as Tern does;\n\
             # fetches of up to 4 MiB per partition (as Tern) and 100 MiB per request (defaults 1 and 50 MiB).\n\
             tasks.max = {tasks}\n\
             {t}.producer.compression.type = lz4\n\
             {t}.producer.batch.size = 524288\n\
             {t}.producer.linger.ms = 20\n\
             {t}.producer.max.in.flight.requests.per.connection = 5\n\
             {s}.consumer.fetch.max.bytes = 104857600\n\
             {s}.consumer.max.partition.fetch.bytes = 4194304\n",
            tasks = run.partitions,
        );
    }
    p
}

/// `tern.toml` for a run: Tern's defaults, the run's clusters, topics and groups, and the
/// delivery of the replicator.
pub fn tern_toml(setup: &Setup, run: &Run) -> String {
    let topics: Vec<String> = run.topics.iter().map(|t| format!("\"{t}\"")).collect();
    let delivery = if run.replicator == Replicator::TernExactlyOnce { "delivery = \"exactly-once\"\n" } else { "" };
    format!(
        "[clusters.{s}]\nbootstrap = \"{src}\"\n\n[clusters.{t}]\nbootstrap = \"{dst}\"\n\n[[flows]]\nsource = \"{s}\"\ntarget = \"{t}\"\ntopics = [{topics}]\ngroups = [\"{groups}\"]\n{delivery}\n[web]\nlisten = \"127.0.0.1:0\"\n",
        s = run.source_alias,
        t = run.target_alias,
        src = setup.source,
        dst = setup.target,
        topics = topics.join(", "),
        groups = run.groups_regex,
    )
}

/// A running replicator.
pub struct Process {
    pub proc: Watched,
    pub config_path: PathBuf,
    pub config_text: String,
}

/// Writes the run's configuration and starts the replicator.
pub fn start(setup: &Setup, run: &Run) -> anyhow::Result<Process> {
    for t in &run.topics {
        anyhow::ensure!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "topic {t:?}: names are used as regexes unescaped");
    }
    let dir = setup.work.join(&run.source_alias);
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("replicator.log");
    if run.replicator.is_mm2() {
        let config_text = mm2_properties(setup, run);
        let config_path = dir.join("mm2.properties");
        std::fs::write(&config_path, &config_text)?;
        let log4j = dir.join("log4j2.xml");
        std::fs::write(&log4j, log4j2_xml(&setup.mm2_log_level))?;
        let mut args = setup.mm2_jvm.clone();
        args.extend([
            format!("-Dlog4j2.configurationFile={}", log4j.display()),
            "-cp".into(),
            format!("{}/*", setup.kafka_libs.display()),
            "org.apache.kafka.connect.mirror.MirrorMaker".into(),
            config_path.display().to_string(),
        ]);
        let proc = Watched::spawn(&setup.java, &args, &log, None)?;
        Ok(Process { proc, config_path, config_text })
    } else {
        let config_text = tern_toml(setup, run);
        let config_path = dir.join("tern.toml");
        std::fs::write(&config_path, &config_text)?;
        let proc = Watched::spawn(&setup.tern, &["run".into(), "--config".into(), config_path.display().to_string()], &log, None)?;
        Ok(Process { proc, config_path, config_text })
    }
}

/// Starts `tern run` on a configuration file as it is.
pub fn start_tern(setup: &Setup, config: &Path, log: &Path) -> anyhow::Result<Watched> {
    Watched::spawn(&setup.tern, &["run".into(), "--config".into(), config.display().to_string()], log, None)
}
