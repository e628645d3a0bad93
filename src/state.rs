//! The state directory's ground rules, for the journal: who may have written a file
//! (its modes and owner, as ssh's `StrictModes`), how a file is opened (never through a
//! symbolic link, never a FIFO or device), whether the process a record names still runs (pid,
//! process start time and boot id, so a reused pid is not mistaken for the holder), and the
//! key that makes audit fingerprints useless to anyone without the state directory. The lock
//! protocol built on these is `journal::lock`.
//!
//! ```text
//! <state>/fingerprint.key              32 random bytes (0600): the HMAC key of fingerprints
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::Digest;

/// A state file or directory that is not safe to use: who could have written it, or what it
/// really is. Carried inside an `io::Error` so every caller reports it with its own help.
#[derive(Debug)]
pub struct Unsafe {
    pub path: PathBuf,
    pub why: String,
    pub help: String,
}

impl std::fmt::Display for Unsafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path.display(), self.why)
    }
}

impl std::error::Error for Unsafe {}

fn unsafe_err(path: &Path, why: String, help: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        Unsafe {
            path: path.to_path_buf(),
            why,
            help,
        },
    )
}

/// The `Unsafe` inside an error, when it is one.
pub fn unsafe_of(e: &std::io::Error) -> Option<&Unsafe> {
    e.get_ref().and_then(|i| i.downcast_ref::<Unsafe>())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Owned by us and writable by no one else: anything another user can write (or replace)
/// could be a symbolic link planted to make us write elsewhere, or a forged journal.
fn check_owner_and_mode(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.uid() != euid() {
        return Err(unsafe_err(
            path,
            format!(
                "is owned by uid {}, not by you (uid {}); refusing to keep run state there",
                meta.uid(),
                euid()
            ),
            "use a state directory of your own (--state-dir), or give this one to yourself with chown".into(),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_err(
            path,
            format!(
                "is writable by other users (mode {mode:04o}); refusing to keep run state there"
            ),
            format!("make it private: chmod go-w {}", path.display()),
        ));
    }
    Ok(())
}

/// A directory of the state: a real directory (the top one may be reached through a symbolic
/// link, as `~/.local/state` sometimes is; the ones inside it may not), ours, writable by no
/// one else.
pub fn check_dir(path: &Path, top: bool) -> std::io::Result<()> {
    let meta = if top {
        std::fs::metadata(path)?
    } else {
        std::fs::symlink_metadata(path)?
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_err(
            path,
            "is a symbolic link; run state is never written through one".into(),
            format!(
                "check where it points and why, then remove it: rm {}",
                path.display()
            ),
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_err(
            path,
            "is not a directory".into(),
            "pass --state-dir to a directory of your own".into(),
        ));
    }
    check_owner_and_mode(path, &meta)
}

/// Create a state directory (0700) when it is missing, then check it.
pub fn ensure_dir(path: &Path, top: bool) -> std::io::Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(top)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    check_dir(path, top)
}

/// The state directory, created private when missing, and its `runs/` and `locks/` checked
/// when they exist (each is made, private, by its first use).
pub fn prepare(state: &Path) -> std::io::Result<()> {
    ensure_dir(state, true)?;
    inspect(state).map(|_| ())
}

/// The files of the state directory's top that every run writes to or reads: what is there
/// must be a regular file of ours (not a link to elsewhere). The fingerprint key is made here
/// when missing, so a run that could not keep it is refused before it starts.
pub fn check_files(state: &Path) -> std::io::Result<()> {
    let audit = state.join("audit.jsonl");
    match open_read(&audit) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fingerprint_key(state).map(|_| ())
}

/// For commands that only read: check what exists, create nothing.
pub fn inspect(state: &Path) -> std::io::Result<bool> {
    if std::fs::symlink_metadata(state).is_err() {
        return Ok(false);
    }
    check_dir(state, true)?;
    for sub in ["runs", "locks"] {
        let p = state.join(sub);
        if std::fs::symlink_metadata(&p).is_ok() {
            check_dir(&p, false)?;
        }
    }
    Ok(true)
}

/// Flags of every open: no symbolic link followed (`O_NOFOLLOW`), and no hang on a FIFO
/// (`O_NONBLOCK` means nothing for a regular file). Rust opens with `O_CLOEXEC` already.
const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK;

fn opened(path: &Path, r: std::io::Result<File>) -> std::io::Result<File> {
    let f = r.map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            unsafe_err(
                path,
                "is a symbolic link; run state is never read or written through one".into(),
                format!(
                    "check where it points and why, then remove it: rm {}",
                    path.display()
                ),
            )
        } else if e.raw_os_error() == Some(libc::ENXIO) {
            unsafe_err(
                path,
                "is not a regular file".into(),
                format!("check what it is, then remove it: rm {}", path.display()),
            )
        } else {
            e
        }
    })?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(unsafe_err(
            path,
            "is not a regular file".into(),
            format!("check what it is, then remove it: rm {}", path.display()),
        ));
    }
    check_owner_and_mode(path, &meta)?;
    Ok(f)
}

/// A shared append-only file (the audit log, an event log): created 0600 when missing.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    let r = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(OPEN_FLAGS)
        .open(path);
    opened(path, r)
}

/// An existing file, to append to.
pub fn open_append_existing(path: &Path) -> std::io::Result<File> {
    let r = OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(OPEN_FLAGS)
        .open(path);
    opened(path, r)
}

/// A new file (`O_EXCL`, 0600): fails when anything, a link included, has the name.
pub fn create_new(path: &Path) -> std::io::Result<File> {
    let r = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OPEN_FLAGS)
        .open(path);
    opened(path, r)
}

/// A file to read.
pub fn open_read(path: &Path) -> std::io::Result<File> {
    let r = OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path);
    opened(path, r)
}

/// A name for a temporary file next to `path`, unique to this process and call.
pub fn temp_name(path: &Path) -> PathBuf {
    let mut r = [0u8; 6];
    let _ = getrandom::fill(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.{hex}.tmp", std::process::id()))
}

/// Sync a directory, so a name just linked or renamed in it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

// ---------------------------------------------------------------------------------------------
// Who a process is.

/// This boot of this machine (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A process's state letter and start time (clock ticks since boot, field 22 of
/// `/proc/<pid>/stat`). The command name (field 2) may hold spaces and parentheses: the fields
/// are counted after its last `)`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    if pid == 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field 22 is fields[19].
    Some((
        fields.first()?.chars().next()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// This process's start time (see [`proc_stat`]).
pub fn my_start_time() -> Option<u64> {
    proc_stat(std::process::id()).map(|(_, t)| t)
}

/// When the machine booted, in seconds since the epoch (`btime` of `/proc/stat`).
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Whether the process a record names is still the one that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Running, and (as far as the record lets us tell) the same process.
    Alive,
    /// Gone, or its pid now belongs to another process: why.
    Gone(String),
    /// Recorded on another host: nothing here can tell.
    Elsewhere,
}

/// A process as a lock or journal names it.
pub struct Holder<'a> {
    pub host: &'a str,
    pub pid: u32,
    /// Its start time; absent in records of older versions.
    pub start_time: Option<u64>,
    pub boot_id: Option<&'a str>,
    /// When the record was written (RFC 3339), for records without a start time.
    pub since: Option<&'a str>,
}

/// Is the process a record names still the one that wrote it? A pid alone is not enough: after
/// a reboot, or once pids wrap, it names some other process (pid 1 at worst) that would hold
/// the lock forever.
pub fn liveness(h: &Holder<'_>) -> Liveness {
    if h.host != hostname() {
        return Liveness::Elsewhere;
    }
    if let (Some(then), Some(now)) = (h.boot_id, boot_id())
        && then != now
    {
        return Liveness::Gone("it was recorded before this machine last booted".into());
    }
    let Some((state, started)) = proc_stat(h.pid) else {
        return Liveness::Gone(format!("no process {} is running", h.pid));
    };
    // A zombie still has /proc/<pid> but runs nothing.
    if state == 'Z' || state == 'X' {
        return Liveness::Gone(format!("process {} has exited", h.pid));
    }
    match h.start_time {
        Some(t) if t == started => Liveness::Alive,
        Some(_) => Liveness::Gone(format!(
            "pid {} now belongs to another process (it started at another time)",
            h.pid
        )),
        // An older record: no start time. A process that started after the record was
        // written cannot have written it; anything else may have, so it is taken as alive.
        None => {
            let written = h
                .since
                .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            let began = boot_time().map(|b| b + started / clock_ticks());
            match (written, began) {
                // Two seconds of slack: the start time is rounded down to the clock tick and
                // the record's time to the second.
                (Some(w), Some(b)) if b > w + 2 => Liveness::Gone(format!(
                    "pid {} now belongs to a process that started after the record was written",
                    h.pid
                )),
                _ => Liveness::Alive,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fingerprints.

/// HMAC-SHA256 (RFC 2104) over `sha2`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad = k.map(|b| b ^ 0x36);
    let opad = k.map(|b| b ^ 0x5c);
    let inner = sha2::Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    sha2::Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The fingerprint key of a state directory: 32 random bytes in `fingerprint.key` (0600),
/// made on first use. Made atomically (written whole to a temporary file, then linked into
/// place), so two first runs agree on one key.
pub fn fingerprint_key(state: &Path) -> std::io::Result<[u8; 32]> {
    let path = state.join("fingerprint.key");
    for _ in 0..3 {
        match read_key(&path) {
            Ok(k) => return Ok(k),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        ensure_dir(state, true)?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = temp_name(&path);
        let made = create_new(&tmp).and_then(|mut f| {
            f.write_all(&key)?;
            f.sync_all()
        });
        let linked = made.and_then(|()| std::fs::hard_link(&tmp, &path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                let _ = sync_dir(state);
                return Ok(key);
            }
            // Another run made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("the fingerprint key keeps changing"))
}

fn read_key(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = open_read(path)?;
    let meta = f.metadata()?;
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_err(
            path,
            format!(
                "can be read by other users (mode {:04o}): with it, a fingerprint confirms a guessed secret",
                meta.mode() & 0o7777
            ),
            format!("chmod 600 {}", path.display()),
        ));
    }
    let mut key = [0u8; 32];
    let mut rest = Vec::new();
    f.read_exact(&mut key)
        .and_then(|()| f.read_to_end(&mut rest))
        .ok()
        .filter(|_| rest.is_empty())
        .ok_or_else(|| {
            unsafe_err(
                path,
                "is not a fingerprint key (32 bytes)".into(),
                format!(
                    "remove it (a new key is made; older fingerprints can no longer be compared): rm {}",
                    path.display()
                ),
            )
        })?;
    Ok(key)
}

/// Keyed fingerprints of secret values, for the audit log and finished journals.
#[derive(Clone)]
pub struct Fingerprints {
    key: Option<[u8; 32]>,
}

impl Fingerprints {
    /// The state directory's key; without one (it cannot be read or made) values get no
    /// fingerprint at all, never an unkeyed one.
    pub fn of_state(state: &Path) -> Fingerprints {
        Fingerprints {
            key: fingerprint_key(state).ok(),
        }
    }

    pub fn with_key(key: [u8; 32]) -> Fingerprints {
        Fingerprints { key: Some(key) }
    }

    /// `hmac-sha256:` and the first 16 bytes of HMAC-SHA256(key, value), in hex.
    pub fn of(&self, value: &serde_json::Value) -> Option<String> {
        let key = self.key.as_ref()?;
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mac = hmac_sha256(key, text.as_bytes());
        Some(format!(
            "hmac-sha256:{}",
            mac.iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    }
}

/// This machine's name, as lock holders and audit lines record it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let (state, start) = proc_stat(std::process::id()).unwrap();
        assert!(matches!(state, 'R' | 'S'), "{state}");
        assert_eq!(Some(start), my_start_time());
        assert!(proc_stat(0).is_none());
    }

    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let host = hostname();
        let boot = boot_id();
        let me = Holder {
            host: &host,
            pid: std::process::id(),
            start_time: my_start_time(),
            boot_id: boot.as_deref(),
            since: None,
        };
        assert_eq!(liveness(&me), Liveness::Alive);
        let other_start = Holder {
            start_time: my_start_time().map(|t| t + 1),
            ..me
        };
        assert!(matches!(liveness(&other_start), Liveness::Gone(_)));
        let other_boot = Holder {
            host: &host,
            pid: 1,
            start_time: None,
            boot_id: Some("00000000-0000-0000-0000-000000000000"),
            since: None,
        };
        assert!(matches!(liveness(&other_boot), Liveness::Gone(_)));
        // An old record (no start time) written long before pid 1 started.
        let old = Holder {
            host: &host,
            pid: std::process::id(),
            start_time: None,
            boot_id: None,
            since: Some("1999-01-01T00:00:00Z"),
        };
        assert!(matches!(liveness(&old), Liveness::Gone(_)));
        let recent = Holder {
            since: Some("2999-01-01T00:00:00Z"),
            ..old
        };
        assert_eq!(liveness(&recent), Liveness::Alive);
    }
}
