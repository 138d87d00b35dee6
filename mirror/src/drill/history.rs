//! Past drills on disk: one JSON file per drill, `<dir>/<id>.json`, in the directory
//! [`crate::drill::history_dir`] derives from the config's state directory.
//!
//! ```
//! # let tmp = std::env::temp_dir().join(format!("tern-doc-history-{}", std::process::id()));
//! use tern_mirror::drill::history;
//! assert!(history::list(&tmp).unwrap().is_empty(), "a missing directory is an empty history");
//! ```

use std::path::{Path, PathBuf};

use super::report::{DrillReport, DrillSummary};
use crate::error::{Error, Result};

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Local(format!("{what} {}: {e}", path.display()))
}

/// Ids become file names: only what [`super::new_id`] produces is accepted.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::Local(format!("not a drill id: {id:?}")));
    }
    Ok(())
}

/// Stores a report as `<dir>/<id>.json` (written to a temporary file, then renamed, so a
/// reader never sees half a report); creates `dir`. Returns the file's path.
pub fn save(dir: &Path, report: &DrillReport) -> Result<PathBuf> {
    check_id(&report.id)?;
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let path = dir.join(format!("{}.json", report.id));
    let tmp = dir.join(format!(".{}.json.tmp", report.id));
    let json = serde_json::to_vec_pretty(report).map_err(|e| Error::Local(format!("encoding the drill report: {e}")))?;
    std::fs::write(&tmp, json).map_err(|e| io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("renaming", &tmp, e))?;
    Ok(path)
}

/// Every stored drill, newest first. Files that do not parse are skipped with a warning.
pub fn list(dir: &Path) -> Result<Vec<DrillSummary>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("reading", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else { continue };
        if id.starts_with('.') {
            continue;
        }
        match load(dir, id) {
            Ok(r) => out.push(r.summary()),
            Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
        }
    }
    out.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// One stored drill by id.
pub fn load(dir: &Path, id: &str) -> Result<DrillReport> {
    check_id(id)?;
    let path = dir.join(format!("{id}.json"));
    let text = std::fs::read(&path).map_err(|e| io("reading", &path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Local(format!("{}: not a drill report: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::report::{Verdict, SCHEMA_VERSION};

    fn report(id: &str, at: i64, verdict: Verdict) -> DrillReport {
        DrillReport {
            schema_version: SCHEMA_VERSION,
            id: id.into(),
            flow: "a->b".into(),
            source: "a".into(),
            target: "b".into(),
            groups_filter: None,
            started_at_ms: at,
            finished_at_ms: at + 5,
            flow_state: Some(crate::states::FailoverState::Active),
            verdict,
            rpo_records: 3,
            rpo_seconds: 1.5,
            rto_ms: Some(40),
            redelivered_records: 0,
            missed_records: 0,
            partitions: vec![],
            groups: vec![],
            errors: vec![],
        }
    }

    #[test]
    fn saves_lists_newest_first_and_loads() {
        let dir = tempfile::tempdir().expect("dir");
        let a = report("20260101T000000Z-aaaa", 1, Verdict::Pass);
        let b = report("20260102T000000Z-bbbb", 2, Verdict::Fail);
        save(dir.path(), &a).expect("save a");
        save(dir.path(), &b).expect("save b");
        std::fs::write(dir.path().join("garbage.json"), "{").expect("write");
        let listed = list(dir.path()).expect("list");
        assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![b.id.as_str(), a.id.as_str()]);
        assert_eq!(listed[0].verdict, Verdict::Fail);
        assert_eq!(load(dir.path(), &a.id).expect("load"), a);
        assert!(load(dir.path(), "../etc/passwd").is_err());
        assert!(list(&dir.path().join("missing")).expect("missing dir").is_empty());
    }
}
