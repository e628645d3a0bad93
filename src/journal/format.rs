//! The journal's line format and the state directory's names: where a run's files live, what a
//! run id looks like, and the one-`write(2)` JSON line every appender uses. Every other file of
//! the journal imports this one; it imports none of them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::engine::event::{ManualOutcome, RunStatus};
use crate::engine::record::Phase;
use crate::state;

/// The state directory: `--state-dir`, `$RUNBOOK_STATE_DIR`, `$XDG_STATE_HOME/runbook`, or
/// `~/.local/state/runbook`.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("RUNBOOK_STATE_DIR") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("runbook");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/runbook")
}

/// Whether `id` has the form [`new_run_id`] gives (`YYYYMMDD-HHMMSS-xxxx`): a run id from the
/// command line names a directory under `runs/`, so nothing else may pass (`..`, `/`).
pub fn valid_run_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 20
        && b[8] == b'-'
        && b[15] == b'-'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
        && b[16..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

pub(super) fn check_run_id(id: &str) -> std::io::Result<()> {
    if valid_run_id(id) {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{}` is not a run id", id.escape_debug()),
        ))
    }
}

/// A new run id: UTC time plus randomness, sortable.
pub fn new_run_id() -> String {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let digits: String = now.chars().filter(char::is_ascii_digit).collect();
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    format!(
        "{}-{}-{:02x}{:02x}",
        &digits[..8],
        &digits[8..14],
        r[0],
        r[1]
    )
}

pub(super) fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

pub(super) fn private_append(path: &Path) -> std::io::Result<File> {
    state::open_append(path)
}

/// Append one JSON line to a file opened for appending (`O_APPEND`), in one `write(2)`.
///
/// The line is built whole in memory and handed to the kernel in a single call: that is what
/// keeps the lines of concurrent appenders whole. On Linux, a write to an `O_APPEND` regular
/// file of a local filesystem finds the end and copies the whole buffer under the inode's
/// lock, whatever the line's size (`PIPE_BUF` bounds atomic writes to pipes, not to files), so
/// another process's line lands before or after this one, never inside it (the audit log is
/// shared by the runs of every runbook). A line written in pieces (`writeln!` on an
/// unbuffered `File` makes one call per formatted piece, for a JSON value one per token) can
/// have another run's line land between them. `write_all` makes a second call only after a
/// short write (a full disk, a signal), which can tear a line anyway. Network filesystems
/// (NFS) do not make appends atomic at all.
pub(super) fn append_json_line<W: Write, T: Serialize + ?Sized>(
    file: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)
}

/// A value in the journal: the value itself while the run may need it, or its fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JValue {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(default)]
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// What a step is, for the run's history: its kind, title (as shown, masked) and what it
/// writes for good (an SSM parameter's name).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepAbout {
    pub kind: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<String>,
}

/// One line of `journal.jsonl`.
#[expect(
    clippy::large_enum_variant,
    reason = "one Meta per journal; records are read once, not kept in bulk"
)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
pub enum JRec {
    Meta {
        run_id: String,
        runbook: String,
        file: String,
        digest: String,
        #[serde(default)]
        git_commit: Option<String>,
        env: String,
        operator: String,
        /// The AWS identity the run's credentials belong to, when it uses AWS.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aws_identity: Option<String>,
        host: String,
        pid: u32,
        /// The runner's start time and boot (see [`crate::state::liveness`]); absent in
        /// journals of older versions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_id: Option<String>,
        started: String,
        inputs: Vec<JValue>,
        /// A partial run (`--from`, `--only`): the main steps it runs. A resume runs no other.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        selected: Option<Vec<String>>,
        /// Started with `--no-preflight`: the checks that it could finish were not made.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_preflight: bool,
        /// Unfinished runs this one abandoned when it started (`--new`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        abandoned: Vec<String>,
        /// The series this run is one environment of (`run --env a --env b`): one id for
        /// the whole invocation, shared by the runs of all its environments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        series: Option<String>,
    },
    Resumed {
        at: String,
        operator: String,
        host: String,
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_id: Option<String>,
        forced: bool,
        /// Resumed with `--no-preflight`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_preflight: bool,
    },
    Gate {
        id: String,
        approved: bool,
        by: String,
        at: String,
    },
    /// A manual step's work: done or declined by `by`, or not done by a person.
    Manual {
        id: String,
        outcome: ManualOutcome,
        by: String,
        at: String,
    },
    Step {
        phase: Phase,
        id: String,
        /// `running`, or how the step ended.
        status: String,
        at: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        outputs: Vec<JValue>,
        /// On the `running` record: what the step is (absent in journals of older versions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        about: Option<StepAbout>,
    },
    Rollback {
        failed: String,
        from: String,
        at: String,
    },
    End {
        status: RunStatus,
        at: String,
        #[serde(default)]
        message: Option<String>,
        /// Its secrets were erased with this end: nothing elsewhere needs them (declined before
        /// any outside change), so it is over for good and cannot be resumed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        erased: bool,
    },
    Abandoned {
        at: String,
        operator: String,
        /// The run that abandoned it when it started (`run --new`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaced_by: Option<String>,
    },
}

/// The directory of one run.
pub fn run_dir(state: &Path, run_id: &str) -> PathBuf {
    state.join("runs").join(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Fingerprints;

    /// An audit-like line: a run with `n` secret fingerprints.
    fn audit_like(writer: usize, line: usize, n: usize) -> serde_json::Value {
        let secrets: Vec<_> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "output": format!("steps.s{i}.value"),
                    "fingerprint": Fingerprints::with_key([7; 32]).of(&serde_json::json!(format!("{writer}-{line}-{i}"))),
                })
            })
            .collect();
        serde_json::json!({ "run_id": format!("{writer}-{line}"), "writer": writer, "line": line, "secrets": secrets })
    }

    /// Counts the calls it gets, as `write(2)` would.
    #[derive(Default)]
    struct Calls {
        calls: usize,
        bytes: Vec<u8>,
    }

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.calls += 1;
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_one_write() {
        let value = audit_like(0, 0, 1000);
        let mut out = Calls::default();
        append_json_line(&mut out, &value).unwrap();
        assert_eq!(out.calls, 1);
        assert_eq!(out.bytes.last(), Some(&b'\n'));
        let back: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
        assert_eq!(back, value);
    }

    /// Writers with their own `O_APPEND` descriptions of one file, as concurrent runs have:
    /// every line comes out whole.
    #[test]
    fn concurrent_appenders_never_interleave_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (writers, lines, secrets) = (8, 20, 300);
        std::thread::scope(|s| {
            for w in 0..writers {
                let path = &path;
                s.spawn(move || {
                    let mut f = private_append(path).unwrap();
                    for l in 0..lines {
                        append_json_line(&mut f, &audit_like(w, l, secrets)).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen = std::collections::HashSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
            let (w, l) = (v["writer"].as_u64().unwrap(), v["line"].as_u64().unwrap());
            assert_eq!(v, audit_like(w as usize, l as usize, secrets));
            assert!(seen.insert((w, l)), "line {w}-{l} twice");
        }
        assert_eq!(seen.len(), writers * lines);
    }
}
