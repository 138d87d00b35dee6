//! The one clock of the mirror, and waiting that a shutdown cuts short. Imports nothing of the
//! crate, so any module may use it without pulling in the replication loop.

use std::time::Duration;

use tokio::sync::watch;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Sleeps `d` unless `shutdown` turns true first; returns whether to shut down.
pub async fn wait_or_shutdown(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
