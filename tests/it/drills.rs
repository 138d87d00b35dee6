//! Disaster-recovery drills, failover and failback against real brokers, Apache Kafka and
//! `tern broker` alike: the numbers a drill reports are checked against what the test did,
//! and what consumers read after a failover or failback (the tests' own and confluent-kafka)
//! is checked record by record.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use kafka_protocol::records::Compression;
use tern_kafka::client::{Client, ClientConfig, Connection, GroupMember, Membership, LATEST};
use tern_mirror::drill::{DrillReport, Verdict};
use tern_mirror::states::{Check, ReadThrough};

use crate::apache_kafka::KafkaCluster;
use crate::clusters::*;
use crate::helpers::*;
use crate::mirror::{flow_config, partition_content, varied_batch, Aliases, TestMirror};
use crate::protocol::produce_request;

pub async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap)).await.expect("client")
}

pub async fn end(client: &Client, topic: &str, partition: i32) -> i64 {
    let _ = client.refresh_metadata(None).await;
    client.list_offset_once(topic, partition, LATEST).await.map(|(o, _)| o).unwrap_or(-1)
}

/// Waits until every partition of `remote` on the target ends where `topic` ends on the source.
pub async fn wait_caught_up(source: &Client, target: &Client, topic: &str, remote: &str, partitions: i32) {
    wait_until(Duration::from_secs(60), &format!("{remote} to catch up with {topic}"), async || {
        for p in 0..partitions {
            if end(target, remote, p).await != end(source, topic, p).await {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Commits offsets for `group`, retrying while the group's coordinator is still loading
/// (a Kafka cluster that just started answers COORDINATOR_LOAD_IN_PROGRESS).
pub async fn commit(client: &Client, group: &str, offsets: &[(&str, i32, i64)]) {
    let map: BTreeMap<(String, i32), i64> = offsets.iter().map(|(t, p, o)| ((t.to_string(), *p), *o)).collect();
    wait_until(Duration::from_secs(30), &format!("a commit of {group}"), async || match client.commit_offsets(group, &Membership::none(), &map).await {
        Ok(()) => Some(()),
        Err(e) if e.is_retriable() => None,
        Err(e) => panic!("commit of {group}: {e}"),
    })
    .await;
}

/// Produces one batch with acks=1 and checks the partition accepted it. Kafka may refuse
/// with NOT_LEADER_OR_FOLLOWER for a moment after Metadata first shows a new topic's leader
/// (nothing is written then), so that is retried.
pub(crate) async fn produce(c: &mut Connection, topic: &str, partition: i32, records: Bytes) {
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    wait_until(Duration::from_secs(30), &format!("a produce to {topic}/{partition}"), async || {
        let resp = c.call(&produce_request(topic, partition, records.clone(), 1), 9).await.expect("produce");
        let p = &resp.responses[0].partition_responses[0];
        if p.error_code == NOT_LEADER_OR_FOLLOWER {
            return None;
        }
        assert_eq!(p.error_code, 0, "produce to {topic}/{partition}: {:?}", p.error_message);
        Some(())
    })
    .await;
}

/// Runs `tern <args>` to completion; returns (exit code, stdout).
pub fn tern(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(tern_bin()).args(args).output().expect("run tern");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!("--- tern {}\n{stdout}\n--- stderr\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

/// A flow of `topics` that checkpoints every 500 ms, written beside a state directory.
pub(crate) fn write_config(dir: &Path, aliases: &Aliases, source: &str, target: &str, topics: &str) -> (String, std::path::PathBuf) {
    let toml = flow_config(aliases, source, target, topics).replace("topics = [", "checkpoint_interval = \"500ms\"\ntopics = [");
    let config = dir.join("tern.toml");
    std::fs::write(&config, &toml).expect("config");
    (toml, config)
}

pub(crate) fn drill_json(config: &Path, json: &Path, flow: &str, groups: &str) -> (i32, DrillReport, serde_json::Value) {
    let (code, report, value, _) = drill_json_and_text(config, json, flow, groups);
    (code, report, value)
}

/// `tern drill` with its JSON report and what it printed.
fn drill_json_and_text(config: &Path, json: &Path, flow: &str, groups: &str) -> (i32, DrillReport, serde_json::Value, String) {
    // A report left by an earlier run must not stand in for this one.
    let _ = std::fs::remove_file(json);
    let (code, printed) = tern(&["drill", "--config", config.to_str().expect("path"), "--flow", flow, "--groups", groups, "--json", json.to_str().expect("path"), "--timeout", "10s"]);
    let text = std::fs::read_to_string(json).expect("the JSON report");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let report: DrillReport = serde_json::from_str(&text).expect("a DrillReport");
    (code, report, value, printed)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

pub(crate) fn group<'a>(r: &'a DrillReport, name: &str) -> &'a tern_mirror::drill::GroupReport {
    r.groups.iter().find(|g| g.group == name).unwrap_or_else(|| panic!("no group {name} in {:?}", r.groups.iter().map(|g| &g.group).collect::<Vec<_>>()))
}

/// Pauses the flow through its control record and waits until its worker saw it, so that
/// records produced afterwards are held back from replication.
pub(crate) async fn hold_back(target: &Client, aliases: &Aliases, mirror: &TestMirror) {
    tern_mirror::control::update(target, &aliases.target, &aliases.flow(), "test: hold back", |c| c.paused = true).await.expect("pause");
    let status = mirror.status[&aliases.flow()].clone();
    wait_until(Duration::from_secs(10), "the worker to see the pause", async || status.control().paused.then_some(())).await;
    // A fetch already waiting at the end of the log when the pause was seen may still return:
    // let it (fetch_max_wait is 200 ms) before producing what must be held back.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn a_drill_reports_exact_rpo(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let aliases = Aliases::unique();
    let flow_name = aliases.flow();
    let orders = unique_topic("orders");
    let (orders, remote) = (orders.as_str(), aliases.remote(&orders));
    let g = |name: &str| format!("{name}-{}", aliases.source);
    let (billing, audit, skipped, idle) = (g("billing"), g("audit"), g("skipped"), g("idle"));
    // The varied records carry timestamps from 2025: time retention (7 days by default; Kafka
    // first applies it 30 s after a broker starts) must not delete them under the test. The
    // mirror copies the setting to the remote topic.
    src.create_topic(orders, 2, &[("retention.ms", "-1")]).await;
    let mut s = Connection::connect(&src.bootstrap()).await.expect("connect");
    // 100 records per partition: keys (some null), values, headers, distinct timestamps.
    for b in 0..4 {
        for p in 0..2 {
            produce(&mut s, orders, p, varied_batch(p, b, 25)).await;
        }
    }
    commit(&source, &billing, &[(orders, 0, 40), (orders, 1, 100)]).await;
    commit(&source, &audit, &[(orders, 0, 0), (orders, 1, 73)]).await;
    commit(&source, &skipped, &[(orders, 0, 10)]).await;
    // A group with a live member and no committed offsets.
    let mut idle_member = GroupMember::new(&idle, Duration::from_secs(30), Duration::from_secs(30));
    idle_member.join(&source, &[orders.to_string()]).await.expect("join");
    let heartbeats = idle_member.heartbeater(&std::sync::Arc::new(src.client().await)).expect("joined");
    let hb = tokio::spawn(async move {
        loop {
            let _ = heartbeats.beat().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    let dir = tempfile::tempdir().expect("dir");
    let topics = format!("\"{orders}\"");
    let (toml, config) = write_config(dir.path(), &aliases, &src.bootstrap(), &dst.bootstrap(), &topics);
    let mirror = TestMirror::start(&toml);
    wait_caught_up(&source, &target, orders, &remote, 2).await;

    // Hold records back from replication: 25 more records to partition 0 and 12 to partition 1.
    hold_back(&target, &aliases, &mirror).await;
    let (held0, held1) = (25i64, 12i64);
    let held_at = std::time::Instant::now();
    produce(&mut s, orders, 0, batch("held-0", held0 as usize, now_ms(), Compression::None)).await;
    produce(&mut s, orders, 1, batch("held-1", held1 as usize, now_ms(), Compression::None)).await;
    let committed_before = (source.all_committed_offsets(&billing).await.expect("offsets"), source.all_committed_offsets(&audit).await.expect("offsets"));

    let json = dir.path().join("drill.json");
    let groups = format!("{billing}|{audit}|{idle}");
    let started = std::time::Instant::now();
    let (code, report, value) = drill_json(&config, &json, &flow_name, &groups);
    println!("{kind:?}: drill took {:?}: RPO {} records / {:.2} s, RTO {:?} ms", started.elapsed(), report.rpo_records, report.rpo_seconds, report.rto_ms);
    assert_eq!(code, 1, "groups would lose the held-back records: exit code 1");
    assert_eq!(value["schema_version"], 2);
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.flow_state, Some(tern_mirror::control::FailoverState::Active));
    assert_eq!(report.rpo_records, held0 + held1, "RPO = exactly the records held back");
    let rpo: Vec<(i32, i64, i64)> = report.partitions.iter().map(|p| (p.partition, p.replicated_end, p.rpo_records)).collect();
    assert_eq!(rpo, vec![(0, 100, held0), (1, 100, held1)]);
    // RPO in seconds: the age of the oldest held-back record when the drill looked.
    let held_for = held_at.elapsed().as_secs_f64();
    assert!(report.rpo_seconds > 0.0 && report.rpo_seconds <= held_for + 1.0, "RPO {} s, records held back {held_for:.2} s ago", report.rpo_seconds);
    assert_eq!((report.redelivered_records, report.missed_records), (0, 0), "no duplicates, no gaps");
    assert!(report.rto_ms.is_some_and(|ms| ms > 0), "RTO measured: {:?}", report.rto_ms);
    assert!(report.groups.iter().all(|g| g.group != skipped), "--groups filters");

    let billing_report = group(&report, &billing);
    assert_eq!(billing_report.verdict, Verdict::Fail);
    assert_eq!(billing_report.rpo_records, held0 + held1, "billing has consumed none of the held-back records");
    let audit_report = group(&report, &audit);
    assert_eq!(audit_report.rpo_records, held0 + held1);
    assert_eq!(group(&report, &idle).verdict, Verdict::NoOffsets, "{:?}", group(&report, &idle));
    let drill_prefix = format!("tern-drill.{}.", report.id);
    for (g, committed) in [(billing_report, [40, 100]), (audit_report, [0, 73])] {
        assert_eq!(g.read_through, Some(ReadThrough::Read), "{}: {}", g.group, g.reason);
        assert!(g.drill_group.as_ref().is_some_and(|d| d.starts_with(&drill_prefix)));
        for p in &g.partitions {
            let c = committed[p.partition as usize];
            assert_eq!(p.committed, c);
            // One mirror run on a plain topic: target offsets equal source offsets.
            assert_eq!(p.translated, Some(c), "{} {}", g.group, p.partition);
            assert_eq!(p.check, Check::Match, "{} {}", g.group, p.partition);
            assert_eq!((p.redelivered_records, p.missed_records), (0, 0));
        }
    }
    // Independently: the target record at each translated offset is the source record at the
    // committed offset (key, value, headers, timestamp).
    for p in 0..2 {
        let (a, b) = (partition_content(&src.bootstrap(), orders, p).await, partition_content(&dst.bootstrap(), &remote, p).await);
        assert_eq!(b[..], a[..100], "partition {p}: the target holds exactly the first 100 records");
        assert_eq!(a.len() as i64, 100 + [held0, held1][p as usize]);
    }
    // Production consumers untouched; this drill's groups gone; nothing replicated while paused.
    assert_eq!(source.all_committed_offsets(&billing).await.expect("offsets"), committed_before.0);
    assert_eq!(source.all_committed_offsets(&audit).await.expect("offsets"), committed_before.1);
    let leftover: Vec<String> = target.list_groups().await.expect("groups").into_iter().filter(|g| g.starts_with(&drill_prefix)).collect();
    assert!(leftover.is_empty(), "drill groups left behind: {leftover:?}");
    assert_eq!(end(&target, &remote, 0).await, 100);

    // Resume; once caught up a drill passes, with nothing to lose.
    tern_mirror::control::update(&target, &aliases.target, &flow_name, "test: resume", |c| c.paused = false).await.expect("resume");
    wait_caught_up(&source, &target, orders, &remote, 2).await;
    // Two more groups: `skipped` committed on partition 0 only (partition 1 has nothing of it),
    // and `at-end` committed at the end of both partitions (nothing to read on either).
    let at_end = g("at-end");
    commit(&source, &at_end, &[(orders, 0, 100 + held0), (orders, 1, 100 + held1)]).await;
    let groups2 = format!("{groups}|{skipped}|{at_end}");
    wait_until(Duration::from_secs(30), "checkpoints of the new group", async || {
        let g = mirror.status[&flow_name].snapshot().groups;
        g.keys().any(|(name, _)| *name == at_end).then_some(())
    })
    .await;
    let (code, report2, value2, printed) = drill_json_and_text(&config, &json, &flow_name, &groups2);
    assert_eq!(code, 0, "{:?}", report2.groups);
    assert_eq!(report2.verdict, Verdict::Pass);
    assert_eq!(report2.rpo_records, 0);
    assert_eq!(group(&report2, &billing).verdict, Verdict::Pass);
    let resumes: Vec<(i32, Option<i64>, Check, Option<ReadThrough>)> = group(&report2, &billing).partitions.iter().map(|p| (p.partition, p.translated, p.check, p.read_through)).collect();
    assert_eq!(
        resumes,
        [(0, Some(40), Check::Match, Some(ReadThrough::Read)), (1, Some(100), Check::Match, Some(ReadThrough::Read))],
        "billing resumes where it committed"
    );
    // A partition with nothing to read is neutral: the group passes and reads through, and the
    // CLI's text says what the JSON says.
    for (name, read) in [(&billing, ReadThrough::Read), (&skipped, ReadThrough::Read), (&at_end, ReadThrough::NothingToRead)] {
        let g = group(&report2, name);
        assert_eq!((g.verdict, g.read_through), (Verdict::Pass, Some(read)), "{name}: {}", g.reason);
        let json_group = value2["groups"].as_array().expect("groups").iter().find(|j| j["group"] == name.as_str()).expect("group in the JSON");
        assert_eq!(json_group["read_through"], read.as_str());
        let line = printed.lines().find(|l| l.starts_with(&format!("group {name}:"))).unwrap_or_else(|| panic!("no line for {name} in:\n{printed}"));
        assert!(line.starts_with(&format!("group {name}: pass - ")) && line.ends_with(&format!("read through: {read}")), "{line}");
    }
    assert!(!printed.to_lowercase().contains("fail"), "a passing drill's text never says failed:\n{printed}");
    // The Drills page renders the same report the same way.
    let validated = tern_mirror::config::parse(&toml).expect("config");
    let topology = tern_web::Topology::from_validated(&validated).with_state_dir(dir.path().join("tern-state"));
    let app = tern_web::router(tern_web::AppState::new(topology, mirror.status.clone(), None));
    let page = {
        use tower::ServiceExt;
        let req = axum::http::Request::get(format!("/drills/{}", report2.id)).body(axum::body::Body::empty()).expect("request");
        let resp = app.oneshot(req).await.expect("response");
        assert_eq!(resp.status(), axum::http::StatusCode::OK);
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20).await.expect("body");
        scraper::Html::parse_document(&String::from_utf8_lossy(&body))
    };
    for (name, read) in [(&billing, ReadThrough::Read), (&skipped, ReadThrough::Read), (&at_end, ReadThrough::NothingToRead)] {
        let section = scraper::Selector::parse(&format!("section.drill-group[data-group=\"{name}\"]")).expect("selector");
        let section = page.select(&section).next().unwrap_or_else(|| panic!("no section for {name}"));
        let field = |css: &str| section.select(&scraper::Selector::parse(css).expect("selector")).map(|e| e.text().collect::<String>()).collect::<Vec<_>>();
        assert_eq!(field(".verdict"), ["pass"], "{name}");
        assert_eq!(field("[data-field=group-read-through]"), [read.as_str()], "{name}");
        let parts: Vec<String> = group(&report2, name).partitions.iter().map(|p| p.read_through.map(|r| r.to_string()).unwrap_or("-".into())).collect();
        assert_eq!(field("[data-field=read-through]"), parts, "{name}");
    }
    println!("{kind:?}: caught-up drill: RTO {:?} ms", report2.rto_ms);

    // Both drills are in the history beside the config, newest first.
    let history = tern_mirror::drill::history_dir(&dir.path().join("tern-state"));
    let listed = tern_mirror::drill::history::list(&history).expect("history");
    assert_eq!(listed.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![report2.id.clone(), report.id.clone()]);
    assert_eq!(tern_mirror::drill::history::load(&history, &report.id).expect("load"), report);
    mirror.stop().await;

    // A wrong offset map (an entry claiming source 50 landed at target 47) would make groups
    // resume 3 records early on partition 1: the drill catches it from the data.
    let flow = tern_mirror::config::parse(&toml).expect("config").flows.remove(0);
    let bogus = tern_mirror::offset_map::Entry { source: 50, target: 47 };
    tern_mirror::offset_map::store::persist_entries(&flow, &source, &target, &(orders.to_string(), 1), &[bogus], &[]).await.expect("write a bogus entry");
    let (code, bad, _) = drill_json(&config, &json, &flow_name, &format!("{billing}|{audit}"));
    assert_eq!(code, 1);
    assert_eq!((bad.rpo_records, bad.redelivered_records, bad.missed_records), (0, 6, 0));
    for g in [&billing, &audit] {
        let p1 = &group(&bad, g).partitions[1];
        assert_eq!((p1.check, p1.redelivered_records, p1.translated), (Check::Repeats, 3, Some(p1.committed - 3)), "{g}");
        assert!(group(&bad, g).reason.contains("re-read 3"), "{}", group(&bad, g).reason);
    }

    // An unreachable source: every group the target's checkpoints know gets an error verdict
    // that says why; no crash, exit code 2.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let bad = dir.path().join("dead-source.toml");
    std::fs::write(&bad, flow_config(&aliases, &dead, &dst.bootstrap(), &topics)).expect("config");
    let (code, r, _) = drill_json(&bad, &json, &flow_name, &format!("{billing}|{audit}"));
    assert_eq!(code, 2);
    assert_eq!(r.verdict, Verdict::Error);
    for g in [&billing, &audit] {
        let g = group(&r, g);
        assert_eq!(g.verdict, Verdict::Error);
        assert!(g.reason.contains("source unreachable") && g.reason.contains("checkpoint"), "{}", g.reason);
    }
    // An unreachable target: the source's groups get the verdict.
    std::fs::write(&bad, flow_config(&aliases, &src.bootstrap(), &dead, &topics)).expect("config");
    let (code, r, _) = drill_json(&bad, &json, &flow_name, ".*");
    assert_eq!(code, 2);
    assert!(group(&r, &billing).reason.contains("target unreachable"), "{}", group(&r, &billing).reason);
    hb.abort();
}

over_kinds!(a_drill_reports_exact_rpo {
    tern_a_drill_reports_exact_rpo_verifies_every_group_and_handles_unreachable_clusters: (Tern);
    kafka_a_drill_reports_exact_rpo_verifies_every_group_and_handles_unreachable_clusters: (Kafka);
});

/// `tern broker` as a child process that can be killed with SIGKILL and started again on
/// the same port and data directory.
struct ProcBroker {
    child: Option<std::process::Child>,
    addr: String,
    data: std::path::PathBuf,
}

impl ProcBroker {
    fn spawn(data: &Path, listen: &str) -> std::io::Result<(std::process::Child, String)> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(tern_bin())
            .args(["broker", "--listen", listen, "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("tern broker listening on ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!("broker did not start: {line:?}")));
        };
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Ok((child, addr))
    }

    fn start(data: &Path) -> ProcBroker {
        let (child, addr) = Self::spawn(data, "127.0.0.1:0").expect("broker");
        ProcBroker { child: Some(child), addr, data: data.to_path_buf() }
    }

    fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            let _ = c.wait();
        }
    }

    async fn restart(&mut self) {
        let addr = self.addr.clone();
        let data = self.data.clone();
        let child = wait_until(Duration::from_secs(20), "the broker to start again on its port", async || Self::spawn(&data, &addr).ok().map(|(c, _)| c)).await;
        self.child = Some(child);
    }
}

impl Drop for ProcBroker {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// A source cluster the test may kill with SIGKILL and start again on the same address and
/// data: a `tern broker` process, or an Apache Kafka cluster of its own (the shared ones stay
/// up for the other tests).
enum KillableSource {
    Tern { broker: ProcBroker, _data: tempfile::TempDir },
    Kafka { cluster: Arc<Mutex<KafkaCluster>>, bootstrap: String },
}

impl KillableSource {
    async fn start(kind: Kind) -> KillableSource {
        match kind {
            Kind::Tern => {
                let data = tempfile::tempdir().expect("dir");
                KillableSource::Tern { broker: ProcBroker::start(data.path()), _data: data }
            }
            Kind::Kafka => {
                let cluster = tokio::task::spawn_blocking(|| KafkaCluster::start(1)).await.expect("Kafka cluster");
                let bootstrap = cluster.bootstrap();
                KillableSource::Kafka { cluster: Arc::new(Mutex::new(cluster)), bootstrap }
            }
        }
    }

    fn bootstrap(&self) -> String {
        match self {
            KillableSource::Tern { broker, .. } => broker.addr.clone(),
            KillableSource::Kafka { bootstrap, .. } => bootstrap.clone(),
        }
    }

    async fn kill_9(&mut self) {
        match self {
            KillableSource::Tern { broker, .. } => broker.kill_9(),
            KillableSource::Kafka { cluster, .. } => {
                let cluster = cluster.clone();
                tokio::task::spawn_blocking(move || cluster.lock().expect("cluster").kill_node(1)).await.expect("kill -9");
            }
        }
    }

    async fn restart(&mut self) {
        match self {
            KillableSource::Tern { broker, .. } => broker.restart().await,
            KillableSource::Kafka { cluster, .. } => {
                let cluster = cluster.clone();
                tokio::task::spawn_blocking(move || cluster.lock().expect("cluster").restart_node(1)).await.expect("restart");
            }
        }
    }
}

/// What a consumer of `group` reads from its committed offsets to the end of each partition
/// of `topic`, read as a member of the group.
async fn consume(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, (i64, Vec<Content>)> {
    let c = client(bootstrap).await;
    let mut member = GroupMember::new(group, Duration::from_secs(10), Duration::from_secs(10));
    let assigned = member.join(&c, &[topic.to_string()]).await.expect("join");
    let committed = c.committed_offsets(group, &assigned).await.expect("committed offsets");
    let mut out = BTreeMap::new();
    for (t, p) in assigned {
        let from = *committed.get(&(t.clone(), p)).unwrap_or_else(|| panic!("{group} has no offset for {t}/{p}"));
        let content = partition_content(bootstrap, &t, p).await;
        out.insert(p, (from, content[from as usize..].to_vec()));
    }
    member.leave(&c).await.expect("leave");
    out
}

/// What a confluent-kafka consumer of `group` reads of `topic`, from the group's committed
/// offsets to the end (tests/compat/confluent_resume.py): per partition, the committed
/// offset and the records read with their offsets.
async fn confluent_resume(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, (i64, Vec<(i64, Content)>)> {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(compat_script("confluent_resume.py"))
        .args(["--bootstrap", bootstrap, "--group", group, "--topic", topic, "--partitions", &partitions.to_string(), "--timeout", "60"]);
    let out = run_client(cmd, Duration::from_secs(120)).await;
    let bytes = |v: &serde_json::Value| v.as_str().map(|s| Bytes::from(base64::engine::general_purpose::STANDARD.decode(s).expect("base64")));
    let mut read: BTreeMap<i32, (i64, Vec<(i64, Content)>)> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let p = v["partition"].as_i64().expect("partition") as i32;
        if let Some(committed) = v["committed"].as_i64() {
            read.entry(p).or_default().0 = committed;
            continue;
        }
        let headers = v["headers"].as_array().expect("headers").iter().map(|h| (h[0].as_str().expect("name").to_string(), bytes(&h[1]))).collect();
        let content = (bytes(&v["key"]), bytes(&v["value"]), headers, v["timestamp"].as_i64().expect("timestamp"));
        read.entry(p).or_default().1.push((v["offset"].as_i64().expect("offset"), content));
    }
    read
}

/// Checks that confluent-kafka, joining `group` on the target, resumes each partition at
/// `committed` (where the group stopped on the source; one mirror run keeps offsets) and reads
/// exactly `rest`: the source records the group had not consumed yet.
async fn assert_confluent_resumes(bootstrap: &str, group: &str, remote: &str, committed: &[usize], rest: &[&[Content]]) {
    let read = confluent_resume(bootstrap, group, remote, committed.len() as i32).await;
    for (p, (want_from, want)) in committed.iter().zip(rest).enumerate() {
        let (from, records) = &read[&(p as i32)];
        assert_eq!(*from, *want_from as i64, "{group} partition {p}: confluent-kafka's committed offset on the target");
        if let Some((first, content)) = records.first() {
            assert_eq!((*first, content), (*from, &want[0]), "{group} partition {p}: the first record read is the first one not consumed on the source");
        }
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (*from..*from + want.len() as i64).collect::<Vec<_>>(), "{group} partition {p}: offsets read");
        let contents: Vec<&Content> = records.iter().map(|(_, c)| c).collect();
        assert_eq!(contents, want.iter().collect::<Vec<_>>(), "{group} partition {p}: what confluent-kafka reads on the target");
        println!("{group} partition {p}: confluent-kafka resumes at {from} and reads the {} records left on the source, content identical", records.len());
    }
}

pub(crate) fn failover_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("JSON")
}

/// Each partition of a failover report's point: (target offset, source offset, known source
/// end, lost records).
fn point_partitions(r: &serde_json::Value) -> Vec<(i64, i64, i64, i64)> {
    let n = |p: &serde_json::Value, field: &str| p[field].as_i64().unwrap_or_else(|| panic!("{field} in {p}"));
    r["point"]["partitions"].as_array().expect("partitions").iter().map(|p| (n(p, "target_offset"), n(p, "source_offset"), n(p, "known_source_end"), n(p, "lost_records"))).collect()
}

async fn unplanned_failover_then_failback(kind: Kind) {
    let mut a = KillableSource::start(kind).await;
    let b = TestCluster::start(kind, Side::B).await;
    let (a_addr, b_addr) = (a.bootstrap(), b.bootstrap());
    let (source, target) = (client(&a_addr).await, client(&b_addr).await);
    let aliases = Aliases::unique();
    let flow_name = aliases.flow();
    let orders = unique_topic("orders");
    let (orders, remote) = (orders.as_str(), aliases.remote(&orders));
    let g = |name: &str| format!("{name}-{}", aliases.source);
    let (billing, audit) = (g("billing"), g("audit"));
    assert!(source.create_topic(orders, 2, &BTreeMap::new()).await.expect("create topic"));
    wait_leaders(&source, orders, 2).await;
    let mut s = Connection::connect(&a_addr).await.expect("connect");
    for p in 0..2 {
        for k in 0..3 {
            produce(&mut s, orders, p, batch(&format!("a{p}-{k}"), 20, now_ms(), Compression::Lz4)).await;
        }
    }
    commit(&source, &billing, &[(orders, 0, 25), (orders, 1, 60)]).await;
    commit(&source, &audit, &[(orders, 0, 60), (orders, 1, 0)]).await;

    let dir = tempfile::tempdir().expect("dir");
    let (toml, config) = write_config(dir.path(), &aliases, &a_addr, &b_addr, &format!("\"{orders}\""));
    let config = config.to_str().expect("path");
    let flow = tern_mirror::config::parse(&toml).expect("config").flows.remove(0);
    let mirror = TestMirror::start(&toml);
    wait_caught_up(&source, &target, orders, &remote, 2).await;
    let synced = |g: &str, want: [i64; 2]| {
        let (target, remote, g) = (&target, &remote, g.to_string());
        async move {
            wait_until(Duration::from_secs(30), &format!("{g} synced onto the target"), async || {
                let o = target.all_committed_offsets(&g).await.ok()?;
                (o.get(&(remote.clone(), 0)) == Some(&want[0]) && o.get(&(remote.clone(), 1)) == Some(&want[1])).then_some(())
            })
            .await
        }
    };
    synced(&billing, [25, 60]).await;
    synced(&audit, [60, 0]).await;

    // 7 records reach A but never B: the flow is paused when they are written, then A dies.
    hold_back(&target, &aliases, &mirror).await;
    produce(&mut s, orders, 0, batch("stranded", 7, now_ms(), Compression::None)).await;
    wait_until(Duration::from_secs(30), "the worker to record A's new end on B", async || {
        let (ends, _) = tern_mirror::failover::read_state(&flow, &target).await.ok()?;
        (ends.get(&(orders.to_string(), 0)).map(|k| k.end) == Some(67)).then_some(())
    })
    .await;
    let a_before = [partition_content(&a_addr, orders, 0).await, partition_content(&a_addr, orders, 1).await];
    drop(s);
    a.kill_9().await;
    tern_mirror::control::update(&target, &aliases.target, &flow_name, "test: unpause", |c| c.paused = false).await.expect("unpause");

    let report_path = dir.path().join("failover.json");
    let started = std::time::Instant::now();
    let (code, _) = tern(&["failover", "--config", config, "--flow", &flow_name, "--unplanned", "--json", report_path.to_str().expect("path")]);
    println!("{kind:?}: unplanned failover took {:?}", started.elapsed());
    assert_eq!(code, 0);
    let r = failover_json(&report_path);
    assert_eq!(r["state"], "failed-over");
    assert_eq!(r["lost_records"], 7, "the records written on A after replication stopped");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let points = point_partitions(&r);
    assert_eq!(points, vec![(60, 60, 67, 7), (60, 60, 60, 0)]);
    assert_eq!(tern_mirror::control::read(&target, &aliases.target, &flow_name).await.expect("control").state, tern_mirror::control::FailoverState::FailedOver);
    let (_, state) = tern(&["state", "--config", config]);
    assert!(state.contains("failed-over"), "{state}");

    // Consumers started on B from the synced groups read exactly what they had not consumed
    // on A (the 7 lost records aside), and nothing they had: Tern's own consumer, and
    // confluent-kafka.
    for (g, committed) in [(&billing, [25usize, 60]), (&audit, [60, 0])] {
        let read = consume(&b_addr, g, &remote).await;
        for p in 0..2 {
            let (from, records) = &read[&(p as i32)];
            let want = &a_before[p][committed[p]..60];
            assert_eq!(*from, committed[p] as i64, "{g} {p}");
            assert_eq!(records[..], want[..], "{g} partition {p}: what the consumer reads on B");
            println!("{g} partition {p}: resumes on B at {from}, reads {} records, none it had", records.len());
        }
        let rest = [&a_before[0][committed[0]..60], &a_before[1][committed[1]..60]];
        assert_confluent_resumes(&b_addr, g, &remote, &committed, &rest).await;
    }

    // Life on B: producers write to the remote topic; billing reads 10 of the 15 new records
    // on partition 0 and all 5 on partition 1. audit reads nothing.
    let mut bc = Connection::connect(&b_addr).await.expect("connect");
    // Repeated header keys and a null header value must survive the copy home.
    let headers = [("hop", Some("b")), ("hop", Some("again")), ("empty", None)];
    produce(&mut bc, &remote, 0, batch_with_headers("on-b-0", 15, now_ms(), Compression::None, &headers)).await;
    produce(&mut bc, &remote, 1, batch_with_headers("on-b-1", 5, now_ms(), Compression::Zstd, &headers)).await;
    commit(&target, &billing, &[(&remote, 0, 70), (&remote, 1, 65)]).await;
    let written_on_b = [partition_content(&b_addr, &remote, 0).await[60..].to_vec(), partition_content(&b_addr, &remote, 1).await[60..].to_vec()];

    // A returns; failback copies B's writes home and moves the groups back.
    a.restart().await;
    wait_leaders(&client(&a_addr).await, orders, 2).await;
    let report_path = dir.path().join("failback.json");
    let started = std::time::Instant::now();
    let (code, _) = tern(&["failback", "--config", config, "--flow", &flow_name, "--json", report_path.to_str().expect("path")]);
    println!("{kind:?}: failback took {:?}", started.elapsed());
    assert_eq!(code, 0);
    let r = failover_json(&report_path);
    assert_eq!(r["state"], "active");
    assert_eq!(r["copied_records"], 20);
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let a_after = [partition_content(&a_addr, orders, 0).await, partition_content(&a_addr, orders, 1).await];
    assert_eq!(a_after[0][..67], a_before[0][..], "A kept everything it had, the 7 stranded records included");
    assert_eq!(a_after[0][67..], written_on_b[0][..], "B's writes reached A, in order, intact");
    assert_eq!(a_after[1][60..], written_on_b[1][..]);
    // Groups on A: billing had read 10 of the copied records on partition 0 but never the 7
    // stranded ones before them, so it resumes at the first stranded record; on partition 1
    // it resumes after the 5 it read. audit resumes where it was on B.
    let billing_on_a = consume(&a_addr, &billing, orders).await;
    assert_eq!(billing_on_a[&0].0, 60);
    assert_eq!(billing_on_a[&0].1[..], a_after[0][60..], "billing on A: the stranded records, then B's writes");
    assert_eq!(billing_on_a[&1].0, 65, "billing on A: after the 5 it read on B");
    let audit_on_a = consume(&a_addr, &audit, orders).await;
    assert_eq!((audit_on_a[&0].0, audit_on_a[&1].0), (60, 0));
    assert_eq!(audit_on_a[&1].1[..], a_after[1][..]);
    let moved = r["groups"].as_array().expect("groups");
    let billing_p0 = moved.iter().find(|m| m["group"] == billing.as_str()).expect("billing")["partitions"][0].clone();
    assert_eq!(billing_p0["redelivered_records"], 10, "{billing_p0}");

    // The flow is active again and resumes after the copied records: new records on A reach
    // B once, and the copied ones are not sent back to B.
    let mut s = Connection::connect(&a_addr).await.expect("connect");
    produce(&mut s, orders, 0, batch("after-0", 3, now_ms(), Compression::None)).await;
    produce(&mut s, orders, 1, batch("after-1", 4, now_ms(), Compression::None)).await;
    wait_until(Duration::from_secs(60), "new records on A to reach B after failback", async || {
        (end(&target, &remote, 0).await == 78 && end(&target, &remote, 1).await == 69).then_some(())
    })
    .await;
    let b_after = [partition_content(&b_addr, &remote, 0).await, partition_content(&b_addr, &remote, 1).await];
    assert_eq!(b_after[0][75..], partition_content(&a_addr, orders, 0).await[82..]);
    assert_eq!(b_after[1][..], partition_content(&a_addr, orders, 1).await[..], "partition 1: B is again an exact copy of A");
    mirror.stop().await;
}

over_kinds!(unplanned_failover_then_failback {
    tern_unplanned_failover_after_kill_9_then_failback_loses_nothing: (Tern);
    kafka_unplanned_failover_after_kill_9_then_failback_loses_nothing: (Kafka);
});

async fn planned_failover_then_failback(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let aliases = Aliases::unique();
    let flow_name = aliases.flow();
    let payments = unique_topic("payments");
    let (payments, remote) = (payments.as_str(), aliases.remote(&payments));
    let ledger = format!("ledger-{}", aliases.source);
    src.create_topic(payments, 1, &[]).await;
    let dir = tempfile::tempdir().expect("dir");
    let (toml, config) = write_config(dir.path(), &aliases, &src.bootstrap(), &dst.bootstrap(), &format!("\"{payments}\""));
    let config = config.to_str().expect("path");
    let mirror = TestMirror::start(&toml);
    let mut s = Connection::connect(&src.bootstrap()).await.expect("connect");
    for k in 0..5 {
        produce(&mut s, payments, 0, batch(&format!("p{k}"), 40, now_ms(), Compression::Zstd)).await;
    }
    commit(&source, &ledger, &[(payments, 0, 130)]).await;
    // Failover right away: the drain waits for whatever is still in flight.
    let report_path = dir.path().join("failover.json");
    let started = std::time::Instant::now();
    let (code, _) = tern(&["failover", "--config", config, "--flow", &flow_name, "--planned", "--timeout", "30s", "--json", report_path.to_str().expect("path")]);
    println!("{kind:?}: planned failover took {:?}", started.elapsed());
    assert_eq!(code, 0);
    let r = failover_json(&report_path);
    assert_eq!((r["mode"].as_str(), r["drained"].as_bool(), r["lost_records"].as_i64()), (Some("planned"), Some(true), Some(0)));
    assert_eq!(end(&target, &remote, 0).await, 200, "drained: everything reached the target");
    assert_eq!(target.all_committed_offsets(&ledger).await.expect("offsets").get(&(remote.clone(), 0)), Some(&130), "final group offsets synced");
    let flow = tern_mirror::config::parse(&toml).expect("config").flows.remove(0);
    assert_eq!(source.describe_group(&tern_mirror::names::group_id(&flow)).await.expect("group").members, 0, "the workers left the flow's group");

    // confluent-kafka, joining the group on the target, reads exactly the 70 records the group
    // had not consumed on the source.
    let on_source = partition_content(&src.bootstrap(), payments, 0).await;
    assert_confluent_resumes(&dst.bootstrap(), &ledger, &remote, &[130], &[&on_source[130..]]).await;

    // Failed over, nothing replicates.
    produce(&mut s, payments, 0, batch("late", 5, now_ms(), Compression::None)).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // give a (wrongly) running worker the time to copy
    assert_eq!(end(&target, &remote, 0).await, 200, "a failed-over flow does not replicate");

    // Failback with nothing written on B: the group returns to where it was, and the 5
    // records written on A meanwhile replicate once the flow is active again.
    let report_path = dir.path().join("failback.json");
    let (code, _) = tern(&["failback", "--config", config, "--flow", &flow_name, "--json", report_path.to_str().expect("path")]);
    assert_eq!(code, 0);
    let r = failover_json(&report_path);
    assert_eq!((r["state"].as_str(), r["copied_records"].as_i64()), (Some("active"), Some(0)));
    assert_eq!(source.all_committed_offsets(&ledger).await.expect("offsets").get(&(payments.to_string(), 0)), Some(&130));
    wait_caught_up(&source, &target, payments, &remote, 1).await;
    assert_eq!(partition_content(&dst.bootstrap(), &remote, 0).await, partition_content(&src.bootstrap(), payments, 0).await, "an exact copy, nothing twice");
    mirror.stop().await;
}

over_kinds!(planned_failover_then_failback {
    tern_planned_failover_drains_the_flow_and_failback_returns_it_to_active: (Tern);
    kafka_planned_failover_drains_the_flow_and_failback_returns_it_to_active: (Kafka);
});

/// An exactly-once flow through a drill, a planned failover and a failback. Each transaction
/// the worker commits leaves a marker on the target, so the remote partitions' offsets run
/// ahead of the source's: groups reach the target through the offset map, and what consumers
/// read there is checked record by record against the source, not offset by offset.
async fn an_exactly_once_flow_drills_fails_over_and_back(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let aliases = Aliases::unique();
    let flow_name = aliases.flow();
    let ledger = unique_topic("ledger");
    let (ledger, remote) = (ledger.as_str(), aliases.remote(&ledger));
    let billing = format!("billing-{}", aliases.source);
    src.create_topic(ledger, 2, &[("retention.ms", "-1")]).await;
    let dir = tempfile::tempdir().expect("dir");
    let (toml, config) = write_config(dir.path(), &aliases, &src.bootstrap(), &dst.bootstrap(), &format!("\"{ledger}\""));
    let toml = toml.replace("topics = [", "delivery = \"exactly-once\"\ntopics = [");
    std::fs::write(&config, &toml).expect("config");
    let config = config.to_str().expect("path");
    let mirror = TestMirror::start(&toml);

    // Four rounds of 25 records per partition, each replicated before the next is written:
    // at least four transactions, so at least four markers, per remote partition.
    let mut s = Connection::connect(&src.bootstrap()).await.expect("connect");
    let replicated = |p: i32| {
        let (src, dst, remote, target) = (src.bootstrap(), dst.bootstrap(), remote.clone(), &target);
        // The remote topic may not exist yet.
        async move { end(target, &remote, p).await > 0 && partition_content(&dst, &remote, p).await == partition_content(&src, ledger, p).await }
    };
    for round in 0..4 {
        for p in 0..2 {
            produce(&mut s, ledger, p, varied_batch(p, round, 25)).await;
        }
        wait_until(Duration::from_secs(60), &format!("round {round} on the target"), async || (replicated(0).await && replicated(1).await).then_some(())).await;
    }
    let markers: Vec<i64> = [end(&target, &remote, 0).await - 100, end(&target, &remote, 1).await - 100].into();
    println!("{kind:?}: after 100 records per partition the remote partitions end {markers:?} offsets further (transaction markers)");
    assert!(markers.iter().all(|m| *m >= 4), "each round committed a transaction of its own: {markers:?}");

    // billing stopped mid-way through round 1 on partition 0 and at round 3's first record on 1.
    let committed = [40usize, 75];
    commit(&source, &billing, &[(ledger, 0, committed[0] as i64), (ledger, 1, committed[1] as i64)]).await;
    let translated = wait_until(Duration::from_secs(30), "billing synced onto the target", async || {
        let o = target.all_committed_offsets(&billing).await.ok()?;
        Some([*o.get(&(remote.clone(), 0))?, *o.get(&(remote.clone(), 1))?])
    })
    .await;
    println!("{kind:?}: billing at {committed:?} on the source is at {translated:?} on the target");
    assert!(translated[1] > committed[1] as i64, "the markers before it move partition 1's offset: {translated:?}");

    // The drill translates the group through the offset map and checks it against the data.
    let json = dir.path().join("drill.json");
    let (code, report, _) = drill_json(Path::new(config), &json, &flow_name, &billing);
    assert_eq!(code, 0, "{:?}", report.groups);
    assert_eq!((report.verdict, report.rpo_records, report.redelivered_records, report.missed_records), (Verdict::Pass, 0, 0, 0));
    let g = group(&report, &billing);
    assert_eq!(g.read_through, Some(ReadThrough::Read), "{}", g.reason);
    let checks: Vec<(i64, Option<i64>, Check)> = g.partitions.iter().map(|p| (p.committed, p.translated, p.check)).collect();
    assert_eq!(checks, vec![(40, Some(translated[0]), Check::Match), (75, Some(translated[1]), Check::Match)]);

    // A planned failover drains the flow; confluent-kafka (read_committed) joining billing on
    // the target reads exactly the source records billing had not consumed.
    let report_path = dir.path().join("failover.json");
    let (code, _) = tern(&["failover", "--config", config, "--flow", &flow_name, "--planned", "--timeout", "30s", "--json", report_path.to_str().expect("path")]);
    assert_eq!(code, 0);
    let r = failover_json(&report_path);
    assert_eq!((r["mode"].as_str(), r["drained"].as_bool(), r["lost_records"].as_i64()), (Some("planned"), Some(true), Some(0)), "{r}");
    let on_source = [partition_content(&src.bootstrap(), ledger, 0).await, partition_content(&src.bootstrap(), ledger, 1).await];
    let read = confluent_resume(&dst.bootstrap(), &billing, &remote, 2).await;
    for p in 0..2 {
        let (from, records) = &read[&(p as i32)];
        assert_eq!(*from, translated[p], "partition {p}: confluent-kafka's committed offset on the target");
        let contents: Vec<&Content> = records.iter().map(|(_, c)| c).collect();
        assert_eq!(contents, on_source[p][committed[p]..].iter().collect::<Vec<_>>(), "partition {p}: what billing reads on the target");
        println!("{kind:?} partition {p}: confluent-kafka resumes billing at {from} on the target and reads the {} records it had not consumed, content identical", records.len());
    }

    // Failback with nothing written on the target: billing returns to where it was on the
    // source, and records written meanwhile replicate once, exactly.
    produce(&mut s, ledger, 0, varied_batch(0, 4, 25)).await;
    let report_path = dir.path().join("failback.json");
    let (code, _) = tern(&["failback", "--config", config, "--flow", &flow_name, "--json", report_path.to_str().expect("path")]);
    assert_eq!(code, 0);
    let r = failover_json(&report_path);
    assert_eq!((r["state"].as_str(), r["copied_records"].as_i64()), (Some("active"), Some(0)), "{r}");
    let back = source.all_committed_offsets(&billing).await.expect("offsets");
    assert_eq!((back.get(&(ledger.to_string(), 0)), back.get(&(ledger.to_string(), 1))), (Some(&40), Some(&75)));
    wait_until(Duration::from_secs(60), "the records written while failed over on the target", async || (replicated(0).await && replicated(1).await).then_some(())).await;
    // read_committed, from billing's offsets on the target: the source's records after them,
    // the 25 written while failed over included, each once.
    let on_source = [partition_content(&src.bootstrap(), ledger, 0).await, partition_content(&src.bootstrap(), ledger, 1).await];
    let read = confluent_resume(&dst.bootstrap(), &billing, &remote, 2).await;
    for p in 0..2 {
        let contents: Vec<&Content> = read[&(p as i32)].1.iter().map(|(_, c)| c).collect();
        assert_eq!(contents, on_source[p][committed[p]..].iter().collect::<Vec<_>>(), "partition {p}: what billing reads on the target after failback");
    }
    assert_eq!((read[&0].1.len(), read[&1].1.len()), (85, 25));

    // An unplanned failover while 7 records written to partition 1 are held back: they are
    // what it reports lost, and the failover point pairs each remote partition's end (markers
    // included) with the source offset it stands for.
    hold_back(&target, &aliases, &mirror).await;
    produce(&mut s, ledger, 1, varied_batch(1, 5, 7)).await;
    let flow = tern_mirror::config::parse(&toml).expect("config").flows.remove(0);
    wait_until(Duration::from_secs(30), "the worker to record the source's new end on the target", async || {
        let (ends, _) = tern_mirror::failover::read_state(&flow, &target).await.ok()?;
        (ends.get(&(ledger.to_string(), 1)).map(|k| k.end) == Some(107)).then_some(())
    })
    .await;
    // A drill counts the 7 as its RPO: the remote partition's last offsets are markers, not
    // records of the source.
    let (code, held, _) = drill_json(Path::new(config), &json, &flow_name, &billing);
    assert_eq!((code, held.rpo_records), (1, 7), "{:?}", held.partitions);
    let rpo: Vec<(i32, i64, i64)> = held.partitions.iter().map(|p| (p.partition, p.replicated_end, p.rpo_records)).collect();
    assert_eq!(rpo, vec![(0, 125, 0), (1, 100, 7)]);
    let remote_ends = [end(&target, &remote, 0).await, end(&target, &remote, 1).await];
    let report_path = dir.path().join("unplanned.json");
    let (code, _) = tern(&["failover", "--config", config, "--flow", &flow_name, "--unplanned", "--json", report_path.to_str().expect("path")]);
    assert_eq!(code, 0);
    let r = failover_json(&report_path);
    assert_eq!((r["state"].as_str(), r["lost_records"].as_i64()), (Some("failed-over"), Some(7)), "{r}");
    let points = point_partitions(&r);
    assert_eq!(points, vec![(remote_ends[0], 125, 125, 0), (remote_ends[1], 100, 107, 7)], "{r}");
    println!("{kind:?}: unplanned failover of the exactly-once flow: remote ends {remote_ends:?} stand for source offsets 125 and 100; 7 records lost");
    mirror.stop().await;
}

over_kinds!(an_exactly_once_flow_drills_fails_over_and_back {
    tern_an_exactly_once_flow_drills_fails_over_and_fails_back_exactly: (Tern);
    kafka_an_exactly_once_flow_drills_fails_over_and_fails_back_exactly: (Kafka);
});
