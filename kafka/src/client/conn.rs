//! A pipelined connection to one broker: many requests in flight, responses matched to their
//! requests by correlation id. Over a long link this is what keeps throughput up: a fetch and
//! several produce requests share one round trip instead of queueing behind each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::connection::FrameReader;
use crate::error::{Error, Result};
use crate::frame::{decode_typed_response, encode_typed_request, peek_correlation_id, DEFAULT_MAX_FRAME};

type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<Bytes>>>>;

pub struct BrokerConnection {
    addr: String,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_correlation_id: AtomicI32,
    closed: Arc<AtomicBool>,
    client_id: StrBytes,
    /// Version ranges the broker advertised, by api key.
    versions: HashMap<i16, (i16, i16)>,
    request_timeout: Duration,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for BrokerConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl BrokerConnection {
    /// Connects and asks the broker which API versions it supports. Connection setup is here
    /// alone, so TLS and SASL are added in one place.
    pub async fn connect(addr: &str, client_id: &str, request_timeout: Duration) -> Result<BrokerConnection> {
        let stream = tokio::time::timeout(request_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout(format!("connecting to {addr}")))??;
        stream.set_nodelay(true)?;
        let (mut rd, wr) = stream.into_split();
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let reader = {
            let (pending, closed) = (pending.clone(), closed.clone());
            tokio::spawn(async move {
                let mut frames = FrameReader::new(DEFAULT_MAX_FRAME);
                while let Ok(Some(frame)) = frames.read_frame(&mut rd).await {
                    let Some(id) = peek_correlation_id(&frame) else { break };
                    let waiter = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    if let Some(tx) = waiter {
                        let _ = tx.send(frame);
                    }
                }
                closed.store(true, Ordering::SeqCst);
                // Dropping the senders wakes every caller still waiting with an error.
                pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
            })
        };
        let mut conn = BrokerConnection {
            addr: addr.to_string(),
            writer: tokio::sync::Mutex::new(wr),
            pending,
            next_correlation_id: AtomicI32::new(1),
            closed,
            client_id: StrBytes::from_string(client_id.to_string()),
            versions: HashMap::new(),
            request_timeout,
            reader,
        };
        let resp = conn.call(&ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("tern"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION"))), 3).await?;
        if resp.error_code != 0 {
            return Err(Error::kafka(resp.error_code, format!("ApiVersions from {addr}")));
        }
        conn.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The highest version both sides support within `ours`.
    pub fn version(&self, key: ApiKey, ours: (i16, i16)) -> Result<i16> {
        let (min, max) = self
            .versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(|| Error::Unsupported(format!("{key:?} (broker {})", self.addr)))?;
        let v = max.min(ours.1);
        if v < min.max(ours.0) {
            return Err(Error::Unsupported(format!("{key:?} versions {}-{} (broker {} has {min}-{max})", ours.0, ours.1, self.addr)));
        }
        Ok(v)
    }

    /// Sends a request and waits for its response; other calls may be in flight meanwhile.
    pub async fn call<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        if self.is_closed() {
            return Err(Error::Disconnected(self.addr.clone()));
        }
        let id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_typed_request(request, version, id, &self.client_id)?;
        let (tx, rx) = oneshot::channel();
        // Registered before writing, so a fast response always finds its waiter.
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        if let Err(e) = self.write(&frame).await {
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(e);
        }
        let mut frame = match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(_)) => return Err(Error::Disconnected(self.addr.clone())),
            Err(_) => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                // Like Kafka's clients: a request that timed out leaves the connection in an
                // unknown state, so it is not used again.
                self.closed.store(true, Ordering::SeqCst);
                return Err(Error::Timeout(format!("api {} request to {}", R::KEY, self.addr)));
            }
        };
        let (_, body) = decode_typed_response::<R>(&mut frame, version)?;
        Ok(body)
    }

    /// Sends a request that gets no response (produce with acks=0).
    pub async fn send_only<R: Request>(&self, request: &R, version: i16) -> Result<()> {
        let id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_typed_request(request, version, id, &self.client_id)?;
        self.write(&frame).await
    }

    async fn write(&self, frame: &[u8]) -> Result<()> {
        let mut w = self.writer.lock().await;
        if let Err(e) = w.write_all(frame).await {
            self.closed.store(true, Ordering::SeqCst);
            return Err(Error::Io(e));
        }
        Ok(())
    }
}
