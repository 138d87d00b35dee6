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
    /// Whether a frame's whole size is set aside as soon as its size prefix is read.
    whole: bool,
    /// Large frames handed out, kept so that their memory is read into again once every
    /// holder has let go (a reader of answers only).
    handed_out: Vec<Bytes>,
}

/// A frame at least this large is kept for reuse. Fresh memory of this size comes straight
/// from the kernel, which zeroes every page on first touch: reading a 32 MiB fetch answer into
/// fresh memory costs about as much CPU as copying it twice.
const REUSE_FROM: usize = 256 * 1024;

/// At most this many large frames are remembered per reader, in use or not: enough for the
/// answers a mirror holds while their batches are produced elsewhere.
const REUSE_SLOTS: usize = 8;

/// At most this many remembered frames that nobody else holds are kept: the memory a reader
/// keeps beyond what is in use is at most this many frames.
const IDLE_SPARES: usize = 2;

/// The least a read asks for.
const MIN_READ: usize = 4096;

impl FrameReader {
    /// A reader that grows its buffer as a frame's bytes arrive, so a peer that announces a
    /// large frame and sends little of it costs little (a broker reading requests).
    pub fn new(limit: usize) -> Self {
        FrameReader { buf: BytesMut::new(), limit, whole: false, handed_out: Vec::new() }
    }

    /// A reader that sets a frame's whole size aside (within `limit`) as soon as its size is
    /// read, so a large answer is read into one allocation, without copies as it grows: for a
    /// client reading the answers of brokers it chose to connect to.
    pub fn for_answers(limit: usize) -> Self {
        FrameReader { buf: BytesMut::new(), limit, whole: true, handed_out: Vec::new() }
    }

    /// Changes the largest frame accepted from now on (a broker raises it once a client has
    /// authenticated).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The next whole frame, or `None` on a clean end of stream between frames.
    pub async fn read_frame<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Option<Bytes>> {
        self.let_go_idle();
        loop {
            if let Some(len) = complete_frame_len(&self.buf, self.limit)? {
                let mut frame = self.buf.split_to(4 + len);
                let _ = frame.split_to(4);
                let frame = frame.freeze();
                if self.whole && len >= REUSE_FROM {
                    self.remember(frame.clone());
                }
                return Ok(Some(frame));
            }
            // Room for what may arrive next: at least 4 KiB, and as much again as has arrived
            // of a large frame (never past its end), so a large request is read with few
            // syscalls and regrowth costs amortised constant time per byte.
            let want = if self.buf.len() >= 4 {
                4 + i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]).max(0) as usize
            } else {
                4
            };
            if self.whole && want <= self.limit + 4 && self.buf.capacity() < want {
                if want >= REUSE_FROM {
                    if let Some(mut spare) = self.reusable(want) {
                        spare.extend_from_slice(&self.buf);
                        self.buf = spare;
                    }
                }
                self.buf.reserve(want - self.buf.len());
            } else if self.buf.capacity() - self.buf.len() < MIN_READ {
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

impl FrameReader {
    /// Keeps a handle on a large frame just handed out; past [`REUSE_SLOTS`] the oldest handle
    /// is let go.
    fn remember(&mut self, frame: Bytes) {
        self.handed_out.push(frame);
        self.let_go_idle();
        if self.handed_out.len() > REUSE_SLOTS {
            self.handed_out.remove(0);
        }
    }

    /// Lets go of remembered frames nobody else holds beyond [`IDLE_SPARES`], the oldest first
    /// (their memory returns to the allocator). Done whenever a frame is read, so a connection
    /// that goes quiet after a burst keeps at most that many once its next answers come (a
    /// fetch connection gets one at least every fetch wait).
    fn let_go_idle(&mut self) {
        let mut idle = 0;
        for at in (0..self.handed_out.len()).rev() {
            if self.handed_out[at].is_unique() {
                idle += 1;
                if idle > IDLE_SPARES {
                    self.handed_out.remove(at);
                }
            }
        }
    }

    /// An empty buffer of at least `want` bytes, made of a frame's memory that every holder
    /// has let go of: the smallest that fits.
    fn reusable(&mut self, want: usize) -> Option<BytesMut> {
        let at = self
            .handed_out
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_unique() && f.len() + 4 >= want)
            .min_by_key(|(_, f)| f.len())
            .map(|(i, _)| i)?;
        let mut spare = self.handed_out.swap_remove(at).try_into_mut().ok()?;
        spare.clear();
        // The frame began four bytes into its allocation, after its size prefix; a unique
        // buffer that is reserved within its allocation moves back to the allocation's start.
        spare.reserve(want);
        Some(spare)
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

    /// A reader of answers sets the whole frame aside once its size is known (one allocation,
    /// no regrowth), but never more than its limit: a larger frame is refused.
    #[tokio::test]
    async fn a_reader_of_answers_sets_a_whole_frame_aside_within_its_limit() {
        let (mut tx, mut rx) = tokio::io::duplex(64 * 1024);
        let mut reader = FrameReader::for_answers(8 << 20);
        let body: Vec<u8> = (0..5_000_000u32).map(|i| (i * 3) as u8).collect();
        tx.write_all(&(body.len() as i32).to_be_bytes()).await.expect("write");
        tx.write_all(&body[..10]).await.expect("write");
        let pending = tokio::time::timeout(std::time::Duration::from_millis(100), reader.read_frame(&mut rx)).await;
        assert!(pending.is_err(), "not complete yet");
        assert!(reader.buf.capacity() >= 4 + body.len(), "only {} bytes set aside", reader.buf.capacity());
        let rest = body[10..].to_vec();
        let writer = tokio::spawn(async move {
            tx.write_all(&rest).await.expect("write");
            tx.write_all(&(9i32 << 20).to_be_bytes()).await.expect("write");
            tx
        });
        let frame = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        assert!(frame[..] == body[..]);
        let _tx = writer.await.expect("writer");
        assert!(reader.read_frame(&mut rx).await.is_err(), "a frame over the limit is refused");
        assert!(reader.buf.capacity() < 9 << 20, "nothing was set aside for it");
    }

    /// A large answer's memory is read into again once every holder has let go of it, and
    /// never while someone still holds it.
    #[tokio::test]
    async fn a_large_answer_is_read_into_memory_its_holders_let_go_of() {
        let (mut tx, mut rx) = tokio::io::duplex(256 * 1024);
        let mut reader = FrameReader::for_answers(8 << 20);
        let bodies: Vec<Vec<u8>> = (0..4u8).map(|k| vec![k; 2 << 20]).collect();
        let sent = bodies.clone();
        let writer = tokio::spawn(async move {
            for body in &sent {
                tx.write_all(&(body.len() as i32).to_be_bytes()).await.expect("write");
                tx.write_all(body).await.expect("write");
            }
            tx
        });
        let first = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        let first_at = first.as_ptr() as usize;
        let held = first.slice(100..200);
        drop(first);
        let second = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        assert_ne!(second.as_ptr() as usize, first_at, "a frame still held in part was read over");
        assert!(held.iter().all(|b| *b == 0), "a held frame kept its bytes");
        assert!(second[..] == bodies[1][..]);
        drop(held);
        assert!(reader.handed_out.iter().any(|f| f.as_ptr() as usize == first_at && f.is_unique()), "the first frame waits for reuse");
        let third = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        // The same allocation, give or take where its size prefix sat.
        assert!((third.as_ptr() as usize).abs_diff(first_at) <= 8, "the first frame's memory, let go of, was read into");
        assert!(third[..] == bodies[2][..]);
        assert_eq!(reader.handed_out.len(), 2, "the first frame's handle was taken for reuse; the second's and third's remain");
        let fourth = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        assert!(fourth[..] == bodies[3][..]);
        assert!(second[..] == bodies[1][..] && third[..] == bodies[2][..], "frames still held are untouched");
        assert!(reader.handed_out.len() <= REUSE_SLOTS);
        let _tx = writer.await.expect("writer");
    }

    /// A connection that goes quiet after a burst of large answers keeps at most
    /// [`IDLE_SPARES`] of them once nobody holds them and its next answers come.
    #[tokio::test]
    async fn large_answers_nobody_holds_are_let_go_beyond_two() {
        let (mut tx, mut rx) = tokio::io::duplex(256 * 1024);
        let mut reader = FrameReader::for_answers(8 << 20);
        let writer = tokio::spawn(async move {
            for k in 0..5u8 {
                tx.write_all(&(1i32 << 20).to_be_bytes()).await.expect("write");
                tx.write_all(&vec![k; 1 << 20]).await.expect("write");
            }
            for _ in 0..2 {
                tx.write_all(&3i32.to_be_bytes()).await.expect("write");
                tx.write_all(b"end").await.expect("write");
            }
            tx
        });
        let mut held = Vec::new();
        for k in 0..5u8 {
            let frame = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
            assert!(frame.len() == 1 << 20 && frame.iter().all(|b| *b == k));
            held.push(frame);
        }
        drop(held);
        for _ in 0..2 {
            let small = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
            assert_eq!(&small[..], b"end");
        }
        let idle = reader.handed_out.iter().filter(|f| f.is_unique()).count();
        assert!(idle <= IDLE_SPARES, "kept {idle} large frames nobody holds");
        let _tx = writer.await.expect("writer");
    }

}
