//! `audit.jsonl`: one line per ended run attempt, shared by the runs of every runbook, every
//! secret as a fingerprint.

use std::path::Path;

use indexmap::IndexMap;

use crate::engine::event::ManualOutcome;
use crate::journal::format::{JRec, append_json_line, private_append};
use crate::state::{self, Fingerprints};

/// One line per ended run attempt: who ran what, where, with which approvals and results;
/// every secret as a fingerprint, never its value.
pub(super) fn append_audit(state: &Path, recs: &[JRec]) -> std::io::Result<()> {
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
        no_preflight,
        abandoned,
        series,
        ..
    }) = recs.first()
    else {
        return Ok(());
    };
    let mut approvals = Vec::new();
    // Manual work a person answered for, and apart from it, manual work nobody did.
    let mut manual = Vec::new();
    let mut not_done = Vec::new();
    let mut steps: IndexMap<String, String> = IndexMap::new();
    let mut secrets = Vec::new();
    let mut end = serde_json::Value::Null;
    let mut forced = false;
    // This attempt's: the run's start, or its latest resume.
    let mut skipped_preflight = *no_preflight;
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
            JRec::Manual {
                id,
                outcome: ManualOutcome::NotDoneByAPerson,
                by,
                at,
            } => {
                not_done.push(serde_json::json!({ "step": id, "why": by, "at": at }));
            }
            JRec::Manual {
                id,
                outcome,
                by,
                at,
            } => {
                manual.push(
                    serde_json::json!({ "step": id, "outcome": outcome, "by": by, "at": at }),
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
            JRec::Resumed {
                forced: f,
                no_preflight: n,
                ..
            } => {
                forced |= *f;
                skipped_preflight = *n;
            }
            JRec::End {
                status,
                at,
                message,
                ..
            } => {
                end = serde_json::json!({ "status": status, "at": at, "message": message });
            }
            _ => {}
        }
    }
    let line = serde_json::json!({
        "run_id": run_id,
        // One id for the runs of one `run --env a --env b` (null for a run of one).
        "series": series,
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
        "preflight": if skipped_preflight { "skipped (--no-preflight)" } else { "passed" },
        "abandoned_runs": abandoned,
        "selected": selected,
        "approvals": approvals,
        "manual": manual,
        "not_done_by_person": not_done,
        "steps": steps,
        "secrets": secrets,
    });
    state::ensure_dir(state, true)?;
    let mut f = private_append(&state.join("audit.jsonl"))?;
    // Other runs (of any runbook) append to the same file at the same time: one write a line.
    append_json_line(&mut f, &line)?;
    f.sync_data()
}

/// The lines of `audit.jsonl`, oldest first; a line that is not a JSON object (torn, damaged)
/// is skipped, and a missing or unreadable file has none.
pub fn read_audit(state: &Path) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let Ok(f) = state::open_read(&state.join("audit.jsonl")) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .split(b'\n')
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(&l).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}
