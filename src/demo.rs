//! `tern demo`: three regional brokers in this process, active/active flows between two of
//! them and a one-way flow to the third, a steady load generator and the dashboard.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use kafka_protocol::records::Compression;
use tern_kafka::records::{encode_batch, PlainRecord};
use tern_kafka::client::{Client, ClientConfig};

const REGIONS: [(&str, &str, &str); 3] = [("us-east", "us-east-1", "aws"), ("eu-west", "europe-west1", "gcp"), ("ap-south", "westeurope", "azure")];

pub async fn run(web: String, data: Option<PathBuf>, records_per_second: u32) -> anyhow::Result<()> {
    let temp;
    let data = match data {
        Some(d) => d,
        None => {
            temp = tempfile_dir()?;
            temp.clone()
        }
    };
    let mut brokers = BTreeMap::new();
    for (name, _, _) in REGIONS {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let config = tern_broker::BrokerConfig::with_data_dir(data.join(name));
        let broker = tern_broker::RunningBroker::start(config, listener).await.with_context(|| format!("starting broker {name}"))?;
        println!("broker {name:<9} {}", broker.bootstrap());
        brokers.insert(name, broker);
    }
    let mut toml = String::new();
    for (name, region, cloud) in REGIONS {
        toml += &format!("[clusters.{name}]\nbootstrap = \"{}\"\nregion = \"{region}\"\ncloud = \"{cloud}\"\n\n", brokers[name].bootstrap());
    }
    for (s, t) in [("us-east", "eu-west"), ("eu-west", "us-east"), ("us-east", "ap-south")] {
        toml += &format!("[[flows]]\nsource = \"{s}\"\ntarget = \"{t}\"\ntopics = [\"orders\", \"payments\"]\n\n");
    }
    toml += &format!("[web]\nlisten = \"{web}\"\n");
    std::fs::write(data.join("tern.toml"), &toml)?;
    let validated = tern_mirror::config::parse(&toml)?;

    for region in ["us-east", "eu-west"] {
        let client = Client::connect(ClientConfig::new(&brokers[region].bootstrap())).await?;
        for topic in ["orders", "payments"] {
            client.create_topic(topic, 4, &BTreeMap::new()).await?;
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
    for region in ["us-east", "eu-west"] {
        let bootstrap = brokers[region].bootstrap();
        tokio::spawn(load(bootstrap.clone(), region, records_per_second));
        tokio::spawn(consumer_group(bootstrap, region));
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

/// A consumer group per active region ("billing") that keeps a little behind the end of
/// `orders`, committing every second, so the dashboard has group translations to show.
async fn consumer_group(bootstrap: String, region: &'static str) {
    let client = match Client::connect(ClientConfig::new(&bootstrap)).await {
        Ok(c) => c,
        Err(e) => return tracing::error!("demo consumer group in {region}: {e}"),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let mut offsets = BTreeMap::new();
        for partition in 0..4 {
            if let Ok((end, _)) = client.list_offset("orders", partition, tern_kafka::client::LATEST).await {
                offsets.insert(("orders".to_string(), partition), (end - 25).max(0));
            }
        }
        if let Err(e) = client.commit_offsets("billing", &tern_kafka::client::Membership::none(), &offsets).await {
            tracing::debug!("demo consumer group in {region}: {e}");
        }
    }
}

/// Produces `rate` records a second to `orders` and `payments`, in 10 batches a second.
async fn load(bootstrap: String, region: &'static str, rate: u32) {
    let client = match Client::connect(ClientConfig::new(&bootstrap)).await {
        Ok(c) => c,
        Err(e) => return tracing::error!("load generator for {region}: {e}"),
    };
    let per_tick = (rate / 10).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for n in 0u64.. {
        tick.tick().await;
        let topic = if n % 4 == 0 { "payments" } else { "orders" };
        let partition = (n % 4) as i32;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let records: Vec<PlainRecord> = (0..per_tick)
            .map(|i| {
                let value = format!("{{\"region\":\"{region}\",\"order\":{n},\"line\":{i},\"amount\":{}}}", (n * 7 + i as u64) % 1000);
                PlainRecord::new(format!("{region}-{n}-{i}"), Some(Bytes::from(value)), now)
            })
            .collect();
        let Ok(batch) = encode_batch(&records, Compression::Lz4) else { continue };
        if let Err(e) = client.produce(topic, partition, batch, -1, 10_000).await {
            tracing::warn!("load generator for {region}: {e}");
        }
    }
}
