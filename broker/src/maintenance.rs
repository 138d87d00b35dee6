//! Background work on every partition: retention, time-based segment rolls, interval fsync.

use std::sync::Arc;

use crate::apis::now_ms;
use crate::server::BrokerState;

pub async fn run(state: Arc<BrokerState>) {
    let mut tick = tokio::time::interval(state.config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        run_once(&state);
    }
}

/// One pass over every partition. Errors are logged per partition and never stop the pass.
pub fn run_once(state: &BrokerState) {
    let now = now_ms();
    for topic in state.topics.all() {
        for p in &topic.partitions {
            let mut log = p.log();
            if let Err(e) = log.roll_if_due(now) {
                tracing::error!(topic = %topic.name, partition = p.index, "segment roll failed: {e}");
            }
            match log.enforce_retention(now) {
                Ok(0) => {}
                Ok(n) => tracing::info!(topic = %topic.name, partition = p.index, segments = n, log_start_offset = log.log_start_offset(), "retention removed segments"),
                Err(e) => tracing::error!(topic = %topic.name, partition = p.index, "retention failed: {e}"),
            }
            if let Err(e) = log.flush() {
                tracing::error!(topic = %topic.name, partition = p.index, "flush failed: {e}");
            }
        }
    }
}
