//! The kind of cluster a test runs against, so one test body covers Apache Kafka and
//! `tern broker` alike: tests are written once over [`Kind`] and instantiated per kind with
//! [`over_kinds!`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use tern_kafka::client::{Client, ClientConfig};

use crate::apache_kafka::{self, KafkaCluster};
use crate::helpers::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Tern's embedded broker, in this process, a fresh one per test.
    Tern,
    /// Apache Kafka, one of the two shared single-node clusters.
    Kafka,
}

/// Which of the two shared Kafka clusters a side uses, so a Kafka -> Kafka flow spans two
/// clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
    /// A Kafka cluster of the test's own, for a test that changes what every flow on the
    /// cluster shares (deletes `tern-control.internal`, say). One more JVM start-up.
    Own,
}

pub enum TestCluster {
    Tern(TestBroker),
    Kafka(&'static KafkaCluster),
    OwnKafka(Box<KafkaCluster>),
}

impl TestCluster {
    pub async fn start(kind: Kind, side: Side) -> TestCluster {
        match kind {
            Kind::Tern => TestCluster::Tern(TestBroker::start().await),
            Kind::Kafka if side == Side::Own => TestCluster::OwnKafka(Box::new(tokio::task::spawn_blocking(|| KafkaCluster::start(1)).await.expect("Kafka cluster"))),
            Kind::Kafka => {
                let shared = apache_kafka::shared().await;
                TestCluster::Kafka(match side {
                    Side::A => &shared.a,
                    Side::B | Side::Own => &shared.b,
                })
            }
        }
    }

    pub fn bootstrap(&self) -> String {
        match self {
            TestCluster::Tern(b) => b.bootstrap(),
            TestCluster::Kafka(k) => k.bootstrap(),
            TestCluster::OwnKafka(k) => k.bootstrap(),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(ClientConfig::new(&self.bootstrap())).await.expect("client")
    }

    /// Creates a topic (the cluster's default replication factor) and waits until every
    /// partition has a leader.
    pub async fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let c = self.client().await;
        let configs: BTreeMap<String, String> = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(c.create_topic(name, partitions, &configs).await.expect("create topic"), "{name} existed already");
        wait_leaders(&c, name, partitions).await;
    }

    /// The log segment files of one partition on the cluster's disk, oldest first: Kafka and
    /// `tern broker` alike keep `<data dir>/<topic>-<partition>/<base offset>.log`.
    pub fn segment_files(&self, topic: &str, partition: i32) -> Vec<std::path::PathBuf> {
        let data_dirs: Vec<std::path::PathBuf> = match self {
            TestCluster::Tern(b) => vec![b._dir.path().to_path_buf()],
            TestCluster::Kafka(k) => k.nodes.iter().map(|n| n.dir.join("data")).collect(),
            TestCluster::OwnKafka(k) => k.nodes.iter().map(|n| n.dir.join("data")).collect(),
        };
        let mut files: Vec<std::path::PathBuf> = data_dirs
            .iter()
            .flat_map(|d| std::fs::read_dir(d.join(format!("{topic}-{partition}"))).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        files
    }
}

/// Waits until Metadata shows a leader for every partition of `topic`.
pub async fn wait_leaders(c: &Client, topic: &str, partitions: i32) {
    wait_until(Duration::from_secs(30), &format!("leaders for {topic}"), async || {
        let md = c.refresh_metadata(None).await.ok()?;
        let t = md.topics.get(topic)?;
        (t.partitions.len() as i32 == partitions && t.partitions.iter().all(|p| p.leader >= 0)).then_some(())
    })
    .await;
}

/// A record as compared across clusters: key, value, headers in order, timestamp.
pub type Content = (Option<Bytes>, Option<Bytes>, Vec<(String, Option<Bytes>)>, i64);

/// Every record of a partition, read from its leader, in offset order.
pub async fn read_partition(c: &Client, topic: &str, partition: i32) -> Vec<Content> {
    let records = c.read_all(topic, partition).await.unwrap_or_else(|e| panic!("reading {topic}/{partition}: {e}"));
    records
        .into_iter()
        .map(|r| (r.key, r.value, r.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), r.timestamp))
        .collect()
}

/// One `#[tokio::test]` per listed kind combination, each calling `$case` with its kinds.
macro_rules! over_kinds {
    ($case:ident { $($name:ident: ($($kind:ident),+);)+ }) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $case($(crate::clusters::Kind::$kind),+).await
            }
        )+
    };
}
pub(crate) use over_kinds;
