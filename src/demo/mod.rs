//! `tern demo`: three regional brokers in this process, active/active flows between two of
//! them and a one-way flow to the third, load on every partition with a burst now and then, a
//! consumer group in every region, and the dashboard.
//!
//! - [`load`]: the producers (keyed records, Kafka's default partitioner, bursts).
//! - [`consumers`]: one consumer group per region that reads and commits.

mod consumers;
mod load;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tern_kafka::client::{Client, ClientConfig};

pub use load::Bursts;

/// One demo cluster: the cloud region and cloud it stands for, and the consumer group that
/// reads there.
struct Site {
    cluster: &'static str,
    region: &'static str,
    cloud: &'static str,
    group: &'static str,
}

const SITES: [Site; 3] = [
    Site { cluster: "us-east", region: "us-east-1", cloud: "aws", group: "billing" },
    Site { cluster: "eu-west", region: "europe-west1", cloud: "gcp", group: "shipping" },
    Site { cluster: "ap-south", region: "centralindia", cloud: "azure", group: "analytics" },
];

/// Active/active between us-east and eu-west, one way from us-east to ap-south.
const FLOWS: [(&str, &str); 3] = [("us-east", "eu-west"), ("eu-west", "us-east"), ("us-east", "ap-south")];
/// The clusters where applications write: every flow's source.
const SOURCES: [&str; 2] = ["us-east", "eu-west"];
const TOPICS: [&str; 2] = ["orders", "payments"];
const PARTITIONS: i32 = 4;
/// Bytes a record of the steady load takes on the wire, in its small lz4 batches (measured).
const WIRE_BYTES_PER_RECORD: u64 = 80;
/// Every flow's link (`max_bytes_per_second`) carries this many times the steady load, as a
/// link between regions has a bandwidth: a burst above it makes the flow fall behind.
const LINK_HEADROOM: u64 = 4;

/// The bandwidth of each flow's link for a steady `rate` of records per second.
fn link_bytes_per_second(rate: u32) -> u64 {
    u64::from(rate.max(50)) * WIRE_BYTES_PER_RECORD * LINK_HEADROOM
}

/// What `tern demo` runs.
pub struct Options {
    pub web: String,
    pub data: Option<PathBuf>,
    /// Steady records per second in each source region.
    pub rate: u32,
    /// `None`: no bursts.
    pub bursts: Option<Bursts>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let Options { web, data, rate, bursts } = options;
    let temp;
    let data = match data {
        Some(d) => d,
        None => {
            temp = tempfile_dir()?;
            temp.clone()
        }
    };
    let mut brokers = BTreeMap::new();
    for site in &SITES {
        let name = site.cluster;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let config = tern_broker::BrokerConfig::with_data_dir(data.join(name));
        let broker = tern_broker::RunningBroker::start(config, listener).await.with_context(|| format!("starting broker {name}"))?;
        println!("broker {name:<9} {}", broker.bootstrap());
        brokers.insert(name, broker);
    }
    for site in &SITES {
        println!("group  {:<9} {}", site.cluster, site.group);
    }
    println!("links     {} KB/s per flow (max_bytes_per_second)", link_bytes_per_second(rate) / 1000);
    let mut toml = String::new();
    for Site { cluster, region, cloud, .. } in &SITES {
        toml += &format!("[clusters.{cluster}]\nbootstrap = \"{}\"\nregion = \"{region}\"\ncloud = \"{cloud}\"\n\n", brokers[cluster].bootstrap());
    }
    let topics = TOPICS.map(|t| format!("\"{t}\"")).join(", ");
    let link = link_bytes_per_second(rate);
    for (s, t) in FLOWS {
        toml += &format!("[[flows]]\nsource = \"{s}\"\ntarget = \"{t}\"\ntopics = [{topics}]\nmax_bytes_per_second = {link}\n\n");
    }
    toml += &format!("[web]\nlisten = \"{web}\"\n");
    std::fs::write(data.join("tern.toml"), &toml)?;
    let validated = tern_mirror::config::parse(&toml)?;

    for region in SOURCES {
        let client = Client::connect(ClientConfig::new(&brokers[region].bootstrap())).await?;
        for topic in TOPICS {
            client.create_topic(topic, PARTITIONS, &BTreeMap::new()).await?;
        }
    }
    let token = demo_token(&data)?;
    let topology = tern_web::Topology::from_validated(&validated).with_state_dir(validated.config.state_dir(&data.join("tern.toml")));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (statuses, mut flows) = tern_mirror::start(validated, rx);
    let listener = tokio::net::TcpListener::bind(&web).await.with_context(|| format!("binding the dashboard to {web}"))?;
    // Tests and scripts read this line to learn the port when --web ends in :0.
    println!("dashboard http://{}/", listener.local_addr()?);
    println!("config    {}", data.join("tern.toml").display());
    println!("operator token in {} (log in there to pause and resume flows)", token.1.display());
    let state = tern_web::AppState::new(topology, statuses.clone(), Some(token.0));
    let _pollers = state.spawn_pollers();
    let app = tern_web::router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("dashboard: {e}");
        }
    });
    for site in &SITES {
        tokio::spawn(consumers::run(brokers[site.cluster].bootstrap(), site.cluster, site.group));
    }
    let (bursting, now_bursting) = tokio::sync::watch::channel(None);
    for region in SOURCES {
        let burst_rate = bursts.map_or(rate, |b| b.rate);
        tokio::spawn(load::produce(brokers[region].bootstrap(), region, rate, burst_rate, now_bursting.clone()));
    }
    if let Some(bursts) = bursts {
        tokio::spawn(load::schedule(bursts, SOURCES.to_vec(), bursting));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tick.tick() => {
                for (name, status) in &statuses {
                    let t = status.snapshot().totals();
                    println!("{name:<20} replicated {:>9} records   lag {:>6}   errors {}", t.records, t.lag_records, t.errors);
                }
                println!();
            }
            Some(done) = flows.join_next() => {
                if let Ok((name, Err(e))) = done {
                    anyhow::bail!("flow {name} stopped: {e}");
                }
            }
        }
    }
    let _ = stop.send(true);
    while flows.join_next().await.is_some() {}
    for (_, b) in brokers {
        b.shutdown().await?;
    }
    Ok(())
}

/// The demo dashboard's operator token: `TERN_WEB_TOKEN` if set, else a fresh random one.
/// Either way it is written to `<data>/web-token` (readable by the owner only) and never
/// printed.
fn demo_token(data: &std::path::Path) -> anyhow::Result<(String, PathBuf)> {
    let token = match std::env::var("TERN_WEB_TOKEN") {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => uuid::Uuid::new_v4().simple().to_string(),
    };
    let path = data.join("web-token");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())?;
    Ok((token, path))
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("tern-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
