//! The `tern` command line. Everything it runs lives in the library crates.

use std::path::PathBuf;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::Broker(args) => runtime.block_on(broker(args)),
    }
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
    let config = tern_broker::BrokerConfig {
        groups,
        advertised: args.advertised,
        auto_create_topics: args.auto_create_topics,
        default_partitions: args.default_partitions,
        maintenance_interval: std::time::Duration::from_secs(args.maintenance_interval_secs.max(1)),
        ..tern_broker::BrokerConfig::with_data_dir(&args.data).with_fsync(fsync)
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port when --listen ends in :0.
    println!("tern broker listening on {addr}");
    tern_broker::run(config, listener, shutdown_signal())
        .await
        .with_context(|| format!("broker on {addr} with data in {}", args.data.display()))?;
    tracing::info!("broker stopped");
    Ok(())
}

async fn shutdown_signal() {
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
