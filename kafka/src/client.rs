//! A connection to one broker that sends typed requests and reads their responses.
//!
//! This is the bottom layer of Tern's client: one request at a time on one socket. Routing,
//! metadata and pipelining build on top of it.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::connection::FrameReader;
use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_FRAME;

pub struct Connection {
    stream: TcpStream,
    reader: FrameReader,
    next_correlation_id: i32,
    client_id: StrBytes,
}

impl Connection {
    /// Connects to `host:port`. Connection setup lives here alone, so TLS and SASL can be
    /// added in one place.
    pub async fn connect(addr: &str) -> Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            reader: FrameReader::new(DEFAULT_MAX_FRAME),
            next_correlation_id: 1,
            client_id: StrBytes::from_static_str("tern"),
        })
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.send(request, version).await?;
        let mut frame = self.read_frame().await?;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| Error::MalformedFrame(format!("response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(Error::MalformedFrame(format!(
                "response correlation id {} for request {correlation_id}",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version)
            .map_err(|e| Error::MalformedFrame(format!("response body (api {} v{version}): {e}", R::KEY)))
    }

    /// Sends a request that gets no response (produce with acks=0); returns its correlation id.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| Error::Encode(e.to_string()))?;
        request.encode(&mut buf, version).map_err(|e| Error::Encode(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).await?;
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
            None => Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed by the broker",
            ))),
        }
    }
}
