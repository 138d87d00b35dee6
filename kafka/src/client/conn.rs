//! A pipelined connection to one broker: many requests in flight, responses matched to their
//! requests by correlation id. Over a long link this is what keeps throughput up: a fetch and
//! several produce requests share one round trip instead of queueing behind each other.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::io::IoSlice;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ProduceRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::connection::FrameReader;
use crate::error::{Error, Result};
use crate::frame::{decode_typed_response, encode_produce_request, encode_typed_request, peek_correlation_id, DEFAULT_MAX_FRAME};
use super::produce::{ProduceAck, Queued};
use crate::security::{resolve_secret, BoxStream, Connector, SaslSession, SaslSettings};

type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<Bytes>>>>;
type Writer = WriteHalf<BoxStream>;

/// A request written by [`BrokerConnection::send`] whose response is still to come.
pub struct InFlight<R: Request> {
    conn: Arc<BrokerConnection>,
    id: i32,
    rx: oneshot::Receiver<Bytes>,
    version: i16,
    _response: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> InFlight<R> {
    /// Waits for the response (bounded by the connection's request timeout).
    pub async fn response(self) -> Result<R::Response> {
        self.conn.wait::<R>(self.id, self.rx, self.version).await
    }
}

pub struct BrokerConnection {
    addr: String,
    writer: tokio::sync::Mutex<Writer>,
    pending: Pending,
    next_correlation_id: AtomicI32,
    closed: Arc<AtomicBool>,
    client_id: StrBytes,
    /// Version ranges the broker advertised, by api key.
    versions: HashMap<i16, (i16, i16)>,
    request_timeout: Duration,
    reader: tokio::task::JoinHandle<()>,
    /// SASL settings, kept to re-authenticate when the broker limits the session (KIP-368).
    sasl: Option<SaslSettings>,
    session: Mutex<Option<SessionClock>>,
    reauthentications: AtomicU64,
    /// Produce batches waiting for a request; the task combining them starts with the first.
    produce_queue: OnceLock<mpsc::UnboundedSender<Queued>>,
}

/// When an authenticated session must be renewed, and when the broker stops honouring it.
#[derive(Debug, Clone, Copy)]
struct SessionClock {
    reauthenticate_at: Instant,
    expires_at: Instant,
}

impl Drop for BrokerConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl BrokerConnection {
    /// Connects over plaintext without authentication.
    pub async fn connect(addr: &str, client_id: &str, request_timeout: Duration) -> Result<BrokerConnection> {
        Self::connect_with(addr, client_id, request_timeout, &Connector::plaintext()).await
    }

    /// Connects (TCP, then TLS if configured), asks the broker which API versions it supports
    /// and authenticates with SASL if configured. Connection setup is here alone.
    pub async fn connect_with(addr: &str, client_id: &str, request_timeout: Duration, connector: &Connector) -> Result<BrokerConnection> {
        let stream = connector.connect(addr, request_timeout).await?;
        let (mut rd, wr) = tokio::io::split(stream);
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let reader = {
            let (pending, closed) = (pending.clone(), closed.clone());
            tokio::spawn(async move {
                let mut frames = FrameReader::for_answers(DEFAULT_MAX_FRAME);
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
            sasl: connector.sasl().cloned(),
            session: Mutex::new(None),
            reauthentications: AtomicU64::new(0),
            produce_queue: OnceLock::new(),
        };
        let resp = conn.call(&ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("tern"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION"))), 3).await?;
        if resp.error_code != 0 {
            return Err(Error::kafka(resp.error_code, format!("ApiVersions from {addr}")));
        }
        conn.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        if let Some(settings) = conn.sasl.clone() {
            let mut w = conn.writer.lock().await;
            conn.authenticate(&settings, &mut w).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then SaslAuthenticate rounds until the mechanism is done. The caller
    /// holds the writer, so no other request is interleaved (Kafka requires that during a
    /// re-authentication; responses to earlier requests still arrive and find their callers).
    async fn authenticate(&self, settings: &SaslSettings, w: &mut Writer) -> Result<()> {
        let mechanism = settings.mechanism;
        let hv = self.version(ApiKey::SaslHandshake, (1, 1))?;
        let hs = self
            .roundtrip(w, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name())), hv)
            .await?;
        if hs.error_code == ResponseError::UnsupportedSaslMechanism.code() {
            let offered: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(Error::Authentication(format!("{}: the broker does not offer SASL {mechanism} (it offers {})", self.addr, offered.join(", "))));
        }
        if hs.error_code != 0 {
            return Err(Error::kafka(hs.error_code, format!("SaslHandshake with {}", self.addr)));
        }
        let av = self.version(ApiKey::SaslAuthenticate, (0, 2))?;
        let secret = resolve_secret(settings).await?;
        let (mut session, mut message) = SaslSession::start(settings, &secret)?;
        let started = Instant::now();
        let lifetime_ms = loop {
            let resp = self.roundtrip(w, &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)), av).await?;
            if resp.error_code != 0 {
                let why = resp.error_message.as_ref().map(|m| m.to_string()).unwrap_or_else(|| format!("error code {}", resp.error_code));
                // Kafka closes the connection after a failed authentication.
                self.closed.store(true, Ordering::SeqCst);
                return Err(Error::Authentication(format!("{} ({mechanism}): {why}", self.addr)));
            }
            match session.next(&resp.auth_bytes)? {
                Some(next) => message = next,
                None => break resp.session_lifetime_ms,
            }
        };
        let clock = (lifetime_ms > 0).then(|| {
            let lifetime = Duration::from_millis(lifetime_ms as u64);
            // Like Kafka's clients, renew well before the end (they pick 85-95%).
            SessionClock { reauthenticate_at: started + lifetime.mul_f64(0.85), expires_at: started + lifetime }
        });
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = clock;
        tracing::debug!(broker = %self.addr, %mechanism, lifetime_ms, "authenticated");
        Ok(())
    }

    /// How many times this connection renewed its SASL session.
    pub fn reauthentications(&self) -> u64 {
        self.reauthentications.load(Ordering::Relaxed)
    }

    /// Re-authenticates when the session is due for it; a session already expired cannot be
    /// renewed (the broker closes such connections), so the connection is given up.
    async fn renew_session(&self, w: &mut Writer) -> Result<()> {
        let Some(clock) = *self.session.lock().unwrap_or_else(|p| p.into_inner()) else { return Ok(()) };
        let now = Instant::now();
        if now < clock.reauthenticate_at {
            return Ok(());
        }
        if now >= clock.expires_at {
            self.closed.store(true, Ordering::SeqCst);
            return Err(Error::Disconnected(format!("{} (SASL session expired)", self.addr)));
        }
        let Some(settings) = &self.sasl else { return Ok(()) };
        if let Err(e) = self.authenticate(settings, w).await {
            self.closed.store(true, Ordering::SeqCst);
            return Err(e);
        }
        self.reauthentications.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// One request and its response with the writer already held.
    async fn roundtrip<R: Request>(&self, w: &mut Writer, request: &R, version: i16) -> Result<R::Response> {
        let (id, rx) = self.register();
        let frame = match encode_typed_request(request, version, id, &self.client_id) {
            Ok(f) => f,
            Err(e) => {
                self.unregister(id);
                return Err(e);
            }
        };
        self.write_locked(w, id, &[&frame]).await?;
        self.wait::<R>(id, rx, version).await
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
        let (id, rx) = self.write_request(request, version).await?;
        self.wait::<R>(id, rx, version).await
    }

    /// Writes a request and returns at once; [`InFlight::response`] waits for the answer.
    /// Requests written one after another on a connection are handled by the broker in that
    /// order, so a caller can keep several in flight (an idempotent producer's batches of one
    /// partition, say) and still know the order they apply in.
    pub async fn send<R: Request>(self: &Arc<Self>, request: &R, version: i16) -> Result<InFlight<R>> {
        let (id, rx) = self.write_request(request, version).await?;
        Ok(InFlight { conn: self.clone(), id, rx, version, _response: std::marker::PhantomData })
    }

    /// Queues one partition's batch for the next produce request of this connection (see
    /// [`super::produce`]): batches queued one after another for a partition apply in that
    /// order.
    pub(super) fn queue_produce(self: &Arc<Self>, batch: Queued) {
        let queue = self.produce_queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(combine_produce(Arc::downgrade(self), rx));
            tx
        });
        if let Err(mpsc::error::SendError(batch)) = queue.send(batch) {
            let _ = batch.reply.send(Err(Error::Disconnected(self.addr.clone())));
        }
    }

    /// Writes one produce request carrying `batches` (see [`super::produce`]), and hands each
    /// its partition's answer once it comes. A batch whose gate says no, or whose sender gave
    /// up waiting, is left out and answered [`Error::Withdrawn`].
    pub(super) async fn write_produce(self: &Arc<Self>, batches: Vec<Queued>) {
        let fail_all = |batches: Vec<Queued>, e: Error| super::produce::answer(batches, Err(e));
        let Some(first) = batches.first() else { return };
        let (acks, timeout_ms, txn) = (first.acks, first.timeout_ms, first.transactional_id.clone());
        let version = match self.version(ApiKey::Produce, (3, 11)) {
            Ok(v) => v,
            Err(e) => return fail_all(batches, e),
        };
        if self.is_closed() {
            return fail_all(batches, Error::Disconnected(self.addr.clone()));
        }
        let mut w = self.writer.lock().await;
        let (batches, withdrawn): (Vec<Queued>, Vec<Queued>) = batches.into_iter().partition(|q| !q.reply.is_closed() && q.gate.as_ref().is_none_or(|may| may()));
        for q in withdrawn {
            let what = format!("produce to {}/{}", q.topic, q.partition);
            let _ = q.reply.send(Err(Error::Withdrawn(what)));
        }
        if batches.is_empty() {
            return;
        }
        if let Err(e) = self.renew_session(&mut w).await {
            return fail_all(batches, e);
        }
        // acks=0 gets no answer at all: nothing to wait for.
        let (id, rx) = if acks == 0 { (self.next_correlation_id.fetch_add(1, Ordering::Relaxed), None) } else {
            let (id, rx) = self.register();
            (id, Some(rx))
        };
        let parts = encode_produce_request(version, id, self.client_id.as_str(), txn.as_deref(), acks, timeout_ms, &super::produce::by_topic(&batches));
        let written = match parts {
            Ok(parts) => self.write_locked(&mut w, id, &parts).await,
            Err(e) => {
                self.unregister(id);
                Err(e)
            }
        };
        drop(w);
        if let Err(e) = written {
            return fail_all(batches, e);
        }
        let Some(rx) = rx else {
            for q in batches {
                let _ = q.reply.send(Ok(ProduceAck { base_offset: -1, log_append_time: -1 }));
            }
            return;
        };
        let in_flight = InFlight::<ProduceRequest> { conn: self.clone(), id, rx, version, _response: std::marker::PhantomData };
        tokio::spawn(async move { super::produce::answer(batches, in_flight.response().await) });
    }

    /// Registers a waiter, encodes the request for its correlation id and writes it; the waiter
    /// gets the response frame.
    async fn write_request<R: Request>(&self, request: &R, version: i16) -> Result<(i32, oneshot::Receiver<Bytes>)> {
        if self.is_closed() {
            return Err(Error::Disconnected(self.addr.clone()));
        }
        let (id, rx) = self.register();
        let frame = match encode_typed_request(request, version, id, &self.client_id) {
            Ok(f) => f,
            Err(e) => {
                self.unregister(id);
                return Err(e);
            }
        };
        let mut w = self.writer.lock().await;
        if let Err(e) = self.renew_session(&mut w).await {
            self.unregister(id);
            return Err(e);
        }
        self.write_locked(&mut w, id, &[&frame]).await?;
        Ok((id, rx))
    }

    /// A correlation id and the waiter its response goes to. Registered before writing, so a
    /// fast response always finds its waiter.
    fn register(&self) -> (i32, oneshot::Receiver<Bytes>) {
        let id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        (id, rx)
    }

    fn unregister(&self, id: i32) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// Writes the parts of one frame, in order, gathered into as few writes as the stream
    /// takes.
    async fn write_locked(&self, w: &mut Writer, id: i32, parts: &[impl AsRef<[u8]>]) -> Result<()> {
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p.as_ref())).filter(|s| !s.is_empty()).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let written = match w.write_vectored(rest).await {
                Ok(0) => Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                other => other,
            };
            match written {
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) => {
                    self.unregister(id);
                    self.closed.store(true, Ordering::SeqCst);
                    return Err(Error::Io(e));
                }
            }
        }
        Ok(())
    }

    async fn wait<R: Request>(&self, id: i32, rx: oneshot::Receiver<Bytes>, version: i16) -> Result<R::Response> {
        let mut frame = match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(_)) => return Err(Error::Disconnected(self.addr.clone())),
            Err(_) => {
                self.unregister(id);
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
        let mut w = self.writer.lock().await;
        self.renew_session(&mut w).await?;
        if let Err(e) = w.write_all(&frame).await {
            self.closed.store(true, Ordering::SeqCst);
            return Err(Error::Io(e));
        }
        Ok(())
    }
}

/// Takes the batches queued for a connection and writes them, combined, one request at a
/// time. Ends when the connection is dropped.
async fn combine_produce(conn: Weak<BrokerConnection>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut waiting: VecDeque<Queued> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(q) => waiting.push_back(q),
                None => return,
            }
        }
        // Producers woken together (by one fetch answer, say) queue their batches in one pass
        // of the scheduler: this task lets that pass finish before it takes the request, or it
        // would run between them and write one batch at a time.
        tokio::task::yield_now().await;
        while let Ok(q) = queue.try_recv() {
            waiting.push_back(q);
        }
        let Some(conn) = conn.upgrade() else {
            return;
        };
        let request = super::produce::next_request(&mut waiting);
        conn.write_produce(request).await;
    }
}
