//! The command line: parses arguments, picks terminal or plain output, and turns outcomes into
//! the documented exit codes. Only this module prints diagnostics or decides colour and TTY.

pub mod completions;
mod list_json;
pub mod out;
mod preflight;
pub mod prompt;
mod runs;
pub mod ui;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use indexmap::IndexMap;

use crate::diag::{self, Problem};
use crate::display::{visible, visible_line};
use crate::engine::InputValue;
use crate::load::{self, Catalog};
use crate::model::{Environment, Runbook};
use crate::steps::Prompter;
use crate::{plan, schema};

/// Exit codes, as documented in `--help` and the README.
pub mod exit {
    pub const DONE: i32 = 0;
    pub const STEP_FAILED: i32 = 1;
    pub const INVALID: i32 = 2;
    pub const DECLINED: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
    /// A bug of runbook (a panic): one line on stderr, nothing else.
    pub const INTERNAL: i32 = 101;
}

const AFTER_HELP: &str = "\
Examples:
  runbook list
  runbook plan db-password --env staging
  runbook preflight db-password --env staging   # read-only checks before a run
  runbook run db-password --env sandbox
  runbook run image-audit --env production --yes --confirm-env production   # unattended, e.g. CI
  runbook resume                     # continue the latest unfinished run where it stopped
  runbook check                      # validate every runbook (CI, editors)

Exit codes:
  0    done
  1    a step failed (after its rollback, if any), or the run journal could not be written
  2    invalid runbook, environment or input; nothing ran
  3    declined by the operator at a gate; nothing after it ran
  130  interrupted (Ctrl-C)";

const PLAN_HELP: &str = "\
Examples:
  runbook plan db-password --env staging
  runbook plan db-password --env production --format md   # for a pull-request comment
  runbook plan db-password --env staging --output json";

const RUN_HELP: &str = "\
Examples:
  runbook run db-password --env sandbox
  runbook run db-password --env staging --dry-run         # the plan; nothing runs
  runbook run db-password --env production --yes --confirm-env production --output json
  RUNBOOK_INPUT_TOKEN=... runbook run NAME --env staging  # a secret input, not in argv
  runbook run db-password --env sandbox --step            # ask before every step
  runbook run db-password --env sandbox --from alter_role # refused: it reads earlier outputs
  runbook run NAME --env staging --only verify,notify     # just these steps";

#[derive(Parser, Debug)]
#[command(name = "runbook", version, about = "Run operational runbooks written as versioned YAML", after_help = AFTER_HELP)]
pub struct Cli {
    /// Directory holding the runbooks and environments.yaml.
    #[arg(long, global = true, default_value = "runbooks", env = "RUNBOOK_DIR")]
    pub dir: PathBuf,
    /// When to use colour (NO_COLOR is honoured by `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Where run journals are kept (default: $XDG_STATE_HOME/runbook).
    #[arg(long, global = true, env = "RUNBOOK_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

/// How `plan` shows the plan to a person (`--output json` is for programs).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For a terminal.
    Text,
    /// Markdown, for a pull-request comment.
    Md,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Human,
    Json,
    Github,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemaName {
    Runbook,
    Environments,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the runbooks: name, summary, rotation, impact.
    List {
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Show one runbook: its inputs and steps.
    Show { name: String },
    /// Show what a run would do, every step rendered, secrets masked. No network, no change.
    #[command(after_help = PLAN_HELP)]
    Plan {
        name: String,
        /// The environment (from environments.yaml).
        #[arg(long)]
        env: Option<String>,
        /// An input value, `name=value` (repeatable).
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
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
        name: String,
        /// The environment (from environments.yaml).
        #[arg(long)]
        env: Option<String>,
        /// An input value, `name=value` (repeatable).
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
        inputs: Vec<String>,
    },
    /// Run a runbook against an environment.
    #[command(after_help = RUN_HELP)]
    Run {
        name: String,
        /// The environment (from environments.yaml); asked for on a terminal when absent.
        #[arg(long)]
        env: Option<String>,
        /// An input value, `name=value` (repeatable). Not for secret inputs (refused): type
        /// them at the prompt or pass RUNBOOK_INPUT_<NAME>; command lines are visible to others.
        #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// Approve every gate without asking (needed to run gated steps without a terminal).
        /// On a protected environment only with --confirm-env.
        #[arg(long, short = 'y')]
        yes: bool,
        /// A protected environment's name, instead of typing it at the first gate (needed with
        /// --yes there). Must equal the environment's name.
        #[arg(long, value_name = "ENV")]
        confirm_env: Option<String>,
        /// Show the plan and stop (same as `runbook plan`).
        #[arg(long)]
        dry_run: bool,
        /// Ask before every step: y runs it, n stops the run, c runs the rest without asking.
        /// Needs a terminal.
        #[arg(long)]
        step: bool,
        /// Start at this step; earlier steps do not run. Refused when a step that runs reads
        /// an output of one that does not.
        #[arg(long, value_name = "STEP", conflicts_with = "only")]
        from: Option<String>,
        /// Run only these steps (a comma list, or repeat the flag), in runbook order; refused
        /// like --from when one reads an output of a step that does not run.
        #[arg(long, value_name = "STEP", value_delimiter = ',')]
        only: Vec<String>,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Continue a run that stopped (failure, Ctrl-C, crash) at its first unfinished step.
    Resume {
        /// The run (default: the latest unfinished one).
        run_id: Option<String>,
        /// Resume even though the runbook changed since the run began (recorded).
        #[arg(long)]
        force: bool,
        /// For a step that was running when the run died and is not safe to repeat blindly.
        #[arg(long, value_enum)]
        in_flight: Option<runs::InFlightChoice>,
        /// Ask before every step (as `run --step`).
        #[arg(long)]
        step: bool,
        /// Approve every gate without asking (as `run --yes`).
        #[arg(long, short = 'y')]
        yes: bool,
        /// A protected environment's name (as `run --confirm-env`).
        #[arg(long, value_name = "ENV")]
        confirm_env: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// List runs: id, runbook, environment, status, start, operator.
    Runs {
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
    },
    /// Give up an unfinished run: it can no longer be resumed and its secrets are erased.
    Abandon { run_id: String },
    /// Validate runbooks and environments; every problem with file:line:col. Exit 2 on errors.
    Check {
        /// Files or directories (default: the runbooks directory).
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
        /// `--output json` is `--format json`: the flag every command takes for programs.
        #[arg(long, value_enum, conflicts_with = "format")]
        output: Option<Output>,
    },
    /// Render a runbook as Markdown a person can follow by hand (no secret values in it).
    Docs {
        name: String,
        /// Fill in this environment's hosts and vars (default: placeholders).
        #[arg(long)]
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

/// Parse arguments, run the command, return the exit code ([`exit::INTERNAL`] on a panic).
pub fn main() -> i32 {
    out::install_panic_hook();
    std::panic::catch_unwind(command).unwrap_or(exit::INTERNAL)
}

fn command() -> i32 {
    // The panic hook's test: a debug build panics on request, with a canary in the payload.
    if cfg!(debug_assertions) && std::env::var_os("RUNBOOK_DEBUG_PANIC").is_some() {
        panic!("canary-payload-must-not-be-printed");
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::INVALID
            } else {
                exit::DONE
            };
        }
    };
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal()
        }
    };
    console::set_colors_enabled(color);
    console::set_colors_enabled_stderr(color);
    let cx = Ctx {
        dir: cli.dir.clone(),
        color,
        state_dir: cli.state_dir.clone(),
    };
    match cli.command {
        Command::List { output } => cx.list(output),
        Command::Show { name } => cx.show(&name),
        Command::Plan {
            name,
            env,
            inputs,
            output,
            format,
        } => cx.plan(&name, env.as_deref(), &inputs, output, format),
        Command::Preflight { name, env, inputs } => cx.preflight(&name, env.as_deref(), &inputs),
        Command::Run {
            name,
            env,
            inputs,
            yes,
            confirm_env,
            dry_run,
            step,
            from,
            only,
            output,
        } => {
            if dry_run {
                return cx.plan(&name, env.as_deref(), &inputs, output, PlanFormat::Text);
            }
            let asking = runs::Asking {
                yes,
                confirm_env: confirm_env.as_deref(),
                step,
            };
            cx.run(
                &name,
                env.as_deref(),
                &inputs,
                &asking,
                &runs::Selection { from, only },
                output,
            )
        }
        Command::Resume {
            run_id,
            force,
            in_flight,
            step,
            yes,
            confirm_env,
            output,
        } => cx.resume(
            run_id.as_deref(),
            force,
            in_flight,
            &runs::Asking {
                yes,
                confirm_env: confirm_env.as_deref(),
                step,
            },
            output,
        ),
        Command::Runs { output } => cx.runs(output),
        Command::Abandon { run_id } => cx.abandon(&run_id),
        Command::Check {
            paths,
            format,
            output,
        } => match output {
            Some(Output::Json) => cx.check(&paths, CheckFormat::Json),
            _ => cx.check(&paths, format),
        },
        Command::Docs { name, env } => cx.docs(&name, env.as_deref()),
        Command::Schema { which } => {
            let s = match which {
                SchemaName::Runbook => schema::runbook(),
                SchemaName::Environments => schema::environments(),
            };
            print!("{s}");
            exit::DONE
        }
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => completions::man(),
    }
}

struct Ctx {
    dir: PathBuf,
    color: bool,
    state_dir: Option<PathBuf>,
}

impl Ctx {
    fn report(&self, problems: &[Problem]) {
        let width = console::Term::stderr()
            .size_checked()
            .map_or(100, |(_, w)| usize::from(w).clamp(60, 120));
        eprint!("{}", diag::render(problems, self.color, width));
    }

    /// Load the catalog; print its errors and return None when the wanted runbook is unusable.
    fn catalog(&self) -> Result<Catalog, i32> {
        load::load_dir(&self.dir).map_err(|p| {
            self.report(&[p]);
            exit::INVALID
        })
    }

    /// The runbook `name`, or a diagnostic (its own problems, or "no such runbook").
    fn runbook<'a>(&self, catalog: &'a Catalog, name: &str) -> Result<&'a Runbook, i32> {
        // Checks across runbooks (a `runbook.run` cycle, an unknown nested runbook) find
        // errors in a runbook that loaded: it is as invalid as one that did not.
        if let Some(rb) = catalog.find(name) {
            let errors: Vec<Problem> = catalog
                .problems
                .iter()
                .filter(|p| p.is_error() && same_file(p, &rb.source.path))
                .cloned()
                .collect();
            if !errors.is_empty() {
                self.report(&errors);
                eprintln!("runbook `{}` is invalid; nothing ran.", visible_line(name));
                return Err(exit::INVALID);
            }
            let warnings: Vec<Problem> = catalog
                .problems
                .iter()
                .filter(|p| !p.is_error() && same_file(p, &rb.source.path))
                .cloned()
                .collect();
            self.report(&warnings);
            return Ok(rb);
        }
        // The file may exist but be invalid: show its problems.
        let file = catalog.dir.join(format!("{name}.yaml"));
        let own: Vec<Problem> = catalog
            .problems
            .iter()
            .filter(|p| same_file(p, &file))
            .cloned()
            .collect();
        if !own.is_empty() {
            self.report(&own);
            eprintln!("runbook `{name}` is invalid; nothing ran.");
            return Err(exit::INVALID);
        }
        let names: Vec<&str> = catalog.runbooks.iter().map(Runbook::name).collect();
        let mut p = Problem::error(
            "runbook::no-such-runbook",
            format!("no runbook named `{name}` in {}", self.dir.display()),
        );
        p.help = Some(
            diag::did_you_mean(name, names.iter().copied()).unwrap_or_else(|| {
                if names.is_empty() {
                    "this directory has no runbooks".into()
                } else {
                    format!("runbooks: {}", names.join(", "))
                }
            }),
        );
        self.report(&[p]);
        Err(exit::INVALID)
    }

    fn environment<'a>(
        &self,
        catalog: &'a Catalog,
        name: Option<&str>,
        interactive: bool,
    ) -> Result<&'a Environment, i32> {
        let envs = &catalog.environments;
        let env_problems: Vec<Problem> = catalog
            .problems
            .iter()
            .filter(|p| p.is_error() && same_file(p, &catalog.dir.join(load::ENVIRONMENTS_FILE)))
            .cloned()
            .collect();
        if !env_problems.is_empty() {
            self.report(&env_problems);
            return Err(exit::INVALID);
        }
        let names: Vec<&str> = envs.names().collect();
        let name = match name {
            Some(n) => n.to_string(),
            None if names.len() == 1 => names[0].to_string(),
            None if interactive && !names.is_empty() => {
                let choices: Vec<String> = names.iter().map(|s| s.to_string()).collect();
                match prompt::TerminalPrompter::new().ask(
                    "Environment",
                    Some(&choices),
                    None,
                    false,
                ) {
                    Ok(n) => n,
                    Err(_) => return Err(exit::INTERRUPTED),
                }
            }
            None => {
                let p =
                    Problem::error("runbook::missing-env", "no environment given").help(format!(
                        "pass --env with one of: {}",
                        if names.is_empty() {
                            "none defined".into()
                        } else {
                            names.join(", ")
                        }
                    ));
                self.report(&[p]);
                return Err(exit::INVALID);
            }
        };
        envs.get(&name).ok_or_else(|| {
            let mut p = Problem::error("runbook::unknown-env", format!("no environment `{name}`"));
            p.help = Some(
                diag::did_you_mean(&name, names.iter().copied()).unwrap_or_else(|| {
                    format!(
                        "environments in {}: {}",
                        load::ENVIRONMENTS_FILE,
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    )
                }),
            );
            self.report(&[p]);
            exit::INVALID
        })
    }

    fn list(&self, output: Output) -> i32 {
        let catalog = match self.catalog() {
            Ok(c) => c,
            Err(code) => return code,
        };
        if output == Output::Json {
            return list_json::print(&catalog);
        }
        let w = catalog
            .runbooks
            .iter()
            .map(|r| r.name().len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:w$}  {:<16}  {:<28}  SUMMARY",
            "NAME", "ROTATION", "IMPACT"
        );
        for rb in &catalog.runbooks {
            let d = &rb.doc;
            println!(
                "{:w$}  {:<16}  {:<28}  {}",
                visible_line(&d.name),
                visible_line(d.rotation.as_deref().unwrap_or("-")),
                visible_line(d.impact.as_deref().unwrap_or("-")),
                visible_line(&d.summary)
            );
        }
        let errors = catalog.problems.iter().filter(|p| p.is_error()).count();
        if errors > 0 {
            eprintln!(
                "\n{errors} problem(s) in {}: run `runbook check` to see them.",
                self.dir.display()
            );
        }
        exit::DONE
    }

    fn show(&self, name: &str) -> i32 {
        let catalog = match self.catalog() {
            Ok(c) => c,
            Err(code) => return code,
        };
        let rb = match self.runbook(&catalog, name) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let d = &rb.doc;
        println!("{} — {}", visible_line(&d.name), visible_line(&d.summary));
        if let Some(r) = &d.rotation {
            println!("rotation: {}", visible_line(r));
        }
        if let Some(i) = &d.impact {
            println!("impact:   {}", visible_line(i));
        }
        println!(
            "file:     {}",
            visible_line(&diag::display_path(&rb.source.path))
        );
        if let Some(desc) = &d.description {
            println!();
            print!("{}", prompt::render_markdown(desc));
        }
        if !d.inputs.is_empty() {
            println!("\ninputs:");
            for (n, i) in &d.inputs {
                let mut extra = Vec::new();
                if let Some(c) = &i.choices {
                    extra.push(format!("one of {}", visible_line(&c.join("|"))));
                }
                if let Some(def) = &i.default {
                    extra.push(format!("default {}", visible_line(def)));
                }
                if i.secret {
                    extra.push("secret".into());
                }
                let extra = if extra.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", extra.join(", "))
                };
                println!(
                    "  {}: {}{extra}",
                    visible_line(n),
                    visible_line(&i.description)
                );
            }
        }
        for (label, list) in [("steps", &rb.steps), ("rollback", &rb.rollback)] {
            if list.is_empty() {
                continue;
            }
            println!("\n{label}:");
            for (i, s) in list.iter().enumerate() {
                let gate = if s.common.confirm.is_some() {
                    "  [gate]"
                } else {
                    ""
                };
                let title = s
                    .common
                    .title
                    .as_deref()
                    .map(|t| format!(" — {}", visible_line(t)))
                    .unwrap_or_default();
                println!(
                    "  {:>2}. {} [{}]{title}{gate}",
                    i + 1,
                    visible_line(s.id()),
                    s.kind.name()
                );
            }
        }
        exit::DONE
    }

    fn docs(&self, name: &str, env: Option<&str>) -> i32 {
        let catalog = match self.catalog() {
            Ok(c) => c,
            Err(code) => return code,
        };
        let rb = match self.runbook(&catalog, name) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let env = match env.map(|e| self.environment(&catalog, Some(e), false)) {
            Some(Ok(e)) => Some(e),
            Some(Err(code)) => return code,
            None => None,
        };
        // The page is ours, its values are not: none may reach the terminal (or the file it
        // is saved to) as a control character.
        println!("{}", visible(&crate::docs::render(rb, env)));
        exit::DONE
    }

    /// The inputs known without asking: `--input`, `RUNBOOK_INPUT_<NAME>`, defaults.
    /// What `plan` and `preflight` start from: the runbook, the environment, and the inputs
    /// known without asking (those not given stay unknown: shown as such, and checks that need
    /// them are skipped).
    fn offline_target<'c>(
        &self,
        catalog: &'c Catalog,
        name: &str,
        env: Option<&str>,
        inputs: &[String],
    ) -> Result<(&'c Runbook, &'c Environment, IndexMap<String, InputValue>), i32> {
        let rb = self.runbook(catalog, name)?;
        let env = self.environment(catalog, env, false)?;
        Ok((rb, env, self.known_inputs(rb, inputs)?))
    }

    fn known_inputs(
        &self,
        rb: &Runbook,
        inputs: &[String],
    ) -> Result<IndexMap<String, InputValue>, i32> {
        let given = parse_inputs(rb, inputs).map_err(|p| {
            self.report(&[p]);
            exit::INVALID
        })?;
        let mut values = IndexMap::new();
        for (name, spec) in &rb.doc.inputs {
            let known = given
                .get(name)
                .cloned()
                .or_else(|| input_from_env(name))
                .or_else(|| spec.default.clone());
            if let Some(value) = known {
                values.insert(
                    name.clone(),
                    InputValue {
                        value,
                        secret: spec.secret,
                    },
                );
            }
        }
        Ok(values)
    }

    fn plan(
        &self,
        name: &str,
        env: Option<&str>,
        inputs: &[String],
        output: Output,
        format: PlanFormat,
    ) -> i32 {
        let catalog = match self.catalog() {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (rb, env, values) = match self.offline_target(&catalog, name, env, inputs) {
            Ok(t) => t,
            Err(code) => return code,
        };
        let plan = plan::plan(rb, env, &values);
        match (output, format) {
            (Output::Human, PlanFormat::Text) => print!("{}", plan.render_text()),
            (Output::Human, PlanFormat::Md) => print!("{}", plan.render_markdown()),
            (Output::Json, _) => println!(
                "{}",
                serde_json::to_string_pretty(&plan).unwrap_or_default()
            ),
        }
        exit::DONE
    }

    fn check(&self, paths: &[PathBuf], format: CheckFormat) -> i32 {
        let paths = if paths.is_empty() {
            vec![self.dir.clone()]
        } else {
            paths.to_vec()
        };
        let mut problems = Vec::new();
        let mut files = 0usize;
        for path in &paths {
            if path.is_dir() {
                match load::load_dir(path) {
                    Ok(c) => {
                        files += c.runbooks.len() + usize::from(c.environments.source.is_some());
                        // Count the invalid runbooks too.
                        files += count_invalid(&c);
                        problems.extend(c.problems);
                    }
                    Err(p) => problems.push(p),
                }
            } else {
                files += 1;
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if path
                    .file_name()
                    .is_some_and(|n| n == load::ENVIRONMENTS_FILE)
                {
                    load::load_environments_in(dir, &mut problems);
                } else {
                    let envs = load::load_environments_in(dir, &mut problems);
                    // The runbooks a `runbook.run` step names are its neighbours.
                    if let Some(rb) = load::load_runbook_file(path, &envs, &mut problems)
                        && let Ok(library) = load::load_dir(dir)
                    {
                        crate::check::nested_runbooks(&[&rb], &library.runbooks, &mut problems);
                    }
                }
            }
        }
        // In file order, so the output reads top to bottom.
        problems.sort_by_key(|p| {
            (
                p.source.as_ref().map(|s| s.path.clone()),
                p.span.as_ref().map_or(0, |s| s.start),
            )
        });
        let errors = problems.iter().filter(|p| p.is_error()).count();
        let warnings = problems.len() - errors;
        match format {
            CheckFormat::Human => {
                self.report(&problems);
                if errors == 0 {
                    eprintln!(
                        "checked {files} file(s): ok{}",
                        if warnings > 0 {
                            format!(", {warnings} warning(s)")
                        } else {
                            String::new()
                        }
                    );
                } else {
                    eprintln!("checked {files} file(s): {errors} error(s), {warnings} warning(s)");
                }
            }
            CheckFormat::Json => {
                for p in &problems {
                    println!("{}", problem_json(p));
                }
            }
            CheckFormat::Github => {
                for p in &problems {
                    let level = if p.is_error() { "error" } else { "warning" };
                    let msg = gh_escape(&match &p.help {
                        Some(h) => format!("{} ({})", p.message, h),
                        None => p.message.clone(),
                    });
                    let title = gh_property(p.code);
                    match p.location() {
                        Some((file, line, col)) => println!(
                            "::{level} file={},line={line},col={col},title={title}::{msg}",
                            gh_property(&file)
                        ),
                        None => println!("::{level} title={title}::{msg}"),
                    }
                }
            }
        }
        if errors > 0 {
            exit::INVALID
        } else {
            exit::DONE
        }
    }
}

fn count_invalid(c: &Catalog) -> usize {
    let mut files: Vec<&Path> = c
        .problems
        .iter()
        .filter_map(|p| p.source.as_ref().map(|s| s.path.as_path()))
        .collect();
    files.sort();
    files.dedup();
    files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != load::ENVIRONMENTS_FILE))
        .filter(|f| !c.runbooks.iter().any(|r| r.source.path == **f))
        .count()
}

fn same_file(p: &Problem, path: &Path) -> bool {
    p.source.as_ref().is_some_and(|s| s.path == path)
}

/// The message of a workflow command: `%`, CR and LF escaped, so no text (a file name, a
/// value quoted in a message) can end the line and start a command of its own.
fn gh_escape(s: &str) -> String {
    // Control and invisible characters (bidi overrides) visible, as on every other output.
    crate::display::visible(s)
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property of a workflow command (`file=`, `title=`): also `:` and `,`, which would end it.
fn gh_property(s: &str) -> String {
    gh_escape(s).replace(':', "%3A").replace(',', "%2C")
}

fn problem_json(p: &Problem) -> String {
    let (file, line, col) = p
        .location()
        .map_or((None, None, None), |(f, l, c)| (Some(f), Some(l), Some(c)));
    serde_json::json!({
        "severity": p.severity,
        "code": p.code,
        "message": p.message,
        "help": p.help,
        "file": file,
        "line": line,
        "col": col,
    })
    .to_string()
}

/// `--input name=value` pairs, checked against the runbook's inputs.
fn parse_inputs(rb: &Runbook, raw: &[String]) -> Result<IndexMap<String, String>, Problem> {
    let mut out = IndexMap::new();
    for item in raw {
        let Some((k, v)) = item.split_once('=') else {
            return Err(Problem::error(
                "runbook::bad-input",
                format!("`--input {item}` is not NAME=VALUE"),
            )
            .help("write it like `--input reason=scheduled`"));
        };
        let Some(spec) = rb.doc.inputs.get(k) else {
            let known: Vec<&str> = rb.doc.inputs.keys().map(String::as_str).collect();
            let help = diag::did_you_mean(k, known.iter().copied()).unwrap_or_else(|| {
                format!(
                    "its inputs are: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )
            });
            return Err(Problem::error(
                "runbook::unknown-input",
                format!("runbook `{}` has no input `{k}`", rb.name()),
            )
            .help(help));
        };
        if spec.secret {
            // Refused, not just discouraged: the value is already in `ps` and the shell's
            // history, and this message must not repeat it.
            return Err(Problem::error(
                "runbook::secret-on-command-line",
                format!("input `{k}` is secret and cannot be given with --input"),
            )
            .help(format!(
                "a command line is visible to every user of the machine (ps) and kept in shell history: set {} in the environment, or leave it out and type it at the hidden prompt",
                input_env_var(k)
            )));
        }
        check_choice(k, v, spec)?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn check_choice(name: &str, value: &str, spec: &crate::model::InputSpec) -> Result<(), Problem> {
    if let Some(choices) = &spec.choices
        && !choices.iter().any(|c| c == value)
    {
        return Err(Problem::error(
            "runbook::bad-input",
            if spec.secret {
                // A secret value is never echoed, not even a wrong one.
                format!("the value given for secret input `{name}` is not one of its choices")
            } else {
                format!("`{value}` is not a choice of input `{name}`")
            },
        )
        .help(format!("choose one of: {}", choices.join(", "))));
    }
    Ok(())
}

/// `RUNBOOK_INPUT_<NAME>`: how a secret input reaches a non-interactive run without argv.
fn input_from_env(name: &str) -> Option<String> {
    std::env::var(input_env_var(name)).ok()
}

fn input_env_var(name: &str) -> String {
    format!(
        "RUNBOOK_INPUT_{}",
        name.to_uppercase().replace(['-', '.'], "_")
    )
}

/// Every input's value: `--input`, then `RUNBOOK_INPUT_<NAME>`, then the default, then asked
/// for on a terminal. `Err(None)` means the operator interrupted a prompt.
fn resolve_inputs(
    rb: &Runbook,
    raw: &[String],
    prompter: &dyn Prompter,
) -> Result<IndexMap<String, InputValue>, Option<Problem>> {
    let given = parse_inputs(rb, raw).map_err(Some)?;
    let mut out = IndexMap::new();
    for (name, spec) in &rb.doc.inputs {
        let value = match given.get(name).cloned().or_else(|| input_from_env(name)) {
            Some(v) => {
                check_choice(name, &v, spec).map_err(Some)?;
                v
            }
            None if prompter.interactive() => {
                match prompter.ask(
                    &spec.description,
                    spec.choices.as_deref(),
                    spec.default.as_deref(),
                    spec.secret,
                ) {
                    Ok(v) => v,
                    Err(_) => return Err(None),
                }
            }
            None => match &spec.default {
                Some(d) => d.clone(),
                None => {
                    let env_var = format!(
                        "RUNBOOK_INPUT_{}",
                        name.to_uppercase().replace(['-', '.'], "_")
                    );
                    let how = if spec.secret {
                        format!(
                            "set {env_var} in the environment (a secret should not be on the command line)"
                        )
                    } else {
                        format!("pass --input {name}=VALUE")
                    };
                    return Err(Some(
                        Problem::error(
                            "runbook::missing-input",
                            format!("missing input `{name}` ({})", spec.description),
                        )
                        .help(format!("{how}; without a terminal nobody can be asked")),
                    ));
                }
            },
        };
        if spec.secret
            && let Err(e) = crate::secret::check_len(&value)
        {
            // Nothing of the value is shown, not even its first characters.
            return Err(Some(
                Problem::error(
                    "runbook::short-secret",
                    format!("secret input `{name}`: {e}"),
                )
                .help(format!(
                    "a secret shorter than {} characters cannot be masked in output; give the real value",
                    crate::secret::MIN_SECRET_LEN
                )),
            ));
        }
        out.insert(
            name.clone(),
            InputValue {
                value,
                secret: spec.secret,
            },
        );
    }
    Ok(out)
}
