//! Leader changes on Apache Kafka: a three-broker KRaft cluster (replication factor 3,
//! `min.insync.replicas=2`) loses, to kill -9, the broker that leads a replicated partition while
//! a producer streams into it; first as the flow's source, then as its target. The mirror must
//! carry on by itself, every record the source acknowledged must reach the target exactly once,
//! and lag must return to zero. Then the source's group coordinator goes away mid-stream (the
//! Kafka node coordinating the flow's group killed; on `tern broker`, the broker restarted):
//! the worker finds the coordinator again and keeps its session.

use std::time::{Duration, Instant};

use tern_kafka::client::{Client, ClientConfig, LATEST};

use crate::apache_kafka::{self, KafkaCluster};
use crate::clusters::*;
use crate::helpers::*;
use crate::mirror::{flow_config, Aliases, TestMirror};

async fn end(c: &Client, topic: &str, partition: i32) -> i64 {
    c.list_offset(topic, partition, LATEST).await.map(|(o, _)| o).unwrap_or(-1)
}

/// Starts the steady producer (tests/compat/confluent_stream.py) in the background.
fn stream(bootstrap: &str, topic: &str, partitions: i32, seconds: u32, tag: &str) -> tokio::process::Child {
    tokio::process::Command::new(python())
        .arg(compat_script("confluent_stream.py"))
        .args(["--bootstrap", bootstrap, "--topic", topic, "--partitions", &partitions.to_string()])
        .args(["--seconds", &seconds.to_string(), "--rate", "400", "--tag", tag])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start confluent_stream.py")
}

/// Values the producer saw acknowledged, by partition.
async fn acknowledged(child: tokio::process::Child, partitions: i32) -> Vec<Vec<String>> {
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output()).await.expect("producer finishes").expect("producer output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("producer: {}\n{}", stdout.lines().last().unwrap_or_default(), String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join("\n"));
    assert!(out.status.success(), "producer failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut acked = vec![Vec::new(); partitions as usize];
    for line in stdout.lines() {
        let mut parts = line.split(' ');
        if parts.next() == Some("ACKED") {
            let p: usize = parts.next().and_then(|p| p.parse().ok()).expect("partition");
            acked[p].push(parts.next().expect("value").to_string());
        }
    }
    acked
}

/// The broker that leads `topic`/`partition`.
async fn leader_of(c: &Client, topic: &str, partition: i32) -> i32 {
    wait_until(Duration::from_secs(30), "a leader", async || c.refresh_metadata(None).await.ok()?.leader(topic, partition)).await
}

/// One scenario: the flow runs between `source` and `target` (one of them `three`), and the
/// leader of partition 0 (of the source topic, or of the remote topic on the target) dies.
async fn kill_a_leader_mid_stream(three: &mut KafkaCluster, three_is_source: bool) {
    let shared = apache_kafka::shared().await;
    let (source_bootstrap, target_bootstrap) = if three_is_source { (three.bootstrap(), shared.b.bootstrap()) } else { (shared.a.bootstrap(), three.bootstrap()) };
    let (source, target) = (Client::connect(ClientConfig::new(&source_bootstrap)).await.expect("source"), Client::connect(ClientConfig::new(&target_bootstrap)).await.expect("target"));
    let topic = unique_topic("stream");
    let partitions = 3;
    assert!(source.create_topic(&topic, partitions, &Default::default()).await.expect("create"));
    wait_leaders(&source, &topic, partitions).await;
    let aliases = Aliases::unique();
    let remote = aliases.remote(&topic);
    let mirror = TestMirror::start(&flow_config(&aliases, &source_bootstrap, &target_bootstrap, &format!("\"{topic}\"")));
    wait_until(Duration::from_secs(60), "the remote topic", async || target.topic_metadata(&remote).await.ok().flatten().map(|_| ())).await;

    let producer = stream(&source_bootstrap, &topic, partitions, 14, &aliases.source);
    // Let records flow, then kill the leader of partition 0 on the side under test.
    let watched = Client::connect(ClientConfig::new(&three.bootstrap())).await.expect("client of the three-broker cluster");
    let (on_three, _) = if three_is_source { (topic.clone(), &source) } else { (remote.clone(), &target) };
    wait_until(Duration::from_secs(30), "records on the target", async || (end(&target, &remote, 0).await > 200).then_some(())).await;
    let victim = leader_of(&watched, &on_three, 0).await;
    let before = end(&target, &remote, 0).await;
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| three.kill_node(victim));
    println!("killed broker {victim}, the leader of {on_three}/0, with {before} records of partition 0 on the target");
    // Recovered: partition 0 moves on on the target under a new leader.
    let new_leader = wait_until(Duration::from_secs(120), "a new leader", async || {
        let l = watched.refresh_metadata(None).await.ok()?.leader(&on_three, 0)?;
        (l != victim).then_some(l)
    })
    .await;
    wait_until(Duration::from_secs(120), "replication of partition 0 to resume", async || (end(&target, &remote, 0).await > before + 50).then_some(())).await;
    let recovered = killed_at.elapsed();
    println!("{} as {}: broker {new_leader} took over; replication of partition 0 resumed {:.1} s after the kill", if three_is_source { "source" } else { "target" }, "three-broker cluster", recovered.as_secs_f64());

    let acked = acknowledged(producer, partitions).await;
    let status = mirror.status[&aliases.flow()].clone();
    assert_copied_exactly(&source, &target, &topic, &remote, partitions, &acked, &status).await;
    mirror.stop().await;
    tokio::task::block_in_place(|| three.restart_node(victim));
}

/// Once the producer is done: every partition of `remote` on the target is the source's
/// records in order, each once, every record acknowledged to the producer among them, and the
/// mirror's status shows no lag and no error.
async fn assert_copied_exactly(source: &Client, target: &Client, topic: &str, remote: &str, partitions: i32, acked: &[Vec<String>], status: &tern_mirror::status::FlowStatus) {
    for p in 0..partitions {
        let want = end(source, topic, p).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let _ = target.refresh_metadata(None).await;
            if end(target, remote, p).await == want {
                break;
            }
            assert!(Instant::now() < deadline, "{remote}/{p} did not catch up with {want}: {:?}", status.snapshot().partitions.get(&(topic.to_string(), p)));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let on_source = read_partition(source, topic, p).await;
        let on_target = read_partition(target, remote, p).await;
        assert_eq!(on_target, on_source, "partition {p}: the target holds the source's records, in order, each once");
        let values: Vec<String> = on_target.iter().map(|r| String::from_utf8_lossy(r.1.as_deref().unwrap_or_default()).to_string()).collect();
        let mut unique = values.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), values.len(), "partition {p}: a record twice on the target");
        let missing: Vec<&String> = acked[p as usize].iter().filter(|v| !values.contains(v)).collect();
        assert!(missing.is_empty(), "partition {p}: acknowledged records missing on the target: {missing:?}");
        println!("partition {p}: {} records, {} acknowledged to the producer, all on the target once", values.len(), acked[p as usize].len());
    }
    // Lag back to zero, as the mirror sees it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let snap = status.snapshot();
        // Only the topic's partitions: a source that was a flow's target before also holds
        // a heartbeats topic, which flows replicate too.
        let mine: Vec<_> = snap.partitions.iter().filter(|((t, _), _)| t == topic).map(|(_, s)| s).collect();
        if mine.len() == partitions as usize && mine.iter().all(|s| s.error.is_none() && s.source_end_offset == s.replicated_offset) {
            break;
        }
        assert!(Instant::now() < deadline, "no lag 0 in the mirror's status within 60 s: {:?}, errors {:?}", snap.partitions, snap.errors);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What takes the flow's group coordinator on the source away mid-stream.
enum Outage<'a> {
    /// The node of a three-broker Kafka cluster that coordinates the group, killed with -9:
    /// another node takes the group over from `__consumer_offsets`.
    KillCoordinator(&'a mut KafkaCluster),
    /// `tern broker`, the whole source, stopped and started again on its port and data.
    Restart(&'a mut TestBroker),
}

/// The source's group coordinator goes away while a producer streams into the source and
/// comes back (on another node, or the same one restarted) within the flow's session timeout.
/// The worker finds it again: it stays in its generation (no session lost, no rejoin), and the
/// copy is exact. A worker that kept heartbeating the connection it joined on would hear
/// nothing for the whole session and give its partitions up.
async fn the_group_coordinator_goes_away(mut outage: Outage<'_>) {
    let (source_bootstrap, kind) = match &outage {
        Outage::KillCoordinator(three) => (three.bootstrap(), Kind::Kafka),
        Outage::Restart(broker) => (broker.bootstrap(), Kind::Tern),
    };
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (Client::connect(ClientConfig::new(&source_bootstrap)).await.expect("source"), dst.client().await);
    let topic = unique_topic("coordinator");
    let partitions = 3;
    assert!(source.create_topic(&topic, partitions, &Default::default()).await.expect("create"));
    wait_leaders(&source, &topic, partitions).await;
    let aliases = Aliases::unique();
    let remote = aliases.remote(&topic);
    // Heartbeats go unanswered for at most 12 s before the worker stops producing.
    let config = flow_config(&aliases, &source_bootstrap, &dst.bootstrap(), &format!("\"{topic}\"")) + "session_timeout = \"15s\"\n";
    let mirror = TestMirror::start(&config);
    let status = mirror.status[&aliases.flow()].clone();
    wait_until(Duration::from_secs(60), "the remote topic", async || target.topic_metadata(&remote).await.ok().flatten().map(|_| ())).await;
    let producer = stream(&source_bootstrap, &topic, partitions, 24, &aliases.source);
    wait_until(Duration::from_secs(30), "records on the target", async || (end(&target, &remote, 0).await > 200).then_some(())).await;
    let joined = status.snapshot().group_session;
    assert!(joined.generation.is_some() && joined.sessions_lost == 0, "{joined:?}");

    let mut before = Vec::new();
    for p in 0..partitions {
        before.push(end(&target, &remote, p).await);
    }
    let gone_at = Instant::now();
    let what = match &mut outage {
        Outage::KillCoordinator(three) => {
            let group = tern_mirror::names::group_id(&tern_mirror::config::parse(&config).expect("config").flows.remove(0));
            let coordinator = source.group_coordinator(&group).await.expect("the group's coordinator").addr().to_string();
            let node = three.nodes.iter().find(|n| n.address() == coordinator).map(|n| n.id).unwrap_or_else(|| panic!("no node at {coordinator}"));
            tokio::task::block_in_place(|| three.kill_node(node));
            format!("killed Kafka node {node}, the coordinator of {group}")
        }
        Outage::Restart(broker) => {
            broker.restart().await;
            "restarted the source tern broker".to_string()
        }
    };
    for p in 0..partitions {
        wait_until(Duration::from_secs(120), "replication to resume on every partition", async || (end(&target, &remote, p).await > before[p as usize] + 50).then_some(())).await;
    }
    println!("{what}; replication of every partition resumed {:.1} s later", gone_at.elapsed().as_secs_f64());

    let acked = acknowledged(producer, partitions).await;
    assert_copied_exactly(&source, &target, &topic, &remote, partitions, &acked, &status).await;
    let after = status.snapshot().group_session;
    println!("group session before the outage {joined:?}, after {after:?}, {:.1} s after it", gone_at.elapsed().as_secs_f64());
    assert!(gone_at.elapsed() > Duration::from_secs(13), "checked before a silent session would have been given up");
    assert_eq!(after, joined, "the worker lost its session or rejoined over a coordinator that came back within the session timeout");
    mirror.stop().await;
    if let Outage::KillCoordinator(three) = outage {
        let node = three.nodes.iter().position(|n| !n.is_running()).map(|i| i as i32 + 1);
        if let Some(node) = node {
            tokio::task::block_in_place(|| three.restart_node(node));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_rides_out_a_leader_killed_on_the_source_and_on_the_target() {
    init_logs();
    let mut three = tokio::task::spawn_blocking(|| KafkaCluster::start(3)).await.expect("three-broker cluster");
    kill_a_leader_mid_stream(&mut three, true).await;
    kill_a_leader_mid_stream(&mut three, false).await;
    the_group_coordinator_goes_away(Outage::KillCoordinator(&mut three)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_keeps_its_session_over_a_restart_of_a_tern_source() {
    init_logs();
    let mut source = TestBroker::start().await;
    the_group_coordinator_goes_away(Outage::Restart(&mut source)).await;
}
