//! Topic-level configuration: the keys Kafka knows, how to check a value, and how a topic's
//! overrides on top of the broker defaults become a [`LogConfig`].

use std::collections::BTreeMap;

use crate::storage::LogConfig;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Long { min: i64 },
    Int { min: i64 },
    Bool,
    Double,
    /// One of the listed values.
    Choice(&'static [&'static str]),
    /// A comma-separated list of the listed values.
    List(&'static [&'static str]),
    /// Free text (throttled replica lists and the like).
    Text,
}

pub struct ConfigDef {
    pub name: &'static str,
    pub kind: Kind,
    /// Kafka's default, unless the broker's own settings say otherwise (see [`default_value`]).
    pub default: &'static str,
    /// The broker-level key this topic key falls back to.
    pub broker_synonym: &'static str,
}

const fn def(name: &'static str, kind: Kind, default: &'static str, broker_synonym: &'static str) -> ConfigDef {
    ConfigDef { name, kind, default, broker_synonym }
}

const LONG0: Kind = Kind::Long { min: 0 };
const LONG_ANY: Kind = Kind::Long { min: -1 };

/// Every topic config of Apache Kafka 4.0, in Kafka's order (alphabetical).
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def("cleanup.policy", Kind::List(&["delete", "compact"]), "delete", "log.cleanup.policy"),
    def("compression.gzip.level", Kind::Int { min: -1 }, "-1", "compression.gzip.level"),
    def("compression.lz4.level", Kind::Int { min: 1 }, "9", "compression.lz4.level"),
    def("compression.type", Kind::Choice(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), "producer", "compression.type"),
    def("compression.zstd.level", Kind::Int { min: -131072 }, "3", "compression.zstd.level"),
    def("delete.retention.ms", LONG0, "86400000", "log.cleaner.delete.retention.ms"),
    def("file.delete.delay.ms", LONG0, "60000", "log.segment.delete.delay.ms"),
    def("flush.messages", Kind::Long { min: 1 }, "9223372036854775807", "log.flush.interval.messages"),
    def("flush.ms", LONG0, "9223372036854775807", "log.flush.interval.ms"),
    def("follower.replication.throttled.replicas", Kind::Text, "", "follower.replication.throttled.replicas"),
    def("index.interval.bytes", Kind::Int { min: 0 }, "4096", "log.index.interval.bytes"),
    def("leader.replication.throttled.replicas", Kind::Text, "", "leader.replication.throttled.replicas"),
    def("local.retention.bytes", Kind::Long { min: -2 }, "-2", "log.local.retention.bytes"),
    def("local.retention.ms", Kind::Long { min: -2 }, "-2", "log.local.retention.ms"),
    def("max.compaction.lag.ms", Kind::Long { min: 1 }, "9223372036854775807", "log.cleaner.max.compaction.lag.ms"),
    def("max.message.bytes", Kind::Int { min: 0 }, "1048588", "message.max.bytes"),
    def("message.timestamp.after.max.ms", LONG0, "3600000", "log.message.timestamp.after.max.ms"),
    def("message.timestamp.before.max.ms", LONG0, "9223372036854775807", "log.message.timestamp.before.max.ms"),
    def("message.timestamp.type", Kind::Choice(&["CreateTime", "LogAppendTime"]), "CreateTime", "log.message.timestamp.type"),
    def("min.cleanable.dirty.ratio", Kind::Double, "0.5", "log.cleaner.min.cleanable.ratio"),
    def("min.compaction.lag.ms", LONG0, "0", "log.cleaner.min.compaction.lag.ms"),
    def("min.insync.replicas", Kind::Int { min: 1 }, "1", "min.insync.replicas"),
    def("preallocate", Kind::Bool, "false", "log.preallocate"),
    def("remote.storage.enable", Kind::Bool, "false", "remote.log.storage.system.enable"),
    def("retention.bytes", LONG_ANY, "-1", "log.retention.bytes"),
    def("retention.ms", LONG_ANY, "604800000", "log.retention.ms"),
    def("segment.bytes", Kind::Int { min: 1024 * 1024 }, "1073741824", "log.segment.bytes"),
    def("segment.index.bytes", Kind::Int { min: 4 }, "10485760", "log.index.size.max.bytes"),
    def("segment.jitter.ms", LONG0, "0", "log.roll.jitter.ms"),
    def("segment.ms", Kind::Long { min: 1 }, "604800000", "log.roll.ms"),
    def("unclean.leader.election.enable", Kind::Bool, "false", "unclean.leader.election.enable"),
];

pub fn find(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks a value for a topic config key; the error text goes back to the client.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(d) = find(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let bad = |what: &str| Err(format!("Invalid value {value} for configuration {name}: {what}"));
    match d.kind {
        Kind::Long { min } | Kind::Int { min } => match value.trim().parse::<i64>() {
            Ok(v) if matches!(d.kind, Kind::Int { .. }) && i32::try_from(v).is_err() => bad("not a 32-bit integer"),
            Ok(v) if v < min => bad(&format!("value must be at least {min}")),
            Ok(_) => Ok(()),
            Err(_) => bad("not a number"),
        },
        Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => bad("expected true or false"),
        },
        Kind::Double => match value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(()),
            _ => bad("not a number"),
        },
        Kind::Choice(options) => {
            if options.contains(&value.trim()) {
                Ok(())
            } else {
                bad(&format!("String must be one of: {}", options.join(", ")))
            }
        }
        Kind::List(options) => {
            let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if items.is_empty() && name == "cleanup.policy" {
                return Ok(());
            }
            match items.iter().find(|i| !options.contains(i)) {
                Some(i) => bad(&format!("{i} is not one of: {}", options.join(", "))),
                None => Ok(()),
            }
        }
        Kind::Text => Ok(()),
    }
}

/// The value a topic without an override has: the broker's setting where the broker has one.
pub fn default_value(d: &ConfigDef, broker: &LogConfig) -> String {
    match d.name {
        "retention.ms" => broker.retention_ms.to_string(),
        "retention.bytes" => broker.retention_bytes.to_string(),
        "segment.bytes" => broker.segment_bytes.to_string(),
        "segment.ms" => broker.segment_ms.to_string(),
        "max.message.bytes" => broker.max_message_bytes.to_string(),
        "index.interval.bytes" => broker.index_interval_bytes.to_string(),
        _ => d.default.to_string(),
    }
}

/// The log settings of a topic: broker defaults with the topic's overrides applied. Overrides
/// were validated when set, so a value that fails to parse here keeps the default.
pub fn log_config(overrides: &BTreeMap<String, String>, broker: &LogConfig) -> LogConfig {
    let mut c = broker.clone();
    let get = |k: &str| overrides.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    if let Some(v) = get("retention.ms") {
        c.retention_ms = v;
    }
    if let Some(v) = get("retention.bytes") {
        c.retention_bytes = v;
    }
    if let Some(v) = get("segment.bytes") {
        c.segment_bytes = v.max(1) as u64;
    }
    if let Some(v) = get("segment.ms") {
        c.segment_ms = v;
    }
    if let Some(v) = get("max.message.bytes") {
        c.max_message_bytes = v.max(0) as usize;
    }
    if let Some(v) = get("index.interval.bytes") {
        c.index_interval_bytes = v.max(0) as usize;
    }
    // Kafka deletes by time and size only under the "delete" policy: a compacted-only topic
    // (such as __consumer_offsets) keeps every segment until the cleaner rewrites it.
    if let Some(policy) = overrides.get("cleanup.policy") {
        if !policy.split(',').any(|p| p.trim() == "delete") {
            c.retention_ms = -1;
            c.retention_bytes = -1;
        }
    }
    c
}

/// Whether the topic stamps batches with the broker's clock (`message.timestamp.type`).
pub fn log_append_time(overrides: &BTreeMap<String, String>) -> bool {
    overrides.get("message.timestamp.type").map(|v| v.trim() == "LogAppendTime").unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_kafka() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-5").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "compact,shred").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("message.timestamp.type", "WallClock").is_err());
        assert!(validate("segment.bytes", "1000").is_err());
        assert!(validate("no.such.key", "1").is_err());
    }

    #[test]
    fn overrides_reach_the_log_config() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert("segment.bytes".to_string(), "2097152".to_string());
        let c = log_config(&o, &LogConfig::default());
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.segment_bytes, 2097152);
        assert_eq!(c.retention_bytes, LogConfig::default().retention_bytes);
    }
}
