//! One flow at work: keep remote topics in step with the source, fetch every partition the
//! worker owns, produce to the target, and commit progress on the source only after the
//! target acknowledged (at-least-once).
//!
//! Tasks of a flow:
//! - the topic loop (every `topic_refresh_interval`): create remote topics with the source's
//!   partition count and configs, grow partitions, start replicating new partitions;
//! - the fetcher: one fetch request per source leader for all owned partitions, responses
//!   handed to per-partition queues (bounded, so a slow target slows only its partitions);
//! - one producer task per partition: produces in order, records the acknowledged position;
//! - the committer: commits acknowledged positions to the flow's group on the source;
//! - heartbeats: MM2-format heartbeat records to the target's `heartbeats` topic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tern_kafka::client::{Client, ClientConfig, Membership, EARLIEST};
use tokio::sync::{mpsc, watch, Mutex};

use crate::config::{ClusterConfig, Flow, MirrorSettings};
use crate::error::{Error, Result, RetryHint};
use crate::mm2::{Heartbeat, HEARTBEATS_TOPIC};
use crate::naming;
use crate::status::FlowStatus;
use crate::transform::{prepare, Prepared};

/// Topic configs never copied to the target. As in MirrorMaker 2: replication throttles and
/// replica placement are the target cluster's business, and a LogAppendTime target would
/// re-stamp the source's timestamps.
pub const CONFIG_EXCLUDES: &[&str] = &[
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "unclean.leader.election.enable",
    "min.insync.replicas",
];

/// The consumer group the workers of a flow share on the source cluster.
pub fn group_id(flow: &Flow) -> String {
    format!("tern.{}.{}", flow.source, flow.target)
}

type Tp = (String, i32);

/// Shared state of one running flow.
struct Runtime {
    flow: Flow,
    settings: MirrorSettings,
    source: Client,
    target: Client,
    status: Arc<FlowStatus>,
    /// Acknowledged next offsets not yet committed.
    acked: Mutex<BTreeMap<Tp, i64>>,
    /// Partitions whose replication stopped for good, with the reason.
    failed: std::sync::Mutex<HashMap<Tp, String>>,
}

/// Connects to a cluster, naming it in the error.
pub async fn connect(name: &str, cluster: &ClusterConfig) -> Result<Client> {
    let mut config = ClientConfig::new(&cluster.bootstrap);
    config.client_id = format!("tern-{name}");
    Client::connect(config).await.map_err(|e| Error::cluster(name, e))
}

/// Runs `flow` until `shutdown` turns true.
pub async fn run(
    flow: Flow,
    clusters: &BTreeMap<String, ClusterConfig>,
    settings: MirrorSettings,
    status: Arc<FlowStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let (source, target) = loop {
        let attempt = async {
            let s = connect(&flow.source, clusters.get(&flow.source).ok_or_else(|| Error::Config(format!("unknown cluster {}", flow.source)))?).await?;
            let t = connect(&flow.target, clusters.get(&flow.target).ok_or_else(|| Error::Config(format!("unknown cluster {}", flow.target)))?).await?;
            Ok::<_, Error>((s, t))
        };
        match attempt.await {
            Ok(pair) => break pair,
            Err(e) if e.retry_hint() == RetryHint::Retry => {
                tracing::warn!(flow = %flow.name(), "{e}; retrying");
                status.set_errors(vec![e.to_string()]);
                if wait_or_shutdown(&mut shutdown, Duration::from_secs(2)).await {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    };
    status.set_errors(vec![]);
    let rt = Arc::new(Runtime {
        flow,
        settings,
        source,
        target,
        status,
        acked: Mutex::new(BTreeMap::new()),
        failed: std::sync::Mutex::new(HashMap::new()),
    });
    let mut tasks = tokio::task::JoinSet::new();
    if rt.flow.emit_heartbeats {
        tasks.spawn(heartbeats(rt.clone(), shutdown.clone()));
    }
    tasks.spawn(committer(rt.clone(), shutdown.clone()));

    // Partition queues, by source partition; the fetcher owns the fetch positions.
    let mut queues: HashMap<Tp, mpsc::Sender<Prepared>> = HashMap::new();
    let mut positions: HashMap<Tp, i64> = HashMap::new();
    let mut last_sync = tokio::time::Instant::now() - rt.settings.topic_refresh_interval;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if last_sync.elapsed() >= rt.settings.topic_refresh_interval {
            last_sync = tokio::time::Instant::now();
            match sync_topics(&rt).await {
                Ok(partitions) => {
                    let new: Vec<Tp> = partitions.into_iter().filter(|tp| !queues.contains_key(tp)).collect();
                    if !new.is_empty() {
                        let starts = start_positions(&rt, &new).await;
                        for tp in new {
                            let (tx, rx) = mpsc::channel(4);
                            let start = starts.get(&tp).copied().unwrap_or(0);
                            positions.insert(tp.clone(), start);
                            rt.status.update(&tp.0, tp.1, |s| {
                                s.remote_topic = naming::remote_topic(&rt.flow, &tp.0);
                                s.replicated_offset = start;
                            });
                            tasks.spawn(partition_producer(rt.clone(), tp.clone(), rx));
                            queues.insert(tp, tx);
                        }
                    }
                    rt.status.set_errors(vec![]);
                }
                Err(e) => {
                    tracing::warn!(flow = %rt.flow.name(), "topic sync: {e}");
                    rt.status.set_errors(vec![e.to_string()]);
                }
            }
        }
        let fetched = tokio::select! {
            r = fetch_round(&rt, &queues, &mut positions) => r,
            _ = shutdown.changed() => break,
        };
        if let Err(e) = fetched {
            tracing::debug!(flow = %rt.flow.name(), "fetch: {e}");
            if wait_or_shutdown(&mut shutdown, Duration::from_millis(200)).await {
                break;
            }
        }
    }
    drop(queues);
    // Producers finish what they hold, then the last commit.
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while tasks.join_next().await.is_some() {} }).await;
    commit_now(&rt).await;
    Ok(())
}

async fn wait_or_shutdown(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Brings the target's topics in line with the source and returns the source partitions to
/// replicate.
async fn sync_topics(rt: &Runtime) -> Result<Vec<Tp>> {
    let md = rt.source.refresh_metadata(None).await.map_err(|e| Error::cluster(&rt.flow.source, e))?;
    let mut topics: Vec<_> = md.topics.values().filter(|t| !t.internal && naming::replicates(&rt.flow, &t.name)).cloned().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let target_md = rt.target.refresh_metadata(None).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
    let mut out = Vec::new();
    for t in topics {
        let remote = naming::remote_topic(&rt.flow, &t.name);
        let count = t.partitions.len() as i32;
        match target_md.topics.get(&remote) {
            None => {
                let configs = source_configs(rt, &t.name).await;
                let created = rt.target.create_topic(&remote, count, &configs).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
                if created {
                    tracing::info!(flow = %rt.flow.name(), topic = %t.name, remote = %remote, partitions = count, "created remote topic");
                }
            }
            Some(existing) if (existing.partitions.len() as i32) < count => {
                rt.target.create_partitions(&remote, count).await.map_err(|e| Error::cluster(&rt.flow.target, e))?;
                tracing::info!(flow = %rt.flow.name(), remote = %remote, partitions = count, "grew remote topic");
            }
            Some(_) => {}
        }
        out.extend(t.partitions.iter().map(|p| (t.name.clone(), p.partition)));
    }
    Ok(out)
}

/// The source topic's own configs, minus [`CONFIG_EXCLUDES`]. A cluster that cannot describe
/// configs gets the remote topic created with the target's defaults.
async fn source_configs(rt: &Runtime, topic: &str) -> BTreeMap<String, String> {
    match rt.source.describe_topic_configs(&[topic.to_string()]).await {
        Ok(mut all) => all.remove(topic).unwrap_or_default().into_iter().filter(|(k, _)| !CONFIG_EXCLUDES.contains(&k.as_str())).collect(),
        Err(e) => {
            tracing::warn!(flow = %rt.flow.name(), topic, "cannot read source topic configs ({e}); creating the remote topic with defaults");
            BTreeMap::new()
        }
    }
}

/// Where replication of new partitions starts: the flow group's committed offset, else the
/// source log start. A committed offset below the log start (retention went past it) starts
/// at the log start.
async fn start_positions(rt: &Runtime, partitions: &[Tp]) -> HashMap<Tp, i64> {
    let committed = match rt.source.committed_offsets(&group_id(&rt.flow), partitions).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(flow = %rt.flow.name(), "cannot read committed positions ({e}); starting from the log start");
            BTreeMap::new()
        }
    };
    let mut out = HashMap::new();
    for tp in partitions {
        let start = rt.source.list_offset(&tp.0, tp.1, EARLIEST).await.map(|(o, _)| o).unwrap_or(0);
        let pos = match committed.get(tp) {
            Some(c) if *c >= start => *c,
            Some(c) => {
                tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, committed = c, log_start = start, "records between the committed position and the log start were deleted on the source before they were replicated");
                start
            }
            None => start,
        };
        out.insert(tp.clone(), pos);
    }
    out
}

/// One fetch request per source leader for every partition with room in its queue.
async fn fetch_round(rt: &Arc<Runtime>, queues: &HashMap<Tp, mpsc::Sender<Prepared>>, positions: &mut HashMap<Tp, i64>) -> Result<()> {
    let md = rt.source.metadata_snapshot();
    let failed: HashSet<Tp> = rt.failed.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
    let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
    for (tp, tx) in queues {
        if tx.capacity() == 0 || failed.contains(tp) {
            continue;
        }
        let Some(leader) = md.leader(&tp.0, tp.1) else { continue };
        let pos = positions.get(tp).copied().unwrap_or(0);
        by_leader.entry(leader).or_default().push((tp.0.clone(), tp.1, pos));
    }
    if by_leader.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(());
    }
    // Leaders are fetched concurrently: a long poll on a quiet broker must not hold back a busy one.
    let wait = rt.settings.fetch_max_wait.as_millis() as i32;
    let mut fetches = tokio::task::JoinSet::new();
    for (leader, parts) in by_leader {
        let rt = rt.clone();
        fetches.spawn(async move { rt.source.fetch(leader, &parts, wait, rt.settings.fetch_max_bytes, rt.settings.partition_max_bytes).await });
    }
    let mut refresh = false;
    while let Some(joined) = fetches.join_next().await {
        let Ok(resp) = joined else { continue };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                refresh = true;
                tracing::debug!(flow = %rt.flow.name(), "fetch failed: {e}");
                continue;
            }
        };
        for t in resp.responses {
            let topic = t.topic.0.to_string();
            for p in t.partitions {
                let tp = (topic.clone(), p.partition_index);
                let Some(pos) = positions.get(&tp).copied() else { continue };
                match p.error_code {
                    0 => {}
                    1 => {
                        // OFFSET_OUT_OF_RANGE: the source deleted what we were about to read.
                        let (start, _) = rt.source.list_offset(&tp.0, tp.1, EARLIEST).await.map_err(|e| Error::cluster(&rt.flow.source, e))?;
                        if start > pos {
                            tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, from = pos, to = start, "source log start moved past the replication position; records in between were deleted before replication");
                            positions.insert(tp, start);
                        }
                        continue;
                    }
                    code => {
                        refresh = true;
                        tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, code, "fetch error");
                        continue;
                    }
                }
                rt.status.update(&tp.0, tp.1, |s| s.source_end_offset = p.high_watermark);
                let records = p.records.unwrap_or_default();
                if records.is_empty() {
                    continue;
                }
                let prepared = match prepare(&records, pos) {
                    Ok(prepared) => prepared,
                    Err(e) => {
                        fail_partition(rt, &tp, e.to_string());
                        continue;
                    }
                };
                if prepared.next_offset == pos {
                    continue;
                }
                positions.insert(tp.clone(), prepared.next_offset);
                if let Some(tx) = queues.get(&tp) {
                    // Capacity was checked above and only this task sends.
                    let _ = tx.try_send(prepared);
                }
            }
        }
    }
    if refresh {
        let _ = rt.source.refresh_metadata(None).await;
    }
    Ok(())
}

fn fail_partition(rt: &Runtime, tp: &Tp, reason: String) {
    tracing::error!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "replication of this partition stopped: {reason}");
    rt.status.update(&tp.0, tp.1, |s| s.error = Some(reason.clone()));
    rt.failed.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), reason);
}

/// Produces one partition's prepared record sets in order; a set counts as replicated once
/// the target acknowledged it.
async fn partition_producer(rt: Arc<Runtime>, tp: Tp, mut rx: mpsc::Receiver<Prepared>) {
    let remote = naming::remote_topic(&rt.flow, &tp.0);
    while let Some(set) = rx.recv().await {
        if !set.records.is_empty() {
            let records: Bytes = set.records.freeze();
            let mut backoff = Duration::from_millis(100);
            loop {
                match rt.target.produce(&remote, tp.1, records.clone(), -1, 30_000).await {
                    Ok(_) => break,
                    Err(e) if e.is_retriable() => {
                        rt.status.update(&tp.0, tp.1, |s| s.error = Some(format!("retrying: {e}")));
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        fail_partition(&rt, &tp, format!("the target refused records for {remote}/{}: {e}", tp.1));
                        return;
                    }
                }
            }
            let (n, bytes) = (set.source_offsets.len() as u64, records.len() as u64);
            rt.status.update(&tp.0, tp.1, |s| {
                s.records += n;
                s.bytes += bytes;
                s.batches_fast += set.batches_fast;
                s.batches_rewritten += set.batches_rewritten;
                s.error = None;
            });
        }
        let next = set.next_offset;
        let ts = set.max_timestamp;
        rt.status.update(&tp.0, tp.1, |s| {
            s.replicated_offset = next;
            s.replicated_timestamp = s.replicated_timestamp.max(ts);
        });
        rt.acked.lock().await.insert(tp.clone(), next);
    }
}

async fn committer(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if wait_or_shutdown(&mut shutdown, Duration::from_secs(1)).await {
            return;
        }
        commit_now(&rt).await;
    }
}

/// Commits acknowledged positions; kept for the next attempt when the commit fails.
async fn commit_now(rt: &Runtime) {
    let pending = std::mem::take(&mut *rt.acked.lock().await);
    if pending.is_empty() {
        return;
    }
    if let Err(e) = rt.source.commit_offsets(&group_id(&rt.flow), &Membership::none(), &pending).await {
        tracing::debug!(flow = %rt.flow.name(), "commit of replication progress failed: {e}");
        let mut acked = rt.acked.lock().await;
        for (tp, o) in pending {
            acked.entry(tp).or_insert(o);
        }
    }
}

async fn heartbeats(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let mut created = false;
    loop {
        if !created {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            created = rt.target.create_topic(HEARTBEATS_TOPIC, 1, &configs).await.is_ok();
        }
        if created {
            let hb = Heartbeat { source_cluster: rt.flow.source.clone(), target_cluster: rt.flow.target.clone(), timestamp: now_ms() };
            match encode_one(hb.key(), hb.value(), hb.timestamp) {
                Ok(records) => match rt.target.produce(HEARTBEATS_TOPIC, 0, records, -1, 10_000).await {
                    Ok(_) => rt.status.heartbeat_sent(),
                    Err(e) => tracing::debug!(flow = %rt.flow.name(), "heartbeat: {e}"),
                },
                Err(e) => tracing::error!("encoding a heartbeat: {e}"),
            }
        }
        if wait_or_shutdown(&mut shutdown, rt.settings.heartbeat_interval).await {
            return;
        }
    }
}

/// One record as a batch of its own.
pub fn encode_one(key: Bytes, value: Bytes, timestamp: i64) -> Result<Bytes> {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key),
        value: Some(value),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, [&record], &RecordEncodeOptions { version: 2, compression: Compression::None })
        .map_err(|e| Error::Other(e.to_string()))?;
    Ok(buf.freeze())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
