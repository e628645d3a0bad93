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
//! Directories are 0700 and files 0600. The journal is append-only while the run goes on and
//! synced before every step that changes something elsewhere; when the run is over for good
//! (done, rolled back, abandoned) it is rewritten once without the secret values.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::engine::event::{Event, RunStatus, Sink, Stamped, StepStatus};
use crate::engine::record::{Phase, Record, Recorder, Resume};
use crate::engine::{InputValue, operator};
use crate::secret::Redactor;
use crate::steps::Output;

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

fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn private_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
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

/// A short fingerprint of a secret: enough to tell two values apart in an audit, far too
/// short to recover or confirm a random secret.
pub fn fingerprint(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let d = sha2::Sha256::digest(text.as_bytes());
    format!(
        "sha256:{}",
        d.iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
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
    state: PathBuf,
    /// The run's redactor: when the journal drops its secrets, it also masks any other value
    /// that turned out to hold one (an input that became a SecureString, a command's output).
    redactor: Option<Redactor>,
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
        let dir = run_dir(state, meta.run_id);
        private_dir(dir.parent().unwrap_or(state))?;
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join("journal.jsonl");
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        let mut j = RunJournal {
            path,
            file,
            state: state.to_path_buf(),
            redactor: None,
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
            started: now(),
            inputs,
            selected: meta.selected.map(<[String]>::to_vec),
        })?;
        j.sync()?;
        Ok(j)
    }

    /// Continue the journal of an earlier run.
    pub fn reopen(state: &Path, run_id: &str, forced: bool) -> std::io::Result<RunJournal> {
        let path = run_dir(state, run_id).join("journal.jsonl");
        let file = OpenOptions::new().append(true).open(&path)?;
        let mut j = RunJournal {
            path,
            file,
            state: state.to_path_buf(),
            redactor: None,
        };
        j.append(&JRec::Resumed {
            at: now(),
            operator: operator(),
            host: hostname(),
            pid: std::process::id(),
            forced,
        })?;
        j.sync()?;
        Ok(j)
    }

    pub fn set_redactor(&mut self, redactor: Redactor) {
        self.redactor = Some(redactor);
    }

    fn append(&mut self, rec: &JRec) -> std::io::Result<()> {
        append_json_line(&mut self.file, rec)
    }

    /// The run is over for good: rewrite the journal without secret values, atomically.
    fn compact(&mut self, last: Option<&JRec>) -> std::io::Result<()> {
        let mut recs = read_journal(&self.path)?;
        recs.extend(last.cloned());
        // The whole new journal in memory, then one write: a private file no one else writes,
        // so this only saves a system call per line.
        let mut text = Vec::new();
        for mut rec in recs {
            strip_secrets(&mut rec);
            let mut value = serde_json::to_value(&rec).map_err(std::io::Error::other)?;
            if let Some(r) = &self.redactor {
                r.redact_json(&mut value);
            }
            serde_json::to_writer(&mut text, &value).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        let tmp = self.path.with_extension("jsonl.tmp");
        {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
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

fn strip_secrets(rec: &mut JRec) {
    let values = match rec {
        JRec::Meta { inputs, .. } => inputs,
        JRec::Step { outputs, .. } => outputs,
        _ => return,
    };
    for v in values.iter_mut().filter(|v| v.secret) {
        if let Some(val) = v.value.take() {
            v.fingerprint = Some(fingerprint(&val));
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
                    self.file.sync_data()?;
                }
                if let Ok(recs) = read_journal(&self.path) {
                    let _ = append_audit(&self.state, &recs);
                }
                return Ok(());
            }
        };
        self.append(&j)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// The masked events of a run (what the operator saw), next to its journal.
pub struct EventLog {
    file: File,
}

impl EventLog {
    pub fn open(state: &Path, run_id: &str) -> std::io::Result<EventLog> {
        let dir = run_dir(state, run_id);
        private_dir(&dir)?;
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

pub fn read_journal(path: &Path) -> std::io::Result<Vec<JRec>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        // A crash can leave a torn last line; everything before it is intact.
        if let Ok(rec) = serde_json::from_str(&line) {
            out.push(rec);
        }
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
    #[serde(skip)]
    pub records: Vec<JRec>,
}

/// Every run of the state directory, oldest first.
pub fn list_runs(state: &Path) -> Vec<RunSummary> {
    let mut ids: Vec<String> = std::fs::read_dir(state.join("runs"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.iter().filter_map(|id| load_run(state, id)).collect()
}

pub fn load_run(state: &Path, run_id: &str) -> Option<RunSummary> {
    let records = read_journal(&run_dir(state, run_id).join("journal.jsonl")).ok()?;
    let Some(JRec::Meta {
        runbook,
        env,
        started,
        operator,
        host,
        pid,
        ..
    }) = records.first()
    else {
        return None;
    };
    let (mut live_pid, mut live_host) = (*pid, host.clone());
    let mut status: Option<String> = None;
    for r in &records {
        match r {
            JRec::Resumed { pid, host, .. } => {
                status = None;
                (live_pid, live_host) = (*pid, host.clone());
            }
            JRec::End { status: s, .. } => status = Some(run_status_word(*s).into()),
            JRec::Abandoned { .. } => status = Some("abandoned".into()),
            _ => {}
        }
    }
    let status = status.unwrap_or_else(|| {
        if live_host == hostname() && pid_alive(live_pid) {
            "running".into()
        } else {
            "crashed".into()
        }
    });
    let resumable = !matches!(
        status.as_str(),
        "done" | "rolled-back" | "abandoned" | "running"
    );
    Some(RunSummary {
        run_id: run_id.to_string(),
        runbook: runbook.clone(),
        env: env.clone(),
        status,
        started: started.clone(),
        operator: operator.clone(),
        resumable,
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
    j.file.sync_data()
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
    for v in inputs.iter().filter(|v| v.secret) {
        let fp = v
            .value
            .as_ref()
            .map(fingerprint)
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
                        .map(fingerprint)
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
    private_dir(state)?;
    let mut f = private_append(&state.join("audit.jsonl"))?;
    // Other runs (of any runbook) append to the same file at the same time: one write a line.
    append_json_line(&mut f, &line)?;
    f.sync_data()
}

/// A lock per (runbook, environment), held for the length of a run.
pub struct RunLock {
    path: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LockHolder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub run_id: String,
    pub started: String,
}

pub enum LockError {
    /// Someone else runs it; who.
    Held(LockHolder),
    Io(std::io::Error),
}

impl RunLock {
    pub fn acquire(
        state: &Path,
        runbook: &str,
        env: &str,
        run_id: &str,
    ) -> Result<RunLock, LockError> {
        let dir = state.join("locks");
        private_dir(&dir).map_err(LockError::Io)?;
        let path = dir.join(format!("{runbook}@{env}.lock"));
        let me = LockHolder {
            user: operator(),
            host: hostname(),
            pid: std::process::id(),
            run_id: run_id.into(),
            started: now(),
        };
        for _ in 0..2 {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    let text = serde_json::to_string(&me)
                        .map_err(|e| LockError::Io(std::io::Error::other(e)))?;
                    f.write_all(text.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(LockError::Io)?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<LockHolder> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok());
                    match holder {
                        // A lock left by a process of this host that is gone is stale.
                        Some(h) if h.host == me.host && !pid_alive(h.pid) => {
                            let _ = std::fs::remove_file(&path);
                        }
                        None => {
                            let _ = std::fs::remove_file(&path);
                        }
                        Some(h) => return Err(LockError::Held(h)),
                    }
                }
                Err(e) => return Err(LockError::Io(e)),
            }
        }
        Err(LockError::Io(std::io::Error::other(
            "the lock file keeps reappearing",
        )))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pid_alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid> but is not running anything.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

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
                    "fingerprint": fingerprint(&serde_json::json!(format!("{writer}-{line}-{i}"))),
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
