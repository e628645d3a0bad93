//! Checks across steps: unique ids, the kind's own check (which also says the step's
//! outputs), `on_failure` targets, retry and the common fields' ranges; each step's templates
//! through `templates.rs`, with what the steps before it are known to output.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;

use super::templates::{Known, Scope, check_templates, secret_logged_by_server, unquoted_in_shell};
use crate::catalog::Step;
use crate::diag::{Code, Problem, Source, did_you_mean};
use crate::load::de_problem;
use crate::load::yaml::ByteSpan;
use crate::model::{Environments, InputSpec, OnFailure};
use crate::steps::CheckCx;

/// Whether `id` can be read in a template as `steps.<id>.<output>`: an identifier, since
/// `steps.new-password.value` would parse as a subtraction.
fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn steps(
    steps: &mut [Step],
    rollback: &mut [Step],
    inputs: Option<&IndexMap<String, InputSpec>>,
    envs: &Environments,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) {
    // Unique ids across main and rollback steps.
    let mut first: HashMap<String, ByteSpan> = HashMap::new();
    for s in steps.iter().chain(rollback.iter()) {
        let span = s.span_of("id");
        if !is_identifier(s.id()) {
            let suggestion: String = s
                .id()
                .trim()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let message = if s.id().is_empty() {
                "a step id is empty".to_string()
            } else {
                format!("step id `{}` is not a name templates can use", s.id())
            };
            let mut p = Problem::error(Code::BadId, message)
                .at(source, span.clone())
                .label("this id");
            p.help = Some(if is_identifier(&suggestion) {
                format!("use letters, digits and `_`, e.g. `{suggestion}`")
            } else {
                "use letters, digits and `_`, starting with a letter, e.g. `new_password`".into()
            });
            problems.push(p);
        }
        if let Some(first_use) = first.get(s.id()) {
            problems.push(
                Problem::error(Code::DuplicateId, format!("duplicate step id `{}`", s.id()))
                    .at(source, span)
                    .label("used again here")
                    .also_at(first_use.clone(), "first used here")
                    .help("every step needs its own id; outputs are read as `steps.<id>.<output>`"),
            );
        } else {
            first.insert(s.id().to_string(), span);
        }
    }

    // Where each id is, so a reference to a later step is told apart from an unknown one.
    let positions: HashMap<String, (usize, bool)> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id().to_string(), (i, false)))
        .chain(
            rollback
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id().to_string(), (i, true))),
        )
        .collect();
    let mut known: HashMap<String, Known> = HashMap::new();
    let rollback_ids: Vec<String> = rollback.iter().map(|s| s.id().to_string()).collect();
    let no_inputs = IndexMap::new();
    let inputs = inputs.unwrap_or(&no_inputs);

    for (is_rollback, list) in [(false, &mut *steps), (true, &mut *rollback)] {
        for (index, step) in list.iter_mut().enumerate() {
            let scope = Scope {
                index,
                rollback: is_rollback,
                known: &known,
                positions: &positions,
                inputs,
                envs,
            };
            check_templates(step, &scope, source, problems);
            unquoted_in_shell(step, &scope, source, problems);
            secret_logged_by_server(step, &scope, source, problems);
            // The kind's own checks, knowing which references hold secrets.
            let secret_refs = |path: &str| scope.is_secret(path);
            let mut cx = CheckCx {
                problems: Vec::new(),
                environments: &envs.list,
                params: &step.params,
                secret_refs: &secret_refs,
            };
            let mut outputs_unknown = false;
            match step.kind.check(&step.params, &mut cx) {
                Ok(outputs) => step.outputs = outputs,
                Err(e) => {
                    outputs_unknown = true;
                    problems.push(de_problem(e, source));
                }
            }
            problems.extend(cx.problems.into_iter().map(|p| p.in_file(source)));
            if let Some(OnFailure::Rollback(target)) = &step.common.on_failure
                && !rollback_ids.contains(target)
            {
                let help = did_you_mean(target, rollback_ids.iter().map(String::as_str)).unwrap_or_else(|| {
                    if rollback_ids.is_empty() {
                        "add the compensation steps under `rollback:`, or write `abort` or `continue`".into()
                    } else {
                        format!("rollback steps are: {}", rollback_ids.join(", "))
                    }
                });
                problems.push(
                    Problem::error(
                        Code::UnknownRollback,
                        format!("`on_failure: {target}` names no rollback step"),
                    )
                    .at(source, step.span_of("on_failure"))
                    .label("not a rollback step")
                    .help(help),
                );
            }
            check_ranges(step, source, problems);
            // The author's word that a step only reads is taken where the kind cannot tell
            // (a command), never against what the kind knows it changes.
            if step.common.read_only
                && let Err(what) = step.kind.may_be_read_only(&step.params)
            {
                problems.push(
                    Problem::error(
                        Code::NotReadOnly,
                        format!(
                            "step `{}` cannot be read-only: `{}` changes {what}",
                            step.id(),
                            step.kind.name()
                        ),
                    )
                    .at(source, step.span_of("read_only"))
                    .label("declared read-only here")
                    .help("remove `read_only: true`; plans, preflight and resume must see this change"),
                );
            }
            if let Some(retry) = &step.common.retry
                && retry.attempts == 0
            {
                problems.push(
                    Problem::error(
                        Code::BadRetry,
                        "`retry.attempts` counts every attempt and must be at least 1",
                    )
                    .at(source, step.span_of("retry")),
                );
            }
            // A retried step runs again after a failure that may have come after its effect
            // (a POST whose answer timed out): only a step that is safe to repeat may retry.
            if let Some(retry) = &step.common.retry
                && retry.attempts > 1
                && !step.idempotent()
            {
                problems.push(
                    Problem::warning(
                        Code::RetryRepeatsChange,
                        format!(
                            "step `{}` retries a change: a failed attempt may already have made it, and the next one makes it again",
                            step.id()
                        ),
                    )
                    .at(source, step.span_of("retry"))
                    .label("retried here")
                    .help("remove `retry:`, or say `idempotent: true` on the step when making it twice is harmless"),
                );
            }
            known.insert(
                step.id().to_string(),
                Known {
                    index,
                    rollback: is_rollback,
                    outputs: step.outputs.clone(),
                    outputs_unknown,
                },
            );
        }
    }
}

/// The common fields' numbers and durations within their ranges (`crate::model::ranges`).
fn check_ranges(step: &Step, source: &Arc<Source>, problems: &mut Vec<Problem>) {
    use crate::model::ranges::{self, outside, outside_dur};
    let c = &step.common;
    let at = |field: &str| {
        step.node
            .get(field)
            .map_or_else(|| step.span_of("id"), |n| n.span.clone())
    };
    let mut found: Vec<(&str, String, String, ByteSpan)> = Vec::new();
    if let Some(t) = c.timeout
        && let Some(help) = outside_dur(t.0, ranges::TIMEOUT)
    {
        found.push(("timeout", fmt_dur(t.0), help, at("timeout")));
    }
    if let Some(r) = &c.retry {
        let field = |f: &str| {
            step.node
                .get("retry")
                .and_then(|n| n.get(f))
                .map_or_else(|| at("retry"), |n| n.span.clone())
        };
        // `attempts: 0` has its own message (below).
        if r.attempts > 0
            && let Some(help) = outside(r.attempts, ranges::RETRY_ATTEMPTS, |n| n.to_string())
        {
            found.push((
                "retry.attempts",
                r.attempts.to_string(),
                help,
                field("attempts"),
            ));
        }
        if let Some(help) = outside_dur(r.delay.0, ranges::RETRY_DELAY) {
            found.push(("retry.delay", fmt_dur(r.delay.0), help, field("delay")));
        }
        if let Some(help) = outside(r.backoff, ranges::BACKOFF, ranges::show_f64) {
            let shown = ranges::show_f64(r.backoff);
            found.push(("retry.backoff", shown, help, field("backoff")));
        }
    }
    for (field, shown, help, span) in found {
        problems.push(ranges::problem(field, &shown, help).at(source, span));
    }
}

fn fmt_dur(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}
