//! Apache Kafka for the benchmarks: single-node KRaft clusters started from the jars that
//! `scripts/install-kafka.sh` puts in `.kafka/libs`, with release-level settings (the heap and
//! JVM options of `kafka-server-start.sh`, Kafka's own defaults for everything else), data in a
//! temporary directory.
//!
//! Every JVM (brokers, MirrorMaker 2) and every `tern run` a benchmark starts runs under a
//! watchdog shell that kills it when the benchmark process is gone, so an interrupted run
//! leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The heap and JVM options `kafka-server-start.sh` and `kafka-run-class.sh` give a broker.
pub const BROKER_JVM: &[&str] = &[
    "-Xmx1G",
    "-Xms1G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
];

/// The heap and JVM options `connect-mirror-maker.sh` gives MirrorMaker 2.
pub const CONNECT_JVM: &[&str] = &[
    "-Xms256M",
    "-Xmx2G",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
];

#[path = "../../tests/shared/kafka_jars.rs"]
mod jars;
// Each benchmark (and the tests' tiny MM2 run) uses a different part of this module.
#[allow(unused_imports)]
pub use jars::{java, kafka_version, log4j2_xml};
use jars::WATCHDOG;

/// Where the jars are: `TERN_KAFKA_LIBS`, or `.kafka/libs` in the checkout.
pub fn kafka_libs() -> anyhow::Result<PathBuf> {
    jars::kafka_libs().map_err(anyhow::Error::msg)
}

/// A process under the watchdog. Its pid is the program's own (not the shell's), so
/// `/proc/<pid>` readings are the program's.
pub struct Watched {
    pub pid: u32,
    pub log: PathBuf,
    watchdog: Option<Child>,
}

impl Watched {
    /// Starts `program args` with stdout and stderr appended to `log`. `cleanup` is removed
    /// if the benchmark dies before the process is stopped.
    pub fn spawn(program: &Path, args: &[String], log: &Path, cleanup: Option<&Path>) -> anyhow::Result<Watched> {
        let pidfile = log.with_extension("pid");
        let _ = std::fs::remove_file(&pidfile);
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let watchdog = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("bench-watchdog")
            .arg(std::process::id().to_string())
            .arg(cleanup.map(|p| p.display().to_string()).unwrap_or_default())
            .arg(&pidfile)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()) {
                break pid;
            }
            anyhow::ensure!(Instant::now() < deadline, "{} did not start", program.display());
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Watched { pid, log: log.to_path_buf(), watchdog: Some(watchdog) })
    }

    pub fn is_running(&self) -> bool {
        // A zombie (exited, not yet reaped by the watchdog) counts as gone.
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map(|s| !s.rsplit(')').next().unwrap_or_default().trim_start().starts_with('Z'))
            .unwrap_or(false)
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// kill -9 and wait until it is gone.
    pub fn kill(&mut self) {
        // Once the watchdog was reaped the pid may belong to someone else: never signal it again.
        // While the watchdog runs, it has not reaped the process, so the pid is still its own.
        if let Some(mut w) = self.watchdog.take() {
            if matches!(w.try_wait(), Ok(None)) {
                let _ = Command::new("kill").arg("-9").arg(self.pid.to_string()).stderr(Stdio::null()).status();
            }
            let _ = w.wait();
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free port on 127.0.0.1, picked by the kernel.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A single-node KRaft cluster (combined broker and controller).
pub struct KafkaCluster {
    pub bootstrap: String,
    pub started_in: Duration,
    pub node: Watched,
    root: PathBuf,
}

impl KafkaCluster {
    /// Formats storage under `root` and starts the node; returns when Metadata lists it.
    /// Kafka's defaults apply except for what one node needs (replication factor 1 for the
    /// internal topics), `auto.create.topics.enable=false`, and `extra` lines.
    /// Blocking: call it outside an async runtime.
    pub fn start(root: &Path, jvm: &[&str], extra: &str) -> anyhow::Result<KafkaCluster> {
        // Ports are picked by the kernel and released just before the JVM binds them; when
        // something else took one in between, start again on new ports.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(root, jvm, extra) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    let _ = std::fs::remove_dir_all(root);
                }
                other => return other,
            }
        }
    }

    fn start_once(root: &Path, jvm: &[&str], extra: &str) -> anyhow::Result<KafkaCluster> {
        let began = Instant::now();
        std::fs::create_dir_all(root.join("data"))?;
        let (port, controller_port) = (free_port()?, free_port()?);
        let props = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller_port}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             inter.broker.listener.name=PLAINTEXT\n\
             log.dirs={data}\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             auto.create.topics.enable=false\n\
             {extra}",
            data = root.join("data").display(),
        );
        std::fs::write(root.join("server.properties"), props)?;
        std::fs::write(root.join("log4j2.xml"), log4j2_xml("WARN"))?;
        let log4j = format!("-Dlog4j2.configurationFile={}", root.join("log4j2.xml").display());
        let classpath = format!("{}/*", kafka_libs()?.display());
        let cluster_id = random_cluster_id();
        let format = Command::new(java())
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", &log4j, "-cp", &classpath])
            .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
            .arg(root.join("server.properties"))
            .output()?;
        anyhow::ensure!(format.status.success(), "formatting Kafka storage failed:\n{}{}", String::from_utf8_lossy(&format.stdout), String::from_utf8_lossy(&format.stderr));
        let mut args: Vec<String> = jvm.iter().map(|s| s.to_string()).collect();
        args.extend([log4j, "-cp".into(), classpath, "kafka.Kafka".into(), root.join("server.properties").display().to_string()]);
        let node = Watched::spawn(&java(), &args, &root.join("server.log"), Some(root))?;
        let bootstrap = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !answers_metadata(&bootstrap) {
            anyhow::ensure!(node.is_running(), "Kafka exited during start:\n{}", node.log_tail(40));
            anyhow::ensure!(Instant::now() < deadline, "Kafka not ready within 120 s:\n{}", node.log_tail(40));
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(KafkaCluster { bootstrap, started_in: began.elapsed(), node, root: root.to_path_buf() })
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        self.node.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Whether the node answers Metadata and lists itself.
fn answers_metadata(addr: &str) -> bool {
    use kafka_protocol::messages::MetadataRequest;
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return false };
    rt.block_on(async {
        let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), tern_kafka::client::Connection::connect(addr)).await else { return false };
        let req = MetadataRequest::default().with_topics(Some(vec![]));
        matches!(tokio::time::timeout(Duration::from_secs(2), c.call(&req, 9)).await, Ok(Ok(resp)) if !resp.brokers.is_empty())
    })
}

/// A cluster id as `kafka-storage.sh random-uuid` prints one (never starting with `-`).
fn random_cluster_id() -> String {
    use base64::Engine;
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}
