//! Every template of a step checked statically, before anything runs: its syntax, filters
//! and functions, and each reference (`inputs.x`, `env.x`, `steps.id.output`) resolved against
//! what is declared and what the steps before it output, including "a later step" and "an
//! output the kind does not produce"; and decided values put unquoted into a shell command.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::catalog::Step;
use crate::diag::{Code, Problem, Source, did_you_mean};
use crate::load::yaml::Node;
use crate::model::{Environments, InputSpec};
use crate::steps::{Logged, OutputSpec, Secrecy};
use crate::template;

/// What the checker knows about a step that ran before the one being checked.
pub(super) struct Known {
    pub(super) index: usize,
    pub(super) rollback: bool,
    pub(super) outputs: Vec<OutputSpec>,
    /// The step's own parameters are invalid, so its outputs are unknown: references to them
    /// are not reported again.
    pub(super) outputs_unknown: bool,
}
/// Where a step is checked from: its place, and what is known before it.
pub(super) struct Scope<'a> {
    pub(super) index: usize,
    pub(super) rollback: bool,
    pub(super) known: &'a HashMap<String, Known>,
    pub(super) positions: &'a HashMap<String, (usize, bool)>,
    pub(super) inputs: &'a IndexMap<String, InputSpec>,
    pub(super) envs: &'a Environments,
}

impl Scope<'_> {
    pub(super) fn is_secret(&self, path: &str) -> bool {
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
            ["env", var, field, ..] if *var == crate::model::NOTIFY_VAR => {
                const FIELDS: &[&str] = &["url_parameter", "ca_file", "announce"];
                (!FIELDS.contains(field)).then(|| {
                    let help = did_you_mean(field, FIELDS.iter().copied())
                        .unwrap_or_else(|| format!("it has: {}", FIELDS.join(", ")));
                    (format!("`env.notify` has no `{field}`"), Some(help))
                })
            }
            ["env", var, ..] => {
                for env in &self.envs.list {
                    let vars = env.template_vars();
                    if !vars.contains_key(*var) {
                        let help = did_you_mean(var, vars.keys().map(String::as_str))
                            .filter(|_| *var != crate::model::AWS_REGION_VAR)
                            .unwrap_or_else(|| {
                                if *var == crate::model::AWS_REGION_VAR {
                                    return format!(
                                        "`env.{var}` is the environment's `aws.region`: add `aws:` with a `region` to environment `{}` in environments.yaml",
                                        env.name
                                    );
                                }
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
pub(super) fn check_templates(
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
                    source.locate(node, r.start + off..r.end + off)
                });
                problems.push(
                    Problem::error(Code::Template, e.message)
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
                        source.locate(node, start..start + r.len())
                    });
                    let mut p = Problem::error(sp.code, sp.error.message)
                        .at(source, span)
                        .label("here");
                    p.help = sp.help;
                    problems.push(p);
                }
                for r in refs {
                    let resolved = scope
                        .resolve(&r)
                        .or_else(|| notify_unguarded(step, scope, &r));
                    if let Some((message, help)) = resolved {
                        let span = text
                            .find(&r)
                            .map_or(node.span.clone(), |i| source.locate(node, i..i + r.len()));
                        let mut p = Problem::error(Code::UndefinedReference, message)
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

/// A field of `env.notify` read by a step that runs where the environment has no notify
/// target (it is none there): an error found now, not a failed template in the middle of a
/// run. A step whose `when:` asks about `env.notify` is trusted to run only where it is set.
fn notify_unguarded(
    step: &Step,
    scope: &Scope<'_>,
    path: &str,
) -> Option<(String, Option<String>)> {
    let rest = path
        .strip_prefix("env.")?
        .strip_prefix(crate::model::NOTIFY_VAR)?;
    if !rest.starts_with('.') {
        return None;
    }
    if step.common.when.as_deref().is_some_and(requires_notify) {
        return None;
    }
    let env = scope.envs.list.iter().find(|e| e.doc.notify.is_none())?;
    Some((
        format!(
            "environment `{}` has no `notify:` target, and this step would read `{path}` there",
            env.name
        ),
        Some(format!(
            "give the step `when: env.notify` (and a fallback for environments without one), or add `notify:` to environment `{}` in environments.yaml",
            env.name
        )),
    ))
}

/// Whether a `when:` runs its step only where `env.notify` is set: `env.notify` itself, or
/// one of the terms it joins with `and`. (`not env.notify`, or a var named `env.notify_x`,
/// does not.)
fn requires_notify(when: &str) -> bool {
    let words: Vec<&str> = when.split_whitespace().collect();
    words
        .split(|w| *w == "and")
        .any(|term| term == ["env.notify"])
}

/// A value the operator or a run decides (an input without `choices`, a step's output) put
/// into a command a shell reads, other than through `| shell_quote`, could run as commands of
/// its own (`; rm -rf ~`). A warning: the author may know the value's form (a hex key). Env
/// vars do not count: they come from the reviewed environments.yaml, like the command itself.
pub(super) fn unquoted_in_shell(
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
                        Code::UnquotedInShell,
                        format!("{what} goes into the shell command `{field}` unquoted"),
                    )
                    .at(source, source.locate(node, open..close))
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

/// A secret sent in a parameter the server writes down (a URL in its access log, a SQL
/// statement or its bind parameters in the database's log) ends up in a file no mask reaches,
/// kept and shipped elsewhere. Each kind names such parameters (`Kind::server_logged`); a
/// template there that reads a secret, whatever filters it goes through (the secrecy rule of
/// `Scope::is_secret`, as `check` uses everywhere), is a warning: the author may know the
/// server logs nothing, but a reviewer should see the choice.
pub(super) fn secret_logged_by_server(
    step: &Step,
    scope: &Scope<'_>,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) {
    for (field, logged) in step.kind.server_logged() {
        let Some(node) = step.params.get(field) else {
            continue;
        };
        node.walk_scalars(&mut |n, text| {
            if !template::is_template(text) {
                return;
            }
            let Ok(refs) = template::references(text) else {
                return;
            };
            let Some(secret) = refs.iter().find(|r| scope.is_secret(r)) else {
                return;
            };
            if *logged == Logged::Url && is_whole_secret(text, secret) {
                return;
            }
            let span = text
                .find(secret.as_str())
                .map_or(n.span.clone(), |i| source.locate(n, i..i + secret.len()));
            let (code, message, help) = match logged {
                Logged::Url => (
                    Code::SecretInUrl,
                    format!(
                        "`{field}` puts the secret `{secret}` in a URL: the access logs of the server and of every proxy on the way keep it"
                    ),
                    "send it in a header (`headers: { Authorization: \"Bearer {{ … }}\" }`) or in the body instead",
                ),
                Logged::Statement => (
                    Code::SecretInSql,
                    format!(
                        "`{field}` puts the secret `{secret}` in a SQL statement: the database logs statements (`log_statement`, slow or failing ones)"
                    ),
                    "to set a role's password use `set_password` (only its SCRAM verifier is sent); keep other secrets out of SQL",
                ),
                Logged::BindParameters => (
                    Code::SecretInSql,
                    format!(
                        "`{field}` sends the secret `{secret}` as a bind parameter: the database logs bind parameters with the statement (`parameters: $1 = '…'`)"
                    ),
                    "to set a role's password use `set_password` (only its SCRAM verifier is sent); keep other secrets out of SQL",
                ),
            };
            problems.push(
                Problem::warning(code, message)
                    .at(source, span)
                    .label("logged by the server")
                    .help(help),
            );
        });
    }
}

/// Whether a URL template is exactly one secret value (`"{{ steps.hook.value }}"`): a
/// capability URL, such as a Slack incoming webhook's, where the URL *is* the credential.
/// It is not warned about, deliberately. The warning is for a secret that a server is sent
/// for another purpose and then writes down where it does not belong (a token in a query
/// string of someone's access log). A capability URL is the credential that very server
/// issued and recognises on every request: there is no other way to send it, its access log
/// holds it whoever sends it, and over `https` no proxy on the way sees its path. Anything
/// around the secret (a literal host or path, a filter) is a URL built from a secret, and is
/// still warned about.
fn is_whole_secret(text: &str, secret: &str) -> bool {
    let Some(inner) = text
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
    else {
        return false;
    };
    inner.trim_matches(['-', '+', ' ', '\t', '\n']) == secret
}

#[cfg(test)]
mod tests {
    use super::requires_notify;

    #[test]
    fn only_a_when_that_requires_env_notify_guards_a_read_of_it() {
        for yes in [
            "env.notify",
            " env.notify ",
            "env.notify and inputs.x",
            "inputs.x and env.notify",
        ] {
            assert!(requires_notify(yes), "{yes}");
        }
        for no in [
            "not env.notify",
            "env.notify_channel",
            "env.notify or inputs.x",
            "inputs.x",
        ] {
            assert!(!requires_notify(no), "{no}");
        }
    }
}
