//! A runbook's shape as a Mermaid flowchart, for the Markdown plan and `runbook docs`: the
//! steps in order, the gates (a question; "no" ends the run), what each step changes, where a
//! failure leads (`on_failure`: the rollback steps, `continue`, `abort`) and the runbooks a
//! step runs. GitHub draws a ```` ```mermaid ```` block as a picture.
//!
//! Node ids are made here (`s1`, `r1`), never taken from a file; every text in a label goes
//! through [`label`], which leaves nothing Mermaid or HTML could read as syntax. The texts are
//! those of the plan or docs page it is drawn for: secrets already masked or placeholders.

use std::fmt::Write as _;

use crate::display::visible;
use crate::model::OnFailure;
use crate::plan::PlanEffect;

/// One step, as the diagram shows it.
pub struct FlowStep {
    pub id: String,
    pub kind: String,
    pub title: Option<String>,
    /// The gate's question, when the step has one.
    pub gate: Option<String>,
    pub effect: PlanEffect,
    /// The step's `when:` condition.
    pub when: Option<String>,
    pub on_failure: Option<OnFailure>,
    /// The runbook a `runbook.run` step runs.
    pub nested: Option<String>,
}

/// The longest text of one label line, in characters; a longer one ends with `…`.
const LINE: usize = 60;

/// The flowchart as a fenced Markdown block, ending with a newline.
pub fn mermaid(steps: &[FlowStep], rollback: &[FlowStep]) -> String {
    let mut o = String::from("```mermaid\nflowchart TD\n");
    let main_id = |i: usize| format!("s{}", i + 1);
    let rb_id = |i: usize| format!("r{}", i + 1);
    let _ = writeln!(o, "  start([\"start\"])");
    for (i, s) in steps.iter().enumerate() {
        node(&mut o, &main_id(i), &format!("{}.", i + 1), s);
    }
    let _ = writeln!(o, "  done([\"done\"])");
    let gates = steps.iter().any(|s| s.gate.is_some());
    if gates {
        let _ = writeln!(o, "  declined([\"declined: the run stops\"])");
    }
    let aborts = steps
        .iter()
        .any(|s| matches!(s.on_failure, Some(OnFailure::Abort)));
    if aborts {
        let _ = writeln!(o, "  stopped([\"failed: the run stops\"])");
    }
    if !rollback.is_empty() {
        let _ = writeln!(
            o,
            "  subgraph rollback[\"rollback: only when a step sends the run here\"]"
        );
        for (i, s) in rollback.iter().enumerate() {
            node(&mut o, &rb_id(i), &format!("R{}.", i + 1), s);
        }
        let _ = writeln!(o, "  end");
        let _ = writeln!(o, "  rolledback([\"rolled back: the run failed\"])");
    }

    // The order: each step to the next, through its gate when it has one.
    let entry = |i: usize| -> String {
        match steps.get(i) {
            Some(s) if s.gate.is_some() => format!("{}g", main_id(i)),
            Some(_) => main_id(i),
            None => "done".into(),
        }
    };
    let _ = writeln!(o, "  start --> {}", entry(0));
    for (i, s) in steps.iter().enumerate() {
        if s.gate.is_some() {
            let _ = writeln!(o, "  {}g -->|yes| {}", main_id(i), main_id(i));
            let _ = writeln!(o, "  {}g -->|no| declined", main_id(i));
        }
        let _ = writeln!(o, "  {} --> {}", main_id(i), entry(i + 1));
    }
    for (i, s) in rollback.iter().enumerate() {
        let next = if i + 1 < rollback.len() {
            rb_id(i + 1)
        } else {
            "rolledback".into()
        };
        let _ = writeln!(o, "  {} --> {next}", rb_id(i));
        failure_edge(&mut o, &rb_id(i), s, rollback, None);
    }
    // Where a failure leads; a step without `on_failure` stops the run (not drawn).
    for (i, s) in steps.iter().enumerate() {
        failure_edge(&mut o, &main_id(i), s, rollback, Some(entry(i + 1)));
    }

    let changes: Vec<String> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.effect, PlanEffect::Changes(_)))
        .map(|(i, _)| main_id(i))
        .chain(
            rollback
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s.effect, PlanEffect::Changes(_)))
                .map(|(i, _)| rb_id(i)),
        )
        .collect();
    if !changes.is_empty() {
        let _ = writeln!(o, "  classDef change fill:#fde2e2,stroke:#b42318");
        let _ = writeln!(o, "  class {} change", changes.join(","));
    }
    if gates {
        let gate_ids: Vec<String> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.gate.is_some())
            .map(|(i, _)| format!("{}g", main_id(i)))
            .collect();
        let _ = writeln!(o, "  classDef gate fill:#fef0c7,stroke:#b54708");
        let _ = writeln!(o, "  class {} gate", gate_ids.join(","));
    }
    o.push_str("```\n");
    o
}

/// The step's node (and its gate's, before it).
fn node(o: &mut String, id: &str, number: &str, s: &FlowStep) {
    if let Some(q) = &s.gate {
        let _ = writeln!(o, "  {id}g{{\"{}\"}}", label(&[&format!("gate: {q}")]));
    }
    let mut lines = vec![format!("{number} {} · {}", s.id, s.kind)];
    if let Some(t) = &s.title {
        lines.push(t.clone());
    }
    match &s.effect {
        // A kind writes names as code spans; a label shows them plain.
        PlanEffect::Changes(what) => lines.push(format!("changes: {}", what.replace('`', ""))),
        PlanEffect::ReadOnly => lines.push("read-only".into()),
        PlanEffect::Local => lines.push("local only".into()),
        PlanEffect::Unknown(_) => lines.push("effect known at run time".into()),
    }
    if let Some(w) = &s.when {
        lines.push(format!("only when {w}"));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    match &s.nested {
        Some(name) => {
            let mut refs = refs;
            let runs = format!("runs runbook {name}");
            refs.push(&runs);
            let _ = writeln!(o, "  {id}[[\"{}\"]]", label(&refs));
        }
        None => {
            let _ = writeln!(o, "  {id}[\"{}\"]", label(&refs));
        }
    }
}

fn failure_edge(
    o: &mut String,
    from: &str,
    s: &FlowStep,
    rollback: &[FlowStep],
    next: Option<String>,
) {
    match &s.on_failure {
        None => {}
        Some(OnFailure::Abort) => {
            let _ = writeln!(o, "  {from} -.->|fails| stopped");
        }
        Some(OnFailure::Continue) => {
            if let Some(next) = next {
                let _ = writeln!(o, "  {from} -.->|fails: goes on| {next}");
            }
        }
        Some(OnFailure::Rollback(target)) => {
            if let Some(i) = rollback.iter().position(|r| &r.id == target) {
                let _ = writeln!(o, "  {from} -.->|fails: roll back| r{}", i + 1);
            }
        }
    }
}

/// Lines of text as the inside of a quoted Mermaid label: control and invisible characters
/// written visibly (`\e`, `\u{202e}`), each line cut at [`LINE`] characters, lines joined by
/// `<br>`, and every ASCII character but letters, digits, the space and `.,:_-/'=+*!?()[]{}@`
/// written as an entity (`#35;`), so no quote, `#`, `<`, `&`, `;`, `|` or backquote can end the
/// label, start HTML or an entity, or become Markdown.
pub fn label(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| {
            let l = visible(l.trim()).replace(['\n', '\t'], " ");
            let cut: String = if l.chars().count() > LINE {
                l.chars().take(LINE - 1).chain(['…']).collect()
            } else {
                l
            };
            cut.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric()
                        || " .,:_-/'=+*!?()[]{}@".contains(c)
                        || !c.is_ascii()
                    {
                        c.to_string()
                    } else {
                        format!("#{};", c as u32)
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_leave_no_syntax() {
        assert_eq!(
            label(&["a \"b\" <c> #d; `e` | &f"]),
            "a #34;b#34; #60;c#62; #35;d#59; #96;e#96; #124; #38;f"
        );
        assert_eq!(label(&["x\u{1b}[2K\ry", "z"]), "x#92;e[2K#92;ry<br>z");
        assert_eq!(label(&["⟨steps.a.value⟩ ••••"]), "⟨steps.a.value⟩ ••••");
        let long = "x".repeat(100);
        assert_eq!(label(&[&long]).chars().count(), LINE);
    }
}
