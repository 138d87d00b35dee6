use std::fmt;

/// Errors from the wire layer: framing, record batches and client I/O.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { size: i64, limit: usize },
    #[error("malformed frame: {0}")]
    MalformedFrame(String),
    #[error("malformed record batch: {0}")]
    MalformedBatch(BatchFault),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CorruptBatch { stored: u32, computed: u32 },
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A Kafka error code in a response, with what was being done.
    #[error("{context}: {error}")]
    Kafka { error: kafka_protocol::ResponseError, context: String },
    #[error("{0} timed out")]
    Timeout(String),
    #[error("no broker reachable: {0}")]
    Unreachable(String),
    #[error("the broker does not support {0}")]
    Unsupported(String),
    #[error("connection to {0} closed")]
    Disconnected(String),
    #[error("{0}")]
    Protocol(String),
    #[error("TLS: {0}")]
    Tls(String),
    /// SASL failed: wrong credentials or a mechanism the broker does not offer. Not retried.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// A queued request its sender withdrew before it was written: nothing was sent.
    #[error("not sent: {0}")]
    Withdrawn(String),
    /// Security settings that cannot work (a missing certificate file, a key without a cert).
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    pub fn kafka(code: i16, context: impl Into<String>) -> Error {
        let error = kafka_protocol::ResponseError::try_from_code(code)
            .unwrap_or(kafka_protocol::ResponseError::Unknown(code));
        Error::Kafka { error, context: context.into() }
    }

    /// Whether trying again (after a metadata refresh and a backoff) may succeed: connection
    /// trouble, timeouts and Kafka's retriable codes (leadership moves, not enough replicas).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io(_) | Error::Timeout(_) | Error::Disconnected(_) | Error::Unreachable(_) | Error::Withdrawn(_) => true,
            Error::Kafka { error, .. } => error.is_retriable(),
            _ => false,
        }
    }

    /// The same failure for another caller of one request (every batch of a produce request
    /// that timed out, say): the same kind and retriability, with an I/O error standing as the
    /// disconnection it causes.
    pub fn again(&self) -> Error {
        match self {
            Error::FrameTooLarge { size, limit } => Error::FrameTooLarge { size: *size, limit: *limit },
            Error::MalformedFrame(s) => Error::MalformedFrame(s.clone()),
            Error::MalformedBatch(f) => Error::MalformedBatch(*f),
            Error::CorruptBatch { stored, computed } => Error::CorruptBatch { stored: *stored, computed: *computed },
            Error::Encode(s) => Error::Encode(s.clone()),
            Error::Io(e) => Error::Disconnected(format!("i/o: {e}")),
            Error::Kafka { error, context } => Error::Kafka { error: *error, context: context.clone() },
            Error::Timeout(s) => Error::Timeout(s.clone()),
            Error::Unreachable(s) => Error::Unreachable(s.clone()),
            Error::Unsupported(s) => Error::Unsupported(s.clone()),
            Error::Disconnected(s) => Error::Disconnected(s.clone()),
            Error::Protocol(s) => Error::Protocol(s.clone()),
            Error::Tls(s) => Error::Tls(s.clone()),
            Error::Authentication(s) => Error::Authentication(s.clone()),
            Error::Withdrawn(s) => Error::Withdrawn(s.clone()),
            Error::Config(s) => Error::Config(s.clone()),
        }
    }

    /// The Kafka error code, if this is one.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { error, .. } => Some(error.code()),
            _ => None,
        }
    }
}

/// What is wrong with a record batch whose bytes could not be taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFault {
    /// Fewer bytes than the fixed 61-byte v2 header.
    ShortHeader,
    /// The batch length field points past the end of the buffer.
    Truncated,
    /// The batch length field is smaller than a v2 header can be.
    BadLength,
    /// Magic byte other than 2 (Tern stores record batch v2 only).
    UnsupportedMagic(i8),
    /// The header's record count or offset delta contradicts itself.
    BadCounts,
    /// The base offset plus the last offset delta is past the largest offset.
    OffsetOverflow,
}

impl fmt::Display for BatchFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchFault::ShortHeader => write!(f, "shorter than the 61-byte v2 header"),
            BatchFault::Truncated => write!(f, "batch length runs past the end of the data"),
            BatchFault::BadLength => write!(f, "batch length too small for a v2 header"),
            BatchFault::UnsupportedMagic(m) => write!(f, "magic {m} (only v2 record batches are accepted)"),
            BatchFault::BadCounts => write!(f, "record count and last offset delta disagree"),
            BatchFault::OffsetOverflow => write!(f, "base offset plus last offset delta is past the largest offset"),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
