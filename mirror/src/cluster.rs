//! Connecting to a cluster of the configuration, named in every error.

use tern_kafka::client::{Client, ClientConfig};

use crate::config::ClusterConfig;
use crate::error::{Error, Result};

/// Connects to a cluster, naming it in the error.
pub async fn connect(name: &str, cluster: &ClusterConfig) -> Result<Client> {
    let mut config = ClientConfig::new(&cluster.bootstrap);
    config.client_id = cluster.client_id.clone().unwrap_or_else(|| format!("tern-{name}"));
    config.security = crate::cluster_security::resolve(name, cluster.security())?;
    Client::connect(config).await.map_err(|e| Error::cluster(name, e))
}
