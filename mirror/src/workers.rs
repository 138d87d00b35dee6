//! The flows of one `tern run`, changed while they run: a new configuration starts the flows
//! it adds, stops the ones it removes, restarts the ones whose settings changed (the flow, one
//! of its clusters, or `[mirror]`), and leaves every other flow alone: its partitions stay
//! assigned and its positions keep moving.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Flow, Validated};
use crate::status::FlowStatus;
use crate::{flow, Result, Statuses};

/// How long a stopping flow may take to leave its group before it is abandoned.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

struct Running {
    /// Everything the flow's behaviour depends on, to tell a changed flow from the same one.
    fingerprint: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
    status: Arc<FlowStatus>,
}

/// What applying a configuration did, by flow name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
    pub unchanged: Vec<String>,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        write!(f, "started {}; stopped {}; restarted {}; unchanged {}", list(&self.started), list(&self.stopped), list(&self.restarted), list(&self.unchanged))
    }
}

/// The running flows and their status, shared with the dashboard.
pub struct Workers {
    running: BTreeMap<String, Running>,
    statuses: Arc<Mutex<Statuses>>,
}

fn fingerprint(flow: &Flow, v: &Validated) -> String {
    // Debug output covers every field (regexes by pattern, secrets by reference only); it is
    // compared, never shown.
    format!("{flow:?}|{:?}|{:?}|{:?}", v.config.clusters.get(&flow.source), v.config.clusters.get(&flow.target), v.config.mirror)
}

impl Workers {
    /// Starts every flow of `v`.
    pub async fn start(v: &Validated) -> Workers {
        let mut w = Workers { running: BTreeMap::new(), statuses: Arc::default() };
        w.apply(v).await;
        w
    }

    /// The flows' status by name, as the dashboard and metrics read it (flows come and go).
    pub fn statuses(&self) -> Arc<Mutex<Statuses>> {
        self.statuses.clone()
    }

    /// Brings the running flows in line with `v`. A changed flow is stopped (it leaves its
    /// group) before its new version starts, so the two never replicate side by side.
    pub async fn apply(&mut self, v: &Validated) -> Applied {
        let mut applied = Applied::default();
        let wanted: BTreeMap<String, (&Flow, String)> = v.flows.iter().map(|f| (f.name(), (f, fingerprint(f, v)))).collect();
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            match wanted.get(&name) {
                Some((_, fp)) if self.running[&name].fingerprint == *fp => applied.unchanged.push(name),
                Some(_) => {
                    self.stop(&name).await;
                    applied.restarted.push(name);
                }
                None => {
                    self.stop(&name).await;
                    self.statuses.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
                    applied.stopped.push(name);
                }
            }
        }
        // Flows that stopped by themselves and are no longer configured leave the dashboard.
        self.statuses.lock().unwrap_or_else(|p| p.into_inner()).retain(|name, _| wanted.contains_key(name));
        let clusters = Arc::new(v.config.clusters.clone());
        for (name, (f, fp)) in wanted {
            if self.running.contains_key(&name) {
                continue;
            }
            let status = Arc::new(FlowStatus::new(name.clone()));
            self.statuses.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), status.clone());
            let (stop, rx) = watch::channel(false);
            let (f, clusters, settings) = (f.clone(), clusters.clone(), v.config.mirror.clone());
            let task = {
                let status = status.clone();
                tokio::spawn(async move { flow::run(f, &clusters, settings, status, rx).await })
            };
            self.running.insert(name.clone(), Running { fingerprint: fp, stop, task, status });
            if !applied.restarted.contains(&name) {
                applied.started.push(name);
            }
        }
        applied
    }

    async fn stop(&mut self, name: &str) {
        let Some(r) = self.running.remove(name) else { return };
        let _ = r.stop.send(true);
        let abort = r.task.abort_handle();
        match tokio::time::timeout(STOP_TIMEOUT, r.task).await {
            Ok(Ok(Err(e))) => tracing::warn!(flow = %name, "flow ended with: {e}"),
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(flow = %name, "flow did not stop within {STOP_TIMEOUT:?}; abandoned");
                abort.abort();
            }
        }
    }

    /// A flow that ended by itself (an error it could not ride out, a panic), with how it
    /// ended; waits until there is one. A flow that failed keeps its status, marked stopped
    /// with the reason, so the dashboard, `/metrics` and `/readyz` show it; a reloaded
    /// configuration that still has the flow starts it again.
    pub async fn ended(&mut self) -> (String, Result<()>) {
        loop {
            if let Some(name) = self.running.iter().find(|(_, r)| r.task.is_finished()).map(|(n, _)| n.clone()) {
                let Some(r) = self.running.remove(&name) else { continue };
                let result = match r.task.await {
                    Ok(result) => result,
                    Err(e) if e.is_panic() => {
                        let payload = e.into_panic();
                        let message = payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                        Err(crate::Error::Crashed(format!("the flow panicked: {message}")))
                    }
                    Err(e) => Err(crate::Error::Crashed(format!("the flow's task failed: {e}"))),
                };
                if let Err(e) = &result {
                    r.status.set_stopped(e.to_string());
                }
                return (name, result);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every flow.
    pub async fn stop_all(mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for r in self.running.values() {
            let _ = r.stop.send(true);
        }
        for name in names {
            self.stop(&name).await;
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }
}
