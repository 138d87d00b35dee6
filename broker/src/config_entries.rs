//! The config entries DescribeConfigs reports: each key's value, where the value comes from
//! (Kafka's `ConfigSource`) and its synonyms, for a topic and for the broker itself.
//!
//! A broker setting counts as `STATIC_BROKER_CONFIG` when it differs from Kafka's default
//! (the operator chose it), otherwise as `DEFAULT_CONFIG`. The broker has no dynamic broker
//! configs, so every broker entry is read-only.
//!
//! Synonyms are listed as Kafka lists them: a key Kafka defines without a default
//! ([`UNSET_IN_KAFKA`]) has no `DEFAULT_CONFIG` synonym and, on the broker, a null value.

use std::collections::BTreeMap;

use crate::server::BrokerState;
use crate::topic_config::{self, ConfigDef, TOPIC_CONFIGS};

/// Kafka's `ConfigSource` codes.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// Broker keys Kafka defines without a default: their default lives in a coarser key
/// (`log.retention.hours` for `log.retention.ms`, `log.roll.hours` for `log.roll.ms`, ...), which
/// Kafka does not list among the synonyms of the topic key.
const UNSET_IN_KAFKA: &[&str] = &["log.flush.interval.ms", "log.retention.ms", "log.roll.jitter.ms", "log.roll.ms"];

/// The coarser keys that carry those defaults in Kafka, as the broker reports them.
const COARSER_DEFAULTS: &[(&str, &str, &str)] = &[
    ("log.flush.scheduler.interval.ms", "9223372036854775807", "How often the log flusher checks whether a log is due for an fsync."),
    ("log.retention.hours", "168", "Hours a log segment is kept; log.retention.ms takes precedence when set."),
    ("log.roll.hours", "168", "Hours after which the active segment is rolled; log.roll.ms takes precedence when set."),
    ("log.roll.jitter.hours", "0", "Random jitter subtracted from the roll time; log.roll.jitter.ms takes precedence when set."),
];

/// Kafka's `ConfigType` codes used below.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub config_type: i8,
    pub documentation: &'static str,
    /// Most specific first, as Kafka orders them.
    pub synonyms: Vec<Synonym>,
}

/// Every topic config of a topic with the given overrides.
pub fn topic_entries(state: &BrokerState, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS.iter().map(|d| topic_entry(state, d, overrides.get(d.name))).collect()
}

fn topic_entry(state: &BrokerState, d: &ConfigDef, topic_value: Option<&String>) -> ConfigEntry {
    let broker_value = topic_config::default_value(d, state.topics.defaults());
    let broker_source = if broker_value == d.default { SOURCE_DEFAULT } else { SOURCE_STATIC_BROKER };
    let mut synonyms = Vec::new();
    if let Some(v) = topic_value {
        synonyms.push(Synonym { name: d.name.to_string(), value: Some(v.clone()), source: SOURCE_DYNAMIC_TOPIC });
    }
    if let Some(key) = d.broker_synonym {
        if broker_source == SOURCE_STATIC_BROKER {
            synonyms.push(Synonym { name: key.to_string(), value: Some(broker_value.clone()), source: SOURCE_STATIC_BROKER });
        }
        if !UNSET_IN_KAFKA.contains(&key) {
            synonyms.push(Synonym { name: key.to_string(), value: Some(d.default.to_string()), source: SOURCE_DEFAULT });
        }
    }
    let (value, source) = match topic_value {
        Some(v) => (v.clone(), SOURCE_DYNAMIC_TOPIC),
        None => (broker_value, broker_source),
    };
    ConfigEntry {
        name: d.name.to_string(),
        value: Some(value),
        source,
        read_only: false,
        config_type: topic_config::config_type(d),
        documentation: topic_config::documentation(d.name),
        synonyms,
    }
}

/// The broker's own settings: a few core keys and the `log.*` defaults topics inherit.
pub fn broker_entries(state: &BrokerState) -> Vec<ConfigEntry> {
    let c = &state.config;
    let node = c.node_id.to_string();
    let listener = format!("PLAINTEXT://{}:{}", state.advertised_host, state.advertised_port);
    let data_dir = c.data_dir.display().to_string();
    let mut entries = vec![
        core("advertised.listeners", &listener, None, TYPE_STRING, "Listeners clients are told to connect to."),
        core("auto.create.topics.enable", &c.auto_create_topics.to_string(), Some("true"), TYPE_BOOLEAN, "Create a topic when a client asks for the metadata of an unknown one."),
        core("broker.id", &node, None, TYPE_INT, "The broker's id."),
        core("default.replication.factor", "1", Some("1"), TYPE_INT, "Replication factor of automatically created topics."),
        core("log.dirs", &data_dir, None, TYPE_STRING, "Directory holding the log data."),
        core("log.retention.check.interval.ms", &c.maintenance_interval.as_millis().to_string(), Some("300000"), TYPE_LONG, "How often retention, segment rolls and log cleaning run."),
        core("node.id", &node, None, TYPE_INT, "The node's id."),
        core("num.partitions", &c.default_partitions.to_string(), Some("1"), TYPE_INT, "Partition count of automatically created topics."),
        core("connections.max.idle.ms", &c.connections_max_idle.as_millis().to_string(), Some("600000"), TYPE_LONG, "Close a connection that sends no complete request for this long."),
        core("fetch.max.bytes", &c.fetch_max_bytes.to_string(), Some("57671680"), TYPE_INT, "Most bytes of records in one fetch response (the first batch is returned even when larger)."),
        core("max.connections", &c.max_connections.to_string(), Some("2147483647"), TYPE_INT, "Most client connections open at once; more are closed when accepted."),
        core("socket.request.max.bytes", &c.max_frame_bytes.to_string(), Some("104857600"), TYPE_INT, "Largest request the broker accepts."),
    ];
    for d in TOPIC_CONFIGS {
        let Some(key) = d.broker_synonym else { continue };
        let value = topic_config::default_value(d, state.topics.defaults());
        let mut e = core(key, &value, Some(d.default), topic_config::config_type(d), topic_config::documentation(d.name));
        if UNSET_IN_KAFKA.contains(&key) {
            // Unset unless the operator chose a value; the default is the coarser key's.
            e.synonyms.retain(|s| s.source != SOURCE_DEFAULT);
            if value == d.default {
                e.value = None;
            }
        }
        entries.push(e);
    }
    for (key, value, documentation) in COARSER_DEFAULTS {
        let config_type = if key.ends_with(".ms") { TYPE_LONG } else { TYPE_INT };
        entries.push(core(key, value, Some(value), config_type, documentation));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries.dedup_by(|a, b| a.name == b.name);
    entries
}

/// A broker entry: static when set apart from Kafka's default (`None`: always set).
fn core(name: &str, value: &str, kafka_default: Option<&str>, config_type: i8, documentation: &'static str) -> ConfigEntry {
    let source = if kafka_default == Some(value) { SOURCE_DEFAULT } else { SOURCE_STATIC_BROKER };
    let mut synonyms = vec![Synonym { name: name.to_string(), value: Some(value.to_string()), source }];
    if let (SOURCE_STATIC_BROKER, Some(d)) = (source, kafka_default) {
        synonyms.push(Synonym { name: name.to_string(), value: Some(d.to_string()), source: SOURCE_DEFAULT });
    }
    ConfigEntry {
        name: name.to_string(),
        value: Some(value.to_string()),
        source,
        read_only: true,
        config_type,
        documentation,
        synonyms,
    }
}
