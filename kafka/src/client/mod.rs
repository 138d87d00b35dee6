//! Tern's Kafka client: bootstrap, a metadata cache, requests routed to partition leaders over
//! pipelined connections, retries with backoff on retriable errors.
//!
//! - [`BrokerConnection`]: one broker, many requests in flight.
//! - [`Client`]: the cluster view the mirror uses (produce, fetch, offsets, admin, groups).
//! - [`Connection`]: one request at a time with raw access, for tools and tests.

mod admin;
pub use admin::{Isolation, ProduceTo, EARLIEST, LATEST};
mod produce;
pub use produce::{Gate, PendingProduce, ProduceAck};
mod conn;
mod groups;
mod membership;
pub use membership::{range_assign, GroupMember, HeartbeatOutcome, Heartbeater};
pub use groups::{GroupInfo, Membership};
mod metadata;
mod simple;
mod txn;
pub use txn::{is_fenced, TxnProducer};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use conn::BrokerConnection;
pub use metadata::{ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use simple::Connection;

use crate::error::{Error, Result};
use crate::security::{Connector, Security};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` addresses to bootstrap from.
    pub bootstrap: Vec<String>,
    pub client_id: String,
    pub request_timeout: Duration,
    /// First backoff between retries; doubles up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// How long a retriable operation keeps trying before it fails.
    pub retry_deadline: Duration,
    /// TLS and SASL; plaintext without authentication by default.
    pub security: Security,
}

impl ClientConfig {
    pub fn new(bootstrap: &str) -> ClientConfig {
        ClientConfig {
            bootstrap: bootstrap.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            client_id: "tern".into(),
            request_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(2),
            retry_deadline: Duration::from_secs(60),
            security: Security::default(),
        }
    }
}

pub struct Client {
    config: ClientConfig,
    connector: Connector,
    /// Shared, so that a snapshot costs a reference count whatever the cluster's size; a
    /// refresh replaces it.
    metadata: Mutex<Arc<ClusterMetadata>>,
    /// One slot per broker address and lane. A slot is locked while its connection is opened,
    /// so callers wanting the same connection wait for one attempt, and callers wanting
    /// another one (a second broker, another lane) go ahead: on a far link each opening takes
    /// round trips.
    connections: Mutex<HashMap<String, ConnectionSlot>>,
    /// The coordinator's address found for each group (see [`Client::group_coordinator`]).
    coordinators: Mutex<HashMap<String, String>>,
}

type ConnectionSlot = Arc<tokio::sync::Mutex<Option<Arc<BrokerConnection>>>>;

impl Client {
    /// Connects to the first reachable bootstrap address and loads cluster metadata.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        if config.bootstrap.is_empty() {
            return Err(Error::Unreachable("no bootstrap addresses given".into()));
        }
        let connector = Connector::new(&config.security)?;
        let client = Client {
            config,
            connector,
            metadata: Mutex::new(Arc::new(ClusterMetadata::default())),
            connections: Mutex::new(HashMap::new()),
            coordinators: Mutex::new(HashMap::new()),
        };
        client.refresh_metadata(None).await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A connection to `addr`, opened (and version-negotiated) on first use and reopened
    /// after it broke.
    pub async fn connection(&self, addr: &str) -> Result<Arc<BrokerConnection>> {
        self.connection_on(addr, 0).await
    }

    /// Connection number `lane` to `addr`: lane 0 is the one every request uses; fetches on a
    /// long link spread over more lanes, each a TCP connection with its own window.
    pub async fn connection_on(&self, addr: &str, lane: usize) -> Result<Arc<BrokerConnection>> {
        let key = if lane == 0 { addr.to_string() } else { format!("{addr}#{lane}") };
        let slot = self.connections.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default().clone();
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(BrokerConnection::connect_with(addr, &self.config.client_id, self.config.request_timeout, &self.connector).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A connection to any broker: known brokers first, then the bootstrap list.
    pub async fn any_connection(&self) -> Result<Arc<BrokerConnection>> {
        let mut candidates: Vec<String> = self.metadata_snapshot().brokers.values().cloned().collect();
        candidates.extend(self.config.bootstrap.iter().cloned());
        let mut errors = Vec::new();
        for addr in candidates {
            match self.connection(&addr).await {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        Err(Error::Unreachable(errors.join("; ")))
    }

    /// A connection to the broker with id `node`.
    ///
    /// A broker missing from the metadata is retriable: a killed broker leaves the broker list
    /// before the controller moves its partitions, so for a few seconds metadata can name a
    /// leader that no longer answers; a refresh later names the new one.
    pub async fn broker_connection(&self, node: i32) -> Result<Arc<BrokerConnection>> {
        self.broker_connection_on(node, 0).await
    }

    /// Connection number `lane` to the broker with id `node` (see [`Client::connection_on`]).
    pub async fn broker_connection_on(&self, node: i32, lane: usize) -> Result<Arc<BrokerConnection>> {
        let addr = self.metadata.lock().unwrap_or_else(|p| p.into_inner()).brokers.get(&node).cloned();
        match addr {
            Some(addr) => self.connection_on(&addr, lane).await,
            None => Err(Error::Unreachable(format!("broker {node} is not in the cluster metadata"))),
        }
    }

    /// The shortest of three round trips of an empty Metadata request to any broker: what one
    /// request costs on the link before any data moves.
    pub async fn round_trip(&self) -> Result<Duration> {
        use kafka_protocol::messages::{ApiKey, MetadataRequest};
        let conn = self.any_connection().await?;
        let version = conn.version(ApiKey::Metadata, (1, 12))?;
        let request = MetadataRequest::default().with_topics(Some(vec![])).with_allow_auto_topic_creation(false);
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let began = tokio::time::Instant::now();
            conn.call(&request, version).await?;
            best = best.min(began.elapsed());
        }
        Ok(best)
    }

    /// The cached metadata as of now: a shared reference, cheap to take per request.
    pub fn metadata_snapshot(&self) -> Arc<ClusterMetadata> {
        self.metadata.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error or the retry deadline
    /// passes; between attempts the metadata is refreshed (leaders may have moved).
    pub async fn with_retries<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.retry_deadline;
        let mut backoff = self.config.retry_backoff;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && tokio::time::Instant::now() + backoff < deadline => {
                    tracing::debug!("{what}: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.retry_backoff_max);
                    let _ = self.refresh_metadata(None).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
