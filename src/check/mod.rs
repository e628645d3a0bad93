//! Loading, checked: the entry points ([`load_dir`], [`load_runbook`], [`load_environments`] …)
//! read files through `load` and check what they read, stage by stage, so a runbook is only had
//! checked. The checks live in the files below: `document.rs` (a file as a whole: inputs,
//! invisible characters, no steps), `steps.rs` (across steps: ids, the kind's own check,
//! `on_failure`, ranges), `templates.rs` (every template reference resolved statically) and
//! `nested.rs` (the runbooks a step runs, and cycles through them), `gates.rs` (no gate after a
//! change: the run would wait for a person in its middle).

mod document;
mod gates;
mod nested;
mod steps;
mod templates;

use std::path::Path;
use std::sync::Arc;

use crate::catalog::{Catalog, Runbook};
use crate::diag::{Problem, Source};
use crate::load::{self, ENVIRONMENTS_FILE};
use crate::model::Environments;

pub use document::{control_characters, has_steps, inputs, rotation};
pub use nested::nested_runbooks;
pub use steps::steps;

/// Load `environments.yaml` and every other `*.yaml` of `dir` as a runbook, each checked, and
/// the checks across them (nested runbooks, names).
pub fn load_dir(dir: &Path) -> Result<Catalog, Problem> {
    let files = load::runbook_files(dir)?;
    let mut problems = Vec::new();
    let environments = load_environments_in(dir, &mut problems);
    let mut runbooks = Vec::new();
    for f in files {
        if let Some(rb) = load_runbook_file(&f, &environments, &mut problems) {
            runbooks.push(rb);
        }
    }
    let all: Vec<&Runbook> = runbooks.iter().collect();
    nested_runbooks(&all, &runbooks, &mut problems);
    load::duplicate_names(&runbooks, &mut problems);
    Ok(Catalog {
        dir: dir.to_path_buf(),
        runbooks,
        environments,
        problems,
    })
}

/// Load `environments.yaml` next to the runbooks (an empty set when there is none).
pub fn load_environments_in(dir: &Path, problems: &mut Vec<Problem>) -> Environments {
    let path = dir.join(ENVIRONMENTS_FILE);
    match load::read_source(&path, problems) {
        Some(text) => load_environments(&path, text, problems),
        None => Environments {
            list: Vec::new(),
            source: None,
            node: None,
        },
    }
}

pub fn load_environments(path: &Path, text: String, problems: &mut Vec<Problem>) -> Environments {
    let source = Source::new(path, text);
    let empty = |source: Option<Arc<Source>>, node| Environments {
        list: Vec::new(),
        source,
        node,
    };
    let node = match load::parse(&source, problems) {
        Some(n) => n,
        None => return empty(Some(source), None),
    };
    if !load::check_version(&node, &source, "environments file", problems) {
        return empty(Some(source), Some(node));
    }
    control_characters(&node, &source, problems);
    load::environments(source, node, problems)
}

pub fn load_runbook_file(
    path: &Path,
    envs: &Environments,
    problems: &mut Vec<Problem>,
) -> Option<Runbook> {
    let text = load::read_source(path, problems)?;
    load_runbook(path, text, envs, problems)
}

/// Parse and check one runbook. Returns it when it has no errors (warnings are in `problems`).
pub fn load_runbook(
    path: &Path,
    text: String,
    envs: &Environments,
    problems: &mut Vec<Problem>,
) -> Option<Runbook> {
    let source = Source::new(path, text);
    let node = load::parse(&source, problems)?;
    if !load::check_version(&node, &source, "runbook", problems) {
        return None;
    }
    let before = problems.iter().filter(|p| p.is_error()).count();
    control_characters(&node, &source, problems);
    let doc = load::runbook_doc(path, &node, &source, problems);
    if let Some(doc) = &doc {
        has_steps(doc, &node, &source, problems);
        inputs(doc, &node, &source, problems);
        rotation(doc, &node, &source, problems);
    }
    let (mut steps, mut rollback) = load::runbook_steps(&node, &source, problems);
    let inputs = doc.as_ref().map(|d| &d.inputs);
    self::steps(&mut steps, &mut rollback, inputs, envs, &source, problems);
    gates::gates(&steps, &rollback, &source, problems);
    if let Some(doc) = &doc {
        document::no_schedule(doc, &steps, &rollback, &node, &source, problems);
    }
    let after = problems.iter().filter(|p| p.is_error()).count();
    match doc {
        Some(doc) if after == before => Some(Runbook {
            doc,
            steps,
            rollback,
            source,
            node,
        }),
        _ => None,
    }
}
