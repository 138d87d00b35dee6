//! What operators decided about a flow, shared by every worker of it: paused or not, and
//! where it stands in a failover.
//!
//! The latest decision per flow is one JSON record keyed by the flow's name in the compacted
//! topic [`CONTROL_TOPIC`] on the flow's *target* cluster, the side that stays reachable when
//! the source region is lost. Every worker reads it every [`POLL_INTERVAL`] and replicates
//! only while the flow is [`Control::replicating`]; pausing from any worker's dashboard, or
//! from `tern failover`, therefore stops all of them.
//!
//! ```
//! use tern_mirror::control::{Control, FailoverState};
//! let c = Control { paused: true, ..Control::default() };
//! assert!(!c.replicating());
//! assert_eq!(FailoverState::FailedOver.to_string(), "failed-over");
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tern_kafka::client::Client;

use crate::error::{Error, Result};
use crate::offset_map::store;

pub const CONTROL_TOPIC: &str = "tern-control.internal";

/// How often workers look for a new decision.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub use crate::states::FailoverState;

/// The operators' latest decision about one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Control {
    pub paused: bool,
    pub state: FailoverState,
    /// When the decision was written (ms since the epoch); 0 for a flow never touched.
    pub updated_at_ms: i64,
    /// Who or what made it and why, e.g. "dashboard: pause" or "tern failover --planned".
    pub reason: String,
    /// The decision's place in the flow's history: each [`update`] writes the epoch after the
    /// one it read, and of two decisions the higher epoch stands, whatever the writers' clocks
    /// say (of two with the same epoch, the first written; 0 for records that predate epochs,
    /// which follow log order).
    pub epoch: u64,
}

impl Control {
    /// Whether the flow's workers should be copying records: while active, and while a
    /// planned failover drains the flow.
    pub fn replicating(&self) -> bool {
        !self.paused && matches!(self.state, FailoverState::Active | FailoverState::FailingOver)
    }

    /// Whether clients are (or are being moved) on the target: the flow's workers then leave
    /// their group on the source, so that `tern failback` can set where they resume.
    pub fn failed_over(&self) -> bool {
        matches!(self.state, FailoverState::FailedOver | FailoverState::FailingBack)
    }
}

/// Every flow's latest decision recorded on a cluster. Records that do not parse are skipped
/// with a warning, so one bad record cannot stop every flow.
pub async fn read_all(client: &Client, cluster: &str) -> Result<BTreeMap<String, Control>> {
    let mut follower = Follower::default();
    follower.poll(client, cluster).await?;
    Ok(follower.decisions)
}

/// Follows the control topic of one cluster for a worker that asks every second: the topic is
/// read again only when it grew.
///
/// A topic that was read and is then gone (deleted by hand, a cluster restored without it) is
/// an error, not "no decisions": the decisions read before stay in force, so a flow failed over
/// does not start copying again. When the topic is back, what it says applies, whatever the
/// epochs (a topic created anew counts them from 1 again): [`Follower::generation`] tells.
#[derive(Debug, Default)]
pub struct Follower {
    /// The topic's end when it was last read; `None` before that, or while it does not exist.
    end: Option<i64>,
    decisions: BTreeMap<String, Control>,
    /// The topic was read and then found gone.
    gone: bool,
    generation: u64,
}

impl Follower {
    /// The latest decision about `flow` (the default, active and running, if there is none).
    pub fn decision(&self, flow: &str) -> Control {
        self.decisions.get(flow).cloned().unwrap_or_default()
    }

    /// Brings the decisions up to date with the topic.
    pub async fn poll(&mut self, client: &Client, cluster: &str) -> Result<()> {
        let md = client.refresh_metadata(Some(&[CONTROL_TOPIC.to_string()])).await.map_err(|e| Error::cluster(cluster, e))?;
        if !md.topics.contains_key(CONTROL_TOPIC) {
            if self.end.is_some() || self.gone {
                self.gone = true;
                return Err(Error::State(format!("{CONTROL_TOPIC} on {cluster} was read before and is gone (deleted?)")));
            }
            self.decisions = BTreeMap::new();
            return Ok(());
        }
        let (end, _) = client.list_offset(CONTROL_TOPIC, 0, tern_kafka::client::LATEST).await.map_err(|e| Error::cluster(cluster, e))?;
        if self.end == Some(end) && !self.gone {
            return Ok(());
        }
        let mut decisions = BTreeMap::new();
        for r in client.read_all(CONTROL_TOPIC, 0).await.map_err(|e| Error::cluster(cluster, e))? {
            let Some(key) = r.key.and_then(|k| String::from_utf8(k.to_vec()).ok()) else { continue };
            match r.value {
                None => {
                    decisions.remove(&key);
                }
                Some(v) => match serde_json::from_slice::<Control>(&v) {
                    Ok(c) => {
                        if decisions.get(&key).is_none_or(|current| supersedes(&c, current)) {
                            decisions.insert(key, c);
                        }
                    }
                    Err(e) => tracing::warn!(topic = CONTROL_TOPIC, flow = %key, "ignoring an unreadable control record: {e}"),
                },
            }
        }
        if std::mem::take(&mut self.gone) {
            self.generation += 1;
        }
        (self.end, self.decisions) = (Some(end), decisions);
        Ok(())
    }

    /// Whether the topic holds a decision about `flow`.
    pub fn has_decision(&self, flow: &str) -> bool {
        self.decisions.contains_key(flow)
    }

    /// How many times the topic was found again after it was gone: the decisions of a new
    /// generation replace the old ones even with lower epochs.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Whether `next`, read after `current` in the topic, replaces it: a higher epoch does; of the
/// same epoch the first written stays (a writer that lost the race retries on top of it);
/// records without epochs follow log order.
pub fn supersedes(next: &Control, current: &Control) -> bool {
    next.epoch > current.epoch || (next.epoch == 0 && current.epoch == 0)
}

/// The first decision about `flow` written with `epoch`: the one that stands for it.
async fn epoch_winner(client: &Client, cluster: &str, flow: &str, epoch: u64) -> Result<Option<Control>> {
    let records = client.read_all(CONTROL_TOPIC, 0).await.map_err(|e| Error::cluster(cluster, e))?;
    Ok(records
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(flow.as_bytes()))
        .filter_map(|r| serde_json::from_slice::<Control>(r.value.as_deref()?).ok())
        .find(|c| c.epoch == epoch))
}

/// The latest decision about `flow` (the default, active and running, if there is none).
pub async fn read(client: &Client, cluster: &str, flow: &str) -> Result<Control> {
    Ok(read_all(client, cluster).await?.remove(flow).unwrap_or_default())
}

/// Records a decision durably (acks=all) on the flow's target cluster.
pub async fn write(client: &Client, cluster: &str, flow: &str, control: &Control) -> Result<()> {
    store::ensure_compacted(client, cluster, CONTROL_TOPIC).await?;
    let value = serde_json::to_vec(control).map_err(|e| Error::Local(format!("encoding the control record: {e}")))?;
    let records = store::encode_records(&[(Bytes::from(flow.to_string()), Some(Bytes::from(value)))], crate::clock::now_ms())?;
    client.produce(CONTROL_TOPIC, 0, records, -1, 30_000).await.map_err(|e| Error::cluster(cluster, e))?;
    Ok(())
}

/// Compare-and-set on the flow's decision: reads it, applies `change`, writes it with the next
/// epoch, and reads the topic again. Another writer that took the same epoch first wins; the
/// change is then applied again on top of what it wrote. So concurrent updates (a dashboard
/// resume racing `tern failover`) each take effect once, in some order: none is lost. Returns the
/// decision as written.
pub async fn update(client: &Client, cluster: &str, flow: &str, reason: &str, change: impl Fn(&mut Control)) -> Result<Control> {
    const ATTEMPTS: u32 = 20;
    for attempt in 1..=ATTEMPTS {
        let current = read(client, cluster, flow).await?;
        let mut c = current.clone();
        change(&mut c);
        c.epoch = current.epoch + 1;
        c.updated_at_ms = crate::clock::now_ms();
        c.reason = reason.to_string();
        write(client, cluster, flow, &c).await?;
        // The write stands if it is the first of its epoch (a later epoch may already be
        // built on top of it).
        let first = epoch_winner(client, cluster, flow, c.epoch).await?;
        if first.as_ref() == Some(&c) {
            return Ok(c);
        }
        tracing::debug!(flow, attempt, "another decision took epoch {} first; applying this one on top of it", c.epoch);
        // Apart, so that racing writers do not keep colliding.
        tokio::time::sleep(Duration::from_millis(u64::from(attempt) * (5 + (crate::clock::now_ms() as u64 % 20)))).await;
    }
    Err(Error::Conflict(format!("the decision about {flow} on {cluster} kept changing under this update ({ATTEMPTS} attempts); nothing was changed by it")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_stable_json_and_tolerate_missing_fields() {
        let c = Control { paused: true, state: FailoverState::FailingBack, updated_at_ms: 5, reason: "x".into(), epoch: 3 };
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(json, r#"{"paused":true,"state":"failing-back","updated_at_ms":5,"reason":"x","epoch":3}"#);
        let partial: Control = serde_json::from_str(r#"{"state":"failed-over"}"#).expect("parse");
        assert_eq!(partial.state, FailoverState::FailedOver);
        assert!(!partial.paused && !partial.replicating());
        assert!(Control::default().replicating());
        let draining = Control { state: FailoverState::FailingOver, ..Control::default() };
        assert!(draining.replicating() && !draining.failed_over(), "a planned failover drains the flow");
    }
}
