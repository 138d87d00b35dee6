//! Broker settings: where it listens and stores data, and the defaults every topic inherits.

use std::path::PathBuf;
use std::time::Duration;

use crate::storage::{FsyncPolicy, LogConfig};

/// Settings of one broker. `Default` gives a single-node broker with Kafka's topic defaults.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Directory holding partition logs and topic metadata.
    pub data_dir: PathBuf,
    pub node_id: i32,
    /// `host:port` clients are told to connect to; the bound address when `None`.
    pub advertised: Option<String>,
    /// Kafka's `auto.create.topics.enable`; off by default, unlike Kafka, because a
    /// replicator should never create a topic by asking for its metadata.
    pub auto_create_topics: bool,
    /// `num.partitions` for auto-created topics and CreateTopics with -1 partitions.
    pub default_partitions: i32,
    /// Topic-level defaults (`log.retention.ms`, `log.segment.bytes`, ... at broker level).
    pub log: LogConfig,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub max_frame_bytes: usize,
    /// Most client connections open at once (`max.connections`); a connection beyond it is
    /// closed as soon as it is accepted.
    pub max_connections: usize,
    /// A connection that sends no complete request for this long is closed
    /// (`connections.max.idle.ms`; a request trickled in more slowly counts as idle).
    pub connections_max_idle: Duration,
    /// Most bytes of records in one Fetch response (`fetch.max.bytes`), whatever the request
    /// asks; the first batch is returned even when it is larger (KIP-74).
    pub fetch_max_bytes: usize,
    /// How often retention, time-based segment rolls and interval fsync run
    /// (`log.retention.check.interval.ms`).
    pub maintenance_interval: Duration,
    /// Cluster id reported in Metadata and DescribeCluster; derived from the data directory's
    /// first start and persisted when `None`.
    pub cluster_id: Option<String>,
    /// Consumer-group coordinator settings.
    pub groups: crate::groups::GroupConfig,
    /// TLS and SASL of the listener; plaintext without authentication by default.
    pub security: ListenerSecurity,
}

/// Kafka's listener security: `SSL` is `tls` alone, `SASL_PLAINTEXT` is `sasl` alone,
/// `SASL_SSL` is both.
#[derive(Debug, Clone, Default)]
pub struct ListenerSecurity {
    pub tls: Option<TlsListener>,
    pub sasl: Option<SaslListener>,
}

/// PEM files of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SaslListener {
    /// `sasl.enabled.mechanisms`: any of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. PLAIN checks
    /// the password against the user's SCRAM credential.
    pub mechanisms: Vec<tern_kafka::sasl::Mechanism>,
    /// `user:password` lines, turned into SCRAM credentials at start.
    pub users_file: Option<PathBuf>,
    /// `connections.max.reauth.ms`: sessions must re-authenticate within this time.
    pub session_lifetime: Option<Duration>,
}

impl Default for SaslListener {
    fn default() -> Self {
        use tern_kafka::sasl::Mechanism;
        SaslListener { mechanisms: vec![Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512], users_file: None, session_lifetime: None }
    }
}

/// Default of `max_connections`: Kafka sets no limit; a broker in a laptop's or a test's
/// process should not run out of file descriptors before it refuses a connection.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("tern-data"),
            node_id: 1,
            advertised: None,
            auto_create_topics: false,
            default_partitions: 1,
            log: LogConfig::default(),
            max_frame_bytes: tern_kafka::frame::DEFAULT_MAX_FRAME,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connections_max_idle: Duration::from_millis(600_000),
            fetch_max_bytes: 55 * 1024 * 1024,
            maintenance_interval: Duration::from_secs(30),
            cluster_id: None,
            groups: Default::default(),
            security: Default::default(),
        }
    }
}

impl BrokerConfig {
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        BrokerConfig { data_dir: data_dir.into(), ..Default::default() }
    }

    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.log.fsync = fsync;
        self
    }
}
