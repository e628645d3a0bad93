//! `report.write`: a Markdown record of the run so far (an incident record), written beside the
//! run's journal in the state directory and given to later steps as `text` (to post it).
//!
//! The facts come from the journal, not from the runbook's author: the run id and operator,
//! when each step started and ended and how, the gates and manual steps and who answered them,
//! the SSM versions each rotation replaced and made, and what people recorded at manual steps.
//! The author adds a title and a body (the context: which secrets, since when).

use schemars::JsonSchema;
use serde::Deserialize;

use super::kind::{
    CheckCx, Effect, HistoryEvent, HistoryStep, Kind, Output, OutputSpec, Outputs, RunCx,
    RunHistory, StepError,
};
use super::manual::ManualConfirm;
use super::ssm::Put;
use crate::diag::{Code, Problem};
use crate::display::visible_line;

pub struct ReportWrite;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The record's title (its first heading).
    pub title: String,
    /// Markdown after the title: the context the journal does not know (which secrets, since
    /// when, what was suspected).
    #[serde(default)]
    pub body: Option<String>,
    /// The file's name in the run's directory of the state directory, without `.md`
    /// (default: `report`). Letters, digits, `-` and `_`. In a nested runbook the steps that
    /// run it come first (`rotate-report.md`), so no record replaces another.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub name: Option<String>,
}

impl Params {
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("report")
    }
}

impl Kind for ReportWrite {
    const NAME: &'static str = "report.write";
    const SUMMARY: &'static str = "Write a Markdown record of the run so far beside its journal: run id, operator, \
         each step's start and end, gates and manual steps, SSM versions before and after, \
         findings (outputs `path`, `text`).";
    type Params = Params;

    /// It records the run, whatever the environment holds.
    fn needs_environment(_params: &Params) -> bool {
        false
    }

    fn example() -> &'static str {
        "{ title: Incident record }"
    }

    fn outputs(_: &Params, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        vec![OutputSpec::public("path"), OutputSpec::maybe("text")]
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        let name = p.name();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && name != "journal";
        if !valid {
            cx.problem_at(
                "name",
                Problem::error(
                    Code::BadReportName,
                    format!(
                        "`{name}` cannot name a record: it is a file name in the run's directory"
                    ),
                )
                .help(
                    "use letters, digits, `-` and `_` (up to 64), not `journal`: `name: incident`",
                ),
            );
        }
    }

    fn describe(p: &Params) -> String {
        format!(
            "write the run's record `{}.md` in the state directory",
            p.name()
        )
    }

    fn effect(_: &Params) -> Effect {
        Effect::Local
    }

    /// Written whole each time: running it again replaces the file with a newer record.
    fn idempotent(_: &Params) -> bool {
        true
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let record = cx.record.ok_or_else(|| {
            StepError::new("this run keeps no journal, so there is nothing to record")
        })?;
        let history = record.history().map_err(|e| {
            StepError::new(format!("cannot read the run's journal: {e}")).with_help(
                "check the state directory (disk full, permissions), then `runbook resume`",
            )
        })?;
        let written = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        // Masked, like every file of the run: a finding that repeats a secret stays out of it.
        let text = record.mask(&render(&p, &history, cx.step_id, &written));
        let name = document_name(&history, cx.step_id, p.name());
        let path = record.write_document(&name, &text).map_err(|e| {
            StepError::new(format!("cannot write the record `{}.md`: {e}", p.name())).with_help(
                "check the state directory (disk full, permissions), then `runbook resume`",
            )
        })?;
        (cx.note)(&format!("record written: {}", path.display()));
        let secret = (cx.holds_secret)(&text);
        Ok(vec![
            Output {
                name: "path".into(),
                value: path.display().to_string().into(),
                secret: false,
            },
            Output {
                name: "text".into(),
                value: text.into(),
                secret,
            },
        ])
    }
}

/// The record: title, body, then the run's facts from its journal.
fn render(p: &Params, h: &RunHistory, this_step: &str, written: &str) -> String {
    let mut out = format!("# {}\n\n", one_line(&p.title));
    if let Some(body) = p.body.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
        out.push_str(body);
        out.push_str("\n\n");
    }

    out.push_str("## Run\n\n");
    out.push_str(&format!("- Run id: `{}`\n", h.run_id));
    out.push_str(&format!(
        "- Runbook: `{}`, environment `{}`\n",
        h.runbook, h.env
    ));
    // Names from the operator's machine ($USER, the host name) are text like any other: one
    // line, control characters visible, so none can start a section of its own.
    out.push_str(&format!(
        "- Operator: {} on {}, started {}\n",
        cell(&h.operator),
        cell(&h.host),
        cell(&h.started)
    ));
    for (at, by) in &h.resumed {
        out.push_str(&format!("- Resumed {} by {}\n", cell(at), cell(by)));
    }
    if let Some(id) = &h.aws_identity {
        out.push_str(&format!("- AWS identity: `{id}`\n"));
    }
    if let Some(c) = &h.git_commit {
        out.push_str(&format!("- Runbook commit: `{c}`\n"));
    }
    out.push_str(&format!("- Record written: {written}\n\n"));

    let steps: Vec<&HistoryStep> = h
        .events
        .iter()
        .filter_map(|e| match e {
            HistoryEvent::Step(s) => Some(s),
            _ => None,
        })
        // This step is running while it writes the record.
        .filter(|s| !(s.ended.is_none() && is_step(&s.id, this_step)))
        .collect();

    out.push_str("## Steps\n\n");
    out.push_str("| Step | What | Started (UTC) | Ended (UTC) | Outcome |\n");
    out.push_str("|---|---|---|---|---|\n");
    for s in &steps {
        let id = if s.rollback {
            format!("`{}` (rollback)", s.id)
        } else {
            format!("`{}`", s.id)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&id),
            cell(s.title.as_deref().unwrap_or("")),
            s.started.as_deref().unwrap_or("–"),
            s.ended.as_deref().unwrap_or("–"),
            cell(if s.ended.is_none() {
                "never ended (the run stopped during it)"
            } else {
                &s.status
            }),
        ));
    }
    out.push('\n');

    let writes = ssm_writes(&steps);
    out.push_str("## SSM parameters changed\n\n");
    if writes.is_empty() {
        out.push_str("None.\n\n");
    } else {
        out.push_str("| Parameter | Version before | Version after | Written by |\n");
        out.push_str("|---|---|---|---|\n");
        for w in &writes {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                cell(&w.name),
                w.before
                    .map_or_else(|| "none (new)".into(), |v| v.to_string()),
                w.after,
                cell(&w.by.join(", ")),
            ));
        }
        out.push('\n');
    }

    out.push_str("## Gates and manual steps\n\n");
    let answers: Vec<String> = h
        .events
        .iter()
        .filter_map(|e| match e {
            HistoryEvent::Gate {
                id,
                approved,
                by,
                at,
            } => Some(format!(
                "| `{}` | gate {} | {} | {at} |",
                cell(id),
                if *approved { "approved" } else { "declined" },
                cell(by)
            )),
            HistoryEvent::Manual {
                id,
                outcome,
                by,
                at,
            } => Some(format!(
                "| `{}` | manual step: {} | {} | {at} |",
                cell(id),
                cell(outcome),
                cell(by)
            )),
            HistoryEvent::RollbackStarted { failed, at } => Some(format!(
                "| `{}` | failed: rollback started | – | {at} |",
                cell(failed)
            )),
            HistoryEvent::Step(_) => None,
        })
        .collect();
    if answers.is_empty() {
        out.push_str("None.\n\n");
    } else {
        out.push_str("| Step | What | By | At (UTC) |\n|---|---|---|---|\n");
        for a in answers {
            out.push_str(&a);
            out.push('\n');
        }
        out.push('\n');
    }

    out.push_str("## Findings\n\n");
    let findings: Vec<(&str, &str, String)> = steps
        .iter()
        .filter(|s| s.kind.as_deref() == Some(<ManualConfirm as Kind>::NAME))
        .flat_map(|s| {
            s.outputs.iter().map(move |(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (s.id.as_str(), k.as_str(), text)
            })
        })
        .collect();
    if findings.is_empty() {
        out.push_str("None recorded.\n");
    } else {
        for (id, k, text) in findings {
            out.push_str(&format!("- `{id}` {k}:"));
            let text = text.trim();
            if text.contains('\n') {
                out.push('\n');
                for line in text.lines() {
                    out.push_str(&format!("  > {}\n", visible_line(line)));
                }
            } else {
                out.push_str(&format!(" {}\n", visible_line(text)));
            }
        }
    }
    out
}

/// The file's name: `name`, after the steps that run this one's runbook when it is nested
/// (`rotate-report` for `rotate/record`), so a nested runbook's record never replaces its
/// parent's or a sibling's.
fn document_name(h: &RunHistory, this_step: &str, name: &str) -> String {
    let full = h.events.iter().rev().find_map(|e| match e {
        HistoryEvent::Step(s) if s.ended.is_none() && is_step(&s.id, this_step) => {
            Some(s.id.as_str())
        }
        _ => None,
    });
    match full.and_then(|id| id.rsplit_once('/')) {
        Some((prefix, _)) => {
            let prefix: String = prefix
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("{prefix}-{name}")
        }
        None => name.to_string(),
    }
}

/// Whether `id` (with its nesting prefix) is the step `step`.
fn is_step(id: &str, step: &str) -> bool {
    id == step || id.ends_with(&format!("/{step}"))
}

/// What was written to one SSM parameter during the run.
struct Write {
    name: String,
    before: Option<u64>,
    after: u64,
    by: Vec<String>,
}

/// SSM writes, per parameter: the version before the first write (SSM numbers a parameter's
/// versions one by one, so it is the first new one less one) and after the last.
fn ssm_writes(steps: &[&HistoryStep]) -> Vec<Write> {
    let mut out: Vec<Write> = Vec::new();
    for s in steps {
        if s.kind.as_deref() != Some(<Put as Kind>::NAME) {
            continue;
        }
        let (Some(name), Some(version)) = (
            &s.writes,
            s.outputs
                .iter()
                .find(|(k, _)| k == "version")
                .and_then(|(_, v)| v.as_u64().or_else(|| v.as_str()?.parse().ok())),
        ) else {
            continue;
        };
        let by = if s.rollback {
            format!("`{}` (rollback)", s.id)
        } else {
            format!("`{}`", s.id)
        };
        match out.iter_mut().find(|w| w.name == *name) {
            Some(w) => {
                w.after = version;
                w.by.push(by);
            }
            None => out.push(Write {
                name: name.clone(),
                before: (version > 1).then(|| version - 1),
                after: version,
                by: vec![by],
            }),
        }
    }
    out
}

/// A Markdown table cell (or a value in a line): one line, control characters visible, `|`
/// escaped.
fn cell(text: &str) -> String {
    one_line(&visible_line(text)).replace('|', "\\|")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, kind: &str, outputs: &[(&str, serde_json::Value)]) -> HistoryEvent {
        HistoryEvent::Step(HistoryStep {
            id: id.into(),
            kind: Some(kind.into()),
            title: Some(format!("title of {id}")),
            writes: (kind == "ssm.put").then(|| "/app/KEY".to_string()),
            started: Some("2026-12-06T10:00:00Z".into()),
            ended: Some("2026-12-06T10:00:01Z".into()),
            status: "ok".into(),
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..HistoryStep::default()
        })
    }

    #[test]
    fn the_record_holds_the_runs_facts() {
        let h = RunHistory {
            run_id: "20261206-100000-abcd".into(),
            runbook: "compromise-response".into(),
            env: "sandbox".into(),
            operator: "alice".into(),
            host: "laptop".into(),
            started: "2026-12-06T10:00:00Z".into(),
            events: vec![
                HistoryEvent::Gate {
                    id: "rotate_db/store".into(),
                    approved: true,
                    by: "alice".into(),
                    at: "2026-12-06T10:00:00Z".into(),
                },
                step("rotate_db/store", "ssm.put", &[("version", 8.into())]),
                {
                    let mut rb = step("rotate_db/restore", "ssm.put", &[("version", 9.into())]);
                    if let HistoryEvent::Step(s) = &mut rb {
                        s.rollback = true;
                    }
                    rb
                },
                step(
                    "cloudtrail",
                    "manual.confirm",
                    &[("findings", "only the | deploy role\nand CI".into())],
                ),
                HistoryEvent::Step(HistoryStep {
                    id: "record".into(),
                    started: Some("2026-12-06T10:00:02Z".into()),
                    status: "running".into(),
                    ..HistoryStep::default()
                }),
            ],
            ..RunHistory::default()
        };
        let p = Params {
            title: "Incident:\nDB".into(),
            body: Some("Suspected since 2026-12-01.".into()),
            name: None,
        };
        let md = render(&p, &h, "record", "2026-12-06T10:00:03Z");
        // An operator name cannot add a section or a row of its own.
        let forged = RunHistory {
            operator:
                "mallory\n\n## SSM parameters changed\n\n| `x` | gate approved | alice |\u{1b}[31m"
                    .into(),
            ..h.clone()
        };
        let f = render(&p, &forged, "record", "2026-12-06T10:00:03Z");
        assert_eq!(
            f.lines()
                .filter(|l| l.starts_with("## SSM parameters changed"))
                .count(),
            1,
            "{f}"
        );
        assert!(!f.contains('\u{1b}'), "{f}");
        assert!(!f.contains("\n| `x` |"), "{f}");
        assert!(
            md.starts_with("# Incident: DB\n\nSuspected since 2026-12-01.\n"),
            "{md}"
        );
        assert!(md.contains("- Run id: `20261206-100000-abcd`"), "{md}");
        assert!(md.contains("- Operator: alice on laptop"), "{md}");
        assert!(
            md.contains(
                "| `/app/KEY` | 7 | 9 | `rotate_db/store`, `rotate_db/restore` (rollback) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `rotate_db/store` | title of rotate_db/store | 2026-12-06T10:00:00Z | 2026-12-06T10:00:01Z | ok |"),
            "{md}"
        );
        assert!(
            md.contains("| `rotate_db/store` | gate approved | alice |"),
            "{md}"
        );
        assert!(
            md.contains("- `cloudtrail` findings:\n  > only the | deploy role\n  > and CI\n"),
            "{md}"
        );
        // The running step writing the record is not one of its rows.
        assert!(!md.contains("| `record` |"), "{md}");
    }
}
