//! The parameters of `ssh.exec`, and the hosts they name in an environment (one host, a
//! list, or a group).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::expect::Expect;
use crate::model::patterns::given;
use crate::model::{Environment, ranges};
use crate::one_or_many::OneOrMany;
use crate::steps::kind::StepError;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// `host` or `hosts`, never both; what only several hosts have, only with `hosts`.
#[schemars(extend(
    "oneOf" = [given("host"), given("hosts")],
    "if" = given("host"),
    "then" = { "not": { "anyOf": [given("parallel"), given("max_failures"), given("batch")] } }
))]
pub struct Params {
    /// One host of the environment (`hosts:` in environments.yaml). Give `host` or `hosts`.
    #[serde(default)]
    pub host: Option<String>,
    /// Several hosts: a list of hosts of the environment, or the name of one of its `groups`.
    /// The outputs are then `hosts` (per host: stdout, stderr, exit_code, ok) and `failed`.
    #[serde(default)]
    pub hosts: Option<Targets>,
    /// With `hosts`: how many hosts run the command at the same time (default 1).
    #[serde(default)]
    #[schemars(range(min = ranges::PARALLEL.0, max = ranges::PARALLEL.1))]
    pub parallel: Option<u32>,
    /// With `hosts`: how many hosts may fail with the step still succeeding (default 0). One
    /// more failure stops starting new hosts, lets the running ones finish, and fails the step.
    #[serde(default)]
    #[schemars(range(min = ranges::MAX_FAILURES.0, max = ranges::MAX_FAILURES.1))]
    pub max_failures: Option<u32>,
    /// With `hosts`: a rolling change in batches of this many hosts. A batch starts only when
    /// every host of the previous one finished and the failures are within `max_failures`.
    #[serde(default)]
    #[schemars(range(min = ranges::BATCH.0, max = ranges::BATCH.1))]
    pub batch: Option<u32>,
    /// Run by the remote user's login shell. Never put a secret here: use `env` or `stdin`.
    pub command: String,
    /// Text given to the command on its standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Environment variables for the command, delivered through the SSH channel's input, never
    /// in a command line.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// What the result must look like; the step fails otherwise.
    #[serde(default)]
    pub expect: Expect,
    /// A regular expression: the lines of stdout it matches are what the step found
    /// (`checked 12 layers`), kept as notes on every output and in the run's event log. A
    /// terminal shows them as lines of their own; other output only passes by.
    #[serde(default)]
    pub report: Option<String>,
}

/// The hosts of a multi-host `ssh.exec`: a list of hosts, or a group's name (`One`).
pub type Targets = OneOrMany<String>;

impl Params {
    /// The hosts the step runs on, in order, for `env` (a group resolved, duplicates dropped).
    pub fn targets(&self, env: &Environment) -> Result<Vec<String>, StepError> {
        let list = match (&self.host, &self.hosts) {
            (Some(h), None) => return Ok(vec![h.clone()]),
            (None, Some(Targets::List(l))) => l.clone(),
            (None, Some(Targets::One(g))) => env
                .doc
                .groups
                .get(g)
                .cloned()
                .ok_or_else(|| unknown_group(env, g))?,
            (Some(_), Some(_)) => return Err(StepError::new(BOTH_HOST_AND_HOSTS)),
            (None, None) => return Err(StepError::new(NEITHER_HOST_NOR_HOSTS)),
        };
        let mut seen = std::collections::HashSet::new();
        Ok(list
            .into_iter()
            .filter(|h| seen.insert(h.clone()))
            .collect())
    }

    /// `host`, or `hosts` as written, for plans.
    pub(super) fn target_text(&self) -> String {
        match (&self.host, &self.hosts) {
            (Some(h), _) => h.clone(),
            (None, Some(Targets::One(g))) => format!("group {g}"),
            (None, Some(Targets::List(l))) if l.len() <= 3 => l.join(", "),
            (None, Some(Targets::List(l))) => {
                format!("{} hosts ({}, …)", l.len(), l[..2].join(", "))
            }
            (None, None) => "?".into(),
        }
    }
}

pub(super) const BOTH_HOST_AND_HOSTS: &str = "`host` and `hosts` exclude each other: give one";
pub(super) const NEITHER_HOST_NOR_HOSTS: &str =
    "`ssh.exec` needs `host` (one host) or `hosts` (a list or a group)";

pub(super) fn unknown_group(env: &Environment, group: &str) -> StepError {
    let known: Vec<&str> = env.doc.groups.keys().map(String::as_str).collect();
    let help = crate::diag::did_you_mean(group, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "define it under `environments.{}.groups` in environments.yaml; for one host write `host: {group}` or `hosts: [{group}]`",
            env.name
        )
    });
    StepError::new(format!(
        "environment `{}` has no host group `{group}`",
        env.name
    ))
    .with_help(help)
}
