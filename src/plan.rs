//! Plans: what a run would do, every step rendered with what is known before anything runs.
//!
//! A plan makes no network call and changes nothing. Values only a run can know (a step's
//! outputs, inputs not given) are shown as `⟨steps.id.output⟩`; secrets are masked.

use indexmap::IndexMap;
use minijinja::Value;
use serde::Serialize;

use crate::catalog::{self, Runbook, Step};
use crate::display::{visible, visible_line};
use crate::engine::InputValue;
use crate::load::yaml::{Node, NodeKind};
use crate::model::Environment;
use crate::steps::{Effect, MASK};
use crate::template::{self, render_node};

#[derive(Debug, Serialize)]
pub struct Plan {
    pub runbook: String,
    pub summary: String,
    pub env: String,
    pub protected: bool,
    pub steps: Vec<PlannedStep>,
    pub rollback: Vec<PlannedStep>,
}

#[derive(Debug, Serialize)]
pub struct PlannedStep {
    pub index: usize,
    pub id: String,
    pub title: Option<String>,
    pub kind: &'static str,
    /// One line: what the step will do, rendered.
    pub action: String,
    /// `read-only`, `changes` (with what, run-time values as placeholders), `local`, or
    /// `unknown` when its parameters cannot be described before the run.
    pub effect: PlanEffect,
    pub gate: Option<String>,
    /// For a step with a gate: the steps its answer approves (this one and every step up to
    /// the next gate), which run without stopping for a person.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approves: Vec<String>,
    /// For a step without a gate of its own after a gate: the step whose gate approves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    pub when: Option<String>,
    pub on_failure: Option<String>,
    /// The rendered parameters, flattened (`set_password.role = musehub`).
    pub params: Vec<(String, String)>,
    /// Needs an operator (manual step).
    pub interactive: bool,
    /// `on_failure` as written, for the flowchart (`on_failure` above is its text).
    #[serde(skip)]
    pub failure: Option<crate::model::OnFailure>,
    /// The runbook a `runbook.run` step runs, rendered.
    #[serde(skip)]
    pub nested: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", content = "what", rename_all = "kebab-case")]
pub enum PlanEffect {
    ReadOnly,
    Changes(String),
    Local,
    /// The step's parameters cannot be described before the run (they depend on values only
    /// known at run time in a way its kind cannot describe).
    Unknown(String),
}

const OPEN: &str = template::UNKNOWN_OPEN;

pub fn plan(runbook: &Runbook, env: &Environment, inputs: &IndexMap<String, InputValue>) -> Plan {
    let ctx = crate::template::value(context(runbook, env, inputs));
    let planned = |list: &[Step]| -> Vec<PlannedStep> {
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                let mut p = plan_step(s, i + 1, &ctx);
                match catalog::gate_of(list, i) {
                    Some(g) if g == i => {
                        p.approves = list[catalog::approved_by(list, g)]
                            .iter()
                            .map(|s| s.id().to_string())
                            .collect();
                    }
                    Some(g) => p.approved_at = Some(list[g].id().to_string()),
                    None => {}
                }
                p
            })
            .collect()
    };
    Plan {
        runbook: runbook.name().to_string(),
        summary: runbook.doc.summary.clone(),
        env: env.name.clone(),
        protected: env.doc.protected,
        steps: planned(&runbook.steps),
        rollback: planned(&runbook.rollback),
    }
}

/// What templates see before a run: the environment, the inputs given (secret ones masked,
/// missing ones and every step output as a `⟨…⟩` placeholder, see [`is_known`]).
pub fn context(
    runbook: &Runbook,
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
) -> serde_json::Value {
    let mut input_ctx = serde_json::Map::new();
    for (name, spec) in &runbook.doc.inputs {
        let v = match inputs.get(name) {
            Some(v) if v.secret || spec.secret => MASK.into(),
            Some(v) => crate::inputs::typed::template_value(spec, &v.value),
            None => format!("{OPEN}inputs.{name}⟩").into(),
        };
        input_ctx.insert(name.clone(), v);
    }
    let mut steps_ctx = serde_json::Map::new();
    for s in runbook.all_steps() {
        let outs: serde_json::Map<String, serde_json::Value> = s
            .outputs
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    format!("{OPEN}steps.{}.{}⟩", s.id(), o.name).into(),
                )
            })
            .collect();
        steps_ctx.insert(s.id().to_string(), outs.into());
    }
    serde_json::json!({
        "inputs": input_ctx,
        "env": env.template_vars(),
        "steps": steps_ctx,
    })
}

/// Whether a value rendered with [`context`] is fully known before the run: no placeholder of
/// a run-time value, no masked secret.
pub fn is_known(rendered: &str) -> bool {
    !rendered.contains(OPEN) && !rendered.contains(MASK)
}

fn plan_step(step: &Step, index: usize, ctx: &Value) -> PlannedStep {
    let render = |s: &str| {
        template::render(s, ctx).unwrap_or_else(|e| format!("{s} (cannot render: {})", e.message))
    };
    let rendered = render_node(&step.params, ctx).unwrap_or_else(|_| step.params.clone());
    let mut params = Vec::new();
    flatten(&rendered, String::new(), &mut params);
    let unknown: Vec<String> = params
        .iter()
        .filter(|(_, v)| v.contains(OPEN))
        .map(|(k, _)| k.clone())
        .collect();
    let (action, effect) = match step.describe(&rendered) {
        Ok((action, effect)) => {
            let effect = match effect {
                Effect::ReadOnly => PlanEffect::ReadOnly,
                Effect::Local => PlanEffect::Local,
                // A change whose target is a run-time value (the role read from SSM) is
                // still a change: its text shows the placeholder; only a step that cannot
                // be described at all is unknown.
                Effect::Changes(what) => PlanEffect::Changes(what),
            };
            (action, effect)
        }
        Err(_) => (
            format!("{} (parameters known at run time)", step.kind.name()),
            PlanEffect::Unknown(format!("depends on {}", unknown.join(", "))),
        ),
    };
    PlannedStep {
        index,
        id: step.id().to_string(),
        title: step.common.title.as_deref().map(render),
        kind: step.kind.name(),
        action,
        effect,
        gate: step.common.confirm.as_deref().map(render),
        approves: Vec::new(),
        approved_at: None,
        when: step.common.when.clone(),
        on_failure: step.common.on_failure.as_ref().map(|f| match f {
            crate::model::OnFailure::Abort => "abort".to_string(),
            crate::model::OnFailure::Continue => "continue".to_string(),
            crate::model::OnFailure::Rollback(id) => format!("roll back from `{id}`"),
        }),
        params,
        interactive: step.kind.interactive(&step.params),
        failure: step.common.on_failure.clone(),
        nested: step.kind.nested_runbook(&rendered).map(|n| {
            n.name
                .as_str()
                .map_or_else(|| step.kind.name().to_string(), str::to_string)
        }),
    }
}

fn flatten(node: &Node, prefix: String, out: &mut Vec<(String, String)>) {
    match &node.kind {
        NodeKind::Scalar { value, .. } => out.push((prefix, value.clone())),
        NodeKind::Seq(items) => {
            for (i, n) in items.iter().enumerate() {
                flatten(n, format!("{prefix}[{i}]"), out);
            }
        }
        NodeKind::Map(entries) => {
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                let p = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(v, p, out);
            }
        }
    }
}

impl PlannedStep {
    /// A parameter as rendered for the plan (`name`, `hosts.0`), when the step has it.
    pub fn param(&self, key: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

impl Plan {
    pub fn gates(&self) -> usize {
        self.steps.iter().filter(|s| s.gate.is_some()).count()
    }

    /// Needs a person: a gate or a manual step, or a step approved by a gate that is not in
    /// the plan (a partial run), which the run then asks at that step.
    pub fn needs_operator(&self) -> bool {
        self.steps.iter().any(|s| {
            s.gate.is_some()
                || s.interactive
                || s.approved_at
                    .as_ref()
                    .is_some_and(|g| !self.steps.iter().any(|t| &t.id == g))
        })
    }

    /// How many gates, and that the runbooks it runs have their own (counted in their plans).
    pub fn gates_text(&self) -> String {
        let gates = plural(self.gates(), "gate");
        if self.steps.iter().any(|s| s.nested.is_some()) {
            format!("{gates} here and those of the runbooks it runs")
        } else {
            gates
        }
    }

    /// The plan as text for a terminal. Every value from a file is shown with its control
    /// characters visible ([`crate::display`]): a title or a name on its line, a command or
    /// a question on as many lines as it has, continuation lines under the first.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let protected = if self.protected { " (protected)" } else { "" };
        let _ = writeln!(
            o,
            "Plan: {} on {}{protected}",
            visible_line(&self.runbook),
            visible_line(&self.env)
        );
        let _ = writeln!(o, "  {}", visible_line(&self.summary));
        let _ = writeln!(
            o,
            "  {}, {}; nothing has run.",
            plural(self.steps.len(), "step"),
            self.gates_text()
        );
        if self.protected {
            let _ = writeln!(o, "  {}", protected_line(&self.env));
        }
        let _ = writeln!(o);
        for s in &self.steps {
            render_step(&mut o, s, &self.steps);
        }
        if !self.rollback.is_empty() {
            let _ = writeln!(
                o,
                "Rollback (runs only when a step with `on_failure: <rollback step>` fails):"
            );
            let _ = writeln!(o);
            for s in &self.rollback {
                render_step(&mut o, s, &self.rollback);
            }
        }
        o
    }
}

/// What "protected" means for the operator, in the text plan, the compact plan and the
/// Markdown plan alike.
pub(crate) fn protected_line(env: &str) -> String {
    format!(
        "`{}` is a protected environment: at the first gate you also type its name (or pass --confirm-env)",
        visible_line(env)
    )
}

impl Plan {
    /// The plan as a run shows it before its first step: one line a step (its number, `GATE`
    /// when it asks a person, its id, what it changes), the rollback in one line, so the gate
    /// asked next is still on a small screen. `runbook plan` shows every step whole. `width`:
    /// the terminal's, to which each line is cut (`…`).
    pub fn render_compact(&self, width: Option<usize>) -> String {
        use std::fmt::Write;
        let cut = |line: String| match width {
            Some(w) if line.chars().count() > w => {
                let mut t: String = line.chars().take(w.saturating_sub(1)).collect();
                t.push('…');
                t
            }
            _ => line,
        };
        let mut o = String::new();
        let protected = if self.protected { " (protected)" } else { "" };
        let _ = writeln!(
            o,
            "{}",
            cut(format!(
                "Plan: {} on {}{protected}",
                visible_line(&self.runbook),
                visible_line(&self.env)
            ))
        );
        let _ = writeln!(o, "  {}", visible_line(&self.summary));
        let _ = writeln!(
            o,
            "  {}, {}; nothing has run.",
            plural(self.steps.len(), "step"),
            self.gates_text(),
        );
        if self.protected {
            let _ = writeln!(o, "  {}", protected_line(&self.env));
        }
        let _ = writeln!(
            o,
            "  GATE: asks you before it runs; change: changes something elsewhere"
        );
        let total = self.steps.len();
        let digits = total.to_string().len();
        let w_id = self
            .steps
            .iter()
            .map(|s| visible_line(&s.id).chars().count())
            .max()
            .unwrap_or(0);
        for s in &self.steps {
            let mark = match (&s.gate, &s.effect) {
                (Some(_), _) => "GATE",
                (None, PlanEffect::Changes(_)) => "change",
                (None, PlanEffect::Unknown(_)) => "?",
                (None, _) => "",
            };
            let line = format!(
                "  {:>digits$}/{total} {mark:6} {:w_id$}  {}",
                s.index,
                visible_line(&s.id),
                compact_what(s)
            );
            let _ = writeln!(o, "{}", cut(line.trim_end().to_string()));
        }
        if !self.rollback.is_empty() {
            let ids: Vec<String> = self
                .rollback
                .iter()
                .map(|s| visible_line(&s.id).into_owned())
                .collect();
            let _ = writeln!(
                o,
                "{}",
                cut(format!("  rollback, if a step fails: {}", ids.join(", ")))
            );
        }
        let _ = writeln!(
            o,
            "{}",
            cut(format!(
                "  each step in full: runbook plan {} --env {}",
                visible_line(&self.runbook),
                visible_line(&self.env)
            ))
        );
        let _ = writeln!(o);
        o
    }
}

/// A step in a few words, for the compact plan: its title (else its action's first line),
/// and whether it asks a person or depends on a condition.
fn compact_what(s: &PlannedStep) -> String {
    let mut e = match &s.title {
        Some(t) => visible_line(t).into_owned(),
        None => visible_line(s.action.lines().next().unwrap_or_default()).into_owned(),
    };
    if s.interactive {
        e.push_str(" (asks you)");
    }
    if let Some(when) = &s.when {
        e.push_str(&format!(" (only when: {})", visible_line(when)));
    }
    e
}

/// `text` (control characters visible) with every line after the first indented by `indent`
/// columns, so a multi-line value reads as one item of the plan.
pub(crate) fn hanging(text: &str, indent: usize) -> String {
    let text = visible(text.trim_end());
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

/// The steps a gate approves, as one line: their ids, the manual ones marked, and that the
/// others run without stopping for a person.
pub(crate) fn approves(gate: &PlannedStep, all: &[PlannedStep]) -> String {
    let mut asks = false;
    let names: Vec<String> = gate
        .approves
        .iter()
        .map(|id| {
            if all.iter().any(|p| &p.id == id && p.interactive) {
                asks = true;
                format!("{id} (asks you)")
            } else {
                id.clone()
            }
        })
        .collect();
    let they = if asks { "the others run" } else { "they run" };
    format!(
        "{} — {they} one after another without stopping for a person",
        visible_line(&names.join(", "))
    )
}

fn render_step(o: &mut String, s: &PlannedStep, all: &[PlannedStep]) {
    let total = all.len();
    use std::fmt::Write;
    let title = s
        .title
        .as_deref()
        .map(|t| format!(" — {}", visible_line(t)))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "{:>2}/{total} {} [{}]{title}",
        s.index,
        visible_line(&s.id),
        s.kind
    );
    if let Some(when) = &s.when {
        let _ = writeln!(o, "      only when: {}", visible_line(when));
    }
    if let Some(gate) = &s.gate {
        let _ = writeln!(o, "      GATE: {}", hanging(gate, 12));
        if s.approves.len() > 1 {
            let _ = writeln!(o, "      approves: {}", approves(s, all));
        }
    }
    if let Some(g) = &s.approved_at {
        let _ = writeln!(
            o,
            "      no gate of its own: approved at `{}`",
            visible_line(g)
        );
    }
    let _ = writeln!(o, "      does: {}", hanging(&s.action, 12));
    let effect = match &s.effect {
        PlanEffect::ReadOnly => "read-only".to_string(),
        PlanEffect::Local => "local only (changes nothing elsewhere)".to_string(),
        PlanEffect::Changes(what) => format!("CHANGES {}", visible_line(what)),
        PlanEffect::Unknown(what) => format!("unknown until run time: {}", visible_line(what)),
    };
    let _ = writeln!(o, "      effect: {effect}");
    if let Some(f) = &s.on_failure {
        let _ = writeln!(o, "      on failure: {}", visible_line(f));
    }
    let _ = writeln!(o);
}

/// "1 step", "2 steps".
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
