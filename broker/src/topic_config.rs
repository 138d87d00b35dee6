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
    /// The broker-level key this topic key falls back to; `None` for the topic-only keys
    /// (Kafka has no broker setting for them).
    pub broker_synonym: Option<&'static str>,
}

const fn def(name: &'static str, kind: Kind, default: &'static str, broker_synonym: &'static str) -> ConfigDef {
    ConfigDef { name, kind, default, broker_synonym: Some(broker_synonym) }
}

const fn topic_only(name: &'static str, kind: Kind, default: &'static str) -> ConfigDef {
    ConfigDef { name, kind, default, broker_synonym: None }
}

const LONG0: Kind = Kind::Long { min: 0 };
const LONG_ANY: Kind = Kind::Long { min: -1 };

/// Every topic config of Apache Kafka 4.3, in Kafka's order (alphabetical).
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
    topic_only("follower.replication.throttled.replicas", Kind::Text, ""),
    def("index.interval.bytes", Kind::Int { min: 0 }, "4096", "log.index.interval.bytes"),
    topic_only("leader.replication.throttled.replicas", Kind::Text, ""),
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
    topic_only("remote.log.copy.disable", Kind::Bool, "false"),
    topic_only("remote.log.delete.on.disable", Kind::Bool, "false"),
    topic_only("remote.storage.enable", Kind::Bool, "false"),
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

/// Checks a value for a topic config key; the error text goes back to the client, worded as
/// Kafka's `ConfigException` words it.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(d) = find(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let bad = |what: &str| Err(format!("Invalid value {value} for configuration {name}: {what}"));
    match d.kind {
        Kind::Long { min } | Kind::Int { min } => {
            let is_int = matches!(d.kind, Kind::Int { .. });
            match value.trim().parse::<i64>() {
                Ok(v) if is_int && i32::try_from(v).is_err() => bad("Not a number of type INT"),
                Ok(v) if v < min => bad(&format!("Value must be at least {min}")),
                Ok(_) => Ok(()),
                Err(_) => bad(if is_int { "Not a number of type INT" } else { "Not a number of type LONG" }),
            }
        }
        Kind::Bool => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => bad("Expected value to be either true or false"),
        },
        Kind::Double => match value.trim().parse::<f64>() {
            Ok(v) if !v.is_finite() => bad("Not a number of type DOUBLE"),
            Ok(v) if name == "min.cleanable.dirty.ratio" && !(0.0..=1.0).contains(&v) => {
                bad(if v < 0.0 { "Value must be at least 0.0" } else { "Value must be no more than 1.0" })
            }
            Ok(_) => Ok(()),
            Err(_) => bad("Not a number of type DOUBLE"),
        },
        Kind::Choice(options) => {
            if options.contains(&value.trim()) {
                Ok(())
            } else {
                bad(&format!("String must be one of: {}", options.join(", ")))
            }
        }
        Kind::List(options) => {
            let items = list_items(value);
            if items.is_empty() && name == "cleanup.policy" {
                return Ok(());
            }
            match items.iter().find(|i| !options.contains(i)) {
                Some(_) => bad(&format!("String must be one of: {}", options.join(", "))),
                None => Ok(()),
            }
        }
        Kind::Text => Ok(()),
    }
}

/// The items of a list-type value (comma-separated, blanks dropped).
pub fn list_items(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// Checks a topic's whole override set: each value, then the rules that tie keys together
/// (Kafka's `LogConfig.validate`).
pub fn validate_all(configs: &BTreeMap<String, String>, broker: &LogConfig) -> Result<(), String> {
    for (k, v) in configs {
        validate(k, v)?;
    }
    let value = |k: &str| -> i64 {
        configs
            .get(k)
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| find(k).and_then(|d| default_value(d, broker).parse().ok()))
            .unwrap_or(0)
    };
    let (min_lag, max_lag) = (value("min.compaction.lag.ms"), value("max.compaction.lag.ms"));
    if min_lag > max_lag {
        return Err(format!(
            "conflict topic config setting min.compaction.lag.ms ({min_lag}) > max.compaction.lag.ms ({max_lag})"
        ));
    }
    Ok(())
}

/// Kafka's `ConfigType` codes, reported by DescribeConfigs v3+.
pub fn config_type(d: &ConfigDef) -> i8 {
    match d.kind {
        Kind::Bool => 1,
        Kind::Choice(_) => 2,
        Kind::Int { .. } => 3,
        Kind::Long { .. } => 5,
        Kind::Double => 6,
        // The free-text keys are the throttled-replica lists.
        Kind::List(_) | Kind::Text => 7,
    }
}

/// Whether IncrementalAlterConfigs may APPEND to or SUBTRACT from the key.
pub fn is_list(d: &ConfigDef) -> bool {
    matches!(d.kind, Kind::List(_) | Kind::Text)
}

/// Short documentation of a topic config, for DescribeConfigs with `include_documentation`.
pub fn documentation(name: &str) -> &'static str {
    match name {
        "cleanup.policy" => "Retention policy of old log segments: \"delete\" discards them by time or size, \"compact\" keeps the latest value per key; both may be given.",
        "compression.type" => "Compression codec of the topic's data; \"producer\" keeps the producer's codec.",
        "delete.retention.ms" => "How long tombstones of a compacted topic stay readable after the cleaner first sees them.",
        "file.delete.delay.ms" => "Time to wait before deleting a file from the filesystem.",
        "flush.messages" => "Number of messages after which the log is fsynced.",
        "flush.ms" => "Time after which the log is fsynced.",
        "index.interval.bytes" => "Bytes of log data between two entries of the offset index.",
        "max.compaction.lag.ms" => "Longest time a message stays ineligible for compaction in the log.",
        "max.message.bytes" => "Largest record batch size accepted by the topic.",
        "message.timestamp.type" => "Whether record timestamps are the producer's (CreateTime) or the broker's append time (LogAppendTime).",
        "min.cleanable.dirty.ratio" => "Share of the log that must be uncompacted before the cleaner compacts it.",
        "min.compaction.lag.ms" => "Shortest time a message stays uncompacted in the log.",
        "min.insync.replicas" => "Minimum number of in-sync replicas for a write with acks=all to succeed.",
        "retention.bytes" => "Largest size the log may grow to before old segments are deleted (delete policy); -1 for no limit.",
        "retention.ms" => "Longest time a log segment is kept before deletion (delete policy); -1 for no limit.",
        "segment.bytes" => "Size of a log segment file.",
        "segment.ms" => "Time after which a non-empty active segment is rolled, even if not full.",
        _ => "See Apache Kafka's topic configuration reference.",
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
        "cleanup.policy" => cleanup_policy(broker),
        "delete.retention.ms" => broker.delete_retention_ms.to_string(),
        "min.compaction.lag.ms" => broker.min_compaction_lag_ms.to_string(),
        "max.compaction.lag.ms" => broker.max_compaction_lag_ms.to_string(),
        "min.cleanable.dirty.ratio" => broker.min_cleanable_dirty_ratio.to_string(),
        _ => d.default.to_string(),
    }
}

/// `cleanup.policy` as Kafka writes it for a log config.
pub fn cleanup_policy(c: &LogConfig) -> String {
    let mut items = Vec::new();
    if c.cleanup_delete {
        items.push("delete");
    }
    if c.cleanup_compact {
        items.push("compact");
    }
    items.join(",")
}

/// The log settings of a topic: broker defaults with the topic's overrides applied. Overrides
/// were validated when set, so a value that fails to parse here keeps the default.
pub fn log_config(overrides: &BTreeMap<String, String>, broker: &LogConfig) -> LogConfig {
    let mut c = broker.clone();
    let get = |k: &str| overrides.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    if let Some(policy) = overrides.get("cleanup.policy") {
        let items = list_items(policy);
        c.cleanup_delete = items.contains(&"delete");
        c.cleanup_compact = items.contains(&"compact");
    }
    if let Some(v) = get("delete.retention.ms") {
        c.delete_retention_ms = v;
    }
    if let Some(v) = get("min.compaction.lag.ms") {
        c.min_compaction_lag_ms = v;
    }
    if let Some(v) = get("max.compaction.lag.ms") {
        c.max_compaction_lag_ms = v;
    }
    if let Some(v) = overrides.get("min.cleanable.dirty.ratio").and_then(|v| v.trim().parse::<f64>().ok()) {
        c.min_cleanable_dirty_ratio = v;
    }
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
    if let Some(v) = get("message.timestamp.before.max.ms") {
        c.timestamp_before_max_ms = v;
    }
    if let Some(v) = get("message.timestamp.after.max.ms") {
        c.timestamp_after_max_ms = v;
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
        assert_eq!(validate("retention.ms", "soon").expect_err("invalid"), "Invalid value soon for configuration retention.ms: Not a number of type LONG");
        assert_eq!(validate("segment.bytes", "1000").expect_err("invalid"), "Invalid value 1000 for configuration segment.bytes: Value must be at least 1048576");
        assert_eq!(validate("foo.bar", "1").expect_err("invalid"), "Unknown topic config name: foo.bar");
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        let mut lags = BTreeMap::new();
        lags.insert("min.compaction.lag.ms".to_string(), "10".to_string());
        lags.insert("max.compaction.lag.ms".to_string(), "5".to_string());
        assert!(validate_all(&lags, &LogConfig::default()).expect_err("invalid").contains("conflict"));
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
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        o.insert("delete.retention.ms".to_string(), "5".to_string());
        let c = log_config(&o, &LogConfig::default());
        assert!(c.cleanup_compact && !c.cleanup_delete);
        assert_eq!(c.delete_retention_ms, 5);
        assert_eq!(cleanup_policy(&c), "compact");
    }
}
