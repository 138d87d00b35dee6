//! Walking the batches of a segment file: chunked positional reads and a header iterator.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use tern_kafka::batch::{BatchHeader, HEADER_LEN};

use super::segment::Segment;
use super::{Error, Result};

/// Read sizes: whole-segment scans on open, and header walks for lookups (which start at most
/// about `index_interval_bytes` before their target).
pub(super) const SCAN_CHUNK: usize = 256 * 1024;
const LOOKUP_CHUNK: usize = 8 * 1024;

/// Iterator over batch headers; a broken chain is reported as `Corrupt`.
pub(super) struct Headers<'a> {
    seg: &'a Segment,
    reader: ChunkReader<'a>,
    pos: u64,
}

impl<'a> Headers<'a> {
    pub(super) fn new(seg: &'a Segment, file: &'a File, pos: u64) -> Self {
        Headers {
            seg,
            reader: ChunkReader::new(file, seg.size, LOOKUP_CHUNK),
            pos,
        }
    }
}

impl Iterator for Headers<'_> {
    type Item = Result<(u64, BatchHeader)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.seg.size {
            return None;
        }
        let pos = self.pos;
        let r = match self.reader.get(pos, HEADER_LEN) {
            Err(e) => Err(Error::Io(e)),
            Ok(None) => Err(self.seg.corrupt(pos, "partial batch header")),
            Ok(Some(b)) => match BatchHeader::parse(b) {
                Err(e) => Err(self.seg.corrupt(pos, e)),
                Ok(h) if pos + h.total_len() as u64 > self.seg.size => Err(self
                    .seg
                    .corrupt(pos, "batch runs past the end of the segment")),
                Ok(h) => Ok((pos, h)),
            },
        };
        match &r {
            Ok((_, h)) => self.pos += h.total_len() as u64,
            Err(_) => self.pos = self.seg.size,
        }
        Some(r)
    }
}

/// Sequential reads in large chunks from a file region `0..end`.
pub(super) struct ChunkReader<'a> {
    file: &'a File,
    end: u64,
    chunk: usize,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> ChunkReader<'a> {
    pub(super) fn new(file: &'a File, end: u64, chunk: usize) -> Self {
        ChunkReader {
            file,
            end,
            chunk,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// `len` bytes at `pos`, or `None` if they run past `end`.
    pub(super) fn get(&mut self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        if pos.saturating_add(len as u64) > self.end {
            return Ok(None);
        }
        let cached = pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64;
        if !cached {
            let n = (len.max(self.chunk) as u64).min(self.end - pos) as usize;
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(self.buf.get(at..at + len))
    }
}
