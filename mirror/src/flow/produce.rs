//! Producing to the target: each partition's record sets in order, idempotent with up to five
//! requests in flight, or in transactions for exactly-once delivery.

use std::sync::Arc;
use std::time::Duration;

use tern_kafka::client::TxnProducer;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::clock::now_ms;
use crate::names::Tp;
use crate::producer::{stamp_producer, OutBatch};
use crate::naming;
use crate::transform::Prepared;
use crate::offset_map::store;

use super::held::Queued;
use super::runtime::*;

/// Batches of one partition in flight at once when the target has an idempotent producer, as
/// Kafka's producer allows (`max.in.flight.requests.per.connection` 5 with idempotence): the
/// broker keeps the last five batches of a producer per partition, so a batch resent after a
/// lost acknowledgement is recognised and answered with its first offsets.
pub(super) const MAX_IN_FLIGHT: usize = 5;

/// Produces one partition's prepared record sets in order; a record counts as replicated once
/// the target acknowledged its batch.
///
/// Kafka takes exactly one record batch per partition in a produce request
/// (`ProduceRequest.validateRecords`), so a fetched set of several batches goes out one batch
/// per request, in order, up to [`MAX_IN_FLIGHT`] at a time.
pub(super) async fn partition_producer(rt: Arc<Runtime>, tp: Tp, mut rx: mpsc::Receiver<Queued>) {
    let remote = naming::remote_topic(&rt.flow, &tp.0);
    if crate::failpoint::hit("stall-produce", &tp.0) {
        tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "failpoint stall-produce: this partition's producer takes nothing");
        std::future::pending::<()>().await;
    }
    // The answer memory a set holds is let go at the end of its turn, with its batches.
    while let Some(Queued { mut set, held: _held }) = rx.recv().await {
        if !rt.session.may_produce() {
            // Given up (a rebalance, or the group session lost): what is queued is fetched
            // again by the next owner.
            return;
        }
        let stop = set.stop.take();
        if !set.batches.is_empty() {
            // Idempotent produce: every batch gets the next sequence numbers once, and retries
            // resend the same bytes, so the target writes a retried batch only once.
            let mut next_sequence = None;
            if let Some((producer_id, epoch)) = rt.producer {
                let first = rt.sequences.lock().unwrap_or_else(|p| p.into_inner()).get(&tp).copied().unwrap_or(0);
                next_sequence = Some(stamp_producer(&mut set.batches, producer_id, epoch, first, false));
            }
            let batches = std::mem::take(&mut set.batches);
            // One trace span per replicated record set (exported when OTLP is configured).
            let bytes: usize = batches.iter().map(OutBatch::wire_len).sum();
            let span = tracing::info_span!("replicate", flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, remote = %remote, records = set.source_offsets.len(), bytes);
            // Each acknowledgement updates the offset map at once (translation follows the
            // target closely); new entries are persisted before the position is committed.
            let mut added = Vec::new();
            let mut offsets = std::mem::take(&mut set.source_offsets);
            // The source offset after the last batch acknowledged, if any was.
            let mut acked_to = None;
            let mut on_ack = |i: usize, ack: tern_kafka::client::ProduceAck| {
                let (len, count) = (batches[i].wire_len(), batches[i].count);
                let these = offsets.split_front(count as u64);
                // The source offset after this batch: the next batch's first record, or for the
                // last batch everything the set passed (control batches after it included).
                let next = offsets.first().unwrap_or(set.next_offset);
                acked_to = Some(next);
                added.extend(rt.maps.lock().unwrap_or_else(|p| p.into_inner()).entry(tp.clone()).or_default().record_runs(&these, ack.base_offset, next));
                let (n, bytes) = (these.len(), len as u64);
                if let Some(h) = batches[i].parsed_header() {
                    let ts = if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp };
                    rt.status.observe_latency((crate::clock::now_ms() - ts) as f64 / 1000.0, n);
                }
                // The source leader epoch before the position, kept only for a position right
                // after the batch's last record, as Kafka's consumers commit it: past control
                // batches of a later epoch, the epoch would seem to end below the position.
                if batches[i].source_epoch >= 0 && these.last().map(|l| l + 1) == Some(next) {
                    rt.acked_epochs.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), (batches[i].source_epoch, next));
                }
                // Shown as replicated at once unless this set added offset-map entries: until
                // they are on the target, a drill or a failover reading the maps could not
                // count these records as replicated, so neither does the status.
                let entries_pending = !added.is_empty();
                rt.status.update(&tp.0, tp.1, |s| {
                    s.records += n;
                    s.bytes += bytes;
                    if !entries_pending {
                        s.replicated_offset = next;
                    }
                    s.error = None;
                });
            };
            let by = ProduceAs {
                transactional_id: None,
                idempotent: rt.producer.is_some(),
                known: rt.producer.is_some() && rt.sequences.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&tp),
            };
            let (done, refused) = produce_in_order(&rt, &tp, &remote, &batches, by, &mut on_ack).instrument(span.clone()).await;
            if crate::failpoint::hit("abort-before-offset-map", &tp.0) {
                tracing::error!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "failpoint abort-before-offset-map: aborting after a produce, before its offset map entries are written");
                std::process::abort();
            }
            // The map entries must be durable before the position they cover is committed.
            async {
                let mut backoff = Duration::from_millis(100);
                while let Err(e) = rt.map_writes.persist((&rt.flow, &rt.source, &rt.target), &tp, added.clone()).await {
                    tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "persisting offset map entries: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            .instrument(span)
            .await;
            if let Some(next) = acked_to {
                rt.status.update(&tp.0, tp.1, |s| s.replicated_offset = s.replicated_offset.max(next));
            }
            if let Some(e) = refused {
                fail_partition(&rt, &tp, refusal(&remote, tp.1, &e, offsets.first()));
                return;
            }
            if done < batches.len() {
                // Stopped part-way (the partitions are given up): what was acknowledged counts,
                // and the next batch keeps its sequence number, so that if this worker sends
                // it again the target knows it.
                if let Some(seq) = next_sequence.and(batches[done].parsed_header().map(|h| h.base_sequence)) {
                    rt.sequences.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), seq);
                }
                if let Some(next) = acked_to {
                    rt.acked.lock().await.insert(tp.clone(), next);
                }
                return;
            }
            if let Some(next) = next_sequence {
                rt.sequences.lock().unwrap_or_else(|p| p.into_inner()).insert(tp.clone(), next);
            }
            rt.status.update(&tp.0, tp.1, |s| {
                s.batches_fast += set.batches_fast;
                s.batches_rewritten += set.batches_rewritten;
            });
        } else {
            rt.maps.lock().unwrap_or_else(|p| p.into_inner()).entry(tp.clone()).or_default().record(&[], 0, set.next_offset);
        }
        let next = set.next_offset;
        let ts = set.max_timestamp;
        rt.status.update(&tp.0, tp.1, |s| {
            s.replicated_offset = next;
            s.replicated_timestamp = s.replicated_timestamp.max(ts);
        });
        rt.acked.lock().await.insert(tp.clone(), next);
        if let Some(why) = stop {
            fail_partition(&rt, &tp, why);
            return;
        }
    }
}

/// Produces one partition's prepared record sets exactly once: each transaction on the target
/// holds the records of the sets queued (up to the queue's length), the offset-map entries
/// they add and the source position after them, so a consumer of the target reading
/// `read_committed` sees either all of it or none. The worker that owns the partition next
/// fences this producer (same transactional id) and goes on from the position the last
/// committed transaction stored.
///
/// A transaction that fails is aborted and the worker rejoins its group: the partition starts
/// over from the position committed on the target. A record the target refuses stops the
/// partition, as in at-least-once delivery.
pub(super) async fn transactional_partition_producer(rt: Arc<Runtime>, tp: Tp, mut rx: mpsc::Receiver<Queued>, mut txn: TxnProducer) {
    let remote = naming::remote_topic(&rt.flow, &tp.0);
    // Sequences start at 0 with each producer epoch, per partition written.
    let mut sequences = (0, 0);
    let mut known = false;
    while let Some(first) = rx.recv().await {
        if !rt.session.may_produce() {
            return;
        }
        let mut sets = vec![first];
        while let Ok(more) = rx.try_recv() {
            sets.push(more);
        }
        // The answer memory the sets hold is let go once their transaction is over.
        let (mut sets, _held): (Vec<Prepared>, Vec<_>) = sets.into_iter().map(|q| (q.set, q.held)).unzip();
        let stop = sets.iter_mut().find_map(|s| s.stop.take());
        let span = tracing::info_span!("replicate", flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, remote = %remote, transactional_id = %txn.transactional_id());
        let result = replicate_in_transaction(&rt, &tp, &remote, &mut txn, &mut sequences, known, sets).instrument(span).await;
        match result {
            Ok(()) => {
                if let Some(why) = stop {
                    fail_partition(&rt, &tp, why);
                    return;
                }
                known = true;
            }
            Err(failure) => {
                let fenced = failure.error.as_ref().is_some_and(tern_kafka::client::is_fenced);
                if !fenced {
                    if let Err(e) = txn.end(&rt.target, false).await {
                        tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "aborting the transaction: {e}");
                    }
                }
                let why = failure.error.as_ref().map_or_else(|| "the partitions were given up".to_string(), |e| e.to_string());
                if let (true, Some(e)) = (failure.refused, &failure.error) {
                    fail_partition(&rt, &tp, refusal(&remote, tp.1, e, failure.source_offset));
                } else if rt.session.may_produce() {
                    tracing::warn!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, fenced, "exactly-once transaction aborted: {why}; rejoining to go on from the position committed on {}", rt.flow.target);
                    rt.status.update(&tp.0, tp.1, |s| s.error = Some(format!("transaction aborted: {why}")));
                    rt.session.ask_rejoin();
                }
                return;
            }
        }
    }
}

/// Why a transaction of [`replicate_in_transaction`] did not commit: a Kafka error (refused
/// records among them), or none when the worker stopped producing part-way.
pub(super) struct TxnFailure {
    error: Option<tern_kafka::Error>,
    refused: bool,
    /// For refused records: the source offset of the first record not acknowledged.
    source_offset: Option<i64>,
}

impl From<tern_kafka::Error> for TxnFailure {
    fn from(e: tern_kafka::Error) -> TxnFailure {
        TxnFailure { error: Some(e), refused: false, source_offset: None }
    }
}

/// What the status says when the target refuses a partition's records. A batch found corrupt
/// after the target refused it was corrupt on the source (its CRC is patched on the way, never
/// computed anew): the source is named, with the offset the batch starts at.
fn refusal(remote: &str, partition: i32, e: &tern_kafka::Error, source_offset: Option<i64>) -> String {
    match e {
        tern_kafka::Error::CorruptBatch { .. } => {
            let at = source_offset.map_or_else(String::new, |o| format!(" at offset {o}"));
            // The CRCs in `e` are of the header as edited, not the source's: left out.
            format!("the source holds a corrupt batch{at}: its bytes do not match its CRC; the target refused it (CORRUPT_MESSAGE) and the partition stops there")
        }
        _ => format!("the target refused records for {remote}/{partition}: {e}"),
    }
}

/// The error that stops a partition when the target refuses a batch as corrupt
/// (`CORRUPT_MESSAGE`, which Kafka counts as retriable) and its CRC indeed fails here: the batch
/// was corrupt on the source, and sending it again cannot help. `None` for any other error, or
/// a batch that checks (spoilt on the way: sent again).
fn corrupt_on_source(e: &tern_kafka::Error, parts: &[bytes::Bytes]) -> Option<tern_kafka::Error> {
    let refused_as_corrupt = matches!(e, tern_kafka::Error::Kafka { error: kafka_protocol::ResponseError::CorruptMessage, .. });
    if !refused_as_corrupt {
        return None;
    }
    tern_kafka::batch::verify_crc_parts(parts).err()
}

/// One transaction: the sets' records to the remote partition, the offset-map entries and the
/// position to the offset-map topic, then the commit. Neither the status nor the position
/// committed on the source counts the sets before the commit. The in-memory offset map follows
/// each acknowledgement, as in at-least-once delivery: if the transaction fails, the worker
/// rejoins, and the next assignment reloads the maps as the target committed them (a group
/// translated meanwhile onto an aborted record resumes at the next committed one, the same
/// source record written again).
pub(super) async fn replicate_in_transaction(rt: &Runtime, tp: &Tp, remote: &str, txn: &mut TxnProducer, sequences: &mut (i32, i32), known: bool, sets: Vec<Prepared>) -> std::result::Result<(), TxnFailure> {
    let map_topic = store::offset_map_topic(&rt.flow.source);
    txn.add_partitions(&rt.target, &[(remote.to_string(), tp.1), (map_topic.clone(), 0)]).await?;
    let (producer_id, epoch) = txn.identity();
    let id = txn.transactional_id().to_string();
    let mut added = Vec::new();
    let (mut records, mut bytes, mut fast, mut rewritten) = (0u64, 0u64, 0u64, 0u64);
    let mut timestamps = Vec::new();
    let (mut next, mut max_timestamp) = (-1, -1);
    let mut known = known;
    for mut set in sets {
        next = set.next_offset;
        max_timestamp = max_timestamp.max(set.max_timestamp);
        if set.batches.is_empty() {
            rt.maps.lock().unwrap_or_else(|p| p.into_inner()).entry(tp.clone()).or_default().record(&[], 0, set.next_offset);
            continue;
        }
        sequences.0 = stamp_producer(&mut set.batches, producer_id, epoch, sequences.0, true);
        let batches = std::mem::take(&mut set.batches);
        let mut offsets = std::mem::take(&mut set.source_offsets);
        let mut on_ack = |i: usize, ack: tern_kafka::client::ProduceAck| {
            let (len, count) = (batches[i].wire_len(), batches[i].count);
            let these = offsets.split_front(count as u64);
            let after = offsets.first().unwrap_or(set.next_offset);
            added.extend(rt.maps.lock().unwrap_or_else(|p| p.into_inner()).entry(tp.clone()).or_default().record_runs(&these, ack.base_offset, after));
            records += these.len();
            bytes += len as u64;
            if let Some(h) = batches[i].parsed_header() {
                timestamps.push((if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp }, these.len()));
            }
        };
        let by = ProduceAs { transactional_id: Some(&id), idempotent: true, known };
        let (done, refused) = produce_in_order(rt, tp, remote, &batches, by, &mut on_ack).await;
        if let Some(e) = refused {
            let refused = !e.is_retriable() && !tern_kafka::client::is_fenced(&e);
            return Err(TxnFailure { error: Some(e), refused, source_offset: offsets.first() });
        }
        if done < batches.len() {
            return Err(TxnFailure { error: None, refused: false, source_offset: None });
        }
        known = true;
        fast += set.batches_fast;
        rewritten += set.batches_rewritten;
    }
    let mut state = store::map_records(tp, &added, &[]);
    state.push(store::position_record(tp, Some(next)));
    let encoded = store::encode_records(&state, now_ms()).map_err(|e| tern_kafka::Error::Encode(e.to_string()))?;
    let mut batch = [OutBatch::split(&encoded, state.len())];
    sequences.1 = stamp_producer(&mut batch, producer_id, epoch, sequences.1, true);
    if produce_batch(rt, tp, (&map_topic, 0), &batch[0].parts(), Some(&id)).await?.is_none() {
        return Err(TxnFailure { error: None, refused: false, source_offset: None });
    }
    if crate::failpoint::hit("abort-before-commit", &tp.0) {
        tracing::error!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "failpoint abort-before-commit: aborting with a transaction written and not committed");
        std::process::abort();
    }
    txn.end(&rt.target, true).await?;
    // Committed: now it counts.
    store::write_offset_syncs(&rt.flow, &rt.source, tp, &added).await;
    let now = now_ms();
    for (ts, n) in timestamps {
        rt.status.observe_latency((now - ts) as f64 / 1000.0, n);
    }
    rt.status.update(&tp.0, tp.1, |s| {
        s.records += records;
        s.bytes += bytes;
        s.batches_fast += fast;
        s.batches_rewritten += rewritten;
        s.replicated_offset = next;
        s.replicated_timestamp = s.replicated_timestamp.max(max_timestamp);
        s.error = None;
    });
    rt.acked.lock().await.insert(tp.clone(), next);
    Ok(())
}

/// Who a partition's batches are produced as.
#[derive(Clone, Copy)]
pub(super) struct ProduceAs<'a> {
    /// A transactional producer's id: its partitions were added to its open transaction.
    transactional_id: Option<&'a str>,
    /// The batches carry a producer id and sequences: up to [`MAX_IN_FLIGHT`] at a time.
    idempotent: bool,
    /// The partition has accepted a batch of this producer already: the first batch need not
    /// go alone.
    known: bool,
}

/// Produces `batches` to one partition in order, handing each acknowledgement to `on_ack` (with
/// the batch's index) as it comes. Returns how many batches were acknowledged, and the error
/// that stopped the rest, if any; with no error and fewer acknowledged, the worker stopped
/// producing (no new request once [`Session::may_produce`] says no; those in flight are
/// awaited).
///
/// With an idempotent producer up to [`MAX_IN_FLIGHT`] requests are in flight. When one fails,
/// whatever else is in flight is awaited and the batches from the failed one on are sent again
/// one at a time: a resent batch the target already wrote is one of its last five and comes back
/// as a duplicate with its original offsets, and one it did not write follows the last it did.
pub(super) async fn produce_in_order(rt: &Runtime, tp: &Tp, remote: &str, batches: &[OutBatch], by: ProduceAs<'_>, on_ack: &mut impl FnMut(usize, tern_kafka::client::ProduceAck)) -> (usize, Option<tern_kafka::Error>) {
    // One at a time until the partition knows this producer: a partition accepts a producer it
    // has no state for at any sequence, so a batch sent behind a refused one could be written.
    // Afterwards a batch behind a refused one is refused too (its sequence leaves a gap).
    let mut window = if by.known { MAX_IN_FLIGHT } else { 1 };
    let to = rt.produce_to(tp, by.transactional_id).await;
    let mut acked = 0;
    let mut in_flight: std::collections::VecDeque<tern_kafka::Result<tern_kafka::client::PendingProduce>> = std::collections::VecDeque::new();
    let mut sent = 0;
    while acked < batches.len() {
        while sent < batches.len() && in_flight.len() < window && rt.session.may_produce() {
            let request = rt.target.send_produce_on(&to, remote, tp.1, batches[sent].parts()).await;
            let stop = request.is_err();
            in_flight.push_back(request);
            sent += 1;
            if stop {
                break;
            }
        }
        let answer = match in_flight.pop_front() {
            Some(Ok(request)) => request.ack().await,
            Some(Err(e)) => Err(e),
            None => break,
        };
        match answer {
            Ok(ack) => {
                on_ack(acked, ack);
                acked += 1;
                if by.idempotent {
                    window = MAX_IN_FLIGHT;
                }
            }
            Err(e) => {
                for request in in_flight.drain(..).flatten() {
                    let _ = request.ack().await;
                }
                if let Some(corrupt) = corrupt_on_source(&e, &batches[acked].parts()) {
                    return (acked, Some(corrupt));
                }
                if !e.is_retriable() {
                    return (acked, Some(e));
                }
                tracing::debug!(flow = %rt.flow.name(), topic = %tp.0, partition = tp.1, "produce: {e}; resending from batch {acked} of {}", batches.len());
                while acked < sent {
                    match produce_batch(rt, tp, (remote, tp.1), &batches[acked].parts(), by.transactional_id).await {
                        Ok(Some(ack)) => {
                            on_ack(acked, ack);
                            acked += 1;
                        }
                        Ok(None) => return (acked, None),
                        Err(e) => return (acked, Some(e)),
                    }
                }
                // The partition acknowledged this producer by now, if it had not before.
                if by.idempotent && acked > 0 {
                    window = MAX_IN_FLIGHT;
                }
            }
        }
    }
    (acked, None)
}

/// Produces one batch (for source partition `tp`) to a target partition, retrying what the target may accept later (leadership moves,
/// connection trouble) with a growing backoff; `None` when the worker stopped producing first.
pub(super) async fn produce_batch(rt: &Runtime, tp: &Tp, (remote, partition): (&str, i32), batch: &[bytes::Bytes], transactional_id: Option<&str>) -> tern_kafka::Result<Option<tern_kafka::client::ProduceAck>> {
    let mut backoff = Duration::from_millis(100);
    loop {
        if !rt.session.may_produce() {
            return Ok(None);
        }
        let to = rt.produce_to(tp, transactional_id).await;
        let sent = async { rt.target.send_produce_on(&to, remote, partition, batch.to_vec()).await?.ack().await };
        match sent.await {
            Ok(ack) => return Ok(Some(ack)),
            Err(e) if e.is_retriable() => {
                if let Some(corrupt) = corrupt_on_source(&e, batch) {
                    return Err(corrupt);
                }
                rt.status.update(&tp.0, tp.1, |s| s.error = Some(format!("retrying: {e}")));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                // The leader may have moved: this topic's metadata (and the brokers') is asked
                // again, not the whole cluster's, as a thousand partitions may be retrying.
                let _ = rt.target.refresh_metadata(Some(&[remote.to_string()])).await;
            }
            Err(e) => return Err(e),
        }
    }
}
