//! The demo's consumer groups: one per cluster, a real member of its group that reads every
//! `orders` and `payments` topic there (local ones and remote copies) and commits what it
//! read every second, so the dashboard has groups to translate and checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tern_kafka::batch::Batches;
use tern_kafka::client::{Client, ClientConfig, GroupMember, HeartbeatOutcome, EARLIEST};

use super::TOPICS;

type Tp = (String, i32);

const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the member looks for new topics (remote copies appear once a flow starts).
const TOPIC_REFRESH_INTERVAL: Duration = Duration::from_secs(3);

/// Whether the demo's groups read `topic`: `orders`, `payments` and their remote copies
/// (`us-east.orders`, ...), as a consumer in an active/active setup subscribes.
pub fn consumes(topic: &str) -> bool {
    topic.rsplit('.').next().is_some_and(|name| TOPICS.contains(&name))
}

/// Runs one member of `group` on the cluster at `bootstrap` until the process ends; starts
/// over after an error.
pub async fn run(bootstrap: String, region: &'static str, group: &'static str) {
    loop {
        if let Err(e) = member(&bootstrap, group).await {
            tracing::warn!("demo consumer group {group} in {region}: {e}; starting over");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn member(bootstrap: &str, group: &str) -> tern_kafka::Result<()> {
    let client = Client::connect(ClientConfig::new(bootstrap)).await?;
    let mut member = GroupMember::new(group, SESSION_TIMEOUT, SESSION_TIMEOUT);
    let mut subscribed: Vec<String> = Vec::new();
    // Next offset to read of each assigned partition; what is committed is what was read.
    let mut positions: HashMap<Tp, i64> = HashMap::new();
    let mut rejoin = true;
    let long_ago = tokio::time::Instant::now() - Duration::from_secs(60);
    let (mut last_refresh, mut last_heartbeat, mut last_commit) = (long_ago, tokio::time::Instant::now(), tokio::time::Instant::now());
    loop {
        if last_refresh.elapsed() >= TOPIC_REFRESH_INTERVAL {
            last_refresh = tokio::time::Instant::now();
            let md = client.refresh_metadata(None).await?;
            let topics: Vec<String> = md.topics.keys().filter(|t| consumes(t)).cloned().collect();
            if topics != subscribed {
                subscribed = topics;
                rejoin = true;
            }
        }
        if !rejoin && last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            last_heartbeat = tokio::time::Instant::now();
            rejoin = member.heartbeat(&client).await? != HeartbeatOutcome::Stable;
        }
        if rejoin {
            commit(&client, group, &member, &positions).await;
            positions.clear();
            let assignment = member.join(&client, &subscribed).await?;
            let committed = client.committed_offsets(group, &assignment).await?;
            for tp in assignment {
                // A partition the group never committed is read from its start.
                let start = match committed.get(&tp) {
                    Some(offset) => *offset,
                    None => client.list_offset(&tp.0, tp.1, EARLIEST).await?.0,
                };
                positions.insert(tp, start);
            }
            tracing::info!(group, partitions = positions.len(), "demo consumer joined");
            rejoin = false;
            last_heartbeat = tokio::time::Instant::now();
        }
        if positions.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        } else {
            fetch(&client, &mut positions).await?;
        }
        if last_commit.elapsed() >= COMMIT_INTERVAL {
            last_commit = tokio::time::Instant::now();
            commit(&client, group, &member, &positions).await;
        }
    }
}

/// Reads from every assigned partition once (long-polling half a second when there is
/// nothing new) and moves each position past the whole batches that came back.
async fn fetch(client: &Client, positions: &mut HashMap<Tp, i64>) -> tern_kafka::Result<()> {
    let md = client.metadata_snapshot();
    let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
    for ((topic, partition), offset) in positions.iter() {
        if let Some(leader) = md.leader(topic, *partition) {
            by_leader.entry(leader).or_default().push((topic.clone(), *partition, *offset));
        }
    }
    for (leader, partitions) in by_leader {
        let resp = client.fetch(leader, &partitions, 500, 4 << 20, 1 << 20).await?;
        for t in resp.responses {
            for p in t.partitions {
                let tp = (t.topic.0.to_string(), p.partition_index);
                if p.error_code == 1 {
                    // OFFSET_OUT_OF_RANGE: the log start moved past us; read from there.
                    let (start, _) = client.list_offset(&tp.0, tp.1, EARLIEST).await?;
                    positions.insert(tp, start);
                    continue;
                }
                let records = p.records.unwrap_or_default();
                if let Some(last) = Batches::new(&records).map_while(|b| b.ok()).map(|(_, h)| h.last_offset()).last() {
                    if let Some(position) = positions.get_mut(&tp) {
                        *position = (*position).max(last + 1);
                    }
                }
            }
        }
    }
    Ok(())
}

async fn commit(client: &Client, group: &str, member: &GroupMember, positions: &HashMap<Tp, i64>) {
    if positions.is_empty() {
        return;
    }
    let offsets: BTreeMap<Tp, i64> = positions.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
    if let Err(e) = client.commit_offsets(group, &member.membership(), &offsets).await {
        tracing::debug!(group, "demo consumer commit: {e}");
    }
}
