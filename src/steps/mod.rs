//! Step kinds: one module per kind behind the [`Kind`] trait, registered in [`KINDS`].
//!
//! A kind owns its typed parameters (which also feed the JSON Schema), its check-time
//! validation, how it describes itself in a plan, and how it runs. The engine, the checker and
//! the UI only see the object-safe [`DynKind`]; adding a kind touches its file and [`KINDS`].

pub mod generate;
pub mod http;
pub mod manual;
pub mod psql;
pub mod runbook;
pub mod ssh;
pub mod ssm;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;

use crate::diag::Problem;
use crate::load::yaml::{DeError, Node};
use crate::model::Environment;

/// Every step kind this binary knows, in the order `runbook schema` and docs list them.
pub static KINDS: &[&dyn DynKind] = &[
    &Adapter::<generate::Generate>(PhantomData),
    &Adapter::<manual::ManualConfirm>(PhantomData),
    &Adapter::<ssm::Get>(PhantomData),
    &Adapter::<ssm::Put>(PhantomData),
    &Adapter::<ssh::SshExec>(PhantomData),
    &Adapter::<psql::Psql>(PhantomData),
    &Adapter::<http::HttpCheck>(PhantomData),
    &Adapter::<runbook::RunRunbook>(PhantomData),
];

pub fn find_kind(name: &str) -> Option<&'static dyn DynKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// Whether an output holds a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Secrecy {
    /// Never a secret (a version number, a status code).
    Public,
    /// Always a secret (a generated value, a hidden input).
    Secret,
    /// Known only at run time (an SSM parameter: secret when it is a SecureString).
    /// Check and plan treat it as a secret.
    Maybe,
}

/// One output a step kind produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    pub name: String,
    pub secrecy: Secrecy,
}

impl OutputSpec {
    pub fn public(name: &str) -> OutputSpec {
        OutputSpec {
            name: name.into(),
            secrecy: Secrecy::Public,
        }
    }
    pub fn secret(name: &str) -> OutputSpec {
        OutputSpec {
            name: name.into(),
            secrecy: Secrecy::Secret,
        }
    }
    pub fn maybe(name: &str) -> OutputSpec {
        OutputSpec {
            name: name.into(),
            secrecy: Secrecy::Maybe,
        }
    }
}

/// A value a step produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub name: String,
    pub value: serde_json::Value,
    pub secret: bool,
}

pub type Outputs = Vec<Output>;

/// What a step's effect on the world is, for honest plans.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "effect", content = "what", rename_all = "kebab-case")]
pub enum Effect {
    /// Reads only.
    ReadOnly,
    /// Changes something; says what.
    Changes(String),
    /// Only local work (generating a value, asking the operator).
    Local,
}

/// A step failure. The message must be short and must not contain a secret; the engine masks
/// known secrets in it anyway.
#[derive(Debug, Clone)]
pub struct StepError {
    pub message: String,
    /// More lines (remote output, the server's detail), shown under the failure.
    pub detail: Option<String>,
    /// The operator declined (a manual step answered "no").
    pub declined: bool,
}

impl From<crate::secret::TooShort> for StepError {
    fn from(e: crate::secret::TooShort) -> StepError {
        StepError::new(e.to_string())
            .with_detail("a value this short cannot be kept out of the output; nothing was shown")
    }
}

impl StepError {
    pub fn new(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            detail: None,
            declined: false,
        }
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> StepError {
        let d = detail.into();
        if !d.trim().is_empty() {
            self.detail = Some(d);
        }
        self
    }
    pub fn declined(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            detail: None,
            declined: true,
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Questions a step may ask the operator. The CLI picks the implementation (terminal or not);
/// the engine wraps it so every text shown is masked.
pub trait Prompter: Send + Sync {
    /// Ask yes/no, default No.
    fn confirm(&self, question: &str) -> Result<bool, PromptError>;
    /// Make the operator type `expected` (a protected environment's name).
    fn type_to_confirm(&self, question: &str, expected: &str) -> Result<bool, PromptError>;
    /// Ask for a value. `choices` shows a list; `secret` hides the entry.
    fn ask(
        &self,
        label: &str,
        choices: Option<&[String]>,
        default: Option<&str>,
        secret: bool,
    ) -> Result<String, PromptError>;
    /// Show instructions (Markdown).
    fn show(&self, markdown: &str);
    /// True when the prompter can really ask someone.
    fn interactive(&self) -> bool;
    /// A step-by-step run (`run --step`): run this step, stop the run, or run it and stop
    /// asking. Only an interactive prompter can answer.
    fn step(&self, question: &str) -> Result<StepAnswer, PromptError> {
        let _ = question;
        Err(PromptError::NotInteractive)
    }
}

/// The operator's answer before a step of a step-by-step run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepAnswer {
    /// `y`: run this step, ask again before the next.
    Run,
    /// `n`: stop the run here (declined).
    Stop,
    /// `c`: run this step and every later one without asking.
    Continue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptError {
    /// No terminal to ask on.
    NotInteractive,
    /// Ctrl-C or end of input.
    Interrupted,
}

impl fmt::Display for PromptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptError::NotInteractive => f.write_str("cannot ask: not running on a terminal"),
            PromptError::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// Per-run shared state of the step kinds (an SSH connection per host, an AWS client), keyed
/// by type. The engine owns it and drops it at the end of the run; it never looks inside.
#[derive(Default)]
pub struct Resources {
    map: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Resources {
    /// The run's instance of `T`, made on first use.
    pub fn get<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut map = lock(&self.map);
        let entry = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        entry
            .clone()
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("keyed by TypeId"))
    }
}

/// What a running step can use.
pub struct RunCx<'a> {
    pub env: &'a Environment,
    pub step_id: &'a str,
    pub prompter: &'a dyn Prompter,
    pub resources: &'a Resources,
    /// Report progress (e.g. the last line of remote output).
    pub progress: &'a (dyn Fn(&str) + Send + Sync),
    /// Say something the operator must see in the run's record, not only while it runs (e.g.
    /// hosts that failed within `max_failures` of a step that still succeeded).
    pub note: &'a (dyn Fn(&str) + Send + Sync),
    /// Register a secret as soon as it is known, before it can reach any output.
    /// A value too short to be masked is refused: the kind must fail the step without
    /// showing it (`?` turns the refusal into the step's error).
    pub add_secret: &'a (dyn Fn(&str) -> Result<(), crate::secret::TooShort> + Send + Sync),
    /// The operator approved everything up front (`--yes`).
    pub assume_yes: bool,
    /// Runs another runbook within this run (absent outside a run, e.g. in preflight).
    pub nested: Option<&'a dyn Nested>,
}

/// What the engine offers `runbook.run`: another runbook of the directory, run as part of
/// this run against the same environment.
#[async_trait::async_trait]
pub trait Nested: Send + Sync {
    async fn run_runbook(
        &self,
        step_id: &str,
        name: &str,
        inputs: indexmap::IndexMap<String, String>,
    ) -> Result<Outputs, StepError>;
}

/// What a kind can check about its parameters beyond their types.
pub struct CheckCx<'a> {
    pub problems: Vec<Problem>,
    pub environments: &'a [Environment],
    /// The parameters node, to point problems at.
    pub params: &'a Node,
    /// Names of template values that hold secrets (`steps.x.value`, `inputs.token`).
    pub secret_refs: &'a dyn Fn(&str) -> bool,
}

impl CheckCx<'_> {
    /// A problem about the parameter `field` (or the whole parameters when absent).
    pub fn problem_at(&mut self, field: &str, p: Problem) {
        let span = self
            .params
            .get(field)
            .map_or(self.params.span.clone(), |n| n.span.clone());
        self.problems.push(Problem {
            span: Some(span),
            ..p
        });
    }

    /// A problem when an environment lacks a host the step names.
    pub fn require_host(&mut self, field: &str, host: &str) {
        if host.contains("{{") {
            return;
        }
        for env in self.environments {
            if !env.doc.hosts.contains_key(host) {
                let known: Vec<&str> = env.doc.hosts.keys().map(String::as_str).collect();
                let mut p = Problem::error(
                    "runbook::unknown-host",
                    format!("environment `{}` has no host `{host}`", env.name),
                )
                .label("this host");
                p.help = Some(
                    crate::diag::did_you_mean(host, known.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "add it under `environments.{}.hosts` in environments.yaml (known: {})",
                            env.name,
                            join_or_none(&known)
                        )
                    }),
                );
                self.problem_at(field, p);
            }
        }
    }

    /// A problem when an environment lacks a database the step names.
    pub fn require_database(&mut self, field: &str, db: &str) {
        if db.contains("{{") {
            return;
        }
        for env in self.environments {
            if !env.doc.databases.contains_key(db) {
                let known: Vec<&str> = env.doc.databases.keys().map(String::as_str).collect();
                let mut p = Problem::error(
                    "runbook::unknown-database",
                    format!("environment `{}` has no database `{db}`", env.name),
                )
                .label("this database");
                p.help = Some(crate::diag::did_you_mean(db, known.iter().copied()).unwrap_or_else(|| {
                    format!(
                        "add it under `environments.{}.databases` in environments.yaml (known: {})",
                        env.name,
                        join_or_none(&known)
                    )
                }));
                self.problem_at(field, p);
            }
        }
    }
}

fn join_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A step kind, written once per kind with typed parameters.
pub trait Kind: Send + Sync + 'static {
    const NAME: &'static str;
    const SUMMARY: &'static str;
    /// The parameters a shell reads as a command line: a value templated into one unquoted
    /// can run as commands (`check` warns, see `check::unquoted_in_shell`).
    const SHELL_FIELDS: &'static [&'static str] = &[];
    type Params: DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// The outputs of a step with these parameters in these environments (a name may be a
    /// host group in them, which makes a step produce per-host outputs).
    fn outputs(params: &Self::Params, environments: &[Environment]) -> Vec<OutputSpec>;

    /// Problems beyond types: unknown hosts, bad patterns, secrets in a command line.
    fn check(_params: &Self::Params, _cx: &mut CheckCx<'_>) {}

    /// Whether the step needs a person (a terminal or `--yes`).
    fn interactive(_params: &Self::Params) -> bool {
        false
    }

    /// One line for plans and progress, from rendered (masked) parameters.
    fn describe(params: &Self::Params) -> String;

    fn effect(params: &Self::Params) -> Effect;

    /// Whether running the step again after a crash cut it short is harmless.
    fn idempotent(params: &Self::Params) -> bool {
        matches!(Self::effect(params), Effect::ReadOnly | Effect::Local)
    }

    /// How to do the step by hand, as Markdown for `runbook docs`, from parameters rendered
    /// with placeholders (a secret is only ever its placeholder or the file holding it).
    /// `None` shows the plan's one-line description instead.
    fn by_hand(_params: &Self::Params, _cx: &crate::docs::HandCx<'_>) -> Option<String> {
        None
    }

    /// The hosts of `env` the step will reach over SSH (to run on, or to tunnel through), so
    /// that their connections can open while the operator reads the step's gate.
    fn ssh_hosts(_params: &Self::Params, _env: &Environment) -> Vec<String> {
        Vec::new()
    }

    fn run(
        params: Self::Params,
        cx: &RunCx<'_>,
    ) -> impl Future<Output = Result<Outputs, StepError>> + Send;
}

/// The object-safe face of a [`Kind`], over YAML nodes.
#[async_trait::async_trait]
pub trait DynKind: Send + Sync + fmt::Debug {
    fn name(&self) -> &'static str;
    fn summary(&self) -> &'static str;
    fn shell_fields(&self) -> &'static [&'static str];
    fn params_schema(&self, g: &mut SchemaGenerator) -> Schema;
    /// Parse the parameters, check them, and say which outputs the step will have.
    fn check(&self, params: &Node, cx: &mut CheckCx<'_>) -> Result<Vec<OutputSpec>, DeError>;
    fn interactive(&self, params: &Node) -> bool;
    fn idempotent(&self, params: &Node) -> bool;
    fn describe(&self, rendered: &Node) -> Result<(String, Effect), DeError>;
    fn by_hand(&self, rendered: &Node, cx: &crate::docs::HandCx<'_>) -> Option<String>;
    fn ssh_hosts(&self, rendered: &Node, env: &Environment) -> Vec<String>;
    async fn run(&self, rendered: &Node, cx: &RunCx<'_>) -> Result<Outputs, StepError>;
}

pub struct Adapter<K>(PhantomData<K>);

impl<K> fmt::Debug for Adapter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<K>())
    }
}

#[async_trait::async_trait]
impl<K: Kind> DynKind for Adapter<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn shell_fields(&self) -> &'static [&'static str] {
        K::SHELL_FIELDS
    }
    fn summary(&self) -> &'static str {
        K::SUMMARY
    }
    fn params_schema(&self, g: &mut SchemaGenerator) -> Schema {
        g.subschema_for::<K::Params>()
    }
    fn check(&self, params: &Node, cx: &mut CheckCx<'_>) -> Result<Vec<OutputSpec>, DeError> {
        let p: K::Params = params.deserialize()?;
        K::check(&p, cx);
        Ok(K::outputs(&p, cx.environments))
    }
    fn interactive(&self, params: &Node) -> bool {
        params
            .deserialize::<K::Params>()
            .is_ok_and(|p| K::interactive(&p))
    }
    fn idempotent(&self, params: &Node) -> bool {
        params
            .deserialize::<K::Params>()
            .is_ok_and(|p| K::idempotent(&p))
    }
    fn describe(&self, rendered: &Node) -> Result<(String, Effect), DeError> {
        let p: K::Params = rendered.deserialize()?;
        Ok((K::describe(&p), K::effect(&p)))
    }
    fn by_hand(&self, rendered: &Node, cx: &crate::docs::HandCx<'_>) -> Option<String> {
        let p: K::Params = rendered.deserialize().ok()?;
        K::by_hand(&p, cx)
    }
    fn ssh_hosts(&self, rendered: &Node, env: &Environment) -> Vec<String> {
        rendered
            .deserialize::<K::Params>()
            .map(|p| K::ssh_hosts(&p, env))
            .unwrap_or_default()
    }
    async fn run(&self, rendered: &Node, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let p: K::Params = rendered.deserialize().map_err(|e| {
            StepError::new(format!("invalid parameters after rendering templates: {e}"))
        })?;
        K::run(p, cx).await
    }
}

/// The JSON Schema of one step: the common fields plus exactly one kind key.
pub fn step_schema(g: &mut SchemaGenerator) -> Schema {
    // The common fields are inlined in every variant: `additionalProperties: false` only sees
    // properties declared next to it.
    let common = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<crate::model::StepCommon>();
    let common_props = common.get("properties").cloned().unwrap_or_default();
    let variants: Vec<serde_json::Value> = KINDS
        .iter()
        .map(|k| {
            let mut props = common_props.as_object().cloned().unwrap_or_default();
            let mut params = k.params_schema(g).to_value();
            if let Some(obj) = params.as_object_mut() {
                obj.insert("description".into(), k.summary().into());
            }
            props.insert(k.name().into(), params);
            serde_json::json!({
                "title": k.name(),
                "type": "object",
                "properties": props,
                "required": ["id", k.name()],
                "additionalProperties": false,
            })
        })
        .collect();
    json_schema!({ "oneOf": variants })
}

/// An error and its causes joined with `: `, skipping a cause a layer already repeats in its
/// own text. (The SDKs' own displays are either just "service error" or a debug dump.)
/// A command or a script as a step's action shows it: every line, without the blank lines
/// and trailing space around it. A one-line command starts on the action's line; a longer
/// one is shown whole, and each renderer lays out the lines after the first.
pub fn whole_text(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    let mut out = lines[start.min(lines.len())..].join("\n");
    // The first line's own indent would only push it away from `on host:`.
    if let Some(trimmed) = out.strip_prefix(|c: char| c == ' ' || c == '\t') {
        out = trimmed.trim_start_matches([' ', '\t']).to_string();
    }
    out
}

/// The first line of a step's action and, when it has more, how many: for the places with
/// room for one line only (a spinner, a heading).
pub fn first_line(action: &str) -> (&str, usize) {
    let mut lines = action.lines();
    let first = lines.next().unwrap_or_default();
    (first, lines.count())
}

pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// `~` and `~/x` in a path of environments.yaml.
pub fn expand_tilde(p: &str) -> std::path::PathBuf {
    match (p.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            let mut h = std::path::PathBuf::from(home);
            h.push(rest.trim_start_matches('/'));
            h
        }
        _ => std::path::PathBuf::from(p),
    }
}

/// Mask in plans: a value that is a secret.
pub use crate::secret::MASK;

/// A std mutex's guard, also after a panic elsewhere poisoned it (the data stays usable: every
/// holder leaves it consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A step over many hosts, so far: "hosts 7/50 done, 1 failed (h13: exit 2)", naming the
/// first three failures (`failed`: host and short reason, in the order they failed).
pub(crate) fn hosts_summary(
    finished: usize,
    total: usize,
    verb: &str,
    failed: &[(String, String)],
) -> String {
    let mut s = format!("hosts {finished}/{total} {verb}");
    if !failed.is_empty() {
        let shown: Vec<String> = failed
            .iter()
            .take(3)
            .map(|(h, why)| format!("{h}: {why}"))
            .collect();
        let more = if failed.len() > 3 { ", …" } else { "" };
        s.push_str(&format!(
            ", {} failed ({}{more})",
            failed.len(),
            shown.join(", ")
        ));
    }
    s
}

/// How often a fan-out's status may be reported.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The running status of a step over many hosts ("hosts 7/50 done …"). Each update replaces
/// the last one, but a sink that prints every progress line (plain logs, CI) would print one
/// per host and per line of output. Updates pass at most once a second; the first, every
/// failure and the last always pass (`force`).
pub(crate) struct Status<'a> {
    progress: &'a (dyn Fn(&str) + Send + Sync),
    last: Mutex<Option<Instant>>,
}

impl<'a> Status<'a> {
    pub(crate) fn new(progress: &'a (dyn Fn(&str) + Send + Sync)) -> Self {
        Status {
            progress,
            last: Mutex::new(None),
        }
    }

    /// Report `text()` if it is due (or forced); `text` is only built when it is.
    pub(crate) fn update(&self, force: bool, text: impl FnOnce() -> String) {
        {
            let mut last = lock(&self.last);
            let now = Instant::now();
            if !force && last.is_some_and(|t| now.duration_since(t) < STATUS_EVERY) {
                return;
            }
            *last = Some(now);
        }
        (self.progress)(&text());
    }
}

/// Start opening the SSH connections a step will use, in the background, while the operator
/// reads its gate: the handshake (100–200 ms a host) is then done by the time they answer.
/// Only opens connections (the login the step makes anyway); a failure here is not kept: the
/// step connects again and reports what it meets (the operator may have fixed the cause, a
/// VPN say, while reading the gate). If the run ends before a connection finished
/// opening, its master is stopped by the next run (see `ssh::reap_orphans`).
pub fn warm_up(kind: &dyn DynKind, rendered: &Node, env: &Environment, resources: &Resources) {
    let hosts = kind.ssh_hosts(rendered, env);
    if !hosts.is_empty() {
        ssh::warm_up(resources, env, &hosts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hosts each kind says it reaches over SSH: what a gate opens early.
    #[test]
    fn the_ssh_hosts_of_each_kind() {
        let yaml = "
version: 1
environments:
  e:
    hosts:
      a: { address: 10.0.0.1 }
      b: { address: 10.0.0.2 }
      c: { address: 10.0.0.3 }
    groups:
      web: [b, c]
    databases:
      main: { host: 127.0.0.1, name: m, user: u, via: a }
      direct: { host: db.example, name: m, user: u }
";
        let mut problems = Vec::new();
        let envs = crate::load::load_environments(
            std::path::Path::new("environments.yaml"),
            yaml.to_string(),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let env = &envs.list[0];
        let hosts = |kind: &str, params: &str| {
            let node = crate::load::yaml::parse(params).unwrap();
            find_kind(kind).unwrap().ssh_hosts(&node, env)
        };
        assert_eq!(hosts("ssh.exec", "{ host: a, command: x }"), ["a"]);
        assert_eq!(hosts("ssh.exec", "{ hosts: web, command: x }"), ["b", "c"]);
        assert_eq!(
            hosts("ssh.exec", "{ hosts: [c, a, c], command: x }"),
            ["c", "a"]
        );
        assert_eq!(
            hosts("psql", "{ database: main, password: p, sql: select 1 }"),
            ["a"]
        );
        assert!(hosts("psql", "{ database: direct, password: p, sql: select 1 }").is_empty());
        assert_eq!(hosts("http.check", "{ url: 'http://x/', via: a }"), ["a"]);
        assert_eq!(
            hosts("http.check", "{ url: 'http://x/', via: web }"),
            ["b", "c"]
        );
        assert_eq!(
            hosts("http.check", "{ url: 'http://x/', via: [c, b] }"),
            ["c", "b"]
        );
        assert!(hosts("http.check", "{ url: 'http://x/' }").is_empty());
        assert!(hosts("generate", "{ format: hex }").is_empty());
    }
}
