//! Sparse offset and time indexes.
//!
//! The active segment keeps its entries in memory only (they are rebuilt by scanning on open);
//! a sealed segment's index lives in its file and is searched with positional reads, so old
//! segments cost no memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::files::{replace_file, tmp_path};

/// One fixed-size index entry.
pub(crate) trait Entry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Option<Self>;
    /// The value lookups search by (relative offset, or timestamp).
    fn key(&self) -> i64;
}

/// `.index` entry: offset relative to the segment base and byte position of a batch start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel_offset: u32,
    pub position: u32,
}

/// `.timeindex` entry: the largest timestamp so far and the relative offset of the batch that
/// first reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub rel_offset: u32,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(OffsetEntry {
            rel_offset: be_u32(b, 0)?,
            position: be_u32(b, 4)?,
        })
    }
    fn key(&self) -> i64 {
        i64::from(self.rel_offset)
    }
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let ts = i64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
        Some(TimeEntry {
            timestamp: ts,
            rel_offset: be_u32(b, 8)?,
        })
    }
    fn key(&self) -> i64 {
        self.timestamp
    }
}

enum Store<E> {
    Memory(Vec<E>),
    File { file: File, entries: u64 },
}

pub(crate) struct Index<E: Entry> {
    store: Store<E>,
}

impl<E: Entry> Index<E> {
    pub fn in_memory(entries: Vec<E>) -> Self {
        Index {
            store: Store::Memory(entries),
        }
    }

    /// Opens a sealed index file. `None` when it is missing, its size is not a whole number of
    /// entries, or its last entry fails `check` (points outside the segment): rebuild it then.
    pub fn open_sealed(path: &Path, check: impl Fn(&E) -> bool) -> io::Result<Option<Self>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len % E::SIZE as u64 != 0 {
            return Ok(None);
        }
        let index = Index {
            store: Store::File {
                file,
                entries: len / E::SIZE as u64,
            },
        };
        match index.last()? {
            Some(e) if !check(&e) => Ok(None),
            _ => Ok(Some(index)),
        }
    }

    /// Appends an entry (active segments only; a sealed index is never appended to).
    pub fn push(&mut self, e: E) {
        if let Store::Memory(v) = &mut self.store {
            v.push(e);
        }
    }

    pub fn len(&self) -> u64 {
        match &self.store {
            Store::Memory(v) => v.len() as u64,
            Store::File { entries, .. } => *entries,
        }
    }

    fn get(&self, i: u64) -> io::Result<Option<E>> {
        match &self.store {
            Store::Memory(v) => Ok(usize::try_from(i).ok().and_then(|i| v.get(i)).copied()),
            Store::File { file, entries } => {
                if i >= *entries {
                    return Ok(None);
                }
                let mut buf = [0u8; 16];
                let buf = &mut buf[..E::SIZE];
                file.read_exact_at(buf, i * E::SIZE as u64)?;
                Ok(E::decode(buf))
            }
        }
    }

    pub fn last(&self) -> io::Result<Option<E>> {
        match self.len() {
            0 => Ok(None),
            n => self.get(n - 1),
        }
    }

    /// The last entry whose key is <= `target` (entries are sorted by key). A sealed file
    /// that is not sorted gives a wrong but harmless answer: callers verify what they find.
    pub fn floor(&self, target: i64) -> io::Result<Option<E>> {
        let (mut lo, mut hi) = (0u64, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid)? {
                Some(e) if e.key() <= target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        if lo == 0 {
            Ok(None)
        } else {
            self.get(lo - 1)
        }
    }

    /// Writes the in-memory entries to `path` through a temporary file, an fsync and a rename
    /// (so neither a crash nor a power loss leaves a half-written index that looks sane), then
    /// reads from the file.
    pub fn seal(&mut self, path: &Path) -> io::Result<()> {
        let Store::Memory(v) = &self.store else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(v.len() * E::SIZE);
        for e in v {
            e.encode(&mut bytes);
        }
        let file = replace_file(&tmp_path(path), path, &bytes, true)?;
        self.store = Store::File {
            file,
            entries: v.len() as u64,
        };
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        match &self.store {
            Store::Memory(_) => Ok(()),
            Store::File { file, .. } => file.sync_data(),
        }
    }

    /// A second handle on the index file, for an fsync without the partition lock; `None`
    /// while the index lives in memory.
    pub fn file_handle(&self) -> Option<io::Result<File>> {
        match &self.store {
            Store::Memory(_) => None,
            Store::File { file, .. } => Some(file.try_clone()),
        }
    }
}
