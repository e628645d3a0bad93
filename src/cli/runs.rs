//! `run`, `resume`, `runs` and `abandon`: starting a run under its lock and journal, and
//! continuing one that stopped (a failure, Ctrl-C, a crash) without repeating finished steps.

use std::io::IsTerminal;
use std::sync::Arc;

use indexmap::IndexMap;

use super::{Ctx, Output, exit, prompt, resolve_inputs, ui};
use crate::diag::Problem;
use crate::engine::event::{Bus, Sink};
use crate::engine::record::Resume;
use crate::engine::{ChildLocks, Engine, InputValue, Interrupt, RunOptions};
use crate::journal::{self, LockError, RunJournal, RunLock, RunMeta};
use crate::model::{Environment, Runbook};
use crate::plan;
use crate::secret::Redactor;
use crate::select;
use crate::state;
use crate::steps::Prompter;
use crate::steps::ssm::{self, SharedLock, SharedLockError};

/// How `resume` treats a step that was running when the run died.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InFlightChoice {
    /// Run it again.
    Rerun,
    /// It took effect (checked by hand): go on after it.
    Done,
}

/// How the operator approves: `--yes` (with `--confirm-env` for a protected environment
/// without a terminal), and `--step` to be asked before every step.
#[derive(Debug, Default)]
pub struct Asking<'a> {
    pub yes: bool,
    pub confirm_env: Option<&'a str>,
    pub step: bool,
}

/// Which main steps a run runs: `--from STEP`, or `--only STEP,...`; neither is all of them.
#[derive(Debug, Default)]
pub struct Selection {
    pub from: Option<String>,
    pub only: Vec<String>,
}

/// Everything `execute` needs, for a new run or a resumed one.
struct Launch<'a> {
    rb: &'a Runbook,
    /// Every runbook of the directory, for `runbook.run` steps.
    library: &'a [Runbook],
    env: &'a Environment,
    inputs: IndexMap<String, InputValue>,
    yes: bool,
    output: Output,
    prompter: &'a dyn Prompter,
    run_id: String,
    resume: Resume,
    selected: Option<Vec<String>>,
    step: bool,
    /// A protected environment's name was given (`--confirm-env`): no gate asks for it.
    env_confirmed: bool,
    journal: RunJournal,
    _lock: RunLock,
    /// The locks of the runbooks it runs inside itself.
    children: Arc<HeldLocks>,
    runtime: tokio::runtime::Runtime,
    /// The environment's lock in SSM, when it has `shared_lock:`.
    shared: Option<SharedLock>,
}

impl Ctx {
    pub(super) fn run(
        &self,
        name: &str,
        env: Option<&str>,
        inputs: &[String],
        asking: &Asking<'_>,
        selection: &Selection,
        output: Output,
    ) -> i32 {
        let Asking {
            yes,
            confirm_env,
            step,
        } = *asking;
        let interactive = match self.interactive(step, output) {
            Ok(i) => i,
            Err(code) => return code,
        };
        let catalog = match self.catalog() {
            Ok(c) => c,
            Err(code) => return code,
        };
        let rb = match self.runbook(&catalog, name) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let selected = match select::select(rb, selection.from.as_deref(), &selection.only) {
            Ok(s) => s,
            Err(p) => {
                self.report(&[p]);
                return exit::INVALID;
            }
        };
        if let Some(sel) = &selected {
            let missing = select::missing_outputs(rb, sel);
            if !missing.is_empty() {
                let problems: Vec<Problem> = missing
                    .iter()
                    .map(|m| {
                        Problem::error(
                            "runbook::unselected-output",
                            format!(
                                "step `{}` reads `{}`, but step `{}` will not run",
                                m.step, m.reference, m.source
                            ),
                        )
                        .help(format!(
                            "select `{}` too (--from an earlier step, or add it to --only), or run the whole runbook",
                            m.source
                        ))
                    })
                    .collect();
                self.report(&problems);
                return exit::INVALID;
            }
        }
        let env = match self.environment(&catalog, env, interactive) {
            Ok(e) => e,
            Err(code) => return code,
        };
        let terminal = prompt::TerminalPrompter::new();
        let prompter: &dyn Prompter = if interactive {
            &terminal
        } else {
            &prompt::NoPrompter
        };
        let values = match resolve_inputs(rb, inputs, prompter) {
            Ok(v) => v,
            Err(Some(p)) => {
                self.report(&[p]);
                return exit::INVALID;
            }
            Err(None) => return exit::INTERRUPTED,
        };
        let plan = plan::plan(rb, env, &values);
        // Only the steps that run: their gates are the ones to approve.
        let mut to_run = plan::plan(rb, env, &values);
        if let Some(sel) = &selected {
            to_run.steps.retain(|s| sel.contains(&s.id));
        }
        if let Err(p) = approvals_possible(&to_run, env, interactive, yes, confirm_env) {
            self.report(&[p]);
            return exit::INVALID;
        }
        let state = match self.state(true) {
            Ok(s) => s,
            Err(code) => return code,
        };
        if interactive {
            say(&plan.render_text());
        }
        if let Some(sel) = &selected {
            let skipped: Vec<&str> = rb
                .steps
                .iter()
                .map(|s| s.id())
                .filter(|id| !sel.iter().any(|s| s == id))
                .collect();
            say(&format!(
                "warning: partial run: {} will not run (not selected). The selected steps read none of their outputs; anything else they do (a secret written, a service redeployed) you must have done or checked yourself.\n",
                list_ids(&skipped)
            ));
        }
        let run_id = journal::new_run_id();
        let (lock, children) = match self.lock(&state, &catalog, rb, env, &values, &run_id) {
            Ok(l) => l,
            Err(code) => return code,
        };
        let runtime = match new_runtime() {
            Ok(r) => r,
            Err(code) => return code,
        };
        let shared = match self.shared_lock(&runtime, rb, env, &run_id) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let meta = RunMeta {
            run_id: &run_id,
            runbook: rb,
            env: &env.name,
            inputs: &values,
            selected: selected.as_deref(),
            aws_identity: aws_identity(&runtime, rb, env),
        };
        let journal = match RunJournal::create(&state, &meta) {
            Ok(j) => j,
            Err(e) => return self.journal_error(&state, &e),
        };
        self.execute(Launch {
            rb,
            library: &catalog.runbooks,
            env,
            inputs: values,
            yes,
            output,
            prompter,
            run_id,
            resume: Resume::default(),
            selected,
            step,
            env_confirmed: confirm_env.is_some(),
            journal,
            _lock: lock,
            children,
            runtime,
            shared,
        })
    }

    pub(super) fn resume(
        &self,
        run_id: Option<&str>,
        force: bool,
        in_flight: Option<InFlightChoice>,
        asking: &Asking<'_>,
        output: Output,
    ) -> i32 {
        let Asking {
            yes,
            confirm_env,
            step,
        } = *asking;
        let interactive = match self.interactive(step, output) {
            Ok(i) => i,
            Err(code) => return code,
        };
        if let Some(id) = run_id
            && !journal::valid_run_id(id)
        {
            self.report(&[bad_run_id(id)]);
            return exit::INVALID;
        }
        let state = match self.state(true) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let run = match run_id {
            Some(id) => journal::load_run(&state, id),
            None => journal::list_runs(&state)
                .into_iter()
                .rev()
                .find(|r| r.resumable),
        };
        let Some(run) = run else {
            let p = match run_id {
                Some(id) => Problem::error(
                    "runbook::no-such-run",
                    format!("no run `{id}` in {}", state.display()),
                ),
                None => Problem::error(
                    "runbook::nothing-to-resume",
                    "there is no unfinished run to resume",
                ),
            }
            .help("`runbook runs` lists the runs and their status");
            self.report(&[p]);
            return exit::INVALID;
        };
        print_notes(&run);
        if !run.resumable {
            let mut p = Problem::error(
                "runbook::not-resumable",
                format!(
                    "run {} is {}; only a failed, declined, interrupted or crashed run can be resumed",
                    run.run_id, run.status
                ),
            );
            if run.abandonable {
                p = p.help(format!(
                    "`runbook abandon {}` gives it up and erases the secrets its journal holds",
                    run.run_id
                ));
            }
            self.report(&[p]);
            return exit::INVALID;
        }
        let catalog = match self.catalog() {
            Ok(c) => c,
            Err(code) => return code,
        };
        let rb = match self.runbook(&catalog, &run.runbook) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let env = match self.environment(&catalog, Some(&run.env), false) {
            Ok(e) => e,
            Err(code) => return code,
        };
        let began_with = run.records.iter().find_map(|r| match r {
            journal::JRec::Meta { digest, .. } => Some(digest.clone()),
            _ => None,
        });
        if began_with.as_deref() != Some(rb.digest().as_str()) && !force {
            let p = Problem::error(
                "runbook::changed-since-run",
                format!("`{}` changed since run {} began; resuming could mix two versions of the procedure", rb.name(), run.run_id),
            )
            .help("review the change; `runbook resume --force` goes on with the new version and records that you did");
            self.report(&[p]);
            return exit::INVALID;
        }
        let (mut resume, in_flight_step, inputs) = journal::resume_point(&run);
        if let Some(missing) = rb.doc.inputs.keys().find(|k| !inputs.contains_key(*k)) {
            let p = Problem::error(
                "runbook::missing-input",
                format!(
                    "input `{missing}` was not recorded when run {} began",
                    run.run_id
                ),
            )
            .help("the runbook gained an input since; start a new run instead");
            self.report(&[p]);
            return exit::INVALID;
        }

        let terminal = prompt::TerminalPrompter::new();
        let prompter: &dyn Prompter = if interactive {
            &terminal
        } else {
            &prompt::NoPrompter
        };
        // A step that was running when the run died: run it again only when that is safe or
        // the operator says so.
        let mut assume_done = None;
        if let Some(step) = &in_flight_step {
            let idempotent = rb
                .all_steps()
                .find(|s| s.id() == step.id)
                .is_some_and(|s| s.idempotent());
            let choice = match in_flight {
                Some(c) => c,
                None if idempotent => InFlightChoice::Rerun,
                None if interactive => {
                    eprintln!(
                        "Step `{}` was running when run {} stopped; whether it took effect is unknown.",
                        step.id, run.run_id
                    );
                    let options = vec![
                        "run it again".to_string(),
                        "it took effect (I checked): go on after it".to_string(),
                        "stop here".to_string(),
                    ];
                    match prompter.ask("What now?", Some(&options), Some(&options[2]), false) {
                        Ok(a) if a == options[0] => InFlightChoice::Rerun,
                        Ok(a) if a == options[1] => InFlightChoice::Done,
                        Ok(_) => return exit::DECLINED,
                        Err(_) => return exit::INTERRUPTED,
                    }
                }
                None => {
                    let p = Problem::error(
                        "runbook::in-flight",
                        format!(
                            "step `{}` was running when run {} stopped, and it is not safe to repeat blindly",
                            step.id, run.run_id
                        ),
                    )
                    .help("check whether it took effect, then pass --in-flight rerun or --in-flight done");
                    self.report(&[p]);
                    return exit::INVALID;
                }
            };
            if choice == InFlightChoice::Done {
                assume_done = Some(step.clone());
                resume.done.insert(step.id.clone());
            }
        }
        // A partial run stays partial: the steps it did not select do not run now either.
        let selected = journal::selection(&run);
        let mut plan = plan::plan(rb, env, &inputs);
        if let Some(sel) = &selected {
            plan.steps.retain(|s| sel.contains(&s.id));
        }
        if let Err(p) = approvals_possible(&plan, env, interactive, yes, confirm_env) {
            self.report(&[p]);
            return exit::INVALID;
        }
        let (lock, children) = match self.lock(&state, &catalog, rb, env, &inputs, &run.run_id) {
            Ok(l) => l,
            Err(code) => return code,
        };
        let runtime = match new_runtime() {
            Ok(r) => r,
            Err(code) => return code,
        };
        let shared = match self.shared_lock(&runtime, rb, env, &run.run_id) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let digest_changed = began_with.as_deref() != Some(rb.digest().as_str());
        let mut journal = match RunJournal::reopen(&state, &run.run_id, digest_changed) {
            Ok(j) => j,
            Err(e) => return self.journal_error(&state, &e),
        };
        if let Some(step) = &assume_done
            && let Err(e) = journal::assume_done(&mut journal, step)
        {
            return self.journal_error(&state, &e);
        }
        say(&format!(
            "resuming run {} of {} on {}\n",
            run.run_id,
            rb.name(),
            env.name
        ));
        self.execute(Launch {
            rb,
            library: &catalog.runbooks,
            env,
            inputs,
            yes,
            output,
            prompter,
            run_id: run.run_id.clone(),
            resume,
            selected,
            step,
            env_confirmed: confirm_env.is_some(),
            journal,
            _lock: lock,
            children,
            runtime,
            shared,
        })
    }

    pub(super) fn runs(&self, output: Output) -> i32 {
        let state = match self.state(false) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let runs = journal::list_runs(&state);
        for r in &runs {
            print_notes(r);
        }
        match output {
            Output::Json => {
                for r in &runs {
                    println!("{}", serde_json::to_string(r).unwrap_or_default());
                }
            }
            Output::Human => {
                println!(
                    "{:<22}  {:<18}  {:<12}  {:<12}  {:<20}  OPERATOR",
                    "RUN", "RUNBOOK", "ENV", "STATUS", "STARTED"
                );
                for r in &runs {
                    let status = if r.resumable {
                        format!("{} *", r.status)
                    } else {
                        r.status.clone()
                    };
                    println!(
                        "{:<22}  {:<18}  {:<12}  {:<12}  {:<20}  {}",
                        r.run_id, r.runbook, r.env, status, r.started, r.operator
                    );
                }
                if runs.iter().any(|r| r.resumable) {
                    println!(
                        "\n* resumable: `runbook resume [RUN]` continues at the first unfinished step"
                    );
                }
            }
        }
        exit::DONE
    }

    pub(super) fn abandon(&self, run_id: &str) -> i32 {
        if !journal::valid_run_id(run_id) {
            self.report(&[bad_run_id(run_id)]);
            return exit::INVALID;
        }
        let state = match self.state(true) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let Some(run) = journal::load_run(&state, run_id) else {
            self.report(&[Problem::error(
                "runbook::no-such-run",
                format!("no run `{run_id}` in {}", state.display()),
            )]);
            return exit::INVALID;
        };
        print_notes(&run);
        if !run.abandonable {
            self.report(&[Problem::error(
                "runbook::not-resumable",
                format!("run {run_id} is {}", run.status),
            )]);
            return exit::INVALID;
        }
        match RunJournal::reopen(&state, run_id, false).and_then(|mut j| j.abandon()) {
            Ok(()) => {
                eprintln!(
                    "run {run_id} abandoned; the secrets it held are erased from its journal"
                );
                exit::DONE
            }
            Err(e) => self.journal_error(&state, &e),
        }
    }

    /// The run's own lock, and those of the runbooks its `runbook.run` steps can run: taken
    /// before anything runs, so a nested runbook someone else is running refuses the whole
    /// run instead of stopping it half-way.
    fn lock(
        &self,
        state: &std::path::Path,
        catalog: &crate::load::Catalog,
        rb: &Runbook,
        env: &Environment,
        inputs: &IndexMap<String, InputValue>,
        run_id: &str,
    ) -> Result<(RunLock, Arc<HeldLocks>), i32> {
        let own = RunLock::acquire(state, rb.name(), &env.name, run_id).map_err(|e| {
            self.report(&[lock_problem(state, rb.name(), &env.name, e)]);
            exit::INVALID
        })?;
        let children = Arc::new(HeldLocks {
            state: state.to_path_buf(),
            run_id: run_id.to_string(),
            own: (rb.name().to_string(), env.name.clone()),
            held: Default::default(),
        });
        for child in nested_runbooks(rb, &catalog.runbooks, env, inputs) {
            if let Err(p) = children.take(child.name(), &env.name) {
                self.report(&[p]);
                return Err(exit::INVALID);
            }
        }
        Ok((own, children))
    }

    /// The state directory, checked (and made, 0700, for a command that writes): refused when
    /// someone else could write in it.
    fn state(&self, write: bool) -> Result<std::path::PathBuf, i32> {
        let dir = journal::state_dir(self.state_dir.as_deref());
        let checked = if write {
            state::prepare(&dir).and_then(|()| state::check_files(&dir))
        } else {
            state::inspect(&dir).map(|_| ())
        };
        match checked {
            Ok(()) => Ok(dir),
            Err(e) => Err(self.journal_error(&dir, &e)),
        }
    }

    fn journal_error(&self, state: &std::path::Path, e: &std::io::Error) -> i32 {
        if state::unsafe_of(e).is_some() {
            self.report(&[unsafe_problem(e)]);
            return exit::INVALID;
        }
        let p = Problem::error(
            "runbook::journal",
            format!("cannot write the run journal in {}: {e}", state.display()),
        )
        .help("pass --state-dir to a writable directory");
        self.report(&[p]);
        exit::INVALID
    }

    fn execute(&self, mut l: Launch<'_>) -> i32 {
        let redactor = Redactor::new();
        l.journal.set_redactor(redactor.clone());
        for v in l.inputs.values().filter(|v| v.secret) {
            redactor.add(&v.value);
        }
        let health = l.journal.health();
        let journal_path = l.journal.path().to_path_buf();
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        match l.output {
            Output::Json => sinks.push(Box::new(ui::JsonSink::new(std::io::stdout()))),
            Output::Human if std::io::stderr().is_terminal() => {
                sinks.push(Box::new(ui::TerminalSink::new()))
            }
            Output::Human => sinks.push(Box::new(ui::PlainSink::new(std::io::stderr()))),
        }
        let state = journal::state_dir(self.state_dir.as_deref());
        match journal::EventLog::open(&state, &l.run_id) {
            Ok(log) => sinks.push(Box::new(log)),
            Err(e) => return self.journal_error(&state, &e),
        }
        let bus = Bus::new(redactor, sinks);
        let runtime = l.runtime;
        let interrupt = Interrupt::default();
        let engine = Engine {
            runbook: l.rb,
            env: l.env,
            inputs: l.inputs,
            prompter: l.prompter,
            bus,
            interrupt: interrupt.clone(),
            options: RunOptions {
                run_id: l.run_id,
                assume_yes: l.yes,
                selected: l.selected.map(|s| s.into_iter().collect()),
                step_by_step: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(l.step)),
            },
            recorder: Some(std::sync::Arc::new(std::sync::Mutex::new(Box::new(
                l.journal,
            )))),
            library: l.library,
            nesting: crate::engine::Nesting {
                env_confirmed: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
                    l.env_confirmed,
                )),
                locks: Some(l.children.clone()),
                ..Default::default()
            },
            resume: l.resume,
        };
        let run_id = engine.options.run_id.clone();
        let result = runtime.block_on(async move {
            let signals = interrupt.clone();
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    if signals.raise() == 1 {
                        eprintln!(
                            "\nstopping after the current step; press Ctrl-C again to abort it"
                        );
                    }
                }
            });
            engine.run().await
        });
        if let Some(shared) = l.shared
            && let Err(e) = runtime.block_on(shared.release())
        {
            say(&format!("warning: {e}"));
        }
        // Don't wait for background tasks (the signal listener) at exit.
        runtime.shutdown_background();
        let code = result.status.exit_code();
        let h = health.get();
        if let Some(e) = &h.failed {
            // The run stopped at the failed write (or it was the last one); say what is left.
            let secrets = if h.closed {
                "it holds no secret values."
            } else {
                "it still holds this run's secret values in clear (mode 0600)."
            };
            eprintln!(
                "error: the journal of run {run_id} could not be written: {e}\n  left on disk: {} — {secrets}\n  once the disk has room: `runbook abandon {run_id}` erases them, or `runbook resume {run_id}` goes on where the run stopped",
                journal_path.display()
            );
            if h.audit_failed.is_some() || !h.closed {
                eprintln!("  no audit line was written for this attempt");
            }
            return if code == exit::DONE {
                exit::STEP_FAILED
            } else {
                code
            };
        }
        if let Some(e) = &h.audit_failed {
            eprintln!("warning: the audit log line of run {run_id} could not be written: {e}");
        }
        code
    }

    /// The environment's lock in SSM (`shared_lock:`), taken after the local one.
    fn shared_lock(
        &self,
        runtime: &tokio::runtime::Runtime,
        rb: &Runbook,
        env: &Environment,
        run_id: &str,
    ) -> Result<Option<SharedLock>, i32> {
        let Some(spec) = &env.doc.shared_lock else {
            return Ok(None);
        };
        let name = format!(
            "{}/{}.{}",
            spec.parameter_prefix.trim_end_matches('/'),
            rb.name(),
            env.name
        );
        let holder = serde_json::json!({
            "user": crate::engine::operator(),
            "host": journal::hostname(),
            "pid": std::process::id(),
            "run_id": run_id,
            "started": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        });
        let resources = crate::steps::Resources::default();
        let taken = runtime.block_on(ssm::take_shared_lock(
            env,
            &resources,
            &name,
            holder,
            spec.expires_after.0,
        ));
        taken.map(Some).map_err(|e| {
            let p = match e {
                SharedLockError::Held(h) => {
                    let who = serde_json::from_str::<serde_json::Value>(&h).ok();
                    let field = |k: &str| who.as_ref().and_then(|w| w[k].as_str().map(str::to_string)).unwrap_or_else(|| "?".into());
                    let pid = who.as_ref().and_then(|w| w["pid"].as_u64()).unwrap_or(0);
                    Problem::error(
                        "runbook::locked",
                        format!(
                            "`{}` on `{}` is being run by {}@{} (pid {pid}, run {}, since {}) — shared lock {name}",
                            rb.name(),
                            env.name,
                            field("user"),
                            field("host"),
                            field("run_id"),
                            field("started")
                        ),
                    )
                    .help("wait for that run to end; the lock expires by itself if its holder died")
                }
                SharedLockError::Failed(e) => Problem::error("runbook::shared-lock", e.message)
                    .help("the environment's `shared_lock:` needs SSM access (PutParameter, GetParameter, DeleteParameter)"),
            };
            self.report(&[p]);
            exit::INVALID
        })
    }
}

/// For the audit log: whose AWS credentials a runbook that uses AWS runs with (best effort).
fn aws_identity(
    runtime: &tokio::runtime::Runtime,
    rb: &Runbook,
    env: &Environment,
) -> Option<String> {
    let uses_aws = rb.all_steps().any(|s| s.kind.name().starts_with("ssm."));
    if !uses_aws || env.doc.aws.is_none() {
        return None;
    }
    runtime.block_on(ssm::caller_identity(
        env,
        &crate::steps::Resources::default(),
    ))
}

/// The async runtime of a command that talks to the world: two workers, so a background task
/// (an SSH connection opening) goes on while a gate blocks one of them.
pub(super) fn new_runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            exit::STEP_FAILED
        })
}

/// Text for the operator on stderr, wrapped to the terminal's width when it is one.
fn say(text: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("{}", ui::wrap(text, ui::terminal_width()));
    } else {
        eprint!("{text}");
    }
}

impl Ctx {
    /// Whether a person can be asked (a terminal, human output); `--step` needs one.
    fn interactive(&self, step: bool, output: Output) -> Result<bool, i32> {
        let interactive = prompt::is_interactive() && output == Output::Human;
        if step && !interactive {
            self.report(&[step_needs_terminal()]);
            return Err(exit::INVALID);
        }
        Ok(interactive)
    }
}

fn lock_problem(state: &std::path::Path, runbook: &str, env: &str, e: LockError) -> Problem {
    match e {
        LockError::Held(h) => Problem::error(
            "runbook::locked",
            format!(
                "`{runbook}` on `{env}` is being run by {}@{} (pid {}, run {}, since {})",
                h.user, h.host, h.pid, h.run_id, h.started
            ),
        )
        .help("wait for that run to end; two runs of one procedure on one environment would race"),
        LockError::Unreadable { path, why } => Problem::error(
            "runbook::lock-unreadable",
            format!(
                "`{runbook}` on `{env}` is locked by {}, and who holds it cannot be read: {why}",
                path.display()
            ),
        )
        .help(format!(
            "a lock is never taken for stale unless its holder is known to be gone; check that no one runs `{runbook}` on `{env}` (`runbook runs`, ps), then remove it: rm {}",
            path.display()
        )),
        LockError::Io(e) if state::unsafe_of(&e).is_some() => unsafe_problem(&e),
        LockError::Io(e) => Problem::error(
            "runbook::journal",
            format!("cannot take the run lock in {}: {e}", state.display()),
        )
        .help("pass --state-dir to a writable directory"),
    }
}

/// The locks a run holds besides its own: those of the runbooks it runs inside itself, until
/// the whole run ends.
#[derive(Debug)]
pub(super) struct HeldLocks {
    state: std::path::PathBuf,
    run_id: String,
    /// The run's own (runbook, environment): held already.
    own: (String, String),
    held: std::sync::Mutex<Vec<(String, String, RunLock)>>,
}

impl HeldLocks {
    fn take(&self, runbook: &str, env: &str) -> Result<(), Problem> {
        if self.own.0 == runbook && self.own.1 == env {
            return Ok(());
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.iter().any(|(r, e, _)| r == runbook && e == env) {
            return Ok(());
        }
        let lock = RunLock::acquire(&self.state, runbook, env, &self.run_id)
            .map_err(|e| lock_problem(&self.state, runbook, env, e))?;
        held.push((runbook.to_string(), env.to_string(), lock));
        Ok(())
    }
}

impl ChildLocks for HeldLocks {
    fn lock(&self, runbook: &str, env: &str) -> Result<(), String> {
        self.take(runbook, env).map_err(|p| match p.help {
            Some(h) => format!("{} ({h})", p.message),
            None => p.message,
        })
    }
}

/// The runbooks a run of `rb` can run inside itself, through `runbook.run` steps at any depth.
/// A templated name is rendered with the run's inputs at the top level; deeper, or when it
/// cannot be rendered, every choice of the input it names counts (`check` refuses other
/// templated names).
fn nested_runbooks<'a>(
    rb: &Runbook,
    library: &'a [Runbook],
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
) -> Vec<&'a Runbook> {
    let mut found: Vec<&'a Runbook> = Vec::new();
    let mut queue: Vec<(&Runbook, bool)> = vec![(rb, true)];
    while let Some((r, top)) = queue.pop() {
        for step in r.all_steps().filter(|s| s.kind.name() == "runbook.run") {
            let Some(name) = step
                .params
                .get("name")
                .and_then(crate::load::yaml::Node::as_str)
            else {
                continue;
            };
            let mut names = Vec::new();
            if !crate::template::is_template(name) {
                names.push(name.to_string());
            } else {
                let rendered = top
                    .then(|| {
                        let values: serde_json::Map<String, serde_json::Value> = inputs
                            .iter()
                            .map(|(k, v)| (k.clone(), v.value.clone().into()))
                            .collect();
                        let ctx = crate::template::value(serde_json::json!({
                            "inputs": values,
                            "env": env.template_vars(),
                        }));
                        crate::template::render(name, &ctx).ok()
                    })
                    .flatten();
                match rendered {
                    Some(n) => names.push(n),
                    None => {
                        for reference in crate::template::references(name).unwrap_or_default() {
                            if let Some(spec) = reference
                                .strip_prefix("inputs.")
                                .and_then(|i| r.doc.inputs.get(i))
                            {
                                names.extend(spec.choices.clone().unwrap_or_default());
                            }
                        }
                    }
                }
            }
            for n in names {
                if let Some(child) = library.iter().find(|c| c.name() == n)
                    && child.name() != rb.name()
                    && !found.iter().any(|f| f.name() == child.name())
                {
                    found.push(child);
                    queue.push((child, false));
                }
            }
        }
    }
    found
}

fn bad_run_id(id: &str) -> Problem {
    Problem::error(
        "runbook::bad-run-id",
        format!("`{}` is not a run id", id.escape_debug()),
    )
    .help("a run id looks like 20260102-150405-3fa9; `runbook runs` lists them")
}

fn unsafe_problem(e: &std::io::Error) -> Problem {
    let (msg, help) = match state::unsafe_of(e) {
        Some(u) => (u.to_string(), u.help.clone()),
        None => (e.to_string(), String::new()),
    };
    Problem::error("runbook::unsafe-state", msg).help(help)
}

/// What could not be read of a run's journal, said before anything is done with it.
fn print_notes(run: &journal::RunSummary) {
    for n in &run.notes {
        eprintln!("note: run {}: {n}", run.run_id);
    }
}

fn step_needs_terminal() -> Problem {
    Problem::error(
        "runbook::needs-terminal",
        "--step asks before every step and there is no terminal to ask on",
    )
    .help("run it in a terminal (and without --output json), or leave out --step")
}

/// `a`, `a and b`, `a, b and c`, each in backticks.
fn list_ids(ids: &[&str]) -> String {
    let q: Vec<String> = ids.iter().map(|i| format!("`{i}`")).collect();
    match q.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// A run that needs a person must have one, or `--yes`: a gate must never hang and never pass
/// by accident. A protected environment needs its name, typed at the first gate or given as
/// `--confirm-env NAME`, with or without a terminal: `--yes` alone never stands for it.
fn approvals_possible(
    plan: &plan::Plan,
    env: &Environment,
    interactive: bool,
    yes: bool,
    confirm_env: Option<&str>,
) -> Result<(), Problem> {
    if !interactive && plan.needs_operator() && !yes {
        return Err(Problem::error(
            "runbook::needs-terminal",
            format!(
                "`{}` has {} gate(s) or manual step(s) and there is no terminal to ask on",
                plan.runbook,
                plan.gates()
            ),
        )
        .help(
            "run it in a terminal, or pass --yes to approve every gate (see `runbook plan` first)",
        ));
    }
    if let Some(given) = confirm_env
        && given != env.name
    {
        return Err(Problem::error(
            "runbook::confirm-env-mismatch",
            format!(
                "--confirm-env `{}` is not the environment of this run (`{}`)",
                given.escape_debug(),
                env.name
            ),
        )
        .help(format!(
            "--confirm-env must repeat the environment's name: --confirm-env {}",
            env.name
        )));
    }
    if yes && env.doc.protected && confirm_env.is_none() {
        return Err(Problem::error(
            "runbook::protected-env",
            format!(
                "`{}` is a protected environment: --yes alone does not approve it",
                env.name
            ),
        )
        .help(format!(
            "also pass --confirm-env {} (its name, to show the approval was meant), or leave out --yes and type the name at the first gate",
            env.name
        )));
    }
    Ok(())
}
