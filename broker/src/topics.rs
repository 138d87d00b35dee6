//! The broker's topics: names, ids, per-topic config overrides and partition logs, with the
//! topic metadata persisted beside the logs so a restart finds every topic again.
//!
//! A [`Topic`] is never changed in place: altering its configs or adding partitions builds a
//! new one (sharing the existing partitions) and swaps it into the registry, so a request that
//! already holds the old one finishes with a consistent view.
//!
//! Layout under the data directory (as Kafka's, where Kafka has one):
//! `<topic>-<partition>/` holds a partition's segments; `__tern_metadata/<topic>.json` holds
//! the topic's id, partition count and config overrides, written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::storage::files::replace_durably;
use crate::storage::{LogConfig, PartitionLog};
use crate::topic_config;

const METADATA_DIR: &str = "__tern_metadata";
/// Partitions one topic may have on this single broker.
const MAX_PARTITIONS: i32 = 100_000;

/// One partition: its log behind a lock. Appends and reads are short, positional file
/// operations, so a plain mutex serves better than an async one.
pub struct Partition {
    pub index: i32,
    log: Mutex<PartitionLog>,
}

impl Partition {
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        // A panic while holding the lock cannot leave the log half-written in memory in a way
        // that matters more than refusing service, so recover the guard.
        self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }

    pub fn topic_name(&self) -> TopicName {
        TopicName(StrBytes::from_string(self.name.clone()))
    }

    pub fn log_append_time(&self) -> bool {
        topic_config::log_append_time(&self.configs)
    }
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// Why a topic could not be created; each maps to one Kafka error code.
#[derive(Debug)]
pub enum CreateError {
    AlreadyExists,
    InvalidName(String),
    InvalidPartitions(String),
    InvalidConfig(String),
    Storage(String),
}

/// Why a topic could not be altered (configs or partition count); each maps to one Kafka
/// error code.
#[derive(Debug)]
pub enum AlterError {
    UnknownTopic,
    InvalidPartitions(String),
    InvalidConfig(String),
    Storage(String),
}

pub struct Topics {
    data_dir: PathBuf,
    defaults: LogConfig,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Bumped after every append, so long-polling fetches wake when data arrives.
    appended: watch::Sender<u64>,
}

/// Kafka's rule: 1 to 249 characters of ASCII letters, digits, '.', '_' and '-', and not "." or "..".
pub fn validate_topic_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!("Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

impl Topics {
    /// Loads every topic recorded under `data_dir`, recovering each partition log.
    pub fn open(data_dir: &Path, defaults: LogConfig) -> Result<Topics> {
        let meta_dir = data_dir.join(METADATA_DIR);
        std::fs::create_dir_all(&meta_dir)?;
        let mut topics = BTreeMap::new();
        let mut entries: Vec<_> = std::fs::read_dir(&meta_dir)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            let record: TopicRecord = serde_json::from_str(&text).map_err(|e| Error::Metadata {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let topic = open_topic(data_dir, &defaults, record)?;
            topics.insert(topic.name.clone(), Arc::new(topic));
        }
        let (appended, _) = watch::channel(0);
        Ok(Topics { data_dir: data_dir.to_path_buf(), defaults, topics: RwLock::new(topics), appended })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read().values().find(|t| t.id == id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        self.read().values().cloned().collect()
    }

    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// Checks a create request without creating anything (CreateTopics validate_only does
    /// exactly this; a real create runs it first).
    pub fn check_create(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> std::result::Result<(), CreateError> {
        validate_topic_name(name).map_err(CreateError::InvalidName)?;
        if partitions <= 0 {
            return Err(CreateError::InvalidPartitions(format!(
                "Number of partitions was set to an invalid non-positive value: {partitions}"
            )));
        }
        if partitions > MAX_PARTITIONS {
            return Err(CreateError::InvalidPartitions(format!(
                "Number of partitions {partitions} is above the limit of {MAX_PARTITIONS}"
            )));
        }
        topic_config::validate_all(configs, &self.defaults).map_err(CreateError::InvalidConfig)?;
        if self.read().contains_key(name) {
            return Err(CreateError::AlreadyExists);
        }
        Ok(())
    }

    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> std::result::Result<Arc<Topic>, CreateError> {
        self.check_create(name, partitions, &configs)?;
        let mut topics = self.write();
        if topics.contains_key(name) {
            return Err(CreateError::AlreadyExists);
        }
        let record = TopicRecord { name: name.to_string(), id: Uuid::new_v4(), partitions, configs };
        // Leftover partition directories of a topic deleted earlier must not be adopted.
        for p in 0..partitions {
            let dir = partition_dir(&self.data_dir, name, p);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| CreateError::Storage(e.to_string()))?;
            }
        }
        let topic = open_topic(&self.data_dir, &self.defaults, record).map_err(|e| CreateError::Storage(e.to_string()))?;
        self.persist(&topic).map_err(|e| CreateError::Storage(e.to_string()))?;
        let topic = Arc::new(topic);
        topics.insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    /// Replaces a topic's config overrides with `configs` (validated as a whole) and applies
    /// them to every partition log at once. `validate_only` checks without changing anything.
    pub fn alter_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> std::result::Result<(), AlterError> {
        let mut topics = self.write();
        let Some(old) = topics.get(name).cloned() else {
            return Err(AlterError::UnknownTopic);
        };
        topic_config::validate_all(&configs, &self.defaults).map_err(AlterError::InvalidConfig)?;
        if validate_only {
            return Ok(());
        }
        let topic = Topic { name: old.name.clone(), id: old.id, configs, partitions: old.partitions.clone() };
        self.persist(&topic).map_err(|e| AlterError::Storage(e.to_string()))?;
        let log_config = topic_config::log_config(&topic.configs, &self.defaults);
        for p in &topic.partitions {
            p.log().set_config(log_config.clone());
        }
        topics.insert(name.to_string(), Arc::new(topic));
        Ok(())
    }

    /// Grows a topic to `count` partitions (Kafka never shrinks one).
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> std::result::Result<(), AlterError> {
        let mut topics = self.write();
        let Some(old) = topics.get(name).cloned() else {
            return Err(AlterError::UnknownTopic);
        };
        let current = old.partitions.len() as i32;
        if count < current {
            return Err(AlterError::InvalidPartitions(format!(
                "The topic {name} currently has {current} partition(s); {count} would not be an increase."
            )));
        }
        if count == current {
            return Err(AlterError::InvalidPartitions(format!("Topic already has {current} partition(s).")));
        }
        if count > MAX_PARTITIONS {
            return Err(AlterError::InvalidPartitions(format!(
                "Number of partitions {count} is above the limit of {MAX_PARTITIONS}"
            )));
        }
        if validate_only {
            return Ok(());
        }
        let storage = |e: &dyn std::fmt::Display| AlterError::Storage(e.to_string());
        let log_config = topic_config::log_config(&old.configs, &self.defaults);
        let mut partitions = old.partitions.clone();
        for p in current..count {
            // Leftovers of a deleted topic of the same name must not be adopted.
            let dir = partition_dir(&self.data_dir, name, p);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| storage(&e))?;
            }
            let log = PartitionLog::open(&dir, log_config.clone()).map_err(|e| storage(&e))?;
            partitions.push(Arc::new(Partition { index: p, log: Mutex::new(log) }));
        }
        let topic = Topic { name: old.name.clone(), id: old.id, configs: old.configs.clone(), partitions };
        self.persist(&topic).map_err(|e| storage(&e))?;
        topics.insert(name.to_string(), Arc::new(topic));
        Ok(())
    }

    /// Removes a topic: metadata first (so a crash mid-way never resurrects it), then logs.
    pub fn delete(&self, name: &str) -> Result<bool> {
        let Some(topic) = self.write().remove(name) else {
            return Ok(false);
        };
        let meta = self.data_dir.join(METADATA_DIR).join(format!("{name}.json"));
        std::fs::remove_file(&meta)?;
        for p in &topic.partitions {
            let dir = partition_dir(&self.data_dir, name, p.index);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
        }
        Ok(true)
    }

    /// Wakes long-polling fetches after an append.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// For writers that append outside a request handler (the group coordinator).
    pub(crate) fn append_notifier(&self) -> watch::Sender<u64> {
        self.appended.clone()
    }

    fn persist(&self, topic: &Topic) -> Result<()> {
        let record = TopicRecord {
            name: topic.name.clone(),
            id: topic.id,
            partitions: topic.partitions.len() as i32,
            configs: topic.configs.clone(),
        };
        let dir = self.data_dir.join(METADATA_DIR);
        let path = dir.join(format!("{}.json", topic.name));
        let tmp = dir.join(format!("{}.json.tmp", topic.name));
        let text = serde_json::to_vec_pretty(&record).map_err(|e| Error::Metadata {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        replace_durably(&tmp, &path, &text)?;
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

fn open_topic(data_dir: &Path, defaults: &LogConfig, record: TopicRecord) -> Result<Topic> {
    let log_config = topic_config::log_config(&record.configs, defaults);
    let mut partitions = Vec::with_capacity(record.partitions.max(0) as usize);
    for p in 0..record.partitions {
        let log = PartitionLog::open(&partition_dir(data_dir, &record.name, p), log_config.clone())?;
        partitions.push(Arc::new(Partition { index: p, log: Mutex::new(log) }));
    }
    Ok(Topic { name: record.name, id: record.id, configs: record.configs, partitions })
}

