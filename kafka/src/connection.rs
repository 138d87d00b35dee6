//! Reading and writing whole frames on a byte stream. This is where the socket lives; the
//! bytes are interpreted by [`crate::frame`].

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::frame::complete_frame_len;

/// Buffers a stream and hands out complete frames without their size prefix.
pub struct FrameReader {
    buf: BytesMut,
    limit: usize,
}

impl FrameReader {
    pub fn new(limit: usize) -> Self {
        FrameReader { buf: BytesMut::with_capacity(64 * 1024), limit }
    }

    /// Changes the largest frame accepted from now on (a broker raises it once a client has
    /// authenticated).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The next whole frame, or `None` on a clean end of stream between frames.
    pub async fn read_frame<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Option<Bytes>> {
        loop {
            if let Some(len) = complete_frame_len(&self.buf, self.limit)? {
                let mut frame = self.buf.split_to(4 + len);
                let _ = frame.split_to(4);
                return Ok(Some(frame.freeze()));
            }
            // Reserve for the whole frame once its size is known, so a large produce request
            // is read with few syscalls and no repeated regrowth.
            if self.buf.len() >= 4 {
                let want = 4 + i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                self.buf.reserve(want.saturating_sub(self.buf.len()));
            } else if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            if r.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(Error::MalformedFrame(format!(
                    "connection closed inside a frame ({} bytes buffered)",
                    self.buf.len()
                )));
            }
        }
    }
}

/// Writes one complete, already size-prefixed frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<()> {
    w.write_all(frame).await?;
    Ok(())
}
