//! A run from start to end: the main steps in order, the rollback when a step asks for one, and
//! the journal records and events that open and close it.

use std::time::Instant;

use super::event::{self, Event, RunStatus};
use super::event::{Bus, Noted};
use super::gate::MaskedPrompter;
use super::record::{Phase, Record};
use super::taint;
use super::types::{Engine, Flow, Nesting, RunResult, State, StepOutputs, Window, millis};
use crate::catalog;
use crate::steps::{KINDS, Resources};

impl Engine<'_> {
    pub async fn run(self) -> RunResult {
        let started = Instant::now();
        // This run's part of the notes (a nested run shares them with the run around it).
        let (first_warning, first_outstanding) = {
            let n = self.nesting.notes();
            (n.warnings.len(), n.outstanding.len())
        };
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
        for kind in KINDS {
            kind.before_run(self.env).await;
        }
        let resources = Resources::default();
        let prompter = MaskedPrompter {
            inner: self.prompter,
            bus: &self.bus,
            interrupt: &self.interrupt,
        };
        for outs in self.resume.outputs.values() {
            for o in outs.iter().filter(|o| o.secret) {
                redactor.add_json(&o.value);
            }
        }
        let mut state = State {
            outputs: self.resume.outputs.clone(),
            approved: None,
            window: None,
            ok: 0,
            failed: 0,
            skipped: 0,
        };
        let mut status = RunStatus::Done;
        let mut message = None;

        // The change windows this run opens sit above those of the run that holds it.
        let depth = self.interrupt.depth();
        let steps = &self.runbook.steps;
        let mut rollback = self.resume.rollback.clone();
        // The main steps this run accounts for (ran, failed, skipped); the others did not run.
        let mut not_run = 0;
        if rollback.is_none() {
            for (i, step) in steps.iter().enumerate() {
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
                    state.skipped += 1;
                    self.bus.emit(Event::StepSkipped {
                        index: i + 1,
                        total,
                        id: step.id().to_string(),
                        reason: "finished before the resume".into(),
                    });
                    continue;
                }
                // A change window ends with the steps its gate approved.
                let mut window_ran = state.window.map(|(_, g)| steps[g].id());
                if let Some((_, g)) = state.window
                    && !catalog::approved_by(steps, g).contains(&i)
                {
                    self.interrupt.close_to(depth);
                    state.window = None;
                } else if state.window.is_none() {
                    window_ran = None;
                }
                if self.interrupt.level() > 0 && !self.goes_on(steps, i, &state) {
                    status = RunStatus::Interrupted;
                    // Stopped at a person's step inside the window, or at its end: its
                    // changes ran.
                    message = Some(match window_ran {
                        Some(g) => format!(
                            "interrupted before step `{}`, once the change window approved at `{g}` had run to its end",
                            step.id()
                        ),
                        None => format!("interrupted before step `{}`", step.id()),
                    });
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
                        (steps, i),
                    )
                    .await
                {
                    Flow::Next => {}
                    Flow::Stop(s, m) => {
                        status = s;
                        // Aborted inside a change window: say where production stands.
                        message = match (s, self.interrupt.state()) {
                            (RunStatus::Interrupted, Some((gate, where_))) => Some(format!(
                                "{}; inside the change window approved at `{gate}`: {where_}",
                                m.unwrap_or_else(|| "interrupted".into())
                            )),
                            _ => m,
                        };
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
            not_run = total.saturating_sub(state.ok + state.failed + state.skipped);
        } else if let Some((target, failed)) = rollback.take() {
            self.bus.emit(Event::RollbackStarted {
                failed: failed.clone(),
                from: target.clone(),
            });
            rollback = Some((target, format!("step `{failed}` failed")));
        }
        self.interrupt.close_to(depth);
        if let Some((target, why)) = rollback {
            let start = self
                .runbook
                .rollback
                .iter()
                .position(|s| s.id() == target)
                .unwrap_or(0);
            let prefix = &self.nesting.prefix;
            self.interrupt.open(Window {
                gate: format!("{prefix}{target}"),
                steps: self.runbook.rollback[start..]
                    .iter()
                    .map(|s| format!("{prefix}{}", s.id()))
                    .collect(),
                rollback: true,
                env: self.env.name.clone(),
                ..Window::default()
            });
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
            self.interrupt.close_to(depth);
        }
        let message = message.map(|m| redactor.redact(&m).into_owned());
        if let Err(e) = self.record(Record::RunFinished {
            status,
            message: message.as_deref(),
        }) {
            self.warn("", &e);
        }
        let (warnings, outstanding) = {
            let n = self.nesting.notes();
            (
                n.warnings.get(first_warning..).unwrap_or_default().to_vec(),
                n.outstanding
                    .get(first_outstanding..)
                    .unwrap_or_default()
                    .to_vec(),
            )
        };
        self.bus.emit(Event::RunFinished {
            run_id: self.options.run_id.clone(),
            status,
            duration_ms: millis(started.elapsed()),
            ok: state.ok,
            failed: state.failed,
            skipped: state.skipped,
            not_run,
            message: message.clone(),
            warnings,
            outstanding,
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
                    (&self.runbook.rollback, start + i),
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

    /// A warning of step `id` (empty: of the run): an event, and a line of the summary.
    pub(super) fn warn(&self, id: &str, text: &str) {
        warn(&self.bus, &self.nesting, id, text);
    }

    /// Whether, after a first Ctrl-C, step `i` still runs: only inside a change window (this
    /// run's, or the one of the step that runs this runbook), and only when it asks no person
    /// (a manual step, or a gate not yet answered): that is where the run stops.
    fn goes_on(&self, steps: &[crate::catalog::Step], i: usize, state: &State) -> bool {
        let step = &steps[i];
        !self.interrupt.stopping()
            && !step.kind.interactive(&step.params)
            && catalog::gate_of(steps, i).is_none_or(|g| state.approved == Some((false, g)))
    }

    /// Append a record to the journal; an error stops the run (nothing may happen unrecorded).
    pub(super) fn record(&self, rec: Record<'_>) -> Result<(), String> {
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
                Record::StepStarted {
                    phase,
                    id,
                    kind,
                    title,
                    writes,
                } => r.record(Record::StepStarted {
                    phase,
                    id: &p(id),
                    kind,
                    title,
                    writes,
                }),
                Record::Manual { id, outcome, by } => r.record(Record::Manual {
                    id: &p(id),
                    outcome,
                    by,
                }),
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
    pub(super) fn sync(&self) -> Result<(), String> {
        let Some(r) = &self.recorder else {
            return Ok(());
        };
        let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
        r.sync()
            .map_err(|e| format!("cannot write the run journal to disk: {e}"))
    }

    /// What a step's templates see, and its shadow when it holds a secret ([`taint`]).
    pub(super) fn context(&self, outputs: &StepOutputs) -> taint::Contexts {
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
                    let value = match self.runbook.doc.inputs.get(k) {
                        Some(spec) => crate::inputs::typed::template_value(spec, &v.value),
                        None => v.value.clone().into(),
                    };
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
}

/// A warning: the event (a line that stays on every output, and in the event log), and the
/// same text kept for the summary, its step named as the journal names it (`parent/step`).
pub(super) fn warn(bus: &Bus, nesting: &Nesting, id: &str, text: &str) {
    bus.emit(Event::Warning {
        id: id.to_string(),
        text: text.to_string(),
    });
    let id = if id.is_empty() {
        String::new()
    } else {
        format!("{}{id}", nesting.prefix)
    };
    nesting.notes().warnings.push(Noted {
        id,
        text: text.to_string(),
    });
}
