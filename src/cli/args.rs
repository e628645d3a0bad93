//! The command line as clap reads it: `Cli`, its subcommands and their flags, and the help
//! texts, from which `--help`, the completions and the man page are all made.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum, ValueHint};
use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter};

use super::complete;
use crate::session;

pub(super) const AFTER_HELP: &str = "\
Examples:
  runbook list
  runbook plan db-password --env staging
  runbook preflight db-password --env staging   # read-only checks before a run
  runbook status --all-envs          # what is due or overdue, everywhere (exit 1: overdue)
  runbook run db-password --env sandbox
  runbook run db-password --env staging --env production   # one after another
  runbook run image-audit --env production --yes --confirm-env production   # unattended, e.g. CI
  runbook resume                     # continue the latest unfinished run where it stopped
  runbook check                      # validate every runbook (CI, editors)

Exit codes:
  0    done
  1    a step failed (after its rollback, if any), or the run journal could not be written;
       `status`: a parameter is overdue, or SSM could not be read
  2    invalid runbook, environment or input; nothing ran
  3    declined by the operator at a gate; nothing after it ran
  130  interrupted (Ctrl-C)
  With several --env, the code of the first environment that did not end done.";

const PLAN_HELP: &str = "\
Examples:
  runbook plan db-password --env staging
  runbook plan db-password --env production --format md   # for a pull-request comment
  runbook plan db-password --env staging --output json";

const STATUS_HELP: &str = "\
Examples:
  runbook status --env production
  runbook status --all-envs                # exit 1 when a parameter is overdue (cron, CI)
  runbook status --all-envs --output json
  runbook status --env production --at 2027-03-01   # what will be overdue by then

States: overdue, due soon (within 14 days, or half the interval when shorter), ok,
not scheduled (no `every N days` among the runbooks that write it), never set (not in SSM).

Exit codes:
  0    nothing overdue
  1    a parameter is overdue, or an environment's SSM could not be read
  2    invalid environment or runbooks directory";

const RUN_HELP: &str = "\
Examples:
  runbook run db-password --env sandbox
  runbook run db-password --env staging --dry-run         # the plan; nothing runs
  runbook run db-password --env production --yes --confirm-env production --output json
  RUNBOOK_INPUT_TOKEN=... runbook run NAME --env staging  # a secret input, not in argv
  runbook run db-password --env staging --env production  # one after another
  runbook run db-password --env sandbox --step            # ask before every step
  runbook run db-password --env sandbox --from alter_role # refused: it reads earlier outputs
  runbook run NAME --env staging --only verify,notify     # just these steps";

#[derive(Parser, Debug)]
#[command(name = "runbook", version, about = "Run operational runbooks written as versioned YAML", after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Directory holding the runbooks and environments.yaml.
    // The environment's value is not shown: an unset variable would read `RUNBOOK_DIR=`.
    #[arg(long, global = true, default_value = "runbooks", env = "RUNBOOK_DIR", hide_env_values = true, value_hint = ValueHint::DirPath)]
    pub dir: PathBuf,
    /// When to use colour (NO_COLOR is honoured by `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Where run journals are kept (default: $XDG_STATE_HOME/runbook).
    #[arg(long, global = true, env = "RUNBOOK_STATE_DIR", hide_env_values = true, value_hint = ValueHint::DirPath)]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Human,
    Json,
}

/// How `plan` shows the plan to a person (`--output json` is for programs).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    /// For a terminal.
    Text,
    /// Markdown, for a pull-request comment.
    Md,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    Human,
    Json,
    Github,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemaName {
    Runbook,
    Environments,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// List the runbooks: name, summary, rotation, impact.
    List {
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Show one runbook: its inputs and steps.
    Show {
        #[arg(add = ArgValueCandidates::new(complete::runbook_names))]
        name: String,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Show what a run would do, every step rendered, secrets masked. No network, no change.
    #[command(after_help = PLAN_HELP)]
    Plan {
        #[arg(add = ArgValueCandidates::new(complete::runbook_names))]
        name: String,
        /// The environment (from environments.yaml). Repeatable: each environment's plan, in
        /// the order given.
        #[arg(long, add = ArgValueCandidates::new(complete::environment_names))]
        env: Vec<String>,
        /// An input value, `name=value` (repeatable).
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE", add = ArgValueCompleter::new(complete::inputs))]
        inputs: Vec<String>,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
        /// How to show it to a person: `text`, or `md` for a pull-request comment.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text, conflicts_with = "output")]
        format: PlanFormat,
    },
    /// Check, read-only, that a run would find what it needs: AWS credentials and SSM
    /// parameters, SSH hosts, database logins, HTTP endpoints. Exit 1 when a check fails.
    Preflight {
        #[arg(add = ArgValueCandidates::new(complete::runbook_names))]
        name: String,
        /// The environment (from environments.yaml). Repeatable: each environment is checked,
        /// in the order given; exit 1 when a check of any fails.
        #[arg(long, add = ArgValueCandidates::new(complete::environment_names))]
        env: Vec<String>,
        /// An input value, `name=value` (repeatable).
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE", add = ArgValueCompleter::new(complete::inputs))]
        inputs: Vec<String>,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// The SSM parameters the runbooks write: last change, last run, schedule, due date.
    /// Read-only. Exit 1 when one is overdue (for cron or a scheduled CI job).
    #[command(after_help = STATUS_HELP)]
    Status {
        /// The environment (from environments.yaml).
        #[arg(long, conflicts_with = "all_envs", add = ArgValueCandidates::new(complete::environment_names))]
        env: Option<String>,
        /// Every environment of environments.yaml (those with `aws:` settings).
        #[arg(long)]
        all_envs: bool,
        /// Judge the states as of this time instead of now (RFC 3339, or a date `2027-03-01`,
        /// UTC; not in the past): what will be overdue by then.
        #[arg(long, value_name = "TIME", value_parser = parse_at)]
        at: Option<std::time::SystemTime>,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Run a runbook against an environment.
    #[command(after_help = RUN_HELP)]
    Run {
        #[arg(add = ArgValueCandidates::new(complete::runbook_names))]
        name: String,
        /// The environment (from environments.yaml); asked for on a terminal when absent.
        /// Repeatable: `--env staging --env production` runs them one after another, each a
        /// run of its own; the next begins only when the previous one is done, and the first
        /// that fails, is declined or interrupted stops the rest.
        #[arg(long, add = ArgValueCandidates::new(complete::environment_names))]
        env: Vec<String>,
        /// An input value, `name=value` (repeatable). Not for secret inputs (refused): type
        /// them at the prompt or pass RUNBOOK_INPUT_<NAME>; command lines are visible to others.
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE", add = ArgValueCompleter::new(complete::inputs))]
        inputs: Vec<String>,
        /// Approve every gate without asking (needed to run gated steps without a terminal).
        /// On a protected environment only with --confirm-env.
        #[arg(long, short = 'y')]
        yes: bool,
        /// A protected environment's name, instead of typing it at the first gate (needed with
        /// --yes there). Must equal the environment's name; with several --env, repeat it for
        /// each protected one.
        #[arg(long, value_name = "ENV", add = ArgValueCandidates::new(complete::environment_names))]
        confirm_env: Vec<String>,
        /// Show the plan and stop (same as `runbook plan`). It shows the whole runbook, so it
        /// does not take --from or --only: it cannot say whether a selection would run.
        #[arg(long, conflicts_with_all = ["from", "only"])]
        dry_run: bool,
        /// Ask before every step: y runs it, n stops the run, c runs the rest without asking.
        /// Needs a terminal.
        #[arg(long)]
        step: bool,
        /// Start at this step; earlier steps do not run. Refused when a step that runs reads
        /// an output of one that does not.
        #[arg(long, value_name = "STEP", conflicts_with = "only", add = ArgValueCandidates::new(complete::step_ids))]
        from: Option<String>,
        /// Run only these steps (a comma list, or repeat the flag), in runbook order; refused
        /// like --from when one reads an output of a step that does not run.
        #[arg(long, value_name = "STEP", value_delimiter = ',', add = ArgValueCandidates::new(complete::step_ids))]
        only: Vec<String>,
        /// Start without first checking, read-only, that the run can finish (credentials,
        /// parameters, hosts, logins, endpoints, the app's health). Recorded in the audit log.
        #[arg(long)]
        no_preflight: bool,
        /// Abandon the unfinished runs on this environment of this runbook, or of one that
        /// writes an SSM parameter this one writes (erasing the secrets their journals hold;
        /// recorded), and start a new one. Without it such a run is refused.
        #[arg(long)]
        new: bool,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Continue a run that stopped (failure, Ctrl-C, crash) at its first unfinished step.
    Resume {
        /// The run (default: the latest unfinished one).
        #[arg(add = ArgValueCandidates::new(complete::run_ids))]
        run_id: Option<String>,
        /// Resume even though the runbook changed since the run began (recorded).
        #[arg(long)]
        force: bool,
        /// For a step that was running when the run died and is not safe to repeat blindly.
        #[arg(long, value_enum)]
        in_flight: Option<InFlightChoice>,
        /// Ask before every step (as `run --step`).
        #[arg(long)]
        step: bool,
        /// Approve every gate without asking (as `run --yes`).
        #[arg(long, short = 'y')]
        yes: bool,
        /// A protected environment's name (as `run --confirm-env`).
        #[arg(long, value_name = "ENV", add = ArgValueCandidates::new(complete::environment_names))]
        confirm_env: Option<String>,
        /// Go on without first checking that the rest of the run can finish (as
        /// `run --no-preflight`; recorded).
        #[arg(long)]
        no_preflight: bool,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// List runs: id, runbook, environment, status, start, operator.
    Runs {
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Give up an unfinished run: it can no longer be resumed and its secrets are erased.
    Abandon {
        #[arg(add = ArgValueCandidates::new(complete::run_ids))]
        run_id: String,
    },
    /// Validate runbooks and environments; every problem with file:line:col. Exit 2 on errors.
    Check {
        /// Files or directories (default: the runbooks directory).
        #[arg(value_hint = ValueHint::AnyPath)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
        /// `--output json` is `--format json`: the flag every command takes for programs.
        #[arg(long, value_enum, conflicts_with = "format")]
        output: Option<Output>,
    },
    /// Render a runbook as Markdown a person can follow by hand (no secret values in it).
    Docs {
        #[arg(add = ArgValueCandidates::new(complete::runbook_names))]
        name: String,
        /// Fill in this environment's hosts and vars (default: placeholders).
        #[arg(long, add = ArgValueCandidates::new(complete::environment_names))]
        env: Option<String>,
    },
    /// Print a JSON Schema (for editors: yaml-language-server).
    Schema {
        #[arg(value_enum, default_value_t = SchemaName::Runbook)]
        which: SchemaName,
    },
    /// Print a shell completion script (bash: `source <(runbook completions bash)`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (read it with `runbook man | man -l -`).
    Man,
}

/// `--at`: an RFC 3339 time, or a date (its midnight, UTC).
fn parse_at(s: &str) -> Result<std::time::SystemTime, String> {
    use crate::inputs::typed::Datetime;
    let s = s.trim();
    // A date alone means the whole of that day: what is overdue by its end.
    let full = if s.len() == 10 {
        format!("{s}T23:59:59Z")
    } else {
        s.to_string()
    };
    Datetime::parse(&full)
        .map(Datetime::to_system)
        .map_err(|e| {
            let why = match e {
                crate::inputs::typed::NotDatetime::NoZone => "it has no time zone",
                crate::inputs::typed::NotDatetime::OutOfRange => "it is not a real date and time",
                _ => "it is not one",
            };
            format!("expected an RFC 3339 time (2027-03-01T09:00Z, 2027-03-01T10:00+01:00) or a date (2027-03-01): {why}")
        })
}

/// How `resume` treats a step that was running when the run died.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InFlightChoice {
    /// Run it again.
    Rerun,
    /// It took effect (checked by hand): go on after it.
    Done,
}

impl From<InFlightChoice> for session::InFlight {
    fn from(c: InFlightChoice) -> Self {
        match c {
            InFlightChoice::Rerun => session::InFlight::Rerun,
            InFlightChoice::Done => session::InFlight::Done,
        }
    }
}
