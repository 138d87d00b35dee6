//! A transactional producer, as Kafka's transaction protocol version 1 has it: the
//! transactional id's coordinator hands out the producer id and bumps its epoch (which fences
//! any earlier producer with that id and aborts its open transaction), partitions join the
//! transaction with AddPartitionsToTxn before they are written, and EndTxn commits or aborts.
//!
//! Batches are stamped by the caller with [`TxnProducer::identity`] and per-partition sequence
//! numbers, with the transactional attribute set, and sent with [`Client::send_produce_as`]
//! (Produce v11 at most: v12 and later make the broker add partitions itself, which is
//! transaction protocol version 2).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerConnection, Client};
use crate::error::{Error, Result};

/// Codes a transactional call is retried on, besides those Kafka marks retriable: the
/// coordinator is still completing the previous transaction (CONCURRENT_TRANSACTIONS), or moved.
const RETRY_CODES: [i16; 4] = [14, 15, 16, 51];

/// Producer fenced by a newer instance with the same transactional id (PRODUCER_FENCED,
/// INVALID_PRODUCER_EPOCH): the transaction can only be given up.
pub fn is_fenced(e: &Error) -> bool {
    matches!(e.code(), Some(90) | Some(47))
}

fn retry(e: &Error) -> bool {
    e.is_retriable() || e.code().is_some_and(|c| RETRY_CODES.contains(&c))
}

/// One transactional id's producer on a cluster.
pub struct TxnProducer {
    id: String,
    timeout_ms: i32,
    producer_id: i64,
    epoch: i16,
    coordinator: Option<Arc<BrokerConnection>>,
    /// Partitions added to the open transaction.
    added: BTreeSet<(String, i32)>,
}

impl Client {
    /// Initialises the producer of transactional id `id`: its producer id, with the epoch
    /// bumped, so an earlier producer with the id is fenced and its open transaction aborted.
    pub async fn transactional_producer(&self, id: &str, timeout: Duration) -> Result<TxnProducer> {
        let mut p = TxnProducer {
            id: id.to_string(),
            timeout_ms: timeout.as_millis().min(i32::MAX as u128) as i32,
            producer_id: -1,
            epoch: -1,
            coordinator: None,
            added: BTreeSet::new(),
        };
        let (pid, epoch) = p
            .call(self, "initialise the transactional producer", |conn, id, timeout| async move {
                let version = conn.version(ApiKey::InitProducerId, (0, 4))?;
                let req = InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id))))
                    .with_transaction_timeout_ms(timeout)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
                let resp = conn.call(&req, version).await?;
                match resp.error_code {
                    0 => Ok((resp.producer_id.0, resp.producer_epoch)),
                    code => Err(Error::kafka(code, "InitProducerId")),
                }
            })
            .await?;
        p.producer_id = pid;
        p.epoch = epoch;
        Ok(p)
    }
}

impl TxnProducer {
    /// The producer id and epoch to stamp on this producer's batches.
    pub fn identity(&self) -> (i64, i16) {
        (self.producer_id, self.epoch)
    }

    pub fn transactional_id(&self) -> &str {
        &self.id
    }

    /// Adds partitions to the open transaction (the first added partition opens it).
    /// Partitions already in it are not sent again.
    pub async fn add_partitions(&mut self, client: &Client, partitions: &[(String, i32)]) -> Result<()> {
        let new: Vec<(String, i32)> = partitions.iter().filter(|tp| !self.added.contains(*tp)).cloned().collect();
        if new.is_empty() {
            return Ok(());
        }
        let (pid, epoch) = (self.producer_id, self.epoch);
        let topics = {
            let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = std::collections::BTreeMap::new();
            for (t, p) in &new {
                by_topic.entry(t.clone()).or_default().push(*p);
            }
            by_topic
        };
        self.call(client, "add partitions to the transaction", move |conn, id, _| {
            let topics = topics.clone();
            async move {
                // v3 is the last version a client sends; v4 and later are the brokers' own.
                let version = conn.version(ApiKey::AddPartitionsToTxn, (0, 3))?;
                let req = AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(id)))
                    .with_v3_and_below_producer_id(ProducerId(pid))
                    .with_v3_and_below_producer_epoch(epoch)
                    .with_v3_and_below_topics(
                        topics.into_iter().map(|(t, ps)| AddPartitionsToTxnTopic::default().with_name(TopicName(StrBytes::from_string(t))).with_partitions(ps)).collect(),
                    );
                let resp = conn.call(&req, version).await?;
                if resp.error_code != 0 {
                    return Err(Error::kafka(resp.error_code, "AddPartitionsToTxn"));
                }
                // Partitions that could not be added say why; the others answer
                // OPERATION_NOT_ATTEMPTED (55) then, which is not their fault.
                let mut failed = None;
                for t in &resp.results_by_topic_v3_and_below {
                    for p in &t.results_by_partition {
                        match p.partition_error_code {
                            0 => {}
                            55 if failed.is_some() => {}
                            code => failed = Some(Error::kafka(code, format!("add {}/{} to the transaction", t.name.0, p.partition_index))),
                        }
                    }
                }
                failed.map_or(Ok(()), Err)
            }
        })
        .await?;
        self.added.extend(new);
        Ok(())
    }

    /// Commits (or aborts) the open transaction. Nothing happens when no partition was added.
    pub async fn end(&mut self, client: &Client, commit: bool) -> Result<()> {
        if self.added.is_empty() {
            return Ok(());
        }
        let (pid, epoch) = (self.producer_id, self.epoch);
        let what = if commit { "commit the transaction" } else { "abort the transaction" };
        self.call(client, what, move |conn, id, _| async move {
            // v5 and later are transaction protocol version 2.
            let version = conn.version(ApiKey::EndTxn, (0, 4))?;
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit);
            let resp = conn.call(&req, version).await?;
            match resp.error_code {
                0 => Ok(()),
                code => Err(Error::kafka(code, "EndTxn")),
            }
        })
        .await?;
        self.added.clear();
        Ok(())
    }

    /// Runs one coordinator call until it succeeds, fails for good or the client's retry
    /// deadline passes; the coordinator is looked up again after an error.
    async fn call<T, F, Fut>(&mut self, client: &Client, what: &str, op: F) -> Result<T>
    where
        F: Fn(Arc<BrokerConnection>, String, i32) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + client.config().retry_deadline;
        let mut backoff = Duration::from_millis(20);
        loop {
            let attempt = async {
                let conn = match &self.coordinator {
                    Some(c) if !c.is_closed() => c.clone(),
                    _ => {
                        let c = self.find_coordinator(client).await?;
                        self.coordinator = Some(c.clone());
                        c
                    }
                };
                op(conn, self.id.clone(), self.timeout_ms).await
            };
            match attempt.await {
                Ok(v) => return Ok(v),
                Err(e) if retry(&e) && tokio::time::Instant::now() + backoff < deadline => {
                    tracing::debug!(transactional_id = %self.id, "{what}: {e}; retrying in {backoff:?}");
                    if !matches!(e.code(), Some(51)) {
                        self.coordinator = None;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn find_coordinator(&self, client: &Client) -> Result<Arc<BrokerConnection>> {
        let conn = client.any_connection().await?;
        let version = conn.version(ApiKey::FindCoordinator, (1, 3))?;
        let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(self.id.clone())).with_key_type(1);
        let resp = conn.call(&req, version).await?;
        if resp.error_code != 0 {
            return Err(Error::kafka(resp.error_code, format!("find the coordinator of transactional id {}", self.id)));
        }
        client.connection(&format!("{}:{}", resp.host, resp.port)).await
    }
}
