//! Accepting connections and running each one: read a frame, answer it, in order.
//!
//! Kafka answers the requests of one connection strictly in order and works on one at a
//! time; a connection task here does the same, which is also what keeps a long-polling fetch
//! from reordering responses.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tern_kafka::connection::{write_frame, write_frame_parts, FrameReader};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::apis::{self, Reply};
use crate::auth::ConnectionAuth;
use crate::config::BrokerConfig;
use crate::error::Result;
use crate::producer_ids::ProducerIds;
use crate::groups::GroupCoordinator;
use crate::topics::Topics;

/// Everything request handlers read: settings, identity, topics and groups.
pub struct BrokerState {
    pub config: BrokerConfig,
    pub topics: Topics,
    /// Hands out idempotent producers' ids (InitProducerId).
    pub producer_ids: ProducerIds,
    pub groups: GroupCoordinator,
    pub txns: crate::transactions::TxnCoordinator,
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// SCRAM users for SASL (PLAIN checks passwords against them too).
    pub scram_users: crate::scram_users::ScramUsers,
    /// The TLS acceptor of a TLS listener.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl BrokerState {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }
}

/// Opens the data directory (recovering every log) and serves `listener` until `shutdown`
/// completes.
pub async fn run(config: BrokerConfig, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<()> {
    let state = Arc::new(open_state(config, listener.local_addr()?)?);
    serve(state, listener, shutdown).await
}

/// A broker running in this process, as tests and `tern demo` use it.
pub struct RunningBroker {
    pub addr: SocketAddr,
    state: Arc<BrokerState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
}

impl RunningBroker {
    /// Recovers the data directory, then serves the already bound listener in a task.
    pub async fn start(config: BrokerConfig, listener: TcpListener) -> Result<RunningBroker> {
        let addr = listener.local_addr()?;
        let state = Arc::new(open_state(config, addr)?);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(state.clone(), listener, async move {
            let _ = rx.await;
        }));
        Ok(RunningBroker { addr, state, shutdown: Some(tx), task })
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.state.advertised_host, self.state.advertised_port)
    }

    /// Stops accepting, closes every connection and flushes every log.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string()).into()),
        }
    }
}

/// Connections closed at the limit, logged at most every ten seconds with how many.
#[derive(Default)]
struct Refusals {
    since_logged: u64,
    logged_at: Option<std::time::Instant>,
}

impl Refusals {
    fn count(&mut self, peer: SocketAddr, limit: usize) {
        self.since_logged += 1;
        if self.logged_at.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
            tracing::warn!(%peer, limit, closed = self.since_logged, "connection limit reached (max.connections): closing new connections");
            self.since_logged = 0;
            self.logged_at = Some(std::time::Instant::now());
        }
    }
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Dropped without [`RunningBroker::shutdown`], a broker stops as if killed: it serves no more
/// and flushes nothing (what was acknowledged is on disk by the flush policy, as after a crash).
/// A flush after the drop could run after the data directory is gone.
impl Drop for RunningBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn open_state(config: BrokerConfig, bound: SocketAddr) -> Result<BrokerState> {
    std::fs::create_dir_all(&config.data_dir)?;
    let topics = Topics::open(&config.data_dir, config.log.clone())?;
    let producer_ids = ProducerIds::open(&config.data_dir)?;
    let groups = GroupCoordinator::open(&topics, config.groups.clone())?;
    let txns = crate::transactions::TxnCoordinator::open(&topics)?;
    let cluster_id = match &config.cluster_id {
        Some(id) => id.clone(),
        None => load_or_create_cluster_id(&config.data_dir)?,
    };
    let (advertised_host, advertised_port) = match config.advertised.as_deref().and_then(split_host_port) {
        Some((h, p)) => (h, p),
        None => (bound.ip().to_string(), bound.port() as i32),
    };
    let tls = crate::auth::tls_acceptor(&config.security)?;
    let users_file = config.security.sasl.as_ref().and_then(|s| s.users_file.clone());
    let scram_users = crate::scram_users::ScramUsers::open(&config.data_dir, users_file.as_deref())?;
    Ok(BrokerState { config, topics, producer_ids, groups, txns, cluster_id, advertised_host, advertised_port, scram_users, tls })
}

/// Splits `host:port` (IPv6 hosts in brackets).
pub fn split_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port as i32))
}

fn load_or_create_cluster_id(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
            return Ok(id.trim().to_string());
        }
    }
    // Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars);
    // the simple form of a v4 UUID carries the same randomness and is a valid id for clients.
    let id = uuid::Uuid::new_v4().simple().to_string()[..22].to_string();
    crate::storage::files::replace_durably(&data_dir.join("meta.properties.tmp"), &path, format!("version=1\ncluster.id={id}\n").as_bytes())?;
    Ok(id)
}

async fn serve(state: Arc<BrokerState>, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<()> {
    let mut connections = JoinSet::new();
    // Aborted with this task too, when a dropped broker aborts it.
    let maintenance = AbortOnDrop(tokio::spawn(crate::maintenance::run(state.clone())));
    let flusher = match state.config.log.fsync {
        crate::storage::FsyncPolicy::Interval(every) => Some(AbortOnDrop(tokio::spawn(crate::maintenance::flush_on_interval(state.clone(), every)))),
        _ => None,
    };
    let group_timers = {
        let state = state.clone();
        AbortOnDrop(tokio::spawn(async move { state.groups.run_timers().await }))
    };
    let txn_timers = AbortOnDrop(tokio::spawn(crate::transactions::TxnCoordinator::run_timers(state.clone())));
    // One permit per open client connection (max.connections).
    let slots = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections));
    let mut refused = Refusals::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let state = state.clone();
                        connections.spawn(async move {
                            serve_connection(state, stream, peer).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        drop(stream);
                        refused.count(peer, state.config.max_connections);
                    }
                },
                // Running out of file descriptors and the like: keep serving the others.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    drop((maintenance, flusher, group_timers, txn_timers));
    for topic in state.topics.all() {
        for p in &topic.partitions {
            if let Err(e) = p.log().flush() {
                tracing::error!(topic = %topic.name, partition = p.index, "flush on shutdown failed: {e}");
            }
        }
    }
    Ok(())
}

async fn serve_connection(state: Arc<BrokerState>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    match &state.tls {
        None => serve_stream(state.clone(), stream, peer).await,
        Some(acceptor) => {
            // A client that connects and says nothing must not hold a task forever.
            let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(tls)) => serve_stream(state.clone(), tls, peer).await,
                Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Kafka's `sasl.server.max.receive.size` default: the largest frame before authentication.
pub const PRE_AUTH_MAX_FRAME_BYTES: usize = 512 * 1024;

async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(state: Arc<BrokerState>, stream: S, peer: SocketAddr) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut auth = ConnectionAuth::new(&state.config.security);
    // Until a client has authenticated it may only send small frames, as in Kafka
    // (sasl.server.max.receive.size): an anonymous peer cannot make the broker buffer 100 MiB.
    let mut reader = FrameReader::new(if auth.is_authenticated() { state.config.max_frame_bytes } else { PRE_AUTH_MAX_FRAME_BYTES });
    let mut limited = !auth.is_authenticated();
    loop {
        if limited && auth.is_authenticated() {
            reader.set_limit(state.config.max_frame_bytes);
            limited = false;
        }
        // connections.max.idle.ms: a client must complete a request within it, so neither an
        // idle connection nor one that trickles a frame in holds its slot forever.
        let idle = state.config.connections_max_idle;
        let read = match tokio::time::timeout(idle, reader.read_frame(&mut rd)).await {
            Ok(read) => read,
            Err(_) => {
                tracing::debug!(%peer, "closing connection: no complete request in {idle:?} (connections.max.idle.ms)");
                return;
            }
        };
        let frame = match read {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            // TLS clients often just close the socket without a close_notify alert.
            Err(tern_kafka::Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!(%peer, "connection closed: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, "closing connection: {e}");
                return;
            }
        };
        match apis::handle_frame(&state, frame, peer, &mut auth).await {
            Reply::Frame(bytes) => {
                if let Err(e) = write_frame(&mut wr, &bytes).await {
                    tracing::debug!(%peer, "write failed: {e}");
                    return;
                }
            }
            Reply::Parts(parts) => {
                if let Err(e) = write_frame_parts(&mut wr, &parts).await {
                    tracing::debug!(%peer, "write failed: {e}");
                    return;
                }
            }
            Reply::Nothing => {}
            Reply::Close(reason) => {
                tracing::warn!(%peer, "closing connection: {reason}");
                let _ = wr.shutdown().await;
                return;
            }
            Reply::FrameThenClose(bytes, reason) => {
                tracing::info!(%peer, "closing connection: {reason}");
                let _ = write_frame(&mut wr, &bytes).await;
                let _ = wr.flush().await;
                // Like Kafka (connection.failed.authentication.delay.ms), close a moment
                // later, and only after reading what the client still sends: closing with
                // unread input resets the connection, and a reset can discard the answer
                // before the client reads it.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let _ = wr.shutdown().await;
                let mut sink = [0u8; 4096];
                let drain = async {
                    while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
                };
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
                return;
            }
        }
    }
}
