//! One request at a time on one socket, with raw access: for tools and tests that need to
//! send malformed bytes or read frames themselves. The mirror uses [`super::BrokerConnection`].

use bytes::Bytes;
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::connection::FrameReader;
use crate::error::{Error, Result};
use crate::frame::{decode_typed_response, encode_typed_request, DEFAULT_MAX_FRAME};

pub struct Connection {
    stream: TcpStream,
    reader: FrameReader,
    next_correlation_id: i32,
    client_id: StrBytes,
}

impl Connection {
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
