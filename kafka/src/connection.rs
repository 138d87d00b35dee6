//! Reading and writing whole frames on a byte stream. This is where the socket lives; the
//! bytes are interpreted by [`crate::frame`].

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::frame::complete_frame_len;

/// Buffers a stream and hands out complete frames without their size prefix. Memory follows the
/// bytes that arrived, not the size a frame claims: a peer that announces 100 MiB and sends
/// one byte a second costs a few kilobytes.
pub struct FrameReader {
    buf: BytesMut,
    limit: usize,
}

/// The least a read asks for.
const MIN_READ: usize = 4096;

impl FrameReader {
    pub fn new(limit: usize) -> Self {
        FrameReader { buf: BytesMut::new(), limit }
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
            // Room for what may arrive next: at least 4 KiB, and as much again as has arrived
            // of a large frame (never past its end), so a large request is read with few
            // syscalls and regrowth costs amortised constant time per byte.
            let want = if self.buf.len() >= 4 {
                4 + i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]).max(0) as usize
            } else {
                4
            };
            if self.buf.capacity() - self.buf.len() < MIN_READ {
                let rest = want.saturating_sub(self.buf.len()).max(MIN_READ);
                self.buf.reserve(self.buf.len().max(MIN_READ).min(rest));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame that claims 100 MiB and brings ten bytes costs kilobytes, and a large frame
    /// that does arrive is read whole.
    #[tokio::test]
    async fn memory_follows_the_bytes_that_arrived() {
        let (mut tx, mut rx) = tokio::io::duplex(1 << 20);
        let mut reader = FrameReader::new(200 << 20);
        tx.write_all(&(100i32 << 20).to_be_bytes()).await.expect("write");
        tx.write_all(&[7u8; 10]).await.expect("write");
        let pending = tokio::time::timeout(std::time::Duration::from_millis(100), reader.read_frame(&mut rx)).await;
        assert!(pending.is_err(), "a frame of 14 bytes out of 100 MiB is not complete");
        assert!(reader.buf.capacity() <= 16 * 1024, "reserved {} bytes for 14 that arrived", reader.buf.capacity());

        let (mut tx, mut rx) = tokio::io::duplex(64 * 1024);
        let mut reader = FrameReader::new(200 << 20);
        let body: Vec<u8> = (0..5_000_000u32).map(|i| i as u8).collect();
        let writer = tokio::spawn(async move {
            tx.write_all(&(body.len() as i32).to_be_bytes()).await.expect("write");
            tx.write_all(&body).await.expect("write");
            body
        });
        let frame = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        assert_eq!(&frame[..], &writer.await.expect("writer")[..]);
    }
}
