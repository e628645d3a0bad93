//! What a run proves before it starts, and what it says about secrets when it stops: the
//! preflight a `run` or `resume` makes before its journal exists (so a run that cannot finish
//! changes nothing and leaves no resumable run behind), the refusal of a second run while one
//! is unfinished, which steps of a runbook change nothing elsewhere, and the account of the
//! secrets a stopped run keeps on disk.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::SystemTime;

use indexmap::IndexMap;

use super::{Failure, Kind};
use crate::catalog::Runbook;
use crate::diag::{Code, Problem};
use crate::display::visible_line;
use crate::engine::InputValue;
use crate::journal::{self, RunSummary};
use crate::model::Environment;
use crate::plan::{Plan, PlanEffect};
use crate::preflight::{self, Scope, Status};
use crate::secret::Redactor;

/// Make the checks `runbook preflight` makes for the steps that will run (not those in
/// `skip`), read-only and concurrently, telling `front` how far they got. A failed check is
/// the run's failure (exit 1), before anything is written.
pub(super) fn preflight(
    front: &dyn super::Frontend,
    runtime: &tokio::runtime::Runtime,
    rb: &Runbook,
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
    skip: &HashSet<String>,
    changed: bool,
) -> Result<(), Failure> {
    let redactor = Redactor::new();
    for v in inputs.values().filter(|v| v.secret) {
        redactor.add(&v.value);
    }
    front.status(Some("preflight: checking what the run needs (read-only)…"));
    let progress = |done: usize, total: usize| {
        front.status(Some(&format!(
            "preflight: {done}/{total} checks done (read-only)…"
        )));
    };
    let checks = runtime.block_on(preflight::preflight_scoped(
        rb,
        env,
        inputs,
        &crate::steps::Nobody,
        &redactor,
        Scope {
            skip: Some(skip),
            progress: Some(&progress),
            changed,
        },
    ));
    front.status(None);
    if checks.is_empty() {
        return Ok(());
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (failed, warned, skipped) = (
        count(Status::Fail),
        count(Status::Warn),
        count(Status::Skip),
    );
    if failed == 0 {
        let mut line = format!(
            "preflight: {} passed",
            crate::plan::plural(checks.len() - skipped - warned, "check")
        );
        if warned > 0 {
            line.push_str(&format!(", {warned} with a warning"));
        }
        if skipped > 0 {
            line.push_str(&format!(
                ", {skipped} skipped (known only at run time; `runbook preflight` lists them)"
            ));
        }
        line.push('\n');
        front.say(&line);
        for c in checks.iter().filter(|c| c.status == Status::Warn) {
            front.line(&format!(
                "warning: preflight: {} {}: {}",
                c.check,
                visible_line(&c.target),
                visible_line(&c.reason)
            ));
        }
        return Ok(());
    }
    let p = Problem::error(
        Code::PreflightFailed,
        format!(
            "preflight: {failed} of {} failed; nothing ran and nothing changed",
            crate::plan::plural(checks.len(), "check")
        ),
    )
    .help(format!(
        "fix what failed, then run again (`runbook preflight {} --env {}` shows every check); --no-preflight starts without these checks, recorded in the audit log",
        rb.name(),
        env.name
    ));
    let mut f = Failure {
        kind: Kind::StepFailed,
        problems: vec![p],
        lines: Vec::new(),
    };
    for line in preflight::table(&checks, front.width()).lines() {
        f = f.line(line);
    }
    Err(f)
}

/// The steps (main and rollback) that change nothing elsewhere: read-only or local. A run
/// stopped before any other step began has nothing elsewhere that needs its secrets. A step a
/// person does (`manual.confirm`) is never one: its effect is local to this machine, but the
/// person may have just changed something elsewhere (created a token in a dashboard) that the
/// values it collected belong to.
pub(super) fn harmless(plan: &Plan) -> HashSet<String> {
    plan.steps
        .iter()
        .chain(&plan.rollback)
        .filter(|s| !s.interactive)
        .filter(|s| matches!(s.effect, PlanEffect::ReadOnly | PlanEffect::Local))
        .map(|s| s.id.clone())
        .collect()
}

/// The unfinished runs a new run of `rb` on `env` must not start beside: those of the same
/// runbook, and those of another runbook that writes an SSM parameter this one writes (two
/// half-done rotations of one secret would each hold a value the other overwrote, and resuming
/// the older one would put back a value the newer one replaced). `--new` abandons them. A
/// runbook none of whose steps changes anything elsewhere (an audit) rotates nothing, and
/// starts beside anything.
pub(super) fn unfinished(
    state: &Path,
    rb: &Runbook,
    library: &[Runbook],
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
) -> Vec<Unfinished> {
    let plan = crate::plan::plan(rb, env, inputs);
    if harmless(&plan).len() == plan.steps.len() + plan.rollback.len() {
        return Vec::new();
    }
    let ours = writes(rb, library, env, inputs);
    let listed = journal::list_runs(state);
    // A live run that has no journal yet (waiting at its first gate, having read the value
    // it would roll back to) is known by its lock.
    let live = library
        .iter()
        .filter(|other| other.name() != rb.name())
        .filter_map(|other| {
            journal::live_holder(state, other.name(), &env.name).map(|h| (other, h))
        })
        .filter(|(_, h)| !listed.iter().any(|r| r.run_id == h.run_id))
        .map(|(other, h)| RunSummary {
            run_id: h.run_id,
            runbook: other.name().to_string(),
            env: env.name.clone(),
            status: "running".into(),
            started: h.started,
            operator: h.user,
            resumable: false,
            abandonable: false,
            series: None,
            notes: Vec::new(),
            records: Vec::new(),
        })
        .collect::<Vec<_>>();
    listed
        .into_iter()
        .chain(live)
        // A live run of another runbook counts too: it may have read the value this run
        // replaces (its rollback value), and it ends by writing its own. (A live run of the
        // same runbook holds its lock, which refuses this one with its own message.)
        .filter(|r| r.env == env.name && (r.resumable || r.status == "running"))
        .filter(|r| r.resumable || r.runbook != rb.name())
        .filter_map(|run| {
            if run.runbook == rb.name() {
                return Some(Unfinished {
                    run,
                    shared: Vec::new(),
                });
            }
            let other = library.iter().find(|r| r.name() == run.runbook)?;
            let theirs = writes(other, library, env, &journal_inputs(&run));
            let shared: Vec<String> = match (&ours, &theirs) {
                (Writes::Known(a), Writes::Known(b)) => a.intersection(b).cloned().collect(),
                // A runbook named only at run time may write anything: only the same name is
                // known to collide.
                _ => Vec::new(),
            };
            (!shared.is_empty()).then_some(Unfinished { run, shared })
        })
        .collect()
}

/// An unfinished run a new one would start beside, and the SSM parameters both write (empty
/// when it is a run of the same runbook).
#[derive(Clone)]
pub(super) struct Unfinished {
    pub(super) run: RunSummary,
    pub(super) shared: Vec<String>,
}

/// The SSM parameters a run writes, as far as they are known before it starts.
enum Writes {
    Known(BTreeSet<String>),
    /// It runs a runbook named only at run time.
    Unknown,
}

/// The SSM parameters `rb` writes on `env` with `inputs` (`ssm.put` in its main and rollback
/// steps, and in the runbooks it runs), by name.
fn writes(
    rb: &Runbook,
    library: &[Runbook],
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
) -> Writes {
    let mut names = BTreeSet::new();
    let mut seen = HashSet::new();
    if collect_writes(rb, library, env, inputs, &mut names, &mut seen) {
        Writes::Known(names)
    } else {
        Writes::Unknown
    }
}

/// Add what `rb` writes to `names`; false when a runbook it runs is not known before the run.
fn collect_writes(
    rb: &Runbook,
    library: &[Runbook],
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
    names: &mut BTreeSet<String>,
    seen: &mut HashSet<String>,
) -> bool {
    if !seen.insert(rb.name().to_string()) {
        return true;
    }
    let plan = crate::plan::plan(rb, env, inputs);
    for s in plan.steps.iter().chain(&plan.rollback) {
        let Some(kind) = crate::steps::find_kind(s.kind) else {
            continue;
        };
        if let Some(field) = kind.writes_named_by()
            && let Some(name) = s.param(field).filter(|n| crate::plan::is_known(n))
        {
            names.insert(name);
        }
        if let Some(field) = kind.runs_runbook_named_by() {
            let Some(name) = s.param(field).filter(|n| crate::plan::is_known(n)) else {
                return false;
            };
            let Some(child) = library.iter().find(|r| r.name() == name) else {
                continue;
            };
            // The inputs the step gives the child, as far as they are known before the run:
            // a parameter name built from one (`{{ inputs.param }}`) is then known too.
            let given: IndexMap<String, InputValue> = s
                .params
                .iter()
                .filter_map(|(k, v)| {
                    let name = k.strip_prefix("inputs.")?;
                    crate::plan::is_known(v).then(|| {
                        (
                            name.to_string(),
                            InputValue {
                                value: v.clone(),
                                secret: false,
                            },
                        )
                    })
                })
                .collect();
            if !collect_writes(child, library, env, &given, names, seen) {
                return false;
            }
        }
    }
    true
}

/// The SSM parameters that runs of `rb` on both `a` and `b` would write, when the two reach
/// the same SSM (one region, endpoint and profile): in a series the later run would overwrite
/// what the earlier one stored, which the earlier environment's app reads at its next deploy.
pub(super) fn written_by_both(
    rb: &Runbook,
    library: &[Runbook],
    a: &Environment,
    b: &Environment,
    inputs: &IndexMap<String, InputValue>,
) -> Vec<String> {
    let same_ssm = match (&a.doc.aws, &b.doc.aws) {
        (Some(x), Some(y)) => {
            x.region == y.region && x.endpoint == y.endpoint && x.profile == y.profile
        }
        _ => false,
    };
    if !same_ssm {
        return Vec::new();
    }
    match (
        writes(rb, library, a, inputs),
        writes(rb, library, b, inputs),
    ) {
        (Writes::Known(x), Writes::Known(y)) => x.intersection(&y).cloned().collect(),
        _ => Vec::new(),
    }
}

/// The inputs an unfinished run was started with, as its journal keeps them (a secret one has
/// no value there, and names no SSM parameter).
fn journal_inputs(run: &RunSummary) -> IndexMap<String, InputValue> {
    run.records
        .iter()
        .find_map(|r| match r {
            journal::JRec::Meta { inputs, .. } => Some(inputs),
            _ => None,
        })
        .into_iter()
        .flatten()
        .filter(|v| !v.secret)
        .filter_map(|v| {
            let value = match v.value.as_ref()? {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((
                v.name.clone(),
                InputValue {
                    value,
                    secret: false,
                },
            ))
        })
        .collect()
}

/// The refusal of a new run while `runs` are unfinished: which, how old, and the two ways out.
pub(super) fn refuse_unfinished(runs: &[Unfinished], rb: &Runbook, env: &Environment) -> Failure {
    let last = &runs[runs.len() - 1];
    let more = match runs.len() {
        1 => String::new(),
        n => format!(" (and {} older)", n - 1),
    };
    let why = if last.shared.is_empty() {
        "a new run would start a second rotation beside it".to_string()
    } else {
        let names: Vec<String> = last.shared.iter().map(|n| format!("`{n}`")).collect();
        format!(
            "it writes SSM {} {}, as `{}` would: a second rotation beside it would overwrite its value, and resuming it would put back one this run replaced",
            if names.len() == 1 {
                "parameter"
            } else {
                "parameters"
            },
            names.join(", "),
            rb.name()
        )
    };
    let run = &last.run;
    let p = Problem::error(
        Code::UnfinishedRun,
        format!(
            "run {} of `{}` on `{}` is unfinished ({}, started {}){more}; {why}",
            run.run_id,
            run.runbook,
            env.name,
            run.status,
            age(&run.started)
        ),
    )
    .help(if run.status == "running" {
        format!(
            "it is running now: wait until it ends (`runbook runs` shows it), then run `{}` again",
            rb.name()
        )
    } else {
        format!(
            "`runbook resume {}` goes on where it stopped; or `runbook run {} --env {} --new` abandons it (erasing the secrets its journal holds, recorded) and starts again",
            run.run_id,
            rb.name(),
            env.name
        )
    });
    Failure::invalid(p)
}

/// How long ago an RFC 3339 time was, in words: `5 minutes ago`.
fn age(started: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(started) else {
        return started.to_string();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    let (n, unit) = match secs {
        0..60 => return "less than a minute ago".into(),
        60..3600 => (secs / 60, "minute"),
        3600..86400 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    format!("{} ago", crate::plan::plural(n as usize, unit))
}

/// What a run that stopped keeps on disk, and why, said when it ends: the names of the secret
/// values its journal still holds (never a value), the steps that changed something elsewhere,
/// and the two ways on.
pub(super) fn kept_secrets(
    journal_path: &Path,
    run_id: &str,
    harmless: &HashSet<String>,
) -> Vec<String> {
    let Ok(j) = journal::read_journal(journal_path) else {
        return Vec::new();
    };
    let kept = journal::kept(&j.records, harmless);
    if kept.secrets.is_empty() {
        return Vec::new();
    }
    let why = if kept.changed.is_empty() {
        "a resume needs them to go on (nothing was changed elsewhere yet)".to_string()
    } else {
        let steps: Vec<String> = kept.changed.iter().map(|s| format!("`{s}`")).collect();
        format!(
            "{} changed something elsewhere that may already use them; a resume needs them to finish or roll back",
            steps.join(", ")
        )
    };
    vec![
        format!(
            "note: run {run_id} keeps {} in its journal (mode 0600): {}",
            crate::plan::plural(kept.secrets.len(), "secret value"),
            kept.secrets.join(", ")
        ),
        format!("  why: {why}"),
        format!(
            "  `runbook resume {run_id}` goes on where it stopped; `runbook abandon {run_id}` erases them"
        ),
    ]
}
