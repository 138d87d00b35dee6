//! Opening a partition directory: finding segments, recovering the active one, and the
//! persisted log start offset.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;

use super::cleaner::recover_interrupted_cleaning;
use super::files::{replace_durably, tmp_path};
use super::segment::{segment_path, Segment};
use super::{Error, FsyncPolicy, LogConfig, Result};

const LOG_START_FILE: &str = "log-start-offset";

pub(super) struct Loaded {
    pub old: BTreeMap<i64, Segment>,
    pub active: Segment,
    pub log_start: i64,
}

/// Lists and opens the segments of `dir` (created if missing). Segments wholly below the
/// saved log start offset are deleted; the last segment is scanned and its torn tail cut.
pub(super) fn load(dir: &Path, config: &LogConfig) -> Result<Loaded> {
    fs::create_dir_all(dir)?;
    recover_interrupted_cleaning(dir)?;
    let mut bases = BTreeSet::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            fs::remove_file(entry.path())?;
            continue;
        }
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        match ext {
            "log" => {
                bases.insert(base);
            }
            "index" | "timeindex" => index_files.push((base, entry.path())),
            _ => {}
        }
    }
    // Index files whose log is gone (a deletion interrupted by a crash).
    for (base, path) in index_files {
        if !bases.contains(&base) {
            fs::remove_file(path)?;
        }
    }

    let saved_start = read_log_start(dir)?;
    let bases: Vec<i64> = bases.into_iter().collect();
    let first_base = bases.first().copied().unwrap_or(saved_start.unwrap_or(0));
    let mut log_start = saved_start.unwrap_or(first_base).max(first_base);
    let sync = config.fsync != FsyncPolicy::Never;
    let interval = config.index_interval_bytes;

    let mut old = BTreeMap::new();
    let mut active = None;
    for (i, &base) in bases.iter().enumerate() {
        match bases.get(i + 1) {
            Some(&next) if next <= log_start => delete_segment_files(dir, base)?,
            Some(&next) => {
                old.insert(base, Segment::open_sealed(dir, base, next, interval, sync)?);
            }
            None => active = Some(Segment::open_active(dir, base, interval)?),
        }
    }
    let active = match active {
        Some(seg) if log_start > seg.next_offset => {
            // The log start offset is past everything that survived: start afresh there, as
            // Kafka does, so offsets never go backwards.
            tracing::warn!(
                dir = %dir.display(), log_start, log_end = seg.next_offset,
                "log start offset is past the end of the log; starting an empty log there"
            );
            seg.delete_files(dir)?;
            for (_, s) in std::mem::take(&mut old) {
                s.delete_files(dir)?;
            }
            Segment::create(dir, log_start)?
        }
        Some(seg) => seg,
        None => Segment::create(dir, log_start)?,
    };
    if let Some(&first) = old.keys().next() {
        log_start = log_start.max(first);
    } else {
        log_start = log_start.max(active.base);
    }
    if saved_start != Some(log_start) {
        write_log_start(dir, log_start)?;
    }
    Ok(Loaded {
        old,
        active,
        log_start,
    })
}

fn delete_segment_files(dir: &Path, base: i64) -> io::Result<()> {
    for ext in ["log", "index", "timeindex"] {
        match fs::remove_file(segment_path(dir, base, ext)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn read_log_start(dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(LOG_START_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match text.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Ok(Some(v)),
        _ => Err(Error::Corrupt(format!(
            "{}: not a log start offset: {:?}",
            path.display(),
            text.trim()
        ))),
    }
}

/// Replaces the log start offset file (temporary file, fsync, rename, directory fsync).
pub(super) fn write_log_start(dir: &Path, offset: i64) -> io::Result<()> {
    let path = dir.join(LOG_START_FILE);
    replace_durably(&tmp_path(&path), &path, format!("{offset}\n").as_bytes())
}
