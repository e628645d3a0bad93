//! [`RunLock`]: one run per (runbook, environment) at a time, `<state>/locks/<runbook>@<env>.lock`.
//!
//! ```text
//! <state>/locks/<runbook>@<env>.lock   the holder's record, put in place whole by link(2)
//! <state>/locks/.takeover              flock(2)ed while a stale lock is removed; never deleted
//! ```
//!
//! Whether a holder is still alive is [`crate::state::liveness`]'s to say; the files are opened
//! through [`crate::state`] like every other file of the state directory.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::{
    Holder, Liveness, boot_id, create_new, ensure_dir, hostname, liveness, my_start_time,
    open_append, open_read, sync_dir, temp_name,
};

/// Who holds a run lock: the record inside the lock file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockHolder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub run_id: String,
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl LockHolder {
    fn liveness(&self) -> Liveness {
        liveness(&Holder {
            host: &self.host,
            pid: self.pid,
            start_time: self.start_time,
            boot_id: self.boot_id.as_deref(),
            since: Some(&self.started),
        })
    }
}

pub enum LockError {
    /// Someone else runs it; who.
    Held(LockHolder),
    /// A lock file whose holder cannot be read: never taken for stale.
    Unreadable {
        path: PathBuf,
        why: String,
    },
    Io(std::io::Error),
}

/// A lock per (runbook, environment), held for the length of a run.
///
/// Taken by `link(2)`: the holder's record is written whole to a private temporary file and
/// synced, then linked to the lock's name, which fails if the name exists. So a lock file is
/// never seen half-written, and of two runs exactly one link succeeds.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    /// The lock file: released only while the name still means it.
    id: FileId,
}

/// The lock file's name: the runbook and environment, with anything but `[A-Za-z0-9_-.]` (and
/// a leading dot) percent-encoded, so a name can neither leave `locks/` nor hide.
fn lock_name(runbook: &str, env: &str) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for (i, b) in s.bytes().enumerate() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    format!("{}@{}.lock", enc(runbook), enc(env))
}

/// A file's (device, inode).
type FileId = (u64, u64);

fn file_id(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino())
}

/// A lock file's holder, and which file it was read from.
fn read_holder(path: &Path) -> Result<Option<(LockHolder, FileId)>, LockError> {
    let f = match open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LockError::Unreadable {
                path: path.to_path_buf(),
                why: e.to_string(),
            });
        }
    };
    let id = file_id(&f.metadata().map_err(LockError::Io)?);
    let mut text = Vec::new();
    f.take(64 * 1024)
        .read_to_end(&mut text)
        .map_err(LockError::Io)?;
    match serde_json::from_slice::<LockHolder>(&text) {
        Ok(h) => Ok(Some((h, id))),
        Err(e) => Err(LockError::Unreadable {
            path: path.to_path_buf(),
            why: if text.is_empty() {
                "it is empty".into()
            } else {
                format!("it holds no lock record ({e})")
            },
        }),
    }
}

/// The holder of the lock of `runbook` on `env` when it is a live run (a run between its
/// start and its journal's first record, at its first gate, holds only this).
pub fn live_holder(state: &Path, runbook: &str, env: &str) -> Option<LockHolder> {
    let path = state.join("locks").join(lock_name(runbook, env));
    match read_holder(&path) {
        Ok(Some((h, _))) if matches!(h.liveness(), Liveness::Alive) => Some(h),
        _ => None,
    }
}

impl RunLock {
    pub fn acquire(
        state: &Path,
        runbook: &str,
        env: &str,
        run_id: &str,
    ) -> Result<RunLock, LockError> {
        let dir = state.join("locks");
        ensure_dir(&dir, false).map_err(LockError::Io)?;
        let path = dir.join(lock_name(runbook, env));
        let me = LockHolder {
            user: crate::engine::operator(),
            host: hostname(),
            pid: std::process::id(),
            run_id: run_id.into(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            start_time: my_start_time(),
            boot_id: boot_id(),
        };
        let text = serde_json::to_vec(&me).map_err(|e| LockError::Io(std::io::Error::other(e)))?;
        let tmp = temp_name(&path);
        let written = create_new(&tmp).and_then(|mut f| {
            f.write_all(&text)?;
            f.sync_all()?;
            f.metadata()
        });
        let id = match written {
            Ok(m) => file_id(&m),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(LockError::Io(e));
            }
        };
        let result = Self::link_into_place(&dir, &tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        result?;
        let _ = sync_dir(&dir);
        Ok(RunLock { path, id })
    }

    fn link_into_place(dir: &Path, tmp: &Path, path: &Path) -> Result<(), LockError> {
        for _ in 0..5 {
            match std::fs::hard_link(tmp, path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Released meanwhile: try again.
                    let Some((holder, id)) = read_holder(path)? else {
                        continue;
                    };
                    match holder.liveness() {
                        Liveness::Alive | Liveness::Elsewhere => {
                            return Err(LockError::Held(holder));
                        }
                        Liveness::Gone(_) => take_over(dir, path, id)?,
                    }
                }
                Err(e) => return Err(LockError::Io(e)),
            }
        }
        Err(LockError::Io(std::io::Error::other(
            "the lock file keeps changing hands",
        )))
    }
}

/// Remove a stale lock, race-free: two runs that both found it stale must not both remove
/// it, or the second would remove the lock the first has just taken. Removals are serialized
/// by `flock` on `locks/.takeover` (never deleted, so there is no stale takeover lock: the
/// kernel drops a dead process's flock), and the lock is removed only if it is still the very
/// file found stale.
fn take_over(dir: &Path, path: &Path, stale: FileId) -> Result<(), LockError> {
    let guard = open_append(&dir.join(".takeover")).map_err(LockError::Io)?;
    // SAFETY: flock on a descriptor we own; it is released when `guard` closes.
    if unsafe { libc::flock(guard.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(LockError::Io(std::io::Error::last_os_error()));
    }
    if let Some((holder, id)) = read_holder(path)?
        && id == stale
        && matches!(holder.liveness(), Liveness::Gone(_))
    {
        std::fs::remove_file(path).map_err(LockError::Io)?;
    }
    drop(guard);
    Ok(())
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| file_id(&m) == self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_stay_in_their_directory() {
        assert_eq!(
            lock_name("db-password", "staging"),
            "db-password@staging.lock"
        );
        assert_eq!(lock_name("../x", "a/b"), "%2E.%2Fx@a%2Fb.lock");
    }
}
