//! Checks of a file as a whole: the inputs' defaults, characters a reader cannot see, a
//! runbook that does nothing.

use std::sync::Arc;

use crate::diag::{Code, Problem, Source};
use crate::inputs::typed;
use crate::load::yaml::{Node, NodeKind};
use crate::model::{InputSpec, InputType, RunbookDoc, Schedule};

/// Inputs: a default must be one of the choices and fit the type; `type:`, `multiple:` and
/// `not_future:` must go together.
pub fn inputs(doc: &RunbookDoc, node: &Node, source: &Arc<Source>, problems: &mut Vec<Problem>) {
    for (name, spec) in &doc.inputs {
        typed_input(name, spec, node, source, problems);
        if let (Some(choices), Some(default)) = (&spec.choices, &spec.default)
            && !spec.multiple
            && !choices.contains(default)
        {
            let span = node
                .get("inputs")
                .and_then(|n| n.get(name))
                .and_then(|n| n.get("default"))
                .map_or(0..0, |n| n.span.clone());
            problems.push(
                Problem::error(
                    Code::BadDefault,
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
                    Code::SecretDefault,
                    format!("secret input `{name}` has a default written in the runbook"),
                )
                .at(source, span)
                .help("a secret must not live in a reviewed file; remove the default"),
            );
        }
    }
}

/// An input's `type:`, `multiple:` and `not_future:`, its choices and its default.
fn typed_input(
    name: &str,
    spec: &InputSpec,
    node: &Node,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) {
    let input = node.get("inputs").and_then(|n| n.get(name));
    let span_of = |field: &str| {
        input
            .and_then(|n| n.get(field))
            .or(input)
            .map_or(0..0, |n| n.span.clone())
    };
    let mut invalid = |field: &str, message: String, help: &str| {
        problems.push(
            Problem::error(Code::Invalid, message)
                .at(source, span_of(field))
                .help(help.to_string()),
        );
    };
    if spec.secret && spec.kind != InputType::String {
        invalid(
            "type",
            format!(
                "secret input `{name}` cannot be of type `{}`",
                spec.kind.as_str()
            ),
            "a secret is text: remove `type:` (or `secret: true`, if the value is not secret)",
        );
    }
    if spec.multiple {
        if spec.secret {
            invalid(
                "multiple",
                format!("secret input `{name}` cannot take several values"),
                "remove `multiple: true`",
            );
        }
        if spec.kind != InputType::String {
            invalid(
                "type",
                format!(
                    "input `{name}` takes several of its choices, which are names, not `{}`",
                    spec.kind.as_str()
                ),
                "remove `type:`",
            );
        }
        match &spec.choices {
            None => invalid(
                "multiple",
                format!("input `{name}` takes several values but has no `choices:`"),
                "list the values it may take under `choices:`, or remove `multiple: true`",
            ),
            Some(choices) => {
                if let Some(bad) = choices.iter().find(|c| {
                    c.is_empty() || c.contains(',') || c.trim() != c.as_str() || *c == typed::ALL
                }) {
                    invalid(
                        "choices",
                        format!(
                            "choice `{}` of input `{name}` cannot be told apart in a list of several",
                            crate::display::visible_line(bad)
                        ),
                        "a choice of a `multiple:` input has no comma, no space at its ends, and is not `all` (which means every choice)",
                    );
                }
            }
        }
    }
    if spec.not_future && spec.kind != InputType::Datetime {
        invalid(
            "not_future",
            format!("`not_future:` on input `{name}`, which is not a `datetime`"),
            "add `type: datetime`, or remove `not_future:`",
        );
    }
    let now = std::time::SystemTime::now();
    if let Some(choices) = &spec.choices
        && !spec.multiple
        && !spec.secret
    {
        for c in choices {
            if let Err(r) = typed::normalize(name, spec, c, now) {
                invalid(
                    "choices",
                    format!("a choice of input `{name}`: {}", r.what),
                    &r.help,
                );
            }
        }
    }
    if let Some(default) = &spec.default
        && !spec.secret
        && (spec.choices.is_none() || spec.multiple)
        && let Err(r) = typed::normalize(name, spec, default, now)
    {
        problems.push(
            Problem::error(
                Code::BadDefault,
                format!("the default of input `{name}`: {}", r.what),
            )
            .at(source, span_of("default"))
            .help(if r.future {
                // Not the time of the check: a file's check says the same whenever it runs.
                "a default of a `not_future` input must not be in the future: give a past time, or leave the default out so the operator is asked".to_string()
            } else {
                r.help
            }),
        );
    }
}

/// `rotation:` is a schedule the tool can compute with (`runbook status` reads it), not free
/// text: a near miss gets "did you mean".
pub fn rotation(doc: &RunbookDoc, node: &Node, source: &Arc<Source>, problems: &mut Vec<Problem>) {
    let Some(text) = &doc.rotation else { return };
    let Err(why) = Schedule::parse(text) else {
        return;
    };
    let span = node.get("rotation").map_or(0..0, |n| n.span.clone());
    let written = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let help = if written.starts_with("every ") {
        format!(
            "write `every N days` with N from 1 to {}",
            Schedule::MAX_DAYS
        )
    } else {
        crate::diag::did_you_mean(&written, Schedule::FIXED).unwrap_or_else(|| {
            format!(
                "write `every N days`, or one of: {}",
                Schedule::FIXED.map(|f| format!("`{f}`")).join(", ")
            )
        })
    };
    problems.push(
        Problem::error(
            Code::BadRotation,
            format!(
                "`rotation: {}` is not a schedule: {why}",
                crate::display::visible_line(text)
            ),
        )
        .at(source, span)
        .label("not a schedule")
        .help(help),
    );
}

/// A runbook that writes SSM parameters (a step whose kind names what it writes: a rotation)
/// says when it is due: without `rotation:`, `runbook status` shows its parameters as not
/// scheduled and nothing ever says they are overdue. A warning at the runbook's `name:`,
/// pointing at its first such step.
pub fn no_schedule(
    doc: &RunbookDoc,
    steps: &[crate::catalog::Step],
    rollback: &[crate::catalog::Step],
    node: &Node,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) {
    if doc.rotation.is_some() {
        return;
    }
    let Some(first) = steps
        .iter()
        .chain(rollback)
        .find(|s| s.kind.writes_named_by().is_some())
    else {
        return;
    };
    let span = node
        .get("name")
        .map_or_else(|| node.span.clone(), |n| n.span.clone());
    problems.push(
        Problem::warning(
            Code::NoSchedule,
            format!(
                "`{}` writes SSM parameters but has no `rotation:`",
                crate::display::visible_line(&doc.name)
            ),
        )
        .at(source, span)
        .label("no schedule")
        .also_at(first.span_of("id"), "writes a parameter")
        .help(
            "add `rotation: every N days` (or `on suspected compromise`, `after every production build`, `once per environment`) so `runbook status` can say when it is due",
        ),
    );
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
            Problem::warning(Code::ControlCharacter, message)
                .help("remove it unless it joins letters or an emoji that need it")
        } else {
            Problem::error(Code::ControlCharacter, message).help(
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
                Code::NoSteps,
                format!("runbook `{}` has no steps", doc.name),
            )
            .at(source, span)
            .help("add at least one step under `steps:`"),
        );
    }
}
