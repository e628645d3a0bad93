//! `run` and `resume`: starting a run under its locks and journal, and continuing one that
//! stopped (a failure, Ctrl-C, a crash) without repeating finished steps. Both end in
//! [`Session::execute`], which builds the engine and runs it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use indexmap::IndexMap;

use super::announce::{self, Announcer};
use super::attended;
use super::guard;
use super::locks::{self, HeldLocks};
use super::series_cx::SeriesCx;
use super::{Failure, Kind, Session, bad_run_id, journal_error};
use crate::aws::lock::SharedLock;
use crate::catalog::Runbook;
use crate::diag::{Code, Problem};
use crate::engine::event::Bus;
use crate::engine::record;
use crate::engine::{Engine, InputValue, Interrupt, Nesting, RunOptions};
use crate::inputs::{self, Unbound};
use crate::journal::{self, RunJournal, RunLock, RunMeta};
use crate::load::Catalog;
use crate::model::Environment;
use crate::plan;
use crate::secret::Redactor;
use crate::select;

/// How `resume` treats a step that was running when the run died.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InFlight {
    /// Run it again.
    Rerun,
    /// It took effect (checked by hand): go on after it.
    Done,
}

/// How the operator approves: `--yes` (with `--confirm-env` for a protected environment
/// without a terminal), and `--step` to be asked before every step.
#[derive(Debug, Default, Clone, Copy)]
pub struct Approval<'a> {
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

/// A new run: the runbook, the environment (asked for on a terminal when absent), the
/// `--input NAME=VALUE` pairs, how it is approved and which steps run.
#[derive(Debug)]
pub struct Start<'a> {
    pub name: &'a str,
    pub env: Option<&'a str>,
    pub inputs: &'a [String],
    pub approval: Approval<'a>,
    pub selection: Selection,
    /// `--no-preflight`: start without the checks that the run can finish (recorded).
    pub no_preflight: bool,
    /// `--new`: abandon the unfinished runs a new one would start beside (recorded).
    pub new: bool,
}

/// A run to continue (default: the latest unfinished one).
#[derive(Debug)]
pub struct Resume<'a> {
    pub run_id: Option<&'a str>,
    /// Resume even though the runbook changed since the run began (recorded).
    pub force: bool,
    /// For a step that was running when the run died and is not safe to repeat blindly.
    pub in_flight: Option<InFlight>,
    pub approval: Approval<'a>,
    /// `--no-preflight` (as for `run`).
    pub no_preflight: bool,
}

/// A new run on one environment, everything about it decided: the runbook, the environment,
/// the bound inputs, the selected steps and how it is approved.
#[derive(Clone, Copy)]
pub(super) struct One<'a> {
    pub(super) catalog: &'a Catalog,
    pub(super) rb: &'a Runbook,
    pub(super) env: &'a Environment,
    pub(super) values: &'a IndexMap<String, InputValue>,
    pub(super) selected: Option<&'a [String]>,
    pub(super) interactive: bool,
    pub(super) approval: Approval<'a>,
    pub(super) no_preflight: bool,
    pub(super) new: bool,
}

/// What [`Session::admit`] found: the run's plan, the state directory, and the unfinished
/// runs `--new` abandons when the run starts.
pub(super) struct Admitted {
    plan: plan::Plan,
    state: std::path::PathBuf,
    unfinished: Vec<guard::Unfinished>,
}

/// Everything `execute` needs, for a new run or a resumed one.
struct Launch<'a> {
    rb: &'a Runbook,
    /// Every runbook of the directory, for `runbook.run` steps.
    library: &'a [Runbook],
    env: &'a Environment,
    inputs: IndexMap<String, InputValue>,
    yes: bool,
    run_id: String,
    resume: record::Resume,
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
    /// The steps that change nothing elsewhere (`guard::harmless`).
    harmless: HashSet<String>,
    /// A run continued by `resume` (announced as such).
    resumed: bool,
}

impl Session {
    /// Whether a person can be asked; `--step` needs one.
    pub(super) fn interactive(&self, step: bool) -> Result<bool, Failure> {
        let interactive = self.front.interactive();
        if step && !interactive {
            return Err(Failure::invalid(step_needs_terminal()));
        }
        Ok(interactive)
    }

    /// Run a runbook against an environment, from its first selected step.
    pub fn run(&self, start: Start<'_>) -> Result<(), Failure> {
        let interactive = self.interactive(start.approval.step)?;
        let catalog = self.catalog()?;
        let rb = self.runbook(&catalog, start.name)?;
        let selected = Self::selection(rb, &start.selection)?;
        let env = self.environment_for(&catalog, rb, start.env, interactive)?;
        let values = self.bind_inputs(rb, start.inputs)?;
        self.run_one(
            &One {
                catalog: &catalog,
                rb,
                env,
                values: &values,
                selected: selected.as_deref(),
                interactive,
                approval: start.approval,
                no_preflight: start.no_preflight,
                new: start.new,
            },
            journal::new_run_id(),
            None,
        )
    }

    /// The main steps `--from`/`--only` select (`None`: all), refused when one that runs
    /// reads an output of one that does not.
    pub(super) fn selection(
        rb: &Runbook,
        selection: &Selection,
    ) -> Result<Option<Vec<String>>, Failure> {
        let selected = select::select(rb, selection.from.as_deref(), &selection.only)
            .map_err(Failure::invalid)?;
        if let Some(sel) = &selected {
            let missing = select::missing_outputs(rb, sel);
            if !missing.is_empty() {
                let problems: Vec<Problem> = missing
                    .iter()
                    .map(|m| {
                        Problem::error(
                            Code::UnselectedOutput,
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
                return Err(Failure::invalid_all(problems));
            }
        }
        Ok(selected)
    }

    /// The run's inputs: given, from `RUNBOOK_INPUT_<NAME>`, default, or asked.
    pub(super) fn bind_inputs(
        &self,
        rb: &Runbook,
        given: &[String],
    ) -> Result<IndexMap<String, InputValue>, Failure> {
        inputs::for_run(rb.name(), &rb.doc.inputs, given, self.front.prompter()).map_err(
            |u| match u {
                Unbound::Invalid(p) => Failure::invalid(p),
                Unbound::Interrupted => Failure::quiet(Kind::Interrupted),
            },
        )
    }

    /// Whether a run of `one` may start, decided without the network: a person to ask (or
    /// `--yes`), the protected environment's name, no unfinished run it would start beside
    /// (unless `--new`). Returns its plan, the state directory and the runs `--new` abandons.
    pub(super) fn admit(&self, one: &One<'_>) -> Result<Admitted, Failure> {
        let One {
            catalog,
            rb,
            env,
            values,
            selected,
            interactive,
            approval,
            ..
        } = *one;
        let plan = plan::plan(rb, env, values);
        // Only the steps that run: their gates are the ones to approve.
        let mut to_run = plan::plan(rb, env, values);
        if let Some(sel) = selected {
            to_run.steps.retain(|s| sel.contains(&s.id));
        }
        if !interactive {
            let done = Default::default();
            attended::refuse_unattended_manual_steps(
                rb,
                &catalog.runbooks,
                env,
                values,
                selected,
                &done,
            )?;
        }
        approvals_possible(
            &to_run,
            env,
            interactive,
            approval.yes,
            approval.confirm_env,
        )
        .map_err(Failure::invalid)?;
        let state = self.state(true)?;
        // Refused before anything else: two half-done rotations of one secret would each hold
        // a value the other overwrote.
        let unfinished = guard::unfinished(&state, rb, &catalog.runbooks, env, values);
        // `--new` abandons a stopped run; a running one cannot be abandoned from here.
        let running: Vec<guard::Unfinished> = unfinished
            .iter()
            .filter(|u| u.run.status == "running")
            .cloned()
            .collect();
        if !running.is_empty() {
            return Err(guard::refuse_unfinished(&running, rb, env));
        }
        if !unfinished.is_empty() && !one.new {
            return Err(guard::refuse_unfinished(&unfinished, rb, env));
        }
        Ok(Admitted {
            plan,
            state,
            unfinished,
        })
    }

    /// One run of `one`, as `run_id`: admitted, locked, checked by preflight, journaled and
    /// executed. In a series, `series` is its id, and a Ctrl-C it saw before this run's
    /// journal exists stops the run before it starts.
    pub(super) fn run_one(
        &self,
        one: &One<'_>,
        run_id: String,
        series: Option<&SeriesCx>,
    ) -> Result<(), Failure> {
        let Admitted {
            plan,
            state,
            unfinished,
        } = self.admit(one)?;
        let One {
            catalog,
            rb,
            env,
            values,
            selected,
            interactive,
            approval,
            ..
        } = *one;
        // One line a step: the full plan would scroll the first gate off a small screen.
        if interactive {
            self.front.say(&plan.render_compact(self.front.width()));
        }
        if let Some(sel) = selected {
            let skipped: Vec<&str> = rb
                .steps
                .iter()
                .map(|s| s.id())
                .filter(|id| !sel.iter().any(|s| s == id))
                .collect();
            self.front.say(&format!(
                "warning: partial run: {} will not run (not selected). The selected steps read none of their outputs; anything else they do (a secret written, a service redeployed) you must have done or checked yourself.\n",
                list_ids(&skipped)
            ));
        }
        let (lock, children) = locks::lock(&state, &catalog.runbooks, rb, env, values, &run_id)?;
        let runtime = super::runtime()?;
        // Steps that will not run need nothing.
        let unselected: HashSet<String> = match selected {
            Some(sel) => rb
                .steps
                .iter()
                .map(|s| s.id().to_string())
                .filter(|id| !sel.contains(id))
                .collect(),
            None => HashSet::new(),
        };
        self.preflight(
            &runtime,
            rb,
            env,
            values,
            &unselected,
            false,
            one.no_preflight,
        )?;
        // From here the run is under way: a Ctrl-C is the engine's to handle.
        let _running = match series {
            Some(s) => Some(s.start_run(&env.name)?),
            None => None,
        };
        let abandoned: Vec<String> = unfinished.iter().map(|u| u.run.run_id.clone()).collect();
        for old in &abandoned {
            RunJournal::reopen(&state, old, false, false)
                .and_then(|mut j| j.abandon(Some(&run_id)))
                .map_err(|e| journal_error(&state, &e))?;
            self.front.line(&format!(
                "run {old} abandoned (--new): the secrets its journal held are erased"
            ));
        }
        let shared = locks::shared_lock(&runtime, rb, env, &run_id)?;
        let meta = RunMeta {
            run_id: &run_id,
            runbook: rb,
            env: &env.name,
            inputs: values,
            selected,
            aws_identity: locks::aws_identity(&runtime, rb, env),
            no_preflight: one.no_preflight,
            abandoned: &abandoned,
            series: series.map(|s| s.id.as_str()),
        };
        let journal = RunJournal::create(&state, &meta).map_err(|e| journal_error(&state, &e))?;
        self.execute(Launch {
            rb,
            library: &catalog.runbooks,
            env,
            inputs: values.clone(),
            yes: approval.yes,
            run_id,
            resume: record::Resume::default(),
            selected: selected.map(<[String]>::to_vec),
            step: approval.step,
            env_confirmed: approval.confirm_env.is_some(),
            journal,
            _lock: lock,
            children,
            runtime,
            shared,
            harmless: guard::harmless(&plan),
            resumed: false,
        })
    }

    /// Preflight before the journal exists, or say loudly that it was skipped.
    #[expect(
        clippy::too_many_arguments,
        reason = "what the run is, what runs, and the two flags"
    )]
    fn preflight(
        &self,
        runtime: &tokio::runtime::Runtime,
        rb: &Runbook,
        env: &Environment,
        inputs: &IndexMap<String, InputValue>,
        skip: &HashSet<String>,
        changed: bool,
        no_preflight: bool,
    ) -> Result<(), Failure> {
        if no_preflight {
            self.front.say(
                "warning: --no-preflight: the checks that this run can finish were not made (recorded in the audit log)\n",
            );
            return Ok(());
        }
        guard::preflight(self.front.as_ref(), runtime, rb, env, inputs, skip, changed)
    }

    /// Continue a run that stopped at its first unfinished step.
    pub fn resume(&self, request: Resume<'_>) -> Result<(), Failure> {
        let Resume {
            run_id,
            force,
            in_flight,
            approval,
            no_preflight,
        } = request;
        let Approval {
            yes,
            confirm_env,
            step,
        } = approval;
        let interactive = self.interactive(step)?;
        if let Some(id) = run_id
            && !journal::valid_run_id(id)
        {
            return Err(Failure::invalid(bad_run_id(id)));
        }
        let state = self.state(true)?;
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
                    Code::NoSuchRun,
                    format!("no run `{id}` in {}", state.display()),
                ),
                None => Problem::error(
                    Code::NothingToResume,
                    "there is no unfinished run to resume",
                ),
            }
            .help("`runbook runs` lists the runs and their status");
            return Err(Failure::invalid(p));
        };
        self.notes(&run);
        if !run.resumable {
            let mut p = Problem::error(
                Code::NotResumable,
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
            return Err(Failure::invalid(p));
        }
        let catalog = self.catalog()?;
        let rb = self.runbook(&catalog, &run.runbook)?;
        let env = self.environment_for(&catalog, rb, Some(&run.env), false)?;
        let began_with = run.records.iter().find_map(|r| match r {
            journal::JRec::Meta { digest, .. } => Some(digest.clone()),
            _ => None,
        });
        if began_with.as_deref() != Some(rb.digest().as_str()) && !force {
            let p = Problem::error(
                Code::ChangedSinceRun,
                format!("`{}` changed since run {} began; resuming could mix two versions of the procedure", rb.name(), run.run_id),
            )
            .help("review the change; `runbook resume --force` goes on with the new version and records that you did");
            return Err(Failure::invalid(p));
        }
        let (mut resume, in_flight_step, inputs) = journal::resume_point(&run);
        if let Some(missing) = rb.doc.inputs.keys().find(|k| !inputs.contains_key(*k)) {
            let p = Problem::error(
                Code::MissingInput,
                format!(
                    "input `{missing}` was not recorded when run {} began",
                    run.run_id
                ),
            )
            .help("the runbook gained an input since; start a new run instead");
            return Err(Failure::invalid(p));
        }

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
                None if idempotent => InFlight::Rerun,
                None if interactive => {
                    self.front.line(&format!(
                        "Step `{}` was running when run {} stopped; whether it took effect is unknown.",
                        step.id, run.run_id
                    ));
                    let options = vec![
                        "run it again".to_string(),
                        "it took effect (I checked): go on after it".to_string(),
                        "stop here".to_string(),
                    ];
                    match self.front.prompter().ask(
                        "What now?",
                        Some(&options),
                        Some(&options[2]),
                        false,
                    ) {
                        Ok(a) if a == options[0] => InFlight::Rerun,
                        Ok(a) if a == options[1] => InFlight::Done,
                        Ok(_) => return Err(Failure::quiet(Kind::Declined)),
                        Err(_) => return Err(Failure::quiet(Kind::Interrupted)),
                    }
                }
                None => {
                    let p = Problem::error(
                        Code::InFlight,
                        format!(
                            "step `{}` was running when run {} stopped, and it is not safe to repeat blindly",
                            step.id, run.run_id
                        ),
                    )
                    .help("check whether it took effect, then pass --in-flight rerun or --in-flight done");
                    return Err(Failure::invalid(p));
                }
            };
            if choice == InFlight::Done {
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
        if !interactive {
            let sel = selected.as_deref();
            let done = &resume.done;
            attended::refuse_unattended_manual_steps(
                rb,
                &catalog.runbooks,
                env,
                &inputs,
                sel,
                done,
            )?;
        }
        approvals_possible(&plan, env, interactive, yes, confirm_env).map_err(Failure::invalid)?;
        let (lock, children) =
            locks::lock(&state, &catalog.runbooks, rb, env, &inputs, &run.run_id)?;
        let runtime = super::runtime()?;
        // Only what is still to run: a finished step's needs may be gone by now (the old
        // password it logged in with), and it does not run again.
        let mut skip: HashSet<String> = resume.done.iter().cloned().collect();
        if let Some(sel) = &selected {
            skip.extend(
                rb.steps
                    .iter()
                    .map(|s| s.id().to_string())
                    .filter(|id| !sel.contains(id)),
            );
        }
        // Half done already: the app may be failing because of it, which the run is there to
        // finish (or roll back); its checks are made by the run, not judged now.
        let changed = !journal::kept(
            &run.records,
            &guard::harmless(&plan::plan(rb, env, &inputs)),
        )
        .changed
        .is_empty();
        self.preflight(&runtime, rb, env, &inputs, &skip, changed, no_preflight)?;
        let shared = locks::shared_lock(&runtime, rb, env, &run.run_id)?;
        let digest_changed = began_with.as_deref() != Some(rb.digest().as_str());
        let mut journal = RunJournal::reopen(&state, &run.run_id, digest_changed, no_preflight)
            .map_err(|e| journal_error(&state, &e))?;
        if let Some(step) = &assume_done {
            journal::assume_done(&mut journal, step).map_err(|e| journal_error(&state, &e))?;
        }
        let harmless = guard::harmless(&plan::plan(rb, env, &inputs));
        self.front.say(&format!(
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
            harmless,
            resumed: true,
        })
    }

    /// Build the engine (the frontend's sinks and the run's event log on one bus, the journal
    /// as its recorder) and run it until it ends or Ctrl-C stops it.
    fn execute(&self, mut l: Launch<'_>) -> Result<(), Failure> {
        let redactor = Redactor::new();
        l.journal.set_redactor(redactor.clone());
        l.journal.set_harmless(l.harmless.clone());
        for v in l.inputs.values().filter(|v| v.secret) {
            redactor.add(&v.value);
        }
        let health = l.journal.health();
        let journal_path = l.journal.path().to_path_buf();
        let mut sinks = self.front.sinks();
        let state = journal::state_dir(self.state_dir.as_deref());
        match journal::EventLog::open(&state, &l.run_id) {
            Ok(log) => sinks.push(Box::new(log)),
            Err(e) => return Err(journal_error(&state, &e)),
        }
        let bus = Bus::new(redactor, sinks);
        let runtime = l.runtime;
        let interrupt = Interrupt::default();
        let engine = Engine {
            runbook: l.rb,
            env: l.env,
            inputs: l.inputs,
            prompter: self.front.prompter(),
            bus,
            interrupt: interrupt.clone(),
            options: RunOptions {
                run_id: l.run_id,
                assume_yes: l.yes,
                selected: l.selected.map(|s| s.into_iter().collect()),
                step_by_step: Arc::new(AtomicBool::new(l.step)),
            },
            recorder: Some(Arc::new(std::sync::Mutex::new(Box::new(l.journal)))),
            library: l.library,
            nesting: Nesting {
                env_confirmed: Arc::new(AtomicBool::new(l.env_confirmed)),
                locks: Some(l.children.clone()),
                ..Default::default()
            },
            resume: l.resume,
        };
        let run_id = engine.options.run_id.clone();
        // Everything but the steps that change nothing elsewhere: an audit is not announced.
        let changes = {
            let plan = plan::plan(l.rb, l.env, &engine.inputs);
            l.harmless.len() < plan.steps.len() + plan.rollback.len()
        };
        let announcer = Announcer::of_run(l.env, l.rb.name(), &run_id, l.resumed, changes);
        let front = self.front.clone();
        let said = self.front.clone();
        let watch = interrupt.clone();
        let result = runtime.block_on(async move {
            let signals = interrupt.clone();
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    // What the engine does now: inside a change window, not what it does
                    // elsewhere (the message says which).
                    if let Some(m) = signals.message(signals.raise()) {
                        front.interrupted(&m);
                    }
                }
            });
            // Announced inside the signal listener's reach: a Ctrl-C gives up the start's
            // post (the run then stops before its first step) and the end is still
            // announced; a further Ctrl-C gives that up too. Nobody waits on a chat service.
            if let Some(a) = &announcer {
                let text = a.start_text();
                let w = tokio::select! {
                    w = a.post(&text, "the start") => w,
                    () = announce::ctrl_c_beyond(&watch, 0) => Some(a.given_up("the start")),
                };
                if let Some(w) = w {
                    said.line(&w);
                }
            }
            let result = engine.run().await;
            if let Some(a) = &announcer {
                let text = a.end_text(result.status);
                let level = watch.level();
                let w = tokio::select! {
                    w = a.post(&text, "the end") => w,
                    () = announce::ctrl_c_beyond(&watch, level) => Some(a.given_up("the end")),
                };
                if let Some(w) = w {
                    said.line(&w);
                }
            }
            result
        });
        if let Some(shared) = l.shared
            && let Err(e) = runtime.block_on(shared.release())
        {
            self.front.say(&format!("warning: {e}"));
        }
        // Don't wait for background tasks (the signal listener) at exit.
        runtime.shutdown_background();
        let ended = Failure::of_run(result.status);
        let h = health.get();
        if h.failed.is_none() && result.status != crate::engine::event::RunStatus::Done {
            if h.closed && result.status == crate::engine::event::RunStatus::Declined {
                self.front.line(&format!(
                    "note: nothing was changed elsewhere before the decline: run {run_id} is over and its journal holds no secret; `runbook run` starts again"
                ));
            } else if !h.closed {
                for line in guard::kept_secrets(&journal_path, &run_id, &l.harmless) {
                    self.front.line(&line);
                }
            }
        }
        if let Some(e) = &h.failed {
            // The run stopped at the failed write (or it was the last one); say what is left.
            let secrets = if h.closed {
                "it holds no secret values."
            } else {
                "it still holds this run's secret values in clear (mode 0600)."
            };
            let mut failure = ended
                .err()
                .unwrap_or(Failure::quiet(Kind::StepFailed))
                .line(format!(
                "error: the journal of run {run_id} could not be written: {e}\n  left on disk: {} — {secrets}\n  once the disk has room: `runbook abandon {run_id}` erases them, or `runbook resume {run_id}` goes on where the run stopped",
                journal_path.display()
            ));
            if h.audit_failed.is_some() || !h.closed {
                failure = failure.line("  no audit line was written for this attempt");
            }
            return Err(failure);
        }
        if let Some(e) = &h.audit_failed {
            self.front.line(&format!(
                "warning: the audit log line of run {run_id} could not be written: {e}"
            ));
        }
        ended
    }
}

fn step_needs_terminal() -> Problem {
    Problem::error(
        Code::NeedsTerminal,
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
            Code::NeedsTerminal,
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
            Code::ConfirmEnvMismatch,
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
            Code::ProtectedEnv,
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
