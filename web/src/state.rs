//! What the web side knows: the configured topology, the flows' live status, the lag history,
//! and what the clusters themselves report (reachability, brokers, topic configs), polled in
//! the background so that no page ever waits on a remote cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_kafka::client::Client;
use tern_mirror::config::{ClusterConfig, Flow, Validated};
use tern_mirror::status::FlowStatus;

use crate::auth::Auth;
use crate::history::History;

/// Clusters and flows as configured.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub clusters: BTreeMap<String, ClusterInfo>,
    pub flows: Vec<Flow>,
    /// Where drill reports are kept (the configuration's state directory); no history without.
    pub state_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub region: Option<String>,
    pub cloud: Option<String>,
    /// How to reach it (never shown: it may carry credentials).
    config: Arc<ClusterConfig>,
}

impl ClusterInfo {
    /// How to reach the cluster, for the server's own connections (drills). Never rendered.
    pub(crate) fn config(&self) -> &ClusterConfig {
        &self.config
    }
}

impl Topology {
    pub fn from_validated(v: &Validated) -> Topology {
        let clusters = v
            .config
            .clusters
            .iter()
            .map(|(name, c)| (name.clone(), ClusterInfo { region: c.region.clone(), cloud: c.cloud.clone(), config: Arc::new(c.clone()) }))
            .collect();
        Topology { clusters, flows: v.flows.clone(), state_dir: None }
    }

    pub fn with_state_dir(mut self, dir: std::path::PathBuf) -> Topology {
        self.state_dir = Some(dir);
        self
    }

    pub fn flow(&self, name: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.name() == name)
    }
}

/// What a cluster reported at the last poll.
#[derive(Debug, Clone, Default)]
pub struct ClusterHealth {
    /// `None` before the first poll finished.
    pub reachable: Option<bool>,
    pub brokers: usize,
    pub error: Option<String>,
    /// Partition count of every topic.
    pub partitions: BTreeMap<String, usize>,
    /// Topic-level config overrides of the topics the flows care about.
    pub configs: BTreeMap<String, BTreeMap<String, String>>,
    pub polled_at_ms: i64,
}

/// A flow's progress as the source cluster tells it, for every partition whichever worker owns
/// it: the position the flow's group committed, and the partition's end.
#[derive(Debug, Clone, Default)]
pub struct FlowProgress {
    pub committed: BTreeMap<(String, i32), i64>,
    pub ends: BTreeMap<(String, i32), i64>,
    pub polled_at_ms: i64,
}

/// Which configuration is running, and what became of the last attempt to load another.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConfigInfo {
    /// The configuration file, when there is one (not served: a path says more than needed).
    #[serde(skip)]
    pub path: Option<String>,
    /// When the running configuration was loaded (ms).
    pub loaded_at_ms: i64,
    /// What the last load or reload did (flows started, stopped, restarted).
    pub summary: String,
    /// Why the newest version of the file was refused; the running configuration was kept.
    pub error: Option<String>,
    pub error_at_ms: Option<i64>,
}

pub(crate) struct Inner {
    topology: Mutex<Arc<Topology>>,
    statuses: Arc<Mutex<BTreeMap<String, Arc<FlowStatus>>>>,
    pub config: Mutex<ConfigInfo>,
    pub registry: prometheus::Registry,
    pub history: Mutex<History>,
    /// Every flow's history as kept on its target cluster.
    pub stored: Mutex<crate::stored::Stored>,
    pub resolutions: Mutex<crate::stored::Resolutions>,
    pub health: Mutex<BTreeMap<String, ClusterHealth>>,
    pub progress: Mutex<BTreeMap<String, FlowProgress>>,
    clients: Mutex<BTreeMap<String, Arc<Client>>>,
    /// Every address the clusters' errors may name: the configured bootstrap addresses and the
    /// brokers the polls found. Errors are shown to anyone who can read the dashboard;
    /// addresses are not (see [`AppState::redact`]).
    addresses: Mutex<BTreeSet<String>>,
    pub auth: Auth,
    pub drills: crate::drills::Runs,
}

/// The background tasks of [`AppState::spawn_pollers`]; they keep running when this is
/// dropped.
pub struct Pollers(Vec<tokio::task::AbortHandle>);

impl Pollers {
    pub fn stop(&self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

/// How often lag is sampled and clusters are polled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// How long one cluster poll may take before the cluster counts as unreachable.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

impl AppState {
    /// `token` enables the mutating endpoints (pause, resume); without it the service is
    /// read-only.
    pub fn new(topology: Topology, statuses: BTreeMap<String, Arc<FlowStatus>>, token: Option<String>) -> AppState {
        AppState::with_shared_statuses(topology, Arc::new(Mutex::new(statuses)), token)
    }

    /// Like [`AppState::new`], over a status map that the running flows change as flows are
    /// added and removed (`tern run` with live configuration).
    pub fn with_shared_statuses(topology: Topology, statuses: Arc<Mutex<BTreeMap<String, Arc<FlowStatus>>>>, token: Option<String>) -> AppState {
        let registry = prometheus::Registry::new();
        if let Err(e) = registry.register(Box::new(crate::metrics::FlowCollector::new(statuses.clone()))) {
            tracing::error!("registering flow metrics: {e}");
        }
        let addresses = bootstrap_addresses(&topology);
        AppState(Arc::new(Inner {
            topology: Mutex::new(Arc::new(topology)),
            statuses,
            config: Mutex::default(),
            registry,
            history: Mutex::default(),
            stored: Mutex::default(),
            resolutions: Mutex::default(),
            health: Mutex::default(),
            progress: Mutex::default(),
            clients: Mutex::default(),
            addresses: Mutex::new(addresses),
            auth: Auth::new(token),
            drills: Default::default(),
        }))
    }

    /// Starts the background work: lag sampling and cluster polling every 2 s, the stored
    /// history every 10 s. Runs until the runtime shuts down or [`Pollers::stop`].
    pub fn spawn_pollers(&self) -> Pollers {
        self.spawn_pollers_every(SAMPLE_INTERVAL)
    }

    /// [`AppState::spawn_pollers`] at another pace (tests sample faster).
    pub fn spawn_pollers_every(&self, interval: Duration) -> Pollers {
        let mut tasks = Vec::new();
        let state = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                state.sample();
            }
        }));
        let state = self.clone();
        // The stored history is written and read back every five samples (10 s by default).
        let every = (interval * 5).max(Duration::from_secs(1));
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                state.sync_history().await;
            }
        }));
        let state = self.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                state.poll_clusters().await;
                tokio::time::sleep(interval.max(Duration::from_secs(2))).await;
            }
        }));
        Pollers(tasks.iter().map(|t| t.abort_handle()).collect())
    }

    /// Takes one history sample of every flow.
    pub fn sample(&self) {
        self.record_history(crate::metrics::now_ms());
    }

    /// The configured clusters and flows (replaced when the configuration is reloaded).
    pub fn topology(&self) -> Arc<Topology> {
        self.0.topology.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One flow's status, if it runs here.
    pub fn status(&self, flow: &str) -> Option<Arc<FlowStatus>> {
        self.0.statuses.lock().unwrap_or_else(|p| p.into_inner()).get(flow).cloned()
    }

    /// Every running flow's status.
    pub fn statuses(&self) -> BTreeMap<String, Arc<FlowStatus>> {
        self.0.statuses.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A reloaded configuration's clusters and flows; connections are made afresh.
    pub fn set_topology(&self, topology: Topology) {
        self.0.addresses.lock().unwrap_or_else(|p| p.into_inner()).extend(bootstrap_addresses(&topology));
        *self.0.topology.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(topology);
        self.0.clients.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Records that a configuration was loaded: `summary` says what changed.
    pub fn config_loaded(&self, path: Option<String>, summary: String) {
        let mut c = self.0.config.lock().unwrap_or_else(|p| p.into_inner());
        *c = ConfigInfo { path, loaded_at_ms: crate::metrics::now_ms(), summary, error: None, error_at_ms: None };
    }

    /// Records that a new version of the configuration was refused.
    pub fn config_refused(&self, error: String) {
        let mut c = self.0.config.lock().unwrap_or_else(|p| p.into_inner());
        c.error = Some(error);
        c.error_at_ms = Some(crate::metrics::now_ms());
    }

    pub fn config_info(&self) -> ConfigInfo {
        self.0.config.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Session cookies carry `Secure` (`[web] secure_cookies`).
    pub fn set_secure_cookies(&self, on: bool) {
        self.0.auth.set_secure_cookies(on);
    }

    /// Bucket widths of the stored history (tests use short ones).
    pub fn set_history_resolutions(&self, r: crate::stored::Resolutions) {
        *self.0.resolutions.lock().unwrap_or_else(|p| p.into_inner()) = r;
    }

    /// Writes each flow's newest sample to the history topic on its target and reads back what
    /// every worker wrote. An unreachable target only delays its own flows' history.
    pub async fn sync_history(&self) {
        let now = crate::metrics::now_ms();
        let res = *self.0.resolutions.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_target: BTreeMap<String, Vec<(String, crate::history::Sample)>> = BTreeMap::new();
        {
            let history = self.0.history.lock().unwrap_or_else(|p| p.into_inner());
            for f in &self.topology().flows {
                let latest = history.flows.get(&f.name()).and_then(|s| s.samples().last().copied());
                let entry = by_target.entry(f.target.clone()).or_default();
                if let Some(sample) = latest {
                    entry.push((f.name(), sample));
                }
            }
        }
        for (cluster, latest) in by_target {
            let client = match self.client(&cluster).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(cluster, "history: {e}");
                    continue;
                }
            };
            let synced = tokio::time::timeout(POLL_TIMEOUT, crate::stored::sync(&self.0.stored, &cluster, &client, &latest, &res, now)).await;
            match synced {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(cluster, "history on {cluster}: {e}"),
                Err(_) => tracing::debug!(cluster, "history on {cluster}: no answer in time"),
            }
        }
    }

    /// `message` with every known cluster address replaced by `<address>`: errors name the
    /// broker that failed, and they are shown without a login.
    pub(crate) fn redact(&self, message: &str) -> String {
        redact(message, &self.0.addresses.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A connected client for a configured cluster (connections are kept).
    pub(crate) async fn client(&self, cluster: &str) -> Result<Arc<Client>, String> {
        let topology = self.topology();
        let info = topology.clusters.get(cluster).ok_or_else(|| format!("unknown cluster {cluster}"))?;
        if let Some(c) = self.0.clients.lock().unwrap_or_else(|p| p.into_inner()).get(cluster) {
            return Ok(c.clone());
        }
        // Connect without holding the map: an unreachable cluster must not hold up the others.
        let c = tokio::time::timeout(POLL_TIMEOUT, tern_mirror::cluster::connect(cluster, &info.config))
            .await
            .map_err(|_| format!("cluster {cluster}: no answer within {} s", POLL_TIMEOUT.as_secs()))?
            .map_err(|e| e.to_string())?;
        let c = Arc::new(c);
        Ok(self.0.clients.lock().unwrap_or_else(|p| p.into_inner()).entry(cluster.to_string()).or_insert(c).clone())
    }

    /// Polls every cluster at once: brokers, topics and the configs of replicated topics.
    pub async fn poll_clusters(&self) {
        let mut polls = tokio::task::JoinSet::new();
        for name in self.topology().clusters.keys().cloned() {
            let state = self.clone();
            polls.spawn(async move {
                let result = tokio::time::timeout(POLL_TIMEOUT, state.poll_cluster(&name)).await;
                (name, result)
            });
        }
        while let Some(joined) = polls.join_next().await {
            let Ok((name, result)) = joined else { continue };
            let health = match result {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => ClusterHealth { reachable: Some(false), error: Some(self.redact(&e)), polled_at_ms: crate::metrics::now_ms(), ..Default::default() },
                Err(_) => ClusterHealth {
                    reachable: Some(false),
                    error: Some(format!("no answer within {} s", POLL_TIMEOUT.as_secs())),
                    polled_at_ms: crate::metrics::now_ms(),
                    ..Default::default()
                },
            };
            if health.reachable == Some(false) {
                // Reconnect from scratch next time: the brokers may have moved.
                self.0.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
            }
            self.0.health.lock().unwrap_or_else(|p| p.into_inner()).insert(name, health);
        }
        for flow in &self.topology().flows {
            match tokio::time::timeout(POLL_TIMEOUT, self.poll_flow(flow)).await {
                Ok(Ok(p)) => {
                    self.0.progress.lock().unwrap_or_else(|p| p.into_inner()).insert(flow.name(), p);
                }
                Ok(Err(e)) => tracing::debug!(flow = %flow.name(), "polling the flow's progress: {e}"),
                Err(_) => tracing::debug!(flow = %flow.name(), "polling the flow's progress: no answer in time"),
            }
        }
    }

    /// The flow group's committed positions and the source ends of every replicated partition:
    /// what the other workers of the flow have done, so every worker's dashboard shows the
    /// whole flow.
    async fn poll_flow(&self, flow: &Flow) -> Result<FlowProgress, String> {
        let partitions: Vec<(String, i32)> = {
            let health = self.0.health.lock().unwrap_or_else(|p| p.into_inner());
            let Some(h) = health.get(&flow.source).filter(|h| h.reachable == Some(true)) else { return Err(format!("cluster {} not reachable", flow.source)) };
            h.partitions.iter().filter(|(t, _)| tern_mirror::naming::replicates(flow, t)).flat_map(|(t, n)| (0..*n as i32).map(move |p| (t.clone(), p))).collect()
        };
        if partitions.is_empty() {
            return Ok(FlowProgress { polled_at_ms: crate::metrics::now_ms(), ..Default::default() });
        }
        let client = self.client(&flow.source).await?;
        let committed = client.committed_offsets(&tern_mirror::names::group_id(flow), &partitions).await.map_err(|e| e.to_string())?;
        let ends = client.list_offsets(&partitions, tern_kafka::client::LATEST).await.map_err(|e| e.to_string())?;
        Ok(FlowProgress { committed, ends, polled_at_ms: crate::metrics::now_ms() })
    }

    async fn poll_cluster(&self, name: &str) -> Result<ClusterHealth, String> {
        let client = self.client(name).await?;
        let md = client.refresh_metadata(None).await.map_err(|e| e.to_string())?;
        self.0.addresses.lock().unwrap_or_else(|p| p.into_inner()).extend(md.brokers.values().cloned());
        let partitions: BTreeMap<String, usize> = md.topics.values().map(|t| (t.name.clone(), t.partitions.len())).collect();
        // The topics whose configs the Topics page compares: sources of flows from this
        // cluster and remote topics of flows into it.
        let mut wanted = BTreeSet::new();
        for f in &self.topology().flows {
            for t in md.topics.values().filter(|t| !t.internal) {
                if f.source == name && tern_mirror::naming::replicates(f, &t.name) {
                    wanted.insert(t.name.clone());
                }
            }
        }
        for f in self.topology().flows.iter().filter(|f| f.target == name) {
            let source_topics: Vec<String> = self.0.health.lock().unwrap_or_else(|p| p.into_inner()).get(&f.source).map(|h| h.partitions.keys().cloned().collect()).unwrap_or_default();
            for t in source_topics.iter().filter(|t| tern_mirror::naming::replicates(f, t)) {
                let remote = tern_mirror::naming::remote_topic(f, t);
                if md.topics.contains_key(&remote) {
                    wanted.insert(remote);
                }
            }
        }
        let wanted: Vec<String> = wanted.into_iter().collect();
        let configs = if wanted.is_empty() {
            BTreeMap::new()
        } else {
            client.describe_topic_configs(&wanted).await.map_err(|e| e.to_string())?
        };
        Ok(ClusterHealth { reachable: Some(true), brokers: md.brokers.len(), error: None, partitions, configs, polled_at_ms: crate::metrics::now_ms() })
    }
}

/// The configured bootstrap addresses of every cluster.
fn bootstrap_addresses(topology: &Topology) -> BTreeSet<String> {
    topology.clusters.values().flat_map(|c| c.config.bootstrap.split(',').map(|a| a.trim().to_string())).filter(|a| !a.is_empty()).collect()
}

/// Replaces each of `addresses` in `message` where it stands as a whole address (not inside a
/// longer host name or port).
fn redact(message: &str, addresses: &BTreeSet<String>) -> String {
    let part_of_address = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let mut out = message.to_string();
    // Longest first: an address that is a prefix of another must not cut it in two.
    let mut by_length: Vec<&String> = addresses.iter().collect();
    by_length.sort_by_key(|a| std::cmp::Reverse(a.len()));
    for address in by_length {
        let mut from = 0;
        while let Some(at) = out[from..].find(address.as_str()).map(|i| i + from) {
            let end = at + address.len();
            let whole = !out[..at].ends_with(part_of_address) && !out[end..].starts_with(part_of_address);
            if whole {
                out.replace_range(at..end, "<address>");
                from = at + "<address>".len();
            } else {
                from = end;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_lose_their_addresses() {
        let known: BTreeSet<String> = ["10.0.0.1:9092", "10.0.0.1:90", "kafka-1.internal:9093"].into_iter().map(String::from).collect();
        assert_eq!(
            redact("cluster a: unreachable: 10.0.0.1:9092: connection refused; kafka-1.internal:9093: timed out", &known),
            "cluster a: unreachable: <address>: connection refused; <address>: timed out"
        );
        // Only whole addresses: a longer port or host name is not a known address.
        assert_eq!(redact("210.0.0.1:90 and 10.0.0.1:901", &known), "210.0.0.1:90 and 10.0.0.1:901");
        assert_eq!(redact("10.0.0.1:90", &known), "<address>");
    }
}
