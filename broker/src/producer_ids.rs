//! Producer ids for InitProducerId, unique across restarts.
//!
//! Like Kafka's controller, the broker reserves ids in blocks: the file `producer-id-block`
//! holds the first id not yet reserved, and is advanced (durably) before any id of a new block
//! is handed out. A crash loses at most the rest of a block, never reuses an id.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::storage::files::replace_durably;

const FILE: &str = "producer-id-block";
const BLOCK: i64 = 1000;

pub struct ProducerIds {
    path: PathBuf,
    /// Next id to hand out, and the end (exclusive) of the reserved block.
    next: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// Reserves the first block after what the data directory recorded.
    pub fn open(data_dir: &Path) -> Result<ProducerIds> {
        let path = data_dir.join(FILE);
        let start = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| Error::Metadata {
                path: path.display().to_string(),
                reason: format!("not a producer id: {:?}", text.trim()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        reserve(&path, start + BLOCK)?;
        Ok(ProducerIds { path, next: Mutex::new((start, start + BLOCK)) })
    }

    /// A producer id never handed out before by this data directory.
    pub fn allocate(&self) -> Result<i64> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if next.0 >= next.1 {
            reserve(&self.path, next.1 + BLOCK)?;
            next.1 += BLOCK;
        }
        let id = next.0;
        next.0 += 1;
        Ok(id)
    }
}

/// Records that ids below `end` are reserved.
fn reserve(path: &Path, end: i64) -> Result<()> {
    replace_durably(&path.with_extension("tmp"), path, format!("{end}\n").as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopens() {
        let dir = tempfile::tempdir().expect("dir");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 {
            let ids = ProducerIds::open(dir.path()).expect("open");
            for _ in 0..1500 {
                assert!(seen.insert(ids.allocate().expect("id")));
            }
        }
        assert_eq!(seen.len(), 4500);
    }
}
