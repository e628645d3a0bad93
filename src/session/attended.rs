//! A run nobody attends (no terminal to ask on, `--yes` or not) must not reach a step only a
//! person can do: `--yes` approves gates, it never does a person's work. Such a run is refused
//! before its first step, naming every step that needs a person, unless the step allows being
//! left undone (`unattended: skip`: the engine records it as not done by a person).

use std::collections::HashSet;

use indexmap::IndexMap;

use super::Failure;
use crate::catalog::{Runbook, Step};
use crate::diag::{Code, Problem, display_path};
use crate::engine::InputValue;
use crate::model::Environment;
use crate::steps::Unattended;

/// Refuse a run nobody attends when a step it may run needs a person: the selected main steps
/// and every rollback step of `rb`, and every step of the runbooks they may run inside it,
/// but none that finished before a resume (`done`: ids as the journal has them, a nested
/// runbook's as `<step>/<its step>`).
pub(super) fn refuse_unattended_manual_steps(
    rb: &Runbook,
    library: &[Runbook],
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
    selected: Option<&[String]>,
    done: &HashSet<String>,
) -> Result<(), Failure> {
    let runs = |s: &Step| {
        !done.contains(s.id())
            && (s.rollback || selected.is_none_or(|sel| sel.iter().any(|i| i == s.id())))
    };
    // Which run of a nested runbook a step belongs to is not known here: one done in any of
    // them counts as done.
    let nested_done = |s: &Step| done.iter().any(|d| d.ends_with(&format!("/{}", s.id())));
    let mut found: Vec<(&Runbook, &Step)> = rb
        .all_steps()
        .filter(|s| runs(s))
        .map(|s| (rb, s))
        .collect();
    // A partial run that runs no nested runbook reaches none of their steps.
    if rb
        .all_steps()
        .any(|s| runs(s) && s.kind.nested_runbook(&s.params).is_some())
    {
        for child in super::locks::nested_runbooks(rb, library, env, inputs) {
            found.extend(
                child
                    .all_steps()
                    .filter(|s| !nested_done(s))
                    .map(|s| (child, s)),
            );
        }
    }
    let needs: Vec<String> = found
        .into_iter()
        .filter(|(_, s)| {
            s.kind.interactive(&s.params) && s.kind.unattended(&s.params) == Unattended::Refuse
        })
        .map(|(r, s)| {
            let (line, col) = r.source.line_col(s.span_of("id").start);
            let what = match &s.common.title {
                Some(t) => t.clone(),
                None => s
                    .kind
                    .describe(&s.params)
                    .map_or_else(|_| s.kind.name().to_string(), |(d, _)| d),
            };
            format!(
                "  {}:{line}:{col}  step `{}`: {}",
                display_path(&r.source.path),
                s.id(),
                crate::display::visible_line(&what)
            )
        })
        .collect();
    if needs.is_empty() {
        return Ok(());
    }
    let problem = Problem::error(
        Code::NeedsPerson,
        format!(
            "`{}` has {} only a person can do, and no terminal to ask on",
            rb.name(),
            crate::plan::plural(needs.len(), "manual step")
        ),
    )
    .help(
        "run it in a terminal (`--yes` approves gates; it never does a person's work); a step \
         the run can do without (a notification) may say `unattended: skip`",
    );
    let mut failure = Failure::invalid(problem).line("needs a person (nothing ran):");
    for n in needs {
        failure = failure.line(n);
    }
    Err(failure)
}
