//! Apache Kafka, the reference: KRaft clusters started from the jars that
//! `scripts/install-kafka.sh` puts in `.kafka/libs` (pinned in `scripts/kafka/pom.xml`), and
//! Kafka's own command-line tools.
//!
//! A cluster is one JVM per node (combined broker and controller), its data in a temporary
//! directory. Starting JVMs is the expensive part of the suite on two cores, so tests share
//! clusters where that is safe ([`shared`]: two single-node clusters, `a` and `b`, every test on
//! its own topics and groups); a test that kills nodes starts a cluster of its own.
//!
//! Ports: a listener Kafka binds on port 0 would get another port at every restart, and KRaft
//! voters must be named before they start, so each node gets free ports picked below the
//! kernel's ephemeral range (see [`free_port`]), and a node counts as started only when it
//! answers with its cluster's id.
//!
//! Nothing outlives the test process: every JVM runs under a watchdog shell that kills it
//! (and removes the cluster's directory) when the test process is gone, so a cluster held in a
//! `static` needs no destructor.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};


#[path = "../shared/kafka_jars.rs"]
mod jars;
pub use jars::{java, kafka_version};
use jars::{log4j2_xml, WATCHDOG};

/// Where the jars are (see [`jars::kafka_libs`]); a test without them cannot run.
pub fn kafka_libs() -> PathBuf {
    jars::kafka_libs().unwrap_or_else(|e| panic!("{e}"))
}

fn classpath() -> String {
    format!("{}/*", kafka_libs().display())
}

/// JVM flags for test nodes and tools: a small heap, one GC thread and the quick JIT tier, so
/// several JVMs share two cores without spending them on start-up compilation.
const JVM_FLAGS: &[&str] = &["-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-Djava.awt.headless=true"];

/// A free port on 127.0.0.1 below the kernel's ephemeral range. A port the kernel handed out
/// for `127.0.0.1:0` and that was released again could be handed to another test's listener
/// (every `tern broker` in the tests binds port 0) in the seconds before the JVM binds it; ports
/// below the range are never handed out that way.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let (low, high) = ephemeral_range();
    let below = low.saturating_sub(1).max(10_001);
    let span = below - 10_000;
    // Start somewhere that depends on the process, so two test runs side by side rarely probe
    // the same ports, then walk upwards.
    let offset = std::process::id() * 7919;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 10_000 + (offset.wrapping_add(n) % span) as u16;
        if (low..=high).contains(&u32::from(port)) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between 10000 and {below}");
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
fn ephemeral_range() -> (u32, u32) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = text.split_whitespace().filter_map(|v| v.parse().ok());
    match (it.next(), it.next()) {
        (Some(low), Some(high)) => (low, high),
        _ => (32_768, 60_999),
    }
}

/// One node of a cluster: combined KRaft broker and controller.
pub struct KafkaNode {
    pub id: i32,
    pub port: u16,
    /// Its `server.properties`, log and `data` directory.
    pub dir: PathBuf,
    watchdog: Option<std::process::Child>,
}

impl KafkaNode {
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pid")).ok()?.trim().parse().ok()
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// A KRaft cluster of one or three nodes.
pub struct KafkaCluster {
    pub nodes: Vec<KafkaNode>,
    root: PathBuf,
    cluster_id: String,
    /// How long the start took, for the README's figure.
    pub started_in: Duration,
}

impl KafkaCluster {
    /// Starts a cluster of `nodes` (1 or 3) and waits until every broker is registered.
    /// Blocking: call from `spawn_blocking` or a plain thread.
    pub fn start(nodes: usize) -> KafkaCluster {
        KafkaCluster::start_with(nodes, None)
    }

    /// A single node that tells clients to connect to `advertised` (a proxy in front of it)
    /// instead of its own port.
    pub fn start_advertising(advertised: &str) -> KafkaCluster {
        KafkaCluster::start_with(1, Some((1, advertised)))
    }

    /// A cluster of `nodes` whose node `id` tells clients and the other nodes to connect to
    /// `advertised` (a proxy in front of it).
    pub fn start_advertising_node(nodes: usize, id: i32, advertised: &str) -> KafkaCluster {
        KafkaCluster::start_with(nodes, Some((id, advertised)))
    }

    fn start_with(nodes: usize, advertised: Option<(i32, &str)>) -> KafkaCluster {
        let began = Instant::now();
        let root = tempfile::Builder::new().prefix("tern-kafka-").tempdir().expect("temp dir").keep();
        let ports: Vec<(u16, u16)> = (0..nodes).map(|_| (free_port(), free_port())).collect();
        let voters = ports.iter().enumerate().map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1)).collect::<Vec<_>>().join(",");
        let cluster_id = random_cluster_id();
        std::fs::write(root.join("log4j2.xml"), log4j2_xml("WARN")).expect("log4j2.xml");
        let rf = nodes.min(3);
        let min_isr = if nodes >= 3 { 2 } else { 1 };
        // Records are kept forever (`log.retention.ms=-1`): test data carries fixed timestamps
        // from 2025, which Kafka's default seven-day retention deletes at its first pass, 30 s
        // after start, under tests that run later.
        let mut cluster = KafkaCluster { nodes: Vec::new(), root: root.clone(), cluster_id: cluster_id.clone(), started_in: Duration::ZERO };
        for (i, (port, controller_port)) in ports.into_iter().enumerate() {
            let id = i as i32 + 1;
            let dir = root.join(format!("node-{id}"));
            std::fs::create_dir_all(dir.join("data")).expect("node dir");
            let props = format!(
                "process.roles=broker,controller\n\
                 node.id={id}\n\
                 controller.quorum.voters={voters}\n\
                 listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
                 advertised.listeners=PLAINTEXT://{advertised}\n\
                 controller.listener.names=CONTROLLER\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 log.dirs={data}\n\
                 num.partitions=1\n\
                 default.replication.factor={rf}\n\
                 min.insync.replicas={min_isr}\n\
                 offsets.topic.replication.factor={rf}\n\
                 offsets.topic.num.partitions=5\n\
                 transaction.state.log.replication.factor={rf}\n\
                 transaction.state.log.min.isr={min_isr}\n\
                 transaction.state.log.num.partitions=5\n\
                 share.coordinator.state.topic.replication.factor={rf}\n\
                 share.coordinator.state.topic.min.isr={min_isr}\n\
                 group.initial.rebalance.delay.ms=0\n\
                 broker.heartbeat.interval.ms=500\n\
                 broker.session.timeout.ms=3000\n\
                 auto.create.topics.enable=false\n\
                 log.cleaner.backoff.ms=500\n\
                 log.retention.check.interval.ms=1000\n\
                 log.retention.ms=-1\n\
                 num.network.threads=2\n\
                 num.io.threads=2\n\
                 num.recovery.threads.per.data.dir=1\n\
                 background.threads=2\n",
                data = dir.join("data").display(),
                advertised = advertised.filter(|(node, _)| *node == id).map_or_else(|| format!("127.0.0.1:{port}"), |(_, a)| a.to_string()),
            );
            std::fs::write(dir.join("server.properties"), props).expect("server.properties");
            cluster.nodes.push(KafkaNode { id, port, dir, watchdog: None });
        }
        // Format every node's storage (as kafka-storage.sh format does), in parallel.
        let formats: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| {
                let mut cmd = Command::new(java());
                cmd.args(JVM_FLAGS)
                    .arg(format!("-Dlog4j2.configurationFile={}", root.join("log4j2.xml").display()))
                    .arg("-cp")
                    .arg(classpath())
                    .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
                    .arg(n.dir.join("server.properties"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                cmd.spawn().expect("start kafka.tools.StorageTool")
            })
            .collect();
        for f in formats {
            let out = f.wait_with_output().expect("format");
            assert!(out.status.success(), "formatting Kafka storage failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        for i in 0..cluster.nodes.len() {
            cluster.launch(i);
        }
        cluster.wait_ready(Duration::from_secs(120));
        cluster.started_in = began.elapsed();
        println!("Apache Kafka {} cluster of {} node(s) ready in {:.1} s: {}", kafka_version(), nodes, cluster.started_in.as_secs_f64(), cluster.bootstrap());
        cluster
    }

    fn launch(&mut self, i: usize) {
        let root = self.root.clone();
        let node = &mut self.nodes[i];
        let _ = std::fs::remove_file(node.dir.join("pid"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(node.dir.join("server.log")).expect("server.log");
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("kafka-watchdog")
            .arg(std::process::id().to_string())
            .arg(&root)
            .arg(node.dir.join("pid"))
            .arg(java())
            .args(JVM_FLAGS)
            .arg("-Xmx512m")
            .arg(format!("-Dlog4j2.configurationFile={}", root.join("log4j2.xml").display()))
            .arg("-cp")
            .arg(classpath())
            .arg("kafka.Kafka")
            .arg(node.dir.join("server.properties"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        node.watchdog = Some(cmd.spawn().expect("start kafka.Kafka"));
    }

    /// Waits until every running node accepts connections and Metadata lists all of them.
    fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let want: Vec<i32> = self.nodes.iter().filter(|n| n.watchdog.is_some()).map(|n| n.id).collect();
        loop {
            // The node must answer as this cluster (its id), not as whatever else might
            // listen on the port.
            let ok = want.iter().all(|id| {
                let n = &self.nodes[(*id - 1) as usize];
                broker_ids(&n.address()).is_some_and(|(cluster, ids)| cluster == self.cluster_id && want.iter().all(|w| ids.contains(w)))
            });
            if ok {
                return;
            }
            for n in &self.nodes {
                if n.watchdog.is_some() && n.pid().is_some() && !n.is_running() {
                    panic!("Kafka node {} exited during start:\n{}", n.id, n.log_tail());
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self.nodes.iter().map(|n| format!("node {}:\n{}", n.id, n.log_tail())).collect();
                panic!("Kafka cluster not ready within {limit:?}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn bootstrap(&self) -> String {
        self.nodes.iter().map(KafkaNode::address).collect::<Vec<_>>().join(",")
    }

    /// kill -9 of one node's JVM; its data stays for [`KafkaCluster::restart_node`].
    pub fn kill_node(&mut self, id: i32) {
        let node = &mut self.nodes[(id - 1) as usize];
        if let Some(pid) = node.pid() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        if let Some(mut w) = node.watchdog.take() {
            let _ = w.wait();
        }
    }

    /// Starts a killed node again on the same ports and data, and waits until it is back.
    pub fn restart_node(&mut self, id: i32) {
        self.launch((id - 1) as usize);
        self.wait_ready(Duration::from_secs(120));
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(pid) = n.pid() {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
            if let Some(mut w) = n.watchdog.take() {
                let _ = w.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The cluster id and broker ids a node's Metadata lists, or `None` when it does not answer yet.
fn broker_ids(addr: &str) -> Option<(String, Vec<i32>)> {
    use kafka_protocol::messages::MetadataRequest;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    rt.block_on(async {
        let mut c = tokio::time::timeout(Duration::from_secs(2), tern_kafka::client::Connection::connect(addr)).await.ok()?.ok()?;
        let resp = tokio::time::timeout(Duration::from_secs(2), c.call(&MetadataRequest::default().with_topics(Some(vec![])), 9)).await.ok()?.ok()?;
        Some((resp.cluster_id.map(|c| c.to_string()).unwrap_or_default(), resp.brokers.iter().map(|b| b.node_id.0).collect()))
    })
}

/// A cluster id as `kafka-storage.sh random-uuid` prints one: 16 random bytes, URL-safe base64,
/// never starting with `-` (Kafka's `Uuid.randomUuid` draws again, since such an id reads as an
/// option on a command line).
fn random_cluster_id() -> String {
    use base64::Engine;
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// The clusters tests share: two single-node clusters, started once per test process (both
/// at the first call, in parallel).
pub struct Shared {
    pub a: KafkaCluster,
    pub b: KafkaCluster,
}

pub async fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    if let Some(s) = SHARED.get() {
        return s;
    }
    tokio::task::spawn_blocking(|| {
        SHARED.get_or_init(|| {
            let b = std::thread::spawn(|| KafkaCluster::start(1));
            let a = KafkaCluster::start(1);
            Shared { a, b: b.join().expect("cluster b") }
        })
    })
    .await
    .expect("shared Kafka clusters")
}

/// Runs one of Kafka's command-line tools (`class` as the `bin/*.sh` script runs it) and
/// returns its output; fails the test with the output when it fails or hangs.
pub async fn kafka_tool(class: &str, args: &[&str], timeout: Duration) -> Output {
    kafka_tool_with_input(class, args, b"", timeout).await
}

/// [`kafka_tool`] with `input` on the tool's standard input.
pub async fn kafka_tool_with_input(class: &str, args: &[&str], input: &[u8], timeout: Duration) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(java());
    cmd.args(JVM_FLAGS)
        .arg("-Xmx256m")
        .arg("-Dlog4j2.configurationFile=".to_string() + &log4j2_file().display().to_string())
        .arg("-cp")
        .arg(classpath())
        .arg(class)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = format!("{class} {}", args.join(" "));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).await.expect("write the tool's input");
    drop(stdin);
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{shown} did not finish within {timeout:?}"))
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    println!("--- {shown}\n{}\n--- stderr\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{shown} failed ({}):\n{}\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn log4j2_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("tern-kafka-tools-log4j2-{}.xml", std::process::id()));
        std::fs::write(&p, log4j2_xml("WARN")).expect("log4j2.xml");
        p
    })
    .clone()
}
