//! Gates and change windows: a `confirm:` approves its step and every step after it up to the
//! next gate, so a rotation is approved before its first change and then runs to its end
//! without waiting for a person. A gate after a step that changes something would stop the
//! run in the middle of a change (a password set that the app does not have yet) for as long
//! as the operator takes: a warning, with the place of that first change.

use std::sync::Arc;

use crate::catalog::Step;
use crate::diag::{Code, Problem, Source};
use crate::model::OnFailure;
use crate::steps::Effect;

/// Whether a step may change something elsewhere, asked of its kind; parameters that only a
/// run can read (a templated number) count as a change.
pub(super) fn changes(step: &Step) -> bool {
    !matches!(
        step.describe(&step.params),
        Ok((_, Effect::ReadOnly | Effect::Local))
    )
}

/// A step that may leave a change half done when the run goes on to the next step: one that
/// changes something, unless it runs a whole runbook (which ends verified, or rolled back, or
/// stops the run), so a gate after it waits between two changes, not inside one (a
/// compromise response's rotations, one after another).
pub(super) fn opens_window(step: &Step) -> bool {
    changes(step) && step.kind.nested_runbook(&step.params).is_none()
}

/// A step that asks a person anyway (a manual step): its own rule decides where it may be.
fn person(step: &Step) -> bool {
    step.kind.interactive(&step.params)
}

pub fn gates(steps: &[Step], rollback: &[Step], source: &Arc<Source>, problems: &mut Vec<Problem>) {
    let first_change = steps.iter().position(opens_window);
    if let Some(first) = first_change {
        for step in steps[first + 1..].iter().filter(|s| !person(s)) {
            if step.common.confirm.is_some() {
                problems.push(after_change(step, &steps[first], source, false));
            }
        }
    }
    // A rollback runs after a step that can start it failed; when a change came before
    // that step, a gate in the rollback holds the half-undone change for a person too.
    let starts_after_change = first_change.is_some_and(|first| {
        steps[first..]
            .iter()
            .any(|s| matches!(s.common.on_failure, Some(OnFailure::Rollback(_))))
    });
    for (i, step) in rollback.iter().enumerate() {
        if step.common.confirm.is_none() || person(step) {
            continue;
        }
        let before = rollback[..i].iter().find(|s| opens_window(s));
        match (before, first_change) {
            (Some(change), _) => problems.push(after_change(step, change, source, true)),
            (None, Some(first)) if starts_after_change => {
                problems.push(after_change(step, &steps[first], source, true));
            }
            _ => {}
        }
    }
}

fn after_change(gate: &Step, change: &Step, source: &Arc<Source>, rollback: bool) -> Problem {
    let what = if rollback {
        "a gate in the rollback"
    } else {
        "a gate"
    };
    let help = if rollback {
        "a rollback should run to its end without a person: remove this `confirm:` (the rollback is approved with the steps that can start it)".to_string()
    } else {
        format!(
            "move this `confirm:` to the first step that changes something (`{}`): a gate approves its step and every step after it up to the next gate, so the whole change runs without stopping",
            change.id()
        )
    };
    Problem::warning(
        Code::GateAfterChange,
        format!(
            "{what} at step `{}` comes after `{}` changed something: the run would wait for a person in the middle of the change",
            gate.id(),
            change.id()
        ),
    )
    .at(source, gate.span_of("confirm"))
    .label("waits for a person here")
    .also_at(change.span_of("id"), "the change starts here")
    .help(help)
}

/// A step that runs another runbook after `change` changed something: the child's own gate
/// (at `gate`) would wait for a person inside this runbook's change.
pub(super) fn nested_after_change(
    step: &Step,
    child: &crate::catalog::Runbook,
    change: &Step,
    source: &Arc<Source>,
    at: crate::load::yaml::ByteSpan,
) -> Option<Problem> {
    let gate = child.steps.iter().find(|s| s.common.confirm.is_some())?;
    Some(
        Problem::warning(
            Code::GateAfterChange,
            format!(
                "step `{}` runs runbook `{}`, whose gate at `{}` comes after `{}` changed something: the run would wait for a person in the middle of the change",
                step.id(),
                child.name(),
                gate.id(),
                change.id()
            ),
        )
        .at(source, at)
        .label("its gate waits for a person here")
        .also_at(change.span_of("id"), "the change starts here")
        .help(format!(
            "run `{}` before `{}` changes anything, or give the gate to a step before `{}`",
            child.name(),
            change.id(),
            change.id()
        )),
    )
}
