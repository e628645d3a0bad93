//! The locks of a run: its own (runbook, environment) in the state directory, those of the
//! runbooks it runs inside itself, and the environment's shared lock in SSM (`shared_lock:`).
//! Also whose AWS credentials the run uses, for the audit log.

use std::sync::Arc;

use indexmap::IndexMap;

use super::{Failure, unsafe_problem};
use crate::aws::lock::{SharedLock, SharedLockError, take_shared_lock};
use crate::catalog::Runbook;
use crate::diag::{Code, Problem};
use crate::engine::{ChildLocks, InputValue};
use crate::journal::{self, LockError, RunLock};
use crate::model::Environment;
use crate::state;

/// The run's own lock, and those of the runbooks its `runbook.run` steps can run: taken
/// before anything runs, so a nested runbook someone else is running refuses the whole
/// run instead of stopping it half-way.
pub(super) fn lock(
    state: &std::path::Path,
    library: &[Runbook],
    rb: &Runbook,
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
    run_id: &str,
) -> Result<(RunLock, Arc<HeldLocks>), Failure> {
    let own = RunLock::acquire(state, rb.name(), &env.name, run_id)
        .map_err(|e| Failure::invalid(lock_problem(state, rb.name(), &env.name, e)))?;
    let children = Arc::new(HeldLocks {
        state: state.to_path_buf(),
        run_id: run_id.to_string(),
        own: (rb.name().to_string(), env.name.clone()),
        held: Default::default(),
    });
    for child in nested_runbooks(rb, library, env, inputs) {
        children
            .take(child.name(), &env.name)
            .map_err(Failure::invalid)?;
    }
    Ok((own, children))
}

/// The environment's lock in SSM (`shared_lock:`), taken after the local one.
pub(super) fn shared_lock(
    runtime: &tokio::runtime::Runtime,
    rb: &Runbook,
    env: &Environment,
    run_id: &str,
) -> Result<Option<SharedLock>, Failure> {
    let Some(spec) = &env.doc.shared_lock else {
        return Ok(None);
    };
    let name = format!(
        "{}/{}.{}",
        spec.parameter_prefix.trim_end_matches('/'),
        rb.name(),
        env.name
    );
    let holder = serde_json::json!({
        "user": crate::engine::operator(),
        "host": journal::hostname(),
        "pid": std::process::id(),
        "run_id": run_id,
        "started": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    let resources = crate::steps::Resources::default();
    let taken = runtime.block_on(take_shared_lock(
        env,
        &resources,
        &name,
        holder,
        spec.expires_after.0,
    ));
    taken.map(Some).map_err(|e| {
        let p = match e {
            SharedLockError::Held(h) => {
                let who = serde_json::from_str::<serde_json::Value>(&h).ok();
                let field = |k: &str| who.as_ref().and_then(|w| w[k].as_str().map(str::to_string)).unwrap_or_else(|| "?".into());
                let pid = who.as_ref().and_then(|w| w["pid"].as_u64()).unwrap_or(0);
                Problem::error(
                    Code::Locked,
                    format!(
                        "`{}` on `{}` is being run by {}@{} (pid {pid}, run {}, since {}) — shared lock {name}",
                        rb.name(),
                        env.name,
                        field("user"),
                        field("host"),
                        field("run_id"),
                        field("started")
                    ),
                )
                .help("wait for that run to end; the lock expires by itself if its holder died")
            }
            SharedLockError::Failed(e) => Problem::error(Code::SharedLock, e.message)
                .help("the environment's `shared_lock:` needs SSM access (PutParameter, GetParameter, DeleteParameter)"),
        };
        Failure::invalid(p)
    })
}

/// For the audit log: whose AWS credentials a runbook that uses AWS runs with (best effort).
pub(super) fn aws_identity(
    runtime: &tokio::runtime::Runtime,
    rb: &Runbook,
    env: &Environment,
) -> Option<String> {
    let uses_aws = rb.all_steps().any(|s| s.kind.uses_aws());
    if !uses_aws || env.doc.aws.is_none() {
        return None;
    }
    runtime.block_on(crate::aws::caller_identity(
        env,
        &crate::steps::Resources::default(),
    ))
}

fn lock_problem(state: &std::path::Path, runbook: &str, env: &str, e: LockError) -> Problem {
    match e {
        LockError::Held(h) => Problem::error(
            Code::Locked,
            format!(
                "`{runbook}` on `{env}` is being run by {}@{} (pid {}, run {}, since {})",
                h.user, h.host, h.pid, h.run_id, h.started
            ),
        )
        .help("wait for that run to end; two runs of one procedure on one environment would race"),
        LockError::Unreadable { path, why } => Problem::error(
            Code::LockUnreadable,
            format!(
                "`{runbook}` on `{env}` is locked by {}, and who holds it cannot be read: {why}",
                path.display()
            ),
        )
        .help(format!(
            "a lock is never taken for stale unless its holder is known to be gone; check that no one runs `{runbook}` on `{env}` (`runbook runs`, ps), then remove it: rm {}",
            path.display()
        )),
        LockError::Io(e) if state::unsafe_of(&e).is_some() => unsafe_problem(&e),
        LockError::Io(e) => Problem::error(
            Code::Journal,
            format!("cannot take the run lock in {}: {e}", state.display()),
        )
        .help("pass --state-dir to a writable directory"),
    }
}

/// The locks a run holds besides its own: those of the runbooks it runs inside itself, until
/// the whole run ends.
#[derive(Debug)]
pub(crate) struct HeldLocks {
    state: std::path::PathBuf,
    run_id: String,
    /// The run's own (runbook, environment): held already.
    own: (String, String),
    held: std::sync::Mutex<Vec<(String, String, RunLock)>>,
}

impl HeldLocks {
    fn take(&self, runbook: &str, env: &str) -> Result<(), Problem> {
        if self.own.0 == runbook && self.own.1 == env {
            return Ok(());
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.iter().any(|(r, e, _)| r == runbook && e == env) {
            return Ok(());
        }
        let lock = RunLock::acquire(&self.state, runbook, env, &self.run_id)
            .map_err(|e| lock_problem(&self.state, runbook, env, e))?;
        held.push((runbook.to_string(), env.to_string(), lock));
        Ok(())
    }
}

impl ChildLocks for HeldLocks {
    fn lock(&self, runbook: &str, env: &str) -> Result<(), String> {
        self.take(runbook, env).map_err(|p| match p.help {
            Some(h) => format!("{} ({h})", p.message),
            None => p.message,
        })
    }
}

/// The runbooks a run of `rb` can run inside itself, through `runbook.run` steps at any depth.
/// A templated name is rendered with the run's inputs at the top level; deeper, or when it
/// cannot be rendered, every choice of the input it names counts (`check` refuses other
/// templated names).
pub(super) fn nested_runbooks<'a>(
    rb: &Runbook,
    library: &'a [Runbook],
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
) -> Vec<&'a Runbook> {
    let mut found: Vec<&'a Runbook> = Vec::new();
    let mut queue: Vec<(&Runbook, bool)> = vec![(rb, true)];
    while let Some((r, top)) = queue.pop() {
        for step in r.all_steps() {
            let Some(name) = step
                .kind
                .nested_runbook(&step.params)
                .and_then(|n| n.name.as_str())
            else {
                continue;
            };
            let mut names = Vec::new();
            if !crate::template::is_template(name) {
                names.push(name.to_string());
            } else {
                let rendered = top
                    .then(|| {
                        let values: serde_json::Map<String, serde_json::Value> = inputs
                            .iter()
                            .map(|(k, v)| {
                                let value = match r.doc.inputs.get(k) {
                                    Some(spec) => {
                                        crate::inputs::typed::template_value(spec, &v.value)
                                    }
                                    None => v.value.clone().into(),
                                };
                                (k.clone(), value)
                            })
                            .collect();
                        let ctx = crate::template::value(serde_json::json!({
                            "inputs": values,
                            "env": env.template_vars(),
                        }));
                        crate::template::render(name, &ctx).ok()
                    })
                    .flatten();
                match rendered {
                    Some(n) => names.push(n),
                    None => {
                        for reference in crate::template::references(name).unwrap_or_default() {
                            if let Some(spec) = reference
                                .strip_prefix("inputs.")
                                .and_then(|i| r.doc.inputs.get(i))
                            {
                                names.extend(spec.choices.clone().unwrap_or_default());
                            }
                        }
                    }
                }
            }
            for n in names {
                if let Some(child) = library.iter().find(|c| c.name() == n)
                    && child.name() != rb.name()
                    && !found.iter().any(|f| f.name() == child.name())
                {
                    found.push(child);
                    queue.push((child, false));
                }
            }
        }
    }
    found
}
