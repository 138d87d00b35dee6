//! Crash points: `tern run` aborted between a produce the target acknowledged and the offset
//! map entries for it, on a compacted source with a hole, and `tern failback` aborted between
//! a batch the source acknowledged and its saved progress (test-only failpoints from
//! `TERN_FAILPOINTS`, see `tern_mirror::failpoint`). Run again, the worker translates a group
//! inside the hole exactly (the drill says `match`) and the failback copies nothing twice.
//! On both cluster kinds.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use tern_kafka::client::Connection;
use tern_kafka::records::{encode_batch, PlainRecord};
use tern_mirror::drill::Verdict;
use tern_mirror::states::Check;

use crate::clusters::*;
use crate::drills::{commit, drill_json, end, group, now_ms, produce, tern};
use crate::helpers::*;
use crate::mirror::{partition_content, Aliases};
use crate::offsets::{compacting_source, ledger_with_hole, records};
use crate::reload::{config, Run};

const SIGABRT: i32 = 6;

async fn crashes_lose_and_duplicate_nothing(kind: Kind) {
    let src = compacting_source(kind).await;
    let dst = TestCluster::start(kind, Side::B).await;
    let (source, target) = (src.client().await, dst.client().await);
    let aliases = Aliases::unique();
    let (a, b, flow_name) = (aliases.source.clone(), aliases.target.clone(), aliases.flow());
    let (ledger, orders) = (unique_topic("crash-ledger"), unique_topic("crash-orders"));
    let (remote_ledger, remote_orders) = (aliases.remote(&ledger), aliases.remote(&orders));
    ledger_with_hole(&src, &ledger).await;
    let in_hole = format!("in-hole-{a}");
    commit(&source, &in_hole, &[(&ledger, 0, 7)]).await;
    let ledger_on_source = partition_content(&src.bootstrap(), &ledger, 0).await;
    let offsets_on_source: Vec<i64> = records(&src.bootstrap(), &ledger, 0).await.iter().map(|r| r.0).collect();

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tern.toml");
    let toml = config(&a, &src.bootstrap(), &b, &dst.bootstrap(), &[(&a, &b, &ledger)]).replace(&format!("[\"{ledger}\"]"), &format!("[\"{ledger}\", \"{orders}\"]"));
    std::fs::write(&path, &toml).expect("config");
    let flow = tern_mirror::config::parse(&toml).expect("config").flows.remove(0);
    let config_path = path.to_str().expect("path");

    // 1. The worker aborts right after the target acknowledged ledger records, before their
    //    offset map entries are written.
    let mut crashed = Run::start_with_env(&path, &[("TERN_FAILPOINTS", &format!("abort-before-offset-map={ledger}"))]);
    let status = wait_until(Duration::from_secs(60), "the worker to abort at its failpoint", async || crashed.child.try_wait().ok().flatten()).await;
    assert_eq!(status.signal(), Some(SIGABRT), "{}", crashed.all());
    assert!(crashed.all().contains("failpoint abort-before-offset-map"), "{}", crashed.all());
    let first_copy = partition_content(&dst.bootstrap(), &remote_ledger, 0).await;
    assert!(!first_copy.is_empty() && ledger_on_source.starts_with(&first_copy), "the target holds the acknowledged records: {} of {}", first_copy.len(), ledger_on_source.len());
    let maps = tern_mirror::offset_map::store::load_offset_maps(&flow, &target).await.expect("offset maps");
    assert!(maps.get(&(ledger.clone(), 0)).is_none_or(|m| m.entries().next().is_none()), "no map entry was written for them: {maps:?}");
    drop(crashed);
    // (A topic of records replicated only after the crash, for the failback below.)
    src.create_topic(&orders, 1, &[]).await;
    let mut s = Connection::connect(&src.bootstrap()).await.expect("connect");
    produce(&mut s, &orders, 0, batch("orders", 20, now_ms(), Compression::Lz4)).await;

    // 2. Run again: what has no map entries is replicated again (at least once), and the group
    //    committed inside the hole is translated to the copy the map knows.
    let run = Run::start(&path);
    // The remote topic is compacted like its source, so the first copy may be compacted away
    // under the second: records are compared with their offsets.
    let second = first_copy.len() as i64;
    let kv = |rs: Vec<(i64, Option<Bytes>, Option<Bytes>)>, from: i64| rs.into_iter().filter(|r| r.0 >= from).map(|r| (r.1, r.2)).collect::<Vec<_>>();
    let source_kv = kv(records(&src.bootstrap(), &ledger, 0).await, 0);
    wait_until(Duration::from_secs(90), "a whole copy of the ledger after the first", async || {
        (kv(records(&dst.bootstrap(), &remote_ledger, 0).await, second) == source_kv).then_some(())
    })
    .await;
    let at_10 = offsets_on_source.iter().position(|&o| o == 10).expect("offset 10 survives compaction") as i64;
    let synced = wait_until(Duration::from_secs(60), &format!("{in_hole} synced onto the target"), async || {
        target.all_committed_offsets(&in_hole).await.ok()?.get(&(remote_ledger.clone(), 0)).copied()
    })
    .await;
    assert_eq!(synced, second + at_10, "committed at 7 in the hole 5..=9: resumes at source 10 in the copy the map knows");
    assert_eq!(kv(records(&dst.bootstrap(), &remote_ledger, 0).await, synced), kv(records(&src.bootstrap(), &ledger, 0).await, 7), "what the group reads on the target is what it had left on the source");
    let json = dir.path().join("drill.json");
    let (code, report, _) = drill_json(&path, &json, &flow_name, &in_hole);
    assert_eq!(code, 0, "{:?}", report.groups);
    let g = group(&report, &in_hole);
    assert_eq!(g.verdict, Verdict::Pass, "{}", g.reason);
    assert_eq!(g.partitions.iter().map(|p| (p.committed, p.translated, p.check)).collect::<Vec<_>>(), [(7, Some(synced), Check::Match)]);

    // 3. Planned failover; producers on the target write 10 records of 200 KB, which failback
    //    copies home in three batches (under 1 MB each).
    let (code, _) = tern(&["failover", "--config", config_path, "--flow", &flow_name, "--planned", "--timeout", "30s"]);
    assert_eq!(code, 0);
    let mut t = Connection::connect(&dst.bootstrap()).await.expect("connect");
    for i in 0..10 {
        let value = Bytes::from(format!("on-b-{i}-").repeat(20_000));
        let record = PlainRecord::new(format!("b{i}"), Some(value), now_ms());
        produce(&mut t, &remote_orders, 0, encode_batch(&[record], Compression::None).expect("encode")).await;
    }
    let written_on_b = partition_content(&dst.bootstrap(), &remote_orders, 0).await[20..].to_vec();
    assert_eq!(written_on_b.len(), 10);
    let orders_before = partition_content(&src.bootstrap(), &orders, 0).await;
    assert_eq!(orders_before.len(), 20, "{:?}", orders_before.iter().map(|r| r.0.clone()).collect::<Vec<_>>());

    // 4. Failback aborts right after the source acknowledged its first batch.
    let out = std::process::Command::new(tern_bin())
        .args(["failback", "--config", config_path, "--flow", &flow_name])
        .env("TERN_FAILPOINTS", format!("abort-after-failback-copy={orders}"))
        .output()
        .expect("tern failback");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.signal(), Some(SIGABRT), "{said}");
    assert!(said.contains("failpoint abort-after-failback-copy"), "{said}");
    let partly = partition_content(&src.bootstrap(), &orders, 0).await;
    assert!(partly.len() > 20 && partly.len() < 30 && partly[20..] == written_on_b[..partly.len() - 20], "the first batch reached the source: {} records", partly.len());

    // 5. Run again, failback finishes and the source holds each copied record once.
    let report = dir.path().join("failback.json");
    let (code, _) = tern(&["failback", "--config", config_path, "--flow", &flow_name, "--json", report.to_str().expect("path")]);
    assert_eq!(code, 0);
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!((r["state"].as_str(), r["copied_records"].as_i64()), (Some("active"), Some(10)), "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    let orders_after = partition_content(&src.bootstrap(), &orders, 0).await;
    assert_eq!(orders_after.len(), 30, "nothing copied twice");
    assert_eq!(orders_after[..20], orders_before[..]);
    assert_eq!(orders_after[20..], written_on_b[..], "the target's writes, once each, in order, intact");

    // 6. The flow is active again: new source records reach the target once, the copied ones
    //    are not sent back, and the target is again an exact copy of the source.
    produce(&mut s, &orders, 0, batch("after", 3, now_ms(), Compression::None)).await;
    wait_until(Duration::from_secs(60), "new records to reach the target after failback", async || (end(&target, &remote_orders, 0).await == 33).then_some(())).await;
    assert_eq!(partition_content(&dst.bootstrap(), &remote_orders, 0).await, partition_content(&src.bootstrap(), &orders, 0).await);
    assert!(!run.all().contains("panicked"), "{}", run.all());
}

over_kinds!(crashes_lose_and_duplicate_nothing {
    tern_crash_points_lose_and_duplicate_nothing: (Tern);
    kafka_crash_points_lose_and_duplicate_nothing: (Kafka);
});
