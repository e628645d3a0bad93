//! What a shell completes from the project: runbook names, environment names, step ids, input
//! names and run ids, read from the runbook directory and the state directory of the command
//! line being completed (see `completions.rs`, which sets [`Context`] before clap asks).
//!
//! Each file is read within the loader's limits and parsed to YAML only: nothing is checked,
//! nothing is printed, and a file that cannot be read or parsed adds no candidate. A
//! completion must never fail loudly at a prompt, nor cost more than the files it names.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap_complete::engine::CompletionCandidate;

use crate::journal;
use crate::load::{self, file, yaml::Node};

/// The command line being completed, as far as it is written.
#[derive(Debug, Default)]
pub(super) struct Context {
    /// `--dir` (or `RUNBOOK_DIR`, or the default).
    pub dir: PathBuf,
    /// `--state-dir` (or `RUNBOOK_STATE_DIR`).
    pub state_dir: Option<PathBuf>,
    /// The subcommand (`run`, `plan`, …).
    pub command: Option<String>,
    /// The runbook named by the subcommand's first argument.
    pub runbook: Option<String>,
}

static CONTEXT: OnceLock<Context> = OnceLock::new();

/// Set once, by the completion request, before any candidate is asked for.
pub(super) fn set_context(cx: Context) {
    let _ = CONTEXT.set(cx);
}

fn context() -> Option<&'static Context> {
    CONTEXT.get()
}

/// Whether `value` may be offered to the shell: a value with a control or invisible character
/// (a terminal escape in a runbook's name) would be typed into the command line or drawn on
/// the terminal as it is, so it is not offered; nor one with a space, which no name has.
fn offerable(value: &str) -> bool {
    !value.is_empty() && !value.contains(' ') && crate::display::visible_line(value) == value
}

/// A YAML file of the runbook directory, parsed; `None` when it cannot be read or parsed.
fn parse(path: &Path, dir: &Path) -> Option<Node> {
    let text = file::read_text(path, dir, file::MAX_FILE_BYTES).ok()?;
    load::yaml::parse(&text).ok()
}

/// The help text of a candidate: one line of a `summary` or `description`, shown by shells
/// that show descriptions (zsh, fish).
fn help_of(node: &Node, key: &str) -> Option<clap::builder::StyledStr> {
    let text = node.get(key)?.as_str()?;
    let line = text.lines().find(|l| !l.trim().is_empty())?.trim();
    Some(crate::display::visible_line(line).into_owned().into())
}

/// The runbooks of the directory, each with its name (`name:`, not the file name).
fn runbooks(dir: &Path) -> Vec<(String, Node)> {
    let Ok(files) = load::runbook_files(dir) else {
        return Vec::new();
    };
    files
        .iter()
        .filter_map(|f| parse(f, dir))
        .filter_map(|n| {
            let name = n.get("name")?.as_str()?.to_string();
            offerable(&name).then_some((name, n))
        })
        .collect()
}

/// Runbook names (the first argument of `run`, `plan`, `preflight`, `show`, `docs`).
pub(super) fn runbook_names() -> Vec<CompletionCandidate> {
    let Some(cx) = context() else {
        return Vec::new();
    };
    runbooks(&cx.dir)
        .into_iter()
        .map(|(name, n)| CompletionCandidate::new(name).help(help_of(&n, "summary")))
        .collect()
}

/// Environment names, from `environments.yaml`.
pub(super) fn environment_names() -> Vec<CompletionCandidate> {
    let Some(cx) = context() else {
        return Vec::new();
    };
    let Some(doc) = parse(&cx.dir.join(load::ENVIRONMENTS_FILE), &cx.dir) else {
        return Vec::new();
    };
    doc.get("environments")
        .and_then(Node::as_map)
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().filter(|n| offerable(n))?;
            Some(CompletionCandidate::new(name).help(help_of(v, "description")))
        })
        .collect()
}

/// The runbook the command line names, parsed.
fn named_runbook() -> Option<Node> {
    let cx = context()?;
    let name = cx.runbook.as_deref()?;
    runbooks(&cx.dir)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, node)| node)
}

/// The ids of the named runbook's main steps (`--from`, `--only`), in runbook order.
pub(super) fn step_ids() -> Vec<CompletionCandidate> {
    let Some(rb) = named_runbook() else {
        return Vec::new();
    };
    rb.get("steps")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            Some(
                CompletionCandidate::new(s.get("id")?.as_str().filter(|id| offerable(id))?)
                    .help(help_of(s, "title"))
                    .display_order(Some(i)),
            )
        })
        .collect()
}

/// `--input`: the named runbook's inputs as `name=`, then, after the `=`, an input's
/// `choices`. A secret input is not offered to `run`, which refuses it on the command line.
pub(super) fn inputs(current: &OsStr) -> Vec<CompletionCandidate> {
    let (Some(cx), Some(rb)) = (context(), named_runbook()) else {
        return Vec::new();
    };
    let current = current.to_string_lossy();
    let inputs = rb.get("inputs").and_then(Node::as_map).unwrap_or_default();
    let secret = |n: &Node| n.get("secret").and_then(Node::as_str) == Some("true");
    if let Some((name, value)) = current.split_once('=') {
        let Some((_, input)) = inputs.iter().find(|(k, _)| k.as_str() == Some(name)) else {
            return Vec::new();
        };
        // Several choices (`multiple: true`): the next one after a comma, none given twice,
        // and `all` first.
        let several = input.get("multiple").and_then(Node::as_str) == Some("true");
        let (before, value) = match value.rsplit_once(',') {
            Some((b, v)) if several => (format!("{b},"), v),
            _ => (String::new(), value),
        };
        let given: Vec<&str> = before.split(',').collect();
        if given.contains(&crate::inputs::typed::ALL) {
            return Vec::new();
        }
        let all = (several && before.is_empty()).then_some(crate::inputs::typed::ALL);
        return all
            .into_iter()
            .chain(
                input
                    .get("choices")
                    .and_then(Node::as_seq)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Node::as_str),
            )
            .filter(|c| c.starts_with(value) && offerable(c) && !given.contains(c))
            .map(|c| CompletionCandidate::new(format!("{name}={before}{c}")))
            .collect();
    }
    inputs
        .iter()
        .filter(|(_, v)| !(cx.command.as_deref() == Some("run") && secret(v)))
        .filter_map(|(k, v)| {
            let k = k.as_str().filter(|k| offerable(k))?;
            k.starts_with(current.as_ref())
                .then(|| CompletionCandidate::new(format!("{k}=")).help(help_of(v, "description")))
        })
        .collect()
}

/// Run ids for `resume` (the runs it can continue) and `abandon` (those it can give up),
/// latest first.
pub(super) fn run_ids() -> Vec<CompletionCandidate> {
    let Some(cx) = context() else {
        return Vec::new();
    };
    let state = journal::state_dir(cx.state_dir.as_deref());
    let abandon = cx.command.as_deref() == Some("abandon");
    journal::list_runs(&state)
        .into_iter()
        .rev()
        .filter(|r| if abandon { r.abandonable } else { r.resumable })
        .enumerate()
        .map(|(i, r)| {
            let help = format!("{} on {}, {}", r.runbook, r.env, r.status);
            CompletionCandidate::new(r.run_id)
                .help(Some(
                    crate::display::visible_line(&help).into_owned().into(),
                ))
                .display_order(Some(i))
        })
        .collect()
}
