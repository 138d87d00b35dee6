//! Apache Kafka's own command-line tools against `tern broker`: kafka-topics, kafka-configs,
//! the console producer and consumer, kafka-consumer-groups and the two perf tools, each run
//! as its `bin/*.sh` script runs it, with its output checked line by line where Kafka's format
//! is fixed. A JVM start costs a CPU-second or two, so each test strings several tools together
//! on one broker.

use std::collections::BTreeMap;
use std::time::Duration;

use tern_kafka::client::{Client, ClientConfig, LATEST};

use crate::apache_kafka::{kafka_tool, kafka_tool_with_input};
use crate::helpers::*;

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";
const CONFIG_COMMAND: &str = "kafka.admin.ConfigCommand";
const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const CONSUMER_GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
const PRODUCER_PERFORMANCE: &str = "org.apache.kafka.tools.ProducerPerformance";
const CONSUMER_PERFORMANCE: &str = "org.apache.kafka.tools.ConsumerPerformance";

async fn tool(class: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&kafka_tool(class, args, TOOL_TIMEOUT).await.stdout).into_owned()
}

/// Non-empty lines with trailing blanks removed (Kafka pads its table columns).
fn lines(out: &str) -> Vec<String> {
    out.lines().map(str::trim_end).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// A whitespace-separated table as kafka-consumer-groups prints it: one map per row, keyed by
/// the header's column names.
fn table(out: &str) -> Vec<BTreeMap<String, String>> {
    let rows = lines(out);
    let Some((header, rows)) = rows.split_first() else { return Vec::new() };
    let columns: Vec<&str> = header.split_whitespace().collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cells.len(), columns.len(), "row {row:?} does not fit header {header:?}");
            columns.iter().zip(cells).map(|(c, v)| (c.to_string(), v.to_string())).collect()
        })
        .collect()
}

#[tokio::test]
async fn kafka_topics_and_kafka_configs() {
    init_logs();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let topic = unique_topic("tools-topics");

    let created = tool(
        TOPIC_COMMAND,
        &["--bootstrap-server", &b, "--create", "--topic", &topic, "--partitions", "3", "--replication-factor", "1", "--config", "retention.ms=123456"],
    )
    .await;
    assert_eq!(lines(&created), [format!("Created topic {topic}.")]);

    let listed = tool(TOPIC_COMMAND, &["--bootstrap-server", &b, "--list", "--exclude-internal"]).await;
    assert_eq!(lines(&listed), [topic.clone()]);

    let altered = tool(
        CONFIG_COMMAND,
        &["--bootstrap-server", &b, "--alter", "--entity-type", "topics", "--entity-name", &topic, "--add-config", "retention.ms=86400000,cleanup.policy=compact"],
    )
    .await;
    assert_eq!(lines(&altered), [format!("Completed updating config for topic {topic}.")]);

    // The topic line carries only the overrides.
    let described = lines(&tool(TOPIC_COMMAND, &["--bootstrap-server", &b, "--describe", "--topic", &topic]).await);
    assert_eq!(described.len(), 4, "a topic line and three partition lines: {described:#?}");
    let fields: Vec<&str> = described[0].split('\t').collect();
    assert_eq!(fields[0], format!("Topic: {topic}"));
    assert!(fields[1].starts_with("TopicId: ") && fields[1] != "TopicId: AAAAAAAAAAAAAAAAAAAAAA", "{fields:?}");
    assert_eq!(fields[2..4], ["PartitionCount: 3", "ReplicationFactor: 1"]);
    let mut overrides: Vec<&str> = fields[4].strip_prefix("Configs: ").expect("configs").split(',').collect();
    overrides.sort();
    assert_eq!(overrides, ["cleanup.policy=compact", "retention.ms=86400000"]);
    for (p, line) in described[1..].iter().enumerate() {
        // An empty ELR, as a KRaft broker reports it through DescribeTopicPartitions (a broker
        // without that API makes the tool print N/A).
        assert_eq!(line.trim_start(), format!("Topic: {topic}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: \tLastKnownElr:"));
    }

    // Exactly Kafka's lines: an override lists its topic value, then the broker default it
    // overrides when Kafka's broker config has one (log.retention.ms has none: its default
    // lives in log.retention.hours, which Kafka does not list).
    let configs = lines(&tool(CONFIG_COMMAND, &["--bootstrap-server", &b, "--describe", "--all", "--entity-type", "topics", "--entity-name", &topic]).await);
    assert_eq!(configs[0], format!("All configs for topic {topic} are:"));
    for want in [
        "  cleanup.policy=compact sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact, DEFAULT_CONFIG:log.cleanup.policy=delete}",
        "  retention.ms=86400000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=86400000}",
        "  segment.bytes=1073741824 sensitive=false synonyms={DEFAULT_CONFIG:log.segment.bytes=1073741824}",
        "  segment.ms=604800000 sensitive=false synonyms={}",
        "  follower.replication.throttled.replicas= sensitive=false synonyms={}",
        "  max.message.bytes=1048588 sensitive=false synonyms={DEFAULT_CONFIG:message.max.bytes=1048588}",
    ] {
        assert!(configs.iter().any(|l| l == want), "missing {want:?} in {configs:#?}");
    }
}

#[tokio::test]
async fn console_producer_console_consumer_and_kafka_consumer_groups() {
    init_logs();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let topic = unique_topic("tools-console");
    let group = unique_topic("tools-group");
    create_topic(&mut broker.connect().await, &topic, 3, &[]).await;

    let produced: Vec<(String, String)> = (0..9).map(|i| (format!("key-{i}"), format!("value {i}"))).collect();
    let input: String = produced.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
    kafka_tool_with_input(
        CONSOLE_PRODUCER,
        &["--bootstrap-server", &b, "--topic", &topic, "--reader-property", "parse.key=true"],
        input.as_bytes(),
        TOOL_TIMEOUT,
    )
    .await;

    let consumed = tool(
        CONSOLE_CONSUMER,
        &[
            "--bootstrap-server", &b, "--topic", &topic, "--group", &group, "--from-beginning", "--max-messages", "9",
            "--formatter-property", "print.partition=true", "--formatter-property", "print.offset=true", "--formatter-property", "print.key=true",
        ],
    )
    .await;
    // `Partition:P<TAB>Offset:O<TAB>key<TAB>value`: every record once, each partition read from
    // offset 0 up, in the order it was produced.
    let mut by_partition: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    for line in lines(&consumed) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "unexpected line {line:?}");
        let partition: i32 = f[0].strip_prefix("Partition:").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
        let offset: usize = f[1].strip_prefix("Offset:").and_then(|o| o.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
        let records = by_partition.entry(partition).or_default();
        assert_eq!(offset, records.len(), "{line:?} out of order");
        records.push((f[2].to_string(), f[3].to_string()));
    }
    let mut all: Vec<(String, String)> = by_partition.values().flatten().cloned().collect();
    all.sort();
    assert_eq!(all, produced, "the consumer printed other records than were produced");
    for records in by_partition.values() {
        let positions: Vec<usize> = records.iter().map(|r| produced.iter().position(|p| p == r).expect("produced")).collect();
        assert!(positions.is_sorted(), "a partition's records out of production order: {records:?}");
    }
    let end = |p: i32| by_partition.get(&p).map_or(0, Vec::len) as i64;

    // The console consumer committed its position and left: no lag, no members.
    let described = table(&tool(CONSUMER_GROUP_COMMAND, &["--bootstrap-server", &b, "--describe", "--group", &group]).await);
    let mut rows: Vec<[String; 8]> = described
        .iter()
        .map(|r| ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"].map(|c| r[c].clone()))
        .collect();
    rows.sort();
    let want: Vec<[String; 8]> = (0..3)
        .map(|p| [group.clone(), topic.clone(), p.to_string(), end(p).to_string(), end(p).to_string(), "0".into(), "-".into(), "-".into()])
        .collect();
    assert_eq!(rows, want);
    assert!(described.iter().all(|r| r["CLIENT-ID"] == "-"), "{described:?}");

    let reset = table(&tool(
        CONSUMER_GROUP_COMMAND,
        &["--bootstrap-server", &b, "--reset-offsets", "--group", &group, "--topic", &topic, "--to-earliest", "--execute"],
    )
    .await);
    let mut new_offsets: Vec<(String, String)> = reset.iter().map(|r| (r["PARTITION"].clone(), r["NEW-OFFSET"].clone())).collect();
    new_offsets.sort();
    assert_eq!(new_offsets, (0..3).map(|p| (p.to_string(), "0".to_string())).collect::<Vec<_>>());

    // Nine records over three partitions: one holds at least three.
    let fullest = (0..3).max_by_key(|p| end(*p)).expect("partitions");
    let one = format!("{topic}:{fullest}");
    let moved = table(&tool(CONSUMER_GROUP_COMMAND, &["--bootstrap-server", &b, "--reset-offsets", "--group", &group, "--topic", &one, "--to-offset", "2", "--execute"]).await);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!((moved[0]["PARTITION"].as_str(), moved[0]["NEW-OFFSET"].as_str()), (fullest.to_string().as_str(), "2"));

    let client = Client::connect(ClientConfig::new(&b)).await.expect("client");
    let committed = client.all_committed_offsets(&group).await.expect("committed offsets");
    let want: BTreeMap<(String, i32), i64> = (0..3).map(|p| ((topic.clone(), p), if p == fullest { 2 } else { 0 })).collect();
    assert_eq!(committed, want);
}

#[tokio::test]
async fn producer_and_consumer_perf_tools() {
    init_logs();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let topic = unique_topic("tools-perf");
    create_topic(&mut broker.connect().await, &topic, 2, &[]).await;

    let out = kafka_tool(
        PRODUCER_PERFORMANCE,
        &[
            "--bootstrap-server", &b, "--topic", &topic, "--num-records", "20000", "--record-size", "100", "--throughput", "-1",
            "--command-property", "acks=all", "linger.ms=5",
        ],
        TOOL_TIMEOUT,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = lines(&stdout).pop().unwrap_or_default();
    assert!(summary.starts_with("20000 records sent, "), "summary: {summary:?}");
    assert!(summary.contains(" ms avg latency, "), "summary: {summary:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("ERROR") && !stderr.contains("Exception"), "the producer reported errors:\n{stderr}");

    let client = Client::connect(ClientConfig::new(&b)).await.expect("client");
    let mut stored = 0;
    for p in 0..2 {
        stored += client.list_offset(&topic, p, LATEST).await.expect("end offset").0;
    }
    assert_eq!(stored, 20000);

    // One CSV row under a header: the consumer read every record, 100 bytes each.
    let out = tool(CONSUMER_PERFORMANCE, &["--bootstrap-server", &b, "--topic", &topic, "--num-records", "20000", "--timeout", "60000"]).await;
    let rows = lines(&out);
    let header: Vec<&str> = rows.iter().find(|l| l.starts_with("start.time")).expect("CSV header").split(", ").collect();
    let values: Vec<&str> = rows.last().expect("CSV row").split(", ").collect();
    assert_eq!(header.len(), values.len(), "{rows:#?}");
    let stats: BTreeMap<&str, &str> = header.into_iter().zip(values).collect();
    assert_eq!(stats["data.consumed.in.nMsg"], "20000", "{stats:?}");
    assert_eq!(stats["data.consumed.in.MB"], format!("{:.4}", 20000.0 * 100.0 / (1024.0 * 1024.0)), "{stats:?}");
}
