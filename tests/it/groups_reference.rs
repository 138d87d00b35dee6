//! Consumer groups against the reference: the same scenarios, with the same clients
//! (tests/compat/group_scenarios.py: confluent-kafka consumers and admin client, requests sent
//! by hand with kafka-python's message classes), run against Apache Kafka and against
//! `tern broker`. The script reduces each run to what must not depend on the broker's timing
//! (committed offsets, assignment sizes per phase, group states, error names, where resumed
//! consumers start), and the two summaries must be equal: any difference is a bug in our
//! coordinator unless Kafka's source says otherwise.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::apache_kafka::KafkaCluster;
use crate::clusters::{Kind, Side, TestCluster};
use crate::helpers::*;

/// Runs one phase of the scenario script against `bootstrap` and returns its summary.
async fn scenarios(bootstrap: &str, phase: &str, dir: &Path, tag: &str) -> Value {
    let summary = dir.join(format!("{tag}-{phase}.json"));
    let mut cmd = Command::new(python());
    cmd.arg(compat_script("group_scenarios.py"))
        .args(["--bootstrap", bootstrap, "--phase", phase, "--summary"])
        .arg(&summary)
        .arg("--state")
        .arg(dir.join(format!("{tag}-state.json")));
    run_client(cmd, Duration::from_secs(300)).await;
    let text = std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("{}: {e}", summary.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("summary of {tag}: {e}\n{text}"))
}

/// Every place where the two summaries differ, as `path: kafka=… tern=…`.
fn differences(kafka: &Value, tern: &Value, path: &str, out: &mut Vec<String>) {
    match (kafka, tern) {
        (Value::Object(k), Value::Object(t)) => {
            for key in k.keys().chain(t.keys().filter(|key| !k.contains_key(*key))) {
                let (kv, tv) = (k.get(key).unwrap_or(&Value::Null), t.get(key).unwrap_or(&Value::Null));
                differences(kv, tv, &format!("{path}.{key}"), out);
            }
        }
        (Value::Array(k), Value::Array(t)) if k.len() == t.len() => {
            for (i, (kv, tv)) in k.iter().zip(t).enumerate() {
                differences(kv, tv, &format!("{path}[{i}]"), out);
            }
        }
        _ if kafka != tern => out.push(format!("{path}: kafka={kafka} tern={tern}")),
        _ => {}
    }
}

fn assert_same(kafka: &Value, tern: &Value, what: &str) {
    println!("--- {what}, Apache Kafka:\n{}", serde_json::to_string_pretty(kafka).unwrap_or_default());
    println!("--- {what}, tern broker:\n{}", serde_json::to_string_pretty(tern).unwrap_or_default());
    let mut diff = Vec::new();
    differences(kafka, tern, "", &mut diff);
    assert!(diff.is_empty(), "{what}: tern broker differs from Apache Kafka in {} place(s):\n{}", diff.len(), diff.join("\n"));
}

/// Splitting, leaving and taking over (eager and cooperative), resuming from commits and admin
/// resets, static members and their fencing, and the error of every hand-made bad request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_scenarios_agree_with_apache_kafka() {
    init_logs();
    let dir = tempfile::tempdir().expect("dir");
    let kafka = TestCluster::start(Kind::Kafka, Side::A).await;
    let tern = TestCluster::start(Kind::Tern, Side::A).await;
    let (kafka, tern) = (kafka.bootstrap(), tern.bootstrap());
    let (k, t) =
        tokio::join!(scenarios(&kafka, "all", dir.path(), "kafka"), scenarios(&tern, "all", dir.path(), "tern"));
    assert_same(&k, &t, "group scenarios");
}

/// Groups and their commits across a broker restart: a dynamic group (empty when the broker
/// stops) and a static member (still a member) come back as they were, and consumers resume at
/// the committed offsets. Kafka's node is killed (-9) and restarted; tern broker shuts down and
/// starts again on its data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_across_a_restart_agree_with_apache_kafka() {
    init_logs();
    let dir = tempfile::tempdir().expect("dir");
    let kafka = async {
        // A cluster of its own: the shared ones must not restart under other tests.
        let mut cluster = tokio::task::spawn_blocking(|| KafkaCluster::start(1)).await.expect("Kafka starts");
        let bootstrap = cluster.bootstrap();
        let before = scenarios(&bootstrap, "before-restart", dir.path(), "kafka").await;
        let cluster = tokio::task::spawn_blocking(move || {
            cluster.kill_node(1);
            cluster.restart_node(1);
            cluster
        })
        .await
        .expect("Kafka restarts");
        let after = scenarios(&bootstrap, "after-restart", dir.path(), "kafka").await;
        drop(cluster);
        (before, after)
    };
    let tern = async {
        let mut broker = TestBroker::start().await;
        let before = scenarios(&broker.bootstrap(), "before-restart", dir.path(), "tern").await;
        broker.restart().await;
        let after = scenarios(&broker.bootstrap(), "after-restart", dir.path(), "tern").await;
        (before, after)
    };
    let ((kb, ka), (tb, ta)) = tokio::join!(kafka, tern);
    assert_same(&kb, &tb, "before the restart");
    assert_same(&ka, &ta, "after the restart");
}
