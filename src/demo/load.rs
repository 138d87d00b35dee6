//! The demo's producers: orders and payments keyed by customer, spread over every partition
//! by Kafka's default partitioner, at a steady rate with a burst now and then.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use tern_kafka::client::{Client, ClientConfig};
use tern_kafka::records::{encode_batch, PlainRecord};
use tokio::sync::watch;

use super::{PARTITIONS, TOPICS};

/// Producer ticks per second: each tick writes one batch per partition that has records.
const TICKS_PER_SECOND: u32 = 10;
/// Distinct customers: enough that every partition gets some of them.
const CUSTOMERS: u64 = 5_000;

/// Now and then one source writes many times its steady rate for a while, so a flow falls
/// behind and catches up again.
#[derive(Debug, Clone, Copy)]
pub struct Bursts {
    pub every: Duration,
    pub length: Duration,
    /// Records per second during a burst.
    pub rate: u32,
}

/// Which source is bursting now, if any: every `every`, the next of `sources` in turn.
pub async fn schedule(bursts: Bursts, sources: Vec<&'static str>, now_bursting: watch::Sender<Option<&'static str>>) {
    for source in sources.iter().cycle() {
        tokio::time::sleep(bursts.every).await;
        println!("burst     {source}: {} records/s for {}", bursts.rate, humantime::format_duration(bursts.length));
        let _ = now_bursting.send(Some(source));
        tokio::time::sleep(bursts.length).await;
        let _ = now_bursting.send(None);
    }
}

/// Writes `rate` records a second to `orders` and `payments` on the cluster `region` (three
/// orders to one payment), or the burst rate while `now_bursting` names this region.
pub async fn produce(bootstrap: String, region: &'static str, rate: u32, burst_rate: u32, now_bursting: watch::Receiver<Option<&'static str>>) {
    let client = match Client::connect(ClientConfig::new(&bootstrap)).await {
        Ok(c) => c,
        Err(e) => return tracing::error!("load generator for {region}: {e}"),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1) / TICKS_PER_SECOND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Fractional records carried from tick to tick, so low rates come out right.
    let mut owed = 0.0f64;
    let mut order = 0u64;
    loop {
        tick.tick().await;
        let bursting = *now_bursting.borrow() == Some(region);
        owed += f64::from(if bursting { burst_rate } else { rate }) / f64::from(TICKS_PER_SECOND);
        let due = owed.floor() as u64;
        owed -= due as f64;
        let now = tern_mirror::clock::now_ms();
        let mut batches: BTreeMap<(&str, i32), Vec<PlainRecord>> = BTreeMap::new();
        for _ in 0..due {
            let (topic, partition, record) = next_record(region, order, now);
            batches.entry((topic, partition)).or_default().push(record);
            order += 1;
        }
        // Every partition's request is sent before any answer is awaited.
        let mut pending = Vec::new();
        for ((topic, partition), records) in batches {
            let Ok(batch) = encode_batch(&records, Compression::Lz4) else { continue };
            match client.send_produce(topic, partition, batch, -1, 10_000).await {
                Ok(p) => pending.push(p),
                Err(e) => tracing::warn!("load generator for {region}: {e}"),
            }
        }
        for p in pending {
            if let Err(e) = p.ack().await {
                tracing::warn!("load generator for {region}: {e}");
            }
        }
    }
}

/// The `n`th record of a region's load: its topic, its partition and the record. The key is
/// the customer, so a customer's orders and payments share a partition number, as they would
/// with any Kafka producer.
fn next_record(region: &str, n: u64, now: i64) -> (&'static str, i32, PlainRecord) {
    let topic = if n % 4 == 3 { TOPICS[1] } else { TOPICS[0] };
    // Each region has its own customers' order.
    let mix = splitmix64(n ^ (u64::from(murmur2(region.as_bytes())) << 32));
    let customer = format!("customer-{:04}", mix % CUSTOMERS);
    let partition = default_partition(customer.as_bytes(), PARTITIONS);
    let amount = (mix >> 32) % 100_000;
    let value = format!("{{\"region\":\"{region}\",\"order\":{n},\"customer\":\"{customer}\",\"amount\":{}.{:02}}}", amount / 100, amount % 100);
    (topic, partition, PlainRecord::new(customer, Some(Bytes::from(value)), now))
}

/// A well-mixed 64-bit number from a counter (SplitMix64), so customers come in no order.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `toPositive(murmur2(key)) % partitions`.
pub fn default_partition(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1) as u32) as i32
}

/// Kafka's `Utils.murmur2` (MurmurHash2, seed 0x9747b28c), as the Java client hashes keys.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Kafka's own vectors (UtilsTest.testMurmur2), as signed Java ints.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key) as i32, want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn load_reaches_every_partition_of_every_topic() {
        let mut seen = std::collections::BTreeMap::<(&str, i32), usize>::new();
        for n in 0..400 {
            let (topic, partition, record) = next_record("us-east", n, 0);
            assert_eq!(partition, default_partition(record.key.as_deref().unwrap_or_default(), PARTITIONS));
            *seen.entry((topic, partition)).or_default() += 1;
        }
        assert_eq!(seen.len(), TOPICS.len() * PARTITIONS as usize, "{seen:?}");
        // Roughly even: no partition gets less than half its share.
        assert!(seen.iter().all(|((t, _), n)| *n >= if *t == "orders" { 300 } else { 100 } / PARTITIONS as usize / 2), "{seen:?}");
    }
}
