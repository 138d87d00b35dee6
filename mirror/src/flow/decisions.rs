//! The operators' decisions about the flow (pause, failover), followed from the control topic.

use std::sync::Arc;

use tokio::sync::watch;

use crate::clock::wait_or_shutdown;
use crate::error::{Error, Result};

use super::runtime::*;

/// Follows the operators' decisions about this flow (see [`crate::control`]). When the
/// target cannot be read, the last decision stays in force.
pub(super) async fn control_watcher(rt: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let mut follower = crate::control::Follower::default();
    let mut generation = 0;
    loop {
        let polled = match follower.poll(&rt.target, &rt.flow.target).await {
            Ok(()) if !follower.has_decision(&rt.flow.name()) && (!rt.status.control_read() || follower.generation() != generation) => no_decision(&rt).await,
            other => other,
        };
        match polled.map(|()| follower.decision(&rt.flow.name())) {
            // A read that started before a newer decision was applied here (the dashboard
            // sets it at once) must not undo it: epochs order decisions, not clocks. A control
            // topic created anew counts epochs from the start again.
            Ok(c) if rt.status.control_read() && c.epoch < rt.status.control().epoch && follower.generation() == generation => rt.status.set_control_error(None),
            Ok(c) => {
                let before = rt.status.control();
                if c != before {
                    tracing::info!(flow = %rt.flow.name(), paused = c.paused, state = %c.state, reason = %c.reason, "flow control changed");
                }
                generation = follower.generation();
                rt.status.set_control(c);
                rt.status.set_control_error(None);
            }
            Err(e) => {
                let e = if rt.status.control_read() {
                    format!("cannot read the flow's decisions on {}: {e}; the last one read stays in force", rt.flow.target)
                } else {
                    format!("cannot read the flow's decisions on {}: {e}; replicating nothing until they are read", rt.flow.target)
                };
                if rt.status.snapshot().control_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(flow = %rt.flow.name(), "{e}");
                }
                rt.status.set_control_error(Some(e));
            }
        }
        if wait_or_shutdown(&mut shutdown, crate::control::POLL_INTERVAL).await {
            return;
        }
    }
}

/// The control topic holds no decision about the flow (it never had one, or the topic was
/// deleted or emptied): a flow that never had one is active; but a flow with a failover point
/// on the target has been failed over, so its decisions were lost, and it copies nothing
/// until one is written again.
pub(super) async fn no_decision(rt: &Runtime) -> Result<()> {
    match crate::failover::read_state(&rt.flow, &rt.target).await? {
        (_, Some(point)) => Err(Error::State(format!(
            "{} holds no decision about the flow, but the flow has a failover point ({} failover at {} ms): its decisions were lost; write one (resume from the dashboard or the API) to replicate again",
            crate::control::CONTROL_TOPIC,
            point.mode,
            point.at_ms
        ))),
        (_, None) => Ok(()),
    }
}
