//! Background work on every partition: retention, time-based segment rolls, expiry of idle
//! producer ids, log cleaning of compacted topics, interval fsync.

use std::sync::Arc;
use std::time::Duration;

use crate::apis::now_ms;
use crate::server::BrokerState;
use crate::storage::PendingSync;
use crate::topics::{Partition, Topic};

/// Kafka's `producer.id.expiration.ms` default: an idempotent producer idle this long is
/// forgotten, and its next batch is accepted at any sequence.
const PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

pub async fn run(state: Arc<BrokerState>) {
    let mut tick = tokio::time::interval(state.config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let pending = run_once(&state);
        sync_partitions(pending).await;
        clean_logs(&state).await;
    }
}

/// With `--fsync interval:<d>`: every `d`, fsyncs each partition written to since its last
/// fsync, without the partition locks (see [`sync_partitions`]). No append waits on the
/// disk, and a write is on disk within about `d` whether or not another write follows.
pub async fn flush_on_interval(state: Arc<BrokerState>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sync_partitions(written_to(&state)).await;
    }
}

/// The fsyncs of the partitions with segments written to since their last fsync; an offline
/// partition is left alone (it said why when it went offline).
fn written_to(state: &BrokerState) -> Vec<Pending> {
    let mut pending = Vec::new();
    for topic in state.topics.all() {
        for p in &topic.partitions {
            let log = p.log();
            if log.is_offline() {
                continue;
            }
            match log.prepare_sync() {
                Ok(sync) if sync.segments() > 0 => pending.push((topic.clone(), p.clone(), sync)),
                Ok(_) => {}
                Err(e) => tracing::error!(topic = %topic.name, partition = p.index, "flush failed: {e}"),
            }
        }
    }
    pending
}

/// A partition's fsync, prepared during the pass and run after it.
type Pending = (Arc<Topic>, Arc<Partition>, PendingSync);

/// One pass over every partition. Errors are logged per partition and never stop the pass.
/// Returns the fsyncs to run next with [`sync_partitions`], without the partition locks.
fn run_once(state: &BrokerState) -> Vec<Pending> {
    let now = now_ms();
    let mut pending = Vec::new();
    for topic in state.topics.all() {
        for p in &topic.partitions {
            let mut log = p.log();
            if let Err(e) = log.roll_if_due(now) {
                tracing::error!(topic = %topic.name, partition = p.index, "segment roll failed: {e}");
            }
            match log.enforce_retention(now) {
                Ok(0) => {}
                Ok(n) => tracing::info!(topic = %topic.name, partition = p.index, segments = n, log_start_offset = log.log_start_offset(), "retention removed segments"),
                Err(e) => tracing::error!(topic = %topic.name, partition = p.index, "retention failed: {e}"),
            }
            let expired = log.expire_producers(now, PRODUCER_ID_EXPIRATION_MS);
            if expired > 0 {
                tracing::debug!(topic = %topic.name, partition = p.index, expired, "expired idle producer ids");
            }
            match log.prepare_sync() {
                Ok(sync) => pending.push((topic.clone(), p.clone(), sync)),
                Err(e) => tracing::error!(topic = %topic.name, partition = p.index, "flush failed: {e}"),
            }
        }
    }
    pending
}

/// Fsyncs on a blocking thread, one partition after another, with no lock held: a
/// transactional or any other append to the partition carries on while the disk catches up.
/// Each result is then handed back to its partition (a failure takes it offline).
async fn sync_partitions(pending: Vec<Pending>) {
    if pending.is_empty() {
        return;
    }
    let done = tokio::task::spawn_blocking(move || {
        pending.into_iter().map(|(topic, p, sync)| { let synced = sync.run(); (topic, p, sync, synced) }).collect::<Vec<_>>()
    })
    .await;
    let done = match done {
        Ok(done) => done,
        Err(e) => return tracing::error!("flush task failed: {e}"),
    };
    for (topic, p, sync, synced) in done {
        if let Err(e) = p.log().finish_sync(sync, synced) {
            tracing::error!(topic = %topic.name, partition = p.index, "flush failed: {e}");
        }
    }
}

/// Compacts the partitions that need it, one at a time. The partition lock is held only to
/// plan and to swap segments in; reading and rewriting runs on a blocking thread meanwhile,
/// so produce and fetch carry on.
async fn clean_logs(state: &BrokerState) {
    for topic in state.topics.all() {
        for p in &topic.partitions {
            if let Err(e) = clean_partition(&topic.name, p.clone()).await {
                tracing::error!(topic = %topic.name, partition = p.index, "log cleaning failed: {e}");
            }
        }
    }
}

async fn clean_partition(topic: &str, p: Arc<Partition>) -> Result<(), String> {
    let plan = p.log().plan_cleaning(now_ms()).map_err(|e| e.to_string())?;
    let Some(plan) = plan else { return Ok(()) };
    let result = tokio::task::spawn_blocking(move || plan.run())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let stats = p.log().finish_cleaning(result).map_err(|e| e.to_string())?;
    tracing::info!(
        topic, partition = p.index,
        segments = stats.segments_read,
        replaced = stats.segments_replaced,
        records_read = stats.records_read,
        records_kept = stats.records_kept,
        bytes_before = stats.bytes_read,
        bytes_after = stats.bytes_written,
        "log cleaned"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::storage::FsyncPolicy;

    fn one_record() -> Vec<u8> {
        let record = tern_kafka::records::PlainRecord { value: Some(bytes::Bytes::from_static(b"v")), timestamp: 1_700_000_000_000, ..Default::default() };
        tern_kafka::records::encode_batch(&[record], kafka_protocol::records::Compression::None).expect("encode").to_vec()
    }

    #[tokio::test]
    async fn the_interval_flusher_fsyncs_what_was_written_and_appends_do_not() {
        let dir = tempfile::tempdir().expect("dir");
        let config = BrokerConfig::with_data_dir(dir.path()).with_fsync(FsyncPolicy::Interval(Duration::from_millis(50)));
        let state = Arc::new(crate::server::open_state(config, "127.0.0.1:9092".parse().expect("addr")).expect("state"));
        let topic = state.topics.create("t", 2, Default::default()).map_err(|e| format!("{e:?}")).expect("topic");
        let dirty = |i: usize| topic.partitions[i].log().prepare_sync().expect("prepare").segments();
        topic.partitions[0].log().append(&mut one_record(), 1_700_000_000_000, false).expect("append");
        assert_eq!((dirty(0), dirty(1)), (1, 0), "the append left its fsync to the flusher");

        // Only the partition written to is fsynced.
        let pending = written_to(&state);
        assert_eq!(pending.iter().map(|(_, p, _)| p.index).collect::<Vec<_>>(), [0]);
        sync_partitions(pending).await;
        assert_eq!(dirty(0), 0);

        // A write followed by silence is fsynced within about the interval.
        let flusher = tokio::spawn(flush_on_interval(state.clone(), Duration::from_millis(50)));
        topic.partitions[1].log().append(&mut one_record(), 1_700_000_000_000, false).expect("append");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while dirty(1) > 0 {
            assert!(tokio::time::Instant::now() < deadline, "partition 1 not fsynced by the flusher");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        flusher.abort();
    }
}
