//! Loading: files → spanned YAML → typed runbooks and environments, with every problem found.
//!
//! Loading never stops at the first problem: the top level, each step and each environment are
//! read separately so one mistake does not hide the next. This module only reads; `check`
//! composes its stages with the checks (`check::load_dir` and the other entry points), so a
//! runbook is never had without both.

pub mod file;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::{Runbook, Step};
use crate::diag::{Code, Problem, Source, did_you_mean};
use crate::model::{
    COMMON_FIELDS, Environment, Environments, EnvironmentsDoc, FORMAT_VERSION, RunbookDoc,
    StepCommon,
};
use crate::steps::{self, KINDS};
use yaml::{DeError, DeErrorKind, Node, NodeKind};

pub use crate::catalog::Catalog;

pub const ENVIRONMENTS_FILE: &str = "environments.yaml";

/// The runbook files of `dir`: every `*.yaml` and `*.yml` but `environments.yaml`, sorted.
pub fn runbook_files(dir: &Path) -> Result<Vec<PathBuf>, Problem> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Problem::error(
            Code::NoRunbooksDir,
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
    Ok(files)
}

/// Two runbooks of a directory with one name: an error at the second.
pub fn duplicate_names(runbooks: &[Runbook], problems: &mut Vec<Problem>) {
    let mut seen: Vec<(&str, &Arc<Source>)> = Vec::new();
    for rb in runbooks {
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == rb.name()) {
            let span = rb.node.get("name").map_or(0..0, |n| n.span.clone());
            problems.push(
                Problem::error(
                    Code::DuplicateRunbook,
                    format!("two runbooks are named `{}`", rb.name()),
                )
                .at(&rb.source, span)
                .help(format!("the other one is {}", first.path.display())),
            );
        }
        seen.push((rb.name(), &rb.source));
    }
}

/// The text of a runbook or environments file, or a problem saying why it was not read (a
/// missing environments file is no problem: there are then no environments). The problem
/// names the file and never shows any of its content.
pub fn read_source(path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
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
            Code::LinkOutside,
            "a runbook file may be a link only to a file in the same directory".to_string(),
        ),
        file::Refused::NotAFile { .. } => (
            Code::NotAFile,
            "only regular files are read as runbooks; remove it or rename it".to_string(),
        ),
        file::Refused::TooLarge { limit } => (
            Code::FileTooLarge,
            format!(
                "a runbook or environments file may hold at most {} KiB; split it",
                limit / 1024
            ),
        ),
        _ => (
            Code::Unreadable,
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

/// The environments of a parsed `environments.yaml` whose version this binary reads.
pub fn environments(source: Arc<Source>, node: Node, problems: &mut Vec<Problem>) -> Environments {
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
                    Code::UnknownHost,
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
        notify_section(env, env_node, &source, problems);
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
                        Code::UnknownHost,
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

/// `notify:` names an SSM parameter (an absolute name, as `ssm.get` reads), and no var takes
/// the name templates see it under (`env.notify`).
fn notify_section(
    env: &Environment,
    env_node: Option<&Node>,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) {
    use crate::model::NOTIFY_VAR;
    let at = |path: &[&str]| {
        let mut n = env_node;
        for p in path {
            n = n.and_then(|n| n.get(p));
        }
        n.or(env_node).map_or(0..0, |n| n.span.clone())
    };
    if env.doc.vars.contains_key(NOTIFY_VAR) {
        let span = env_node
            .and_then(|n| n.get("vars"))
            .and_then(Node::as_map)
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(NOTIFY_VAR)))
            .map_or_else(|| at(&["vars"]), |(k, _)| k.span.clone());
        problems.push(
            Problem::error(
                Code::Invalid,
                format!(
                    "environment `{}` has a var named `{NOTIFY_VAR}`: templates see the environment's `notify:` section under that name",
                    env.name
                ),
            )
            .at(source, span)
            .label("this var")
            .help("rename the var; a notify target goes under `notify: { url_parameter: … }`"),
        );
    }
    if let Some(n) = &env.doc.notify {
        let p = &n.url_parameter;
        let help = "name the SecureString that holds the webhook's URL, like `/musehub-ops/production/NOTIFY_WEBHOOK_URL` (the URL itself is a credential: never write it here)";
        let span = at(&["notify", "url_parameter"]);
        if p.contains("://") {
            // The webhook's URL written here by mistake is its credential: the problem is
            // placed in words, without the snippet that would show it on the screen again.
            let (line, col) = source.line_col(span.start);
            problems.push(
                Problem::error(
                    Code::Invalid,
                    format!(
                        "`url_parameter` of environment `{}` at {}:{line}:{col} holds a URL, not the name of the SSM parameter that keeps it (the line is not shown: a webhook's URL is its credential)",
                        env.name,
                        crate::diag::display_path(&source.path)
                    ),
                )
                .in_file(source)
                .help(format!("{help}; then revoke this URL at the service and make a new one: it has been in a file")),
            );
        } else if !p.starts_with('/') || p.len() < 2 || p.chars().any(char::is_whitespace) {
            problems.push(
                Problem::error(
                    Code::Invalid,
                    format!(
                        "`url_parameter` of environment `{}` is not an SSM parameter name",
                        env.name
                    ),
                )
                .at(source, span)
                .label("not a parameter name")
                .help(help),
            );
        }
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

/// The top level of a parsed runbook whose version this binary reads, named like its file.
pub fn runbook_doc(
    path: &Path,
    node: &Node,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) -> Option<RunbookDoc> {
    let doc = match node.deserialize::<RunbookDoc>() {
        Ok(doc) => doc,
        Err(e) => {
            problems.push(de_problem(e, source));
            return None;
        }
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if doc.name != stem {
        let span = node.get("name").map_or(0..0, |n| n.span.clone());
        problems.push(
            Problem::error(
                Code::NameMismatch,
                format!(
                    "the runbook is named `{}` but its file is `{stem}.yaml`",
                    doc.name
                ),
            )
            .at(source, span)
            .help(format!(
                "rename the file to `{}.yaml` or set `name: {stem}`",
                doc.name
            )),
        );
    }
    Some(doc)
}

/// The main and the rollback steps of a parsed runbook, each bound to its kind.
pub fn runbook_steps(
    node: &Node,
    source: &Arc<Source>,
    problems: &mut Vec<Problem>,
) -> (Vec<Step>, Vec<Step>) {
    let steps = parse_steps(node.get("steps"), false, source, problems);
    let rollback = parse_steps(node.get("rollback"), true, source, problems);
    (steps, rollback)
}

/// The YAML tree of a file (a problem when it is not YAML or too deep).
pub fn parse(source: &Arc<Source>, problems: &mut Vec<Problem>) -> Option<Node> {
    match yaml::parse(&source.text) {
        Ok(node) => Some(node),
        Err(e) => {
            let p = match e.limit {
                None => Problem::error(Code::Yaml, format!("invalid YAML: {}", e.message))
                    .label("here")
                    .help("check the indentation and quoting around this place"),
                Some(yaml::Limit::Depth) => Problem::error(Code::TooDeep, e.message)
                    .label("too deep")
                    .help(format!(
                        "a runbook or environments file needs about 8 levels; more than {} are refused",
                        yaml::MAX_DEPTH
                    )),
                Some(yaml::Limit::Aliases) => Problem::error(Code::AliasBudget, e.message)
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
pub fn check_version(
    node: &Node,
    source: &Arc<Source>,
    what: &str,
    problems: &mut Vec<Problem>,
) -> bool {
    if node.as_map().is_none() {
        problems.push(
            Problem::error(
                Code::NotAMapping,
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
                    Code::MissingVersion,
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
                        Code::UnsupportedVersion,
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
                        Code::UnsupportedVersion,
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

/// Turn a deserialization error into a problem with a code, a label and a help line. The
/// error's kind decides the code.
pub fn de_problem(e: DeError, source: &Arc<Source>) -> Problem {
    let span = e.span.clone().unwrap_or(0..0);
    let unknown_help = |e: &DeError| {
        e.unknown.as_ref().map(|(name, expected)| {
            did_you_mean(name, expected.iter().copied())
                .unwrap_or_else(|| format!("expected one of: {}", expected.join(", ")))
        })
    };
    let (code, label, help) = match e.kind {
        DeErrorKind::UnknownField => (Code::UnknownKey, Some("unknown key"), unknown_help(&e)),
        DeErrorKind::UnknownVariant => {
            (Code::UnknownValue, Some("unknown value"), unknown_help(&e))
        }
        DeErrorKind::MissingField => (Code::MissingKey, Some("in this mapping"), None),
        DeErrorKind::Duration => (Code::BadDuration, Some("not a duration"), None),
        DeErrorKind::InvalidType => (Code::WrongType, Some("wrong type"), None),
        DeErrorKind::OneOrMany => (
            Code::WrongType,
            Some("wrong type"),
            Some(crate::one_or_many::HELP.to_string()),
        ),
        DeErrorKind::InvalidValue
        | DeErrorKind::InvalidLength
        | DeErrorKind::DuplicateField
        | DeErrorKind::Custom => (Code::Invalid, None, None),
    };
    let mut p = Problem::error(code, e.message).at(source, span);
    p.label = label.map(str::to_string);
    p.help = help;
    p
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
            Problem::error(Code::WrongType, format!("a step must be a mapping, found {}", node.type_name()))
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
                Problem::error(Code::UnknownKey, format!("unknown key `{key}`"))
                    .label("unknown key")
                    .help(hint)
            } else {
                let help = did_you_mean(key, kind_names.iter().copied())
                    .unwrap_or_else(|| format!("step kinds are: {}", kind_names.join(", ")));
                Problem::error(Code::UnknownKind, format!("unknown step kind `{key}`"))
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
                Problem::error(Code::NoKind, format!("step `{id}` says nothing to do"))
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
                    Code::TwoKinds,
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
