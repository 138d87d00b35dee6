//! Small files replaced whole (indexes, the log start offset, checkpoints, snapshots, topic
//! records): through a temporary file and a rename, so a crash leaves the old version or the
//! new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `<path>.tmp`: temporary files are removed when a log is opened.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    s.into()
}

/// Writes `bytes` to `tmp` (fsynced when `sync`) and renames it over `path`. On failure the
/// temporary file is removed: on a full disk it would hold space that retention needs.
/// Returns the new file, open for reading.
pub(crate) fn replace_file(tmp: &Path, path: &Path, bytes: &[u8], sync: bool) -> io::Result<File> {
    let written = (|| {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_data()?;
        }
        fs::rename(tmp, path)?;
        Ok(file)
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
}

/// [`replace_file`] with an fsync of the file and then of its directory, so the new version
/// survives a power loss.
pub(crate) fn replace_durably(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_file(tmp, path, bytes, true)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
