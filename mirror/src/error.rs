//! The mirror's errors. Each variant carries whether trying again may help ([`RetryHint`]);
//! loops decide from that, never from message text.

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
    /// The configuration is wrong: fatal until it is changed.
    #[error("configuration: {0}")]
    Config(String),
    /// A cluster answered with an error or could not be reached: retry when Kafka's error is
    /// retriable.
    #[error("cluster {cluster}: {source}")]
    Cluster { cluster: String, source: tern_kafka::Error },
    #[error("{0}")]
    Kafka(#[from] tern_kafka::Error),
    /// A request to a cluster failed while doing `what`: the hint is the Kafka error's.
    #[error("{what}: {source}")]
    During { what: String, source: tern_kafka::Error },
    /// A cluster could not be reached within the time given: retry.
    #[error("{0}")]
    Unreachable(String),
    /// An operation that did not finish in time: retry.
    #[error("{0}")]
    TimedOut(String),
    /// Someone else changed what this was changing, every time it tried: retry.
    #[error("{0}")]
    Conflict(String),
    /// Bytes from a cluster that do not parse (a malformed batch, a record of an internal
    /// topic in an unknown format): fatal for the piece of work that read them.
    #[error("{0}")]
    Malformed(String),
    /// The flow's state refuses the operation (already failed over, paused, its group still
    /// held, its decisions lost): fatal until an operator acts.
    #[error("{0}")]
    State(String),
    /// A local file or encoding failed (the state directory, a report): fatal.
    #[error("{0}")]
    Local(String),
    /// A flow's task ended without an answer (it panicked): fatal, a defect to report.
    #[error("{0}")]
    Crashed(String),
}

impl Error {
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            Error::Cluster { source, .. } | Error::Kafka(source) | Error::During { source, .. } if source.is_retriable() => RetryHint::Retry,
            Error::Unreachable(_) | Error::TimedOut(_) | Error::Conflict(_) => RetryHint::Retry,
            Error::Config(_) | Error::Cluster { .. } | Error::Kafka(_) | Error::During { .. } => RetryHint::Fatal,
            Error::Malformed(_) | Error::State(_) | Error::Local(_) | Error::Crashed(_) => RetryHint::Fatal,
        }
    }

    pub fn cluster(cluster: &str, source: tern_kafka::Error) -> Error {
        Error::Cluster { cluster: cluster.to_string(), source }
    }

    /// A Kafka error met while doing `what`.
    pub fn during(what: impl Into<String>, source: tern_kafka::Error) -> Error {
        Error::During { what: what.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_says_whether_to_retry() {
        let refused = || tern_kafka::Error::kafka(29, "topic authorization failed".to_string());
        let moved = || tern_kafka::Error::kafka(6, "not leader".to_string());
        let cases = [
            (Error::Config("x".into()), RetryHint::Fatal),
            (Error::cluster("a", moved()), RetryHint::Retry),
            (Error::cluster("a", refused()), RetryHint::Fatal),
            (Error::Kafka(moved()), RetryHint::Retry),
            (Error::during("reading t/0", moved()), RetryHint::Retry),
            (Error::during("reading t/0", refused()), RetryHint::Fatal),
            (Error::Unreachable("x".into()), RetryHint::Retry),
            (Error::TimedOut("x".into()), RetryHint::Retry),
            (Error::Conflict("x".into()), RetryHint::Retry),
            (Error::Malformed("x".into()), RetryHint::Fatal),
            (Error::State("x".into()), RetryHint::Fatal),
            (Error::Local("x".into()), RetryHint::Fatal),
            (Error::Crashed("x".into()), RetryHint::Fatal),
        ];
        for (e, hint) in cases {
            assert_eq!(e.retry_hint(), hint, "{e:?}");
        }
        let said = Error::during("reading t/0 on the source", refused()).to_string();
        assert!(said.starts_with("reading t/0 on the source: ") && said.contains("authorization"), "{said}");
    }
}
