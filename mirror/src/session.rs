//! A worker's session in its flow's group on the source, and the fence on its producers.
//!
//! Heartbeats run in a task of their own, so nothing in the data path (a produce waiting on a
//! slow target, the drain at a rebalance) can starve them. The group hands a member's
//! partitions to another once its session expires; the worker stops producing them before
//! that can happen: when the coordinator ends its membership, or when no heartbeat has been
//! answered for [`fence_after`] of the session timeout. A leaf module: it knows nothing of
//! the replication loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_kafka::client::{HeartbeatOutcome, Heartbeater};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One worker's membership of one flow's group, generation after generation.
#[derive(Default)]
pub struct Session {
    /// The group asked its members to rejoin, or this member is out of it.
    rejoin: AtomicBool,
    /// Why producing for the current partitions stopped being safe, once it did.
    fenced: Mutex<Option<String>>,
    /// Set while the partitions are given up: no new produce request goes out.
    stopping: AtomicBool,
    heartbeats: Mutex<Option<JoinHandle<()>>>,
}

/// How long after the last answered heartbeat a worker stops producing: before the session
/// timeout, by two heartbeat intervals or a fifth of the timeout, whichever is more, so that
/// its last requests land before the coordinator may give its partitions to another member.
pub fn fence_after(session_timeout: Duration, heartbeat_interval: Duration) -> Duration {
    session_timeout.saturating_sub((heartbeat_interval * 2).max(session_timeout / 5)).max(heartbeat_interval)
}

impl Session {
    /// Starts heartbeating a generation just joined (the previous generation's heartbeats
    /// stop) and lets the producers go.
    pub fn begin(self: &Arc<Self>, heartbeater: Option<Heartbeater>, interval: Duration, session_timeout: Duration, flow: String) {
        self.end();
        self.rejoin.store(false, Ordering::SeqCst);
        self.stopping.store(false, Ordering::SeqCst);
        *self.fenced.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let Some(heartbeater) = heartbeater else {
            self.fence("no coordinator to heartbeat".into());
            return;
        };
        let session = self.clone();
        let task = tokio::spawn(async move { session.keep_alive(heartbeater, interval, session_timeout, flow).await });
        *self.heartbeats.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Stops the heartbeats: before a rejoin (the generation ends) or leaving the group.
    pub fn end(&self) {
        if let Some(task) = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    /// Whether the worker must give up its partitions and rejoin.
    pub fn rejoin_asked(&self) -> bool {
        self.rejoin.load(Ordering::SeqCst)
    }

    /// Asks the replication loop to give the partitions up and rejoin: a partition producer
    /// that can go on only from where the target says it stopped.
    pub fn ask_rejoin(&self) {
        self.rejoin.store(true, Ordering::SeqCst);
    }

    /// Why the worker may no longer produce its partitions, if it may not.
    pub fn fenced(&self) -> Option<String> {
        self.fenced.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// No new produce request for the current partitions; those in flight are still awaited.
    pub fn stop_producing(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether a partition producer may send another request.
    pub fn may_produce(&self) -> bool {
        !self.stopping.load(Ordering::SeqCst) && self.fenced.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn fence(&self, why: String) {
        self.stopping.store(true, Ordering::SeqCst);
        self.fenced.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(why);
        self.rejoin.store(true, Ordering::SeqCst);
    }

    async fn keep_alive(&self, heartbeater: Heartbeater, interval: Duration, session_timeout: Duration, flow: String) {
        let fence_after = fence_after(session_timeout, interval);
        let silent = || format!("no heartbeat answered for {:.1} s of the {:.1} s session timeout", fence_after.as_secs_f64(), session_timeout.as_secs_f64());
        // The join's answer just renewed the session.
        let mut answered = Instant::now();
        loop {
            let sent = Instant::now();
            let deadline = answered + fence_after;
            match tokio::time::timeout_at(deadline, heartbeater.beat()).await {
                Ok(Ok(HeartbeatOutcome::Stable)) => answered = sent,
                Ok(Ok(HeartbeatOutcome::Rejoin)) => {
                    // Still a member until the rebalance timeout: heartbeats go on while the
                    // partitions are given up.
                    answered = sent;
                    self.rejoin.store(true, Ordering::SeqCst);
                }
                Ok(Ok(HeartbeatOutcome::Gone)) => {
                    self.fence("the group ended this worker's membership (its session expired or the group went on without it)".into());
                    return;
                }
                Ok(Err(e)) => tracing::warn!(flow = %flow, "group heartbeat: {e}"),
                Err(_) => {
                    self.fence(silent());
                    return;
                }
            }
            if Instant::now() >= answered + fence_after {
                self.fence(silent());
                return;
            }
            tokio::time::sleep_until((sent + interval).min(answered + fence_after)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_stop_well_before_the_session_expires() {
        let s = Duration::from_secs;
        assert_eq!(fence_after(s(10), s(1)), s(8));
        assert_eq!(fence_after(s(45), s(3)), s(36));
        assert_eq!(fence_after(Duration::from_millis(3000), s(1)), s(1));
    }
}
