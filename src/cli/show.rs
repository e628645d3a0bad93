//! `runbook show NAME`: one runbook for a person: its summary, description, inputs and steps.

use super::args::Output;
use super::{Ctx, json, prompt};
use crate::diag;
use crate::display::visible_line;
use crate::session::Failure;

impl Ctx {
    pub(super) fn show(&self, name: &str, output: Output) -> Result<(), Failure> {
        let session = self.offline();
        let catalog = session.catalog()?;
        let rb = session.runbook(&catalog, name)?;
        let d = &rb.doc;
        if output == Output::Json {
            let steps = |list: &[crate::catalog::Step]| -> Vec<serde_json::Value> {
                list.iter()
                    .map(|s| {
                        serde_json::json!({
                            "id": s.id(),
                            "kind": s.kind.name(),
                            "title": s.common.title,
                            "gate": s.common.confirm.is_some(),
                        })
                    })
                    .collect()
            };
            json::print_document(serde_json::json!({
                "name": d.name,
                "summary": d.summary,
                "rotation": d.rotation,
                "impact": d.impact,
                // Relative to the runbooks directory, as in `list`.
                "file": rb.source.path.strip_prefix(&catalog.dir).unwrap_or(&rb.source.path),
                "description": d.description,
                "inputs": d.inputs.iter().map(|(n, i)| serde_json::json!({
                    "name": n,
                    "description": i.description,
                    "type": i.kind.as_str(),
                    "choices": i.choices,
                    "multiple": i.multiple,
                    "not_future": i.not_future,
                    // A secret's default is not shown to a program either.
                    "default": if i.secret { None } else { i.default.as_ref() },
                    "secret": i.secret,
                })).collect::<Vec<_>>(),
                "steps": steps(&rb.steps),
                "rollback": steps(&rb.rollback),
            }));
            return Ok(());
        }
        println!("{} — {}", visible_line(&d.name), visible_line(&d.summary));
        if let Some(r) = &d.rotation {
            println!("rotation: {}", visible_line(r));
        }
        if let Some(i) = &d.impact {
            println!("impact:   {}", visible_line(i));
        }
        println!(
            "file:     {}",
            visible_line(&diag::display_path(&rb.source.path))
        );
        if let Some(desc) = &d.description {
            println!();
            // Reflowed to the terminal on stdout, else to 80 columns.
            let width = console::Term::stdout()
                .size_checked()
                .map_or(80, |(_, cols)| (cols as usize).clamp(40, 200));
            print!("{}", prompt::render_markdown(desc, width));
        }
        if !d.inputs.is_empty() {
            println!("\ninputs:");
            for (n, i) in &d.inputs {
                let mut extra = Vec::new();
                if i.kind != crate::model::InputType::String {
                    extra.push(i.kind.as_str().to_string());
                }
                if i.not_future {
                    extra.push("not in the future".into());
                }
                if let Some(c) = &i.choices {
                    let several = if i.multiple {
                        format!("one or more of {}, or all", visible_line(&c.join("|")))
                    } else {
                        format!("one of {}", visible_line(&c.join("|")))
                    };
                    extra.push(several);
                }
                if let Some(def) = &i.default {
                    extra.push(format!("default {}", visible_line(def)));
                }
                if i.secret {
                    extra.push("secret".into());
                }
                let extra = if extra.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", extra.join(", "))
                };
                println!(
                    "  {}: {}{extra}",
                    visible_line(n),
                    visible_line(&i.description)
                );
            }
        }
        for (label, list) in [("steps", &rb.steps), ("rollback", &rb.rollback)] {
            if list.is_empty() {
                continue;
            }
            println!("\n{label}:");
            for (i, s) in list.iter().enumerate() {
                let gate = if s.common.confirm.is_some() {
                    "  [gate]"
                } else {
                    ""
                };
                let title = s
                    .common
                    .title
                    .as_deref()
                    .map(|t| format!(" — {}", visible_line(t)))
                    .unwrap_or_default();
                println!(
                    "  {:>2}. {} [{}]{title}{gate}",
                    i + 1,
                    visible_line(s.id()),
                    s.kind.name()
                );
            }
        }
        Ok(())
    }
}
