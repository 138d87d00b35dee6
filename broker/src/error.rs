/// Errors that stop the broker or one of its connections. Errors a client caused are answered
/// with Kafka error codes instead and never surface here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::Error),
    #[error("wire: {0}")]
    Wire(#[from] tern_kafka::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata file {path}: {reason}")]
    Metadata { path: String, reason: String },
    #[error("corrupt file: {0}")]
    Corrupt(String),
    /// Settings that cannot work: a missing certificate, a malformed users file.
    #[error("configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
