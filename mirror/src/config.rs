//! `tern.toml`: clusters, flows and service settings. Unknown keys are refused, regexes are
//! compiled up front, and every error names the line and the key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub clusters: BTreeMap<String, ClusterConfig>,
    #[serde(default)]
    pub flows: Vec<FlowConfig>,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub mirror: MirrorSettings,
    #[serde(default)]
    pub state: StateConfig,
}

/// Where Tern keeps what it writes locally (drill history).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Relative paths are taken from the config file's directory; by default
    /// [`DEFAULT_STATE_DIR`] beside the config file.
    #[serde(default)]
    pub dir: Option<std::path::PathBuf>,
}

/// The state directory's name beside the config file when `[state] dir` is not set.
pub const DEFAULT_STATE_DIR: &str = "tern-state";

impl Config {
    /// The state directory for a configuration read from `config_path`.
    pub fn state_dir(&self, config_path: &Path) -> std::path::PathBuf {
        let base = config_path.parent().map(Path::to_path_buf).unwrap_or_default();
        match &self.state.dir {
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => base.join(d),
            None => base.join(DEFAULT_STATE_DIR),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Comma-separated `host:port` list.
    pub bootstrap: String,
    /// Shown on the dashboard's topology (e.g. "us-east-1").
    #[serde(default)]
    pub region: Option<String>,
    /// Shown on the dashboard's topology (e.g. "aws").
    #[serde(default)]
    pub cloud: Option<String>,
    /// Kafka's `client.id` on every connection to the cluster (quotas, broker logs); `tern-<name>`
    /// when absent.
    #[serde(default)]
    pub client_id: Option<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; inferred from `tls` and `sasl` when absent
    /// (see [`crate::cluster_security::protocol`]).
    #[serde(default)]
    pub security_protocol: Option<String>,
    #[serde(default)]
    pub tls: Option<crate::cluster_security::TlsConfig>,
    #[serde(default)]
    pub sasl: Option<crate::cluster_security::SaslConfig>,
    /// How many connections a worker fetches over from each of the cluster's brokers when the
    /// cluster is a flow's source: `"auto"` (the default) or 1 to 16.
    #[serde(default)]
    pub fetch_connections: Connections,
    /// How many connections a worker produces over to each of the cluster's brokers when the
    /// cluster is a flow's target: `"auto"` (the default) or 1 to 16.
    #[serde(default)]
    pub produce_connections: Connections,
}

/// Connections per broker for fetching from a source (`fetch_connections`) or producing to a
/// target (`produce_connections`).
///
/// One TCP connection carries at most its window per round trip (a few MiB with Linux's
/// default buffers, 100 KiB from a stock Kafka broker's `socket.send.buffer.bytes`), so a long
/// link needs several, each carrying its own share of the broker's partitions. And a broker
/// (Apache Kafka as well as Tern's) handles one request of a connection at a time: over one
/// connection, a target writes one partition's batch at a time, however many cores it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connections {
    /// One connection per 6.25 ms of round trip to the cluster (rounded), measured when the
    /// flow starts, and never fewer than the direction's least ([`Connections::FETCH_LEAST`],
    /// [`Connections::PRODUCE_LEAST`]): a fetch 1 in a region, 8 at 50 ms, 16 (the most) from
    /// 100 ms. A partition keeps one connection, so a broker leading fewer partitions uses fewer.
    #[default]
    Auto,
    Fixed(usize),
}

impl Connections {
    pub const MAX: usize = 16;
    /// The least "auto" fetches over: one, in a region.
    pub const FETCH_LEAST: usize = 1;
    /// The least "auto" produces over: four, so that a target broker writes up to four of the
    /// worker's partitions at once even in the same region.
    pub const PRODUCE_LEAST: usize = 4;

    /// The number of connections for a link whose round trip is `round_trip`, at least `least`
    /// when "auto".
    pub fn for_round_trip(self, round_trip: std::time::Duration, least: usize) -> usize {
        match self {
            Connections::Fixed(n) => n,
            Connections::Auto => ((round_trip.as_millis().min(1 << 20) as usize * 4 + 12) / 25).clamp(least.clamp(1, Self::MAX), Self::MAX),
        }
    }
}

impl<'de> Deserialize<'de> for Connections {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(i64),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "auto" => Ok(Connections::Auto),
            Raw::Count(n) if (1..=Self::MAX as i64).contains(&n) => Ok(Connections::Fixed(n as usize)),
            Raw::Count(n) => Err(serde::de::Error::custom(format!("{n} connections: between 1 and {}", Self::MAX))),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("{w:?}: \"auto\" or a number of connections from 1 to {}", Self::MAX))),
        }
    }
}

impl ClusterConfig {
    /// The cluster's security settings, for [`crate::cluster_security`].
    pub fn security(&self) -> crate::cluster_security::Settings<'_> {
        crate::cluster_security::Settings { security_protocol: self.security_protocol.as_deref(), tls: self.tls.as_ref(), sasl: self.sasl.as_ref() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// `orders` from `us-east` becomes `us-east.orders` on the target; cycle-safe.
    Prefix,
    /// Same name on both sides; refused where flows would form a cycle.
    Identity,
}

/// How a flow delivers records to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Progress is committed on the source after the target acknowledged: a crash between the
    /// two replicates the uncommitted tail again.
    #[default]
    AtLeastOnce,
    /// Each partition is written by a transactional producer, and the source position travels
    /// in the same transaction: a crash never duplicates a record for `read_committed`
    /// consumers of the target.
    ExactlyOnce,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    pub source: Spanned<String>,
    pub target: Spanned<String>,
    /// Anchored regexes of source topics to replicate.
    pub topics: Vec<Spanned<String>>,
    #[serde(default)]
    pub topics_exclude: Vec<Spanned<String>>,
    /// Anchored regexes of consumer groups whose offsets are translated.
    #[serde(default = "all")]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub groups_exclude: Vec<Spanned<String>>,
    #[serde(default = "prefix")]
    pub naming: Naming,
    #[serde(default = "yes")]
    pub sync_group_offsets: bool,
    #[serde(default = "yes")]
    pub emit_heartbeats: bool,
    #[serde(default = "five_seconds", with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Bytes of records each worker of the flow fetches from the source per second at most;
    /// no limit when absent.
    #[serde(default)]
    pub max_bytes_per_second: Option<Spanned<u64>>,
    /// `at-least-once` (the default) or `exactly-once`.
    #[serde(default)]
    pub delivery: Delivery,
}

fn all() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, ".*".to_string())]
}
fn prefix() -> Naming {
    Naming::Prefix
}
fn yes() -> bool {
    true
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Where the dashboard, API and /metrics listen; 127.0.0.1 unless told otherwise.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Name of the environment variable holding the operator token that allows changes
    /// (pause, resume, drills, failover). Without a token the web side is read-only.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the operator token (its first line), as an alternative to `token_env`.
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// Session cookies carry `Secure`: set it when the dashboard is reached over HTTPS (a
    /// proxy that sends `X-Forwarded-Proto: https` turns it on per request anyway).
    #[serde(default)]
    pub secure_cookies: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig { listen: default_listen(), token_env: None, token_file: None, secure_cookies: false }
    }
}

impl WebConfig {
    /// The operator token, if one is configured. A configured source that yields nothing is
    /// an error: a typo must not silently leave the service without its token.
    pub fn token(&self) -> Result<Option<String>> {
        if let Some(var) = &self.token_env {
            return match std::env::var(var) {
                Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
                _ => Err(Error::Config(format!("[web] token_env = {var:?}, but that environment variable is not set or empty"))),
            };
        }
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("[web] token_file = {}: {e}", path.display())))?;
            return match text.lines().next().map(str::trim) {
                Some(t) if !t.is_empty() => Ok(Some(t.to_string())),
                _ => Err(Error::Config(format!("[web] token_file = {} is empty", path.display()))),
            };
        }
        Ok(None)
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// Tuning shared by every flow; the defaults suit most links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorSettings {
    /// How often source topics, partitions and configs are compared with the target.
    #[serde(with = "humantime_serde")]
    pub topic_refresh_interval: Duration,
    /// Long-poll time of fetches at the end of the source log.
    #[serde(with = "humantime_serde")]
    pub fetch_max_wait: Duration,
    /// Bytes per fetch response, and per partition within it.
    pub fetch_max_bytes: i32,
    pub partition_max_bytes: i32,
    /// MM2 heartbeat records and group heartbeats are both sent this often.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A worker that stops heartbeating for this long loses its partitions to the others; it
    /// stops producing them a little earlier (see [`crate::session::fence_after`]).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How long a rebalance waits for every worker to rejoin. A worker giving up partitions
    /// waits for the target's answers to what it sent (and for their offset-map entries) for
    /// up to this, less 5 s, so that the next owner starts where it stopped.
    #[serde(with = "humantime_serde")]
    pub rebalance_timeout: Duration,
}

impl Default for MirrorSettings {
    fn default() -> Self {
        MirrorSettings {
            topic_refresh_interval: Duration::from_secs(2),
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 32 << 20,
            partition_max_bytes: 4 << 20,
            heartbeat_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(60),
        }
    }
}

/// A validated flow: names resolved, regexes compiled.
#[derive(Debug, Clone)]
pub struct Flow {
    pub source: String,
    pub target: String,
    pub topics: Vec<Regex>,
    pub topics_exclude: Vec<Regex>,
    pub groups: Vec<Regex>,
    pub groups_exclude: Vec<Regex>,
    pub naming: Naming,
    pub sync_group_offsets: bool,
    pub emit_heartbeats: bool,
    pub checkpoint_interval: Duration,
    pub max_bytes_per_second: Option<u64>,
    pub delivery: Delivery,
}

impl Flow {
    /// `source->target`, the name flows go by in the CLI, metrics and dashboard.
    pub fn name(&self) -> String {
        format!("{}->{}", self.source, self.target)
    }
}

/// A parsed and validated configuration.
#[derive(Debug)]
pub struct Validated {
    pub config: Config,
    pub flows: Vec<Flow>,
}

pub fn load(path: &Path) -> Result<Validated> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    parse(&text).map_err(|e| match e {
        Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
        other => other,
    })
}

pub fn parse(text: &str) -> Result<Validated> {
    let config: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string().trim_end().to_string()))?;
    let line = |span: std::ops::Range<usize>| -> usize {
        if span.is_empty() && span.start == 0 {
            return 0;
        }
        text[..span.start.min(text.len())].matches('\n').count() + 1
    };
    let at = |span: std::ops::Range<usize>, key: &str, msg: String| {
        let l = line(span);
        if l == 0 {
            Error::Config(format!("{key}: {msg}"))
        } else {
            Error::Config(format!("line {l}, {key}: {msg}"))
        }
    };
    if config.clusters.is_empty() {
        return Err(Error::Config("no [clusters.<name>] defined".into()));
    }
    for (name, c) in &config.clusters {
        if c.bootstrap.split(',').all(|s| s.trim().is_empty()) {
            return Err(Error::Config(format!("clusters.{name}.bootstrap: empty")));
        }
        if name.contains('.') || name.is_empty() {
            return Err(Error::Config(format!("clusters.{name}: a cluster alias must be non-empty and contain no '.' (it prefixes remote topic names)")));
        }
        if let Some(id) = &c.client_id {
            // What Kafka's quotas and logs match on: a short, printable name.
            if id.is_empty() || id.len() > 255 || id.chars().any(|ch| ch.is_control()) {
                return Err(Error::Config(format!("clusters.{name}.client_id: must be 1 to 255 printable characters")));
            }
        }
        crate::cluster_security::validate(name, c.security())?;
    }
    let compile = |list: &[Spanned<String>], key: &str| -> Result<Vec<Regex>> {
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                Regex::new(&format!("^(?:{})$", s.get_ref()))
                    .map_err(|e| at(s.span(), &format!("{key}[{i}]"), format!("invalid regex {:?}: {e}", s.get_ref())))
            })
            .collect()
    };
    let mut flows = Vec::new();
    for (i, f) in config.flows.iter().enumerate() {
        let key = format!("flows[{i}]");
        for (field, v) in [("source", &f.source), ("target", &f.target)] {
            if !config.clusters.contains_key(v.get_ref()) {
                return Err(at(v.span(), &format!("{key}.{field}"), format!("unknown cluster {:?} (defined: {})", v.get_ref(), config.clusters.keys().cloned().collect::<Vec<_>>().join(", "))));
            }
        }
        if f.source.get_ref() == f.target.get_ref() {
            return Err(at(f.target.span(), &format!("{key}.target"), "a flow's source and target must differ".into()));
        }
        if f.topics.is_empty() {
            return Err(at(f.source.span(), &format!("{key}.topics"), "no topic patterns: nothing would be replicated".into()));
        }
        let flow = Flow {
            source: f.source.get_ref().clone(),
            target: f.target.get_ref().clone(),
            topics: compile(&f.topics, &format!("{key}.topics"))?,
            topics_exclude: compile(&f.topics_exclude, &format!("{key}.topics_exclude"))?,
            groups: compile(&f.groups, &format!("{key}.groups"))?,
            groups_exclude: compile(&f.groups_exclude, &format!("{key}.groups_exclude"))?,
            naming: f.naming,
            sync_group_offsets: f.sync_group_offsets,
            emit_heartbeats: f.emit_heartbeats,
            checkpoint_interval: f.checkpoint_interval,
            max_bytes_per_second: f.max_bytes_per_second.as_ref().map(|m| *m.get_ref()),
            delivery: f.delivery,
        };
        if let Some(limit) = f.max_bytes_per_second.as_ref().filter(|m| *m.get_ref() == 0) {
            return Err(at(limit.span(), &format!("{key}.max_bytes_per_second"), "must be positive; leave it out for no limit".into()));
        }
        if flows.iter().any(|g: &Flow| g.source == flow.source && g.target == flow.target) {
            return Err(at(f.source.span(), &key, format!("a second flow {} (one flow per source and target)", flow.name())));
        }
        flows.push(flow);
    }
    if let Some(cycle) = identity_cycle(&flows) {
        return Err(Error::Config(format!(
            "identity naming would replicate topics in a cycle ({}): records would loop forever; use naming = \"prefix\" on at least one of these flows",
            cycle.join(" -> ")
        )));
    }
    Ok(Validated { config, flows })
}

/// A cycle among flows with identity naming, as the list of clusters along it.
fn identity_cycle(flows: &[Flow]) -> Option<Vec<String>> {
    let edges: Vec<(&str, &str)> =
        flows.iter().filter(|f| f.naming == Naming::Identity).map(|f| (f.source.as_str(), f.target.as_str())).collect();
    fn walk<'a>(node: &'a str, edges: &[(&'a str, &'a str)], path: &mut Vec<&'a str>) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        path.push(node);
        for (a, b) in edges {
            if *a == node {
                if let Some(c) = walk(b, edges, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        None
    }
    edges.iter().find_map(|(a, _)| walk(a, &edges, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[clusters.us-east]
bootstrap = "127.0.0.1:9092"
region = "us-east-1"

[clusters.eu-west]
bootstrap = "127.0.0.1:9093"

[[flows]]
source = "us-east"
target = "eu-west"
topics = ["orders.*", "payments"]

[[flows]]
source = "eu-west"
target = "us-east"
topics = [".*"]
checkpoint_interval = "2s"
max_bytes_per_second = 1048576
"#;

    #[test]
    fn parses_the_documented_format_with_defaults() {
        let v = parse(GOOD).expect("valid");
        assert_eq!(v.flows.len(), 2);
        let f = &v.flows[0];
        assert_eq!(f.name(), "us-east->eu-west");
        assert_eq!(f.naming, Naming::Prefix);
        assert!(f.topics[0].is_match("orders.v2"));
        assert!(!f.topics[1].is_match("payments-eu"), "patterns are anchored");
        assert_eq!(v.flows[1].checkpoint_interval, Duration::from_secs(2));
        assert_eq!((f.max_bytes_per_second, v.flows[1].max_bytes_per_second), (None, Some(1 << 20)));
        assert_eq!(v.config.web.listen, "127.0.0.1:8080");
        assert_eq!(v.config.state_dir(Path::new("/etc/tern/tern.toml")), Path::new("/etc/tern/tern-state"));
    }

    #[test]
    fn a_client_id_is_a_short_printable_name() {
        let with = |id: &str| parse(&GOOD.replace("region = \"us-east-1\"", &format!("region = \"us-east-1\"\nclient_id = {id:?}")));
        assert_eq!(with("tern-worker-7").expect("valid").config.clusters["us-east"].client_id.as_deref(), Some("tern-worker-7"));
        for bad in ["", "a\nb", &"x".repeat(256)] {
            let e = with(bad).expect_err("refused").to_string();
            assert!(e.contains("clusters.us-east.client_id"), "{e}");
        }
    }

    #[test]
    fn the_state_dir_is_relative_to_the_config_file() {
        let v = parse(&format!("{GOOD}\n[state]\ndir = \"drills-here\"\n")).expect("valid");
        assert_eq!(v.config.state_dir(Path::new("/etc/tern/tern.toml")), Path::new("/etc/tern/drills-here"));
        let v = parse(&format!("{GOOD}\n[state]\ndir = \"/var/lib/tern\"\n")).expect("valid");
        assert_eq!(v.config.state_dir(Path::new("tern.toml")), Path::new("/var/lib/tern"));
        let e = parse(&format!("{GOOD}\n[state]\ndirectory = \"x\"\n")).expect_err("unknown key").to_string();
        assert!(e.contains("directory"), "{e}");
    }

    #[test]
    fn unknown_keys_name_the_line_and_key() {
        let bad = GOOD.replace("topics = [\"orders.*\", \"payments\"]", "topics = [\"orders.*\"]\ntopicz = [\"x\"]");
        let e = parse(&bad).expect_err("unknown key").to_string();
        assert!(e.contains("topicz") && e.contains("line 13"), "{e}");
    }

    #[test]
    fn bad_regexes_name_the_line_and_key() {
        let bad = GOOD.replace("\"payments\"", "\"pay(ments\"");
        let e = parse(&bad).expect_err("bad regex").to_string();
        assert!(e.contains("line 12") && e.contains("flows[0].topics[1]") && e.contains("pay(ments"), "{e}");
    }

    #[test]
    fn delivery_is_at_least_once_unless_a_flow_says_exactly_once() {
        let v = parse(&GOOD.replace("checkpoint_interval = \"2s\"", "checkpoint_interval = \"2s\"\ndelivery = \"exactly-once\"")).expect("valid");
        assert_eq!((v.flows[0].delivery, v.flows[1].delivery), (Delivery::AtLeastOnce, Delivery::ExactlyOnce));
        let e = parse(&GOOD.replace("checkpoint_interval = \"2s\"", "delivery = \"exactly_once\"")).expect_err("misspelt").to_string();
        assert!(e.contains("delivery") && e.contains("exactly-once"), "{e}");
    }

    #[test]
    fn fetch_connections_are_auto_or_a_count_from_1_to_16() {
        let with = |v: &str| parse(&GOOD.replace("region = \"us-east-1\"", &format!("region = \"us-east-1\"\nfetch_connections = {v}")));
        let v = parse(GOOD).expect("valid");
        assert_eq!(v.config.clusters["us-east"].fetch_connections, Connections::Auto);
        assert_eq!(with("\"auto\"").expect("valid").config.clusters["us-east"].fetch_connections, Connections::Auto);
        assert_eq!(with("3").expect("valid").config.clusters["us-east"].fetch_connections, Connections::Fixed(3));
        for bad in ["0", "17", "-1", "\"many\"", "2.5"] {
            let e = with(bad).expect_err(bad).to_string();
            assert!(e.contains("fetch_connections") && e.contains("line 5"), "{bad}: {e}");
        }
        let ms = Duration::from_millis;
        let rtts = [0, 3, 9, 10, 19, 50, 96, 103, 1000, 86_400_000];
        let auto: Vec<usize> = rtts.iter().map(|m| Connections::Auto.for_round_trip(ms(*m), Connections::FETCH_LEAST)).collect();
        assert_eq!(auto, [1, 1, 1, 2, 3, 8, 15, 16, 16, 16]);
        let auto: Vec<usize> = rtts.iter().map(|m| Connections::Auto.for_round_trip(ms(*m), Connections::PRODUCE_LEAST)).collect();
        assert_eq!(auto, [4, 4, 4, 4, 4, 8, 15, 16, 16, 16]);
        assert_eq!(Connections::Fixed(3).for_round_trip(ms(1000), Connections::PRODUCE_LEAST), 3);
        assert_eq!(Connections::Fixed(1).for_round_trip(ms(0), Connections::PRODUCE_LEAST), 1);
    }

    #[test]
    fn produce_connections_are_auto_or_a_count_from_1_to_16() {
        let with = |v: &str| parse(&GOOD.replace("region = \"us-east-1\"", &format!("region = \"us-east-1\"\nproduce_connections = {v}")));
        assert_eq!(parse(GOOD).expect("valid").config.clusters["us-east"].produce_connections, Connections::Auto);
        assert_eq!(with("1").expect("valid").config.clusters["us-east"].produce_connections, Connections::Fixed(1));
        for bad in ["0", "17", "\"all\""] {
            let e = with(bad).expect_err(bad).to_string();
            assert!(e.contains("produce_connections") && e.contains("line 5"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_zero_bandwidth_limit_is_refused() {
        let e = parse(&GOOD.replace("max_bytes_per_second = 1048576", "max_bytes_per_second = 0")).expect_err("zero").to_string();
        assert!(e.contains("line 19") && e.contains("flows[1].max_bytes_per_second"), "{e}");
    }

    #[test]
    fn unknown_cluster_and_identity_cycles_are_refused() {
        let bad = GOOD.replace("target = \"eu-west\"", "target = \"ap-south\"");
        let e = parse(&bad).expect_err("unknown cluster").to_string();
        assert!(e.contains("ap-south") && e.contains("flows[0].target"), "{e}");

        let cyc = GOOD.replace("topics = [\".*\"]", "topics = [\".*\"]\nnaming = \"identity\"").replace(
            "topics = [\"orders.*\", \"payments\"]",
            "topics = [\"orders.*\", \"payments\"]\nnaming = \"identity\"",
        );
        let e = parse(&cyc).expect_err("cycle").to_string();
        assert!(e.contains("cycle") && e.contains("us-east -> eu-west -> us-east"), "{e}");
        // One direction with identity naming is fine.
        let one = GOOD.replace("topics = [\".*\"]", "topics = [\".*\"]\nnaming = \"identity\"");
        parse(&one).expect("identity one way");
    }
}
