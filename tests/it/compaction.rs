//! Log compaction end to end: a compacted topic with rolling segments, cleaned by the broker's
//! maintenance, keeps the latest record per key at its original offset, drops tombstones after
//! `delete.retention.ms`, and reads back correctly with a real consumer (kcat).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use tern_kafka::records::{encode_batch, PlainRecord};
use tern_kafka::batch::Batches;
use tern_kafka::client::Connection;

use crate::helpers::*;
use crate::protocol::{fetch_request, produce_request};

/// `offset -> (key, value)`; a `None` value is a tombstone.
type Log = BTreeMap<i64, (String, Option<String>)>;

fn keyed_batch(kvs: &[(String, Option<String>)], compression: Compression) -> Bytes {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let records: Vec<PlainRecord> =
        kvs.iter().enumerate().map(|(i, (k, v))| PlainRecord::new(k.clone(), v.clone().map(Bytes::from), now + i as i64)).collect();
    encode_batch(&records, compression).expect("encode")
}

/// Every record up to the high watermark, reading batch by batch: compacted logs have gaps
/// and may hold batches emptied by the cleaner.
async fn read_compacted(c: &mut Connection, topic: &str) -> (Log, i64, i64) {
    let mut out = Log::new();
    let mut next = 0;
    loop {
        let resp = c.call(&fetch_request(topic, 0, next, 0, 0, 1 << 20), 12).await.expect("fetch");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch at {next}");
        let records = p.records.clone().unwrap_or_default();
        if next >= p.high_watermark || records.is_empty() {
            return (out, p.log_start_offset, p.high_watermark);
        }
        for item in Batches::new(&records) {
            let (pos, h) = item.expect("batch");
            let mut one = records.slice(pos..pos + h.total_len());
            for r in RecordBatchDecoder::decode(&mut one).expect("decodable").records {
                let key = String::from_utf8(r.key.expect("key").to_vec()).expect("utf8");
                out.insert(r.offset, (key, r.value.map(|v| String::from_utf8_lossy(&v).into_owned())));
            }
            next = next.max(h.last_offset() + 1);
        }
    }
}

fn latest(log: &Log) -> BTreeMap<String, (i64, Option<String>)> {
    log.iter().map(|(o, (k, v))| (k.clone(), (*o, v.clone()))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_the_latest_value_per_key_at_its_offset() {
    let b = TestBroker::start_with(|c| c.maintenance_interval = Duration::from_millis(100)).await;
    let mut c = b.connect().await;
    let topic = unique_topic("compacted");
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.ms", "100"),
        ("delete.retention.ms", "3000"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    create_topic(&mut c, &topic, 1, &configs).await;

    // 40 rounds over 8 keys; k2 and k5 deleted at round 30, k5 written again at 35.
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    let mut written = Log::new();
    for round in 0..40usize {
        let mut kvs: Vec<(String, Option<String>)> = (0..8)
            .filter(|k| !((round > 30 && *k == 2) || ((31..35).contains(&round) && *k == 5)))
            .map(|k| (format!("k{k}"), Some(format!("round{round}-k{k}"))))
            .collect();
        if round == 30 {
            kvs.push(("k2".into(), None));
            kvs.push(("k5".into(), None));
        }
        let resp = c.call(&produce_request(&topic, 0, keyed_batch(&kvs, codecs[round % 5]), -1), 9).await.expect("produce");
        let pr = &resp.responses[0].partition_responses[0];
        assert_eq!(pr.error_code, 0, "{:?}", pr.error_message);
        for (i, kv) in kvs.into_iter().enumerate() {
            written.insert(pr.base_offset + i as i64, kv);
        }
        if round % 8 == 7 {
            // Let segment.ms roll the active segment now and then.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    let expected = latest(&written);
    let end = written.keys().last().expect("records") + 1;

    // Compacted: one record per key, each the last one written, at the offset it was written.
    let mut saw_tombstone = false;
    let compacted = wait_until(Duration::from_secs(60), "the cleaner to compact every sealed segment", async || {
        let (log, start, hw) = read_compacted(&mut c, &topic).await;
        assert_eq!((start, hw), (0, end), "compaction moves neither end of the log");
        for (o, kv) in &log {
            assert_eq!(written.get(o), Some(kv), "record at offset {o}");
        }
        saw_tombstone |= log.values().any(|(k, v)| k == "k2" && v.is_none());
        let keys_once = latest(&log).len() == log.len();
        let done = keys_once && latest(&log).into_iter().all(|(k, kv)| expected.get(&k) == Some(&kv));
        done.then_some(log)
    })
    .await;
    assert!(saw_tombstone, "the tombstone of k2 was removed before delete.retention.ms");
    println!("compacted {} records to {}", written.len(), compacted.len());

    // After delete.retention.ms the tombstone goes too.
    wait_until(Duration::from_secs(30), "the tombstone of k2 to be removed", async || {
        let (log, _, _) = read_compacted(&mut c, &topic).await;
        (!log.values().any(|(k, _)| k == "k2")).then_some(())
    })
    .await;
    let (log, _, _) = read_compacted(&mut c, &topic).await;
    let mut final_expected = expected.clone();
    final_expected.remove("k2");
    assert_eq!(latest(&log), final_expected);
    assert_eq!(log.len(), final_expected.len());

    // A real consumer reads the compacted log: same offsets, keys and values.
    let mut cmd = Command::new("kcat");
    cmd.args(["-b", &b.bootstrap(), "-C", "-t", &topic, "-p", "0", "-o", "beginning", "-e", "-Z", "-f", "%o %k %s\\n"]);
    let out = run_client(cmd, Duration::from_secs(60)).await;
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    let want: Vec<String> = log.iter().map(|(o, (k, v))| format!("{o} {k} {}", v.as_deref().unwrap_or("NULL"))).collect();
    assert_eq!(got, want, "kcat's view of the compacted log");
}
