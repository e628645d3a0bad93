//! Partial runs (`run --from STEP`, `run --only STEP,...`): which main steps run, and which
//! outputs the selected steps would read from steps that will not run.
//!
//! A step that is not selected produces no outputs, so a selected step that reads one could
//! only fail half-way through the run; the CLI refuses such a selection before anything runs.

use std::collections::HashSet;

use crate::catalog::{Runbook, Step};
use crate::diag::{Code, Problem};
use crate::model::OnFailure;
use crate::template;

/// The ids of the main steps that run, in runbook order; `None` for the whole runbook.
pub fn select(
    rb: &Runbook,
    from: Option<&str>,
    only: &[String],
) -> Result<Option<Vec<String>>, Problem> {
    let ids: Vec<&str> = rb.steps.iter().map(Step::id).collect();
    let known = |id: &str| -> Result<(), Problem> {
        if ids.contains(&id) {
            return Ok(());
        }
        let what = if rb.rollback.iter().any(|s| s.id() == id) {
            format!(
                "`{id}` is a rollback step of `{}`; only main steps can be selected",
                rb.name()
            )
        } else {
            format!("runbook `{}` has no step `{id}`", rb.name())
        };
        Err(Problem::error(Code::NoSuchStep, what)
            .help(format!("its steps are: {}", ids.join(", "))))
    };
    if let Some(from) = from {
        known(from)?;
        let start = ids.iter().position(|i| *i == from).unwrap_or(0);
        return Ok(Some(ids[start..].iter().map(|s| s.to_string()).collect()));
    }
    if only.is_empty() {
        return Ok(None);
    }
    for id in only {
        known(id)?;
    }
    Ok(Some(
        ids.iter()
            .filter(|i| only.iter().any(|o| o == *i))
            .map(|s| s.to_string())
            .collect(),
    ))
}

/// A selected step (or a rollback step it may lead to) reads an output of a step that will
/// not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The step that reads it.
    pub step: String,
    /// `steps.<id>.<output>`.
    pub reference: String,
    /// The step that will not run.
    pub source: String,
}

/// Every reference of the steps that may run to outputs of main steps that will not.
pub fn missing_outputs(rb: &Runbook, selected: &[String]) -> Vec<Missing> {
    let chosen: HashSet<&str> = selected.iter().map(String::as_str).collect();
    let unselected: HashSet<&str> = rb
        .steps
        .iter()
        .map(Step::id)
        .filter(|id| !chosen.contains(id))
        .collect();
    // Rollback steps run when a selected step with `on_failure: <rollback step>` fails, from
    // that step on; they read main steps' outputs too (the old secret, above all).
    let first_rollback = rb
        .steps
        .iter()
        .filter(|s| chosen.contains(s.id()))
        .filter_map(|s| match &s.common.on_failure {
            Some(OnFailure::Rollback(target)) => rb.rollback.iter().position(|r| r.id() == target),
            _ => None,
        })
        .min();
    let may_run = rb
        .steps
        .iter()
        .filter(|s| chosen.contains(s.id()))
        .chain(first_rollback.map_or(&[][..], |i| &rb.rollback[i..]));
    let mut out: Vec<Missing> = Vec::new();
    for step in may_run {
        for r in step_references(step) {
            let mut parts = r.split('.');
            let (Some("steps"), Some(source)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !unselected.contains(source) {
                continue;
            }
            let reference = r.split('.').take(3).collect::<Vec<_>>().join(".");
            let m = Missing {
                step: step.id().to_string(),
                reference,
                source: source.to_string(),
            };
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// The dotted names every template of a step reads: title, gate question, `when`, parameters.
fn step_references(step: &Step) -> Vec<String> {
    let mut refs = Vec::new();
    for field in ["title", "confirm"] {
        if let Some(s) = step.node.get(field).and_then(|n| n.as_str()) {
            refs.extend(template::references(s).unwrap_or_default());
        }
    }
    if let Some(s) = step.node.get("when").and_then(|n| n.as_str()) {
        refs.extend(template::expression_references(s).unwrap_or_default());
    }
    step.params.walk_scalars(&mut |_, s| {
        if template::is_template(s) {
            refs.extend(template::references(s).unwrap_or_default());
        }
    });
    refs
}
