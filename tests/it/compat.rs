//! Real third-party clients against the broker: librdkafka (kcat from Debian, confluent-kafka
//! from PyPI) and kafka-python, producing, consuming, and in consumer groups. The scripts live in
//! tests/compat/ and check content, not counts.

use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

async fn run_python(script: &str, broker: &TestBroker, timeout: Duration) {
    let mut cmd = Command::new(python());
    cmd.arg(compat_script(script)).args(["--bootstrap", &broker.bootstrap()]);
    run_client(cmd, timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_admin_produce_consume_every_codec() {
    let b = TestBroker::start().await;
    run_python("confluent_basic.py", &b, Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_produce_consume_offsets_for_times() {
    let b = TestBroker::start().await;
    run_python("kafka_python_basic.py", &b, Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_debian_librdkafka_2_0() {
    let b = TestBroker::start().await;
    let topic = unique_topic("kcat");
    create_topic(&mut b.connect().await, &topic, 3, &[]).await;
    let mut cmd = Command::new("bash");
    cmd.arg(compat_script("kcat_basic.sh")).arg(b.bootstrap()).arg(&topic);
    run_client(cmd, Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_configs_partitions_delete_records() {
    // Retention checks need segment rolls and retention to run often.
    let b = TestBroker::start_with(|c| c.maintenance_interval = Duration::from_millis(200)).await;
    run_python("confluent_admin_configs.py", &b, Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_consumer_group_splits_and_takes_over_partitions() {
    let b = TestBroker::start().await;
    run_python("confluent_groups.py", &b, Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_consumer_group_splits_and_takes_over_partitions() {
    let b = TestBroker::start().await;
    run_python("kafka_python_groups.py", &b, Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_admin_client_manages_consumer_groups() {
    let b = TestBroker::start().await;
    run_python("confluent_group_admin.py", &b, Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_balanced_consumer_resumes_from_its_commits() {
    let b = TestBroker::start().await;
    let topic = unique_topic("kcat-group");
    create_topic(&mut b.connect().await, &topic, 3, &[]).await;
    let mut cmd = Command::new("bash");
    cmd.arg(compat_script("kcat_groups.sh")).arg(b.bootstrap()).arg(&topic);
    run_client(cmd, Duration::from_secs(300)).await;
}
