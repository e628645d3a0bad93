//! `runbook docs`: a runbook rendered as Markdown a person can follow by hand, with no secret
//! value in it. Each step kind says how to do its work without the tool ([`Kind::by_hand`],
//! with the helpers of `steps::hand`); this module lays out the page and the placeholders.
//!
//! [`Kind::by_hand`]: crate::steps::Kind::by_hand

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Object, ObjectRepr};

use crate::catalog::{Runbook, Step};
use crate::flowchart::{FlowStep, mermaid};
use crate::model::{Environment, InputType, OnFailure};
use crate::plan::PlanEffect;
use crate::steps::hand::{HandCx, Secrets, file_name};
use crate::steps::{Effect, Secrecy};
use crate::template::{self, render_node};

/// A value only a run can know, shown by its name: `<steps.image.json[0].ID>`, or `$NAME` for a
/// secret. Reading a field or an index of it gives a longer name, so any template renders.
#[derive(Debug)]
struct Placeholder {
    path: String,
    secret: Option<String>,
}

impl Object for Placeholder {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let path = match key.as_str() {
            Some(k) => format!("{}.{k}", self.path),
            None => format!("{}[{key}]", self.path),
        };
        Some(Value::from_object(Placeholder {
            path,
            secret: self.secret.clone(),
        }))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.secret {
            Some(p) => f.write_str(p),
            None => write!(f, "<{}>", self.path),
        }
    }
}

/// An input of several choices (`multiple:`): shown by its name, and read by templates as
/// every choice, so each part a `when:` or an `{% if … in inputs.x %}` guards is on the page
/// (a person following it by hand does the parts of what they chose).
#[derive(Debug)]
struct Several {
    path: String,
    choices: Vec<String>,
}

impl Object for Several {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let c = self.choices.get(key.as_usize()?)?;
        Some(Value::from(c.as_str()))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Seq(self.choices.len())
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}>", self.path)
    }
}

fn placeholder(path: String, secret: Option<String>) -> Value {
    Value::from_object(Placeholder { path, secret })
}

/// The template context of the page: the environment's vars (or placeholders), and
/// placeholders for inputs and step outputs.
fn context(runbook: &Runbook, env: Option<&Environment>, secrets: &Secrets) -> Value {
    let secret_of = |path: &str| secrets.by_path.get(path).map(|s| s.placeholder.clone());
    let inputs: BTreeMap<String, Value> = runbook
        .doc
        .inputs
        .iter()
        .map(|(n, spec)| {
            let path = format!("inputs.{n}");
            let value = match &spec.choices {
                Some(choices) if spec.multiple => Value::from_object(Several {
                    path,
                    choices: choices.clone(),
                }),
                _ => placeholder(path.clone(), secret_of(&path)),
            };
            (n.clone(), value)
        })
        .collect();
    let steps: BTreeMap<String, Value> = runbook
        .all_steps()
        .map(|s| {
            let outs: BTreeMap<String, Value> = s
                .outputs
                .iter()
                .map(|o| {
                    let path = format!("steps.{}.{}", s.id(), o.name);
                    (o.name.clone(), placeholder(path.clone(), secret_of(&path)))
                })
                .collect();
            (s.id().to_string(), Value::from_object(outs))
        })
        .collect();
    let env = match env {
        Some(e) => template::value(e.template_vars()),
        None => placeholder("env".into(), None),
    };
    let mut root: BTreeMap<String, Value> = BTreeMap::new();
    root.insert("inputs".into(), Value::from_object(inputs));
    root.insert("steps".into(), Value::from_object(steps));
    root.insert("env".into(), env);
    Value::from_object(root)
}

fn secrets_of(runbook: &Runbook) -> Secrets {
    let mut secrets = Secrets::default();
    for (name, spec) in &runbook.doc.inputs {
        if spec.secret {
            secrets.add(
                format!("inputs.{name}"),
                name.clone(),
                format!("input `{name}`"),
            );
        }
    }
    for (i, s) in runbook.all_steps().enumerate() {
        let label = if s.rollback {
            format!("rollback step `{}`", s.id())
        } else {
            format!("step {} (`{}`)", i + 1, s.id())
        };
        for o in &s.outputs {
            if o.secrecy != Secrecy::Public {
                secrets.add(
                    format!("steps.{}.{}", s.id(), o.name),
                    file_name(s.id(), &o.name),
                    label.clone(),
                );
            }
        }
    }
    secrets
}

/// The runbook as Markdown, for the environment `env` or with its values as placeholders.
pub fn render(runbook: &Runbook, env: Option<&Environment>) -> String {
    let secrets = secrets_of(runbook);
    let ctx = context(runbook, env, &secrets);
    let d = &runbook.doc;
    let mut o = String::new();
    let _ = writeln!(o, "# {}: {}\n", d.name, d.summary);
    let how = match env {
        Some(e) => format!("runbook docs {} --env {}", d.name, e.name),
        None => format!("runbook docs {}", d.name),
    };
    let _ = writeln!(
        o,
        "<!-- Generated from runbooks/{}.yaml by `{how}`. Do not edit by hand. -->\n",
        d.name
    );
    let mut facts = Vec::new();
    if let Some(e) = env {
        let protected = if e.doc.protected { " (protected)" } else { "" };
        let desc = e
            .doc
            .description
            .as_deref()
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        facts.push(("Environment", format!("`{}`{protected}{desc}", e.name)));
    }
    if let Some(r) = &d.rotation {
        facts.push(("Rotation", r.clone()));
    }
    if let Some(i) = &d.impact {
        facts.push(("Impact of compromise", i.clone()));
    }
    for (k, v) in facts {
        let _ = writeln!(o, "- **{k}:** {v}");
    }
    o.push('\n');
    if let Some(desc) = &d.description {
        let _ = writeln!(o, "{}\n", desc.trim_end());
    }
    let _ = writeln!(
        o,
        "It is best run with `runbook run {} --env ENV`, which does all of this with a plan, gates, \
         rollback and no secret ever shown. This page is for doing it by hand.\n",
        d.name
    );
    o.push_str(
        "## At a glance\n\nThe steps in order, the questions to stop at, what changes where, and \
         where a failure leads (a step with no arrow for it stops the run):\n\n",
    );
    let flow =
        |steps: &[Step]| -> Vec<FlowStep> { steps.iter().map(|s| flow_step(s, &ctx)).collect() };
    o.push_str(&mermaid(&flow(&runbook.steps), &flow(&runbook.rollback)));
    o.push('\n');

    if !d.inputs.is_empty() {
        o.push_str("## Inputs\n\n");
        for (name, i) in &d.inputs {
            let mut extra = Vec::new();
            match i.kind {
                InputType::String => {}
                InputType::Integer => extra.push("a whole number".into()),
                InputType::Boolean => extra.push("`true` or `false`".into()),
                InputType::Datetime => extra.push(format!(
                    "an RFC 3339 date and time such as `2026-11-20T14:00Z`, written below in UTC{}",
                    if i.not_future {
                        ", not in the future"
                    } else {
                        ""
                    }
                )),
            }
            if let Some(c) = &i.choices {
                let c: Vec<String> = c.iter().map(|c| format!("`{c}`")).collect();
                if i.multiple {
                    extra.push(format!(
                        "one or more of {}, or `{}` for every one",
                        c.join(", "),
                        crate::inputs::typed::ALL
                    ));
                } else {
                    extra.push(format!("one of {}", c.join(", ")));
                }
            }
            if let Some(def) = &i.default {
                extra.push(format!("default `{def}`"));
            }
            if i.secret {
                extra.push(format!(
                    "secret: keep it in the file `{name}`, shown below as `${}`",
                    name.to_ascii_uppercase()
                ));
            }
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(" ({})", extra.join("; "))
            };
            let _ = writeln!(o, "- `{name}`: {}{extra}", i.description);
        }
        let _ = writeln!(
            o,
            "\n`<inputs.NAME>` below stands for the value you chose.\n"
        );
    }

    // The steps first: the page's top explains the placeholders they use.
    let mut body = String::new();
    body.push_str("## Steps\n\n");
    for (i, step) in runbook.steps.iter().enumerate() {
        render_step(
            &mut body,
            &format!("{}", i + 1),
            step,
            runbook,
            env,
            &secrets,
            &ctx,
        );
    }
    if !runbook.rollback.is_empty() {
        body.push_str("## If verification fails\n\n");
        body.push_str(
            "Only when a step above sends you here: start at the rollback step it names and do \
             every step from there to the end, in order. The rotation has then failed: say so \
             in the incident or change record.\n\n",
        );
        for (i, step) in runbook.rollback.iter().enumerate() {
            render_step(
                &mut body,
                &format!("R{}", i + 1),
                step,
                runbook,
                env,
                &secrets,
                &ctx,
            );
        }
    }
    if !secrets.by_path.is_empty() {
        let files: Vec<&str> = secrets.by_path.values().map(|s| s.file.as_str()).collect();
        let _ = writeln!(
            body,
            "## When you are done\n\nDelete the files that hold secrets:\n\n```sh\nrm -f -- {}\n```",
            files.join(" ")
        );
    }
    o.push_str("## Before you start\n\n");
    o.push_str(&placeholders(&body, &d.name, env.is_some()));
    if env.is_some_and(|e| e.doc.protected) {
        o.push_str(
            "This is a protected environment: have a second person follow along before the first \
             change.\n\n",
        );
    }
    o.push_str(
        "`<steps.ID.OUTPUT>` stands for what an earlier step printed. Secret values never appear \
         here, and must never be typed into a command line (other users see command lines in \
         `ps`, and shells keep them in their history). Work in a directory only you can read, \
         where each secret is kept in a file:\n\n",
    );
    let _ = writeln!(
        o,
        "```sh\numask 077 && mkdir -p ~/runbook-{0} && cd ~/runbook-{0}\n```\n",
        d.name
    );
    if !secrets.by_path.is_empty() {
        o.push_str("| placeholder | file | made by |\n|---|---|---|\n");
        for s in secrets.by_path.values() {
            let _ = writeln!(o, "| `{}` | `{}` | {} |", s.placeholder, s.file, s.from);
        }
        o.push('\n');
    }

    o.push_str(&body);
    while o.ends_with("\n\n") {
        o.pop();
    }
    o
}

/// The note at the top of a page on the placeholders its steps use that a file of the
/// environment fills in (`<env.ssm_prefix>`, `<hosts.app>`, `<port>` …): each family once,
/// with the ones this page uses and where to find their values. Empty when there are none (a
/// page rendered for an environment, whose values are all filled in).
fn placeholders(body: &str, runbook: &str, for_env: bool) -> String {
    static PLACEHOLDER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"<([a-z][a-z_]*)((?:\.[A-Za-z0-9_]+)*)>").expect("a valid pattern")
    });
    let mut used: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for c in PLACEHOLDER.captures_iter(body) {
        let (Some(all), Some(family)) = (c.get(0), c.get(1)) else {
            continue;
        };
        used.entry(family.as_str())
            .or_default()
            .insert(all.as_str());
    }
    let here = |family: &str, general: &[&str]| {
        let mut list: Vec<String> = used
            .get(family)
            .into_iter()
            .flatten()
            .filter(|p| !general.contains(p))
            .map(|p| format!("`{p}`"))
            .collect();
        if list.len() > 6 {
            list.truncate(5);
            list.push("…".into());
        }
        if list.is_empty() {
            String::new()
        } else {
            format!(" (here {})", list.join(", "))
        }
    };
    let mut items = Vec::new();
    if used.contains_key("env") {
        items.push(format!(
            "`<env.NAME>`{}: `NAME` under the environment's `vars:` (`<env.name>` is the \
             environment's own name)",
            here("env", &["<env.NAME>"])
        ));
    }
    if used.contains_key("hosts") {
        let via = used["hosts"].contains("<hosts.HOST>");
        items.push(format!(
            "`<hosts.NAME>`{}: host `NAME` under the environment's `hosts:`, as \
             `USER@ADDRESS` (add `-p PORT` and `-i KEY_FILE` when it sets them){}",
            here("hosts", &["<hosts.NAME>", "<hosts.HOST>"]),
            if via {
                "; `<hosts.HOST>` is the host the database's `via:` names"
            } else {
                ""
            }
        ));
    }
    if used.contains_key("aws") {
        items.push(
            "`<aws.region>`: the environment's `aws.region` (add `--profile` and \
             `--endpoint-url` when it sets `aws.profile` or `aws.endpoint`)"
                .to_string(),
        );
    }
    if used.contains_key("databases") {
        items.push(format!(
            "`<databases.NAME.FIELD>`{}: `FIELD` of database `NAME` under the environment's \
             `databases:`",
            here("databases", &[])
        ));
    }
    if used.contains_key("host") || used.contains_key("port") {
        items.push(
            "`<host>` and `<port>`: the host and port of the step's URL once its own \
             placeholders are filled in (without a port in it, 443 for `https://`, 80 for \
             `http://`)"
                .to_string(),
        );
    }
    if items.is_empty() {
        return String::new();
    }
    let how = if for_env {
        "Some values depend on what the steps read:".to_string()
    } else {
        format!(
            "Values of the environment appear as placeholders in angle brackets: take them from \
             `runbooks/environments.yaml`, or render this page for one environment with \
             `runbook docs {runbook} --env ENV`, which fills them all in."
        )
    };
    let mut s = format!("{how}\n\n");
    for i in items {
        s.push_str(&format!("- {i}\n"));
    }
    s.push('\n');
    s
}

/// A step as the flowchart shows it, with this page's values (placeholders, never a secret).
fn flow_step(step: &Step, ctx: &Value) -> FlowStep {
    let render = |s: &str| template::render(s, ctx).unwrap_or_else(|_| s.to_string());
    let rendered = render_node(&step.params, ctx).unwrap_or_else(|_| step.params.clone());
    let effect = match step.describe(&rendered) {
        Ok((_, Effect::ReadOnly)) => PlanEffect::ReadOnly,
        Ok((_, Effect::Local)) => PlanEffect::Local,
        Ok((_, Effect::Changes(what))) => PlanEffect::Changes(what),
        Err(_) => PlanEffect::Unknown(String::new()),
    };
    FlowStep {
        id: step.id().to_string(),
        kind: step.kind.name().to_string(),
        title: step.common.title.as_deref().map(render),
        gate: step.common.confirm.as_deref().map(render),
        effect,
        when: step
            .common
            .when
            .as_deref()
            .map(|w| template::strip_braces(w).to_string()),
        on_failure: step.common.on_failure.clone(),
        nested: step.kind.nested_runbook(&rendered).map(|n| {
            n.name
                .as_str()
                .map_or_else(|| step.kind.name().to_string(), str::to_string)
        }),
    }
}

fn render_step(
    o: &mut String,
    number: &str,
    step: &Step,
    runbook: &Runbook,
    env: Option<&Environment>,
    secrets: &Secrets,
    ctx: &Value,
) {
    let render = |s: &str| template::render(s, ctx).unwrap_or_else(|_| s.to_string());
    let rendered = render_node(&step.params, ctx).unwrap_or_else(|_| step.params.clone());
    let describe = step
        .kind
        .describe(&rendered)
        .map_or_else(|_| step.kind.name().to_string(), |(d, _)| d);
    // A heading has one line: a longer command is whole in the step's text below.
    let describe = match crate::steps::first_line(&describe) {
        (first, 0) => first.to_string(),
        (first, _) => format!("{first} …"),
    };
    let title = step.common.title.as_deref().map_or_else(
        || {
            let mut c = describe.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        },
        render,
    );
    let _ = writeln!(o, "### {number}. {title} (`{}`)\n", step.id());
    if let Some(when) = &step.common.when {
        let _ = writeln!(
            o,
            "**Only if** `{}`; otherwise skip this step.\n",
            template::strip_braces(when)
        );
    }
    if let Some(gate) = &step.common.confirm {
        // What the answer approves: this step and every step up to the next gate, done
        // without pausing, as a run does them.
        let (list, prefix) = if step.rollback {
            (&runbook.rollback, "R")
        } else {
            (&runbook.steps, "")
        };
        let then = list
            .iter()
            .position(|s| std::ptr::eq(s, step))
            .map(|i| crate::catalog::approved_by(list, i))
            .filter(|r| r.len() > 1)
            .map(|r| {
                format!(
                    " The answer covers steps {prefix}{} to {prefix}{}: do them one after another without pausing in between.",
                    r.start + 1,
                    r.end
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "**Stop and confirm:** {} Go on only if the answer is yes.{then}\n",
            render(gate)
        );
    }
    let cx = HandCx {
        step_id: step.id(),
        env,
        secrets,
    };
    match step.kind.by_hand(&rendered, &cx) {
        Some(text) => {
            let _ = writeln!(o, "{}\n", text.trim_end());
        }
        None => {
            let _ = writeln!(o, "Do: {describe}.\n");
        }
    }
    if let Some(t) = &step.common.timeout {
        let _ = writeln!(o, "Give it at most {}.\n", humantime::format_duration(t.0));
    }
    if let Some(r) = &step.common.retry {
        let _ = writeln!(
            o,
            "If it fails, try again: {} attempts in all, {} apart.\n",
            r.attempts,
            humantime::format_duration(r.delay.0)
        );
    }
    match &step.common.on_failure {
        Some(OnFailure::Rollback(target)) => {
            let n = runbook
                .rollback
                .iter()
                .position(|s| s.id() == target)
                .map_or_else(String::new, |i| format!("R{} ", i + 1));
            let _ = writeln!(
                o,
                "**If this step fails:** go to [If verification fails](#if-verification-fails) \
                 and start at {n}(`{target}`).\n"
            );
        }
        Some(OnFailure::Continue) => {
            o.push_str("If this step fails, note it and go on.\n\n");
        }
        Some(OnFailure::Abort) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_any_path() {
        let ctx = Value::from_object(BTreeMap::from([(
            "steps".to_string(),
            placeholder("steps".into(), None),
        )]));
        assert_eq!(
            template::render("{{ steps.image.json[0].ID }}", &ctx).unwrap(),
            "<steps.image.json[0].ID>"
        );
        let secret = Value::from_object(BTreeMap::from([(
            "x".to_string(),
            placeholder("inputs.x".into(), Some("$X".into())),
        )]));
        assert_eq!(template::render("a {{ x }} b", &secret).unwrap(), "a $X b");
    }
}
