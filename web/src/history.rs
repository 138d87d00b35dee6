//! The last hour of every partition's lag, sampled from the flows' status: the dashboard's
//! sparklines, throughput, trend and time-to-catch-up estimates come from here.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// How much history is kept.
pub const WINDOW_MS: i64 = 3_600_000;

/// One observation of a partition (or of a whole flow, summed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub at_ms: i64,
    pub lag_records: i64,
    pub lag_seconds: f64,
    /// The replicated position (summed over partitions for a flow): its growth is the
    /// throughput in records.
    #[serde(skip)]
    pub records: u64,
    #[serde(skip)]
    pub bytes: u64,
}

pub use tern_mirror::states::Trend;

/// What the samples say about the present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlook {
    pub records_per_second: f64,
    pub bytes_per_second: f64,
    pub trend: Trend,
    /// Seconds until the lag reaches zero at the current rate of shrinking; `None` when the
    /// lag is not shrinking (or already zero).
    pub catch_up_seconds: Option<f64>,
}

impl Outlook {
    /// "caught up", "4 min 10 s", or "not catching up".
    pub fn catch_up_text(&self) -> String {
        match (self.trend, self.catch_up_seconds) {
            (Trend::CaughtUp, _) => "caught up".into(),
            (_, Some(s)) => human_duration(s),
            (Trend::Unknown, None) => "-".into(),
            (_, None) => "not catching up".into(),
        }
    }
}

/// 42 s, 4 min 10 s, 3 h 5 min.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// An inline SVG sparkline of (time, value) points: the last hour, or as much of it as there
/// is.
pub fn sparkline(points: &[(i64, i64)]) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let (Some(&(first_t, _)), Some(&(last_t, _))) = (points.first(), points.last()) else {
        return format!(r#"<svg class="spark" width="{W}" height="{H}" viewBox="0 0 {W} {H}"></svg>"#);
    };
    let span = (last_t - first_t).max(1);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let coords: Vec<String> = points
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", (t - first_t) as f64 / span as f64 * W, H - 1.0 - (*v as f64 / max) * (H - 2.0)))
        .collect();
    format!(
        r#"<svg class="spark" width="{W}" height="{H}" viewBox="0 0 {W} {H}"><title>lag over the last {} min, peak {} records</title><polyline points="{}"/></svg>"#,
        (span + 59_999) / 60_000,
        max as i64,
        coords.join(" ")
    )
}

/// Samples of one series, oldest first, at most one hour.
#[derive(Debug, Clone, Default)]
pub struct Series {
    samples: VecDeque<Sample>,
}

/// How far back the trend looks.
const TREND_MS: i64 = 60_000;

impl Series {
    pub fn push(&mut self, s: Sample) {
        while self.samples.front().is_some_and(|f| f.at_ms < s.at_ms - WINDOW_MS) {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Throughput between the last two samples, trend and catch-up estimate over the last
    /// minute (or what there is of it).
    pub fn outlook(&self) -> Outlook {
        self.outlook_at(None)
    }

    /// Like [`Series::outlook`], with the present state as the newest point: a page shows the
    /// lag as it is now, and the trend must agree with it (a flow paused since the last
    /// sample is growing, not caught up).
    pub fn outlook_at(&self, present: Option<Sample>) -> Outlook {
        let mut o = Outlook { records_per_second: 0.0, bytes_per_second: 0.0, trend: Trend::Unknown, catch_up_seconds: None };
        let mut stored = self.samples.iter().rev();
        if let (Some(last), Some(prev)) = (stored.next(), stored.next()) {
            let dt = (last.at_ms - prev.at_ms) as f64 / 1000.0;
            if dt > 0.0 {
                o.records_per_second = last.records.saturating_sub(prev.records) as f64 / dt;
                o.bytes_per_second = last.bytes.saturating_sub(prev.bytes) as f64 / dt;
            }
        }
        let newest = match (present, self.samples.back()) {
            (Some(p), Some(l)) if p.at_ms <= l.at_ms => *l,
            (Some(p), _) => p,
            (None, Some(l)) => *l,
            (None, None) => return o,
        };
        if newest.lag_records == 0 {
            o.trend = Trend::CaughtUp;
            return o;
        }
        let Some(first) = self.samples.iter().find(|s| s.at_ms >= newest.at_ms - TREND_MS).filter(|f| f.at_ms < newest.at_ms) else { return o };
        let dt = (newest.at_ms - first.at_ms) as f64 / 1000.0;
        let change = (newest.lag_records - first.lag_records) as f64 / dt;
        // Within 1% of the lag per minute counts as steady.
        let tolerance = (newest.lag_records as f64 * 0.01) / 60.0;
        o.trend = if change < -tolerance {
            Trend::Shrinking
        } else if change > tolerance {
            Trend::Growing
        } else {
            Trend::Steady
        };
        if o.trend == Trend::Shrinking {
            o.catch_up_seconds = Some(newest.lag_records as f64 / -change);
        }
        o
    }

    /// Lag in records over the window, for a sparkline.
    pub fn lag_points(&self) -> Vec<(i64, i64)> {
        self.samples.iter().map(|s| (s.at_ms, s.lag_records)).collect()
    }
}

/// Every flow's series: one per partition and one for the flow as a whole.
#[derive(Debug, Default)]
pub struct History {
    pub partitions: BTreeMap<(String, String, i32), Series>,
    pub flows: BTreeMap<String, Series>,
}

impl History {
    /// Records one sample of every partition of a flow, and their sum as the flow's.
    pub fn record(&mut self, flow: &str, partitions: impl Iterator<Item = ((String, i32), Sample)>, now: i64) {
        let mut total = Sample { at_ms: now, lag_records: 0, lag_seconds: 0.0, records: 0, bytes: 0 };
        for ((topic, partition), s) in partitions {
            total.lag_records += s.lag_records;
            total.lag_seconds = total.lag_seconds.max(s.lag_seconds);
            total.records += s.records;
            total.bytes += s.bytes;
            self.partitions.entry((flow.to_string(), topic, partition)).or_default().push(s);
        }
        self.flows.entry(flow.to_string()).or_default().push(total);
        // Partitions no longer replicated stop being sampled; drop them once stale.
        self.partitions.retain(|_, series| series.samples.back().is_some_and(|s| s.at_ms >= now - WINDOW_MS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: i64, lag: i64, records: u64) -> Sample {
        Sample { at_ms: at_s * 1000, lag_records: lag, lag_seconds: 0.0, records, bytes: records * 100 }
    }

    #[test]
    fn shrinking_lag_gives_a_catch_up_estimate() {
        let mut s = Series::default();
        for (i, lag) in [1000, 900, 800, 700].iter().enumerate() {
            s.push(sample(i as i64 * 10, *lag, i as u64 * 500));
        }
        let o = s.outlook();
        assert_eq!(o.trend, Trend::Shrinking);
        assert_eq!(o.records_per_second, 50.0);
        assert_eq!(o.bytes_per_second, 5000.0);
        // 300 records in 30 s: 10 per second, 700 left.
        assert_eq!(o.catch_up_seconds, Some(70.0));
    }

    #[test]
    fn growing_steady_and_caught_up() {
        let mut s = Series::default();
        s.push(sample(0, 10, 0));
        s.push(sample(10, 500, 0));
        assert_eq!(s.outlook().trend, Trend::Growing);
        assert_eq!(s.outlook().catch_up_seconds, None);
        let mut s = Series::default();
        s.push(sample(0, 500, 0));
        s.push(sample(10, 500, 0));
        assert_eq!(s.outlook().trend, Trend::Steady);
        s.push(sample(20, 0, 0));
        assert_eq!(s.outlook().trend, Trend::CaughtUp);
        assert_eq!(Series::default().outlook().trend, Trend::Unknown);
    }

    #[test]
    fn the_present_overrides_stale_samples() {
        let mut s = Series::default();
        s.push(sample(0, 0, 0));
        s.push(sample(5, 0, 0));
        assert_eq!(s.outlook().trend, Trend::CaughtUp);
        // Paused since: the lag now is 400.
        assert_eq!(s.outlook_at(Some(sample(8, 400, 0))).trend, Trend::Growing);
        // Caught up now although the last sample lagged.
        s.push(sample(10, 300, 0));
        assert_eq!(s.outlook_at(Some(sample(12, 0, 0))).trend, Trend::CaughtUp);
        // A shrinking lag: 300 -> 100 in 20 s, 10 a second, gives 10 more seconds.
        let mut s = Series::default();
        s.push(sample(0, 300, 0));
        s.push(sample(10, 200, 0));
        let o = s.outlook_at(Some(sample(20, 100, 0)));
        assert_eq!((o.trend, o.catch_up_seconds), (Trend::Shrinking, Some(10.0)));
    }

    #[test]
    fn keeps_one_hour_and_ignores_counter_resets() {
        let mut s = Series::default();
        for i in 0..800 {
            s.push(sample(i * 5, 1, 1000 - i as u64));
        }
        assert!(s.len() <= 721, "{}", s.len());
        assert_eq!(s.outlook().records_per_second, 0.0);
    }
}
