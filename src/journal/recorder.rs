//! [`RunJournal`], the engine's [`Recorder`]: `runs/<id>/journal.jsonl`, append-only while the
//! run goes on, synced before every step that changes something elsewhere, and rewritten once
//! without secret values (one atomic rename) when the run is over for good.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;

use crate::engine::event::{RunStatus, StepStatus};
use crate::engine::record::{Record, Recorder};
use crate::engine::{InputValue, operator};
use crate::journal::audit::append_audit;
use crate::journal::format::{JRec, JValue, StepAbout, check_run_id, now, run_dir};
use crate::journal::runs::{InFlight, read_journal};
use crate::secret::Redactor;
use crate::state::{self, Fingerprints, hostname};
use crate::steps::{HistoryEvent, HistoryStep, Output, RunHistory};

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
    /// The steps that change nothing elsewhere (see [`RunJournal::set_harmless`]).
    harmless: Option<std::collections::HashSet<String>>,
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
    pub runbook: &'a crate::catalog::Runbook,
    pub env: &'a str,
    pub inputs: &'a IndexMap<String, InputValue>,
    /// The main steps a partial run runs.
    pub selected: Option<&'a [String]>,
    pub aws_identity: Option<String>,
    /// Started with `--no-preflight`.
    pub no_preflight: bool,
    /// The unfinished runs it abandoned (`--new`).
    pub abandoned: &'a [String],
    /// The series it is one environment of (`run --env a --env b`).
    pub series: Option<&'a str>,
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
            harmless: None,
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
            no_preflight: meta.no_preflight,
            abandoned: meta.abandoned.to_vec(),
            series: meta.series.map(str::to_string),
        })?;
        j.sync()?;
        Ok(j)
    }

    /// Continue the journal of an earlier run. A torn last record (a crash while it was being
    /// written) is cut off first, so the next record starts a line of its own.
    pub fn reopen(
        state: &Path,
        run_id: &str,
        forced: bool,
        no_preflight: bool,
    ) -> std::io::Result<RunJournal> {
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
            harmless: None,
        };
        j.append(&JRec::Resumed {
            at: now(),
            operator: operator(),
            host: hostname(),
            pid: std::process::id(),
            start_time: state::my_start_time(),
            boot_id: state::boot_id(),
            forced,
            no_preflight,
        })?;
        j.sync()?;
        Ok(j)
    }

    /// The steps (main and rollback) that change nothing elsewhere (read-only, local): a run
    /// declined before any other step began has nothing elsewhere that needs its secrets, so
    /// its end erases them (one atomic rename, as for a finished run) and it cannot be resumed.
    pub fn set_harmless(&mut self, steps: std::collections::HashSet<String>) {
        self.harmless = Some(steps);
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

    /// Mark an unfinished run as given up, and erase its secrets; `replaced_by`: the new run
    /// that abandons it (`run --new`).
    pub fn abandon(&mut self, replaced_by: Option<&str>) -> std::io::Result<()> {
        self.compact(Some(&JRec::Abandoned {
            at: now(),
            operator: operator(),
            replaced_by: replaced_by.map(str::to_string),
        }))
    }

    /// Whether nothing of this run can have changed anything elsewhere: every step that began
    /// is one of the harmless ones. Unknown (no harmless list) counts as a change.
    fn changed_nothing(&self) -> bool {
        let Some(harmless) = &self.harmless else {
            return false;
        };
        read_journal(&self.path)
            .is_ok_and(|j| super::runs::kept(&j.records, harmless).changed.is_empty())
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
            Record::Manual { id, outcome, by } => JRec::Manual {
                id: id.into(),
                outcome,
                by: by.into(),
                at,
            },
            Record::StepStarted {
                phase,
                id,
                kind,
                title,
                writes,
            } => JRec::Step {
                phase,
                id: id.into(),
                status: "running".into(),
                at,
                outputs: Vec::new(),
                about: Some(StepAbout {
                    kind: kind.into(),
                    title: title.into(),
                    writes: writes.map(str::to_string),
                }),
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
                about: None,
            },
            Record::RollbackStarted { failed, from } => JRec::Rollback {
                failed: failed.into(),
                from: from.into(),
                at,
            },
            Record::RunFinished { status, message } => {
                let erased = status == RunStatus::Declined && self.changed_nothing();
                let end = JRec::End {
                    status,
                    at,
                    message: message.map(str::to_string),
                    erased,
                };
                if erased || matches!(status, RunStatus::Done | RunStatus::RolledBack) {
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

    fn history(&mut self) -> std::io::Result<RunHistory> {
        // Every record so far is written (appends are unbuffered): the file is the run.
        Ok(history_of(&read_journal(&self.path)?.records))
    }

    fn mask(&self, text: &str) -> String {
        match &self.redactor {
            Some(r) => r.redact(text).into_owned(),
            None => text.to_string(),
        }
    }

    fn write_document(&mut self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        let text = &self.mask(text);
        let valid = !name.is_empty()
            && name.len() <= 200
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid || name == "journal" {
            return Err(std::io::Error::other(format!(
                "`{name}` is not a document name (letters, digits, `-`, `_`; not `journal`)"
            )));
        }
        let dir = self
            .path
            .parent()
            .ok_or_else(|| std::io::Error::other("the journal has no directory"))?;
        let path = dir.join(format!("{name}.md"));
        // Private, whole or not at all: a temporary file renamed over the old document.
        let tmp = state::temp_name(&path);
        let written = state::create_new(&tmp).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        File::open(dir)?.sync_all()?;
        Ok(path)
    }
}

/// A run's history from its journal's records: no secret value (those of secret outputs are
/// left out), each step with when it started and ended.
fn history_of(records: &[JRec]) -> RunHistory {
    let mut h = RunHistory::default();
    for rec in records {
        match rec {
            JRec::Meta {
                run_id,
                runbook,
                env,
                operator,
                host,
                started,
                git_commit,
                aws_identity,
                ..
            } => {
                h.run_id.clone_from(run_id);
                h.runbook.clone_from(runbook);
                h.env.clone_from(env);
                h.operator.clone_from(operator);
                h.host.clone_from(host);
                h.started.clone_from(started);
                h.git_commit.clone_from(git_commit);
                h.aws_identity.clone_from(aws_identity);
            }
            JRec::Resumed { at, operator, .. } => h.resumed.push((at.clone(), operator.clone())),
            JRec::Gate {
                id,
                approved,
                by,
                at,
            } => h.events.push(HistoryEvent::Gate {
                id: id.clone(),
                approved: *approved,
                by: by.clone(),
                at: at.clone(),
            }),
            JRec::Manual {
                id,
                outcome,
                by,
                at,
            } => h.events.push(HistoryEvent::Manual {
                id: id.clone(),
                outcome: outcome.as_str().to_string(),
                by: by.clone(),
                at: at.clone(),
            }),
            JRec::Rollback { failed, at, .. } => h.events.push(HistoryEvent::RollbackStarted {
                failed: failed.clone(),
                at: at.clone(),
            }),
            JRec::Step {
                phase,
                id,
                status,
                at,
                outputs,
                about,
            } => {
                let rollback = *phase == crate::engine::record::Phase::Rollback;
                let public: Vec<(String, serde_json::Value)> = outputs
                    .iter()
                    .filter(|o| !o.secret)
                    .filter_map(|o| Some((o.name.clone(), o.value.clone()?)))
                    .collect();
                // The step's latest start that has not ended (a retry after a resume starts it
                // again): its end goes there.
                let open = h.events.iter_mut().rev().find_map(|e| match e {
                    HistoryEvent::Step(s)
                        if s.id == *id && s.rollback == rollback && s.ended.is_none() =>
                    {
                        Some(s)
                    }
                    _ => None,
                });
                if status == "running" {
                    h.events.push(HistoryEvent::Step(HistoryStep {
                        id: id.clone(),
                        rollback,
                        kind: about.as_ref().map(|a| a.kind.clone()),
                        title: about.as_ref().map(|a| a.title.clone()),
                        writes: about.as_ref().and_then(|a| a.writes.clone()),
                        started: Some(at.clone()),
                        ended: None,
                        status: status.clone(),
                        outputs: Vec::new(),
                    }));
                } else if let Some(s) = open {
                    s.ended = Some(at.clone());
                    s.status.clone_from(status);
                    s.outputs = public;
                } else {
                    // Ended without a start on record: skipped, or done before a resume.
                    h.events.push(HistoryEvent::Step(HistoryStep {
                        id: id.clone(),
                        rollback,
                        ended: Some(at.clone()),
                        status: status.clone(),
                        outputs: public,
                        ..HistoryStep::default()
                    }));
                }
            }
            JRec::End { .. } | JRec::Abandoned { .. } => {}
        }
    }
    h
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

/// Record that the operator says an in-flight step took effect (resume goes on after it).
pub fn assume_done(j: &mut RunJournal, step: &InFlight) -> std::io::Result<()> {
    j.append(&JRec::Step {
        phase: step.phase,
        id: step.id.clone(),
        status: "ok".into(),
        at: now(),
        outputs: Vec::new(),
        about: None,
    })?;
    j.sync()
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
