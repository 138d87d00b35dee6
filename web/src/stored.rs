//! Lag and throughput history that survives restarts and is the same on every worker: each
//! flow's samples are kept in the compacted topic [`HISTORY_TOPIC`] on the flow's target
//! cluster, at two resolutions (fine for the last hour, coarse for the last day), one record
//! per flow, resolution and time bucket.
//!
//! Every worker writes the flow as a whole (its own partitions and the others' from the flow
//! group's commits) into the current buckets and reads the topic back, so all of them show
//! what the topic holds. Buckets that leave their window get a tombstone; the topic's
//! time retention (25 hours) removes what a stopped worker could not delete.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tern_kafka::client::{Client, EARLIEST, LATEST};

use crate::history::Sample;

pub const HISTORY_TOPIC: &str = "tern-history.internal";

/// Time retention of the topic: a day and an hour.
const RETENTION_MS: i64 = 25 * 3_600_000;

/// At most this many records are read per sync, so a large backlog cannot hold up the poller.
const READ_LIMIT: i64 = 50_000;

/// Bucket widths and how long each resolution is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolutions {
    pub fine_ms: i64,
    pub fine_window_ms: i64,
    pub coarse_ms: i64,
    pub coarse_window_ms: i64,
}

impl Default for Resolutions {
    /// Ten seconds for the last hour, a minute for the last 24 hours.
    fn default() -> Self {
        Resolutions { fine_ms: 10_000, fine_window_ms: 3_600_000, coarse_ms: 60_000, coarse_window_ms: 24 * 3_600_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    Fine,
    Coarse,
}

impl Resolutions {
    fn width(&self, r: Resolution) -> i64 {
        match r {
            Resolution::Fine => self.fine_ms,
            Resolution::Coarse => self.coarse_ms,
        }
    }

    fn window(&self, r: Resolution) -> i64 {
        match r {
            Resolution::Fine => self.fine_window_ms,
            Resolution::Coarse => self.coarse_window_ms,
        }
    }
}

/// One stored sample of a whole flow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub at_ms: i64,
    pub lag_records: i64,
    pub lag_seconds: f64,
    /// Replicated positions summed over the flow's partitions: throughput is their growth.
    pub records: u64,
    pub bytes: u64,
}

impl From<&Sample> for Point {
    fn from(s: &Sample) -> Point {
        Point { at_ms: s.at_ms, lag_records: s.lag_records, lag_seconds: s.lag_seconds, records: s.records, bytes: s.bytes }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Key {
    flow: String,
    resolution: Resolution,
    bucket: i64,
}

/// What the history topics hold, as far as read.
#[derive(Debug, Default)]
pub struct Stored {
    series: BTreeMap<(String, Resolution), BTreeMap<i64, Point>>,
    /// Next offset to read, per target cluster.
    next: BTreeMap<String, i64>,
}

impl Stored {
    /// The stored points of one flow at one resolution, oldest first.
    pub fn points(&self, flow: &str, r: Resolution) -> Vec<Point> {
        self.series.get(&(flow.to_string(), r)).map(|s| s.values().copied().collect()).unwrap_or_default()
    }

    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Ok(k) = serde_json::from_slice::<Key>(key) else { return };
        let series = self.series.entry((k.flow, k.resolution)).or_default();
        match value.map(serde_json::from_slice::<Point>) {
            Some(Ok(p)) => {
                series.insert(k.bucket, p);
            }
            // A tombstone, or a value this version cannot read.
            _ => {
                series.remove(&k.bucket);
            }
        }
    }

    fn prune(&mut self, now: i64, res: &Resolutions) {
        for ((_, r), series) in self.series.iter_mut() {
            let oldest = now - res.window(*r);
            series.retain(|bucket, _| *bucket >= oldest);
        }
        self.series.retain(|_, s| !s.is_empty());
    }
}

/// An SVG chart of lag in records over the `span_ms` before `now`: one point per stored
/// sample, the peak and the span in its title.
pub fn chart(id: &str, points: &[Point], now: i64, span_ms: i64) -> String {
    const W: f64 = 720.0;
    const H: f64 = 120.0;
    let from = now - span_ms;
    let shown: Vec<&Point> = points.iter().filter(|p| p.at_ms >= from && p.at_ms <= now).collect();
    let peak = shown.iter().map(|p| p.lag_records).max().unwrap_or(0);
    let scale = peak.max(1) as f64;
    let coords: Vec<String> = shown
        .iter()
        .map(|p| format!("{:.1},{:.1}", (p.at_ms - from) as f64 / span_ms as f64 * W, H - 1.0 - p.lag_records as f64 / scale * (H - 2.0)))
        .collect();
    let hours = span_ms as f64 / 3_600_000.0;
    format!(
        r#"<svg id="{id}" class="history" data-points="{}" data-peak="{peak}" width="{W}" height="{H}" viewBox="0 0 {W} {H}"><title>lag in records over the last {hours:.0} h, peak {peak}</title><line x1="0" y1="{H}" x2="{W}" y2="{H}"/><polyline points="{}"/></svg>"#,
        shown.len(),
        coords.join(" ")
    )
}

fn key(flow: &str, resolution: Resolution, bucket: i64) -> Bytes {
    Bytes::from(serde_json::to_vec(&Key { flow: flow.to_string(), resolution, bucket }).unwrap_or_default())
}

/// The records that store `latest` (each flow's newest sample) in its current buckets, and
/// delete the buckets that just left their window.
pub fn records_for(latest: &[(String, Sample)], res: &Resolutions) -> Vec<(Bytes, Option<Bytes>)> {
    let mut out = Vec::new();
    for (flow, sample) in latest {
        let value = serde_json::to_vec(&Point::from(sample)).ok().map(Bytes::from);
        for r in [Resolution::Fine, Resolution::Coarse] {
            let width = res.width(r);
            let bucket = sample.at_ms - sample.at_ms.rem_euclid(width);
            out.push((key(flow, r, bucket), value.clone()));
            let expired = bucket - res.window(r) - width;
            out.push((key(flow, r, expired), None));
        }
    }
    out
}

/// Creates the history topic on a target cluster unless the client already knows it.
async fn ensure_topic(client: &Client) -> tern_kafka::Result<()> {
    if client.metadata_snapshot().topics.contains_key(HISTORY_TOPIC) {
        return Ok(());
    }
    let mut configs = BTreeMap::new();
    configs.insert("cleanup.policy".to_string(), "compact,delete".to_string());
    configs.insert("retention.ms".to_string(), RETENTION_MS.to_string());
    client.create_topic(HISTORY_TOPIC, 1, &configs).await?;
    client.refresh_metadata(Some(&[HISTORY_TOPIC.to_string()])).await?;
    Ok(())
}

/// Writes `latest` to one target cluster's history topic and reads back what every worker
/// wrote since the last read.
pub async fn sync(stored: &std::sync::Mutex<Stored>, cluster: &str, client: &Client, latest: &[(String, Sample)], res: &Resolutions, now: i64) -> tern_kafka::Result<()> {
    ensure_topic(client).await?;
    let records = records_for(latest, res);
    if !records.is_empty() {
        let batch = tern_mirror::offset_map::store::encode_records(&records, now).map_err(|e| tern_kafka::Error::Encode(e.to_string()))?;
        client.produce(HISTORY_TOPIC, 0, batch, -1, 10_000).await?;
    }
    let (start, _) = client.list_offset(HISTORY_TOPIC, 0, EARLIEST).await?;
    let (end, _) = client.list_offset(HISTORY_TOPIC, 0, LATEST).await?;
    let from = stored.lock().unwrap_or_else(|p| p.into_inner()).next.get(cluster).copied().unwrap_or(0).max(start);
    let until = end.min(from + READ_LIMIT);
    let read = if from < until { client.read_range(HISTORY_TOPIC, 0, from, until).await? } else { Vec::new() };
    let mut s = stored.lock().unwrap_or_else(|p| p.into_inner());
    for r in &read {
        if let Some(k) = &r.key {
            s.apply(k, r.value.as_deref());
        }
    }
    s.next.insert(cluster.to_string(), until);
    s.prune(now, res);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: i64, lag: i64) -> Sample {
        Sample { at_ms, lag_records: lag, lag_seconds: lag as f64, records: 10, bytes: 100 }
    }

    #[test]
    fn a_sample_lands_in_its_buckets_and_expired_ones_are_deleted() {
        let res = Resolutions { fine_ms: 10, fine_window_ms: 100, coarse_ms: 60, coarse_window_ms: 600 };
        let mut s = Stored::default();
        for at in (0..2000).step_by(7) {
            for (k, v) in records_for(&[("a->b".to_string(), sample(at, at))], &res) {
                s.apply(&k, v.as_deref());
            }
        }
        let fine = s.points("a->b", Resolution::Fine);
        let coarse = s.points("a->b", Resolution::Coarse);
        // The last sample of each bucket wins; tombstones remove what left the window.
        assert!(fine.len() <= 12 && fine.len() >= 10, "{}", fine.len());
        assert!(coarse.len() <= 12 && coarse.len() >= 10, "{}", coarse.len());
        assert_eq!(fine.last().map(|p| p.at_ms), Some(1995));
        assert!(fine.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        s.prune(1995, &res);
        assert!(s.points("a->b", Resolution::Fine).iter().all(|p| p.at_ms >= 1995 - 100 - 10));
        // Keys and values this version cannot read are ignored, not fatal.
        s.apply(b"not json", Some(b"x"));
        s.apply(&key("a->b", Resolution::Fine, 1990), Some(b"garbage"));
        assert!(s.points("a->b", Resolution::Fine).iter().all(|p| p.at_ms < 1990));
    }
}
