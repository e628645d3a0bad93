//! What a step kind is: the [`Kind`] trait a kind's file implements with typed parameters,
//! the object-safe [`DynKind`] the rest of the program sees (through [`Adapter`]), and what
//! kinds are given: [`RunCx`] to run, [`CheckCx`] to check, [`Resources`] shared per run.
//!
//! Kinds import this file, never `steps/mod.rs` (which names every kind, for `KINDS`).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;

use super::common::lock;
use super::hand::HandCx;
use crate::diag::{Code, Problem};
use crate::load::yaml::{DeError, Node};
use crate::model::Environment;

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

/// What a step that needs a person ([`Kind::interactive`]) does in a run nobody attends (no
/// terminal to ask on): `unattended:` of a manual step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unattended {
    /// The run is refused before its first step: nobody could do this work.
    #[default]
    Refuse,
    /// The step is left undone: recorded as not done by a person and listed at the end of the
    /// run (and in the audit log) as outstanding. Only for work the run does not depend on
    /// (a notification), never for values later steps read.
    Skip,
}

/// How a server a parameter is sent to may write it down, so a secret in it ends up in a log
/// no mask reaches ([`Kind::server_logged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// A URL: access logs of the server and of every proxy on the way keep the whole of it.
    Url,
    /// A SQL statement's text: a database logs it (`log_statement`, slow or failing
    /// statements).
    Statement,
    /// A SQL statement's bind parameters: a database logs them with the statement
    /// (`log_statement` shows them as `parameters: $1 = '…'`).
    BindParameters,
}

/// A step failure. The message must be short and must not contain a secret; the engine masks
/// known secrets in it anyway.
#[derive(Debug, Clone)]
pub struct StepError {
    pub message: String,
    /// More lines (remote output, the server's detail), shown under the failure.
    pub detail: Option<String>,
    /// What the operator can do about it, shown apart from the detail (`help:`).
    pub help: Option<String>,
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
            help: None,
            declined: false,
        }
    }
    /// More lines under the failure: what the step or the server said, shown as it is (it may
    /// come from the remote side, so it is never read for a help line).
    pub fn with_detail(mut self, detail: impl Into<String>) -> StepError {
        let d = detail.into();
        if !d.trim().is_empty() {
            self.detail = Some(d);
        }
        self
    }
    /// The detail with the help as its last line (`help: …`), for a report that has one text
    /// per failure (preflight, one host of a fan-out).
    pub fn detail_and_help(&self) -> Option<String> {
        let help = self.help.as_ref().map(|h| format!("help: {h}"));
        match (&self.detail, help) {
            (Some(d), Some(h)) => Some(format!("{d}\n{h}")),
            (d, h) => d.clone().or(h),
        }
    }
    /// What the operator can do about the failure, shown apart from the detail.
    pub fn with_help(mut self, help: impl Into<String>) -> StepError {
        let h = help.into();
        if !h.trim().is_empty() {
            self.help = Some(h);
        }
        self
    }
    pub fn declined(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            detail: None,
            help: None,
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
    /// Ask for a value with no choices that `check` judges before it is taken: a refusal
    /// says why and asks again (the value itself is never shown). `twice`: a hidden value
    /// is typed a second time, and both are asked again when the two differ (a mistyped
    /// secret nothing can check would otherwise be taken). A terminal shows no mark of
    /// acceptance before the check has passed.
    fn ask_checked(
        &self,
        label: &str,
        secret: bool,
        twice: bool,
        check: &(dyn Fn(&str) -> Result<(), String> + Sync),
    ) -> Result<String, PromptError> {
        let _ = twice;
        loop {
            let value = self.ask(label, None, None, secret)?;
            match check(&value) {
                Ok(()) => return Ok(value),
                Err(why) => self.show(&why),
            }
        }
    }
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

/// A prompter with no one behind it: every question is refused as not interactive and
/// instructions go nowhere (a library caller without a terminal, tests, benchmarks). The CLI
/// has its own, which prints instructions.
pub struct Nobody;

impl Prompter for Nobody {
    fn confirm(&self, _: &str) -> Result<bool, PromptError> {
        Err(PromptError::NotInteractive)
    }
    fn type_to_confirm(&self, _: &str, _: &str) -> Result<bool, PromptError> {
        Err(PromptError::NotInteractive)
    }
    fn ask(
        &self,
        _: &str,
        _: Option<&[String]>,
        _: Option<&str>,
        _: bool,
    ) -> Result<String, PromptError> {
        Err(PromptError::NotInteractive)
    }
    fn show(&self, _: &str) {}
    fn interactive(&self) -> bool {
        false
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
    /// Warn the operator: something went through in a way they must know of (a log that may
    /// hold what it should not). Shown on every output as a line that stays, written to the
    /// run's event log, and repeated in the run's summary.
    pub warn: &'a (dyn Fn(&str) + Send + Sync),
    /// Register a secret as soon as it is known, before it can reach any output.
    /// A value too short to be masked is refused: the kind must fail the step without
    /// showing it (`?` turns the refusal into the step's error).
    pub add_secret: &'a (dyn Fn(&str) -> Result<(), crate::secret::TooShort> + Send + Sync),
    /// Whether a text holds a secret the run knows: a rendered parameter that read one, an
    /// answer that repeats one. What a kind's outputs made of such text must say.
    pub holds_secret: &'a (dyn Fn(&str) -> bool + Send + Sync),
    /// The operator approved everything up front (`--yes`).
    pub assume_yes: bool,
    /// Runs another runbook within this run (absent outside a run, e.g. in preflight).
    pub nested: Option<&'a dyn Nested>,
    /// The run's own record: what it did so far, and a place for documents of it (absent
    /// outside a run, and in a run that keeps no journal).
    pub record: Option<&'a dyn RunRecord>,
}

/// What a step can read of the run it is part of, and write beside its journal.
pub trait RunRecord: Send + Sync {
    /// The run so far, as its journal holds it: this process's records and those of the
    /// process a resume continues. No secret value is in it.
    fn history(&self) -> std::io::Result<RunHistory>;
    /// Write `text` to the document `name` of the run (a private file beside its journal,
    /// replaced whole), and say where it is.
    fn write_document(&self, name: &str, text: &str) -> std::io::Result<std::path::PathBuf>;
    /// `text` with every secret the run knows masked, as the run's files have it.
    fn mask(&self, text: &str) -> String;
}

/// A run as its journal tells it (see [`RunRecord::history`]). Times are RFC 3339 UTC.
#[derive(Debug, Clone, Default)]
pub struct RunHistory {
    pub run_id: String,
    pub runbook: String,
    pub env: String,
    /// Who started the run, on which host, and when.
    pub operator: String,
    pub host: String,
    pub started: String,
    pub git_commit: Option<String>,
    pub aws_identity: Option<String>,
    /// Each resume: when, and by whom.
    pub resumed: Vec<(String, String)>,
    /// Gates, manual steps and steps, in the order they happened.
    pub events: Vec<HistoryEvent>,
}

/// One thing a run did (see [`RunHistory`]).
#[derive(Debug, Clone)]
pub enum HistoryEvent {
    Gate {
        id: String,
        approved: bool,
        by: String,
        at: String,
    },
    /// A manual step's work: `outcome` is `done`, `declined` or why nobody did it.
    Manual {
        id: String,
        outcome: String,
        by: String,
        at: String,
    },
    /// A step (with its nesting prefix: `rotate_db/store`) and how it went.
    Step(HistoryStep),
    RollbackStarted {
        failed: String,
        at: String,
    },
}

/// A step of a [`RunHistory`]: when it started and ended, and its public outputs.
#[derive(Debug, Clone, Default)]
pub struct HistoryStep {
    pub id: String,
    pub rollback: bool,
    pub kind: Option<String>,
    pub title: Option<String>,
    /// What it writes for good (see [`Kind::WRITES_NAMED_BY`]): an SSM parameter's name.
    pub writes: Option<String>,
    pub started: Option<String>,
    pub ended: Option<String>,
    /// `running` (it never ended: a crash), or how it ended.
    pub status: String,
    /// Its outputs that are not secret.
    pub outputs: Vec<(String, serde_json::Value)>,
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
                    Code::UnknownHost,
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
                    Code::UnknownDatabase,
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

    /// For a step that needs a person: what happens when nobody attends the run.
    fn unattended(_params: &Self::Params) -> Unattended {
        Unattended::Refuse
    }

    /// For a step that needs a person: the whole of what they are asked to do (Markdown), from
    /// rendered parameters. A run that leaves the step undone shows it, so its log says what
    /// is still to do.
    fn instructions(_params: &Self::Params) -> Option<String> {
        None
    }

    /// The parameters the server they are sent to may write down in its logs, by name (a
    /// list or a mapping counts as a whole): `check` warns when a secret goes into one.
    fn server_logged() -> &'static [(&'static str, Logged)] {
        &[]
    }

    /// One line for plans and progress, from rendered (masked) parameters.
    fn describe(params: &Self::Params) -> String;

    fn effect(params: &Self::Params) -> Effect;

    /// Whether an author may declare a step of these parameters `read_only: true`: yes when
    /// the kind cannot tell what the step does (a command, a query) or already reads only;
    /// `Err(what it changes)` when it writes by its nature.
    fn may_be_read_only(params: &Self::Params) -> Result<(), String> {
        match Self::effect(params) {
            Effect::ReadOnly | Effect::Local => Ok(()),
            Effect::Changes(what) => Err(what),
        }
    }

    /// Whether running the step again after a crash cut it short is harmless.
    fn idempotent(params: &Self::Params) -> bool {
        matches!(Self::effect(params), Effect::ReadOnly | Effect::Local)
    }

    /// How to do the step by hand, as Markdown for `runbook docs`, from parameters rendered
    /// with placeholders (a secret is only ever its placeholder or the file holding it).
    /// `None` shows the plan's one-line description instead.
    fn by_hand(_params: &Self::Params, _cx: &HandCx<'_>) -> Option<String> {
        None
    }

    /// The hosts of `env` the step will reach over SSH (to run on, or to tunnel through), so
    /// that their connections can open while the operator reads the step's gate.
    fn ssh_hosts(_params: &Self::Params, _env: &Environment) -> Vec<String> {
        Vec::new()
    }

    /// Start opening, in the background, the connections the step will use while the
    /// operator reads its gate: the handshake (100–200 ms a host over SSH) is then done by
    /// the time they answer. Only opens what the step opens anyway; a failure here is not
    /// kept (the step connects again and reports what it meets).
    fn warm_up(_params: &Self::Params, _env: &Environment, _resources: &Resources) {}

    /// Once per run, before its first step, for every kind of [`KINDS`] (whether the runbook
    /// has a step of it or not): set-up of what the kind shares between runs (SSH stops the
    /// masters left by killed runs).
    ///
    /// [`KINDS`]: super::KINDS
    fn before_run(_env: &Environment) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Let go now of what the kind holds in `resources` (dropping them does it too, later).
    fn close(_resources: &Resources) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Whether the step calls AWS with the environment's credentials (the audit log then
    /// names whose they are).
    const USES_AWS: bool = false;

    /// The plan parameter (flattened, as `runbook plan` shows it) that names what the step
    /// writes outside this machine for good: an SSM parameter's `name`. A new run is refused
    /// while an unfinished one writes the same, since resuming the older would put back what
    /// the newer replaced.
    const WRITES_NAMED_BY: Option<&'static str> = None;

    /// The plan parameter that names the runbook the step runs inside this run (`name` of
    /// `runbook.run`): what that runbook writes, the step writes.
    const RUNS_RUNBOOK_NAMED_BY: Option<&'static str> = None;

    /// The runbook of the same directory a step runs inside this run, read from its
    /// (unrendered, checked) parameters: `check` follows these across the catalog (unknown
    /// runbooks, cycles, inputs), and a run locks each of them.
    fn nested_runbook(_params: &Node) -> Option<NestedRunbook<'_>> {
        None
    }

    /// What a run of the step will need that `runbook preflight` can check without changing
    /// anything (credentials, a parameter, a host, a login, an endpoint), from parameters
    /// rendered with what is known before the run (`None` when they do not parse as rendered:
    /// a templated number).
    fn preflight(_params: Option<Self::Params>, _cx: &NeedCx<'_>, _needs: &mut Needs) {}

    /// Whether the step uses the environment it runs in (its hosts, databases or AWS
    /// account). A runbook none of whose steps does, and whose templates read no `env.*`, runs
    /// without `--env`. A kind says no only when it knows: the default is yes.
    fn needs_environment(_params: &Self::Params) -> bool {
        true
    }

    /// Minimal valid parameters, as YAML: what the tests of every kind start from.
    fn example() -> &'static str;

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
    fn unattended(&self, params: &Node) -> Unattended;
    fn instructions(&self, rendered: &Node) -> Option<String>;
    fn server_logged(&self) -> &'static [(&'static str, Logged)];
    fn idempotent(&self, params: &Node) -> bool;
    /// See [`Kind::may_be_read_only`]; parameters that do not parse are not refused here
    /// (their own error says why).
    fn may_be_read_only(&self, params: &Node) -> Result<(), String>;
    fn describe(&self, rendered: &Node) -> Result<(String, Effect), DeError>;
    fn by_hand(&self, rendered: &Node, cx: &HandCx<'_>) -> Option<String>;
    fn ssh_hosts(&self, rendered: &Node, env: &Environment) -> Vec<String>;
    fn warm_up(&self, rendered: &Node, env: &Environment, resources: &Resources);
    async fn before_run(&self, env: &Environment);
    async fn close(&self, resources: &Resources);
    fn uses_aws(&self) -> bool;
    fn writes_named_by(&self) -> Option<&'static str>;
    fn runs_runbook_named_by(&self) -> Option<&'static str>;
    fn nested_runbook<'n>(&self, params: &'n Node) -> Option<NestedRunbook<'n>>;
    fn preflight(&self, rendered: &Node, cx: &NeedCx<'_>, needs: &mut Needs);
    /// See [`Kind::needs_environment`]; parameters that do not parse unrendered (a templated
    /// number) count as needing one.
    fn needs_environment(&self, params: &Node) -> bool;
    fn example(&self) -> &'static str;
    async fn run(&self, rendered: &Node, cx: &RunCx<'_>) -> Result<Outputs, StepError>;
}

pub struct Adapter<K>(pub PhantomData<K>);

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
    fn unattended(&self, params: &Node) -> Unattended {
        params
            .deserialize::<K::Params>()
            .map_or(Unattended::Refuse, |p| K::unattended(&p))
    }
    fn instructions(&self, rendered: &Node) -> Option<String> {
        let p: K::Params = rendered.deserialize().ok()?;
        K::instructions(&p)
    }
    fn server_logged(&self) -> &'static [(&'static str, Logged)] {
        K::server_logged()
    }
    fn idempotent(&self, params: &Node) -> bool {
        params
            .deserialize::<K::Params>()
            .is_ok_and(|p| K::idempotent(&p))
    }
    fn may_be_read_only(&self, params: &Node) -> Result<(), String> {
        params
            .deserialize::<K::Params>()
            .map_or(Ok(()), |p| K::may_be_read_only(&p))
    }
    fn describe(&self, rendered: &Node) -> Result<(String, Effect), DeError> {
        let p: K::Params = rendered.deserialize()?;
        Ok((K::describe(&p), K::effect(&p)))
    }
    fn by_hand(&self, rendered: &Node, cx: &HandCx<'_>) -> Option<String> {
        let p: K::Params = rendered.deserialize().ok()?;
        K::by_hand(&p, cx)
    }
    fn ssh_hosts(&self, rendered: &Node, env: &Environment) -> Vec<String> {
        rendered
            .deserialize::<K::Params>()
            .map(|p| K::ssh_hosts(&p, env))
            .unwrap_or_default()
    }
    fn warm_up(&self, rendered: &Node, env: &Environment, resources: &Resources) {
        if let Ok(p) = rendered.deserialize::<K::Params>() {
            K::warm_up(&p, env, resources);
        }
    }
    async fn before_run(&self, env: &Environment) {
        K::before_run(env).await;
    }
    async fn close(&self, resources: &Resources) {
        K::close(resources).await;
    }
    fn uses_aws(&self) -> bool {
        K::USES_AWS
    }
    fn writes_named_by(&self) -> Option<&'static str> {
        K::WRITES_NAMED_BY
    }
    fn runs_runbook_named_by(&self) -> Option<&'static str> {
        K::RUNS_RUNBOOK_NAMED_BY
    }
    fn nested_runbook<'n>(&self, params: &'n Node) -> Option<NestedRunbook<'n>> {
        K::nested_runbook(params)
    }
    fn preflight(&self, rendered: &Node, cx: &NeedCx<'_>, needs: &mut Needs) {
        K::preflight(rendered.deserialize::<K::Params>().ok(), cx, needs);
    }
    fn needs_environment(&self, params: &Node) -> bool {
        params
            .deserialize::<K::Params>()
            .map_or(true, |p| K::needs_environment(&p))
    }
    fn example(&self) -> &'static str {
        K::example()
    }
    async fn run(&self, rendered: &Node, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let p: K::Params = rendered.deserialize().map_err(|e| {
            StepError::new(format!("invalid parameters after rendering templates: {e}"))
        })?;
        K::run(p, cx).await
    }
}

/// A step that runs another runbook of the directory: the node of that runbook's name (a
/// literal, or a template over inputs with `choices:`) and the inputs it gives, by name, with
/// the node of each value (`check` judges a literal one against the child's input).
pub struct NestedRunbook<'a> {
    pub name: &'a Node,
    pub inputs: Vec<(&'a str, &'a Node)>,
}

// ---------------------------------------------------------------------------------------------
// Preflight: what a run will need, checked read-only before it
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Works, but deserves a look (an HTTP 5xx while the app may be mid-deploy).
    Warn,
    /// Cannot be checked before the run (a name or password only the run knows).
    Skip,
    Fail,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What is checked: `aws`, `ssm read`, `ssm write`, `ssh`, `database`, `http`.
    pub check: &'static str,
    pub target: String,
    pub status: Status,
    pub reason: String,
    /// More lines for a failure: what the service said, a help line.
    pub detail: Option<String>,
}

impl Check {
    pub fn new(check: &'static str, target: impl Into<String>) -> Check {
        Check {
            check,
            target: target.into(),
            status: Status::Pass,
            reason: String::new(),
            detail: None,
        }
    }
    pub fn with(mut self, status: Status, reason: impl Into<String>) -> Check {
        self.status = status;
        self.reason = reason.into();
        self
    }
    pub fn outcome(self, r: Result<String, StepError>) -> Check {
        match r {
            Ok(reason) => self.with(Status::Pass, reason),
            Err(e) => {
                let detail = e.detail_and_help();
                let mut c = self.with(Status::Fail, e.message);
                c.detail = detail;
                c
            }
        }
    }
}

/// The order of the checks: what later checks build on comes first (a login's password read
/// from a parameter, an endpoint reached through a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Credentials,
    Read,
    Write,
    Host,
    Login,
    Call,
}

/// One thing a run will need, checked once however many steps need it.
#[async_trait::async_trait]
pub trait Need: Any + Send + Sync {
    fn stage(&self) -> Stage;
    /// Needs with the same stage and key are one check: the later is merged into the first.
    fn key(&self) -> String;
    /// A later step needs the same (`later` is of the same type); keeps the first by default.
    fn merge(&mut self, later: Box<dyn Need>) {
        let _ = later;
    }
    async fn check(&self, cx: &ProbeCx<'_>) -> Check;
}

/// What a kind's [`Kind::preflight`] is given besides its rendered parameters.
pub struct NeedCx<'a> {
    pub step_id: &'a str,
    /// The step's parameters before rendering (a password's template).
    pub params: &'a Node,
    pub env: &'a Environment,
    /// Whether a check the step makes may be judged now (is the app healthy?): not when a
    /// resumed run has already changed things elsewhere, which may be why it is not.
    pub judge: bool,
}

/// What a runbook's steps need, gathered in step order.
pub struct Needs {
    list: indexmap::IndexMap<(Stage, String), Box<dyn Need>>,
    /// Steps whose value preflight reads before the run, by step id: what it reads (an SSM
    /// parameter's name). A later step's login may take its password from one.
    pub readable: HashMap<String, String>,
    /// Checks that cannot be made: a name only the run knows.
    skipped: Vec<Check>,
    is_known: &'static (dyn Fn(&str) -> bool + Send + Sync),
}

impl Needs {
    /// `is_known`: whether a rendered value is known before the run (no placeholder, no mask).
    pub fn new(is_known: &'static (dyn Fn(&str) -> bool + Send + Sync)) -> Needs {
        Needs {
            list: Default::default(),
            readable: HashMap::new(),
            skipped: Vec::new(),
            is_known,
        }
    }

    pub fn add(&mut self, need: Box<dyn Need>) {
        match self.list.entry((need.stage(), need.key())) {
            indexmap::map::Entry::Occupied(mut e) => e.get_mut().merge(need),
            indexmap::map::Entry::Vacant(e) => {
                e.insert(need);
            }
        }
    }

    /// Whether an earlier step already needs this (a write of the parameter a later step
    /// reads).
    pub fn has(&self, stage: Stage, key: &str) -> bool {
        self.list.contains_key(&(stage, key.to_string()))
    }

    /// A check that is not made, and why.
    pub fn skip(&mut self, check: Check) {
        self.skipped.push(check);
    }

    /// Whether a rendered value is known before the run.
    pub fn is_known(&self, value: &str) -> bool {
        (self.is_known)(value)
    }

    /// Whether a rendered name is known before the run; if not, a skipped check says so.
    pub fn known(&mut self, check: &'static str, step_id: &str, value: &str) -> bool {
        if self.is_known(value) {
            return true;
        }
        self.skipped.push(
            Check::new(check, format!("step `{step_id}`"))
                .with(Status::Skip, "skipped: the name is known only at run time"),
        );
        false
    }

    /// The needs in the order they are checked (by stage, then as the steps named them), and
    /// the checks that cannot be made.
    pub fn gathered(self) -> Gathered {
        let mut list: Vec<_> = self.list.into_iter().collect();
        list.sort_by_key(|((stage, _), _)| *stage);
        Gathered {
            needs: list.into_iter().map(|(_, n)| n).collect(),
            readable: self.readable,
            skipped: self.skipped,
        }
    }
}

/// What [`Needs`] gathered, ready to check.
pub struct Gathered {
    pub needs: Vec<Box<dyn Need>>,
    /// See [`Needs::readable`].
    pub readable: HashMap<String, String>,
    pub skipped: Vec<Check>,
}

/// What a [`Need`]'s check can use: a run context (no nested runs), what earlier checks
/// found.
pub struct ProbeCx<'a> {
    pub run: RunCx<'a>,
    /// The template context of the run as known before it (`plan::context`).
    pub context: &'a serde_json::Value,
    /// See [`Needs::readable`].
    pub readable: &'a HashMap<String, String>,
    /// Values read by earlier checks, by what was read; never shown.
    values: Mutex<HashMap<String, String>>,
    /// Hosts whose own check failed.
    unreachable: Mutex<std::collections::HashSet<String>>,
    /// Earlier checks that failed, by what a later one builds on (`aws`: the credentials).
    failed: Mutex<std::collections::HashSet<String>>,
}

impl<'a> ProbeCx<'a> {
    pub fn new(
        run: RunCx<'a>,
        context: &'a serde_json::Value,
        readable: &'a HashMap<String, String>,
    ) -> Self {
        ProbeCx {
            run,
            context,
            readable,
            values: Mutex::default(),
            unreachable: Mutex::default(),
            failed: Mutex::default(),
        }
    }

    /// Keep a value an earlier check read (only to log in with it later).
    pub fn remember(&self, source: &str, value: &str) {
        lock(&self.values).insert(source.to_string(), value.to_string());
    }

    /// The value read from `source`, if a check read it.
    pub fn value(&self, source: &str) -> Option<String> {
        lock(&self.values).get(source).cloned()
    }

    /// An earlier check of `what` failed: the later ones that build on it are skipped
    /// instead of failing again with the same cause.
    pub fn failed(&self, what: &str) {
        lock(&self.failed).insert(what.to_string());
    }

    pub fn has_failed(&self, what: &str) -> bool {
        lock(&self.failed).contains(what)
    }

    pub fn unreachable(&self, host: &str) {
        lock(&self.unreachable).insert(host.to_string());
    }

    /// Why a check through `via` is skipped: that host failed its own check (it is not tried
    /// again, and reported again, for each database or endpoint behind it).
    pub fn behind(&self, via: Option<&str>) -> Option<String> {
        via.filter(|v| lock(&self.unreachable).contains(*v))
            .map(|v| format!("skipped: reached through `{v}`, whose ssh check failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::StepError;

    /// Help is kept apart from the detail, and a detail that looks like help (a remote
    /// command printed `help: …`) stays detail: the operator's help comes from the kind only.
    #[test]
    fn help_is_apart_from_the_detail() {
        let e = StepError::new("cannot reach SSM")
            .with_detail("help: printed by the server")
            .with_help("check the network");
        assert_eq!(e.help.as_deref(), Some("check the network"));
        assert_eq!(e.detail.as_deref(), Some("help: printed by the server"));
        assert_eq!(
            e.detail_and_help().as_deref(),
            Some("help: printed by the server\nhelp: check the network")
        );
        let e = StepError::new("x").with_help("  ").with_detail("\n");
        assert_eq!((e.detail_and_help(), e.help, e.detail), (None, None, None));
    }
}
