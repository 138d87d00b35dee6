//! One request at a time on one socket, with raw access: for tools and tests that need to
//! send malformed bytes or read frames themselves. The mirror uses [`super::BrokerConnection`].

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::AsyncWriteExt;

use crate::connection::FrameReader;
use crate::error::{Error, Result};
use crate::frame::{decode_typed_response, encode_typed_request, DEFAULT_MAX_FRAME};
use crate::security::{resolve_secret, BoxStream, Connector, SaslSession, SaslSettings};

pub struct Connection {
    stream: BoxStream,
    reader: FrameReader,
    next_correlation_id: i32,
    client_id: StrBytes,
}

impl Connection {
    pub async fn connect(addr: &str) -> Result<Connection> {
        Self::connect_tls(addr, &Connector::plaintext()).await
    }

    /// Connects over TLS if `connector` has it, without authenticating (see
    /// [`Connection::authenticate`]), so tests can see what a broker does before that.
    pub async fn connect_tls(addr: &str, connector: &Connector) -> Result<Connection> {
        let stream = connector.connect(addr, Duration::from_secs(30)).await?;
        Ok(Connection {
            stream,
            reader: FrameReader::new(DEFAULT_MAX_FRAME),
            next_correlation_id: 1,
            client_id: StrBytes::from_static_str("tern"),
        })
    }

    /// Connects and, if `connector` has SASL settings, authenticates.
    pub async fn connect_with(addr: &str, connector: &Connector) -> Result<Connection> {
        let mut c = Self::connect_tls(addr, connector).await?;
        if let Some(sasl) = connector.sasl() {
            c.authenticate(sasl).await?;
        }
        Ok(c)
    }

    /// SaslHandshake v1 and SaslAuthenticate v2 rounds; returns the session lifetime the
    /// broker granted in milliseconds (0: unlimited).
    pub async fn authenticate(&mut self, settings: &SaslSettings) -> Result<i64> {
        let mechanism = settings.mechanism;
        let hs = self.call(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name())), 1).await?;
        if hs.error_code != 0 {
            return Err(Error::kafka(hs.error_code, format!("SaslHandshake {mechanism}")));
        }
        let secret = resolve_secret(settings).await?;
        let (mut session, mut message) = SaslSession::start(settings, &secret)?;
        loop {
            let resp = self.call(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)), 2).await?;
            if resp.error_code != 0 {
                let why = resp.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
                return Err(Error::Authentication(format!("{mechanism} (error code {}): {why}", resp.error_code)));
            }
            match session.next(&resp.auth_bytes)? {
                Some(next) => message = next,
                None => return Ok(resp.session_lifetime_ms),
            }
        }
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.send(request, version).await?;
        let mut frame = self.read_frame().await?;
        let (got, body) = decode_typed_response::<R>(&mut frame, version)?;
        if got != correlation_id {
            return Err(Error::MalformedFrame(format!("response correlation id {got} for request {correlation_id}")));
        }
        Ok(body)
    }

    /// Sends a request that gets no response (produce with acks=0); returns its correlation id.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_typed_request(request, version, correlation_id, &self.client_id)?;
        self.stream.write_all(&frame).await?;
        Ok(correlation_id)
    }

    /// Writes raw bytes as they are (for tests of malformed input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads the next response frame; `Error::Io(UnexpectedEof)` when the peer closed.
    pub async fn read_frame(&mut self) -> Result<Bytes> {
        match self.reader.read_frame(&mut self.stream).await? {
            Some(frame) => Ok(frame),
            None => Err(Error::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed by the broker"))),
        }
    }
}
