//! The runbook and environment file formats (v1): typed, immutable once loaded.
//!
//! These types are the single source of the JSON Schemas in `schemas/`. Steps are kept as
//! their YAML node plus the common fields, because each step kind owns its parameters (the
//! schema of a step is the union of the kinds', in `steps`). A loaded runbook, its steps
//! bound to their kinds, is `catalog::Runbook`.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

use crate::diag::Source;
use crate::load::yaml::Node;

/// The file format version this binary reads.
pub const FORMAT_VERSION: u32 = 1;

/// A runbook file, as written (`runbooks/<name>.yaml`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "runbook v1",
    description = "One operational procedure: inputs and the steps that carry it out."
)]
pub struct RunbookDoc {
    /// Format version; must be 1.
    #[schemars(extend("const" = FORMAT_VERSION))]
    pub version: u32,
    /// Name used on the command line (`runbook run NAME`); the file is `NAME.yaml`.
    pub name: String,
    /// One line: what the runbook does.
    pub summary: String,
    /// Longer explanation (Markdown): why, risks, what is better than the hand-run procedure.
    #[serde(default)]
    pub description: Option<String>,
    /// When it should run: `every N days`, `on suspected compromise`, `after every production
    /// build` or `once per environment` (see [`Schedule`]).
    #[serde(default)]
    pub rotation: Option<String>,
    /// What an attacker could do with the secret this runbook manages.
    #[serde(default)]
    pub impact: Option<String>,
    /// Values the operator supplies (`--input name=value`, or asked for on a terminal).
    #[serde(default)]
    pub inputs: IndexMap<String, InputSpec>,
    /// The steps, run in order.
    #[schemars(length(min = 1))]
    pub steps: Vec<StepDoc>,
    /// Compensation steps, run only when a step with `on_failure: <rollback step id>` fails.
    #[serde(default)]
    pub rollback: Vec<StepDoc>,
}

/// An input of a runbook.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// A secret input has no default (the file would hold the secret) and is text, one value;
// several values are chosen among `choices`; `not_future` is for a `datetime`.
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "secret": { "const": true } }, "required": ["secret"] },
        "then": {
            "not": { "anyOf": [
                patterns::given("default"),
                { "properties": { "multiple": { "const": true } }, "required": ["multiple"] }
            ] },
            "properties": { "type": { "const": "string" } }
        }
    },
    {
        "if": { "properties": { "multiple": { "const": true } }, "required": ["multiple"] },
        "then": {
            "required": ["choices"],
            "properties": {
                "type": { "const": "string" },
                "choices": { "items": { "not": { "anyOf": [
                    { "const": "all" }, { "pattern": "," }, { "pattern": "^\\s|\\s$" }, { "const": "" }
                ] } } }
            }
        }
    },
    {
        "if": { "properties": { "not_future": { "const": true } }, "required": ["not_future"] },
        "then": { "required": ["type"], "properties": { "type": { "const": "datetime" } } }
    }
]))]
pub struct InputSpec {
    /// Shown when the operator is asked for the value.
    pub description: String,
    /// What the value is: `string` (default), `integer`, `boolean` (`true`/`false`) or
    /// `datetime` (RFC 3339: `2026-11-20T14:00:00Z`, or with an offset; seconds may be left
    /// out). Templates see a number, a bool, or the time in UTC as `2026-11-20T14:00:00Z`.
    /// A secret input is a string.
    #[serde(default, rename = "type")]
    pub kind: InputType,
    /// The allowed values; a terminal shows them as a list.
    #[serde(default)]
    pub choices: Option<Vec<String>>,
    /// Several of the `choices` may be given, separated by commas, or `all`
    /// (`--input secrets=db-password,runner-token`); templates see a list in the order of
    /// `choices`, so `'db-password' in inputs.secrets` tells whether one was chosen.
    #[serde(default)]
    pub multiple: bool,
    /// For a `datetime`: the value must not be later than the moment it is given (when an
    /// exposure started, when something was seen).
    #[serde(default)]
    pub not_future: bool,
    /// Used when the operator gives no value (a number or a bool may be written bare:
    /// `default: 3`, `default: false`).
    #[serde(default)]
    #[schemars(extend("type" = ["string", "integer", "boolean", "null"]))]
    pub default: Option<String>,
    /// Asked for with hidden entry and masked everywhere.
    #[serde(default)]
    pub secret: bool,
}

/// The type of an input's value (`type:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Any text (the default).
    #[default]
    String,
    /// A whole number (64-bit), e.g. `3` or `-1`.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An RFC 3339 date and time with `Z` or an offset, e.g. `2026-11-20T14:00:00Z`.
    Datetime,
}

impl InputType {
    /// The name written in a runbook.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Boolean => "boolean",
            InputType::Datetime => "datetime",
        }
    }
}

/// A step as written: common fields plus exactly one step-kind key. Parsed by `load::step`.
#[derive(Debug)]
pub struct StepDoc;

impl<'de> Deserialize<'de> for StepDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| StepDoc)
    }
}

/// Fields every step may have, whatever its kind.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepCommon {
    /// Unique within the runbook; other steps read its outputs as `steps.<id>.<output>`.
    #[schemars(regex(pattern = patterns::ID))]
    pub id: String,
    /// Human title shown in plans and progress.
    #[serde(default)]
    pub title: Option<String>,
    /// A condition (template expression); the step is skipped when it is false.
    #[serde(default)]
    pub when: Option<String>,
    /// A gate: the question asked (default No) before the step runs.
    #[serde(default)]
    pub confirm: Option<String>,
    /// Give up on the step after this long, e.g. `30s`, `5m`.
    #[serde(default)]
    #[schemars(extend("not" = patterns::outside(ranges::TIMEOUT)))]
    pub timeout: Option<Dur>,
    /// Try the step again when it fails.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// What a failure does: `abort` (default), `continue`, or the id of a rollback step.
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
    /// Safe to run again if a crash leaves it unfinished (e.g. a redeploy). Default: what the
    /// step kind says (reads, `ssm.put` with overwrite, `set_password` are; commands are not).
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// The author vouches that the step only reads (an `ssh.exec` command that lists, a
    /// query): plans, preflight, resume and the terminal treat it as read-only, and it may
    /// run again after a crash. Only for a kind whose effect a file cannot show (a command);
    /// a kind that writes by its nature (`ssm.put`, `set_password`) refuses it.
    #[serde(default)]
    pub read_only: bool,
}

/// The names of the common step fields, for telling them apart from step kinds.
pub const COMMON_FIELDS: &[&str] = &[
    "id",
    "title",
    "when",
    "confirm",
    "timeout",
    "retry",
    "on_failure",
    "idempotent",
    "read_only",
];

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total attempts, including the first.
    #[schemars(range(min = ranges::RETRY_ATTEMPTS.0, max = ranges::RETRY_ATTEMPTS.1))]
    pub attempts: u32,
    /// Wait before the second attempt.
    #[serde(default = "Retry::default_delay")]
    #[schemars(extend("not" = patterns::outside(ranges::RETRY_DELAY)))]
    pub delay: Dur,
    /// Multiply the wait by this after each attempt (1 = constant).
    #[serde(default = "Retry::default_backoff")]
    #[schemars(range(min = ranges::BACKOFF.0, max = ranges::BACKOFF.1))]
    pub backoff: f64,
}

impl Retry {
    fn default_delay() -> Dur {
        Dur(Duration::from_secs(1))
    }
    fn default_backoff() -> f64 {
        1.0
    }
}

/// What happens when a step fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailure {
    Abort,
    Continue,
    Rollback(String),
}

impl<'de> Deserialize<'de> for OnFailure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "abort" => OnFailure::Abort,
            "continue" => OnFailure::Continue,
            _ => OnFailure::Rollback(s),
        })
    }
}

impl JsonSchema for OnFailure {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OnFailure".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`abort` (default), `continue`, or the id of a step under `rollback:`",
            "type": "string",
            "pattern": patterns::ID,
            "examples": ["abort", "continue", "restore_old_password"]
        })
    }
}

/// A duration written like `30s`, `5m`, `1h30m`, `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration like `30s`")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Dur, D::Error> {
                let s = String::deserialize(d)?;
                parse_duration(&s)
                    .map(Dur)
                    .map_err(serde::de::Error::custom)
            }
        }
        // Named, so that the loader reports its errors as `runbook::bad-duration`.
        d.deserialize_newtype_struct(crate::load::yaml::names::DURATION, V)
    }
}

/// The longest duration any field may hold. Past it a wait is a mistake (`1y`,
/// `18446744073709551615s`), and below it no deadline computed from "now" can overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|_| {
        format!("invalid duration `{s}`: write it like `30s`, `5m`, `1h30m` or `250ms`")
    })?;
    if d > MAX_DURATION {
        return Err(format!(
            "invalid duration `{s}`: longer than 7 days, the most any duration here may be"
        ));
    }
    Ok(d)
}

/// The ranges of the format's numbers and durations, checked before anything runs. The
/// names are the fields as written; the ranges are also in the README's reference.
pub mod ranges {
    use std::time::Duration;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// `timeout` of a step.
    pub const TIMEOUT: (Duration, Duration) = (secs(1), secs(24 * 3600));
    /// `retry.attempts`.
    pub const RETRY_ATTEMPTS: (u32, u32) = (1, 100);
    /// `retry.delay`, and the longest wait a backoff may grow to.
    pub const RETRY_DELAY: (Duration, Duration) = (Duration::ZERO, secs(3600));
    /// `retry.backoff`.
    pub const BACKOFF: (f64, f64) = (1.0, 10.0);
    /// An HTTP check's `attempts`.
    pub const HTTP_ATTEMPTS: (u32, u32) = (1, 1000);
    /// An HTTP check's `delay`.
    pub const HTTP_DELAY: (Duration, Duration) = (Duration::ZERO, secs(3600));
    /// An HTTP check's `request_timeout`.
    pub const REQUEST_TIMEOUT: (Duration, Duration) = (Duration::from_millis(10), secs(600));
    /// A remote command's `parallel`.
    pub const PARALLEL: (u32, u32) = (1, 256);
    /// A remote command's `batch`.
    pub const BATCH: (u32, u32) = (1, 10_000);
    /// A remote command's `max_failures`.
    pub const MAX_FAILURES: (u32, u32) = (0, 10_000);
    /// Exit codes a command may be expected to end with.
    pub const EXIT_CODE: (i64, i64) = (0, 255);
    /// `port` of a host or a database.
    pub const PORT: (u16, u16) = (1, 65535);
    /// `connect_timeout` of a host.
    pub const CONNECT_TIMEOUT: (Duration, Duration) = (secs(1), secs(600));
    /// `shared_lock.expires_after`.
    pub const LOCK_EXPIRY: (Duration, Duration) = (secs(60), super::MAX_DURATION);

    /// `Some(help)` when `v` is outside `(min, max)`; the help states the range.
    pub fn outside<T: PartialOrd + Copy>(
        v: T,
        (min, max): (T, T),
        show: impl Fn(T) -> String,
    ) -> Option<String> {
        // `!(..)` so that NaN is outside too.
        (!(min <= v && v <= max))
            .then(|| format!("write a value from {} to {}", show(min), show(max)))
    }

    /// A float as its author would write it: `1e308`, not 309 digits.
    pub fn show_f64(v: f64) -> String {
        if v != 0.0 && !(1e-3..1e6).contains(&v.abs()) {
            format!("{v:e}")
        } else {
            v.to_string()
        }
    }

    /// [`outside`] for durations, shown like `30s`.
    pub fn outside_dur(v: Duration, range: (Duration, Duration)) -> Option<String> {
        outside(v, range, |d| humantime::format_duration(d).to_string())
    }

    /// The problem for a value out of its range, to be placed at the field by the caller.
    pub fn problem(field: &str, shown: &str, help: String) -> crate::diag::Problem {
        crate::diag::Problem::error(
            crate::diag::Code::OutOfRange,
            format!("`{field}: {shown}` is out of range"),
        )
        .label("out of range")
        .help(help)
    }
}

/// What the JSON Schemas say of strings that `check` reads (the editor's share of its rules).
/// Patterns are ECMAScript regular expressions, as JSON Schema and editors read them.
pub mod patterns {
    use std::time::Duration;

    /// A field given a value (not left out, not `null`): what `check` reads as set.
    pub fn given(field: &str) -> serde_json::Value {
        serde_json::json!({
            "required": [field],
            "properties": { field: { "not": { "type": "null" } } }
        })
    }

    /// A step id: an identifier, so templates can read `steps.<id>.<output>`.
    pub const ID: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

    /// The unit names `parse_duration` (humantime) reads, with the most digits a count of each
    /// may have within the 7-day limit. Months and years are left out: one is already over it.
    const UNITS: &[(&str, usize)] = &[
        ("nanos|nsec|ns", 15),
        ("usec|us|µs", 12),
        ("millis|msec|ms", 9),
        ("seconds|second|secs|sec|s", 6),
        ("minutes|minute|mins|min|m", 5),
        ("hours|hour|hrs|hr|h", 3),
        ("days|day|d", 1),
        ("weeks|week|wks|wk|w", 1),
    ];

    /// A duration as `parse_duration` reads it: counts (an optional fraction) and units,
    /// `30s`, `1h 30m`, `1.5h`; a count with more digits than 7 days can hold is refused.
    pub fn duration() -> String {
        let terms: Vec<String> = UNITS
            .iter()
            .map(|(names, digits)| format!(r"[0-9]{{1,{digits}}}(\.[0-9]+)?\s*({names})"))
            .collect();
        format!(r"^\s*(0*({})\s*)+$", terms.join("|"))
    }

    /// A duration outside `(min, max)` as far as a pattern can tell, to put under `not`: zero
    /// when the range starts above it, a count of hours, days or weeks when one is already
    /// over the range's end. (`null`, of an optional field, is not a string, so not outside.)
    pub fn outside(range: (Duration, Duration)) -> serde_json::Value {
        let mut any = Vec::new();
        if range.0 > Duration::ZERO {
            any.push(serde_json::json!({ "pattern": r"^\s*(0+(\.0+)?\s*[A-Za-zµ]+\s*)+$" }));
        }
        let over: String = [('h', 3600), ('d', 86400), ('w', 7 * 86400)]
            .iter()
            .filter(|(_, secs)| Duration::from_secs(*secs) > range.1)
            .map(|(first, _)| *first)
            .collect();
        if !over.is_empty() {
            any.push(serde_json::json!({ "pattern": format!(r"[0-9.]*[1-9][0-9.]*\s*[{over}]") }));
        }
        serde_json::json!({ "type": "string", "anyOf": any })
    }

    /// An `http` or `https` URL with a host (any letter case, as URLs are read), or a template
    /// (`{{ … }}`), which `check` leaves to the run.
    pub const HTTP_URL: &str = r"^([Hh][Tt][Tt][Pp][Ss]?://[^/?#\s@]*@?[^/?#\s@:]+|.*\{\{)";

    /// An HTTP method or header name (a token: RFC 9110's characters), or a template, which
    /// `check` leaves to the run.
    pub const HTTP_TOKEN: &str = r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+|.*\{\{.*)$";
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": patterns::duration(),
            "examples": ["30s", "5m", "1h30m"]
        })
    }
}

/// `runbooks/environments.yaml`, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "runbook environments v1",
    description = "The targets a runbook can run against."
)]
pub struct EnvironmentsDoc {
    /// Format version; must be 1.
    #[schemars(extend("const" = FORMAT_VERSION))]
    pub version: u32,
    pub environments: IndexMap<String, EnvironmentDoc>,
}

/// One environment: where its AWS account, hosts and databases are.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentDoc {
    #[serde(default)]
    pub description: Option<String>,
    /// A protected environment makes the operator type its name before the first change.
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub aws: Option<AwsTarget>,
    /// SSH hosts, by the name steps use (`host: app`).
    #[serde(default)]
    pub hosts: IndexMap<String, HostSpec>,
    /// Host groups, by name: `web: [app, app2]`. `ssh.exec` with `hosts: web` runs on every
    /// member, in this order.
    #[serde(default)]
    pub groups: IndexMap<String, Vec<String>>,
    /// Databases, by the name steps use (`database: main`).
    #[serde(default)]
    pub databases: IndexMap<String, DatabaseSpec>,
    /// Free-form values, available to templates as `env.<name>` (besides `env.name` and,
    /// with `aws:`, `env.aws_region`, which take precedence over a var of the same name).
    #[serde(default)]
    pub vars: IndexMap<String, String>,
    /// Also lock runs in SSM, so two operators on different machines cannot run the same
    /// runbook on this environment at once (the local lock only sees this machine).
    #[serde(default)]
    pub shared_lock: Option<SharedLockSpec>,
    /// An incident or chat webhook (a Slack-style incoming webhook) to tell people about
    /// this environment's rotations: runbooks post to it with `http.request` (templates see
    /// `env.notify`, none when absent), and with `announce: true` every run that changes
    /// something says when it starts and how it ended.
    #[serde(default)]
    pub notify: Option<NotifySpec>,
}

/// Where an environment's notices go. The webhook's URL is its credential (whoever has it can
/// post), so it is not written here: it is read from SSM as a secret when a run needs it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// The SSM parameter (a SecureString) holding the webhook's URL, e.g.
    /// `/musehub/production/NOTIFY_WEBHOOK_URL`. It receives JSON `{"text": "…"}`
    /// (Markdown), as Slack, Mattermost, Rocket.Chat and Google Chat webhooks do.
    #[schemars(regex(pattern = r"^/[^\s]*$"))]
    pub url_parameter: String,
    /// A PEM file of a private CA to trust for the webhook's server, in addition to the
    /// platform's roots (an incident server of your own).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Post "starting <runbook> on <environment>" before a run that changes something, and
    /// how it ended (succeeded, failed, rolled back, declined, interrupted) when it stops. A
    /// failed post is a warning, never a failed run. Default false.
    #[serde(default)]
    pub announce: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedLockSpec {
    /// Where lock parameters live; the lock of a runbook is `<prefix>/<runbook>.<environment>`.
    #[serde(default = "SharedLockSpec::default_prefix")]
    pub parameter_prefix: String,
    /// A lock older than this is stale (its holder crashed) and is taken over.
    #[serde(default = "SharedLockSpec::default_ttl")]
    #[schemars(extend("not" = patterns::outside(ranges::LOCK_EXPIRY)))]
    pub expires_after: Dur,
}

impl SharedLockSpec {
    fn default_prefix() -> String {
        "/runbook/locks".into()
    }
    fn default_ttl() -> Dur {
        Dur(Duration::from_secs(6 * 3600))
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsTarget {
    pub region: String,
    /// A profile of `~/.aws/config`; the standard credential chain when absent.
    #[serde(default)]
    pub profile: Option<String>,
    /// Override the SSM endpoint (e.g. a local test server).
    #[serde(default)]
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host name or address (or an alias of `~/.ssh/config`).
    pub address: String,
    #[serde(default)]
    #[schemars(range(min = ranges::PORT.0, max = ranges::PORT.1))]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    /// Private key file; `~` is expanded.
    #[serde(default)]
    pub key_file: Option<String>,
    /// known_hosts file to check the host key against (default: the user's).
    #[serde(default)]
    pub known_hosts: Option<String>,
    /// `strict` (default): an unknown or changed host key is refused. `accept-new`: trust on first use.
    #[serde(default)]
    pub host_key_checking: HostKeyChecking,
    /// Connect timeout.
    #[serde(default)]
    #[schemars(extend("not" = patterns::outside(ranges::CONNECT_TIMEOUT)))]
    pub connect_timeout: Option<Dur>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyChecking {
    #[default]
    Strict,
    AcceptNew,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// Address of the server as seen from `via` (or from here when `via` is absent).
    #[serde(default = "DatabaseSpec::default_host")]
    pub host: String,
    #[serde(default = "DatabaseSpec::default_port")]
    #[schemars(range(min = ranges::PORT.0, max = ranges::PORT.1))]
    pub port: u16,
    /// Database name.
    pub name: String,
    /// Role to log in as.
    pub user: String,
    /// Reach the server through an SSH local forward from this host of the environment.
    #[serde(default)]
    pub via: Option<String>,
    /// TLS to the server, like libpq's `sslmode` (default `prefer`).
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM file of the CAs to trust for `verify-ca`/`verify-full` (only these; without it,
    /// the platform's roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// An SSM parameter holding the password of `user` (e.g. `/musehub/production/DB_PASSWORD`),
    /// read at run time as a secret by a `psql` step without `password:` (and by preflight).
    /// Without it, such a step finds the password the libpq way: `PGPASSWORD`, the file
    /// `PGPASSFILE` names or `~/.pgpass`, else none (trust or peer auth).
    #[serde(default)]
    pub password_parameter: Option<String>,
}

impl DatabaseSpec {
    fn default_host() -> String {
        "127.0.0.1".into()
    }
    fn default_port() -> u16 {
        5432
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS: for a connection through `via:` (the SSH tunnel encrypts it) or on one machine.
    Disable,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked, so this
    /// protects against passive eavesdropping only (as in libpq).
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (as in libpq).
    Require,
    /// TLS with a certificate signed by a trusted CA (`ca_file`), for whatever host name.
    VerifyCa,
    /// TLS with a certificate signed by a trusted CA and valid for `host` (also through `via:`).
    VerifyFull,
}

/// The template variable of an environment's `aws.region`.
pub const AWS_REGION_VAR: &str = "aws_region";
/// The name templates see an environment's `notify:` section under (`env.notify`); `vars`
/// may not use it.
pub const NOTIFY_VAR: &str = "notify";

/// One environment, with its name.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub doc: EnvironmentDoc,
}

impl Environment {
    /// Template variables `env.*`: the environment's vars plus `name`, and `aws_region` (its
    /// `aws.region`) when it has AWS settings: a CloudTrail command or console link needs it.
    pub fn template_vars(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.clone().into());
        for (k, v) in &self.doc.vars {
            m.insert(k.clone(), v.clone().into());
        }
        if let Some(aws) = &self.doc.aws {
            m.insert(AWS_REGION_VAR.into(), aws.region.clone().into());
        }
        // `env.notify`: none when the environment has no target, so `when: env.notify`
        // branches on it; an absent `ca_file` is empty, which `http.request` reads as none.
        let notify = self
            .doc
            .notify
            .as_ref()
            .map_or(serde_json::Value::Null, |n| {
                serde_json::json!({
                    "url_parameter": n.url_parameter,
                    "ca_file": n.ca_file.clone().unwrap_or_default(),
                    "announce": n.announce,
                })
            });
        m.insert(NOTIFY_VAR.into(), notify);
        m
    }
}

/// The loaded `environments.yaml`.
#[derive(Debug)]
pub struct Environments {
    pub list: Vec<Environment>,
    pub source: Option<Arc<Source>>,
    pub node: Option<Node>,
}

impl Environments {
    pub fn get(&self, name: &str) -> Option<&Environment> {
        self.list.iter().find(|e| e.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|e| e.name.as_str())
    }
}

/// When a runbook should run, as its `rotation:` says: machine-checked, so a date can be
/// computed from it (`every N days`) and a typo is an error at check time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// `every N days` (`every 1 day`): due N days after the last change.
    EveryDays(u32),
    /// `on suspected compromise`: never due by the calendar.
    OnSuspectedCompromise,
    /// `after every production build`: due after each build, not by the calendar.
    AfterEveryProductionBuild,
    /// `once per environment`: a bootstrap, never due again.
    OncePerEnvironment,
}

impl Schedule {
    /// The fixed forms, as written.
    pub const FIXED: [&'static str; 3] = [
        "on suspected compromise",
        "after every production build",
        "once per environment",
    ];
    /// The longest interval `every N days` takes: ten years.
    pub const MAX_DAYS: u32 = 3650;

    /// Read a `rotation:` value (case and runs of spaces do not matter).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["on", "suspected", "compromise"] => Ok(Schedule::OnSuspectedCompromise),
            ["after", "every", "production", "build"] => Ok(Schedule::AfterEveryProductionBuild),
            ["once", "per", "environment"] => Ok(Schedule::OncePerEnvironment),
            ["every", rest @ ..] => match rest {
                [n, "day" | "days"] => n.parse::<u32>().ok(),
                _ => None,
            }
            .filter(|n| (1..=Self::MAX_DAYS).contains(n))
            .map(Schedule::EveryDays)
            .ok_or_else(|| {
                format!(
                    "`every N days` takes a whole number of days from 1 to {}",
                    Self::MAX_DAYS
                )
            }),
            _ => Err("not a schedule this tool knows".to_string()),
        }
    }

    /// Days from the last change to the next due date, for a calendar schedule.
    pub fn days(self) -> Option<u32> {
        match self {
            Schedule::EveryDays(n) => Some(n),
            _ => None,
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::EveryDays(1) => f.write_str("every 1 day"),
            Schedule::EveryDays(n) => write!(f, "every {n} days"),
            Schedule::OnSuspectedCompromise => f.write_str(Self::FIXED[0]),
            Schedule::AfterEveryProductionBuild => f.write_str(Self::FIXED[1]),
            Schedule::OncePerEnvironment => f.write_str(Self::FIXED[2]),
        }
    }
}

#[cfg(test)]
mod schedule_tests {
    use super::Schedule;

    #[test]
    fn schedules_read_and_print_back() {
        for (text, want) in [
            ("every 180 days", Schedule::EveryDays(180)),
            ("Every  1 day", Schedule::EveryDays(1)),
            ("on suspected compromise", Schedule::OnSuspectedCompromise),
            (
                "after every production build",
                Schedule::AfterEveryProductionBuild,
            ),
            ("once per environment", Schedule::OncePerEnvironment),
        ] {
            assert_eq!(Schedule::parse(text), Ok(want), "{text}");
            assert_eq!(Schedule::parse(&want.to_string()), Ok(want));
        }
        assert_eq!(Schedule::EveryDays(90).days(), Some(90));
        assert_eq!(Schedule::OnSuspectedCompromise.days(), None);
        for bad in [
            "every 0 days",
            "every 3651 days",
            "every six months",
            "every 6 months",
            "every -1 days",
            "every days",
            "on compromise",
            "",
            "weekly",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
