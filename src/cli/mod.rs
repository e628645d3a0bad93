//! The command line: parses arguments, picks terminal or plain output, and turns outcomes into
//! the documented exit codes. Only this module prints diagnostics or decides colour and TTY.
//!
//! This file holds `main`, `Ctx` and the dispatch; `args.rs` is the clap definition. Each
//! command is an `impl Ctx` block in a file of its own (`list.rs`, `show.rs`, `check.rs`,
//! `preflight.rs`, `runs.rs`, which also builds a command's `Session`), reached as a method:
//! this file names no such child by path, so their `super::Ctx` makes no import circle.

// Private: the clap definition, the prompters (dialoguer) and the sinks are the binary's, not
// the library's. `out` is what the crate's `print!` macros call.
mod args;
mod check;
mod complete;
mod completions;
mod json;
mod list;
mod list_json;
mod markdown;
pub(crate) mod out;
mod preflight;
mod prompt;
mod runs;
mod show;
mod status;
mod ui;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Parser;
use indexmap::IndexMap;

use crate::catalog::Runbook;
use crate::diag::{self, Problem};
use crate::display::visible;
use crate::engine::InputValue;
use crate::load::Catalog;
use crate::model::Environment;
use crate::session::{Approval, Failure, Kind, Resume, Selection, Session, Start};
use crate::{plan, schema};
use args::{CheckFormat, Cli, ColorChoice, Command, Output, PlanFormat, SchemaName};

/// A runbook, the environments it runs on, and its inputs known without asking.
type Targets<'c> = (
    &'c Runbook,
    Vec<&'c Environment>,
    IndexMap<String, InputValue>,
);

/// Exit codes, as documented in `--help` and the README. [`code`] is the only place an
/// outcome becomes one.
pub(crate) mod exit {
    use crate::session::Kind;

    pub const DONE: i32 = 0;
    pub const STEP_FAILED: i32 = 1;
    pub const INVALID: i32 = 2;
    pub const DECLINED: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
    /// A bug of runbook (a panic): one line on stderr, nothing else.
    pub const INTERNAL: i32 = 101;

    /// The exit code of a command that failed this way.
    pub fn code(kind: Kind) -> i32 {
        match kind {
            Kind::StepFailed => STEP_FAILED,
            Kind::Invalid => INVALID,
            Kind::Declined => DECLINED,
            Kind::Interrupted => INTERRUPTED,
        }
    }
}

/// Parse arguments, run the command, return the exit code ([`exit::INTERNAL`] on a panic).
pub fn main() -> i32 {
    out::install_panic_hook();
    std::panic::catch_unwind(command).unwrap_or(exit::INTERNAL)
}

fn command() -> i32 {
    // First, while this is the only thread: no child process may inherit a password.
    crate::steps::take_inherited_secrets();
    // A shell asking for completions: answered before anything else is read or printed.
    completions::answer_request();
    // The panic hook's test: a debug build panics on request, with a canary in the payload.
    if cfg!(debug_assertions) && std::env::var_os("RUNBOOK_DEBUG_PANIC").is_some() {
        panic!("canary-payload-must-not-be-printed");
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            end_at_closed_pipe();
            let _ = e.print();
            if !e.use_stderr() {
                return exit::DONE;
            }
            // A program that asked for JSON gets its error as JSON too.
            if asks_for_json(std::env::args_os().skip(1)) {
                let text = e.kind().as_str().map_or_else(
                    || "the command line is not valid".to_string(),
                    str::to_string,
                );
                let f = Failure::quiet(Kind::Invalid).line(format!("error: {text}"));
                json::print_error_if_silent(&f, exit::code(Kind::Invalid));
            }
            return exit::code(Kind::Invalid);
        }
    };
    // A run keeps ignoring SIGPIPE: its sinks drop output they cannot write, and the run goes
    // on (being killed by a closed pipe would leave it half-done). Decided on the parsed
    // command, not on the words of argv: a runbook named `run` is not a run.
    if !matches!(cli.command, Command::Run { .. } | Command::Resume { .. }) {
        end_at_closed_pipe();
    }
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
    let json = match &cli.command {
        Command::List { output }
        | Command::Show { output, .. }
        | Command::Preflight { output, .. }
        | Command::Plan { output, .. }
        | Command::Run { output, .. }
        | Command::Resume { output, .. }
        | Command::Runs { output }
        | Command::Status { output, .. } => *output == Output::Json,
        Command::Check { output, format, .. } => {
            *output == Some(Output::Json) || *format == CheckFormat::Json
        }
        _ => false,
    };
    let cx = Ctx {
        dir: cli.dir.clone(),
        color,
        state_dir: cli.state_dir.clone(),
        json,
    };
    let result = cx.dispatch(cli.command);
    cx.finish(result)
}

/// `runbook list | head` ends quietly like any Unix tool, not with a panic on a closed pipe:
/// a command that changes nothing may simply be ended by SIGPIPE.
fn end_at_closed_pipe() {
    // SAFETY: called before the command starts any thread; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether a command line that clap refused asked for `--output json` (or `check --format
/// json`), read from its words since it could not be parsed.
fn asks_for_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    let args: Vec<std::ffi::OsString> = args.collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--output=json"
            || a == "--format=json"
            || ((a == "--output" || a == "--format")
                && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

struct Ctx {
    dir: PathBuf,
    color: bool,
    state_dir: Option<PathBuf>,
    /// `--output json`: a failure is also an error object on stdout (see `json.rs`).
    json: bool,
}

impl Ctx {
    fn dispatch(&self, command: Command) -> Result<(), Failure> {
        match command {
            Command::List { output } => self.list(output),
            Command::Show { name, output } => self.show(&name, output),
            Command::Plan {
                name,
                env,
                inputs,
                output,
                format,
            } => self.plan(&name, &env, &inputs, output, format),
            Command::Preflight {
                name,
                env,
                inputs,
                output,
            } => self.preflight(&name, &env, &inputs, output),
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
                no_preflight,
                new,
                output,
            } => {
                if dry_run {
                    return self.plan(&name, &env, &inputs, output, PlanFormat::Text);
                }
                // One environment: its name, or a wrong one to refuse (with several, each
                // must name one of the run's).
                let one = env.first().map(String::as_str);
                let confirm = confirm_env
                    .iter()
                    .find(|c| Some(c.as_str()) != one)
                    .or(confirm_env.first());
                let start = Start {
                    name: &name,
                    env: one,
                    inputs: &inputs,
                    approval: Approval {
                        yes,
                        confirm_env: confirm.map(String::as_str),
                        step,
                    },
                    selection: Selection { from, only },
                    no_preflight,
                    new,
                };
                if env.len() > 1 {
                    return self.run_series(start, &env, &confirm_env, output);
                }
                self.run(start, output)
            }
            Command::Resume {
                run_id,
                force,
                in_flight,
                step,
                yes,
                confirm_env,
                no_preflight,
                output,
            } => self.resume(
                Resume {
                    run_id: run_id.as_deref(),
                    force,
                    in_flight: in_flight.map(args::InFlightChoice::into),
                    approval: Approval {
                        yes,
                        confirm_env: confirm_env.as_deref(),
                        step,
                    },
                    no_preflight,
                },
                output,
            ),
            Command::Runs { output } => self.runs(output),
            Command::Status {
                env,
                all_envs,
                at,
                output,
            } => self.status(env.as_deref(), all_envs, at, output),
            Command::Abandon { run_id } => self.abandon(&run_id),
            Command::Check {
                paths,
                format,
                output,
            } => match output {
                Some(Output::Json) => self.check(&paths, CheckFormat::Json),
                _ => self.check(&paths, format),
            },
            Command::Docs { name, env } => self.docs(&name, env.as_deref()),
            Command::Schema { which } => {
                let s = match which {
                    SchemaName::Runbook => schema::runbook(),
                    SchemaName::Environments => schema::environments(),
                };
                print!("{s}");
                Ok(())
            }
            Command::Completions { shell } => completions::completions(shell),
            Command::Man => completions::man(),
        }
    }

    fn report(&self, problems: &[Problem]) {
        report(problems, self.color);
    }

    /// The one place a failure is shown and becomes the exit code.
    fn finish(&self, result: Result<(), Failure>) -> i32 {
        match result {
            Ok(()) => exit::DONE,
            Err(f) => {
                if self.json {
                    json::print_error_if_silent(&f, exit::code(f.kind));
                }
                if !f.problems.is_empty() {
                    self.report(&f.problems);
                }
                // On a terminal, wrapped to it (a preflight table's failure details).
                let width = ui::stderr_width();
                for line in &f.lines {
                    match width {
                        Some(w) => eprintln!("{}", ui::wrap(line, w)),
                        None => eprintln!("{line}"),
                    }
                }
                exit::code(f.kind)
            }
        }
    }

    fn docs(&self, name: &str, env: Option<&str>) -> Result<(), Failure> {
        let session = self.offline();
        let catalog = session.catalog()?;
        let rb = session.runbook(&catalog, name)?;
        let env = match env {
            Some(e) => Some(session.environment(&catalog, Some(e), false)?),
            None => None,
        };
        // The page is ours, its values are not: none may reach the terminal (or the file it
        // is saved to) as a control character.
        println!("{}", visible(&crate::docs::render(rb, env)));
        Ok(())
    }

    /// What `plan` and `preflight` start from: the runbook, the environment, and the inputs
    /// known without asking (those not given stay unknown: shown as such, and checks that need
    /// them are skipped).
    fn offline_target<'c>(
        session: &Session,
        catalog: &'c Catalog,
        name: &str,
        env: Option<&str>,
        inputs: &[String],
    ) -> Result<(&'c Runbook, &'c Environment, IndexMap<String, InputValue>), Failure> {
        let rb = session.runbook(catalog, name)?;
        let env = session.environment_for(catalog, rb, env, false)?;
        let values =
            crate::inputs::known(rb.name(), &rb.doc.inputs, inputs).map_err(Failure::invalid)?;
        Ok((rb, env, values))
    }

    /// What `plan` and `preflight` do with several `--env`: each environment, in the order
    /// given, every unknown or repeated name refused first.
    fn offline_targets<'c>(
        session: &Session,
        catalog: &'c Catalog,
        name: &str,
        envs: &[String],
        inputs: &[String],
    ) -> Result<Targets<'c>, Failure> {
        if envs.len() <= 1 {
            let (rb, env, values) = Self::offline_target(
                session,
                catalog,
                name,
                envs.first().map(String::as_str),
                inputs,
            )?;
            return Ok((rb, vec![env], values));
        }
        let rb = session.runbook(catalog, name)?;
        let found = session.environments_named(catalog, rb, envs)?;
        let values =
            crate::inputs::known(rb.name(), &rb.doc.inputs, inputs).map_err(Failure::invalid)?;
        Ok((rb, found, values))
    }

    fn plan(
        &self,
        name: &str,
        envs: &[String],
        inputs: &[String],
        output: Output,
        format: PlanFormat,
    ) -> Result<(), Failure> {
        let session = self.offline();
        let catalog = session.catalog()?;
        let (rb, found, values) = Self::offline_targets(&session, &catalog, name, envs, inputs)?;
        let plans: Vec<plan::Plan> = found
            .iter()
            .map(|env| plan::plan(rb, env, &values))
            .collect();
        match (output, format) {
            (Output::Human, _) => {
                for (i, plan) in plans.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    match format {
                        PlanFormat::Text => print!("{}", plan.render_text()),
                        PlanFormat::Md => print!("{}", plan.render_markdown()),
                    }
                }
            }
            // One environment: its plan is the document; several: `plans`, in order.
            (Output::Json, _) => match plans.as_slice() {
                [plan] => json::print_document(serde_json::to_value(plan).unwrap_or_default()),
                _ => json::print_document(serde_json::json!({
                    "runbook": rb.name(),
                    "plans": plans,
                })),
            },
        }
        Ok(())
    }
}

/// Diagnostics on stderr, as wide as the terminal (within reason).
fn report(problems: &[Problem], color: bool) {
    let width = console::Term::stderr()
        .size_checked()
        .map_or(100, |(_, w)| usize::from(w).clamp(60, 120));
    eprint!("{}", diag::render(problems, color, width));
}

#[cfg(test)]
mod tests {
    use super::args::AFTER_HELP;
    use super::*;

    #[test]
    fn every_failure_kind_has_its_documented_exit_code() {
        for (kind, code) in [
            (Kind::StepFailed, 1),
            (Kind::Invalid, 2),
            (Kind::Declined, 3),
            (Kind::Interrupted, 130),
        ] {
            assert_eq!(exit::code(kind), code);
            assert!(
                AFTER_HELP.contains(&format!("\n  {code:<5}")),
                "{code} is not in --help"
            );
        }
    }
}
