//! A flow's bandwidth limit (`max_bytes_per_second`): a token bucket of bytes that each
//! fetch from the source spends.

use std::time::{Duration, Instant};

/// The bytes a worker may still fetch. Refilled continuously and holding at most one
/// second's worth, so a quiet flow cannot save up for a long burst above its limit.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: f64,
    tokens: f64,
    refilled: Instant,
    turn: usize,
}

impl Throttle {
    pub fn new(bytes_per_second: u64, now: Instant) -> Throttle {
        let rate = bytes_per_second.max(1) as f64;
        Throttle { bytes_per_second: rate, tokens: rate, refilled: now, turn: 0 }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.bytes_per_second).min(self.bytes_per_second);
        self.refilled = now;
    }

    /// The bytes the next fetch may ask for, or how long to wait first. A fetch waits for a
    /// tenth of a second's worth, so a throttled flow makes about ten fetches a second rather
    /// than many tiny ones.
    pub fn allowance(&mut self, now: Instant) -> Result<i32, Duration> {
        self.refill(now);
        let least = self.bytes_per_second / 10.0;
        if self.tokens >= least {
            Ok(self.tokens.min(i32::MAX as f64) as i32)
        } else {
            Err(Duration::from_secs_f64((least - self.tokens) / self.bytes_per_second))
        }
    }

    /// Takes what a fetch returned. That may exceed the allowance (a fetch always returns at
    /// least one batch, KIP-74); the debt is paid by waiting longer before the next one.
    pub fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }

    /// Where the next fetch starts in its list of partitions: a little further each time, so
    /// under a tight limit the partitions at the end of a request are not starved by those
    /// at the front (a fetch fills partitions in request order).
    pub fn next_turn(&mut self) -> usize {
        self.turn = self.turn.wrapping_add(1);
        self.turn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_one_second_and_then_a_tenth_at_a_time() {
        let t0 = Instant::now();
        let mut t = Throttle::new(10_000, t0);
        assert_eq!(t.allowance(t0), Ok(10_000));
        t.spend(10_000);
        // Empty: wait for a tenth of a second's worth.
        let wait = t.allowance(t0).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert_eq!(t.allowance(t0 + Duration::from_millis(100)), Ok(1_000));
        // Idle for a minute: still one second's worth, no more.
        assert_eq!(t.allowance(t0 + Duration::from_secs(60)), Ok(10_000));
    }

    #[test]
    fn an_overshoot_is_paid_back_by_waiting() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1_000, t0);
        t.spend(3_000);
        // 2,000 bytes of debt plus a tenth of a second's worth: 2.1 s.
        let wait = t.allowance(t0).expect_err("in debt");
        assert!((wait.as_secs_f64() - 2.1).abs() < 1e-6, "{wait:?}");
        assert!(t.allowance(t0 + Duration::from_millis(2_100)).is_ok());
    }

    #[test]
    fn over_time_the_rate_holds() {
        // Fetches of up to 4 KB (one batch over the allowance at most) for ten seconds.
        let t0 = Instant::now();
        let mut t = Throttle::new(50_000, t0);
        let (mut now, mut fetched) = (t0, 0usize);
        while now < t0 + Duration::from_secs(10) {
            match t.allowance(now) {
                Ok(allowed) => {
                    let got = allowed as usize + 4_000;
                    t.spend(got);
                    fetched += got;
                }
                Err(wait) => now += wait,
            }
        }
        // One second's worth to start with, then 50 KB/s, give or take one fetch.
        assert!((fetched as f64 - 550_000.0).abs() < 60_000.0, "{fetched}");
    }
}
