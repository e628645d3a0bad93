//! Loading: files → spanned YAML → typed runbooks and environments, with every problem found.
//!
//! Loading never stops at the first problem: the top level, each step and each environment are
//! read separately so one mistake does not hide the next.

pub mod file;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::check;
use crate::diag::{Problem, Source, did_you_mean};
use crate::model::{
    COMMON_FIELDS, Environment, Environments, EnvironmentsDoc, FORMAT_VERSION, Runbook, RunbookDoc,
    Step, StepCommon,
};
use crate::steps::{self, KINDS};
use yaml::{DeError, Node, NodeKind};

/// Everything found in a runbooks directory.
pub struct Catalog {
    pub dir: PathBuf,
    pub runbooks: Vec<Runbook>,
    pub environments: Environments,
    pub problems: Vec<Problem>,
}

impl Catalog {
    pub fn find(&self, name: &str) -> Option<&Runbook> {
        self.runbooks.iter().find(|r| r.name() == name)
    }
}

pub const ENVIRONMENTS_FILE: &str = "environments.yaml";

/// Load `environments.yaml` and every other `*.yaml` of `dir` as a runbook.
pub fn load_dir(dir: &Path) -> Result<Catalog, Problem> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Problem::error(
            "runbook::no-runbooks-dir",
            format!("cannot read the runbooks directory {}: {e}", dir.display()),
        )
        .help("run from the directory that holds `runbooks/`, or pass `--dir PATH`")
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != ENVIRONMENTS_FILE))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    let environments = load_environments_in(dir, &mut problems);
    let mut runbooks = Vec::new();
    for f in files {
        if let Some(rb) = load_runbook_file(&f, &environments, &mut problems) {
            runbooks.push(rb);
        }
    }
    let all: Vec<&Runbook> = runbooks.iter().collect();
    check::nested_runbooks(&all, &runbooks, &mut problems);
    let mut seen: Vec<(&str, &Arc<Source>)> = Vec::new();
    for rb in &runbooks {
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == rb.name()) {
            let span = rb.node.get("name").map_or(0..0, |n| n.span.clone());
            problems.push(
                Problem::error(
                    "runbook::duplicate-runbook",
                    format!("two runbooks are named `{}`", rb.name()),
                )
                .at(&rb.source, span)
                .help(format!("the other one is {}", first.path.display())),
            );
        }
        seen.push((rb.name(), &rb.source));
    }
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
    let none = || Environments {
        list: Vec::new(),
        source: None,
        node: None,
    };
    match read_source(&path, problems) {
        Some(text) => load_environments(&path, text, problems),
        None => none(),
    }
}

/// The text of a runbook or environments file, or a problem saying why it was not read (a
/// missing environments file is no problem: there are then no environments). The problem
/// names the file and never shows any of its content.
fn read_source(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    let within = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let why = match file::read_text(path, within, file::MAX_FILE_BYTES) {
        Ok(text) => return Some(text),
        Err(file::Refused::Missing) if path.ends_with(ENVIRONMENTS_FILE) => return None,
        Err(why) => why,
    };
    let (code, help) = match &why {
        file::Refused::LinkOutside { .. } => (
            "runbook::link-outside",
            "a runbook file may be a link only to a file in the same directory".to_string(),
        ),
        file::Refused::NotAFile { .. } => (
            "runbook::not-a-file",
            "only regular files are read as runbooks; remove it or rename it".to_string(),
        ),
        file::Refused::TooLarge { limit } => (
            "runbook::file-too-large",
            format!(
                "a runbook or environments file may hold at most {} KiB; split it",
                limit / 1024
            ),
        ),
        _ => (
            "runbook::unreadable",
            "check the file's permissions and encoding".to_string(),
        ),
    };
    // An empty source: the problem has a file to belong to, and no snippet to show.
    let source = Source::new(path, String::new());
    problems.push(
        Problem::error(code, format!("{} was not read: {why}", path.display()))
            .in_file(&source)
            .help(help),
    );
    None
}

pub fn load_environments(path: &Path, text: String, problems: &mut Vec<Problem>) -> Environments {
    let source = Source::new(path, text);
    let empty = |source: Option<Arc<Source>>, node| Environments {
        list: Vec::new(),
        source,
        node,
    };
    let node = match parse(&source, problems) {
        Some(n) => n,
        None => return empty(Some(source), None),
    };
    if !check_version(&node, &source, "environments file", problems) {
        return empty(Some(source), Some(node));
    }
    check::control_characters(&node, &source, problems);
    // Read each environment on its own so one mistake does not hide another.
    let mut list = Vec::new();
    let top_ok = match node.deserialize::<EnvironmentsDoc>() {
        Ok(doc) => {
            list = doc
                .environments
                .into_iter()
                .map(|(name, doc)| Environment { name, doc })
                .collect();
            true
        }
        Err(e) => {
            let in_env = e.span.as_ref().is_some_and(|s| {
                node.get("environments")
                    .is_some_and(|n| n.span.start <= s.start && s.end <= n.span.end)
            });
            problems.push(de_problem(e, &source));
            !in_env
        }
    };
    if !top_ok && let Some(envs) = node.get("environments").and_then(Node::as_map) {
        for (k, v) in envs {
            if let Ok(doc) = v.deserialize() {
                list.push(Environment {
                    name: k.as_str().unwrap_or_default().to_string(),
                    doc,
                });
            }
        }
    }
    for env in &list {
        let env_node = node.get("environments").and_then(|n| n.get(&env.name));
        env_ranges(env, env_node, &source, problems);
        for (group, members) in &env.doc.groups {
            let member_nodes = env_node
                .and_then(|n| n.get("groups"))
                .and_then(|n| n.get(group))
                .and_then(Node::as_seq);
            for (i, member) in members.iter().enumerate() {
                if env.doc.hosts.contains_key(member) {
                    continue;
                }
                let span = member_nodes
                    .and_then(|m| m.get(i))
                    .map_or(0..0, |n| n.span.clone());
                let known: Vec<&str> = env.doc.hosts.keys().map(String::as_str).collect();
                let mut p = Problem::error(
                    "runbook::unknown-host",
                    format!(
                        "group `{group}` of environment `{}` names host `{member}`, which it does not have",
                        env.name
                    ),
                )
                .at(&source, span)
                .label("no such host");
                p.help = Some(
                    crate::diag::did_you_mean(member, known.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "add it under `environments.{}.hosts`, or remove it from the group",
                            env.name
                        )
                    }),
                );
                problems.push(p);
            }
        }
        for (name, db) in &env.doc.databases {
            if let Some(via) = &db.via
                && !env.doc.hosts.contains_key(via)
            {
                let span = env_node
                    .and_then(|n| n.get("databases"))
                    .and_then(|n| n.get(name))
                    .and_then(|n| n.get("via"))
                    .map_or(0..0, |n| n.span.clone());
                problems.push(
                    Problem::error(
                        "runbook::unknown-host",
                        format!("database `{name}` of environment `{}` is reached via host `{via}`, which it does not have", env.name),
                    )
                    .at(&source, span)
                    .label("no such host"),
                );
            }
        }
    }
    Environments {
        list,
        source: Some(source),
        node: Some(node),
    }
}

/// An environment's ports and durations within their ranges (`crate::model::ranges`).
fn env_ranges(
    env: &Environment,
    env_node: Option<&Node>,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) {
    use crate::model::ranges::{self, outside, outside_dur};
    let dur = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let at = |path: &[&str]| {
        let mut n = env_node;
        for p in path {
            n = n.and_then(|n| n.get(p));
        }
        n.or(env_node).map_or(0..0, |n| n.span.clone())
    };
    let mut found = Vec::new();
    for (name, h) in &env.doc.hosts {
        if let Some(port) = h.port
            && let Some(help) = outside(port, ranges::PORT, |n| n.to_string())
        {
            found.push(("port", port.to_string(), help, at(&["hosts", name, "port"])));
        }
        if let Some(t) = h.connect_timeout
            && let Some(help) = outside_dur(t.0, ranges::CONNECT_TIMEOUT)
        {
            let span = at(&["hosts", name, "connect_timeout"]);
            found.push(("connect_timeout", dur(t.0), help, span));
        }
    }
    for (name, db) in &env.doc.databases {
        if let Some(help) = outside(db.port, ranges::PORT, |n| n.to_string()) {
            let span = at(&["databases", name, "port"]);
            found.push(("port", db.port.to_string(), help, span));
        }
    }
    if let Some(lock) = &env.doc.shared_lock
        && let Some(help) = outside_dur(lock.expires_after.0, ranges::LOCK_EXPIRY)
    {
        let span = at(&["shared_lock", "expires_after"]);
        found.push(("expires_after", dur(lock.expires_after.0), help, span));
    }
    for (field, shown, help, span) in found {
        problems.push(ranges::problem(field, &shown, help).at(source, span));
    }
}

pub fn load_runbook_file(
    path: &Path,
    envs: &Environments,
    problems: &mut Vec<Problem>,
) -> Option<Runbook> {
    let text = read_source(path, problems)?;
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
    let node = parse(&source, problems)?;
    if !check_version(&node, &source, "runbook", problems) {
        return None;
    }
    let before = problems.iter().filter(|p| p.is_error()).count();
    check::control_characters(&node, &source, problems);
    let doc = match node.deserialize::<RunbookDoc>() {
        Ok(doc) => Some(doc),
        Err(e) => {
            problems.push(de_problem(e, &source));
            None
        }
    };
    if let Some(doc) = &doc {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if doc.name != stem {
            let span = node.get("name").map_or(0..0, |n| n.span.clone());
            problems.push(
                Problem::error(
                    "runbook::name-mismatch",
                    format!(
                        "the runbook is named `{}` but its file is `{stem}.yaml`",
                        doc.name
                    ),
                )
                .at(&source, span)
                .help(format!(
                    "rename the file to `{}.yaml` or set `name: {stem}`",
                    doc.name
                )),
            );
        }
        check::has_steps(doc, &node, &source, problems);
        check::inputs(doc, &node, &source, problems);
    }
    let mut steps = parse_steps(node.get("steps"), false, &source, problems);
    let mut rollback = parse_steps(node.get("rollback"), true, &source, problems);
    let inputs = doc.as_ref().map(|d| &d.inputs);
    check::steps(&mut steps, &mut rollback, inputs, envs, &source, problems);
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

fn parse(source: &Arc<Source>, problems: &mut Vec<Problem>) -> Option<Node> {
    match yaml::parse(&source.text) {
        Ok(node) => Some(node),
        Err(e) => {
            let p = match e.limit {
                None => Problem::error("runbook::yaml", format!("invalid YAML: {}", e.message))
                    .label("here")
                    .help("check the indentation and quoting around this place"),
                Some(yaml::Limit::Depth) => Problem::error("runbook::too-deep", e.message)
                    .label("too deep")
                    .help(format!(
                        "a runbook or environments file needs about 8 levels; more than {} are refused",
                        yaml::MAX_DEPTH
                    )),
                Some(yaml::Limit::Aliases) => Problem::error("runbook::alias-budget", e.message)
                    .label("this alias goes over the limit")
                    .help(format!(
                        "write the repeated part out, or alias less: all aliases of a file may \
                         copy at most {} nodes and {} KiB",
                        yaml::MAX_ALIAS_NODES,
                        yaml::MAX_ALIAS_BYTES / 1024
                    )),
            };
            problems.push(p.at(source, e.span));
            None
        }
    }
}

/// `version:` must be present and supported; a newer file is refused plainly.
fn check_version(
    node: &Node,
    source: &Arc<Source>,
    what: &str,
    problems: &mut Vec<Problem>,
) -> bool {
    if node.as_map().is_none() {
        problems.push(
            Problem::error(
                "runbook::not-a-mapping",
                format!(
                    "a {what} file must be a mapping of keys, found {}",
                    node.type_name()
                ),
            )
            .at(source, node.span.clone()),
        );
        return false;
    }
    match node.get("version") {
        None => {
            problems.push(
                Problem::error(
                    "runbook::missing-version",
                    format!("this {what} has no `version`"),
                )
                .at(source, node.span.start..node.span.start)
                .help(format!("start the file with `version: {FORMAT_VERSION}`")),
            );
            false
        }
        Some(v) => match v.as_str().and_then(|s| s.parse::<u32>().ok()) {
            Some(FORMAT_VERSION) => true,
            Some(n) if n > FORMAT_VERSION => {
                problems.push(
                    Problem::error(
                        "runbook::unsupported-version",
                        format!("this {what} is format version {n}; this runbook binary ({}) reads version {FORMAT_VERSION}", env!("CARGO_PKG_VERSION")),
                    )
                    .at(source, v.span.clone())
                    .label("newer than this binary")
                    .help("upgrade runbook to read this file"),
                );
                false
            }
            _ => {
                problems.push(
                    Problem::error(
                        "runbook::unsupported-version",
                        format!("unsupported version `{}`", v.as_str().unwrap_or("?")),
                    )
                    .at(source, v.span.clone())
                    .help(format!("write `version: {FORMAT_VERSION}`")),
                );
                false
            }
        },
    }
}

/// Turn a deserialization error into a problem with a code, a label and a help line.
pub fn de_problem(e: DeError, source: &Arc<Source>) -> Problem {
    let span = e.span.clone().unwrap_or(0..0);
    if let Some((name, expected)) = &e.unknown {
        let is_key = e.message.starts_with("unknown key");
        let code = if is_key {
            "runbook::unknown-key"
        } else {
            "runbook::unknown-value"
        };
        let help = did_you_mean(name, expected.iter().copied())
            .unwrap_or_else(|| format!("expected one of: {}", expected.join(", ")));
        return Problem::error(code, e.message)
            .at(source, span)
            .label(if is_key {
                "unknown key"
            } else {
                "unknown value"
            })
            .help(help);
    }
    if e.message.starts_with("missing required key") {
        return Problem::error("runbook::missing-key", e.message)
            .at(source, span)
            .label("in this mapping");
    }
    if e.message.starts_with("invalid duration") {
        return Problem::error("runbook::bad-duration", e.message)
            .at(source, span)
            .label("not a duration");
    }
    if e.message.starts_with("expected") {
        return Problem::error("runbook::wrong-type", e.message)
            .at(source, span)
            .label("wrong type");
    }
    Problem::error("runbook::invalid", e.message).at(source, span)
}

fn parse_steps(
    node: Option<&Node>,
    rollback: bool,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) -> Vec<Step> {
    let Some(items) = node.and_then(Node::as_seq) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|n| parse_step(n, rollback, source, problems))
        .collect()
}

/// A step mapping: the common fields plus exactly one step-kind key.
fn parse_step(
    node: &Node,
    rollback: bool,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) -> Option<Step> {
    let Some(entries) = node.as_map() else {
        problems.push(
            Problem::error("runbook::wrong-type", format!("a step must be a mapping, found {}", node.type_name()))
                .at(source, node.span.clone())
                .help("write a step as `- id: name` followed by its kind, e.g. `generate: { format: hex }`"),
        );
        return None;
    };
    let mut common = Vec::new();
    let mut kinds = Vec::new();
    let mut ok = true;
    for (k, v) in entries {
        let key = k.as_str().unwrap_or_default();
        if COMMON_FIELDS.contains(&key) {
            common.push((k.clone(), v.clone()));
        } else if let Some(kind) = steps::find_kind(key) {
            kinds.push((k, v, kind));
        } else {
            ok = false;
            let kind_names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
            let p = if let Some(hint) = did_you_mean(key, COMMON_FIELDS.iter().copied()) {
                Problem::error("runbook::unknown-key", format!("unknown key `{key}`"))
                    .label("unknown key")
                    .help(hint)
            } else {
                let help = did_you_mean(key, kind_names.iter().copied())
                    .unwrap_or_else(|| format!("step kinds are: {}", kind_names.join(", ")));
                Problem::error(
                    "runbook::unknown-kind",
                    format!("unknown step kind `{key}`"),
                )
                .label("not a step kind")
                .help(help)
            };
            problems.push(p.at(source, k.span.clone()));
        }
    }
    let common_node = Node {
        span: node.span.clone(),
        kind: NodeKind::Map(common),
    };
    let common: Option<StepCommon> = match common_node.deserialize() {
        Ok(c) => Some(c),
        Err(e) => {
            problems.push(de_problem(e, source));
            None
        }
    };
    let id = common.as_ref().map_or("?", |c| c.id.as_str());
    let kind = match kinds.as_slice() {
        [] if ok => {
            let names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
            problems.push(
                Problem::error(
                    "runbook::no-kind",
                    format!("step `{id}` says nothing to do"),
                )
                .at(
                    source,
                    node.get("id").map_or(node.span.clone(), |n| n.span.clone()),
                )
                .label("this step")
                .help(format!("add one step kind: {}", names.join(", "))),
            );
            None
        }
        [] => None,
        [(_, v, kind)] => Some((*kind, (*v).clone())),
        [_, (k2, _, _), ..] => {
            problems.push(
                Problem::error(
                    "runbook::two-kinds",
                    format!("step `{id}` has more than one step kind"),
                )
                .at(source, k2.span.clone())
                .label("second kind")
                .help("split it into two steps, each with its own `id`"),
            );
            None
        }
    };
    let (kind, params) = kind?;
    Some(Step {
        common: common?,
        kind,
        params,
        node: node.clone(),
        outputs: Vec::new(),
        rollback,
    })
}
