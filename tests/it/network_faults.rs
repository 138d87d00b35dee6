//! Network faults between a worker and its target cluster, on both cluster kinds:
//! - a partition of 60 s: nftables drops every packet of the worker's connections to the
//!   target, both ways, while a producer keeps writing to the source; replication resumes by
//!   itself after the heal and the copy is exact;
//! - a userspace proxy in front of the target that adds 50 ms each way (100 ms round trip) and
//!   resets the connection on 1% of requests, half before forwarding the request and half after
//!   the target answered it (so the target wrote a batch the worker never hears about): nothing
//!   is lost and nothing is written twice.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::Compression;
use tokio::net::{TcpListener, TcpStream};
use tern_kafka::client::{Client, ClientConfig};
use tokio::sync::mpsc;

use crate::apache_kafka::KafkaCluster;
use crate::clusters::*;
use crate::drills::{end, now_ms};
use crate::helpers::*;
use crate::idempotence::{read_frame, write_frame};
use crate::dashboard::parse_prometheus;
use crate::mirror::Aliases;
use crate::reload::{body, config, json, OneFlow, Run};

/// A group id of the test's own for the worker's process, so nftables can tell its packets
/// from everyone else's (the test process, other tests' workers, the shared clusters).
fn next_group() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    42_420 + NEXT.fetch_add(1, Ordering::Relaxed)
}

fn nft(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft (Debian's nftables)");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("nft input");
    child.wait_with_output().expect("nft")
}

/// A network partition between the processes of one group and one TCP port: every packet of
/// their connections is dropped, both ways, without a reset, as a cut link does. Connections
/// that exist when it starts are cut too (their conntrack entry gets the mark). Healed on drop.
struct Cut {
    table: String,
}

impl Cut {
    fn start(group: u32, port: u16) -> Cut {
        let table = format!("tern_cut_{group}");
        let rules = format!(
            "table inet {table} {{\n\
               chain out {{\n\
                 type filter hook output priority 0; policy accept;\n\
                 meta skgid {group} tcp dport {port} ct mark set {group}\n\
                 ct mark {group} drop\n\
               }}\n\
               chain in {{\n\
                 type filter hook input priority 0; policy accept;\n\
                 ct mark {group} drop\n\
               }}\n\
             }}\n"
        );
        let out = nft(&["-f", "-"], &rules);
        assert!(out.status.success(), "nft refused the partition's rules: {}", String::from_utf8_lossy(&out.stderr));
        Cut { table }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let out = nft(&["delete", "table", "inet", &self.table], "");
        if !out.status.success() && !std::thread::panicking() {
            panic!("nft could not remove {}: {}", self.table, String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn port_of(bootstrap: &str) -> u16 {
    bootstrap.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {bootstrap}"))
}

/// Writes `batch` records to each of `partitions` partitions of `topic` every `pause` until
/// `on` is cleared; returns how many records it wrote. Values are unique, so a record written
/// twice on the target shows.
fn steady_producer(bootstrap: String, topic: String, partitions: i32, batch: usize, pause: Duration, on: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let c = tern_kafka::client::Client::connect(tern_kafka::client::ClientConfig::new(&bootstrap)).await.expect("client");
        let (mut round, mut written) = (0usize, 0usize);
        while on.load(Ordering::Relaxed) {
            for p in 0..partitions {
                c.produce(&topic, p, crate::helpers::batch(&format!("r{round}-p{p}"), batch, now_ms(), Compression::None), -1, 5000).await.expect("produce to the source");
                written += batch;
            }
            round += 1;
            tokio::time::sleep(pause).await;
        }
        written
    })
}

/// Waits until every partition of `remote` on the target ends at or past where `topic` ends on
/// the source (past it: records written twice, which [`assert_exact_copy`] then names).
async fn wait_reached(source: &Client, target: &Client, topic: &str, remote: &str, partitions: i32) {
    wait_until(Duration::from_secs(120), &format!("{remote} to reach the end of {topic}"), async || {
        for p in 0..partitions {
            if end(target, remote, p).await < end(source, topic, p).await {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Every partition of the remote topic holds exactly the source's records, in order.
async fn assert_exact_copy(src: &TestCluster, dst: &TestCluster, topic: &str, remote: &str, partitions: i32) -> usize {
    let (source, target) = (src.client().await, dst.client().await);
    let mut total = 0;
    for p in 0..partitions {
        let want = read_partition(&source, topic, p).await;
        let got = read_partition(&target, remote, p).await;
        let values: HashSet<_> = got.iter().map(|r| r.1.clone()).collect();
        assert_eq!(values.len(), got.len(), "partition {p}: {} records on the target are copies of others", got.len() - values.len());
        assert!(got == want, "partition {p}: {} records on the source, {} on the target; first difference at {:?}", want.len(), got.len(), got.iter().zip(&want).position(|(a, b)| a != b));
        total += got.len();
    }
    total
}

/// Errors the flow's API shows: the flow's own and every partition's.
async fn flow_errors(web: &str, api_path: &str) -> Vec<String> {
    let f = json(web, api_path).await;
    let mut errors: Vec<String> = f["errors"].as_array().into_iter().flatten().filter_map(|e| e.as_str().map(String::from)).collect();
    errors.extend(f["partitions"].as_array().into_iter().flatten().filter_map(|p| p["error"].as_str().filter(|e| !e.is_empty()).map(String::from)));
    errors
}

/// Which of a worker's clusters a partition cuts it from.
#[derive(Debug, Clone, Copy)]
enum Far {
    Source,
    Target,
}

async fn a_partition_for_60_s_heals_by_itself(kind: Kind, far: Far) {
    let partitions = 2;
    let f = OneFlow::start(kind, kind, "cut", partitions).await;
    let group = next_group();
    let regid = group.to_string();
    let run = Run::start_wrapped(&f.path, &["setpriv", "--regid", &regid, "--clear-groups"], &[]);
    let web = run.dashboard().await;

    // Ten records a second per partition, from before the cut until after the heal.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = steady_producer(f.src.bootstrap(), f.topic.clone(), partitions, 1, Duration::from_millis(100), producing.clone());
    wait_until(Duration::from_secs(60), "the flow to replicate", async || (end(&f.target, &f.remote, 0).await > 10).then_some(())).await;

    let cut = Cut::start(group, port_of(&match far {
        Far::Source => f.src.bootstrap(),
        Far::Target => f.dst.bootstrap(),
    }));
    let cut_at = Instant::now();
    // What was in flight lands or fails within a moment; from then on the target stands still.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ends = async || {
        let mut v = Vec::new();
        for p in 0..partitions {
            v.push(end(&f.target, &f.remote, p).await);
        }
        v
    };
    let frozen = ends().await;
    let source_at_cut: i64 = {
        let mut n = 0;
        for p in 0..partitions {
            n += end(&f.source, &f.topic, p).await;
        }
        n
    };
    let mut shown: Option<String> = None;
    while cut_at.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(ends().await, frozen, "the target grew during the partition: the cut does not hold");
        if shown.is_none() {
            shown = flow_errors(&web, &f.api_path).await.into_iter().next();
        }
    }
    let mut source_at_heal = 0;
    for p in 0..partitions {
        source_at_heal += end(&f.source, &f.topic, p).await;
    }
    drop(cut);
    let healed_at = Instant::now();
    let shown = shown.unwrap_or_else(|| panic!("60 s without the target showed no error on the flow's API:\n{}", run.all()));

    wait_until(Duration::from_secs(120), "replication to resume after the heal", async || (ends().await != frozen).then_some(())).await;
    let resumed_in = healed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    producing.store(false, Ordering::Relaxed);
    let written = producer.await.expect("producer");
    wait_reached(&f.source, &f.target, &f.topic, &f.remote, partitions).await;
    let copied = assert_exact_copy(&f.src, &f.dst, &f.topic, &f.remote, partitions).await;
    assert_eq!(copied, written, "every record written to the source is on the target once");
    wait_until(Duration::from_secs(30), "the flow's errors to clear", async || flow_errors(&web, &f.api_path).await.is_empty().then_some(())).await;
    // Cut from the source, the worker's heartbeats go unanswered: it stops producing before its
    // session could expire, and says so.
    let fenced = run.lines("before the group may give them to another worker");
    match far {
        Far::Source => assert!(fenced.iter().any(|l| l.contains("no heartbeat answered")), "no fence in the log:\n{}", run.all()),
        Far::Target => assert!(fenced.is_empty(), "the group session was lost though the source was reachable:\n{}", run.all()),
    }
    println!(
        "{kind:?}: a 60 s partition from the {far:?}; {} records written to the source meanwhile; the flow showed \"{shown}\"; \
         replication resumed {:.1} s after the heal; {copied} records copied exactly ({written} written)",
        source_at_heal - source_at_cut,
        resumed_in.as_secs_f64()
    );
}

async fn a_partition_from_the_target_for_60_s_heals_by_itself(kind: Kind) {
    a_partition_for_60_s_heals_by_itself(kind, Far::Target).await
}

async fn a_partition_from_the_source_for_60_s_heals_by_itself(kind: Kind) {
    a_partition_for_60_s_heals_by_itself(kind, Far::Source).await
}

over_kinds!(a_partition_from_the_target_for_60_s_heals_by_itself {
    tern_a_partition_from_the_target_for_60_s_heals_by_itself: (Tern);
    kafka_a_partition_from_the_target_for_60_s_heals_by_itself: (Kafka);
});

over_kinds!(a_partition_from_the_source_for_60_s_heals_by_itself {
    tern_a_partition_from_the_source_for_60_s_heals_by_itself: (Tern);
    kafka_a_partition_from_the_source_for_60_s_heals_by_itself: (Kafka);
});

/// What the proxy did.
#[derive(Default)]
struct Faults {
    /// Cleared to pass everything (with the delay) for the final reads.
    on: AtomicBool,
    /// How long every frame waits in each direction, in milliseconds.
    delay_ms: AtomicU64,
    /// With this api key set, only the answers to its requests wait, `delay_ms` in all.
    delay_only: Option<i16>,
    /// With this set too, only the answers to requests from this client id wait.
    only_client: Option<String>,
    /// Answers that waited under `delay_only`.
    answers_delayed: AtomicUsize,
    requests: AtomicUsize,
    produce_requests: AtomicUsize,
    /// Connections reset instead of forwarding a request.
    reset_before: AtomicUsize,
    /// Connections reset instead of returning a response the target had written.
    reset_after: AtomicUsize,
    /// Of those, answers to produce requests: batches the target wrote and the worker never
    /// heard about.
    produce_answers_lost: AtomicUsize,
    /// Instead of one request in a hundred: only the answer to the n-th produce request naming
    /// this topic is lost.
    lose_answer_to: Option<(Vec<u8>, usize)>,
    /// Produce requests naming that topic, and how many of them the proxy had seen when the
    /// answer was lost.
    topic_produces: AtomicUsize,
    sent_when_lost: AtomicUsize,
    /// With this set: connections that carried a fetch request from this client id are counted
    /// in `fetch_connections`.
    count_fetches_of: Option<String>,
    fetch_connections: AtomicUsize,
    /// The same for produce requests: connections that carried one from this client id to
    /// this topic.
    count_produces_of: Option<(String, String)>,
    produce_connections: AtomicUsize,
    /// With this set: every produce request from this client id that writes this topic, as the
    /// partitions of the topic it carries, in the order it names them.
    list_partitions_of: Option<(String, String)>,
    produce_partitions: Mutex<Vec<Vec<i32>>>,
}

/// The partitions of `topic` a produce request frame (size prefix removed) writes, decoded as
/// a broker decodes it; `None` when it writes none of them.
fn produced_partitions(frame: &[u8], topic: &str) -> Option<Vec<i32>> {
    use kafka_protocol::messages::{ApiKey, RequestKind};
    let mut rest = Bytes::copy_from_slice(frame);
    let header = tern_kafka::frame::decode_request_header(ApiKey::Produce, &mut rest).ok()?;
    let RequestKind::Produce(request) = tern_kafka::frame::decode_request_body(ApiKey::Produce, header.request_api_version, &mut rest).ok()? else {
        return None;
    };
    let indexes: Vec<i32> = request.topic_data.iter().filter(|t| t.name.0.as_str() == topic).flat_map(|t| t.partition_data.iter().map(|p| p.index)).collect();
    (!indexes.is_empty()).then_some(indexes)
}

/// Whether a request frame names `topic` as a produce request writes it (a compact or a
/// classic string), not as it may appear inside records (keys carry zigzag lengths).
fn names(frame: &[u8], topic: &[u8]) -> bool {
    let compact: Vec<u8> = [&[topic.len() as u8 + 1][..], topic].concat();
    let classic: Vec<u8> = [&(topic.len() as i16).to_be_bytes()[..], topic].concat();
    [compact, classic].iter().any(|p| frame.windows(p.len()).any(|w| w == p.as_slice()))
}

/// What the proxy does with a request.
enum Fault {
    Pass,
    /// Reset the connections instead of forwarding it.
    ResetBefore,
    /// Forward it, and reset the connections instead of returning the answer.
    ResetAfter,
}

impl Faults {
    fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))
    }

    fn decide(&self, api_key: i16, frame: &[u8]) -> Fault {
        if !self.on.load(Ordering::SeqCst) {
            return Fault::Pass;
        }
        if let Some((topic, nth)) = &self.lose_answer_to {
            let names_topic = api_key == 0 && names(frame, topic);
            let n = if names_topic { self.topic_produces.fetch_add(1, Ordering::SeqCst) + 1 } else { 0 };
            return if n == *nth { Fault::ResetAfter } else { Fault::Pass };
        }
        let counter = if api_key == 0 { &self.produce_requests } else { &self.requests };
        match (counter.fetch_add(1, Ordering::SeqCst) + 1) % 100 {
            50 => Fault::ResetBefore,
            0 => Fault::ResetAfter,
            _ => Fault::Pass,
        }
    }
}

/// A frame-aware TCP proxy: every frame waits `delay` in each direction (ordered, pipelined:
/// a delay, not a bandwidth limit), and one request in every hundred of each kind (produce,
/// other) resets both connections, alternately before it reaches the target and after the
/// target answered it.
struct FaultyProxy {
    faults: Arc<Faults>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    fn spawn(listener: TcpListener, upstream: SocketAddr, delay: Duration) -> FaultyProxy {
        FaultyProxy::spawn_with(listener, upstream, delay, Faults { on: AtomicBool::new(true), ..Faults::default() })
    }

    fn spawn_with(listener: TcpListener, upstream: SocketAddr, delay: Duration, faults: Faults) -> FaultyProxy {
        faults.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
        let faults = Arc::new(faults);
        let f = faults.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(target) = TcpStream::connect(upstream).await else { continue };
                let f = f.clone();
                tokio::spawn(async move {
                    let _ = proxy_connection(client, target, f).await;
                });
            }
        });
        FaultyProxy { faults, task }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The client id of a request frame (size prefix removed): a nullable string after the api
/// key, version and correlation id in every request header version.
fn client_id(frame: &[u8]) -> Option<&[u8]> {
    let len = i16::from_be_bytes([*frame.get(8)?, *frame.get(9)?]);
    frame.get(10..10 + usize::try_from(len).ok()?)
}

/// Delivers frames in order, each no earlier than its time.
async fn deliver(mut frames: mpsc::UnboundedReceiver<(tokio::time::Instant, Vec<u8>)>, mut to: tokio::net::tcp::OwnedWriteHalf) -> std::io::Result<()> {
    while let Some((at, frame)) = frames.recv().await {
        tokio::time::sleep_until(at).await;
        write_frame(&mut to, &frame).await?;
    }
    Ok(())
}

async fn proxy_connection(client: TcpStream, target: TcpStream, faults: Arc<Faults>) -> std::io::Result<()> {
    // Closing either socket sends a reset, not a FIN.
    client.set_zero_linger()?;
    target.set_zero_linger()?;
    client.set_nodelay(true)?;
    target.set_nodelay(true)?;
    let (mut client_read, client_write) = client.into_split();
    let (mut target_read, target_write) = target.into_split();
    let (to_target, for_target) = mpsc::unbounded_channel();
    let (to_client, for_client) = mpsc::unbounded_channel();
    // Correlation id -> api key of the requests whose answers are dropped.
    let doomed: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
    // Correlation ids of the requests whose answers alone wait.
    let slowed: Arc<Mutex<HashSet<i32>>> = Arc::default();
    let (marks, f, slow) = (doomed.clone(), faults.clone(), slowed.clone());
    let requests = async move {
        let (mut fetched, mut produced) = (false, false);
        loop {
            let frame = read_frame(&mut client_read).await?;
            let (api_key, correlation_id) = (i16::from_be_bytes([frame[0], frame[1]]), i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]));
            if api_key == 1 && !fetched && f.count_fetches_of.as_deref().is_some_and(|c| client_id(&frame) == Some(c.as_bytes())) {
                fetched = true;
                f.fetch_connections.fetch_add(1, Ordering::SeqCst);
            }
            if api_key == 0 && !produced && f.count_produces_of.as_ref().is_some_and(|(c, topic)| client_id(&frame) == Some(c.as_bytes()) && names(&frame, topic.as_bytes())) {
                produced = true;
                f.produce_connections.fetch_add(1, Ordering::SeqCst);
            }
            if let Some((_, topic)) = f.list_partitions_of.as_ref().filter(|(c, _)| api_key == 0 && client_id(&frame) == Some(c.as_bytes())) {
                if let Some(partitions) = produced_partitions(&frame, topic) {
                    f.produce_partitions.lock().expect("lock").push(partitions);
                }
            }
            match f.decide(api_key, &frame) {
                Fault::Pass => {}
                Fault::ResetBefore => {
                    f.reset_before.fetch_add(1, Ordering::SeqCst);
                    return Ok::<(), std::io::Error>(());
                }
                Fault::ResetAfter => _ = marks.lock().expect("lock").insert(correlation_id, api_key),
            }
            let delay = match f.delay_only {
                Some(key) => {
                    if key == api_key && f.only_client.as_deref().is_none_or(|c| client_id(&frame) == Some(c.as_bytes())) {
                        slow.lock().expect("lock").insert(correlation_id);
                    }
                    Duration::ZERO
                }
                None => f.delay(),
            };
            let _ = to_target.send((tokio::time::Instant::now() + delay, frame));
        }
    };
    let responses = async move {
        loop {
            let frame = read_frame(&mut target_read).await?;
            let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            if let Some(api_key) = doomed.lock().expect("lock").remove(&correlation_id) {
                faults.reset_after.fetch_add(1, Ordering::SeqCst);
                if api_key == 0 {
                    faults.produce_answers_lost.fetch_add(1, Ordering::SeqCst);
                    faults.sent_when_lost.store(faults.topic_produces.load(Ordering::SeqCst), Ordering::SeqCst);
                }
                return Ok::<(), std::io::Error>(());
            }
            let delay = match faults.delay_only {
                Some(_) if slowed.lock().expect("lock").remove(&correlation_id) => {
                    faults.answers_delayed.fetch_add(1, Ordering::SeqCst);
                    faults.delay()
                }
                Some(_) => Duration::ZERO,
                None => faults.delay(),
            };
            let _ = to_client.send((tokio::time::Instant::now() + delay, frame));
        }
    };
    tokio::select! {
        r = requests => r,
        r = responses => r,
        r = deliver(for_target, target_write) => r,
        r = deliver(for_client, client_write) => r,
    }
}

/// A cluster that tells clients to connect to `proxy` (so every connection after the
/// bootstrap goes through it), and its own address for the proxy to forward to. For Apache
/// Kafka a cluster of the test's own.
async fn cluster_behind(kind: Kind, proxy: &str) -> (TestCluster, SocketAddr) {
    match kind {
        Kind::Tern => {
            let b = TestBroker::start_with(|c| c.advertised = Some(proxy.to_string())).await;
            let addr = b.broker.as_ref().expect("running").addr;
            (TestCluster::Tern(b), addr)
        }
        Kind::Kafka => {
            let advertised = proxy.to_string();
            let k = tokio::task::spawn_blocking(move || KafkaCluster::start_advertising(&advertised)).await.expect("Kafka cluster");
            let addr = k.nodes[0].address().parse().expect("node address");
            (TestCluster::OwnKafka(Box::new(k)), addr)
        }
    }
}

/// A flow's clusters for a proxy test: the source, the target behind a frame-aware proxy (it
/// advertises the proxy, so every connection after the bootstrap goes through it), the flow's
/// aliases and a topic of the test's own.
struct Proxied {
    src: TestCluster,
    dst: TestCluster,
    proxy: FaultyProxy,
    proxy_addr: String,
    /// The source's and the target's aliases.
    a: String,
    b: String,
    topic: String,
    remote: String,
}

/// [`Proxied`], the proxy's faults made from the target's alias and the remote topic.
async fn source_and_proxied_target(kind: Kind, topic: &str, delay: Duration, faults: impl FnOnce(&str, &str) -> Faults) -> Proxied {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let proxy_addr = listener.local_addr().expect("proxy address").to_string();
    let src = TestCluster::start(kind, Side::A).await;
    let (dst, upstream) = cluster_behind(kind, &proxy_addr).await;
    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let topic = unique_topic(topic);
    let remote = format!("{a}.{topic}");
    let proxy = FaultyProxy::spawn_with(listener, upstream, delay, faults(&b, &remote));
    Proxied { src, dst, proxy, proxy_addr, a, b, topic, remote }
}

/// A client of a cluster behind the faulty proxy: its bootstrap may meet a reset, and is retried.
async fn client_through_faults(cluster: &TestCluster) -> Client {
    for _ in 0..20 {
        match Client::connect(ClientConfig::new(&cluster.bootstrap())).await {
            Ok(c) => return c,
            Err(e) => eprintln!("connecting through the proxy: {e}; retrying"),
        }
    }
    panic!("20 connections to {} through the proxy all failed", cluster.bootstrap())
}

async fn through_a_slow_resetting_proxy_nothing_is_lost_or_written_twice(kind: Kind) {
    let partitions = 4;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let proxy_addr = listener.local_addr().expect("proxy address").to_string();
    let src = TestCluster::start(kind, Side::A).await;
    let (dst, upstream) = cluster_behind(kind, &proxy_addr).await;
    let proxy = FaultyProxy::spawn(listener, upstream, Duration::from_millis(50));
    let faults = proxy.faults.clone();

    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let topic = unique_topic("proxied");
    let remote = format!("{a}.{topic}");
    src.create_topic(&topic, partitions, &[]).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    std::fs::write(&path, config(&a, &src.bootstrap(), &b, &proxy_addr, &[(&a, &b, &topic)])).expect("config");
    let run = Run::start(&path);

    // About 1,500 records a second for 40 s, in batches of 25 per partition.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = steady_producer(src.bootstrap(), topic.clone(), partitions, 25, Duration::from_millis(50), producing.clone());
    tokio::time::sleep(Duration::from_secs(40)).await;
    producing.store(false, Ordering::Relaxed);
    let written = producer.await.expect("producer");
    // Faults stay on while the worker catches up; the test's own reads of the target go
    // through the proxy too and simply retry.
    let (source, target) = (src.client().await, client_through_faults(&dst).await);
    wait_reached(&source, &target, &topic, &remote, partitions).await;
    faults.on.store(false, Ordering::SeqCst);
    let copied = assert_exact_copy(&src, &dst, &topic, &remote, partitions).await;
    assert_eq!(copied, written, "every record written to the source is on the target once");

    let (before, after, produce_lost) = (faults.reset_before.load(Ordering::SeqCst), faults.reset_after.load(Ordering::SeqCst), faults.produce_answers_lost.load(Ordering::SeqCst));
    let (produces, others) = (faults.produce_requests.load(Ordering::SeqCst), faults.requests.load(Ordering::SeqCst));
    println!(
        "{kind:?}: {written} records through a proxy with 100 ms round trip; {produces} produce and {others} other requests; \
         {before} connections reset before a request, {after} after an answer ({produce_lost} of them produce answers); \
         {copied} records on the target, each once, in order"
    );
    assert!(before >= 3 && after >= 3, "too few faults to mean anything: {before} resets before a request, {after} after an answer");
    assert!(produce_lost >= 2, "only {produce_lost} produce answers were lost: the worker's retries of written batches were not exercised");
    assert!(run.lines("panicked").is_empty(), "{}", run.all());
}

over_kinds!(through_a_slow_resetting_proxy_nothing_is_lost_or_written_twice {
    tern_through_a_slow_resetting_proxy_nothing_is_lost_or_written_twice: (Tern);
    kafka_through_a_slow_resetting_proxy_nothing_is_lost_or_written_twice: (Kafka);
});

/// A failed-over flow whose target (and with it the control topic) stops answering: the
/// running worker keeps the last decision it read, a worker started during the cut has read
/// none, and neither fetches from the source (no member in the flow's group, no new commit);
/// after the heal both follow the decision and the target has nothing new.
async fn a_failed_over_flow_stays_stopped_while_its_decisions_are_unreachable(kind: Kind) {
    let f = OneFlow::start(kind, kind, "cut-failed-over", 1).await;
    f.source.produce(&f.topic, 0, crate::helpers::batch("before", 10, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    let group = next_group();
    let regid = group.to_string();
    let setpriv = ["setpriv", "--regid", &regid, "--clear-groups"];
    let first = Run::start_wrapped(&f.path, &setpriv, &[]);
    let web = first.dashboard().await;
    wait_until(Duration::from_secs(60), "the records on the target", async || (end(&f.target, &f.remote, 0).await == 10).then_some(())).await;
    let (code, said) = crate::drills::tern(&["failover", "--config", f.path.to_str().expect("path"), "--flow", &f.flow, "--planned", "--timeout", "30s"]);
    assert_eq!(code, 0, "{said}");
    wait_until(Duration::from_secs(30), "the worker to follow the failover", async || (json(&web, &f.api_path).await["failover_state"] == "failed-over").then_some(())).await;

    let cut = Cut::start(group, port_of(&f.dst.bootstrap()));
    f.source.produce(&f.topic, 0, crate::helpers::batch("after", 10, now_ms(), Compression::None), -1, 5000).await.expect("produce");
    let second = Run::start_wrapped(&f.path, &setpriv, &[]);
    let web2 = second.dashboard().await;
    let flow_group = format!("tern.{}.{}", f.a, f.b);
    let cut_at = Instant::now();
    while cut_at.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let members = f.source.describe_group(&flow_group).await.expect("describe the flow's group").members;
        assert_eq!(members, 0, "a worker joined the failed-over flow's group while its decisions were unreachable");
        let committed = f.source.all_committed_offsets(&flow_group).await.expect("offsets");
        assert_eq!(committed.get(&(f.topic.clone(), 0)), Some(&10), "a worker committed a position while the flow was failed over");
    }
    assert_eq!(json(&web, &f.api_path).await["failover_state"], "failed-over", "the running worker keeps the last decision it read");
    let second_state = json(&web2, &f.api_path).await;
    assert_eq!(second_state["decisions_read"], false, "{second_state}");
    assert!(second_state["health"] == "unknown" || second_state["health"] == "error", "a worker that read no decision is not shown healthy: {second_state}");
    let ready = http_get(&web2, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "a worker that read no decision is not ready: {ready}");
    drop(cut);
    for web in [&web, &web2] {
        wait_until(Duration::from_secs(90), "the workers to read the decision after the heal", async || (json(web, &f.api_path).await["failover_state"] == "failed-over").then_some(())).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(end(&f.target, &f.remote, 0).await, 10, "a failed-over flow copies nothing");
    assert_eq!(f.source.describe_group(&flow_group).await.expect("group").members, 0);
    println!(
        "{kind:?}: 20 s without the target while failed over: no fetch, no commit; the worker started during the cut showed health {} and errors {}",
        second_state["health"], second_state["errors"]
    );
    for run in [&first, &second] {
        assert!(!run.all().contains("panicked"), "{}", run.all());
    }
}

/// A cluster 100 ms away (a proxy adds 50 ms each way, faults off) that is the flow's source
/// and its target: the worker times both round trips when the flow starts and, with
/// `fetch_connections` and `produce_connections` left at "auto", fetches from each source
/// broker and produces to each target broker over one connection per 6.25 ms of it (16 at
/// 100 ms), so each connection's window carries a share of the partitions. The proxy counts
/// the connections the worker's fetches and produce requests came on, and the copy is exact.
async fn a_cluster_across_a_long_link_is_fetched_and_produced_over_several_connections(kind: Kind) {
    let partitions = 16;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let proxy_addr = listener.local_addr().expect("proxy address").to_string();
    let (src, upstream) = cluster_behind(kind, &proxy_addr).await;
    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let topic = unique_topic("long-link");
    let remote = format!("{a}.{topic}");
    let faults = Faults { count_fetches_of: Some(format!("tern-{a}")), count_produces_of: Some((format!("tern-{b}"), remote.clone())), ..Faults::default() };
    let proxy = FaultyProxy::spawn_with(listener, upstream, Duration::from_millis(50), faults);
    src.create_topic(&topic, partitions, &[]).await;
    let source = src.client().await;
    for p in 0..partitions {
        for i in 0..5 {
            source.produce(&topic, p, crate::helpers::batch(&format!("p{p}-{i}"), 200, now_ms(), Compression::Lz4), -1, 5000).await.expect("produce");
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    std::fs::write(&path, config(&a, &proxy_addr, &b, &proxy_addr, &[(&a, &b, &topic)])).expect("config");
    let run = Run::start(&path);
    let web = run.dashboard().await;
    wait_reached(&source, &source, &topic, &remote, partitions).await;
    let copied = assert_exact_copy(&src, &src, &topic, &remote, partitions).await;
    assert_eq!(copied, partitions as usize * 5 * 200);
    // The dashboard says it too: the API, and the flow's page.
    let api_path = format!("/api/v1/flows/{a}-%3E{b}");
    let flow = json(&web, &api_path).await;
    assert_eq!((&flow["fetch_connections"], &flow["produce_connections"]), (&16.into(), &16.into()), "{flow}");
    let page = http_get(&web, &format!("/flows/{a}-%3E{b}")).await;
    for (side, field) in [("source", "source_round_trip_ms"), ("target", "target_round_trip_ms")] {
        let rtt = flow[field].as_u64().unwrap_or_else(|| panic!("no {side} round trip in {flow}"));
        assert!((100..1000).contains(&rtt), "a {side} round trip of {rtt} ms through a 100 ms proxy");
        let id = if side == "source" { "flow-link" } else { "flow-target-link" };
        assert!(page.contains(&format!("<dd id=\"{id}\">{rtt} ms round trip, 16 connection(s) per broker")), "the flow page does not show the {side} link:\n{page}");
    }
    // And the worker's membership of the flow's group: joined, no session lost.
    assert!(flow["group_generation"].as_i64().is_some_and(|g| g >= 1) && flow["group_joins"].as_u64().is_some_and(|n| n >= 1) && flow["group_sessions_lost"] == 0, "{flow}");
    assert!(page.contains(&format!("generation {}; joined {} time(s), session lost 0 time(s)", flow["group_generation"], flow["group_joins"])), "the flow page does not show the group:\n{page}");
    let metrics = parse_prometheus(body(&http_get(&web, "/metrics").await));
    let joins = metrics.iter().find(|m| m.name == "tern_flow_group_joins_total").map(|m| m.value);
    let lost = metrics.iter().find(|m| m.name == "tern_flow_group_sessions_lost_total").map(|m| m.value);
    assert_eq!((joins, lost), (flow["group_joins"].as_f64(), Some(0.0)), "group joins and lost sessions in /metrics");
    let chosen = |what: String| {
        let said = run.lines(&what);
        let line = said.first().cloned().unwrap_or_else(|| panic!("the worker did not say \"{what} N connection(s)\":\n{}", run.all()));
        let lanes: usize = line.split(" over ").nth(1).and_then(|w| w.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no count in {line:?}"));
        (line, lanes)
    };
    let ((fetch_line, fetch_lanes), (produce_line, produce_lanes)) = (chosen(format!("fetching from {a} over")), chosen(format!("producing to {b} over")));
    let fetched_on = proxy.faults.fetch_connections.load(Ordering::SeqCst);
    let produced_on = proxy.faults.produce_connections.load(Ordering::SeqCst);
    println!("{kind:?}: a cluster 100 ms away; the worker said {fetch_line:?} and {produce_line:?}; its fetches came on {fetched_on} connections and its produce requests for {remote} on {produced_on}; {copied} records copied, each once");
    assert_eq!((fetch_lanes, produce_lanes), (16, 16), "a 100 ms round trip calls for 16 connections each way");
    assert_eq!(fetched_on, fetch_lanes, "the worker's fetches came on {fetched_on} connections, not the {fetch_lanes} it chose");
    assert_eq!(produced_on, produce_lanes, "the worker's produce requests came on {produced_on} connections, not the {produce_lanes} it chose");
    assert!(run.lines("panicked").is_empty(), "{}", run.all());
}

/// The batches of many partitions led by one target broker share produce requests, one batch
/// per partition in each (Kafka takes one batch per partition in a request): a proxy in front
/// of the target, passing everything at once, decodes every produce request the worker writes
/// to the remote topic. 64 partitions of 4 batches each are copied exactly, in at most a
/// quarter as many requests as batches (a request per partition and batch before), and no
/// request names a partition twice.
async fn batches_of_many_partitions_share_produce_requests(kind: Kind) {
    const PARTITIONS: i32 = 64;
    const BATCHES: usize = 4;
    let Proxied { src, dst, proxy, proxy_addr, a, b, topic, remote } =
        source_and_proxied_target(kind, "shared-requests", Duration::ZERO, |b, remote| Faults { list_partitions_of: Some((format!("tern-{b}"), remote.to_string())), ..Faults::default() }).await;
    src.create_topic(&topic, PARTITIONS, &[]).await;
    // The remote topic exists before the worker starts: a topic Kafka has only just created
    // answers its first produce requests NOT_LEADER_OR_FOLLOWER for a moment, and partitions
    // retried at their own times go in requests of their own.
    dst.create_topic(&remote, PARTITIONS, &[]).await;
    let source = src.client().await;
    for i in 0..BATCHES {
        for p in 0..PARTITIONS {
            source.produce(&topic, p, crate::helpers::batch(&format!("p{p}-{i}"), 50, now_ms(), Compression::Lz4), -1, 5000).await.expect("produce");
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    std::fs::write(&path, config(&a, &src.bootstrap(), &b, &proxy_addr, &[(&a, &b, &topic)])).expect("config");
    let run = Run::start(&path);
    let target = dst.client().await;
    wait_reached(&source, &target, &topic, &remote, PARTITIONS).await;
    let copied = assert_exact_copy(&src, &dst, &topic, &remote, PARTITIONS).await;
    assert_eq!(copied, PARTITIONS as usize * BATCHES * 50);
    let requests = proxy.faults.produce_partitions.lock().expect("lock").clone();
    let batches = PARTITIONS as usize * BATCHES;
    let carried: usize = requests.iter().map(Vec::len).sum();
    let most = requests.iter().map(Vec::len).max().unwrap_or(0);
    println!("{kind:?}: {batches} batches of {PARTITIONS} partitions written in {} produce requests ({carried} partition shares, at most {most} partitions in one)", requests.len());
    for partitions in &requests {
        let distinct: HashSet<&i32> = partitions.iter().collect();
        assert_eq!(distinct.len(), partitions.len(), "a request names a partition twice: {partitions:?}");
    }
    assert!(carried >= batches, "{carried} partition shares for {batches} batches");
    assert!(requests.len() <= batches / 4, "{} produce requests for {batches} batches", requests.len());
    assert!(run.lines("panicked").is_empty(), "{}", run.all());
}

over_kinds!(batches_of_many_partitions_share_produce_requests {
    tern_batches_of_many_partitions_share_produce_requests: (Tern);
    kafka_batches_of_many_partitions_share_produce_requests: (Kafka);
});

over_kinds!(a_cluster_across_a_long_link_is_fetched_and_produced_over_several_connections {
    tern_a_cluster_across_a_long_link_is_fetched_and_produced_over_several_connections: (Tern);
    kafka_a_cluster_across_a_long_link_is_fetched_and_produced_over_several_connections: (Kafka);
});

/// A connection that is slow to open (a broker that accepts and never answers) holds up only
/// the callers that want that very connection: a connection to a broker that answers, on any
/// lane, opens while the slow one is still pending, and callers that want the same connection
/// at once share one opening. On a far link a worker opens its fetch connections side by side.
async fn a_slow_connection_holds_up_only_its_own_callers(kind: Kind) {
    let cluster = TestCluster::start(kind, Side::A).await;
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("address").to_string();
    let (accepted_tx, accepted) = tokio::sync::oneshot::channel();
    let listener = tokio::spawn(async move {
        let (held, _) = silent.accept().await.expect("accept");
        let _ = accepted_tx.send(());
        tokio::time::sleep(Duration::from_secs(600)).await;
        drop(held);
    });
    let mut config = ClientConfig::new(&cluster.bootstrap());
    config.request_timeout = Duration::from_secs(20);
    let client = Arc::new(Client::connect(config).await.expect("client"));
    let broker = client.metadata_snapshot().brokers.values().next().cloned().expect("a broker in the metadata");
    let stuck = {
        let (client, addr) = (client.clone(), silent_addr.clone());
        tokio::spawn(async move { client.connection_on(&addr, 0).await.map(|_| ()) })
    };
    accepted.await.expect("the silent broker was reached");
    let (one, two) = tokio::join!(client.connection_on(&broker, 5), client.connection_on(&broker, 5));
    let (one, two) = (one.expect("lane 5"), two.expect("lane 5"));
    assert!(!stuck.is_finished(), "a connection to {broker} waited for the one to the silent {silent_addr} to give up");
    assert!(Arc::ptr_eq(&one, &two), "two callers of lane 5 at once opened two connections");
    let other = client.connection_on(&broker, 6).await.expect("lane 6");
    assert!(!Arc::ptr_eq(&one, &other), "lanes 5 and 6 share a connection");
    assert!(!stuck.is_finished(), "the silent broker answered");
    stuck.abort();
    listener.abort();
    println!("{kind:?}: lanes 5 and 6 to {broker} opened while a connection to a silent broker was pending");
}

over_kinds!(a_slow_connection_holds_up_only_its_own_callers {
    tern_a_slow_connection_holds_up_only_its_own_callers: (Tern);
    kafka_a_slow_connection_holds_up_only_its_own_callers: (Kafka);
});

over_kinds!(a_failed_over_flow_stays_stopped_while_its_decisions_are_unreachable {
    tern_a_failed_over_flow_stays_stopped_while_its_decisions_are_unreachable: (Tern);
    kafka_a_failed_over_flow_stays_stopped_while_its_decisions_are_unreachable: (Kafka);
});

/// The answer to a produce is lost while more batches of the partition are in flight: a record
/// set of eight batches, fetched at once, goes out one batch per request, five at a time, and
/// the proxy resets the connection instead of returning the answer to the second. The worker
/// resends from the first unacknowledged batch; the target recognises the batches it wrote
/// (it keeps each producer's last five per partition); the copy is identical and the partition
/// reports no error.
async fn a_lost_answer_with_batches_in_flight_writes_nothing_twice(kind: Kind) {
    let Proxied { src, dst, proxy, proxy_addr, a, b, topic, remote } = source_and_proxied_target(kind, "in-flight", Duration::from_millis(50), |_, remote| Faults {
        on: AtomicBool::new(true),
        lose_answer_to: Some((remote.as_bytes().to_vec(), 2)),
        ..Faults::default()
    })
    .await;
    src.create_topic(&topic, 1, &[]).await;
    let source = src.client().await;
    // Eight batches of 100 records before the worker starts, so one fetch returns them all.
    for i in 0..8 {
        source.produce(&topic, 0, crate::helpers::batch(&format!("b{i}"), 100, now_ms(), Compression::Lz4), -1, 5000).await.expect("produce");
    }
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    std::fs::write(&path, config(&a, &src.bootstrap(), &b, &proxy_addr, &[(&a, &b, &topic)])).expect("config");
    let run = Run::start(&path);
    let web = run.dashboard().await;
    let target = dst.client().await;
    wait_reached(&source, &target, &topic, &remote, 1).await;
    proxy.faults.on.store(false, Ordering::SeqCst);
    let (lost, sent) = (proxy.faults.produce_answers_lost.load(Ordering::SeqCst), proxy.faults.sent_when_lost.load(Ordering::SeqCst));
    assert_eq!(lost, 1, "the answer to the second produce of {remote} was lost");
    assert!(sent >= 6, "only {sent} produce requests of {remote} had been sent when the answer was lost: fewer than five were in flight");
    let copied = assert_exact_copy(&src, &dst, &topic, &remote, 1).await;
    assert_eq!(copied, 800);
    let api_path = format!("/api/v1/flows/{a}-%3E{b}");
    let errors = flow_errors(&web, &api_path).await;
    assert!(errors.is_empty(), "the partition reported {errors:?}");
    assert!(run.lines("replication of this partition stopped").is_empty(), "{}", run.all());
    println!("{kind:?}: the answer to the 2nd of {sent} produce requests sent was lost; {copied} records on the target, each once, no partition error");
}

over_kinds!(a_lost_answer_with_batches_in_flight_writes_nothing_twice {
    tern_a_lost_answer_with_batches_in_flight_writes_nothing_twice: (Tern);
    kafka_a_lost_answer_with_batches_in_flight_writes_nothing_twice: (Kafka);
});

/// A slow source leader does not hold up the partitions the other leaders lead. The source is
/// a three-node Apache Kafka cluster whose node 1 is reached through a proxy; once the topic
/// (six partitions, about 1 MB each in batches of 25 KB) is written, node 1's answers to fetch
/// requests wait 800 ms. With 64 KiB per partition and fetch, node 1's partitions need about
/// twenty such fetches; the others must not wait for them. Apache Kafka only:
/// `tern broker` is one node, the leader of every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_source_leader_does_not_hold_up_the_others() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let proxy_addr = listener.local_addr().expect("proxy address").to_string();
    let advertised = proxy_addr.clone();
    let cluster = tokio::task::spawn_blocking(move || KafkaCluster::start_advertising_node(3, 1, &advertised)).await.expect("three-node cluster");
    let upstream: SocketAddr = cluster.nodes[0].address().parse().expect("node address");
    const FETCH: i16 = 1;
    let proxy = FaultyProxy::spawn_with(listener, upstream, Duration::ZERO, Faults { delay_only: Some(FETCH), ..Faults::default() });
    let src = TestCluster::OwnKafka(Box::new(cluster));
    let dst = TestCluster::start(Kind::Tern, Side::B).await;
    let partitions = 6;
    let topic = unique_topic("slow-leader");
    src.create_topic(&topic, partitions, &[]).await;
    let source = src.client().await;
    let md = source.refresh_metadata(None).await.expect("metadata");
    let leaders: Vec<i32> = md.topics[&topic].partitions.iter().map(|p| p.leader).collect();
    let slow: Vec<i32> = (0..partitions).filter(|p| leaders[*p as usize] == 1).collect();
    let fast: Vec<i32> = (0..partitions).filter(|p| leaders[*p as usize] != 1).collect();
    assert!(!slow.is_empty() && !fast.is_empty(), "leaders {leaders:?}");
    let value = Bytes::from(vec![b'x'; 500]);
    let mut writers = tokio::task::JoinSet::new();
    for p in 0..partitions {
        let (bootstrap, topic, value) = (src.bootstrap(), topic.clone(), value.clone());
        writers.spawn(async move {
            let c = tern_kafka::client::Client::connect(tern_kafka::client::ClientConfig::new(&bootstrap)).await.expect("client");
            for b in 0..40 {
                let records: Vec<tern_kafka::records::PlainRecord> =
                    (0..50).map(|i| tern_kafka::records::PlainRecord::new(format!("{p}-{b}-{i}"), Some(value.clone()), now_ms())).collect();
                let batch = tern_kafka::records::encode_batch(&records, Compression::None).expect("batch");
                c.produce(&topic, p, batch, -1, 30_000).await.expect("produce");
            }
        });
    }
    while writers.join_next().await.transpose().expect("writer").is_some() {}
    proxy.faults.delay_ms.store(800, Ordering::SeqCst);

    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let remote = format!("{a}.{topic}");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    let toml = config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &topic)]).replace("[mirror]\n", "[mirror]\npartition_max_bytes = 65536\n");
    std::fs::write(&path, toml).expect("config");
    let run = Run::start(&path);
    let target = dst.client().await;
    let started = Instant::now();
    let mut done: Vec<Option<Duration>> = vec![None; partitions as usize];
    let mut slow_at_fast_done = 0;
    while done.iter().any(Option::is_none) {
        assert!(started.elapsed() < Duration::from_secs(180), "not replicated within 180 s: {done:?}\n{}", run.all());
        for p in 0..partitions {
            if done[p as usize].is_none() && end(&target, &remote, p).await == 2000 {
                done[p as usize] = Some(started.elapsed());
            }
        }
        if slow_at_fast_done == 0 && fast.iter().all(|p| done[*p as usize].is_some()) {
            for p in &slow {
                slow_at_fast_done += end(&target, &remote, *p).await.max(0);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rate = |p: &i32| 2000.0 / done[*p as usize].expect("done").as_secs_f64();
    let fast_rates: Vec<String> = fast.iter().map(|p| format!("{p}: {:.0}", rate(p))).collect();
    let slow_rates: Vec<String> = slow.iter().map(|p| format!("{p}: {:.0}", rate(p))).collect();
    println!(
        "records/s per partition, counted from the worker's start: led by the fast nodes {fast_rates:?}; led by node 1 (fetch answers 800 ms late) {slow_rates:?}; \
         when the fast ones were done the slow ones had {slow_at_fast_done} of {} records",
        2000 * slow.len()
    );
    let fast_done = fast.iter().filter_map(|p| done[*p as usize]).max().expect("fast");
    let slow_done = slow.iter().filter_map(|p| done[*p as usize]).min().expect("slow");
    assert!(
        fast_done * 3 < slow_done && (slow_at_fast_done as usize) < 1000 * slow.len(),
        "the partitions of the fast leaders waited for the slow one: fast done after {fast_done:?}, slow after {slow_done:?}, slow at {slow_at_fast_done} when the fast were done"
    );
    for p in 0..partitions {
        assert_eq!(read_partition(&target, &remote, p).await, read_partition(&source, &topic, p).await, "partition {p}");
    }
}

/// One of two workers of a flow has a slow link to the target: the answers to its produce
/// requests take 15 s (every other frame passes at once), from before the second worker starts
/// until well after the rebalance that brings it in. The slow worker must keep its group
/// session while it waits (heartbeats do not wait on produce answers), give its partitions up
/// only after the answers to what it sent came back, and the second worker must start where it
/// stopped: every remote partition is the source's records once, in order, never two writers
/// interleaved, and a group committed mid-stream translates exactly (a drill reports `match`).
async fn a_worker_whose_target_answers_late_hands_over_cleanly(kind: Kind) {
    const PRODUCE: i16 = 0;
    const SLOW: &str = "tern-slow-worker";
    let partitions = 4;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let proxy_addr = listener.local_addr().expect("proxy address").to_string();
    let src = TestCluster::start(kind, Side::A).await;
    let (dst, upstream) = cluster_behind(kind, &proxy_addr).await;
    // No resets: only the slow worker's produce answers wait, once the delay is set.
    let faults = Faults { delay_only: Some(PRODUCE), only_client: Some(SLOW.into()), ..Faults::default() };
    let proxy = FaultyProxy::spawn_with(listener, upstream, Duration::ZERO, faults);
    let faults = proxy.faults.clone();

    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let flow = format!("{a}->{b}");
    let topic = unique_topic("handover");
    let remote = format!("{a}.{topic}");
    src.create_topic(&topic, partitions, &[]).await;
    let dir = tempfile::tempdir().expect("dir");
    let toml = config(&a, &src.bootstrap(), &b, &proxy_addr, &[(&a, &b, &topic)]);
    let (slow_path, fast_path) = (dir.path().join("slow.toml"), dir.path().join("fast.toml"));
    let target_section = format!("bootstrap = \"{proxy_addr}\"\n");
    assert!(toml.contains(&target_section));
    std::fs::write(&slow_path, toml.replace(&target_section, &format!("{target_section}client_id = \"{SLOW}\"\n"))).expect("config");
    std::fs::write(&fast_path, &toml).expect("config");

    let producing = Arc::new(AtomicBool::new(true));
    let producer = steady_producer(src.bootstrap(), topic.clone(), partitions, 10, Duration::from_millis(100), producing.clone());
    let slow = Run::start(&slow_path);
    let (source, target) = (src.client().await, dst.client().await);
    wait_until(Duration::from_secs(60), "the slow worker to replicate every partition", async || {
        for p in 0..partitions {
            if end(&target, &remote, p).await <= 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
    faults.delay_ms.store(15_000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fast = Run::start(&fast_path);
    // A group of the source's consumers commits mid-stream, while the partitions change hands.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let group = format!("{topic}-readers");
    let mut committed = Vec::new();
    for p in 0..partitions {
        committed.push((topic.as_str(), p, end(&source, &topic, p).await));
    }
    crate::drills::commit(&source, &group, &committed).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    faults.delay_ms.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    producing.store(false, Ordering::Relaxed);
    let written = producer.await.expect("producer");
    wait_reached(&source, &target, &topic, &remote, partitions).await;
    let delayed = faults.answers_delayed.load(Ordering::SeqCst);
    assert!(delayed >= 4, "only {delayed} produce answers to the slow worker waited");
    for (name, run) in [("slow", &slow), ("fast", &fast)] {
        assert!(run.lines("panicked").is_empty() && run.lines("answers outstanding").is_empty(), "the {name} worker:\n{}", run.all());
    }
    let copied = assert_exact_copy(&src, &dst, &topic, &remote, partitions).await;
    assert_eq!(copied, written, "every record written to the source is on the target once");

    // Stayed in the group: no lost session, a rebalance that gave the newcomer partitions.
    assert!(slow.lines("group session").is_empty() && slow.lines("before the group may give them").is_empty(), "the slow worker lost its session:\n{}", slow.all());
    assert!(fast.lines("assigned").iter().any(|l| !l.contains("partitions=0")), "the second worker never got partitions:\n{}", fast.all());

    let json = dir.path().join("drill.json");
    let (code, report, _) = crate::drills::drill_json(&fast_path, &json, &flow, &group);
    let g = report.groups.iter().find(|g| g.group == group).unwrap_or_else(|| panic!("{group} in the drill: {:?}", report.groups));
    assert_eq!((code, g.verdict), (0, tern_mirror::drill::Verdict::Pass), "{}", g.reason);
    let checks: Vec<_> = g.partitions.iter().map(|p| p.check).collect();
    assert_eq!(checks, vec![tern_mirror::states::Check::Match; partitions as usize], "{:?}", g.partitions);
    println!(
        "{kind:?}: {delayed} produce answers to one worker held 15 s while a second joined; {copied} records on the target, each once, in order; \
         {group} committed mid-stream: drill {:?}, every partition {:?}",
        g.verdict, checks[0]
    );
}

over_kinds!(a_worker_whose_target_answers_late_hands_over_cleanly {
    tern_a_worker_whose_target_answers_late_hands_over_cleanly: (Tern);
    kafka_a_worker_whose_target_answers_late_hands_over_cleanly: (Kafka);
});
