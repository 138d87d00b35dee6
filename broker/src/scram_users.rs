//! SCRAM users: credentials (salt, iterations, stored and server keys; never a password) for
//! SCRAM-SHA-256 and SCRAM-SHA-512, by user. Users created through AlterUserScramCredentials
//! are kept in `scram-credentials.json` in the data directory; users of a `--sasl-users` file
//! are derived from it at every start and win over stored ones of the same name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tern_kafka::sasl::scram::{ScramCredential, ScramHash, MIN_ITERATIONS};

use crate::error::{Error, Result};

const FILE: &str = "scram-credentials.json";

type Key = (String, ScramHashKey);

/// `ScramHash` ordered, for a stable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum ScramHashKey {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl From<ScramHash> for ScramHashKey {
    fn from(h: ScramHash) -> Self {
        match h {
            ScramHash::Sha256 => ScramHashKey::Sha256,
            ScramHash::Sha512 => ScramHashKey::Sha512,
        }
    }
}

impl From<ScramHashKey> for ScramHash {
    fn from(h: ScramHashKey) -> Self {
        match h {
            ScramHashKey::Sha256 => ScramHash::Sha256,
            ScramHashKey::Sha512 => ScramHash::Sha512,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredCredential {
    user: String,
    mechanism: ScramHashKey,
    iterations: u32,
    salt: String,
    stored_key: String,
    server_key: String,
}

pub struct ScramUsers {
    path: PathBuf,
    /// Credentials persisted in the data directory.
    stored: Mutex<BTreeMap<Key, ScramCredential>>,
    /// Credentials of the users file, in memory only.
    from_file: BTreeMap<Key, ScramCredential>,
}

impl ScramUsers {
    /// Loads the stored credentials of `data_dir` and derives those of `users_file`.
    pub fn open(data_dir: &Path, users_file: Option<&Path>) -> Result<ScramUsers> {
        let path = data_dir.join(FILE);
        let mut stored = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let list: Vec<StoredCredential> = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
                for c in list {
                    let decode = |s: &str| B64.decode(s).map_err(|e| Error::Corrupt(format!("{}: user {}: {e}", path.display(), c.user)));
                    let cred = ScramCredential { salt: decode(&c.salt)?, iterations: c.iterations, stored_key: decode(&c.stored_key)?, server_key: decode(&c.server_key)? };
                    stored.insert((c.user.clone(), c.mechanism), cred);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut from_file = BTreeMap::new();
        if let Some(file) = users_file {
            for (user, password) in read_users_file(file)? {
                for hash in [ScramHash::Sha256, ScramHash::Sha512] {
                    let cred = ScramCredential::generate(hash, &password, MIN_ITERATIONS)
                        .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
                    from_file.insert((user.clone(), hash.into()), cred);
                }
            }
        }
        Ok(ScramUsers { path, stored: Mutex::new(stored), from_file })
    }

    pub fn get(&self, user: &str, hash: ScramHash) -> Option<ScramCredential> {
        let key = (user.to_string(), hash.into());
        self.from_file.get(&key).cloned().or_else(|| self.stored.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned())
    }

    /// Every user and the mechanisms with their iterations.
    pub fn describe(&self) -> BTreeMap<String, Vec<(ScramHash, u32)>> {
        let mut out: BTreeMap<String, Vec<(ScramHash, u32)>> = BTreeMap::new();
        let stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: BTreeMap<&Key, &ScramCredential> = stored.iter().collect();
        all.extend(self.from_file.iter());
        for ((user, hash), cred) in all {
            out.entry(user.clone()).or_default().push(((*hash).into(), cred.iterations));
        }
        out
    }

    /// Applies one user's deletions and upsertions together and persists them.
    pub fn alter(&self, user: &str, delete: &[ScramHash], upsert: Vec<(ScramHash, ScramCredential)>) -> Result<()> {
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = stored.clone();
        for h in delete {
            next.remove(&(user.to_string(), (*h).into()));
        }
        for (h, cred) in upsert {
            next.insert((user.to_string(), h.into()), cred);
        }
        self.persist(&next)?;
        *stored = next;
        Ok(())
    }

    /// Whether `user` comes from the users file, which the SCRAM API cannot change.
    pub fn from_users_file(&self, user: &str) -> bool {
        self.from_file.keys().any(|(u, _)| u == user)
    }

    pub fn exists(&self, user: &str, hash: ScramHash) -> bool {
        self.get(user, hash).is_some()
    }

    fn persist(&self, creds: &BTreeMap<Key, ScramCredential>) -> Result<()> {
        let list: Vec<StoredCredential> = creds
            .iter()
            .map(|((user, mechanism), c)| StoredCredential {
                user: user.clone(),
                mechanism: *mechanism,
                iterations: c.iterations,
                salt: B64.encode(&c.salt),
                stored_key: B64.encode(&c.stored_key),
                server_key: B64.encode(&c.server_key),
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&list).map_err(|e| Error::Corrupt(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        crate::storage::files::replace_durably(&tmp, &self.path, &bytes)?;
        Ok(())
    }
}

/// `user:password` lines; blank lines and `#` comments are skipped.
fn read_users_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("reading the SASL users file {}: {e}", path.display())))?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The line itself is not shown: it holds a password.
        let (user, password) = line
            .split_once(':')
            .filter(|(u, p)| !u.trim().is_empty() && !p.is_empty())
            .ok_or_else(|| Error::Config(format!("{} line {}: expected user:password", path.display(), i + 1)))?;
        users.push((user.trim().to_string(), password.to_string()));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_users_survive_reopen_and_file_users_are_derived() {
        let dir = tempfile::tempdir().expect("dir");
        let users_file = dir.path().join("users.txt");
        std::fs::write(&users_file, "# comment\nalice:wonder:land\n\n").expect("write");
        let users = ScramUsers::open(dir.path(), Some(&users_file)).expect("open");
        assert!(users.get("alice", ScramHash::Sha512).expect("alice").matches_password(ScramHash::Sha512, "wonder:land"));
        let bob = ScramCredential::generate(ScramHash::Sha256, "builder", 8192).expect("cred");
        users.alter("bob", &[], vec![(ScramHash::Sha256, bob.clone())]).expect("alter");
        drop(users);
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("file");
        assert!(!text.contains("builder") && !text.contains("wonder"), "no passwords at rest: {text}");
        let users = ScramUsers::open(dir.path(), None).expect("reopen");
        assert_eq!(users.get("bob", ScramHash::Sha256), Some(bob));
        assert_eq!(users.get("alice", ScramHash::Sha512), None, "file users are not persisted");
        users.alter("bob", &[ScramHash::Sha256], vec![]).expect("delete");
        assert!(users.describe().is_empty());
    }

    #[test]
    fn bad_users_file_lines_name_the_line_not_the_secret() {
        let dir = tempfile::tempdir().expect("dir");
        let f = dir.path().join("users.txt");
        std::fs::write(&f, "alice:pw\nnopasswordhere\n").expect("write");
        let e = ScramUsers::open(dir.path(), Some(&f)).err().expect("error").to_string();
        assert!(e.contains("line 2") && !e.contains("nopasswordhere"), "{e}");
    }
}
