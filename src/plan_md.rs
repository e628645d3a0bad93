//! A plan as Markdown, for a pull-request comment: what a run would do, its gates and its
//! rollback, from the same masked [`Plan`] the terminal shows (so no secret can appear here).

use std::fmt::Write;

use crate::display::{md_code, visible};
use crate::flowchart::{FlowStep, mermaid};
use crate::plan::{Plan, PlanEffect, PlannedStep};

impl Plan {
    /// The plan as GitHub-flavoured Markdown: a heading, a table of steps with their effect,
    /// the gates spelled out, and the rollback in its own section.
    pub fn render_markdown(&self) -> String {
        let mut o = String::new();
        let protected = if self.protected { " (protected)" } else { "" };
        let _ = writeln!(
            o,
            "### Plan: {} on {}{protected}\n",
            md_code(&self.runbook),
            md_code(&self.env)
        );
        let _ = writeln!(o, "{}\n", inline(&self.summary));
        let changes = self
            .steps
            .iter()
            .filter(|s| matches!(s.effect, PlanEffect::Changes(_)))
            .count();
        let _ = writeln!(
            o,
            "{} ({} that change something), {}; nothing has run.",
            crate::plan::plural(self.steps.len(), "step"),
            changes,
            self.gates_text()
        );
        if self.protected {
            let _ = writeln!(
                o,
                "\n> **{} is a protected environment:** at the first gate the operator also types its name.",
                md_code(&self.env)
            );
        }
        o.push('\n');
        table(&mut o, &self.steps);
        o.push('\n');
        o.push_str(&self.flowchart());

        let gated: Vec<&PlannedStep> = self.steps.iter().filter(|s| s.gate.is_some()).collect();
        if !gated.is_empty() {
            let _ = writeln!(o, "\n#### Gates\n");
            let _ = writeln!(
                o,
                "The run asks once before each of these steps; the answer approves it and every step after it up to the next gate, which then run without stopping for a person. Declining ends the run there.\n"
            );
            for s in gated {
                let approves = if s.approves.len() > 1 {
                    let manual =
                        |id: &String| self.steps.iter().any(|p| &p.id == id && p.interactive);
                    let names: Vec<String> = s
                        .approves
                        .iter()
                        .map(|id| {
                            if manual(id) {
                                format!("{} (asks you)", md_code(id))
                            } else {
                                md_code(id)
                            }
                        })
                        .collect();
                    let they = if s.approves.iter().any(manual) {
                        "the others run"
                    } else {
                        "they run"
                    };
                    format!(
                        "<br>approves {}: {they} one after another without stopping for a person",
                        names.join(", ")
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(
                    o,
                    "- **{}. {}**: {}{approves}",
                    s.index,
                    md_code(&s.id),
                    inline(s.gate.as_deref().unwrap_or_default()).replace('\n', "<br>")
                );
            }
        }

        if !self.rollback.is_empty() {
            let _ = writeln!(o, "\n#### Rollback\n");
            let from: Vec<String> = self
                .steps
                .iter()
                .filter_map(|s| s.on_failure.as_ref().map(|_| md_code(&s.id)))
                .collect();
            if from.is_empty() {
                let _ = writeln!(
                    o,
                    "No step rolls back on failure; these steps run only if one is told to.\n"
                );
            } else {
                let _ = writeln!(
                    o,
                    "Runs only when {} fails, from the step its `on_failure` names.\n",
                    or_list(&from)
                );
            }
            table(&mut o, &self.rollback);
        }
        o
    }
}

impl Plan {
    /// The plan's shape as a Mermaid flowchart (labels from the masked plan).
    pub fn flowchart(&self) -> String {
        let flow = |steps: &[PlannedStep]| -> Vec<FlowStep> {
            steps
                .iter()
                .map(|s| FlowStep {
                    id: s.id.clone(),
                    kind: s.kind.to_string(),
                    title: s.title.clone(),
                    gate: s.gate.clone(),
                    effect: s.effect.clone(),
                    when: s.when.clone(),
                    on_failure: s.failure.clone(),
                    nested: s.nested.clone(),
                })
                .collect()
        };
        mermaid(&flow(&self.steps), &flow(&self.rollback))
    }
}

fn table(o: &mut String, steps: &[PlannedStep]) {
    let _ = writeln!(o, "| # | Step | Does | Effect |");
    let _ = writeln!(o, "|--:|------|------|--------|");
    for s in steps {
        let mut step = format!("{} {}", md_code(&s.id), md_code(s.kind));
        if let Some(t) = &s.title {
            let _ = write!(step, "<br>{}", cell(t));
        }
        let mut notes = Vec::new();
        if s.gate.is_some() {
            notes.push("**gate**".to_string());
        }
        if let Some(g) = &s.approved_at {
            notes.push(format!("approved at {}", md_code(g)));
        }
        if let Some(when) = &s.when {
            notes.push(format!("only when {}", md_code(when)));
        }
        if s.interactive {
            notes.push("asks the operator".to_string());
        }
        if let Some(f) = &s.on_failure {
            notes.push(format!("on failure: {}", cell(f)));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("<br>{}", notes.join("; "))
        };
        let _ = writeln!(
            o,
            "| {} | {step} | {} | {}{notes} |",
            s.index,
            does(&s.action),
            effect(&s.effect)
        );
    }
}

fn effect(e: &PlanEffect) -> String {
    match e {
        PlanEffect::ReadOnly => "read-only".into(),
        PlanEffect::Local => "local only".into(),
        PlanEffect::Changes(what) => format!("**changes** {}", cell(what)),
        PlanEffect::Unknown(what) => format!("unknown until run time: {}", cell(what)),
    }
}

/// Text inside a table cell: a `|` would end the cell, a newline the row, and `<`/`>` could
/// start HTML (a command's redirection, a placeholder).
fn cell(s: &str) -> String {
    inline(s).replace('|', "\\|").replace('\n', "<br>")
}

/// Text in a paragraph or list item: control characters visible, HTML-looking text shown,
/// not interpreted. (`&&` in a command is left alone: only `&name;` would be an entity.)
fn inline(s: &str) -> String {
    visible(s.trim()).replace('<', "&lt;").replace('>', "&gt;")
}

/// What a step does, every line of it as a code span: a command is shown as written, since
/// Markdown would read `*` as emphasis, `\\` as an escape, `@name` as a mention and `<x>` as
/// HTML. (A code span cannot hold a line break, so each line is its own.)
fn does(action: &str) -> String {
    action
        .trim_end()
        .lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                md_code(l)
            }
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_escape_pipes_newlines_and_html() {
        assert_eq!(cell("a | b\nc <x> && d"), "a \\| b<br>c &lt;x&gt; && d");
        assert_eq!(cell("ok\r\u{1b}[2Kfine"), "ok\\r\\e[2Kfine");
    }

    #[test]
    fn commands_are_code_spans_line_by_line() {
        assert_eq!(
            does("on app: rm *.log | wc\n  echo `x`\n"),
            "`on app: rm *.log \\| wc`<br>``   echo `x` ``"
        );
    }
}
