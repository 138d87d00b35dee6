//! Live configuration: `tern run` applies a changed `tern.toml` (file change or SIGHUP) flow by
//! flow. A flow added starts within seconds, the running flow keeps its partitions and keeps
//! replicating without a pause, a broken file is refused and shown, a removed flow stops. On
//! both cluster kinds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::records::Compression;
use tern_kafka::client::Connection;

use crate::clusters::*;
use crate::drills::{end, now_ms, produce};
use crate::helpers::*;
use crate::mirror::Aliases;

/// A `tern run` process with its log lines.
pub(crate) struct Run {
    pub child: std::process::Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Run {
    pub fn start(config: &std::path::Path) -> Run {
        Run::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &std::path::Path, env: &[(&str, &str)]) -> Run {
        Run::start_wrapped(config, &[], env)
    }

    /// `tern run` started through `wrapper` (a command and its arguments, which then runs
    /// `tern`), as `setpriv` runs it under a group of the test's own.
    pub fn start_wrapped(config: &std::path::Path, wrapper: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = std::process::Command::new(program);
                c.args(args).arg(tern_bin());
                c
            }
            None => std::process::Command::new(tern_bin()),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,tern_kafka=warn")
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn tern run");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stderr, sink) = (child.stderr.take().expect("stderr"), log.clone());
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        Run { child, log }
    }

    pub fn lines(&self, containing: &str) -> Vec<String> {
        self.log.lock().expect("log").iter().filter(|l| l.contains(containing)).cloned().collect()
    }

    pub fn all(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }
}

impl Run {
    /// The dashboard's address, from the log.
    pub async fn dashboard(&self) -> String {
        wait_until(Duration::from_secs(30), "the dashboard address", async || {
            let line = self.lines("dashboard, API and metrics on http://").pop()?;
            Some(line.split("http://").nth(1)?.split([' ', '/']).next()?.to_string())
        })
        .await
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn body(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or_default()
}

pub(crate) async fn json(web: &str, path: &str) -> serde_json::Value {
    let r = http_get(web, path).await;
    serde_json::from_str(body(&r)).unwrap_or_else(|e| panic!("{path}: {e}: {r}"))
}

/// One flow of one topic between two clusters, its `tern.toml` written: what most tests of a
/// running worker start from.
pub(crate) struct OneFlow {
    pub src: TestCluster,
    pub dst: TestCluster,
    pub source: tern_kafka::client::Client,
    pub target: tern_kafka::client::Client,
    /// Source and target cluster aliases.
    pub a: String,
    pub b: String,
    /// `a->b`.
    pub flow: String,
    pub topic: String,
    /// The topic's copy on the target.
    pub remote: String,
    /// `/api/v1/flows/<flow>`.
    pub api_path: String,
    pub path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl OneFlow {
    /// Clusters of the given kinds, a topic of `partitions` named after `prefix` on the source,
    /// and the flow's `tern.toml` (see [`config`]).
    pub async fn start(source_kind: Kind, target_kind: Kind, prefix: &str, partitions: i32) -> OneFlow {
        OneFlow::start_on(source_kind, target_kind, Side::B, prefix, partitions).await
    }

    /// As [`OneFlow::start`], with the target on `target_side` ([`Side::Own`]: a cluster of
    /// the test's own).
    pub async fn start_on(source_kind: Kind, target_kind: Kind, target_side: Side, prefix: &str, partitions: i32) -> OneFlow {
        let src = TestCluster::start(source_kind, Side::A).await;
        let dst = TestCluster::start(target_kind, target_side).await;
        let (source, target) = (src.client().await, dst.client().await);
        let aliases = Aliases::unique();
        let (a, b) = (aliases.source.clone(), aliases.target.clone());
        let topic = unique_topic(prefix);
        src.create_topic(&topic, partitions, &[]).await;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("tern.toml");
        std::fs::write(&path, config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &topic)])).expect("config");
        let flow = format!("{a}->{b}");
        OneFlow { remote: format!("{a}.{topic}"), api_path: format!("/api/v1/flows/{}", flow.replace('>', "%3E")), src, dst, source, target, a, b, flow, topic, path, _dir: dir }
    }
}

pub(crate) fn config(a: &str, a_bootstrap: &str, b: &str, b_bootstrap: &str, flows: &[(&str, &str, &str)]) -> String {
    let mut t = format!("[clusters.{a}]\nbootstrap = \"{a_bootstrap}\"\n[clusters.{b}]\nbootstrap = \"{b_bootstrap}\"\n\n");
    for (s, d, topic) in flows {
        t += &format!("[[flows]]\nsource = \"{s}\"\ntarget = \"{d}\"\ntopics = [\"{topic}\"]\ncheckpoint_interval = \"1s\"\n\n");
    }
    t + "[mirror]\ntopic_refresh_interval = \"500ms\"\nfetch_max_wait = \"200ms\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n"
}

async fn a_changed_file_applies_flow_by_flow(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let (forward, backward) = (format!("{a}->{b}"), format!("{b}->{a}"));
    let steady = unique_topic("steady");
    let added = unique_topic("added");
    src.create_topic(&steady, 2, &[]).await;
    dst.create_topic(&added, 1, &[]).await;
    let (steady_remote, added_remote) = (format!("{a}.{steady}"), format!("{b}.{added}"));

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    let one = config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &steady)]);
    let two = config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &steady), (&b, &a, &added)]);
    std::fs::write(&path, &one).expect("config");
    let run = Run::start(&path);
    let web = run.dashboard().await;

    // A steady producer on the running flow's topic: ten records a second per partition.
    let producing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producer = {
        let (bootstrap, topic, on) = (src.bootstrap(), steady.clone(), producing.clone());
        tokio::spawn(async move {
            let c = tern_kafka::client::Client::connect(tern_kafka::client::ClientConfig::new(&bootstrap)).await.expect("client");
            let mut i = 0;
            while on.load(std::sync::atomic::Ordering::Relaxed) {
                for p in 0..2 {
                    c.produce(&topic, p, batch(&format!("steady-{i}-{p}"), 1, now_ms(), Compression::None), -1, 5000).await.expect("produce");
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    wait_until(Duration::from_secs(60), "the running flow to replicate", async || (end(&target, &steady_remote, 0).await > 10).then_some(())).await;
    // (member, partitions) of each assignment of the running flow, from the log.
    let assigned_forward = || -> Vec<(String, usize)> {
        run.lines("assigned")
            .into_iter()
            .filter(|l| l.contains(&format!("flow={forward}")))
            .filter_map(|l| {
                let member = l.split("member=").nth(1)?.split(' ').next()?.to_string();
                let n = l.split("partitions=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
                Some((member, n))
            })
            .collect()
    };
    let first_assignment = assigned_forward();
    assert_eq!(first_assignment.len(), 1, "{}", run.all());

    // Watch the running flow's remote partition while the configuration changes: it must keep
    // growing, never standing still for as long as a rebalance would take.
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (bootstrap, remote, on) = (dst.bootstrap(), steady_remote.clone(), watching.clone());
        tokio::spawn(async move {
            let c = tern_kafka::client::Client::connect(tern_kafka::client::ClientConfig::new(&bootstrap)).await.expect("client");
            let (mut last, mut since, mut longest) = (end(&c, &remote, 0).await, Instant::now(), Duration::ZERO);
            while on.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = end(&c, &remote, 0).await;
                if now > last {
                    longest = longest.max(since.elapsed());
                    (last, since) = (now, Instant::now());
                }
            }
            longest.max(since.elapsed())
        })
    };

    // Add a flow (the other way, for a topic on the second cluster) by editing the file.
    let mut d = Connection::connect(&dst.bootstrap()).await.expect("connect");
    produce(&mut d, &added, 0, batch("added", 20, now_ms(), Compression::None)).await;
    let loaded_before = json(&web, "/api/v1/topology").await["config"]["loaded_at_ms"].as_i64().expect("loaded_at_ms");
    let edited = Instant::now();
    std::fs::write(&path, &two).expect("config");
    wait_until(Duration::from_secs(30), "the added flow to replicate", async || (end(&source, &added_remote, 0).await == 20).then_some(())).await;
    println!("{kind:?}: the added flow replicated its 20 records {:.1} s after the file changed", edited.elapsed().as_secs_f64());
    assert!(edited.elapsed() < Duration::from_secs(20), "the added flow started within seconds");
    let reloaded = run.lines("configuration reloaded (the file changed)");
    assert!(reloaded.iter().any(|l| l.contains(&format!("started {backward}")) && l.contains(&format!("unchanged {forward}"))), "{reloaded:?}");
    let topology = json(&web, "/api/v1/topology").await;
    assert!(topology["config"]["loaded_at_ms"].as_i64() > Some(loaded_before), "the dashboard shows the new load time: {topology}");
    let flows: Vec<String> = json(&web, "/api/v1/flows").await["flows"].as_array().expect("flows").iter().map(|f| f["name"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(flows, [forward.clone(), backward.clone()], "the flows in the order of the file");
    let page = http_get(&web, "/").await;
    assert!(page.contains("id=\"config-loaded\""), "the pages say when the configuration was loaded");

    // A broken file: refused, shown, and everything keeps running.
    std::fs::write(&path, format!("{two}\n[[flows]]\nsource = \"nowhere\"\ntarget = \"{b}\"\ntopics = [\"x\"]\n")).expect("config");
    let refusal = wait_until(Duration::from_secs(15), "the broken file to be refused", async || run.lines("was not applied").pop()).await;
    assert!(refusal.contains("nowhere"), "{refusal}");
    let topology = json(&web, "/api/v1/topology").await;
    assert!(topology["config"]["error"].as_str().is_some_and(|e| e.contains("nowhere")), "{topology}");
    assert!(http_get(&web, "/flows").await.contains("id=\"config-error\""), "the pages show the refusal");
    produce(&mut d, &added, 0, batch("added-later", 5, now_ms(), Compression::None)).await;
    wait_until(Duration::from_secs(15), "the added flow to go on under the broken file", async || (end(&source, &added_remote, 0).await == 25).then_some(())).await;

    // SIGHUP applies the file as it is: back to one flow; the other stops and its records stay
    // on the source.
    std::fs::write(&path, &one).expect("config");
    let hups = run.lines("(SIGHUP)").len();
    let status = std::process::Command::new("kill").args(["-HUP", &run.child.id().to_string()]).status().expect("kill -HUP");
    assert!(status.success());
    wait_until(Duration::from_secs(15), "the SIGHUP reload", async || (run.lines("(SIGHUP)").len() > hups).then_some(())).await;
    wait_until(Duration::from_secs(15), "the removed flow to stop", async || {
        let f = json(&web, "/api/v1/flows").await;
        (f["flows"].as_array().map(|a| a.len()) == Some(1)).then_some(())
    })
    .await;
    assert!(json(&web, "/api/v1/topology").await["config"]["error"].is_null(), "a good file clears the refusal");
    produce(&mut d, &added, 0, batch("after-removal", 5, now_ms(), Compression::None)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(end(&source, &added_remote, 0).await, 25, "a removed flow replicates nothing more");

    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let longest = watcher.await.expect("watcher");
    producing.store(false, std::sync::atomic::Ordering::Relaxed);
    producer.await.expect("producer");
    println!("{kind:?}: the running flow's longest pause while the configuration changed three times: {:.1} s", longest.as_secs_f64());
    assert!(longest < Duration::from_secs(3), "the running flow kept replicating: longest pause {longest:?}");
    // The running flow kept its member and its partitions. It may gain one: the added flow
    // writes MirrorMaker 2's `heartbeats` topic on this flow's source, which every flow
    // replicates.
    let assignments = assigned_forward();
    assert!(
        assignments.iter().all(|(m, n)| *m == first_assignment[0].0 && *n >= first_assignment[0].1) && assignments.len() <= 2,
        "the running flow was never reassigned: {assignments:?}\n{}",
        run.all()
    );
    for p in 0..2 {
        wait_until(Duration::from_secs(30), "the running flow to catch up", async || (end(&target, &steady_remote, p).await == end(&source, &steady, p).await).then_some(())).await;
        assert_eq!(read_partition(&target, &steady_remote, p).await, read_partition(&source, &steady, p).await, "partition {p}");
    }
}

over_kinds!(a_changed_file_applies_flow_by_flow {
    tern_a_changed_configuration_applies_flow_by_flow_without_touching_the_others: (Tern);
    kafka_a_changed_configuration_applies_flow_by_flow_without_touching_the_others: (Kafka);
});
