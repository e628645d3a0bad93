//! Across runbooks: the runbook a step runs (`DynKind::nested_runbook`) exists and is given
//! its inputs, for every name a templated `name:` may stand for; and no runbook comes back to
//! itself through them.

use std::collections::HashMap;

use indexmap::IndexMap;

use crate::catalog::Runbook;
use crate::diag::{Code, Problem, did_you_mean};
use crate::load::yaml::Node;
use crate::template;

/// Why the runbook a step runs (`DynKind::nested_runbook`) cannot be known before the run:
/// the message and the help.
type Unknowable = (String, String);

/// The most runbook names a templated `name:` may stand for (every combination of the choices
/// of the inputs it reads).
const MAX_NAMES: usize = 256;

/// The runbooks a step that runs one may run: its name, or every rendering of a templated
/// one over the choices of the inputs it reads. An input without `choices`, a step output or
/// an env var makes it unknowable, and then nothing about it (inputs, cycles) can be checked.
/// A template or reference error is reported elsewhere (empty here).
fn possible_names(rb: &Runbook, name: &str) -> Result<Vec<String>, Unknowable> {
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
        if spec.multiple {
            return Err((
                format!(
                    "the runbook name `{name}` reads input `{input}`, which takes several \
                     values, so it names no one runbook"
                ),
                format!(
                    "run each runbook from a step of its own, with `when: \"'NAME' in inputs.{input}\"`"
                ),
            ));
        }
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

/// The first cycle of nested runbooks reachable from `path`'s last runbook, as the runbooks along
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

/// Steps that run a runbook name runbooks of the same directory, with their inputs. A name written
/// as `{{ inputs.x }}` is checked for every choice of input `x`; one that cannot be known
/// before the run is refused. No runbook may come back to itself through them (it
/// would run the same steps again and again): a cycle is an error at every step that leads
/// into it, with the cycle spelled out.
pub fn nested_runbooks(subjects: &[&Runbook], runbooks: &[Runbook], problems: &mut Vec<Problem>) {
    // Which runbooks each runbook of the directory may run.
    let graph: HashMap<&str, Vec<String>> = runbooks
        .iter()
        .map(|rb| {
            let children = rb
                .all_steps()
                .filter_map(|s| s.kind.nested_runbook(&s.params))
                .filter_map(|n| n.name.as_str())
                .flat_map(|n| possible_names(rb, n).unwrap_or_default())
                .collect();
            (rb.name(), children)
        })
        .collect();
    for rb in subjects {
        let mut done = std::collections::HashSet::new();
        // A child's gate after a change of this runbook waits for a person inside it.
        let first_change = rb.steps.iter().position(super::gates::opens_window);
        let after_change = |step: &crate::catalog::Step| {
            let first = first_change?;
            let i = rb.steps.iter().position(|s| std::ptr::eq(s, step))?;
            (i > first).then(|| &rb.steps[first])
        };
        for step in rb.all_steps() {
            let Some(nested) = step.kind.nested_runbook(&step.params) else {
                continue;
            };
            let (name_node, given) = (nested.name, nested.inputs);
            let Some(name) = name_node.as_str() else {
                continue;
            };
            let at = |p: Problem| p.at(&rb.source, name_node.span.clone());
            let candidates = match possible_names(rb, name) {
                Ok(c) => c,
                Err((message, help)) => {
                    problems.push(at(Problem::error(Code::DynamicRunbookName, message)
                        .label("not known before the run")
                        .help(help)));
                    continue;
                }
            };
            // The values are known only at run time: what matters here is which are given.
            let literals: Vec<(&str, &Node, &str)> = given
                .iter()
                .filter_map(|(k, v)| Some((*k, *v, v.as_str()?)))
                .filter(|(_, _, v)| !template::is_template(v))
                .collect();
            let given: IndexMap<String, String> = given
                .iter()
                .map(|(k, _)| (k.to_string(), String::new()))
                .collect();
            for cand in candidates {
                let Some(child) = runbooks.iter().find(|r| r.name() == cand) else {
                    let names = runbooks.iter().map(|r| r.name());
                    let mut p =
                        Problem::error(Code::UnknownRunbook, format!("no runbook named `{cand}`"))
                            .label("runs this runbook");
                    p.help = did_you_mean(&cand, names);
                    problems.push(at(p));
                    continue;
                };
                if let Some(change) = after_change(step)
                    && let Some(p) = super::gates::nested_after_change(
                        step,
                        child,
                        change,
                        &rb.source,
                        name_node.span.clone(),
                    )
                {
                    problems.push(p);
                }
                if child.name() == rb.name() {
                    problems.push(at(Problem::error(
                        Code::NestedSelf,
                        format!("runbook `{cand}` runs itself"),
                    )));
                    continue;
                }
                let mut path = vec![rb.name().to_string(), cand.clone()];
                if let Some(cycle) = find_cycle(&mut path, &graph, &mut done) {
                    let kind = step.kind.name();
                    let message = if cycle[0] == rb.name() {
                        format!(
                            "runbook `{}` runs itself through `{kind}`: {}",
                            rb.name(),
                            cycle.join(" → ")
                        )
                    } else {
                        format!(
                            "runbook `{cand}` leads into a `{kind}` cycle: {}",
                            cycle.join(" → ")
                        )
                    };
                    problems.push(at(Problem::error(Code::NestedCycle, message)
                        .label(format!("runs `{cand}`"))
                        .help(
                            "a cycle would run the same steps again and again; no runbook may \
                             come back to one that runs it",
                        )));
                }
                for k in crate::inputs::unknown(&child.doc.inputs, given.keys().map(String::as_str))
                {
                    problems.push(at(Problem::error(
                        Code::UnknownInput,
                        crate::inputs::no_such_input(&cand, k),
                    )));
                }
                // A value written in the file is judged now, as the run would.
                for (k, node, value) in &literals {
                    if let Some(spec) = child.doc.inputs.get(*k)
                        && let Err(refused) =
                            crate::inputs::fit(k, spec, value, std::time::SystemTime::now())
                    {
                        let mut p = Problem::error(
                            Code::BadInput,
                            format!("runbook `{cand}`: {}", refused.message),
                        )
                        .at(&rb.source, node.span.clone())
                        .label("given here");
                        // Not the time of the check: its output is the same whenever it runs.
                        p.help = if refused.message.ends_with("is in the future") {
                            Some("this input must not be in the future: give a past time".into())
                        } else {
                            refused.help
                        };
                        problems.push(p);
                    }
                }
                let binding = crate::inputs::Given {
                    values: &given,
                    variables: false,
                };
                for (k, spec) in &child.doc.inputs {
                    if binding.slot(k, spec) == crate::inputs::Slot::Missing {
                        problems.push(at(Problem::error(
                            Code::MissingInput,
                            crate::inputs::not_given(&cand, k),
                        )
                        .help(format!("add it under `inputs:` of step `{}`", step.id()))));
                    }
                }
            }
        }
    }
}
