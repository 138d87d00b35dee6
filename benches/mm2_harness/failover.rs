//! Failover exactness: after a replicator synced the source groups onto the target, a consumer
//! resumes on the target from the synced offsets. Counted on content, per group: records it
//! receives that the group had consumed on the source already (re-delivered), and records the
//! group had not consumed yet that it never receives (skipped).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_kafka::client::{Client, ClientConfig};

use super::data::{values, FailoverData, LATENCY_PARTITIONS};
use super::measure::{self, target_records, LatencyResult};
use super::replicators::{self, Run};
use super::{Replicator, Setup};

#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupResult {
    pub replicator: Replicator,
    pub group: String,
    pub kind: String,
    /// Records the group had not consumed yet on the source.
    pub remaining: usize,
    pub redelivered: usize,
    pub skipped: usize,
    /// Partitions without a synced offset on the target (a consumer would start at
    /// `auto.offset.reset`; counted here as Kafka's default, `latest`).
    pub unsynced: Vec<String>,
    /// Source committed offset -> synced target offset, per remote partition.
    pub offsets: Vec<(String, i32, i64, Option<i64>)>,
}

/// Synced target offsets per group.
type Synced = BTreeMap<String, BTreeMap<(String, i32), i64>>;

pub struct FailoverRun {
    pub run: Run,
    pub latency: LatencyResult,
    pub groups: Vec<GroupResult>,
    pub config_path: PathBuf,
    pub config_text: String,
}

/// One replicator on the failover topics and its latency topic: catch up, the latency phase,
/// then the groups' synced offsets, resumed and counted.
pub async fn run(setup: &Setup, rep: Replicator, fo: &FailoverData) -> anyhow::Result<FailoverRun> {
    let lat_topic = fo.latency_topics.get(&rep).ok_or_else(|| anyhow::anyhow!("no latency topic for {rep:?}"))?.clone();
    let topics = vec![fo.plain.clone(), fo.compacted.clone(), lat_topic.clone()];
    let run = Run::new(rep, "failover", &setup.tag, topics, 2 + 1 + LATENCY_PARTITIONS, &fo.groups_regex);
    let source = Client::connect(ClientConfig::new(&setup.source)).await?;
    let target = Client::connect(ClientConfig::new(&setup.target)).await?;
    let mut want: Vec<(String, i32, i64)> = Vec::new();
    for (topic, partitions) in [(&fo.plain, 2), (&fo.compacted, 1)] {
        let mut n = 0;
        for p in 0..partitions {
            n += values(&source, topic, p).await?.len() as i64;
        }
        want.push((run.remote(topic), partitions, n));
    }
    want.push((run.remote(&lat_topic), LATENCY_PARTITIONS, 0));

    let began = Instant::now();
    let mut process = replicators::start(setup, &run)?;
    let deadline = began + Duration::from_secs(600);
    loop {
        anyhow::ensure!(process.proc.is_running(), "{} exited during the failover run:\n{}", rep.label(), process.proc.log_tail(40));
        let mut done = true;
        for (remote, partitions, n) in &want {
            // The latency topic only needs to exist (its count stays 0 until the phase).
            let have = target_records(&target, remote, *partitions).await.unwrap_or(-1);
            let exists = target.metadata_snapshot().topics.get(remote).is_some_and(|t| t.partitions.len() == *partitions as usize);
            done &= exists && have >= *n;
        }
        if done {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{}: the failover topics did not catch up within 600 s:\n{}", rep.label(), process.proc.log_tail(40));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let caught_up = Instant::now();
    println!("{}: failover topics replicated {:.1} s after start", rep.label(), began.elapsed().as_secs_f64());

    let latency = measure::latency(setup, rep, &lat_topic, &run.remote(&lat_topic), LATENCY_PARTITIONS, setup.sizes.latency_phase).await?;

    // The synced offsets: every group's partitions present, unchanged for `stable`, read no
    // sooner than `settle` after catching up.
    let wanted: Vec<(String, Vec<(String, i32)>)> = fo
        .groups
        .iter()
        .map(|g| (g.name.clone(), g.committed.keys().map(|(t, p)| (run.remote(t), *p)).collect()))
        .collect();
    let limit = caught_up + setup.sizes.settle + Duration::from_secs(180);
    let mut last: Option<Synced> = None;
    let mut unchanged_since = Instant::now();
    let synced = loop {
        let mut now_synced = BTreeMap::new();
        for (group, tps) in &wanted {
            now_synced.insert(group.clone(), target.committed_offsets(group, tps).await.unwrap_or_default());
        }
        if last.as_ref() != Some(&now_synced) {
            unchanged_since = Instant::now();
        }
        let complete = wanted.iter().all(|(g, tps)| now_synced.get(g).is_some_and(|o| tps.iter().all(|tp| o.contains_key(tp))));
        let settled = caught_up.elapsed() >= setup.sizes.settle && unchanged_since.elapsed() >= setup.sizes.stable;
        if complete && settled {
            break now_synced;
        }
        if Instant::now() > limit {
            println!("{}: not every group partition was synced within {:?} after catching up; counting what was", rep.label(), limit - caught_up);
            break now_synced;
        }
        last = Some(now_synced);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    println!("{}: group offsets read {:.1} s after catching up", rep.label(), caught_up.elapsed().as_secs_f64());
    process.proc.kill();

    let mut groups = Vec::new();
    for g in &fo.groups {
        let mut result = GroupResult {
            replicator: rep,
            group: g.name.clone(),
            kind: g.kind.clone(),
            remaining: 0,
            redelivered: 0,
            skipped: 0,
            unsynced: Vec::new(),
            offsets: Vec::new(),
        };
        for ((topic, p), committed) in &g.committed {
            let remote = run.remote(topic);
            let src = values(&source, topic, *p).await?;
            let dst = values(&target, &remote, *p).await?;
            let synced_offset = synced.get(&g.name).and_then(|o| o.get(&(remote.clone(), *p))).copied();
            result.offsets.push((remote.clone(), *p, *committed, synced_offset));
            // Kafka's consumer without a committed offset starts at `latest`.
            let resume_at = synced_offset.unwrap_or_else(|| dst.last().map(|r| r.0 + 1).unwrap_or(0));
            if synced_offset.is_none() {
                result.unsynced.push(format!("{remote}/{p}"));
            }
            let c = count(&src, *committed, &dst, resume_at);
            result.remaining += c.remaining;
            result.redelivered += c.redelivered;
            result.skipped += c.skipped;
        }
        groups.push(result);
    }
    Ok(FailoverRun { run, latency, groups, config_path: process.config_path, config_text: process.config_text })
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub remaining: usize,
    pub redelivered: usize,
    pub skipped: usize,
}

/// Compares what a consumer resuming at `resume_at` on the target receives with what the
/// group committed at `committed` had left to read on the source. Values are unique per
/// record; a value received twice counts as re-delivered the second time.
pub fn count(source: &[(i64, Bytes)], committed: i64, target: &[(i64, Bytes)], resume_at: i64) -> Counts {
    let consumed: HashSet<&Bytes> = source.iter().filter(|r| r.0 < committed).map(|r| &r.1).collect();
    let remaining: Vec<&Bytes> = source.iter().filter(|r| r.0 >= committed).map(|r| &r.1).collect();
    let mut received: HashSet<&Bytes> = HashSet::new();
    let mut redelivered = 0;
    for (_, v) in target.iter().filter(|r| r.0 >= resume_at) {
        if consumed.contains(v) || !received.insert(v) {
            redelivered += 1;
        }
    }
    let skipped = remaining.iter().filter(|v| !received.contains(*v)).count();
    Counts { remaining: remaining.len(), redelivered, skipped }
}
