//! Transactions: confluent-kafka's and Kafka's Java transactional producers against both
//! cluster kinds, read back by `read_committed` and `read_uncommitted` consumers and by Kafka's
//! own tools; and transactional sources of both kinds replicated by the mirror to both target
//! kinds.

use std::process::Command;
use std::time::Duration;

use crate::apache_kafka::kafka_tool;
use crate::clusters::*;
use crate::drills::{commit, end};
use crate::helpers::*;
use crate::mirror::Aliases;
use crate::reload::{config, Run};

/// What the transactional writer committed (source offset and value) and aborted (first and
/// last source offset of each aborted transaction).
#[derive(serde::Deserialize)]
struct Written {
    transactional_id: String,
    committed: Vec<(i64, String)>,
    aborted: Vec<(i64, i64)>,
    /// Records a read_uncommitted consumer saw.
    uncommitted: usize,
}

/// Runs `confluent_transactions.py` (6 transactions of 10 records, odd ones aborted) against
/// `bootstrap`; its own checks (read_committed sees exactly the committed records, in order,
/// read_uncommitted all of them) must pass.
async fn write_transactions(bootstrap: &str, topic: &str) -> Written {
    let mut cmd = Command::new(python());
    cmd.arg(compat_script("confluent_transactions.py")).args(["--bootstrap", bootstrap, "--topic", topic, "--transactions", "6", "--per", "10"]);
    let out = run_client(cmd, Duration::from_secs(300)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with('{')).expect("the writer's JSON line");
    let written: Written = serde_json::from_str(line).expect("JSON");
    assert_eq!((written.committed.len(), written.aborted.len(), written.uncommitted), (30, 3, 60));
    written
}

const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const TRANSACTIONS_COMMAND: &str = "org.apache.kafka.tools.TransactionsCommand";
const PRODUCER_PERFORMANCE: &str = "org.apache.kafka.tools.ProducerPerformance";

/// The rows of a tab-separated table as kafka-transactions prints it, keyed by its header.
fn rows(out: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else { return Vec::new() };
    let columns: Vec<&str> = header.split('\t').map(str::trim).collect();
    lines.map(|l| columns.iter().zip(l.split('\t').map(str::trim)).map(|(c, v)| (c.to_string(), v.to_string())).collect()).collect()
}

/// A cluster's transactions as clients see them: confluent-kafka commits and aborts in turn;
/// Kafka's console consumer in read_committed mode reads exactly the committed records;
/// kafka-transactions lists and describes the transactional id; Kafka's Java producer writes
/// 2,000 records in transactions of 100 ms, all of which a read_committed reader gets.
async fn transactional_producers_and_consumers_as_kafka_has_them(kind: Kind) {
    let cluster = TestCluster::start(kind, Side::A).await;
    let b = cluster.bootstrap();
    let topic = unique_topic("txn-clients");
    cluster.create_topic(&topic, 1, &[]).await;
    let written = write_transactions(&b, &topic).await;

    let timeout = Duration::from_secs(120);
    let out = kafka_tool(CONSOLE_CONSUMER, &["--bootstrap-server", &b, "--topic", &topic, "--from-beginning", "--isolation-level", "read_committed", "--max-messages", "30", "--timeout-ms", "30000"], timeout).await;
    let values: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    assert_eq!(values, written.committed.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(), "kafka-console-consumer --isolation-level read_committed");

    let id = written.transactional_id.as_str();
    let listed = rows(&String::from_utf8_lossy(&kafka_tool(TRANSACTIONS_COMMAND, &["--bootstrap-server", &b, "list"], timeout).await.stdout));
    let row = listed.iter().find(|r| r.get("TransactionalId").map(String::as_str) == Some(id)).unwrap_or_else(|| panic!("{id} not listed: {listed:?}"));
    assert_eq!(row.get("TransactionState").map(String::as_str), Some("CompleteAbort"), "{row:?}");
    let described = rows(&String::from_utf8_lossy(&kafka_tool(TRANSACTIONS_COMMAND, &["--bootstrap-server", &b, "describe", "--transactional-id", id], timeout).await.stdout));
    assert_eq!(described.len(), 1, "{described:?}");
    let d = &described[0];
    assert_eq!(
        (d.get("TransactionalId").map(String::as_str), d.get("TransactionState").map(String::as_str), d.get("ProducerId"), d.get("TransactionTimeoutMs").map(String::as_str)),
        (Some(id), Some("CompleteAbort"), row.get("ProducerId"), Some("60000")),
        "{d:?}"
    );

    let java_topic = unique_topic("txn-java");
    cluster.create_topic(&java_topic, 1, &[]).await;
    let java_id = format!("{java_topic}-producer");
    let props = format!("bootstrap.servers={b}");
    kafka_tool(
        PRODUCER_PERFORMANCE,
        &["--topic", &java_topic, "--num-records", "2000", "--record-size", "100", "--throughput", "-1", "--producer-props", &props, "--transactional-id", &java_id, "--transaction-duration-ms", "100"],
        timeout,
    )
    .await;
    let out = kafka_tool(CONSOLE_CONSUMER, &["--bootstrap-server", &b, "--topic", &java_topic, "--from-beginning", "--isolation-level", "read_committed", "--max-messages", "2000", "--timeout-ms", "30000"], timeout).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2000, "Java transactional producer's records, read_committed");
    println!("{kind:?}: confluent-kafka 30 committed / 30 aborted records, console consumer read_committed 30, kafka-transactions CompleteAbort; Java producer 2,000 records in transactions, all read_committed");
}

/// A transactional producer killed with SIGKILL inside a transaction: its transaction is
/// aborted after its timeout (5 s) and read_committed consumers move on to the records after it.
async fn a_killed_transactional_producer_is_aborted_after_its_timeout(kind: Kind) {
    let cluster = TestCluster::start(kind, Side::A).await;
    let topic = unique_topic("txn-killed");
    cluster.create_topic(&topic, 1, &[]).await;
    let mut cmd = Command::new(python());
    cmd.arg(compat_script("confluent_txn_timeout.py")).args(["--bootstrap", &cluster.bootstrap(), "--topic", &topic, "--txn-timeout-ms", "5000"]);
    let out = run_client(cmd, Duration::from_secs(300)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with('{')).expect("the script's JSON line");
    let waited: serde_json::Value = serde_json::from_str(line).expect("JSON");
    println!("{kind:?}: the killed producer's transaction aborted; read_committed moved on after {} s", waited["waited_seconds"]);
}

over_kinds!(a_killed_transactional_producer_is_aborted_after_its_timeout {
    tern_a_killed_transactional_producer_is_aborted_after_its_timeout: (Tern);
    kafka_a_killed_transactional_producer_is_aborted_after_its_timeout: (Kafka);
});

over_kinds!(transactional_producers_and_consumers_as_kafka_has_them {
    tern_transactional_producers_and_consumers_as_kafka_has_them: (Tern);
    kafka_transactional_producers_and_consumers_as_kafka_has_them: (Kafka);
});

/// The target holds exactly the committed records, in order; groups committed before, inside
/// and right after an aborted transaction are translated to the record they would read next;
/// a planned failover drains past the last marker.
async fn a_transactional_source_reaches_the_target_without_its_aborted_records(source_kind: Kind, target_kind: Kind) {
    let src = TestCluster::start(source_kind, Side::A).await;
    let dst = TestCluster::start(target_kind, Side::B).await;
    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let topic = unique_topic("txn");
    let remote = format!("{a}.{topic}");
    src.create_topic(&topic, 1, &[]).await;

    let written = write_transactions(&src.bootstrap(), &topic).await;

    // Groups of the source's readers: before the first aborted transaction, inside it, and at
    // its abort marker (right after it).
    let source = src.client().await;
    let (first_aborted, last_aborted) = written.aborted[0];
    let groups = [("before", written.committed[3].0), ("inside", first_aborted + 4), ("after", last_aborted + 1)];
    for (name, offset) in groups {
        commit(&source, &format!("{topic}-{name}"), &[(topic.as_str(), 0, offset)]).await;
    }

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    std::fs::write(&path, config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &topic)])).expect("config");
    let run = Run::start(&path);
    let target = dst.client().await;
    let committed = written.committed.len() as i64;
    wait_until(Duration::from_secs(90), "the committed records on the target", async || (end(&target, &remote, 0).await >= committed).then_some(())).await;
    // A moment for anything that should not be there to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let on_target: Vec<String> = target.read_range(&remote, 0, 0, end(&target, &remote, 0).await).await.expect("read the target").into_iter().map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).to_string()).collect();
    let expected: Vec<String> = written.committed.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(on_target, expected, "the target holds exactly the committed records, in order");

    // A group resumes at the first committed record at or after its position.
    for (name, offset) in groups {
        let group = format!("{topic}-{name}");
        let want = written.committed.iter().position(|(o, _)| *o >= offset).expect("a committed record after the group") as i64;
        let synced = wait_until(Duration::from_secs(60), &format!("{group} synced to the target"), async || {
            target.all_committed_offsets(&group).await.ok()?.get(&(remote.clone(), 0)).copied().filter(|o| *o == want)
        })
        .await;
        println!("{group}: committed at source offset {offset}, resumes at target offset {synced} ({})", expected[synced as usize]);
    }

    // A planned failover drains: the flow's position passes the last transaction's marker, and
    // nothing counts as lost (the aborted records are not owed to the target).
    let report = dir.path().join("failover.json");
    let (code, _) = crate::drills::tern(&["failover", "--config", path.to_str().expect("path"), "--flow", &format!("{a}->{b}"), "--planned", "--timeout", "30s", "--json", report.to_str().expect("path")]);
    let r = crate::drills::failover_json(&report);
    assert_eq!((code, r["drained"].as_bool(), r["lost_records"].as_i64()), (0, Some(true), Some(0)), "{r}");
    assert!(run.lines("panicked").is_empty(), "{}", run.all());
    println!(
        "{source_kind:?} -> {target_kind:?}: {} committed records replicated, the {} records of {} aborted transactions ({:?}) left out; planned failover drained, 0 lost",
        committed,
        written.aborted.iter().map(|(f, l)| l - f + 1).sum::<i64>(),
        written.aborted.len(),
        written.aborted
    );
}

over_kinds!(a_transactional_source_reaches_the_target_without_its_aborted_records {
    kafka_to_tern_a_transactional_source_reaches_the_target_without_its_aborted_records: (Kafka, Tern);
    kafka_to_kafka_a_transactional_source_reaches_the_target_without_its_aborted_records: (Kafka, Kafka);
    tern_to_tern_a_transactional_source_reaches_the_target_without_its_aborted_records: (Tern, Tern);
    tern_to_kafka_a_transactional_source_reaches_the_target_without_its_aborted_records: (Tern, Kafka);
});

/// `tern broker` killed with SIGKILL while a transaction is open: after the restart the
/// committed transaction is still committed, the aborted one still aborted, and the open one
/// still open (it holds `read_committed` readers at its first offset) until the producer's
/// successor fences it, which aborts it; the old producer can then no longer commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_state_survives_kill_9_of_tern_broker() {
    use tern_kafka::client::{Client, ClientConfig, Isolation, LATEST};

    let dir = tempfile::tempdir().expect("dir");
    let mut broker = crate::durability::BrokerProcess::start(dir.path());
    let topic = unique_topic("txn-crash");
    let mut admin = tern_kafka::client::Connection::connect(&broker.addr).await.expect("connect");
    create_topic(&mut admin, &topic, 1, &[]).await;
    let id = unique_topic("txn-crash-id");
    let client = Client::connect(ClientConfig::new(&broker.addr)).await.expect("client");
    let mut producer = client.transactional_producer(&id, Duration::from_secs(60)).await.expect("InitProducerId");
    let (pid, epoch) = producer.identity();
    let mut sequence = 0;
    let mut write = async |producer: &mut tern_kafka::client::TxnProducer, tag: &str, count: usize| {
        producer.add_partitions(&client, &[(topic.clone(), 0)]).await.expect("AddPartitionsToTxn");
        let mut b = batch(tag, count, crate::durability::tern_now_ms(), kafka_protocol::records::Compression::None).to_vec();
        tern_kafka::batch::set_producer(&mut b, pid, epoch, sequence);
        tern_kafka::batch::set_transactional(&mut b);
        sequence += count as i32;
        client.send_produce_as(Some(&id), &topic, 0, b.into(), -1, 30_000).await.expect("send").ack().await.expect("transactional produce")
    };
    // Offsets: aborted 0-2 and its marker 3, committed 4-8 and its marker 9, open 10-14.
    write(&mut producer, "aborted", 3).await;
    producer.end(&client, false).await.expect("abort");
    write(&mut producer, "committed", 5).await;
    producer.end(&client, true).await.expect("commit");
    let open = write(&mut producer, "open", 5).await;
    assert_eq!(open.base_offset, 10);
    broker.kill_9();

    let broker = crate::durability::BrokerProcess::start(dir.path());
    let client = Client::connect(ClientConfig::new(&broker.addr)).await.expect("client after restart");
    let lso = client.list_offset_isolated(&topic, 0, LATEST, Isolation::ReadCommitted).await.expect("last stable offset").0;
    assert_eq!(lso, 10, "the open transaction still holds read_committed readers at its first offset");
    let committed: Vec<String> = (0..5).map(|i| format!("committed-{i}")).collect();
    let read = crate::exactly_once::read_topic(&broker.addr, &topic, "read_committed", 5).await;
    assert_eq!(read[&0], committed, "read_committed after the restart: the committed transaction only");

    // The producer's successor fences it: the open transaction is aborted.
    let successor = client.transactional_producer(&id, Duration::from_secs(60)).await.expect("InitProducerId after the restart");
    assert!(successor.identity().0 == pid && successor.identity().1 > epoch, "same producer id, epoch bumped: {:?} after {:?}", successor.identity(), (pid, epoch));
    let end = wait_until(Duration::from_secs(30), "the open transaction aborted", async || {
        let lso = client.list_offset_isolated(&topic, 0, LATEST, Isolation::ReadCommitted).await.ok()?.0;
        (lso == 16).then_some(lso)
    })
    .await;
    assert_eq!(end, 16, "abort marker at 15");
    let read = crate::exactly_once::read_topic(&broker.addr, &topic, "read_committed", 5).await;
    assert_eq!(read[&0], committed, "read_committed after the abort");
    let all = crate::exactly_once::read_topic(&broker.addr, &topic, "read_uncommitted", 13).await;
    let written: Vec<String> = [("aborted", 3), ("committed", 5), ("open", 5)].iter().flat_map(|(tag, n)| (0..*n).map(move |i| format!("{tag}-{i}"))).collect();
    assert_eq!(all[&0], written, "read_uncommitted sees every record written, in order");
    let e = producer.end(&client, true).await.expect_err("the fenced producer cannot commit");
    assert!(tern_kafka::client::is_fenced(&e), "{e}");
}
