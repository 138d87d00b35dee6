//! The `tern` command line. Everything it runs lives in the library crates.

use std::path::PathBuf;

mod demo;
mod drills;
mod run;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tern", version, about = "Kafka replication between regions and clouds")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded Kafka-compatible broker.
    Broker(BrokerArgs),
    /// Three regional brokers, flows between them, load with bursts, a consumer group per
    /// region and the dashboard, in one process.
    Demo(DemoArgs),
    /// Run the mirror workers of every flow in the configuration. The file is read again on
    /// SIGHUP and when it changes: flows added, removed or changed start and stop without
    /// touching the others; a file that does not validate is refused and the running
    /// configuration kept.
    Run(ConfigArgs),
    /// Validate the configuration and reach every cluster it names.
    Check(CheckArgs),
    /// Show how a consumer group's committed offsets translate onto a flow's target.
    Offsets(OffsetsArgs),
    /// Disaster-recovery drill of a flow: RPO, RTO and, per consumer group, whether a failover
    /// now would lose or repeat records. Production consumers and producers are not touched.
    /// Exit code 0 pass, 1 a group would lose or repeat records, 2 the drill could not decide.
    Drill(DrillArgs),
    /// Fail a flow over: its consumers and producers move to the target cluster.
    Failover(FailoverArgs),
    /// Fail a failed-over flow back: copy what was written on the target back to the source,
    /// move the groups home, and replicate again.
    Failback(FailbackArgs),
    /// Show each flow's control state: active, failing-over, failed-over, failing-back; paused.
    State(StateArgs),
    /// Print the tern.toml equivalent of a MirrorMaker 2 mm2.properties.
    #[command(name = "import-mm2")]
    ImportMm2 {
        /// Path of the mm2.properties file.
        properties: PathBuf,
    },
}

#[derive(clap::Args)]
struct OffsetsArgs {
    #[arg(long)]
    config: PathBuf,
    /// The flow, as SOURCE->TARGET.
    #[arg(long)]
    flow: String,
    /// The consumer group on the source.
    #[arg(long)]
    group: String,
}

#[derive(clap::Args)]
struct DrillArgs {
    #[arg(long)]
    config: PathBuf,
    /// The flow, as SOURCE->TARGET.
    #[arg(long)]
    flow: String,
    /// Only consumer groups matching this regex (anchored).
    #[arg(long)]
    groups: Option<String>,
    /// Also write the report as JSON to this file (the schema is in the README).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Bound on reaching each cluster and on each group's checks.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
}

#[derive(clap::Args)]
struct FailoverArgs {
    #[arg(long)]
    config: PathBuf,
    /// The flow, as SOURCE->TARGET.
    #[arg(long)]
    flow: String,
    /// The source is reachable: drain the flow (bounded by --timeout), then stop it (the default).
    #[arg(long, conflicts_with = "unplanned")]
    planned: bool,
    /// The source is gone: use only what the target knows (offset maps, checkpoints).
    #[arg(long)]
    unplanned: bool,
    /// Bound on draining and on waiting for the flow's workers.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct FailbackArgs {
    #[arg(long)]
    config: PathBuf,
    /// The flow, as SOURCE->TARGET.
    #[arg(long)]
    flow: String,
    /// Bound on waiting for the flow's workers and on copying records back.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct StateArgs {
    #[arg(long)]
    config: PathBuf,
    /// Only this flow.
    #[arg(long)]
    flow: Option<String>,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Where the dashboard listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    web: String,
    /// Data directory for the three brokers (a fresh temporary one by default).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Records per second the load generator writes in each source region (us-east, eu-west),
    /// spread over every partition of `orders` and `payments`.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How often one source region bursts (us-east and eu-west take turns). By default a burst is
    /// more than each flow's link carries (four times the steady load), so its flows fall behind
    /// and catch up on the dashboard. 0s for never.
    #[arg(long, default_value = "50s", value_parser = humantime::parse_duration)]
    burst_every: std::time::Duration,
    /// How long a burst lasts.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    burst_for: std::time::Duration,
    /// Records per second during a burst (25 times --rate unless set).
    #[arg(long)]
    burst_rate: Option<u32>,
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// The tern.toml to use.
    #[arg(long)]
    config: PathBuf,
}

#[derive(clap::Args)]
struct CheckArgs {
    #[arg(long)]
    config: PathBuf,
    /// Check the file and its flows only; contact no cluster.
    #[arg(long)]
    offline: bool,
}

#[derive(clap::Args)]
struct BrokerArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: String,
    /// Directory for partition logs and topic metadata.
    #[arg(long)]
    data: PathBuf,
    /// host:port clients are told to connect to (defaults to the bound address).
    #[arg(long)]
    advertised: Option<String>,
    /// Create unknown topics when a client asks for their metadata (Kafka's
    /// auto.create.topics.enable).
    #[arg(long)]
    auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics with -1.
    #[arg(long, default_value_t = 1)]
    default_partitions: i32,
    /// When appended data is fsynced: `always` (before every acknowledgement), `interval`
    /// (every second; `interval:200ms` for another period) or `never` (left to the OS).
    #[arg(long, default_value = "never")]
    fsync: String,
    /// Seconds between retention checks, time-based segment rolls and interval flushes.
    #[arg(long, default_value_t = 30)]
    maintenance_interval_secs: u64,
    /// How long the first rebalance of an empty consumer group waits for more members
    /// (Kafka's group.initial.rebalance.delay.ms, 3000 there).
    #[arg(long, default_value_t = 300)]
    group_initial_rebalance_delay_ms: u64,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Kafka's listener security protocol);
    /// inferred from the TLS and SASL options when not given.
    #[arg(long)]
    security_protocol: Option<String>,
    /// PEM certificate chain of the TLS listener.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS listener.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates; clients must then present a certificate they signed (mutual TLS).
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// File of `user:password` lines for SASL (SCRAM credentials are derived at start); more
    /// users can be created with AlterUserScramCredentials.
    #[arg(long)]
    sasl_users: Option<PathBuf>,
    /// Enabled SASL mechanisms, comma-separated.
    #[arg(long, default_value = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512")]
    sasl_mechanisms: String,
    /// Kafka's connections.max.reauth.ms: clients must re-authenticate within this many
    /// milliseconds (0: sessions do not expire).
    #[arg(long, default_value_t = 0)]
    sasl_session_lifetime_ms: u64,
    /// Most client connections open at once (Kafka's max.connections); a connection beyond it
    /// is closed as soon as it is accepted.
    #[arg(long, default_value_t = tern_broker::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Close a connection that sends no complete request for this long (Kafka's
    /// connections.max.idle.ms): `600s`, `10m`, `500ms`.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    connections_max_idle: std::time::Duration,
    /// Most bytes of records in one Fetch response (Kafka's fetch.max.bytes); the first batch
    /// is returned even when it is larger.
    #[arg(long, default_value_t = 55 * 1024 * 1024)]
    fetch_max_bytes: usize,
}

/// The listener security of `tern broker`, checked for consistency.
fn listener_security(args: &BrokerArgs) -> anyhow::Result<tern_broker::ListenerSecurity> {
    use tern_kafka::security::SecurityProtocol;
    let protocol = match &args.security_protocol {
        Some(p) => p.parse::<SecurityProtocol>().map_err(|e| anyhow::anyhow!("--security-protocol: {e}"))?,
        None => match (args.tls_cert.is_some(), args.sasl_users.is_some()) {
            (false, false) => SecurityProtocol::Plaintext,
            (true, false) => SecurityProtocol::Ssl,
            (false, true) => SecurityProtocol::SaslPlaintext,
            (true, true) => SecurityProtocol::SaslSsl,
        },
    };
    let tls = match (protocol.uses_tls(), &args.tls_cert, &args.tls_key) {
        (true, Some(cert), Some(key)) => Some(tern_broker::TlsListener { cert_file: cert.clone(), key_file: key.clone(), client_ca_file: args.tls_client_ca.clone() }),
        (true, _, _) => anyhow::bail!("--security-protocol {} needs --tls-cert and --tls-key", protocol.name()),
        (false, None, None) if args.tls_client_ca.is_none() => None,
        (false, _, _) => anyhow::bail!("--tls-cert, --tls-key and --tls-client-ca need --security-protocol SSL or SASL_SSL (it is {})", protocol.name()),
    };
    let sasl = if protocol.uses_sasl() {
        let mechanisms = args
            .sasl_mechanisms
            .split(',')
            .filter(|m| !m.trim().is_empty())
            .map(|m| m.parse::<tern_kafka::sasl::Mechanism>().map_err(|e| anyhow::anyhow!("--sasl-mechanisms: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(m) = mechanisms.iter().find(|m| **m == tern_kafka::sasl::Mechanism::OAuthBearer) {
            anyhow::bail!("--sasl-mechanisms: the broker does not validate {m} tokens; use PLAIN or SCRAM");
        }
        if mechanisms.is_empty() {
            anyhow::bail!("--sasl-mechanisms: none given");
        }
        let lifetime = (args.sasl_session_lifetime_ms > 0).then(|| std::time::Duration::from_millis(args.sasl_session_lifetime_ms));
        Some(tern_broker::SaslListener { mechanisms, users_file: args.sasl_users.clone(), session_lifetime: lifetime })
    } else if args.sasl_users.is_some() {
        anyhow::bail!("--sasl-users needs --security-protocol SASL_PLAINTEXT or SASL_SSL (it is {})", protocol.name());
    } else {
        None
    };
    Ok(tern_broker::ListenerSecurity { tls, sasl })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = tern_web::telemetry::init("tern");
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = match cli.command {
        Command::Broker(args) => runtime.block_on(broker(args)),
        Command::Demo(args) => {
            let bursts = (!args.burst_every.is_zero() && !args.burst_for.is_zero()).then(|| demo::Bursts {
                every: args.burst_every,
                length: args.burst_for,
                rate: args.burst_rate.unwrap_or(args.rate.saturating_mul(25)),
            });
            runtime.block_on(demo::run(demo::Options { web: args.web, data: args.data, rate: args.rate, bursts }))
        }
        Command::Run(args) => runtime.block_on(run::run(args.config)),
        Command::Check(args) => runtime.block_on(check(args)),
        Command::Offsets(args) => runtime.block_on(offsets(args)),
        Command::Failover(args) => runtime.block_on(drills::failover(args)),
        Command::Failback(args) => runtime.block_on(drills::failback(args)),
        Command::State(args) => runtime.block_on(drills::state(args)),
        Command::Drill(args) => {
            let code = runtime.block_on(drills::drill(args))?;
            drop(runtime);
            std::process::exit(code);
        }
        Command::ImportMm2 { properties } => import_mm2(&properties),
    };
    drop(runtime);
    result
}

async fn broker(args: BrokerArgs) -> anyhow::Result<()> {
    let fsync = args
        .fsync
        .parse()
        .map_err(|e| anyhow::anyhow!("--fsync {}: {e}", args.fsync))?;
    if args.default_partitions < 1 {
        anyhow::bail!("--default-partitions must be at least 1, got {}", args.default_partitions);
    }
    let groups = tern_broker::groups::GroupConfig {
        initial_rebalance_delay: std::time::Duration::from_millis(args.group_initial_rebalance_delay_ms),
        ..Default::default()
    };
    let security = listener_security(&args)?;
    if args.max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    if args.connections_max_idle.is_zero() {
        anyhow::bail!("--connections-max-idle must be longer than 0");
    }
    if args.fetch_max_bytes == 0 || args.fetch_max_bytes > i32::MAX as usize {
        anyhow::bail!("--fetch-max-bytes must be 1 to {}, got {}", i32::MAX, args.fetch_max_bytes);
    }
    let protocol = match (&security.tls, &security.sasl) {
        (None, None) => "PLAINTEXT",
        (Some(_), None) => "SSL",
        (None, Some(_)) => "SASL_PLAINTEXT",
        (Some(_), Some(_)) => "SASL_SSL",
    };
    let config = tern_broker::BrokerConfig {
        security,
        groups,
        advertised: args.advertised,
        auto_create_topics: args.auto_create_topics,
        default_partitions: args.default_partitions,
        maintenance_interval: std::time::Duration::from_secs(args.maintenance_interval_secs.max(1)),
        max_connections: args.max_connections,
        connections_max_idle: args.connections_max_idle,
        fetch_max_bytes: args.fetch_max_bytes,
        ..tern_broker::BrokerConfig::with_data_dir(&args.data).with_fsync(fsync)
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when --listen ends in :0.
    println!("tern broker listening on {addr}");
    tracing::info!(%addr, protocol, "listener security");
    tern_broker::run(config, listener, shutdown_signal())
        .await
        .with_context(|| format!("broker on {addr} with data in {}", args.data.display()))?;
    tracing::info!("broker stopped");
    Ok(())
}

async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let validated = tern_mirror::config::load(&args.config)?;
    println!("{}: valid, {} clusters, {} flows", args.config.display(), validated.config.clusters.len(), validated.flows.len());
    for f in &validated.flows {
        println!("  flow {} (naming {:?})", f.name(), f.naming);
    }
    if args.offline {
        return Ok(());
    }
    let mut unreachable = Vec::new();
    for (name, cluster) in &validated.config.clusters {
        match tokio::time::timeout(std::time::Duration::from_secs(15), tern_mirror::cluster::connect(name, cluster)).await {
            Ok(Ok(client)) => {
                let md = client.metadata_snapshot();
                println!("  cluster {name}: reachable ({} brokers, {} topics)", md.brokers.len(), md.topics.len());
            }
            Ok(Err(e)) => unreachable.push(e.to_string()),
            Err(_) => unreachable.push(format!("cluster {name}: no answer from {} within 15 s", cluster.bootstrap)),
        }
    }
    if !unreachable.is_empty() {
        anyhow::bail!("{}", unreachable.join("\n"));
    }
    Ok(())
}

fn import_mm2(path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let imported = tern_mirror::import_mm2::import(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // The output must be a configuration Tern accepts.
    tern_mirror::config::parse(&imported.toml).context("the converted configuration does not validate")?;
    print!("{}", imported.toml);
    for line in &imported.not_carried {
        eprintln!("not carried over: {line}");
    }
    Ok(())
}

async fn offsets(args: OffsetsArgs) -> anyhow::Result<()> {
    let validated = tern_mirror::config::load(&args.config)?;
    let flow = validated
        .flows
        .iter()
        .find(|f| f.name() == args.flow)
        .ok_or_else(|| anyhow::anyhow!("no flow {} in {} (flows: {})", args.flow, args.config.display(), validated.flows.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")))?;
    let clusters = &validated.config.clusters;
    let source = tern_mirror::cluster::connect(&flow.source, &clusters[&flow.source]).await?;
    let target = tern_mirror::cluster::connect(&flow.target, &clusters[&flow.target]).await?;
    let rows = tern_mirror::checkpoint::translate_group(flow, &source, &target, &args.group).await?;
    if rows.is_empty() {
        println!("group {} has no committed offsets on replicated topics of {}", args.group, flow.name());
        return Ok(());
    }
    println!("{:<30} {:>9} {:>16} {:>17} {:>15}  state", "topic", "partition", "source committed", "translated target", "replicated end");
    for r in rows {
        let target = r.translation.target().map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        let state = r.translation.state();
        println!("{:<30} {:>9} {:>16} {:>17} {:>15}  {state}", r.remote_topic, r.partition, r.committed, target, r.replicated_end);
    }
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
