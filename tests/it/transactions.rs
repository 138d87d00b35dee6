//! Transactional sources: confluent-kafka's transactional producer writes to an Apache Kafka
//! source, committing and aborting in turn, and the mirror replicates to both target kinds.
//! (`tern broker` does not take transactional producers yet, so it is not a source here.)

use std::process::Command;
use std::time::Duration;

use crate::clusters::*;
use crate::drills::{commit, end};
use crate::helpers::*;
use crate::mirror::Aliases;
use crate::reload::{config, Run};

/// What the transactional writer committed (source offset and value) and aborted (first and
/// last source offset of each aborted transaction).
#[derive(serde::Deserialize)]
struct Written {
    committed: Vec<(i64, String)>,
    aborted: Vec<(i64, i64)>,
}

/// The target holds exactly the committed records, in order; groups committed before, inside
/// and right after an aborted transaction are translated to the record they would read next;
/// a planned failover drains past the last marker.
async fn a_transactional_source_reaches_the_target_without_its_aborted_records(target_kind: Kind) {
    let src = TestCluster::start(Kind::Kafka, Side::A).await;
    let dst = TestCluster::start(target_kind, Side::B).await;
    let aliases = Aliases::unique();
    let (a, b) = (aliases.source.clone(), aliases.target.clone());
    let topic = unique_topic("txn");
    let remote = format!("{a}.{topic}");
    src.create_topic(&topic, 1, &[]).await;

    let mut cmd = Command::new(python());
    cmd.arg(compat_script("confluent_transactions.py")).args(["--bootstrap", &src.bootstrap(), "--topic", &topic, "--transactions", "6", "--per", "10"]);
    let out = run_client(cmd, Duration::from_secs(300)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with('{')).expect("the writer's JSON line");
    let written: Written = serde_json::from_str(line).expect("JSON");
    assert_eq!((written.committed.len(), written.aborted.len()), (30, 3));

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
        "Kafka -> {target_kind:?}: {} committed records replicated, the {} records of {} aborted transactions ({:?}) left out; planned failover drained, 0 lost",
        committed,
        written.aborted.iter().map(|(f, l)| l - f + 1).sum::<i64>(),
        written.aborted.len(),
        written.aborted
    );
}

over_kinds!(a_transactional_source_reaches_the_target_without_its_aborted_records {
    kafka_to_tern_a_transactional_source_reaches_the_target_without_its_aborted_records: (Tern);
    kafka_to_kafka_a_transactional_source_reaches_the_target_without_its_aborted_records: (Kafka);
});
