//! A session: what a command does with the runbooks directory and the state directory, below
//! the CLI and above the engine. It finds the runbook and the environment, and for `run` and
//! `resume` it owns everything around the engine: the selection, the approval rule, the local
//! and shared locks, the journal, the resume policy, the AWS identity, and building the
//! engine (see [`run`]).
//!
//! It prints nothing and picks no exit code: what the operator is told goes through a
//! [`Frontend`] the CLI gives it, and a command that fails returns a [`Failure`].

mod announce;
mod attended;
mod failure;
mod guard;
mod locks;
pub mod run;
mod series;
mod series_cx;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::Runbook;
use crate::diag::{self, Code, Problem};
use crate::engine::event::Sink;
use crate::journal::{self, RunJournal, RunSummary};
use crate::load::{self, Catalog};
use crate::model::Environment;
use crate::state;
use crate::steps::Prompter;

pub use failure::{Failure, Kind};
pub use run::{Approval, InFlight, Resume, Selection, Start};
pub use series::{SeriesEnv, SeriesReport};

/// What a session needs of the program that drives it: someone to ask, somewhere to say
/// things, and where a run's events go. The CLI's is a terminal (or a pipe).
pub trait Frontend: Send + Sync {
    /// Whether a person can be asked (a terminal, and output meant for a person).
    fn interactive(&self) -> bool;
    /// Who answers gates and input prompts (one that refuses when not interactive).
    fn prompter(&self) -> &dyn Prompter;
    /// Diagnostics that do not stop the command (a runbook's warnings), shown now.
    fn report(&self, problems: &[Problem]);
    /// Text for the operator (stderr): the plan before a run, a warning.
    fn say(&self, text: &str);
    /// One line for the operator (stderr), as it is.
    fn line(&self, text: &str);
    /// What Ctrl-C did, said when it is pressed (a line of its own after the terminal's `^C`).
    fn interrupted(&self, text: &str) {
        self.line(&format!("\n{text}"));
    }
    /// The columns a table shown to the operator (stderr) must fit: `None` when it is not a
    /// terminal.
    fn width(&self) -> Option<usize> {
        None
    }
    /// A passing status line while something slow goes on (preflight): a terminal shows the
    /// latest until `None` clears it; elsewhere nothing is shown.
    fn status(&self, text: Option<&str>);
    /// Where a run's events go, besides its event log.
    fn sinks(&self) -> Vec<Box<dyn Sink>>;
}

/// The runbooks directory and the state directory, and the frontend that drives them.
pub struct Session {
    /// The directory holding the runbooks and `environments.yaml`.
    pub dir: PathBuf,
    /// Where run journals are kept (`None`: `$XDG_STATE_HOME/runbook`).
    pub state_dir: Option<PathBuf>,
    pub front: Arc<dyn Frontend>,
}

impl Session {
    /// Load the catalog; a directory that cannot be read is a failure.
    pub fn catalog(&self) -> Result<Catalog, Failure> {
        crate::check::load_dir(&self.dir).map_err(Failure::invalid)
    }

    /// The runbook `name`, its warnings shown; or its own problems (it is invalid), or "no such
    /// runbook".
    pub fn runbook<'a>(&self, catalog: &'a Catalog, name: &str) -> Result<&'a Runbook, Failure> {
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
                return Err(Failure::invalid_all(errors).line(format!(
                    "runbook `{}` is invalid; nothing ran.",
                    crate::display::visible_line(name)
                )));
            }
            let warnings: Vec<Problem> = catalog
                .problems
                .iter()
                .filter(|p| !p.is_error() && same_file(p, &rb.source.path))
                .cloned()
                .collect();
            self.front.report(&warnings);
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
            return Err(Failure::invalid_all(own)
                .line(format!("runbook `{name}` is invalid; nothing ran.")));
        }
        let names: Vec<&str> = catalog.runbooks.iter().map(Runbook::name).collect();
        let mut p = Problem::error(
            Code::NoSuchRunbook,
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
        Err(Failure::invalid(p))
    }

    /// The environment `rb` runs in: as [`Session::environment`], except that a runbook that
    /// needs none (see [`needs_environment`]) runs without one when none is given and there is
    /// not exactly one to take, even when no environments.yaml exists.
    pub fn environment_for<'a>(
        &self,
        catalog: &'a Catalog,
        rb: &Runbook,
        name: Option<&str>,
        ask: bool,
    ) -> Result<&'a Environment, Failure> {
        if !needs_environment(catalog, rb, 0) {
            let none_given = name.is_none() && catalog.environments.names().count() != 1;
            // A resumed run recorded as run without one.
            let recorded =
                name == Some(NO_ENVIRONMENT) && catalog.environments.get(NO_ENVIRONMENT).is_none();
            if none_given || recorded {
                return Ok(no_environment());
            }
        } else if name.is_none() && catalog.environments.names().next().is_none() {
            return Err(Failure::invalid(
                Problem::error(
                    Code::MissingEnv,
                    format!(
                        "`{}` needs an environment (a step uses hosts, databases or AWS, or a template reads `env.*`), and {} defines none",
                        crate::display::visible_line(rb.name()),
                        load::ENVIRONMENTS_FILE
                    ),
                )
                .help(format!(
                    "define one in {}, then pass --env NAME",
                    catalog.dir.join(load::ENVIRONMENTS_FILE).display()
                )),
            ));
        }
        self.environment(catalog, name, ask)
    }

    /// The environment `name`; without one, the only one there is, or (when `ask`) the one
    /// the operator picks.
    pub fn environment<'a>(
        &self,
        catalog: &'a Catalog,
        name: Option<&str>,
        ask: bool,
    ) -> Result<&'a Environment, Failure> {
        let envs = &catalog.environments;
        let env_problems: Vec<Problem> = catalog
            .problems
            .iter()
            .filter(|p| p.is_error() && same_file(p, &catalog.dir.join(load::ENVIRONMENTS_FILE)))
            .cloned()
            .collect();
        if !env_problems.is_empty() {
            return Err(Failure::invalid_all(env_problems));
        }
        let names: Vec<&str> = envs.names().collect();
        let name = match name {
            Some(n) => n.to_string(),
            None if names.len() == 1 => names[0].to_string(),
            None if ask && !names.is_empty() => {
                let choices: Vec<String> = names.iter().map(|s| s.to_string()).collect();
                match self
                    .front
                    .prompter()
                    .ask("Environment", Some(&choices), None, false)
                {
                    Ok(n) => n,
                    Err(_) => return Err(Failure::quiet(Kind::Interrupted)),
                }
            }
            None => {
                let p = Problem::error(Code::MissingEnv, "no environment given").help(format!(
                    "pass --env with one of: {}",
                    if names.is_empty() {
                        "none defined".into()
                    } else {
                        names.join(", ")
                    }
                ));
                return Err(Failure::invalid(p));
            }
        };
        envs.get(&name).ok_or_else(|| {
            let mut p = Problem::error(Code::UnknownEnv, format!("no environment `{name}`"));
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
            Failure::invalid(p)
        })
    }

    /// The state directory, checked (and made, 0700, for a command that writes): refused when
    /// someone else could write in it.
    pub fn state(&self, write: bool) -> Result<PathBuf, Failure> {
        let dir = journal::state_dir(self.state_dir.as_deref());
        let checked = if write {
            state::prepare(&dir).and_then(|()| state::check_files(&dir))
        } else {
            state::inspect(&dir).map(|_| ())
        };
        match checked {
            Ok(()) => Ok(dir),
            Err(e) => Err(journal_error(&dir, &e)),
        }
    }

    /// Every run of the state directory, oldest first; what could not be read of each is said
    /// first.
    pub fn runs(&self) -> Result<Vec<RunSummary>, Failure> {
        let state = self.state(false)?;
        let runs = journal::list_runs(&state);
        for r in &runs {
            self.notes(r);
        }
        Ok(runs)
    }

    /// Give up an unfinished run: it can no longer be resumed and its secrets are erased.
    pub fn abandon(&self, run_id: &str) -> Result<(), Failure> {
        if !journal::valid_run_id(run_id) {
            return Err(Failure::invalid(bad_run_id(run_id)));
        }
        let state = self.state(true)?;
        let Some(run) = journal::load_run(&state, run_id) else {
            return Err(Failure::invalid(Problem::error(
                Code::NoSuchRun,
                format!("no run `{run_id}` in {}", state.display()),
            )));
        };
        self.notes(&run);
        if !run.abandonable {
            return Err(Failure::invalid(Problem::error(
                Code::NotResumable,
                format!("run {run_id} is {}", run.status),
            )));
        }
        RunJournal::reopen(&state, run_id, false, false)
            .and_then(|mut j| j.abandon(None))
            .map_err(|e| journal_error(&state, &e))
    }

    /// What could not be read of a run's journal, said before anything is done with it.
    fn notes(&self, run: &RunSummary) {
        for n in &run.notes {
            self.front.line(&format!("note: run {}: {n}", run.run_id));
        }
    }
}

/// The async runtime of a command that talks to the world: two workers, so a background task
/// (an SSH connection opening) goes on while a gate blocks one of them.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::quiet(Kind::StepFailed)
                .line(format!("error: cannot start the async runtime: {e}"))
        })
}

/// The name a run without an environment is recorded and locked under.
pub const NO_ENVIRONMENT: &str = "none";

/// The environment of a runbook that needs none: no hosts, databases, AWS or vars.
fn no_environment() -> &'static Environment {
    static NONE: std::sync::LazyLock<Environment> = std::sync::LazyLock::new(|| Environment {
        name: NO_ENVIRONMENT.into(),
        // Every field of an environment has a default: the empty mapping is the empty one.
        doc: serde_json::from_value(serde_json::json!({}))
            .expect("an environment with every field left out"),
    });
    &NONE
}

/// Whether a run of `rb` uses its environment: a step whose kind says it does (hosts,
/// databases, AWS), a template that reads `env.*`, or a nested runbook that does (one whose
/// name is only known at run time counts as one that does).
pub fn needs_environment(catalog: &Catalog, rb: &Runbook, depth: usize) -> bool {
    // Cycles are refused by `check`; this is a last guard.
    if depth > 64 {
        return true;
    }
    rb.all_steps().any(|step| {
        if step.kind.needs_environment(&step.params) || reads_env(step) {
            return true;
        }
        let Some(nested) = step.kind.nested_runbook(&step.params) else {
            return false;
        };
        match nested
            .name
            .as_str()
            .filter(|n| !crate::template::is_template(n))
            .and_then(|n| catalog.find(n))
        {
            Some(child) => needs_environment(catalog, child, depth + 1),
            None => true,
        }
    })
}

/// Whether a template of `step` (its title, gate, `when` or parameters) reads `env`; one that
/// cannot be read counts as reading it.
fn reads_env(step: &crate::catalog::Step) -> bool {
    let is_env = |r: &String| r == "env" || r.starts_with("env.") || r.starts_with("env[");
    let mut texts: Vec<&str> = ["title", "confirm"]
        .iter()
        .filter_map(|f| step.node.get(f).and_then(|n| n.as_str()))
        .collect();
    step.params.walk_scalars(&mut |_, s| texts.push(s));
    let in_text = texts.iter().any(|t| {
        crate::template::is_template(t)
            && crate::template::references(t).map_or(true, |refs| refs.iter().any(is_env))
    });
    let in_when = step
        .node
        .get("when")
        .and_then(|n| n.as_str())
        .is_some_and(|w| {
            crate::template::expression_references(w).map_or(true, |refs| refs.iter().any(is_env))
        });
    in_text || in_when
}

fn same_file(p: &Problem, path: &Path) -> bool {
    p.source.as_ref().is_some_and(|s| s.path == path)
}

fn journal_error(state: &Path, e: &std::io::Error) -> Failure {
    if state::unsafe_of(e).is_some() {
        return Failure::invalid(unsafe_problem(e));
    }
    Failure::invalid(
        Problem::error(
            Code::Journal,
            format!("cannot write the run journal in {}: {e}", state.display()),
        )
        .help("pass --state-dir to a writable directory"),
    )
}

fn unsafe_problem(e: &std::io::Error) -> Problem {
    let (msg, help) = match state::unsafe_of(e) {
        Some(u) => (u.to_string(), u.help.clone()),
        None => (e.to_string(), String::new()),
    };
    Problem::error(Code::UnsafeState, msg).help(help)
}

fn bad_run_id(id: &str) -> Problem {
    Problem::error(
        Code::BadRunId,
        format!("`{}` is not a run id", id.escape_debug()),
    )
    .help("a run id looks like 20260102-150405-3fa9; `runbook runs` lists them")
}
