//! The run journal, run locks and the audit log, under the state directory.
//!
//! ```text
//! <state>/runs/<run-id>/journal.jsonl   what happened, in order: the facts a resume needs, including
//!                                       secret outputs while the run is unfinished (0600)
//! <state>/runs/<run-id>/events.jsonl    the masked events the operator saw
//! <state>/locks/<runbook>@<env>.lock    who is running this runbook on this environment
//! <state>/audit.jsonl                   one line per ended run attempt, secrets as fingerprints
//! ```
//!
//! Directories are 0700 and files 0600, opened through [`crate::state`] (never through a
//! symbolic link, refused when someone else could have written them). The journal is
//! append-only while the run goes on and synced before every step that changes something
//! elsewhere; when the run is over for good (done, rolled back, abandoned) it is rewritten once
//! without the secret values.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::engine::event::{Event, RunStatus, Sink, Stamped, StepStatus};
use crate::engine::record::{Phase, Record, Recorder, Resume};
use crate::engine::{InputValue, operator};
use crate::secret::Redactor;
use crate::state::{self, Fingerprints, Holder, Liveness};
use crate::steps::Output;

pub use crate::state::{LockError, LockHolder, RunLock};

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

fn check_run_id(id: &str) -> std::io::Result<()> {
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

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn private_append(path: &Path) -> std::io::Result<File> {
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
fn append_json_line<W: Write, T: Serialize + ?Sized>(
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
    },
    Gate {
        id: String,
        approved: bool,
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
    },
    Abandoned {
        at: String,
        operator: String,
    },
}

fn status_word(s: StepStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn jvalues(outputs: &[Output]) -> Vec<JValue> {
    outputs
        .iter()
        .map(|o| JValue {
            name: o.name.clone(),
            value: Some(o.value.clone()),
            secret: o.secret,
            fingerprint: None,
        })
        .collect()
}

/// The directory of one run.
pub fn run_dir(state: &Path, run_id: &str) -> PathBuf {
    state.join("runs").join(run_id)
}

/// The journal of one run, as the engine's [`Recorder`].
pub struct RunJournal {
    path: PathBuf,
    file: File,
    /// The length of the journal's whole records: a failed append is cut back to it, so a
    /// record is never torn and the next one never lost behind a torn one.
    len: u64,
    state: PathBuf,
    /// The run's redactor: when the journal drops its secrets, it also masks any other value
    /// that turned out to hold one (an input that became a SecureString, a command's output).
    redactor: Option<Redactor>,
    health: Health,
}

/// What went wrong with a journal, for the command that runs it: a write that failed, and
/// whether the run's end (its secrets erased, its audit line) was recorded.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<HealthState>>);

#[derive(Debug, Default)]
pub struct HealthState {
    /// The first write that failed.
    pub failed: Option<String>,
    /// The run's end was recorded and its secrets erased.
    pub closed: bool,
    /// The audit line could not be written.
    pub audit_failed: Option<String>,
}

impl Health {
    pub fn get(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, e: &std::io::Error) {
        let mut h = self.get();
        if h.failed.is_none() {
            h.failed = Some(e.to_string());
        }
    }
}

/// What is known about a run when it starts.
pub struct RunMeta<'a> {
    pub run_id: &'a str,
    pub runbook: &'a crate::model::Runbook,
    pub env: &'a str,
    pub inputs: &'a IndexMap<String, InputValue>,
    /// The main steps a partial run runs.
    pub selected: Option<&'a [String]>,
    pub aws_identity: Option<String>,
}

impl RunJournal {
    /// Start the journal of a new run (its directory must not exist).
    pub fn create(state: &Path, meta: &RunMeta<'_>) -> std::io::Result<RunJournal> {
        check_run_id(meta.run_id)?;
        state::prepare(state)?;
        state::ensure_dir(&state.join("runs"), false)?;
        let dir = run_dir(state, meta.run_id);
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)?;
        let path = dir.join("journal.jsonl");
        let file = state::create_new(&path)?;
        let mut j = RunJournal {
            path,
            file,
            len: 0,
            state: state.to_path_buf(),
            redactor: None,
            health: Health::default(),
        };
        let inputs = meta
            .inputs
            .iter()
            .map(|(k, v)| JValue {
                name: k.clone(),
                value: Some(v.value.clone().into()),
                secret: v.secret,
                fingerprint: None,
            })
            .collect();
        j.append(&JRec::Meta {
            run_id: meta.run_id.to_string(),
            runbook: meta.runbook.name().to_string(),
            file: meta.runbook.source.path.display().to_string(),
            digest: meta.runbook.digest(),
            git_commit: git_commit(&meta.runbook.source.path),
            env: meta.env.to_string(),
            operator: operator(),
            aws_identity: meta.aws_identity.clone(),
            host: hostname(),
            pid: std::process::id(),
            start_time: state::my_start_time(),
            boot_id: state::boot_id(),
            started: now(),
            inputs,
            selected: meta.selected.map(<[String]>::to_vec),
        })?;
        j.sync()?;
        Ok(j)
    }

    /// Continue the journal of an earlier run. A torn last record (a crash while it was being
    /// written) is cut off first, so the next record starts a line of its own.
    pub fn reopen(state: &Path, run_id: &str, forced: bool) -> std::io::Result<RunJournal> {
        check_run_id(run_id)?;
        state::prepare(state)?;
        state::check_dir(&run_dir(state, run_id), false)?;
        let path = run_dir(state, run_id).join("journal.jsonl");
        let mut file = state::open_append_existing(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        let mut j = RunJournal {
            path,
            file,
            len: whole as u64,
            state: state.to_path_buf(),
            redactor: None,
            health: Health::default(),
        };
        j.append(&JRec::Resumed {
            at: now(),
            operator: operator(),
            host: hostname(),
            pid: std::process::id(),
            start_time: state::my_start_time(),
            boot_id: state::boot_id(),
            forced,
        })?;
        j.sync()?;
        Ok(j)
    }

    pub fn set_redactor(&mut self, redactor: Redactor) {
        self.redactor = Some(redactor);
    }

    /// How this journal's writes went, for after the run.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, rec: &JRec) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        #[cfg(debug_assertions)]
        fail_point("RUNBOOK_TEST_FAIL_JOURNAL_AFTER")?;
        match self.file.write_all(&line) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // A short write (a full disk) leaves part of the line: cut it off.
                let _ = self.file.set_len(self.len);
                self.health.fail(&e);
                Err(e)
            }
        }
    }

    /// The run is over for good: rewrite the journal without secret values, atomically.
    fn compact(&mut self, last: Option<&JRec>) -> std::io::Result<()> {
        let r = self.compact_inner(last);
        match &r {
            Ok(()) => self.health.get().closed = true,
            Err(e) => self.health.fail(e),
        }
        r
    }

    fn compact_inner(&mut self, last: Option<&JRec>) -> std::io::Result<()> {
        // Unreadable lines are dropped with the secrets: they cannot be stripped of them.
        let mut recs = read_journal(&self.path)?.records;
        recs.extend(last.cloned());
        #[cfg(debug_assertions)]
        fail_point("RUNBOOK_TEST_FAIL_JOURNAL_AFTER")?;
        let prints = Fingerprints::of_state(&self.state);
        // The whole new journal in memory, then one write: a private file no one else writes,
        // so this only saves a system call per line.
        let mut text = Vec::new();
        for mut rec in recs {
            strip_secrets(&mut rec, &prints);
            let mut value = serde_json::to_value(&rec).map_err(std::io::Error::other)?;
            if let Some(r) = &self.redactor {
                r.redact_json(&mut value);
            }
            serde_json::to_writer(&mut text, &value).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        let tmp = state::temp_name(&self.path);
        let written = state::create_new(&tmp).and_then(|mut f| {
            f.write_all(&text)?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &self.path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = state::open_append_existing(&self.path)?;
        self.len = self.file.seek(std::io::SeekFrom::End(0))?;
        Ok(())
    }

    /// Mark an unfinished run as given up, and erase its secrets.
    pub fn abandon(&mut self) -> std::io::Result<()> {
        self.compact(Some(&JRec::Abandoned {
            at: now(),
            operator: operator(),
        }))
    }
}

fn strip_secrets(rec: &mut JRec, prints: &Fingerprints) {
    let values = match rec {
        JRec::Meta { inputs, .. } => inputs,
        JRec::Step { outputs, .. } => outputs,
        _ => return,
    };
    for v in values.iter_mut().filter(|v| v.secret) {
        if let Some(val) = v.value.take() {
            v.fingerprint = prints.of(&val);
        }
    }
}

impl Recorder for RunJournal {
    fn record(&mut self, rec: Record<'_>) -> std::io::Result<()> {
        let at = now();
        let j = match rec {
            Record::Gate { id, approved, by } => JRec::Gate {
                id: id.into(),
                approved,
                by: by.into(),
                at,
            },
            Record::StepStarted { phase, id } => JRec::Step {
                phase,
                id: id.into(),
                status: "running".into(),
                at,
                outputs: Vec::new(),
            },
            Record::StepFinished {
                phase,
                id,
                status,
                outputs,
            } => JRec::Step {
                phase,
                id: id.into(),
                status: status_word(status),
                at,
                outputs: jvalues(outputs),
            },
            Record::RollbackStarted { failed, from } => JRec::Rollback {
                failed: failed.into(),
                from: from.into(),
                at,
            },
            Record::RunFinished { status, message } => {
                let end = JRec::End {
                    status,
                    at,
                    message: message.map(str::to_string),
                };
                if matches!(status, RunStatus::Done | RunStatus::RolledBack) {
                    // One atomic step: the journal either still holds the secrets and no end
                    // (a crash here leaves a resumable run), or the end and no secrets.
                    self.compact(Some(&end))?;
                } else {
                    self.append(&end)?;
                    self.file.sync_data().inspect_err(|e| self.health.fail(e))?;
                }
                let audited =
                    read_journal(&self.path).and_then(|j| append_audit(&self.state, &j.records));
                if let Err(e) = audited {
                    self.health.get().audit_failed = Some(e.to_string());
                }
                return Ok(());
            }
        };
        self.append(&j)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data().inspect_err(|e| self.health.fail(e))
    }
}

/// Debug builds only: fail the journal's appends after the number of them in `var`, as a full
/// disk would (tests of what a run does when its journal cannot be written).
#[cfg(debug_assertions)]
fn fail_point(var: &str) -> std::io::Result<()> {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some(limit) = std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok()) else {
        return Ok(());
    };
    if COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= limit {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    Ok(())
}

/// The masked events of a run (what the operator saw), next to its journal.
pub struct EventLog {
    file: File,
}

impl EventLog {
    pub fn open(state: &Path, run_id: &str) -> std::io::Result<EventLog> {
        check_run_id(run_id)?;
        let dir = run_dir(state, run_id);
        state::check_dir(&dir, false)?;
        Ok(EventLog {
            file: private_append(&dir.join("events.jsonl"))?,
        })
    }
}

impl Sink for EventLog {
    fn event(&mut self, e: &Stamped) {
        if matches!(e.event, Event::StepProgress { .. }) {
            return;
        }
        let _ = append_json_line(&mut self.file, e);
    }
}

/// A journal as read back: its records, and what could not be read (for the operator).
#[derive(Debug, Default)]
pub struct Journal {
    pub records: Vec<JRec>,
    pub notes: Vec<String>,
}

/// Read a journal line by line, as bytes: a bad line (invalid UTF-8, a damaged record) is
/// skipped and named, never the end of the journal; a torn last line (no newline: the run
/// stopped while writing it) is ignored. Everything before either is intact.
pub fn read_journal(path: &Path) -> std::io::Result<Journal> {
    let mut bytes = Vec::new();
    state::open_read(path)?.read_to_end(&mut bytes)?;
    let mut out = Journal::default();
    let torn = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let whole = lines.len() - 1;
    for (i, line) in lines.iter().enumerate().take(whole) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<JRec>(line) {
            Ok(rec) => out.records.push(rec),
            Err(e) => out.notes.push(format!(
                "line {} of {} is not a readable record ({}); it is ignored",
                i + 1,
                path.display(),
                if std::str::from_utf8(line).is_err() {
                    "invalid UTF-8".to_string()
                } else {
                    e.to_string()
                }
            )),
        }
    }
    if torn {
        out.notes.push(format!(
            "the last record of {} (line {}) is incomplete: the run stopped while writing it; it is ignored",
            path.display(),
            whole + 1
        ));
    }
    Ok(out)
}

/// A run as listed by `runbook runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub runbook: String,
    pub env: String,
    pub status: String,
    pub started: String,
    pub operator: String,
    /// Whether `runbook resume` can continue it.
    pub resumable: bool,
    /// Whether `runbook abandon` can give it up (and erase its secrets).
    pub abandonable: bool,
    /// What could not be read of its journal.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip)]
    pub records: Vec<JRec>,
}

/// Every run of the state directory, oldest first. Names under `runs/` that are not run ids
/// are not runs of this tool and are left alone.
pub fn list_runs(state: &Path) -> Vec<RunSummary> {
    let mut ids: Vec<String> = std::fs::read_dir(state.join("runs"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|id| valid_run_id(id))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.iter().filter_map(|id| load_run(state, id)).collect()
}

/// One run, read from its journal; `None` when it has none (or `run_id` is no run id).
pub fn load_run(state: &Path, run_id: &str) -> Option<RunSummary> {
    if !valid_run_id(run_id) {
        return None;
    }
    let path = run_dir(state, run_id).join("journal.jsonl");
    let Journal { records, mut notes } = match read_journal(&path) {
        Ok(j) => j,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        // Still listed: a journal that exists may hold secrets, and must not vanish.
        Err(e) => Journal {
            records: Vec::new(),
            notes: vec![format!("{} cannot be read: {e}", path.display())],
        },
    };
    let meta = records.iter().find_map(|r| match r {
        JRec::Meta {
            runbook,
            env,
            started,
            operator,
            host,
            pid,
            start_time,
            boot_id,
            ..
        } => Some((
            runbook,
            env,
            started,
            operator,
            host,
            *pid,
            *start_time,
            boot_id,
        )),
        _ => None,
    });
    let mut live = meta.map(|(_, _, started, _, host, pid, start_time, boot_id)| {
        (
            host.clone(),
            pid,
            start_time,
            boot_id.clone(),
            started.clone(),
        )
    });
    let mut status: Option<String> = None;
    for r in &records {
        match r {
            JRec::Resumed {
                pid,
                host,
                start_time,
                boot_id,
                at,
                ..
            } => {
                status = None;
                live = Some((host.clone(), *pid, *start_time, boot_id.clone(), at.clone()));
            }
            JRec::End { status: s, .. } => status = Some(run_status_word(*s).into()),
            JRec::Abandoned { .. } => status = Some("abandoned".into()),
            _ => {}
        }
    }
    let status = status.unwrap_or_else(|| match &live {
        Some((host, pid, start_time, boot_id, since)) => match state::liveness(&Holder {
            host,
            pid: *pid,
            start_time: *start_time,
            boot_id: boot_id.as_deref(),
            since: Some(since),
        }) {
            Liveness::Alive => "running".into(),
            Liveness::Gone(_) | Liveness::Elsewhere => "crashed".into(),
        },
        None => "damaged".into(),
    });
    let finished = matches!(status.as_str(), "done" | "rolled-back" | "abandoned");
    let abandonable = !finished && status != "running";
    let resumable = abandonable && meta.is_some();
    if meta.is_none() {
        notes.push(format!(
            "the journal's first record (which runbook, which environment) cannot be read, so the run cannot be resumed; `runbook abandon {run_id}` erases the secrets it holds"
        ));
    }
    let unknown = String::from("?");
    let (runbook, env, started, operator) = meta.map_or(
        (&unknown, &unknown, &unknown, &unknown),
        |(r, e, s, o, ..)| (r, e, s, o),
    );
    Some(RunSummary {
        run_id: run_id.to_string(),
        runbook: runbook.clone(),
        env: env.clone(),
        status,
        started: started.clone(),
        operator: operator.clone(),
        resumable,
        abandonable,
        notes,
        records,
    })
}

fn run_status_word(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Done => "done",
        RunStatus::Failed => "failed",
        RunStatus::RolledBack => "rolled-back",
        RunStatus::Declined => "declined",
        RunStatus::Interrupted => "interrupted",
    }
}

/// A step that was running when the run stopped and never recorded how it ended.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub id: String,
    pub phase: Phase,
}

/// Where a run stopped: what `resume` starts from, and the step that was in flight.
pub fn resume_point(run: &RunSummary) -> (Resume, Option<InFlight>, IndexMap<String, InputValue>) {
    let mut resume = Resume::default();
    let mut running: IndexMap<String, Phase> = IndexMap::new();
    let mut inputs = IndexMap::new();
    for r in &run.records {
        match r {
            JRec::Meta { inputs: ins, .. } => {
                for v in ins {
                    let value = match &v.value {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => continue,
                    };
                    inputs.insert(
                        v.name.clone(),
                        InputValue {
                            value,
                            secret: v.secret,
                        },
                    );
                }
            }
            JRec::Step {
                phase,
                id,
                status,
                outputs,
                ..
            } => {
                if status == "running" {
                    running.insert(id.clone(), *phase);
                    continue;
                }
                running.shift_remove(id);
                if status == "ok" || status == "skipped" {
                    resume.done.insert(id.clone());
                    let outs = outputs
                        .iter()
                        .filter_map(|o| {
                            o.value.clone().map(|value| Output {
                                name: o.name.clone(),
                                value,
                                secret: o.secret,
                            })
                        })
                        .collect();
                    resume.outputs.insert(id.clone(), outs);
                }
            }
            JRec::Rollback { failed, from, .. } => {
                resume.rollback = Some((from.clone(), format!("step `{failed}` failed")));
            }
            _ => {}
        }
    }
    let in_flight = running
        .into_iter()
        .last()
        .map(|(id, phase)| InFlight { id, phase });
    (resume, in_flight, inputs)
}

/// The main steps a partial run was started with (`None`: the whole runbook).
pub fn selection(run: &RunSummary) -> Option<Vec<String>> {
    match run.records.first() {
        Some(JRec::Meta { selected, .. }) => selected.clone(),
        _ => None,
    }
}

/// Record that the operator says an in-flight step took effect (resume goes on after it).
pub fn assume_done(j: &mut RunJournal, step: &InFlight) -> std::io::Result<()> {
    j.append(&JRec::Step {
        phase: step.phase,
        id: step.id.clone(),
        status: "ok".into(),
        at: now(),
        outputs: Vec::new(),
    })?;
    j.sync()
}

/// One line per ended run attempt: who ran what, where, with which approvals and results;
/// every secret as a fingerprint, never its value.
fn append_audit(state: &Path, recs: &[JRec]) -> std::io::Result<()> {
    let Some(JRec::Meta {
        run_id,
        runbook,
        digest,
        git_commit,
        env,
        operator,
        aws_identity,
        host,
        started,
        inputs,
        selected,
        ..
    }) = recs.first()
    else {
        return Ok(());
    };
    let mut approvals = Vec::new();
    let mut steps: IndexMap<String, String> = IndexMap::new();
    let mut secrets = Vec::new();
    let mut end = serde_json::Value::Null;
    let mut forced = false;
    let prints = Fingerprints::of_state(state);
    let fingerprint = |v: &serde_json::Value| prints.of(v);
    for v in inputs.iter().filter(|v| v.secret) {
        let fp = v
            .value
            .as_ref()
            .and_then(fingerprint)
            .or_else(|| v.fingerprint.clone());
        secrets.push(serde_json::json!({ "input": v.name, "fingerprint": fp }));
    }
    for r in recs {
        match r {
            JRec::Gate {
                id,
                approved,
                by,
                at,
            } => {
                approvals.push(
                    serde_json::json!({ "step": id, "approved": approved, "by": by, "at": at }),
                );
            }
            JRec::Step {
                id,
                status,
                outputs,
                ..
            } => {
                steps.insert(id.clone(), status.clone());
                for o in outputs.iter().filter(|o| o.secret) {
                    let fp = o
                        .value
                        .as_ref()
                        .and_then(fingerprint)
                        .or_else(|| o.fingerprint.clone());
                    secrets.push(serde_json::json!({ "output": format!("steps.{id}.{}", o.name), "fingerprint": fp }));
                }
            }
            JRec::Resumed { forced: f, .. } => forced |= *f,
            JRec::End {
                status,
                at,
                message,
            } => {
                end = serde_json::json!({ "status": status, "at": at, "message": message });
            }
            _ => {}
        }
    }
    let line = serde_json::json!({
        "run_id": run_id,
        "runbook": runbook,
        "digest": digest,
        "git_commit": git_commit,
        "env": env,
        "operator": operator,
        "aws_identity": aws_identity,
        "host": host,
        "started": started,
        "ended": end,
        "resumed_with_force": forced,
        "selected": selected,
        "approvals": approvals,
        "steps": steps,
        "secrets": secrets,
    });
    state::ensure_dir(state, true)?;
    let mut f = private_append(&state.join("audit.jsonl"))?;
    // Other runs (of any runbook) append to the same file at the same time: one write a line.
    append_json_line(&mut f, &line)?;
    f.sync_data()
}

pub use crate::state::hostname;

/// The commit of the repository holding `file`, when it is in one (best effort).
fn git_commit(file: &Path) -> Option<String> {
    let dir = file.parent()?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
