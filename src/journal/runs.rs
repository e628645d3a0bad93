//! Runs read back from their journals: `runbook runs`, and where `resume` starts from. A journal
//! is read per line, as bytes, so one damaged line never hides the rest of a run.

use std::io::Read;
use std::path::Path;

use indexmap::IndexMap;
use serde::Serialize;

use crate::engine::InputValue;
use crate::engine::event::RunStatus;
use crate::engine::record::{Phase, Resume};
use crate::journal::format::{JRec, run_dir, valid_run_id};
use crate::state::{self, Holder, Liveness};
use crate::steps::Output;

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
    /// The series it is one environment of (`run --env a --env b`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
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
    // A run id starts with its start time to the second; two runs started within the same
    // second are ordered by when their directories were made (then by id, where the file
    // system keeps no creation time).
    let created = |id: &str| {
        std::fs::metadata(run_dir(state, id))
            .and_then(|m| m.created())
            .ok()
    };
    ids.sort_by_cached_key(|id| {
        let second = id.get(..15).unwrap_or(id).to_string();
        (second, created(id), id.clone())
    });
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
    let mut erased = false;
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
                erased = false;
                live = Some((host.clone(), *pid, *start_time, boot_id.clone(), at.clone()));
            }
            JRec::End {
                status: s,
                erased: e,
                ..
            } => {
                status = Some(run_status_word(*s).into());
                erased = *e;
            }
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
    let finished = erased || matches!(status.as_str(), "done" | "rolled-back" | "abandoned");
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
    let series = records.iter().find_map(|r| match r {
        JRec::Meta { series, .. } => series.clone(),
        _ => None,
    });
    Some(RunSummary {
        run_id: run_id.to_string(),
        runbook: runbook.clone(),
        env: env.clone(),
        status,
        started: started.clone(),
        operator: operator.clone(),
        resumable,
        abandonable,
        series,
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
                resume.rollback = Some((from.clone(), failed.clone()));
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

/// What a run's journal still holds and why: the secret values it keeps (by name, never the
/// value) and the steps that began which may have changed something elsewhere (not in
/// `harmless`; a step declined at its gate or skipped never began).
#[derive(Debug, Default)]
pub struct Kept {
    pub secrets: Vec<String>,
    pub changed: Vec<String>,
}

pub fn kept(records: &[JRec], harmless: &std::collections::HashSet<String>) -> Kept {
    let mut kept = Kept::default();
    let mut last: IndexMap<&str, &str> = IndexMap::new();
    for r in records {
        match r {
            JRec::Meta { inputs, .. } => {
                for v in inputs.iter().filter(|v| v.secret && v.value.is_some()) {
                    kept.secrets.push(format!("inputs.{}", v.name));
                }
            }
            JRec::Step {
                id,
                status,
                outputs,
                ..
            } => {
                last.insert(id, status);
                for o in outputs.iter().filter(|o| o.secret && o.value.is_some()) {
                    let name = format!("steps.{id}.{}", o.name);
                    if !kept.secrets.contains(&name) {
                        kept.secrets.push(name);
                    }
                }
            }
            _ => {}
        }
    }
    kept.changed = last
        .into_iter()
        .filter(|(id, status)| {
            !harmless.contains(*id) && !matches!(*status, "declined" | "skipped")
        })
        .map(|(id, _)| id.to_string())
        .collect();
    kept
}
