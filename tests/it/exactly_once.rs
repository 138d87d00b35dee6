//! Exactly-once delivery (`delivery = "exactly-once"`), into `tern broker` and into Apache
//! Kafka: workers die in the middle of the stream, and a `read_committed` consumer of the target
//! (confluent-kafka) still sees every source record exactly once. The same scenario in
//! at-least-once delivery, run beside it on the same stream, shows the duplicates exactly-once
//! delivery prevents.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::records::Compression;

use crate::clusters::{over_kinds, Kind, Side, TestCluster};
use crate::helpers::*;
use crate::mirror::{flow_config, Aliases, Worker};

const PARTITIONS: i32 = 4;

/// Every partition's values, in offset order, as confluent-kafka reads `topic` at `isolation`
/// once at least `at_least` records are there.
pub(crate) async fn read_topic(bootstrap: &str, topic: &str, isolation: &str, at_least: usize) -> BTreeMap<i32, Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Read {
        partitions: BTreeMap<String, Vec<String>>,
    }
    let mut cmd = Command::new(python());
    cmd.arg(compat_script("confluent_read_topic.py")).args(["--bootstrap", bootstrap, "--topic", topic, "--isolation", isolation, "--at-least", &at_least.to_string()]);
    let out = run_client(cmd, Duration::from_secs(300)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with('{')).expect("the reader's JSON line");
    let read: Read = serde_json::from_str(line).expect("JSON");
    read.partitions.into_iter().map(|(p, v)| (p.parse().expect("partition"), v)).collect()
}

fn total(read: &BTreeMap<i32, Vec<String>>) -> usize {
    read.values().map(Vec::len).sum()
}

/// Writes batches of ten records (values `p<partition>-r<round>-<i>`) to every partition of
/// `topic` every 20 ms until the flag is cleared; the task returns the number of rounds.
async fn stream(src: &TestCluster, topic: &str) -> (Arc<AtomicBool>, tokio::task::JoinHandle<usize>) {
    let producing = Arc::new(AtomicBool::new(true));
    let (client, flag, topic) = (src.client().await, producing.clone(), topic.to_string());
    let task = tokio::spawn(async move {
        let mut round = 0;
        while flag.load(Ordering::SeqCst) {
            for p in 0..PARTITIONS {
                let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
                client.produce(&topic, p, batch(&format!("p{p}-r{round}"), 10, ts, Compression::Lz4), -1, 30_000).await.expect("produce to the source");
            }
            round += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        round
    });
    (producing, task)
}

/// Waits for a worker process to end by itself (a failpoint aborts it).
async fn wait_exit(worker: &mut Worker, what: &str) {
    wait_until(Duration::from_secs(90), what, async || worker.child.try_wait().expect("wait").map(|_| ())).await;
}

async fn wait_assigned(workers: &[&Worker], what: &str) {
    wait_until(Duration::from_secs(90), what, async || workers.iter().all(|w| w.assigned() == Some(PARTITIONS as usize)).then_some(())).await;
}

/// One flow from `src` to `dst` with its own aliases, in a config file of its own.
fn config(dir: &std::path::Path, aliases: &Aliases, src: &str, dst: &str, topic: &str, delivery: &str) -> std::path::PathBuf {
    let topics = format!("\"{topic}\"");
    let text = flow_config(aliases, src, dst, &topics).replace(&format!("topics = [{topics}]\n"), &format!("topics = [{topics}]\ndelivery = \"{delivery}\"\n"))
        + "session_timeout = \"6s\"\nrebalance_timeout = \"10s\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n";
    let path = dir.join(format!("{delivery}.toml"));
    std::fs::write(&path, text).expect("config");
    path
}

/// Two workers, one per delivery mode, replicate the same stream from `src` to `dst`. Each
/// dies twice while records flow: first on a failpoint right after the target took records it
/// was not told to keep (exactly-once: a transaction written but not committed; at-least-once:
/// records acknowledged but their progress not saved), then by SIGKILL at an arbitrary moment;
/// each time a new worker process takes over.
///
/// Exactly-once: a `read_committed` consumer of the target reads each partition exactly as the
/// source has it, and a `read_uncommitted` one also sees the records of the killed
/// transactions (so the failpoint did fire after records reached the target). At-least-once:
/// the target holds every record, and the duplicates are counted and printed.
async fn a_killed_worker_duplicates_nothing_in_exactly_once_delivery(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let topic = unique_topic("eos");
    src.create_topic(&topic, PARTITIONS, &[]).await;
    let (eos, alo) = (Aliases::unique(), Aliases::unique());
    let dir = tempfile::tempdir().expect("dir");
    let eos_config = config(dir.path(), &eos, &src.bootstrap(), &dst.bootstrap(), &topic, "exactly-once");
    let alo_config = config(dir.path(), &alo, &src.bootstrap(), &dst.bootstrap(), &topic, "at-least-once");

    let (producing, producer) = stream(&src, &topic).await;

    let fail = format!("abort-before-commit={topic}");
    let mut a = Worker::start_with(&eos_config, &[("TERN_FAILPOINTS", &fail)]);
    let fail = format!("abort-before-offset-map={topic}");
    let mut b = Worker::start_with(&alo_config, &[("TERN_FAILPOINTS", &fail)]);
    wait_exit(&mut a, "the exactly-once worker to abort on its failpoint").await;
    wait_exit(&mut b, "the at-least-once worker to abort on its failpoint").await;

    let (mut a, mut b) = (Worker::start(&eos_config), Worker::start(&alo_config));
    wait_assigned(&[&a, &b], "the second workers to own every partition").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.child.kill().expect("kill -9 the exactly-once worker");
    b.child.kill().expect("kill -9 the at-least-once worker");
    let _ = (a.child.wait(), b.child.wait());

    let (a, b) = (Worker::start(&eos_config), Worker::start(&alo_config));
    wait_assigned(&[&a, &b], "the third workers to own every partition").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    producing.store(false, Ordering::SeqCst);
    let rounds = producer.await.expect("producer");
    // Shown with the test's output, to tell a slow worker from a stuck one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("exactly-once worker, last lines:\n{}\nat-least-once worker, last lines:\n{}", a.log_tail(15), b.log_tail(15));

    let source = read_topic(&src.bootstrap(), &topic, "read_uncommitted", rounds * 10 * PARTITIONS as usize).await;
    let want = total(&source);
    assert_eq!(want, rounds * 10 * PARTITIONS as usize, "the source holds what was produced");

    let committed = read_topic(&dst.bootstrap(), &eos.remote(&topic), "read_committed", want).await;
    for p in 0..PARTITIONS {
        let (got, expected) = (&committed[&p], &source[&p]);
        let mut seen = std::collections::HashSet::new();
        let repeated = got.iter().filter(|v| !seen.insert(*v)).count();
        assert_eq!(repeated, 0, "exactly-once, partition {p}: no record twice");
        assert_eq!(got, expected, "exactly-once, partition {p}: every source record once, in order");
    }
    let uncommitted = read_topic(&dst.bootstrap(), &eos.remote(&topic), "read_uncommitted", want).await;
    let aborted = total(&uncommitted) - want;
    assert!(aborted > 0, "the failpoint stopped a transaction whose records were on the target, so read_uncommitted sees more than the {want} committed records");

    let at_least_once = read_topic(&dst.bootstrap(), &alo.remote(&topic), "read_committed", want).await;
    let mut duplicates = 0;
    for p in 0..PARTITIONS {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<String> = at_least_once[&p].iter().filter(|v| seen.insert(*v)).cloned().collect();
        assert_eq!(unique, source[&p], "at-least-once, partition {p}: every source record, in order");
        duplicates += at_least_once[&p].len() - unique.len();
    }
    assert!(duplicates > 0, "at-least-once delivery replicates again what it had not saved progress for");
    println!(
        "{kind:?} -> {kind:?}: {want} source records over {PARTITIONS} partitions, two worker deaths each: exactly-once read_committed {} records, 0 duplicates ({aborted} records of aborted transactions hidden); at-least-once {} records, {duplicates} duplicates",
        total(&committed),
        total(&at_least_once)
    );
    drop((a, b));
}

over_kinds!(a_killed_worker_duplicates_nothing_in_exactly_once_delivery {
    tern_a_killed_worker_duplicates_nothing_in_exactly_once_delivery: (Tern);
    kafka_a_killed_worker_duplicates_nothing_in_exactly_once_delivery: (Kafka);
});

/// A zombie worker: frozen (SIGSTOP) in the middle of the stream while a second worker takes
/// its partitions over, then woken (SIGCONT) with its transactions and requests where it left
/// them. The second worker's InitProducerId fenced it, so whatever it still sends is refused
/// (or it finds it left the group and stops first); both then share the flow. A
/// `read_committed` consumer of the target reads every source record exactly once.
async fn a_frozen_worker_woken_after_its_successor_took_over_is_fenced(kind: Kind) {
    let src = TestCluster::start(kind, Side::A).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let topic = unique_topic("zombie");
    src.create_topic(&topic, PARTITIONS, &[]).await;
    let aliases = Aliases::unique();
    let dir = tempfile::tempdir().expect("dir");
    let config = config(dir.path(), &aliases, &src.bootstrap(), &dst.bootstrap(), &topic, "exactly-once");

    let (producing, producer) = stream(&src, &topic).await;
    let a = Worker::start(&config);
    wait_assigned(&[&a], "the first worker to own every partition").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let signal = |sig: &str, pid: u32| assert!(Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill").success(), "kill {sig}");
    signal("-STOP", a.child.id());
    let b = Worker::start(&config);
    // The frozen worker's session expires (6 s), and the second one gets every partition.
    wait_assigned(&[&b], "the second worker to own every partition while the first is frozen").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal("-CONT", a.child.id());
    wait_until(Duration::from_secs(90), "the woken worker to rejoin and the two to share the partitions", async || {
        let (x, y) = (a.assigned()?, b.assigned()?);
        (x + y == PARTITIONS as usize && x > 0 && y > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    producing.store(false, Ordering::SeqCst);
    let rounds = producer.await.expect("producer");
    let want = rounds * 10 * PARTITIONS as usize;

    let source = read_topic(&src.bootstrap(), &topic, "read_uncommitted", want).await;
    assert_eq!(total(&source), want);
    let committed = read_topic(&dst.bootstrap(), &aliases.remote(&topic), "read_committed", want).await;
    for p in 0..PARTITIONS {
        assert_eq!(committed[&p], source[&p], "partition {p}: every source record once, in order, after the zombie woke");
    }
    let woke: Vec<String> = a.log_tail(400).lines().filter(|l| l.contains("fenced") || l.contains("stopped producing") || l.contains("transaction aborted")).map(str::to_string).collect();
    println!("{kind:?}: {want} records exactly once; what the woken worker said:\n{}", woke.join("\n"));
    assert!(!woke.is_empty(), "the woken worker says it was fenced or stopped producing:\n{}", a.log_tail(400));
}

over_kinds!(a_frozen_worker_woken_after_its_successor_took_over_is_fenced {
    tern_a_frozen_worker_woken_after_its_successor_took_over_is_fenced: (Tern);
    kafka_a_frozen_worker_woken_after_its_successor_took_over_is_fenced: (Kafka);
});
