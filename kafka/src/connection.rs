//! Reading and writing whole frames on a byte stream. This is where the socket lives; the
//! bytes are interpreted by [`crate::frame`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::frame::complete_frame_len;

/// Buffers a stream and hands out complete frames without their size prefix. Memory follows the
/// bytes that arrived, not the size a frame claims: a peer that announces 100 MiB and sends
/// one byte a second costs a few kilobytes.
pub struct FrameReader {
    buf: BytesMut,
    limit: usize,
    /// Where a large frame is read: a reader of answers only, which also sets a frame's whole
    /// size aside as soon as its size prefix is read.
    memory: Option<AnswerMemory>,
    /// The large frame being read, kept here rather than in the read's future, so a read that
    /// is given up loses nothing.
    lending: Option<Lending>,
}

/// A large frame being read into memory lent by an [`AnswerMemory`].
struct Lending {
    /// The frame's bytes so far.
    body: Vec<u8>,
    /// Its size.
    len: usize,
    home: AnswerMemory,
}

/// A frame at least this large is read into [`AnswerMemory`]. Fresh memory of this size comes
/// straight from the kernel, which zeroes every page on first touch: reading a 32 MiB fetch
/// answer into fresh memory costs about as much CPU as copying it twice.
const LEND_FROM: usize = 256 * 1024;

/// The least a read asks for.
const MIN_READ: usize = 4096;

impl FrameReader {
    /// A reader that grows its buffer as a frame's bytes arrive, so a peer that announces a
    /// large frame and sends little of it costs little (a broker reading requests).
    pub fn new(limit: usize) -> Self {
        FrameReader { buf: BytesMut::new(), limit, memory: None, lending: None }
    }

    /// A reader that sets a frame's whole size aside (within `limit`) as soon as its size is
    /// read, so a large answer is read into one allocation, without copies as it grows: for a
    /// client reading the answers of brokers it chose to connect to. Large answers are read
    /// into the process's [`AnswerMemory`].
    pub fn for_answers(limit: usize) -> Self {
        Self::for_answers_in(limit, AnswerMemory::shared())
    }

    /// A reader of answers that reads its large answers into `memory`.
    pub fn for_answers_in(limit: usize, memory: AnswerMemory) -> Self {
        FrameReader { buf: BytesMut::new(), limit, memory: Some(memory), lending: None }
    }

    /// Changes the largest frame accepted from now on (a broker raises it once a client has
    /// authenticated).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The next whole frame, or `None` on a clean end of stream between frames. A read that is
    /// given up (its future dropped) loses nothing: the next read goes on where it stopped.
    pub async fn read_frame<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Option<Bytes>> {
        if let Some(memory) = &self.memory {
            memory.let_go_idle(Instant::now());
        }
        loop {
            if self.lending.is_none() {
                if let Some(len) = complete_frame_len(&self.buf, self.limit)? {
                    let mut frame = self.buf.split_to(4 + len);
                    let _ = frame.split_to(4);
                    return Ok(Some(frame.freeze()));
                }
                self.start_lending();
            }
            if let Some(lending) = &mut self.lending {
                let rest = lending.len - lending.body.len();
                if rest > 0 {
                    if r.read_buf(&mut (&mut lending.body).limit(rest)).await? == 0 {
                        return Err(Error::MalformedFrame(format!(
                            "connection closed inside a frame ({} of {} bytes arrived)",
                            lending.body.len(),
                            lending.len
                        )));
                    }
                    continue;
                }
                if let Some(Lending { body, home, .. }) = self.lending.take() {
                    return Ok(Some(Bytes::from_owner(Lent { body, home })));
                }
            }
            // Room for what may arrive next: at least 4 KiB, and as much again as has arrived
            // of a large frame (never past its end), so a large request is read with few
            // syscalls and regrowth costs amortised constant time per byte.
            let want = if self.buf.len() >= 4 {
                4 + i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]).max(0) as usize
            } else {
                4
            };
            let spare = self.buf.capacity() - self.buf.len();
            if self.memory.is_some() && want <= self.limit + 4 {
                // A reader of answers: the rest of the frame, and never less than 4 KiB, so small
                // answers that arrived together (a connection's produce answers) are read by one
                // call rather than two each (size, then body).
                let need = want.saturating_sub(self.buf.len()).max(MIN_READ);
                if spare < need {
                    self.buf.reserve(need);
                }
            } else if spare < MIN_READ {
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

    /// Once the size of an incomplete large frame is known (and within the limit), moves the
    /// bytes of it that arrived into memory lent for the whole frame; the rest is read there.
    fn start_lending(&mut self) {
        let Some(memory) = &self.memory else { return };
        if self.buf.len() < 4 {
            return;
        }
        let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]).max(0) as usize;
        if len < LEND_FROM || len > self.limit {
            return;
        }
        let mut body = memory.take(len);
        let arrived = (self.buf.len() - 4).min(len);
        body.extend_from_slice(&self.buf[4..4 + arrived]);
        self.buf.advance(4 + arrived);
        self.lending = Some(Lending { body, len, home: memory.clone() });
    }
}

/// Memory for large answers that outlives the frames read into it. When the last holder of a
/// frame lets go (a mirror's record sets, once the target has taken their batches), its memory
/// comes back here, and the next large answer is read into it rather than into fresh pages the
/// kernel must fault in and zero. How many answers are in flight at once therefore decides how
/// much memory is set aside, not how many answers a run reads. At most [`MAX_SPARES`] are kept
/// unused, and none for longer than [`SPARE_IDLE`], so a worker that goes quiet gives its
/// memory back. One is shared by the process ([`AnswerMemory::shared`]).
#[derive(Clone)]
pub struct AnswerMemory(Arc<Mutex<Spares>>);

struct Spares {
    /// Memory nobody holds, with when it came back.
    idle: Vec<(Vec<u8>, Instant)>,
    /// The largest frame lent memory so far. New memory is set aside a little above this size
    /// (see [`SLACK`]), so that any spare fits any answer; pages a smaller answer does not reach
    /// are never touched, and untouched pages cost nothing.
    largest: usize,
}

/// At most this many spares are kept unused.
const MAX_SPARES: usize = 4;

/// New memory is set aside at least this much larger than the largest frame so far, rounded
/// to a multiple of it.
const SLACK: usize = 1 << 20;

/// A spare unused this long is let go.
const SPARE_IDLE: Duration = Duration::from_secs(5);

/// A frame's memory, lent by an [`AnswerMemory`] and given back when the frame's last holder
/// lets go.
struct Lent {
    body: Vec<u8>,
    home: AnswerMemory,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.body));
    }
}

impl Default for AnswerMemory {
    fn default() -> Self {
        AnswerMemory(Arc::new(Mutex::new(Spares { idle: Vec::new(), largest: 0 })))
    }
}

impl AnswerMemory {
    /// The process's memory for answers, shared by all its readers of answers.
    pub fn shared() -> AnswerMemory {
        static SHARED: OnceLock<AnswerMemory> = OnceLock::new();
        SHARED.get_or_init(AnswerMemory::default).clone()
    }

    fn spares(&self) -> std::sync::MutexGuard<'_, Spares> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Empty memory for a frame of `len` bytes: the smallest spare that fits, or new memory.
    fn take(&self, len: usize) -> Vec<u8> {
        let mut spares = self.spares();
        spares.largest = spares.largest.max(len);
        let fits = spares
            .idle
            .iter()
            .enumerate()
            .filter(|(_, (body, _))| body.capacity() >= len)
            .min_by_key(|(_, (body, _))| body.capacity())
            .map(|(at, _)| at);
        if let Some(at) = fits {
            return spares.idle.swap_remove(at).0;
        }
        // Rounded up, so that answers a few bytes larger than the largest so far (a fetch
        // answer is its records plus headers that vary) still fit the spares.
        let size = spares.largest.saturating_add(SLACK).next_multiple_of(SLACK);
        drop(spares);
        Vec::with_capacity(size)
    }

    /// Keeps a frame's memory for the next answer, unless [`MAX_SPARES`] larger ones are kept.
    fn give_back(&self, mut body: Vec<u8>) {
        body.clear();
        let mut spares = self.spares();
        if spares.idle.len() < MAX_SPARES {
            spares.idle.push((body, Instant::now()));
            return;
        }
        // Full: it takes the place of the smallest spare if it is larger. Memory let go is
        // freed once the lock is released.
        let Some(smallest) = (0..spares.idle.len()).min_by_key(|at| spares.idle[*at].0.capacity()) else { return };
        if spares.idle[smallest].0.capacity() < body.capacity() {
            let replaced = std::mem::replace(&mut spares.idle[smallest], (body, Instant::now()));
            drop(spares);
            drop(replaced);
        }
    }

    /// Lets go of spares unused for [`SPARE_IDLE`] at `now`. Done whenever a reader of answers
    /// reads a frame, so a connection that goes quiet after a burst gives its memory back once
    /// its next answers come (a fetch connection gets one at least every fetch wait).
    pub fn let_go_idle(&self, now: Instant) {
        let is_stale = |since: &Instant| now.saturating_duration_since(*since) >= SPARE_IDLE;
        let mut spares = self.spares();
        if !spares.idle.iter().any(|(_, since)| is_stale(since)) {
            return;
        }
        let mut stale = Vec::new();
        let mut at = 0;
        while at < spares.idle.len() {
            if is_stale(&spares.idle[at].1) {
                stale.push(spares.idle.swap_remove(at));
            } else {
                at += 1;
            }
        }
        // Freed once the lock is released.
        drop(spares);
        drop(stale);
    }

    /// How many spares are kept unused, and their bytes set aside.
    pub fn unused(&self) -> (usize, usize) {
        let spares = self.spares();
        (spares.idle.len(), spares.idle.iter().map(|(body, _)| body.capacity()).sum())
    }
}

/// Writes one complete, already size-prefixed frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<()> {
    w.write_all(frame).await?;
    Ok(())
}

/// Writes the parts of one frame in order, gathered into as few writes as the stream takes.
pub async fn write_frame_parts<W: AsyncWrite + Unpin>(w: &mut W, parts: &[Bytes]) -> Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = parts.iter().filter(|p| !p.is_empty()).map(|p| std::io::IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match w.write_vectored(rest).await? {
            0 => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
            n => std::io::IoSlice::advance_slices(&mut rest, n),
        }
    }
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

    /// Reads that return bytes, counted.
    struct CountedReads<R> {
        inner: R,
        reads: usize,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for CountedReads<R> {
        fn poll_read(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
            if buf.filled().len() > before {
                self.reads += 1;
            }
            polled
        }
    }

    /// Small answers that arrived together are read together: a connection's produce answers
    /// cost a read call between them, not two each.
    #[tokio::test]
    async fn small_answers_that_arrived_together_are_read_by_one_call() {
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let mut rx = CountedReads { inner: rx, reads: 0 };
        let mut reader = FrameReader::for_answers_in(8 << 20, AnswerMemory::default());
        let answers: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 56]).collect();
        let mut wire = Vec::new();
        for a in &answers {
            wire.extend_from_slice(&(a.len() as i32).to_be_bytes());
            wire.extend_from_slice(a);
        }
        tx.write_all(&wire).await.expect("write");
        for a in &answers {
            let frame = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
            assert_eq!(&frame[..], &a[..]);
        }
        assert!(rx.reads <= 2, "40 answers of 60 bytes that arrived in one write took {} reads", rx.reads);
    }

    /// A reader of answers sets the whole frame aside once its size is known (one allocation,
    /// no regrowth), but never more than its limit: a larger frame is refused. A read given up
    /// halfway loses nothing.
    #[tokio::test]
    async fn a_reader_of_answers_sets_a_whole_frame_aside_within_its_limit() {
        let (mut tx, mut rx) = tokio::io::duplex(64 * 1024);
        let memory = AnswerMemory::default();
        let mut reader = FrameReader::for_answers_in(8 << 20, memory.clone());
        let body: Vec<u8> = (0..5_000_000u32).map(|i| (i * 3) as u8).collect();
        tx.write_all(&(body.len() as i32).to_be_bytes()).await.expect("write");
        tx.write_all(&body[..10]).await.expect("write");
        let pending = tokio::time::timeout(std::time::Duration::from_millis(100), reader.read_frame(&mut rx)).await;
        assert!(pending.is_err(), "not complete yet");
        let lending = reader.lending.as_ref().expect("a large frame is read into lent memory");
        assert!(lending.body.capacity() >= body.len(), "only {} bytes set aside", lending.body.capacity());
        assert_eq!(lending.body.len(), 10, "the bytes that arrived before the read was given up are kept");
        let rest = body[10..].to_vec();
        let writer = tokio::spawn(async move {
            tx.write_all(&rest[..1_000_000]).await.expect("write");
            tx.write_all(&rest[1_000_000..]).await.expect("write");
            // A small answer in the same write as the large one's end, then one over the limit.
            tx.write_all(&[&5i32.to_be_bytes()[..], b"small", &(9i32 << 20).to_be_bytes()].concat()).await.expect("write");
            tx
        });
        let frame = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        assert!(frame[..] == body[..]);
        let small = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        assert_eq!(&small[..], b"small", "bytes past a large frame are the next frame's");
        let _tx = writer.await.expect("writer");
        assert!(reader.read_frame(&mut rx).await.is_err(), "a frame over the limit is refused");
        assert!(reader.buf.capacity() < 9 << 20 && reader.lending.is_none(), "nothing was set aside for it");
    }

    /// A large answer's memory is read into again once every holder has let go of it, and
    /// never while someone still holds it, however many answers were read meanwhile.
    #[tokio::test]
    async fn a_large_answer_is_read_into_memory_its_holders_let_go_of() {
        let (mut tx, mut rx) = tokio::io::duplex(256 * 1024);
        let memory = AnswerMemory::default();
        let mut reader = FrameReader::for_answers_in(8 << 20, memory.clone());
        let sizes = [2 << 20, 1 << 20, 2 << 20, 2 << 20, 1 << 20, 2 << 20];
        let bodies: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(k, n)| vec![k as u8 + 1; *n]).collect();
        let sent = bodies.clone();
        let writer = tokio::spawn(async move {
            for body in &sent {
                tx.write_all(&(body.len() as i32).to_be_bytes()).await.expect("write");
                tx.write_all(body).await.expect("write");
            }
            tx
        });
        let mut read = Vec::new();
        let first = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        let first_at = first.as_ptr() as usize;
        let held = first.slice(100..200);
        drop(first);
        assert_eq!(memory.unused().0, 0, "a frame held in part is not given back");
        for _ in 0..3 {
            read.push(reader.read_frame(&mut rx).await.expect("read").expect("a frame"));
        }
        assert!(read.iter().all(|f| f.as_ptr() as usize != first_at), "a frame still held in part was read over");
        assert!(held.iter().all(|b| *b == 1), "a held frame kept its bytes");
        drop(held);
        assert_eq!(memory.unused().0, 1, "the first frame's memory came back when its last holder let go");
        let fifth = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        assert_eq!(fifth.as_ptr() as usize, first_at, "the first frame's memory was read into");
        assert_eq!(memory.unused().0, 0);
        read.push(fifth);
        // The second frame (1 MiB) was set aside at the size of the largest frame seen before
        // it (2 MiB), so its memory fits the sixth frame (2 MiB): any spare fits any answer.
        let second = read.remove(0);
        let second_at = second.as_ptr() as usize;
        drop(second);
        let sixth = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
        assert_eq!(sixth.as_ptr() as usize, second_at, "the second frame's memory was read into");
        read.push(sixth);
        for (frame, body) in read.iter().zip(&bodies[2..]) {
            assert!(frame[..] == body[..], "every frame holds its own bytes");
        }
        let _tx = writer.await.expect("writer");
    }

    /// At most [`MAX_SPARES`] frames' memory is kept unused, and none once unused for
    /// [`SPARE_IDLE`]: a worker that goes quiet after a burst gives its memory back.
    #[tokio::test]
    async fn unused_answer_memory_is_bounded_and_let_go_when_idle() {
        let (mut tx, mut rx) = tokio::io::duplex(256 * 1024);
        let memory = AnswerMemory::default();
        let mut reader = FrameReader::for_answers_in(8 << 20, memory.clone());
        let writer = tokio::spawn(async move {
            for k in 0..6u8 {
                tx.write_all(&(1i32 << 20).to_be_bytes()).await.expect("write");
                tx.write_all(&vec![k; 1 << 20]).await.expect("write");
            }
            tx
        });
        let mut held = Vec::new();
        for k in 0..6u8 {
            let frame = reader.read_frame(&mut rx).await.expect("read").expect("a frame");
            assert!(frame.len() == 1 << 20 && frame.iter().all(|b| *b == k));
            held.push(frame);
        }
        drop(held);
        let (spares, bytes) = memory.unused();
        assert_eq!(spares, MAX_SPARES, "at most four spares are kept");
        assert_eq!(bytes, MAX_SPARES * ((1 << 20) + SLACK), "each a little larger than the answers read into it");
        memory.let_go_idle(Instant::now() + SPARE_IDLE / 2);
        assert_eq!(memory.unused().0, MAX_SPARES, "spares unused for a short while are kept");
        memory.let_go_idle(Instant::now() + SPARE_IDLE);
        assert_eq!(memory.unused(), (0, 0), "spares unused for long are let go");
        let _tx = writer.await.expect("writer");
    }

    /// Fetch answers of the same size in records differ by a few bytes of headers: memory set
    /// aside for one fits the next even when that is a little larger.
    #[test]
    fn memory_set_aside_fits_answers_a_little_larger() {
        let memory = AnswerMemory::default();
        let first = memory.take(32 << 20);
        let at = first.as_ptr() as usize;
        memory.give_back(first);
        let second = memory.take((32 << 20) + 100);
        assert_eq!(second.as_ptr() as usize, at, "the spare of a slightly smaller answer was lent again");
        let fresh = memory.take(16 << 20);
        assert!(fresh.capacity() > (32 << 20) + 100, "new memory fits the largest answer so far: {}", fresh.capacity());
    }

    /// A larger frame's memory takes the place of a smaller spare when the spares are full.
    #[test]
    fn full_spares_keep_the_largest_memory() {
        let memory = AnswerMemory::default();
        for n in 1..=MAX_SPARES {
            memory.give_back(Vec::with_capacity(n << 20));
        }
        memory.give_back(Vec::with_capacity(1 << 19));
        assert_eq!(memory.unused().1, (1..=MAX_SPARES).sum::<usize>() << 20, "a smaller one is not kept");
        memory.give_back(Vec::with_capacity(8 << 20));
        assert_eq!(memory.unused(), (MAX_SPARES, ((2..=MAX_SPARES).sum::<usize>() + 8) << 20));
        assert!(memory.take(8 << 20).capacity() >= 8 << 20, "a spare that fits is lent");
        assert!(memory.take(2 << 20).capacity() == 2 << 20, "the smallest that fits is lent");
    }

}
