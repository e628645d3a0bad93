//! Checks across steps: unique ids, outputs of kinds, and every template reference resolved
//! statically (inputs, environment vars, earlier steps' outputs) before anything runs.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::diag::{Problem, Source, did_you_mean};
use crate::load::de_problem;
use crate::load::yaml::{ByteSpan, Node, NodeKind};
use crate::model::{Environments, InputSpec, OnFailure, RunbookDoc, Step};
use crate::steps::{CheckCx, OutputSpec, Secrecy};
use crate::template;

/// Inputs: a default must be one of the choices.
pub fn inputs(doc: &RunbookDoc, node: &Node, source: &Arc<Source>, problems: &mut Vec<Problem>) {
    for (name, spec) in &doc.inputs {
        if let (Some(choices), Some(default)) = (&spec.choices, &spec.default)
            && !choices.contains(default)
        {
            let span = node
                .get("inputs")
                .and_then(|n| n.get(name))
                .and_then(|n| n.get("default"))
                .map_or(0..0, |n| n.span.clone());
            problems.push(
                Problem::error(
                    "runbook::bad-default",
                    format!("the default of input `{name}` is not one of its choices"),
                )
                .at(source, span)
                .help(format!("choose one of: {}", choices.join(", "))),
            );
        }
        if spec.secret && spec.default.is_some() {
            let span = node
                .get("inputs")
                .and_then(|n| n.get(name))
                .and_then(|n| n.get("default"))
                .map_or(0..0, |n| n.span.clone());
            problems.push(
                Problem::error(
                    "runbook::secret-default",
                    format!("secret input `{name}` has a default written in the runbook"),
                )
                .at(source, span)
                .help("a secret must not live in a reviewed file; remove the default"),
            );
        }
    }
}

/// No value of a file holds a character a reader cannot see: a command written
/// `wget … | sh\r\e[2Ksystemctl restart app` shows only its end on a terminal, and a bidi
/// override shows text in another order than it runs. Such characters are refused (an
/// error), except joiners and variation selectors, which prose may need (a warning). Keys
/// are checked with the values.
pub fn control_characters(node: &Node, source: &Arc<Source>, problems: &mut Vec<Problem>) {
    fn walk(node: &Node, path: &str, source: &Arc<Source>, problems: &mut Vec<Problem>) {
        match &node.kind {
            NodeKind::Scalar { value, .. } => {
                let what = if path.is_empty() {
                    "a value".to_string()
                } else {
                    format!("`{path}`")
                };
                scalar(node, value, what, source, problems);
            }
            NodeKind::Seq(items) => {
                for (i, n) in items.iter().enumerate() {
                    walk(n, &format!("{path}[{i}]"), source, problems);
                }
            }
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    let key = k.as_str().unwrap_or_default();
                    let p = if path.is_empty() {
                        key.to_string()
                    } else {
                        format!("{path}.{key}")
                    };
                    let shown = crate::display::visible_line(&p).into_owned();
                    if let NodeKind::Scalar { value, .. } = &k.kind {
                        scalar(k, value, format!("the key `{shown}`"), source, problems);
                    }
                    walk(v, &shown, source, problems);
                }
            }
        }
    }
    fn scalar(
        node: &Node,
        value: &str,
        what: String,
        source: &Arc<Source>,
        problems: &mut Vec<Problem>,
    ) {
        let hidden: Vec<char> = value
            .chars()
            .filter(|c| crate::display::is_hidden(*c))
            .collect();
        let Some(&first) = hidden
            .iter()
            .find(|c| !crate::display::is_joiner(**c))
            .or(hidden.first())
        else {
            return;
        };
        // The character itself when it is written raw in the file, else the whole scalar
        // (it was written as an escape such as "\e").
        let raw = source.text.get(node.span.clone()).unwrap_or_default();
        let span = raw.find(first).map_or(node.span.clone(), |i| {
            node.span.start + i..node.span.start + i + first.len_utf8()
        });
        let message = format!(
            "{what} holds an invisible character ({})",
            crate::display::describe(first)
        );
        let p = if crate::display::is_joiner(first) {
            Problem::warning("runbook::control-character", message)
                .help("remove it unless it joins letters or an emoji that need it")
        } else {
            Problem::error("runbook::control-character", message).help(
                "remove it: a reviewer cannot see it, and a terminal would obey it; a command \
                 that needs such a byte can make it itself, e.g. `printf '\\033'`",
            )
        };
        problems.push(p.at(source, span).label("here"));
    }
    walk(node, "", source, problems);
}

/// A runbook must do something.
pub fn has_steps(doc: &RunbookDoc, node: &Node, source: &Arc<Source>, problems: &mut Vec<Problem>) {
    if doc.steps.is_empty() {
        let span = node.get("steps").map_or(0..0, |n| n.span.clone());
        problems.push(
            Problem::error(
                "runbook::no-steps",
                format!("runbook `{}` has no steps", doc.name),
            )
            .at(source, span)
            .help("add at least one step under `steps:`"),
        );
    }
}

/// Whether `id` can be read in a template as `steps.<id>.<output>`: an identifier, since
/// `steps.new-password.value` would parse as a subtraction.
fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What the checker knows about a step that ran before the one being checked.
struct Known {
    index: usize,
    rollback: bool,
    outputs: Vec<OutputSpec>,
    /// The step's own parameters are invalid, so its outputs are unknown: references to them
    /// are not reported again.
    outputs_unknown: bool,
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
            let mut p = Problem::error("runbook::bad-id", message)
                .at(source, span.clone())
                .label("this id");
            p.help = Some(if is_identifier(&suggestion) {
                format!("use letters, digits and `_`, e.g. `{suggestion}`")
            } else {
                "use letters, digits and `_`, starting with a letter, e.g. `new_password`".into()
            });
            problems.push(p);
        }
        if first.contains_key(s.id()) {
            problems.push(
                Problem::error(
                    "runbook::duplicate-id",
                    format!("duplicate step id `{}`", s.id()),
                )
                .at(source, span)
                .label("used again here")
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
                        "runbook::unknown-rollback",
                        format!("`on_failure: {target}` names no rollback step"),
                    )
                    .at(source, step.span_of("on_failure"))
                    .label("not a rollback step")
                    .help(help),
                );
            }
            check_ranges(step, source, problems);
            if let Some(retry) = &step.common.retry
                && retry.attempts == 0
            {
                problems.push(
                    Problem::error(
                        "runbook::bad-retry",
                        "`retry.attempts` counts every attempt and must be at least 1",
                    )
                    .at(source, step.span_of("retry")),
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

struct Scope<'a> {
    index: usize,
    rollback: bool,
    known: &'a HashMap<String, Known>,
    positions: &'a HashMap<String, (usize, bool)>,
    inputs: &'a IndexMap<String, InputSpec>,
    envs: &'a Environments,
}

impl Scope<'_> {
    fn is_secret(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('.').collect();
        match parts.as_slice() {
            ["inputs", name, ..] => self.inputs.get(*name).is_some_and(|i| i.secret),
            ["steps", id, rest @ ..] => self.known.get(*id).is_some_and(|k| {
                k.outputs.iter().any(|o| {
                    o.secrecy != Secrecy::Public && rest.first().is_none_or(|n| *n == o.name)
                })
            }),
            _ => false,
        }
    }

    /// Why a dotted reference cannot be resolved, if it cannot.
    fn resolve(&self, path: &str) -> Option<(String, Option<String>)> {
        let parts: Vec<&str> = path.split('.').collect();
        match parts.as_slice() {
            ["inputs"] | ["env"] | ["steps"] => None,
            ["inputs", name, ..] => (!self.inputs.contains_key(*name)).then(|| {
                let help = did_you_mean(name, self.inputs.keys().map(String::as_str))
                    .unwrap_or_else(|| {
                        format!(
                            "declare it under `inputs:` (declared: {})",
                            list_or_none(self.inputs.keys().map(String::as_str))
                        )
                    });
                (format!("undefined input `{name}`"), Some(help))
            }),
            ["env", var, ..] => {
                for env in &self.envs.list {
                    let vars = env.template_vars();
                    if !vars.contains_key(*var) {
                        let help = did_you_mean(var, vars.keys().map(String::as_str))
                            .unwrap_or_else(|| {
                                format!(
                                    "add `{var}` under `environments.{}.vars` in environments.yaml",
                                    env.name
                                )
                            });
                        return Some((
                            format!("environment `{}` has no var `{var}`", env.name),
                            Some(help),
                        ));
                    }
                }
                None
            }
            ["steps", id, rest @ ..] => {
                let Some(k) = self.known.get(*id) else {
                    return Some(match self.positions.get(*id) {
                        Some((i, rb)) => {
                            let place = if *rb {
                                "a rollback step"
                            } else {
                                "a later step"
                            };
                            (
                                format!(
                                    "step `{id}` is {place} (#{}); its outputs do not exist yet here",
                                    i + 1
                                ),
                                Some("a step can only read the outputs of steps before it".into()),
                            )
                        }
                        None => {
                            let ids = self.known.keys().map(String::as_str);
                            let help = did_you_mean(id, ids)
                                .unwrap_or_else(|| "no step has this id".into());
                            (format!("undefined step `{id}`"), Some(help))
                        }
                    });
                };
                // Rollback steps may read main steps and earlier rollback steps.
                if k.rollback && !self.rollback
                    || (k.rollback == self.rollback && k.index >= self.index)
                {
                    return Some((format!("step `{id}` has not run yet here"), None));
                }
                match rest.first() {
                    None => None,
                    Some(_) if k.outputs_unknown => None,
                    Some(out) if k.outputs.iter().any(|o| o.name == *out) => None,
                    Some(out) => {
                        let names: Vec<&str> = k.outputs.iter().map(|o| o.name.as_str()).collect();
                        let help = did_you_mean(out, names.iter().copied()).unwrap_or_else(|| {
                            format!("its outputs are: {}", list_or_none(names.iter().copied()))
                        });
                        Some((format!("step `{id}` has no output `{out}`"), Some(help)))
                    }
                }
            }
            [root, ..] => Some((
                format!("unknown name `{root}`"),
                Some(
                    "templates can read `inputs.<name>`, `env.<var>` and `steps.<id>.<output>`"
                        .into(),
                ),
            )),
            [] => None,
        }
    }
}

fn list_or_none<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Check every template of a step: syntax and references.
fn check_templates(
    step: &Step,
    scope: &Scope<'_>,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) {
    let mut scalars: Vec<(&Node, &str, bool)> = Vec::new();
    for field in ["title", "confirm"] {
        if let Some(n) = step.node.get(field)
            && let Some(s) = n.as_str()
        {
            scalars.push((n, s, false));
        }
    }
    if let Some(n) = step.node.get("when")
        && let Some(s) = n.as_str()
    {
        scalars.push((n, s, true));
    }
    step.params
        .walk_scalars(&mut |n, s| scalars.push((n, s, false)));

    for (node, text, is_expr) in scalars {
        if !is_expr && !template::is_template(text) {
            continue;
        }
        let refs = if is_expr {
            template::expression_references(text)
        } else {
            template::references(text)
        };
        match refs {
            Err(e) => {
                // An expression's range is within the text without its `{{ }}`.
                let off = if is_expr {
                    template::strip_braces(text).as_ptr() as usize - text.as_ptr() as usize
                } else {
                    0
                };
                let span = e.range.map_or(node.span.clone(), |r| {
                    locate(node, source, r.start + off..r.end + off)
                });
                problems.push(
                    Problem::error("runbook::template", e.message)
                        .at(source, span)
                        .label("here"),
                );
            }
            Ok(refs) => {
                // Filters, tests and functions that do not exist, and names that hide the
                // run's values: otherwise found only when the step runs, after earlier steps
                // changed things.
                let (source_text, shift) = if is_expr {
                    let inner = template::strip_braces(text);
                    let at = text.find(inner).unwrap_or(0);
                    (format!("{{{{ {inner} }}}}"), at as isize - 3)
                } else {
                    (text.to_string(), 0)
                };
                for sp in template::static_problems(&source_text) {
                    let span = sp.error.range.map_or(node.span.clone(), |r| {
                        let start = (r.start as isize + shift).max(0) as usize;
                        locate(node, source, start..start + r.len())
                    });
                    let mut p = Problem::error(sp.code, sp.error.message)
                        .at(source, span)
                        .label("here");
                    p.help = sp.help;
                    problems.push(p);
                }
                for r in refs {
                    if let Some((message, help)) = scope.resolve(&r) {
                        let span = text
                            .find(&r)
                            .map_or(node.span.clone(), |i| locate(node, source, i..i + r.len()));
                        let mut p = Problem::error("runbook::undefined-reference", message)
                            .at(source, span)
                            .label("referenced here");
                        p.help = help;
                        problems.push(p);
                    }
                }
            }
        }
    }
}

/// A value the operator or a run decides (an input without `choices`, a step's output) put
/// into a command a shell reads, other than through `| shell_quote`, could run as commands of
/// its own (`; rm -rf ~`). A warning: the author may know the value's form (a hex key). Env
/// vars do not count: they come from the reviewed environments.yaml, like the command itself.
fn unquoted_in_shell(
    step: &Step,
    scope: &Scope<'_>,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) {
    for field in step.kind.shell_fields() {
        let Some(node) = step.params.get(field) else {
            continue;
        };
        let Some(text) = node.as_str() else {
            continue;
        };
        let mut from = 0;
        while let Some(open) = text[from..].find("{{").map(|i| from + i) {
            let Some(close) = text[open..].find("}}").map(|i| open + i + 2) else {
                break;
            };
            from = close;
            let inner = text[open + 2..close - 2].trim_matches(['-', '+', ' ', '\n', '\t']);
            let quoted = inner
                .rsplit('|')
                .next()
                .is_some_and(|last| last.trim() == "shell_quote");
            if quoted {
                continue;
            }
            let Ok(refs) = template::references(&text[open..close]) else {
                continue;
            };
            let decided = refs
                .iter()
                .find(|r| match r.split('.').collect::<Vec<_>>()[..] {
                    ["inputs", name, ..] => {
                        scope.inputs.get(name).is_some_and(|i| i.choices.is_none())
                    }
                    ["steps", _, ..] => true,
                    _ => false,
                });
            if let Some(r) = decided {
                let what = match r.strip_prefix("inputs.") {
                    Some(i) => format!("input `{i}`"),
                    None => format!("`{r}`"),
                };
                let var = r.rsplit('.').next().unwrap_or("VALUE").to_ascii_uppercase();
                problems.push(
                    Problem::warning(
                        "runbook::unquoted-in-shell",
                        format!("{what} goes into the shell command `{field}` unquoted"),
                    )
                    .at(source, locate(node, source, open..close))
                    .label("read by a shell")
                    .help(format!(
                        "pass it through `env:` (the safe way: `env: {{ {var}: \"{{{{ {r} }}}}\" }}` \
                         and \"${var}\" in the command) or `| shell_quote`"
                    )),
                );
            }
        }
    }
}

/// The source span of `range` within a scalar's value: exact when the scalar is written on one
/// line without escapes, the whole scalar otherwise.
fn locate(node: &Node, source: &Source, range: std::ops::Range<usize>) -> ByteSpan {
    let NodeKind::Scalar { value, .. } = &node.kind else {
        return node.span.clone();
    };
    let raw = source.text.get(node.span.clone()).unwrap_or_default();
    for skip in [0usize, 1] {
        if raw
            .get(skip..)
            .is_some_and(|r| r.starts_with(value.as_str()))
        {
            let start = node.span.start + skip + range.start;
            return start..start + range.len();
        }
    }
    // Block scalars: find the referenced text in the raw source of the scalar.
    if let Some(needle) = value.get(range.clone())
        && let Some(i) = raw.find(needle)
    {
        let start = node.span.start + i;
        return start..start + needle.len();
    }
    node.span.clone()
}

/// Why the runbook a `runbook.run` step names cannot be known before the run: the message
/// and the help.
type Unknowable = (String, String);

/// The most runbook names a templated `name:` may stand for (every combination of the choices
/// of the inputs it reads).
const MAX_NAMES: usize = 256;

/// The runbooks a `runbook.run` step may run: its name, or every rendering of a templated
/// one over the choices of the inputs it reads. An input without `choices`, a step output or
/// an env var makes it unknowable, and then nothing about it (inputs, cycles) can be checked.
/// A template or reference error is reported elsewhere (empty here).
fn possible_names(rb: &crate::model::Runbook, name: &str) -> Result<Vec<String>, Unknowable> {
    if !template::is_template(name) {
        return Ok(vec![name.to_string()]);
    }
    let Ok(refs) = template::references(name) else {
        return Ok(Vec::new());
    };
    let mut combos: Vec<serde_json::Map<String, serde_json::Value>> = vec![Default::default()];
    for r in &refs {
        let input = match r.strip_prefix("inputs.") {
            Some(i) => i.split('.').next().unwrap_or(i),
            None => {
                return Err((
                    format!(
                        "the runbook name `{name}` reads `{r}`, known only at run time, so what \
                         this step runs cannot be checked"
                    ),
                    "write the runbook's name, or choose it with an input that has `choices:`"
                        .into(),
                ));
            }
        };
        let Some(spec) = rb.doc.inputs.get(input) else {
            return Ok(Vec::new());
        };
        let Some(choices) = &spec.choices else {
            return Err((
                format!(
                    "the runbook name `{name}` reads input `{input}`, which has no `choices`, so \
                     what this step runs cannot be checked"
                ),
                format!("give input `{input}` `choices:` naming the runbooks it may run"),
            ));
        };
        combos = combos
            .iter()
            .flat_map(|m| {
                choices.iter().map(move |c| {
                    let mut m = m.clone();
                    m.insert(input.to_string(), c.clone().into());
                    m
                })
            })
            .collect();
        if combos.len() > MAX_NAMES {
            return Err((
                format!("the runbook name `{name}` stands for more than {MAX_NAMES} runbooks"),
                "choose the runbook with one input that has `choices:`".into(),
            ));
        }
    }
    let mut names: Vec<String> = combos
        .into_iter()
        .filter_map(|m| {
            let ctx = template::value(serde_json::json!({ "inputs": m }));
            template::render(name, &ctx).ok()
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The first `runbook.run` cycle reachable from `path`'s last runbook, as the runbooks along
/// it (the first and the last the same). `done` holds runbooks known to reach no cycle.
fn find_cycle(
    path: &mut Vec<String>,
    graph: &HashMap<&str, Vec<String>>,
    done: &mut std::collections::HashSet<String>,
) -> Option<Vec<String>> {
    let last = path.last()?.clone();
    for next in graph.get(last.as_str()).into_iter().flatten() {
        if let Some(i) = path.iter().position(|p| p == next) {
            let mut cycle = path[i..].to_vec();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if done.contains(next) {
            continue;
        }
        path.push(next.clone());
        let found = find_cycle(path, graph, done);
        path.pop();
        if found.is_some() {
            return found;
        }
    }
    done.insert(last);
    None
}

/// `runbook.run` steps name runbooks of the same directory, with their inputs. A name written
/// as `{{ inputs.x }}` is checked for every choice of input `x`; one that cannot be known
/// before the run is refused. No runbook may come back to itself through `runbook.run` (it
/// would run the same steps again and again): a cycle is an error at every step that leads
/// into it, with the cycle spelled out.
pub fn nested_runbooks(
    subjects: &[&crate::model::Runbook],
    runbooks: &[crate::model::Runbook],
    problems: &mut Vec<Problem>,
) {
    // Which runbooks each runbook of the directory may run.
    let graph: HashMap<&str, Vec<String>> = runbooks
        .iter()
        .map(|rb| {
            let children = rb
                .all_steps()
                .filter(|s| s.kind.name() == "runbook.run")
                .filter_map(|s| s.params.get("name").and_then(Node::as_str))
                .flat_map(|n| possible_names(rb, n).unwrap_or_default())
                .collect();
            (rb.name(), children)
        })
        .collect();
    for rb in subjects {
        let mut done = std::collections::HashSet::new();
        for step in rb.all_steps().filter(|s| s.kind.name() == "runbook.run") {
            let Some(name_node) = step.params.get("name") else {
                continue;
            };
            let Some(name) = name_node.as_str() else {
                continue;
            };
            let at = |p: Problem| p.at(&rb.source, name_node.span.clone());
            let candidates = match possible_names(rb, name) {
                Ok(c) => c,
                Err((message, help)) => {
                    problems.push(at(Problem::error("runbook::dynamic-runbook-name", message)
                        .label("not known before the run")
                        .help(help)));
                    continue;
                }
            };
            let given: Vec<&str> = step
                .params
                .get("inputs")
                .and_then(Node::as_map)
                .map_or_else(Vec::new, |m| {
                    m.iter().filter_map(|(k, _)| k.as_str()).collect()
                });
            for cand in candidates {
                let Some(child) = runbooks.iter().find(|r| r.name() == cand) else {
                    let names = runbooks.iter().map(|r| r.name());
                    let mut p = Problem::error(
                        "runbook::unknown-runbook",
                        format!("no runbook named `{cand}`"),
                    )
                    .label("runs this runbook");
                    p.help = did_you_mean(&cand, names);
                    problems.push(at(p));
                    continue;
                };
                if child.name() == rb.name() {
                    problems.push(at(Problem::error(
                        "runbook::nested-self",
                        format!("runbook `{cand}` runs itself"),
                    )));
                    continue;
                }
                let mut path = vec![rb.name().to_string(), cand.clone()];
                if let Some(cycle) = find_cycle(&mut path, &graph, &mut done) {
                    let message = if cycle[0] == rb.name() {
                        format!(
                            "runbook `{}` runs itself through `runbook.run`: {}",
                            rb.name(),
                            cycle.join(" → ")
                        )
                    } else {
                        format!(
                            "runbook `{cand}` leads into a `runbook.run` cycle: {}",
                            cycle.join(" → ")
                        )
                    };
                    problems.push(at(Problem::error("runbook::nested-cycle", message)
                        .label(format!("runs `{cand}`"))
                        .help(
                            "a cycle would run the same steps again and again; no runbook may \
                             come back to one that runs it",
                        )));
                }
                for k in &given {
                    if !child.doc.inputs.contains_key(*k) {
                        problems.push(at(Problem::error(
                            "runbook::unknown-input",
                            format!("runbook `{cand}` has no input `{k}`"),
                        )));
                    }
                }
                for (k, spec) in &child.doc.inputs {
                    if spec.default.is_none() && !given.contains(&k.as_str()) {
                        problems.push(at(Problem::error(
                            "runbook::missing-input",
                            format!(
                                "runbook `{cand}` needs input `{k}`, which this step does not give"
                            ),
                        )
                        .help(format!("add it under `inputs:` of step `{}`", step.id()))));
                    }
                }
            }
        }
    }
}
