//! The engine: runs a checked runbook's steps in order against one environment.
//!
//! It renders templates, evaluates `when:`, asks at gates, applies `timeout`/`retry`/
//! `on_failure`, and reports everything as [`event::Event`]s. It never prints and knows no
//! AWS, SSH or SQL: those live in the step kinds.

pub mod event;
pub mod record;
pub mod taint;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use minijinja::Value;

use crate::load::yaml::Node;
use crate::model::{Environment, OnFailure, Runbook, Step};
use crate::steps::{
    Effect, MASK, Nested, Output, PromptError, Prompter, Resources, RunCx, StepAnswer, StepError,
};
use crate::template;
use event::{Bus, Event, RunStatus, StepStatus};
use record::{Phase, Record, Recorder, Resume};

/// An input value the operator gave.
#[derive(Debug, Clone)]
pub struct InputValue {
    pub value: String,
    pub secret: bool,
}

/// Ctrl-C state shared with the signal handler: 0 running, 1 stop after this step, 2 abort now.
#[derive(Debug, Default, Clone)]
pub struct Interrupt {
    level: Arc<AtomicU8>,
    notify: Arc<tokio::sync::Notify>,
}

impl Interrupt {
    pub fn raise(&self) -> u8 {
        let level = self.level.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        self.notify.notify_waiters();
        level
    }
    pub fn level(&self) -> u8 {
        self.level.load(Ordering::SeqCst)
    }
    async fn aborted(&self) {
        loop {
            let notified = self.notify.notified();
            if self.level() >= 2 {
                return;
            }
            notified.await;
        }
    }
}

pub struct RunOptions {
    pub run_id: String,
    /// Approve every gate (`--yes`).
    pub assume_yes: bool,
    /// The main steps that run (`--from`, `--only`); `None` runs them all. The others are
    /// reported as skipped and produce no outputs.
    pub selected: Option<HashSet<String>>,
    /// Step by step (`--step`): ask before every step while this is true; answering
    /// "continue" clears it. Shared with nested runbooks.
    pub step_by_step: Arc<AtomicBool>,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub status: RunStatus,
    pub message: Option<String>,
}

/// Everything a run needs; [`Engine::run`] consumes it.
pub struct Engine<'a> {
    pub runbook: &'a Runbook,
    pub env: &'a Environment,
    pub inputs: IndexMap<String, InputValue>,
    pub prompter: &'a dyn Prompter,
    pub bus: Bus,
    pub interrupt: Interrupt,
    pub options: RunOptions,
    /// The run journal; every step transition is recorded before the run goes on.
    pub recorder: Option<Arc<std::sync::Mutex<Box<dyn Recorder>>>>,
    /// Every runbook of the directory, for `runbook.run` steps.
    pub library: &'a [Runbook],
    /// Where this engine sits when it runs a runbook inside another one.
    pub nesting: Nesting,
    /// Where a resumed run starts (empty for a new run).
    pub resume: Resume,
}

/// A runbook run by a `runbook.run` step journals its steps as `<parent step>/<step>`, shares
/// the run's "protected environment confirmed" state and its locks, and may not nest without
/// end.
#[derive(Debug, Clone, Default)]
pub struct Nesting {
    pub prefix: String,
    pub depth: u8,
    pub env_confirmed: Arc<AtomicBool>,
    /// Takes the run lock of a nested runbook before it starts (none: no locks, as in tests).
    pub locks: Option<Arc<dyn ChildLocks>>,
}

/// The run locks of the runbooks a run runs inside itself: a nested runbook runs under its own
/// lock (runbook, environment), like a run of it on its own, held until the whole run ends.
pub trait ChildLocks: Send + Sync + std::fmt::Debug {
    /// Take (or find already held by this run) the lock of `runbook` on `env`; the error says
    /// who holds it.
    fn lock(&self, runbook: &str, env: &str) -> Result<(), String>;
}

const MAX_NESTING: u8 = 4;

/// Outputs of finished steps, by step id.
type StepOutputs = IndexMap<String, Vec<Output>>;

impl Engine<'_> {
    pub async fn run(self) -> RunResult {
        let started = Instant::now();
        let redactor = self.bus.redactor.clone();
        for v in self.inputs.values().filter(|v| v.secret) {
            redactor.add(&v.value);
        }
        let total = self.runbook.steps.len();
        self.bus.emit(Event::RunStarted {
            format: event::EVENT_FORMAT,
            run_id: self.options.run_id.clone(),
            runbook: self.runbook.name().to_string(),
            env: self.env.name.clone(),
            steps: total,
            digest: self.runbook.digest(),
            dry_run: false,
        });
        if !self.env.doc.hosts.is_empty() {
            crate::steps::ssh::reap_orphans().await;
        }
        let resources = Resources::default();
        let prompter = MaskedPrompter {
            inner: self.prompter,
            bus: &self.bus,
        };
        for outs in self.resume.outputs.values() {
            for o in outs.iter().filter(|o| o.secret) {
                redactor.add_json(&o.value);
            }
        }
        let mut state = State {
            outputs: self.resume.outputs.clone(),
            ok: 0,
            failed: 0,
            skipped: 0,
        };
        let mut status = RunStatus::Done;
        let mut message = None;

        let mut rollback = self.resume.rollback.clone();
        if rollback.is_none() {
            for (i, step) in self.runbook.steps.iter().enumerate() {
                if let Some(selected) = &self.options.selected
                    && !selected.contains(step.id())
                {
                    state.skipped += 1;
                    self.bus.emit(Event::StepSkipped {
                        index: i + 1,
                        total,
                        id: step.id().to_string(),
                        reason: "not selected".into(),
                    });
                    continue;
                }
                if self.resume.done.contains(step.id()) {
                    self.bus.emit(Event::StepSkipped {
                        index: i + 1,
                        total,
                        id: step.id().to_string(),
                        reason: "finished before the resume".into(),
                    });
                    continue;
                }
                if self.interrupt.level() > 0 {
                    status = RunStatus::Interrupted;
                    message = Some(format!("interrupted before step `{}`", step.id()));
                    break;
                }
                match self
                    .run_step(
                        step,
                        Phase::Main,
                        i + 1,
                        total,
                        &mut state,
                        &resources,
                        &prompter,
                    )
                    .await
                {
                    Flow::Next => {}
                    Flow::Stop(s, m) => {
                        status = s;
                        message = m;
                        break;
                    }
                    Flow::Rollback(target, failed_msg) => {
                        if let Err(e) = self.record(Record::RollbackStarted {
                            failed: step.id(),
                            from: &target,
                        }) {
                            status = RunStatus::Failed;
                            message = Some(e);
                            break;
                        }
                        self.bus.emit(Event::RollbackStarted {
                            failed: step.id().to_string(),
                            from: target.clone(),
                        });
                        rollback = Some((
                            target,
                            format!("step `{}` failed ({failed_msg})", step.id()),
                        ));
                        break;
                    }
                }
            }
        } else if let Some((target, failed)) = &rollback {
            self.bus.emit(Event::RollbackStarted {
                failed: failed.clone(),
                from: target.clone(),
            });
        }
        if let Some((target, why)) = rollback {
            let rb = self
                .rollback(&target, &mut state, &resources, &prompter)
                .await;
            (status, message) = match rb {
                Ok(()) => (
                    RunStatus::RolledBack,
                    Some(format!("{why}; rollback from `{target}` completed")),
                ),
                Err((RunStatus::Failed, m)) => (
                    RunStatus::Failed,
                    Some(format!("{why}; rollback from `{target}` ALSO FAILED: {m}")),
                ),
                // Declined or interrupted during the rollback: resumable, and said plainly.
                Err((s, m)) => (
                    s,
                    Some(format!("{why}; rollback from `{target}` stopped: {m}")),
                ),
            };
        }
        let message = message.map(|m| redactor.redact(&m).into_owned());
        if let Err(e) = self.record(Record::RunFinished {
            status,
            message: message.as_deref(),
        }) {
            self.bus.emit(Event::Note {
                id: String::new(),
                text: format!("warning: {e}"),
            });
        }
        self.bus.emit(Event::RunFinished {
            run_id: self.options.run_id.clone(),
            status,
            duration_ms: millis(started.elapsed()),
            ok: state.ok,
            failed: state.failed,
            skipped: state.skipped,
            message: message.clone(),
        });
        self.bus.finish();
        RunResult { status, message }
    }

    async fn rollback(
        &self,
        target: &str,
        state: &mut State,
        resources: &Resources,
        prompter: &MaskedPrompter<'_>,
    ) -> Result<(), (RunStatus, String)> {
        let start = self
            .runbook
            .rollback
            .iter()
            .position(|s| s.id() == target)
            .unwrap_or(0);
        let steps = &self.runbook.rollback[start..];
        for (i, step) in steps.iter().enumerate() {
            if self.resume.done.contains(step.id()) {
                continue;
            }
            match self
                .run_step(
                    step,
                    Phase::Rollback,
                    i + 1,
                    steps.len(),
                    state,
                    resources,
                    prompter,
                )
                .await
            {
                Flow::Next => {}
                Flow::Stop(s, m) => {
                    return Err((
                        s,
                        m.unwrap_or_else(|| format!("rollback step `{}` failed", step.id())),
                    ));
                }
                Flow::Rollback(_, m) => return Err((RunStatus::Failed, m)),
            }
        }
        Ok(())
    }

    /// Append a record to the journal; an error stops the run (nothing may happen unrecorded).
    fn record(&self, rec: Record<'_>) -> Result<(), String> {
        let Some(r) = &self.recorder else {
            return Ok(());
        };
        let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
        let result = if self.nesting.prefix.is_empty() {
            r.record(rec)
        } else {
            let p = |id: &str| format!("{}{id}", self.nesting.prefix);
            match rec {
                // The run that holds this one records how the whole run ended.
                Record::RunFinished { .. } => Ok(()),
                Record::Gate { id, approved, by } => r.record(Record::Gate {
                    id: &p(id),
                    approved,
                    by,
                }),
                Record::StepStarted { phase, id } => {
                    r.record(Record::StepStarted { phase, id: &p(id) })
                }
                Record::StepFinished {
                    phase,
                    id,
                    status,
                    outputs,
                } => r.record(Record::StepFinished {
                    phase,
                    id: &p(id),
                    status,
                    outputs,
                }),
                Record::RollbackStarted { failed, from } => r.record(Record::RollbackStarted {
                    failed: &p(failed),
                    from: &p(from),
                }),
            }
        };
        result.map_err(|e| format!("cannot write the run journal: {e}"))
    }

    /// Make the journal durable before a step that changes something elsewhere.
    fn sync(&self) -> Result<(), String> {
        let Some(r) = &self.recorder else {
            return Ok(());
        };
        let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
        r.sync()
            .map_err(|e| format!("cannot write the run journal to disk: {e}"))
    }

    /// What a step's templates see, and its shadow when it holds a secret ([`taint`]).
    fn context(&self, outputs: &StepOutputs) -> taint::Contexts {
        // Values that are not secrets may still hold one (a command's output that printed it,
        // an input a parent run filled from a secret): their shadow replaces what the
        // redactor knows in them.
        // Every secret of the run is registered before a step can read it (inputs at the
        // start, outputs as their step ends), so an empty redactor means nothing to shadow.
        let redactor = &self.bus.redactor;
        let build = |shadow: bool| {
            let inputs: serde_json::Map<String, serde_json::Value> = self
                .inputs
                .iter()
                .map(|(k, v)| {
                    let value = v.value.clone().into();
                    let value = if shadow {
                        taint::shadow(&value, v.secret, redactor)
                    } else {
                        value
                    };
                    (k.clone(), value)
                })
                .collect();
            let steps: serde_json::Map<String, serde_json::Value> = outputs
                .iter()
                .map(|(id, outs)| {
                    let m: serde_json::Map<String, serde_json::Value> = outs
                        .iter()
                        .map(|o| {
                            let value = if shadow {
                                taint::shadow(&o.value, o.secret, redactor)
                            } else {
                                o.value.clone()
                            };
                            (o.name.clone(), value)
                        })
                        .collect();
                    (id.clone(), m.into())
                })
                .collect();
            crate::template::value(serde_json::json!({
                "inputs": inputs,
                "env": self.env.template_vars(),
                "steps": steps,
            }))
        };
        taint::Contexts {
            real: build(false),
            shadow: (!redactor.is_empty()).then(|| build(true)),
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the run's state, passed down explicitly"
    )]
    async fn run_step(
        &self,
        step: &Step,
        phase: Phase,
        index: usize,
        total: usize,
        state: &mut State,
        resources: &Resources,
        prompter: &MaskedPrompter<'_>,
    ) -> Flow {
        let id = step.id().to_string();
        // Building the context costs a copy of every earlier output: only for steps that read it.
        let ctx = if uses_templates(step) {
            self.context(&state.outputs)
        } else {
            taint::Contexts::undefined()
        };
        let redactor = &self.bus.redactor;
        let fail = |state: &mut State, error: String, detail: Option<String>, started: Instant| {
            state.failed += 1;
            let status = if step.common.on_failure == Some(OnFailure::Continue) {
                StepStatus::FailedIgnored
            } else {
                StepStatus::Failed
            };
            if let Err(e) = self.record(Record::StepFinished {
                phase,
                id: &id,
                status,
                outputs: &[],
            }) {
                return Flow::Stop(RunStatus::Failed, Some(e));
            }
            self.bus.emit(Event::StepFinished {
                index,
                total,
                id: id.clone(),
                status,
                duration_ms: millis(started.elapsed()),
                error: Some(error.clone()),
                detail,
                outputs: Default::default(),
            });
            self.after_failure(step, error)
        };

        if let Some(cond) = &step.common.when {
            match template::eval_condition(cond, &ctx.real) {
                Ok(true) => {}
                Ok(false) => {
                    state.skipped += 1;
                    let rec = Record::StepFinished {
                        phase,
                        id: &id,
                        status: StepStatus::Skipped,
                        outputs: &[],
                    };
                    if let Err(e) = self.record(rec) {
                        return Flow::Stop(RunStatus::Failed, Some(e));
                    }
                    self.bus.emit(Event::StepSkipped {
                        index,
                        total,
                        id,
                        reason: format!("when: {cond}"),
                    });
                    return Flow::Next;
                }
                Err(e) => {
                    return fail(
                        state,
                        format!("`when` could not be evaluated: {}", e.message),
                        None,
                        Instant::now(),
                    );
                }
            }
        }

        let rendered = match render_node_tracked(&step.params, &ctx, redactor) {
            Ok(n) => n,
            Err(e) => return fail(state, e, None, Instant::now()),
        };
        let (action, effect) = match step.kind.describe(&rendered) {
            Ok(d) => d,
            Err(e) => {
                return fail(
                    state,
                    format!("invalid parameters: {e}"),
                    None,
                    Instant::now(),
                );
            }
        };

        if self.options.step_by_step.load(Ordering::SeqCst)
            && let Some(stop) = self.ask_step(step, index, total, &action, prompter)
        {
            return stop;
        }

        if let Some(question) = &step.common.confirm {
            let question = match taint::render(question, &ctx, redactor) {
                Ok(q) => q,
                Err(e) => return fail(state, e.message, None, Instant::now()),
            };
            if !self.options.assume_yes {
                crate::steps::warm_up(step.kind, &rendered, self.env, resources);
            }
            match self.gate(&id, &question, &action, prompter) {
                Ok(true) => {}
                Ok(false) => {
                    return Flow::Stop(
                        RunStatus::Declined,
                        Some(format!("declined at step `{id}`; nothing after it ran")),
                    );
                }
                Err(PromptError::Interrupted) => {
                    return Flow::Stop(
                        RunStatus::Interrupted,
                        Some(format!("interrupted at the gate of step `{id}`")),
                    );
                }
                Err(PromptError::NotInteractive) => {
                    return Flow::Stop(
                        RunStatus::Declined,
                        Some(format!(
                            "step `{id}` has a gate and there is no terminal to ask; pass --yes to approve"
                        )),
                    );
                }
            }
        }

        // Durable before anything happens elsewhere: the "running" mark (so a crash leaves an
        // in-flight step, not a silent one) and every earlier output, secrets included.
        let recorded = self
            .record(Record::StepStarted { phase, id: &id })
            .and_then(|()| {
                if effect == Effect::Local {
                    Ok(())
                } else {
                    self.sync()
                }
            });
        if let Err(e) = recorded {
            return Flow::Stop(RunStatus::Failed, Some(e));
        }
        self.bus.emit(Event::StepStarted {
            index,
            total,
            id: id.clone(),
            title: match &step.common.title {
                Some(t) => taint::render(t, &ctx, redactor).unwrap_or_else(|_| t.clone()),
                None => step.kind.name().to_string(),
            },
            kind: step.kind.name().to_string(),
            action,
        });
        let started = Instant::now();
        let bus = self.bus.clone();
        let progress_id = id.clone();
        let progress = move |line: &str| {
            bus.emit(Event::StepProgress {
                id: progress_id.clone(),
                line: line.to_string(),
            })
        };
        let bus = self.bus.clone();
        let note_id = id.clone();
        let note = move |text: &str| {
            bus.emit(Event::Note {
                id: note_id.clone(),
                text: text.to_string(),
            })
        };
        let redactor = self.bus.redactor.clone();
        let add_secret = move |s: &str| redactor.try_add(s);
        let cx = RunCx {
            env: self.env,
            step_id: &id,
            prompter,
            resources,
            progress: &progress,
            note: &note,
            add_secret: &add_secret,
            assume_yes: self.options.assume_yes,
            nested: Some(&EngineNested { engine: self }),
        };

        let retry = step.common.retry.clone();
        let attempts = retry.as_ref().map_or(1, |r| r.attempts.max(1));
        let mut delay = retry.as_ref().map_or(Duration::ZERO, |r| r.delay.0);
        let mut attempt = 1;
        let result = loop {
            let fut = step.kind.run(&rendered, &cx);
            let timed = async {
                match step.common.timeout {
                    Some(t) => tokio::time::timeout(t.0, fut).await.unwrap_or_else(|_| {
                        Err(StepError::new(format!(
                            "timed out after {}",
                            humantime::format_duration(t.0)
                        )))
                    }),
                    None => fut.await,
                }
            };
            let r = tokio::select! {
                r = timed => r,
                _ = self.interrupt.aborted() => Err(StepError { message: "aborted by a second Ctrl-C".into(), detail: None, declined: false }),
            };
            match r {
                Err(e) if !e.declined && attempt < attempts && self.interrupt.level() == 0 => {
                    let wait = jitter(delay);
                    self.bus.emit(Event::StepRetry {
                        id: id.clone(),
                        attempt,
                        attempts,
                        error: e.message.clone(),
                        delay_ms: millis(wait),
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = self.interrupt.aborted() => break Err(StepError::new("aborted by a second Ctrl-C")),
                    }
                    // Checked at load (1 to 10, a wait of at most 1h), and still bounded
                    // here: `mul_f64` panics past `Duration::MAX`.
                    let factor = retry.as_ref().map_or(1.0, |r| r.backoff.clamp(1.0, 10.0));
                    let longest = crate::model::ranges::RETRY_DELAY.1;
                    delay = Duration::try_from_secs_f64(delay.as_secs_f64() * factor)
                        .unwrap_or(longest)
                        .min(longest);
                    attempt += 1;
                }
                r => break r,
            }
        };

        match result {
            Ok(outputs) => {
                // A secret output too short to be masked fails the step before any output
                // of it is shown.
                for o in outputs.iter().filter(|o| o.secret) {
                    if let Err(e) = self.bus.redactor.try_add_json(&o.value) {
                        let error = format!("output `{}`: {e}", o.name);
                        return fail(state, error, None, started);
                    }
                }
                let mut shown = serde_json::Map::new();
                for o in &outputs {
                    shown.insert(
                        o.name.clone(),
                        if o.secret {
                            MASK.into()
                        } else {
                            truncate_json(&o.value)
                        },
                    );
                }
                state.ok += 1;
                let rec = Record::StepFinished {
                    phase,
                    id: &id,
                    status: StepStatus::Ok,
                    outputs: &outputs,
                };
                if let Err(e) = self.record(rec) {
                    return Flow::Stop(RunStatus::Failed, Some(e));
                }
                state.outputs.insert(id.clone(), outputs);
                self.bus.emit(Event::StepFinished {
                    index,
                    total,
                    id,
                    status: StepStatus::Ok,
                    duration_ms: millis(started.elapsed()),
                    error: None,
                    detail: None,
                    outputs: shown,
                });
                Flow::Next
            }
            Err(e) if e.declined => {
                let rec = Record::StepFinished {
                    phase,
                    id: &id,
                    status: StepStatus::Declined,
                    outputs: &[],
                };
                if let Err(err) = self.record(rec) {
                    return Flow::Stop(RunStatus::Failed, Some(err));
                }
                self.bus.emit(Event::StepFinished {
                    index,
                    total,
                    id: id.clone(),
                    status: StepStatus::Declined,
                    duration_ms: millis(started.elapsed()),
                    error: Some(e.message.clone()),
                    detail: None,
                    outputs: Default::default(),
                });
                let status = if self.interrupt.level() > 0 {
                    RunStatus::Interrupted
                } else {
                    RunStatus::Declined
                };
                Flow::Stop(
                    status,
                    Some(format!("step `{id}`: {}; nothing after it ran", e.message)),
                )
            }
            Err(e) if self.interrupt.level() >= 2 => {
                state.failed += 1;
                let rec = Record::StepFinished {
                    phase,
                    id: &id,
                    status: StepStatus::Interrupted,
                    outputs: &[],
                };
                if let Err(err) = self.record(rec) {
                    return Flow::Stop(RunStatus::Failed, Some(err));
                }
                self.bus.emit(Event::StepFinished {
                    index,
                    total,
                    id: id.clone(),
                    status: StepStatus::Interrupted,
                    duration_ms: millis(started.elapsed()),
                    error: Some(e.message),
                    detail: None,
                    outputs: Default::default(),
                });
                Flow::Stop(
                    RunStatus::Interrupted,
                    Some(format!("step `{id}` was aborted")),
                )
            }
            Err(e) => fail(state, e.message, e.detail, started),
        }
    }

    /// What a failed step leads to, by its `on_failure`.
    fn after_failure(&self, step: &Step, error: String) -> Flow {
        match step.common.on_failure.clone().unwrap_or(OnFailure::Abort) {
            OnFailure::Abort => Flow::Stop(
                RunStatus::Failed,
                Some(format!("step `{}` failed: {error}", step.id())),
            ),
            OnFailure::Continue => Flow::Next,
            OnFailure::Rollback(target) if !step.rollback => Flow::Rollback(target, error),
            OnFailure::Rollback(_) => Flow::Stop(
                RunStatus::Failed,
                Some(format!("rollback step `{}` failed: {error}", step.id())),
            ),
        }
    }

    /// A step's action as a question shows it: every line (the lines after the first
    /// indented, so they read as the command and not as the question), up to a screenful;
    /// a longer one says how many lines are left out and where to read them all.
    fn at_prompt(&self, action: &str) -> String {
        /// Enough for any command a person can read at a gate; the plan shows all of it.
        const LINES: usize = 15;
        let lines: Vec<&str> = action.lines().collect();
        let shown = if lines.len() > LINES {
            &lines[..LINES - 1]
        } else {
            &lines[..]
        };
        let mut out = shown.join("\n    ");
        if lines.len() > LINES {
            out.push_str(&format!(
                "\n    … {} more lines; see `runbook plan {} --env {}`",
                lines.len() - shown.len(),
                self.runbook.name(),
                self.env.name
            ));
        }
        out
    }

    /// Step by step: ask before the step; `Some` when the run stops here.
    fn ask_step(
        &self,
        step: &Step,
        index: usize,
        total: usize,
        action: &str,
        prompter: &MaskedPrompter<'_>,
    ) -> Option<Flow> {
        let id = step.id();
        let phase = if step.rollback {
            "rollback step"
        } else {
            "step"
        };
        let question = if action.contains('\n') {
            format!(
                "{phase} {index}/{total} `{id}`: {}\nRun it?",
                self.at_prompt(action)
            )
        } else {
            format!("Run {phase} {index}/{total} `{id}`: {action}?")
        };
        match tokio::task::block_in_place(|| prompter.step(&question)) {
            Ok(StepAnswer::Run) => None,
            Ok(StepAnswer::Continue) => {
                self.options.step_by_step.store(false, Ordering::SeqCst);
                None
            }
            Ok(StepAnswer::Stop) => Some(Flow::Stop(
                RunStatus::Declined,
                Some(format!(
                    "stopped before step `{id}` (step by step); it and the steps after it did not run"
                )),
            )),
            Err(PromptError::Interrupted) => Some(Flow::Stop(
                RunStatus::Interrupted,
                Some(format!("interrupted before step `{id}`")),
            )),
            Err(PromptError::NotInteractive) => Some(Flow::Stop(
                RunStatus::Declined,
                Some(format!(
                    "cannot ask before step `{id}`: a step-by-step run needs a terminal"
                )),
            )),
        }
    }

    /// Ask at a gate. `--yes` approves; a protected environment also needs its name typed once.
    fn gate(
        &self,
        id: &str,
        question: &str,
        action: &str,
        prompter: &MaskedPrompter<'_>,
    ) -> Result<bool, PromptError> {
        let env = &self.env.name;
        if self.options.assume_yes {
            self.record(Record::Gate {
                id,
                approved: true,
                by: "--yes",
            })
            .map_err(|_| PromptError::Interrupted)?;
            self.bus.emit(Event::Gate {
                id: id.into(),
                question: question.into(),
                approved: true,
                by: "--yes".into(),
            });
            return Ok(true);
        }
        if !prompter.interactive() {
            return Err(PromptError::NotInteractive);
        }
        // What will happen first, the question last: a terminal prompts on the last line.
        let full = format!("step `{id}`: {}\n{question}", self.at_prompt(action));
        let mut approved = tokio::task::block_in_place(|| prompter.confirm(&full))?;
        if approved && self.env.doc.protected && !self.nesting.env_confirmed.load(Ordering::SeqCst)
        {
            approved = tokio::task::block_in_place(|| {
                prompter.type_to_confirm(
                    &format!("`{env}` is a protected environment. Type its name to go on"),
                    env,
                )
            })?;
            self.nesting.env_confirmed.store(approved, Ordering::SeqCst);
        }
        let by = operator();
        self.record(Record::Gate {
            id,
            approved,
            by: &by,
        })
        .map_err(|_| PromptError::Interrupted)?;
        self.bus.emit(Event::Gate {
            id: id.into(),
            question: question.into(),
            approved,
            by,
        });
        Ok(approved)
    }
}

struct State {
    outputs: StepOutputs,
    ok: usize,
    failed: usize,
    skipped: usize,
}

enum Flow {
    Next,
    Stop(RunStatus, Option<String>),
    /// Run the rollback steps from this id; the string says what failed.
    Rollback(String, String),
}

/// Render every string of a step's parameters.
/// A step's parameters rendered for a run: text computed from a secret is registered as one.
fn render_node_tracked(
    params: &Node,
    ctx: &taint::Contexts,
    redactor: &crate::secret::Redactor,
) -> Result<Node, String> {
    params.map_scalars(&mut |_, s| {
        taint::render(s, ctx, redactor).map_err(|e| format!("template: {}", e.message))
    })
}

pub fn render_node(params: &Node, ctx: &Value) -> Result<Node, String> {
    params.map_scalars(&mut |_, s| {
        template::render(s, ctx).map_err(|e| format!("template: {}", e.message))
    })
}

fn uses_templates(step: &Step) -> bool {
    let mut any = step.common.when.is_some()
        || [&step.common.title, &step.common.confirm]
            .iter()
            .any(|t| t.as_deref().is_some_and(template::is_template));
    step.params
        .walk_scalars(&mut |_, s| any |= template::is_template(s));
    any
}

/// The delay spread by ±20 %, so operators retrying against one service don't retry in step.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    d.mul_f64(0.8 + 0.4 * f64::from(b[0]) / 255.0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Long outputs (a body, a table) are cut in events; the full value stays available to steps.
fn truncate_json(v: &serde_json::Value) -> serde_json::Value {
    const MAX: usize = 2000;
    match v {
        serde_json::Value::String(s) if s.len() > MAX => {
            let cut = (0..=MAX)
                .rev()
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(0);
            format!("{}… ({} bytes)", &s[..cut], s.len()).into()
        }
        other => other.clone(),
    }
}

/// The engine's face of the CLI's prompter: every text is masked, and progress gets out of the way.
struct MaskedPrompter<'a> {
    inner: &'a dyn Prompter,
    bus: &'a Bus,
}

impl Prompter for MaskedPrompter<'_> {
    fn confirm(&self, question: &str) -> Result<bool, PromptError> {
        let q = self.bus.redactor.redact(question).into_owned();
        self.bus.suspend(|| self.inner.confirm(&q))
    }
    fn type_to_confirm(&self, question: &str, expected: &str) -> Result<bool, PromptError> {
        let q = self.bus.redactor.redact(question).into_owned();
        self.bus
            .suspend(|| self.inner.type_to_confirm(&q, expected))
    }
    fn ask(
        &self,
        label: &str,
        choices: Option<&[String]>,
        default: Option<&str>,
        secret: bool,
    ) -> Result<String, PromptError> {
        let l = self.bus.redactor.redact(label).into_owned();
        self.bus
            .suspend(|| self.inner.ask(&l, choices, default, secret))
    }
    fn show(&self, markdown: &str) {
        let m = self.bus.redactor.redact(markdown).into_owned();
        self.bus.suspend(|| self.inner.show(&m));
    }
    fn interactive(&self) -> bool {
        self.inner.interactive()
    }
    fn step(&self, question: &str) -> Result<StepAnswer, PromptError> {
        let q = self.bus.redactor.redact(question).into_owned();
        self.bus.suspend(|| self.inner.step(&q))
    }
}

/// Who is running this: the local user name.
pub fn operator() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(user_of_uid)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's user in /etc/passwd (a root shell often has no `$USER`).
fn user_of_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(uid.as_str()))
        .and_then(|l| l.split(':').next().map(str::to_string));
    Some(name.unwrap_or(format!("uid {uid}")))
}

/// `runbook.run`: the engine runs the named runbook of its library as part of this run.
struct EngineNested<'e, 'a> {
    engine: &'e Engine<'a>,
}

#[async_trait::async_trait]
impl Nested for EngineNested<'_, '_> {
    async fn run_runbook(
        &self,
        step_id: &str,
        name: &str,
        given: IndexMap<String, String>,
    ) -> Result<Vec<Output>, StepError> {
        let parent = self.engine;
        if parent.nesting.depth >= MAX_NESTING {
            return Err(StepError::new(format!(
                "runbooks nest deeper than {MAX_NESTING} levels"
            )));
        }
        let child = parent
            .library
            .iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| StepError::new(format!("no runbook named `{name}`")))?;
        let mut inputs = IndexMap::new();
        for (k, spec) in &child.doc.inputs {
            let value = given
                .get(k)
                .cloned()
                .or_else(|| spec.default.clone())
                .ok_or_else(|| {
                    StepError::new(format!(
                        "runbook `{name}` needs input `{k}`, which this step does not give"
                    ))
                })?;
            if spec.secret {
                parent
                    .bus
                    .redactor
                    .try_add(&value)
                    .map_err(|e| StepError::new(format!("input `{k}` of runbook `{name}`: {e}")))?;
            }
            // A value that holds a secret stays one in the child, whatever its input says.
            let secret = spec.secret || !parent.bus.redactor.spans(&value).is_empty();
            inputs.insert(k.clone(), InputValue { value, secret });
        }
        if let Some(extra) = given.keys().find(|k| !child.doc.inputs.contains_key(*k)) {
            return Err(StepError::new(format!(
                "runbook `{name}` has no input `{extra}`"
            )));
        }
        // Before any of its steps: someone else running it on this environment stops it here.
        if let Some(locks) = &parent.nesting.locks {
            locks
                .lock(child.name(), &parent.env.name)
                .map_err(StepError::new)?;
        }
        let prefix = format!("{}{step_id}/", parent.nesting.prefix);
        // What the journal says the child already did, when this run is a resume.
        let strip = |id: &str| id.strip_prefix(prefix.as_str()).map(str::to_string);
        let resume = Resume {
            outputs: parent
                .resume
                .outputs
                .iter()
                .filter_map(|(id, o)| strip(id).map(|id| (id, o.clone())))
                .collect(),
            done: parent
                .resume
                .done
                .iter()
                .filter_map(|id| strip(id))
                .collect(),
            rollback: parent
                .resume
                .rollback
                .as_ref()
                .and_then(|(from, why)| strip(from).map(|f| (f, why.clone()))),
        };
        let engine = Engine {
            runbook: child,
            env: parent.env,
            inputs,
            prompter: parent.prompter,
            bus: parent.bus.clone(),
            interrupt: parent.interrupt.clone(),
            options: RunOptions {
                run_id: parent.options.run_id.clone(),
                assume_yes: parent.options.assume_yes,
                // A selection names the steps of the runbook it was given for, not these.
                selected: None,
                step_by_step: parent.options.step_by_step.clone(),
            },
            recorder: parent.recorder.clone(),
            library: parent.library,
            nesting: Nesting {
                prefix,
                depth: parent.nesting.depth + 1,
                env_confirmed: parent.nesting.env_confirmed.clone(),
                locks: parent.nesting.locks.clone(),
            },
            resume,
        };
        let result = Box::pin(engine.run()).await;
        let why = result.message.unwrap_or_default();
        match result.status {
            RunStatus::Done => Ok(vec![Output {
                name: "status".into(),
                value: "done".into(),
                secret: false,
            }]),
            RunStatus::Declined | RunStatus::Interrupted => {
                Err(StepError::declined(format!("runbook `{name}`: {why}")))
            }
            RunStatus::Failed | RunStatus::RolledBack => {
                Err(StepError::new(format!("runbook `{name}` failed: {why}")))
            }
        }
    }
}
