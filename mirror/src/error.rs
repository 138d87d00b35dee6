/// Whether an operation that failed may succeed if tried again; the replication loop decides
/// from this, never from message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// Connection trouble, leadership moves, timeouts: back off and try again.
    Retry,
    /// The input or the target refuses this for good: report it and stop this piece of work.
    Fatal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cluster {cluster}: {source}")]
    Cluster { cluster: String, source: tern_kafka::Error },
    #[error("{0}")]
    Kafka(#[from] tern_kafka::Error),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            Error::Cluster { source, .. } | Error::Kafka(source) if source.is_retriable() => RetryHint::Retry,
            _ => RetryHint::Fatal,
        }
    }

    pub fn cluster(cluster: &str, source: tern_kafka::Error) -> Error {
        Error::Cluster { cluster: cluster.to_string(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
