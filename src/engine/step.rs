//! One step: its `when:`, its rendered parameters, the step-by-step question and its gate, the
//! run with `timeout` and `retry`, and how it ends ([`Engine::finish_step`]: journal first,
//! then the event).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::event::{Event, ManualOutcome, Noted, RunStatus, StepStatus};
use super::gate::{MaskedPrompter, operator};
use super::nested::EngineNested;
use super::record::{Phase, Record};
use super::taint;
use super::types::{Engine, Flow, State, Window, millis};
use crate::catalog::{self, Step};
use crate::diag::Source;
use crate::load::yaml::{ByteSpan, Node};
use crate::model::OnFailure;
use crate::steps::{
    Effect, MASK, Output, PromptError, Prompter, Resources, RunCx, StepError, Unattended,
};
use crate::template;

impl Engine<'_> {
    #[expect(
        clippy::too_many_arguments,
        reason = "the run's state, passed down explicitly"
    )]
    pub(super) async fn run_step(
        &self,
        step: &Step,
        phase: Phase,
        index: usize,
        total: usize,
        state: &mut State,
        resources: &Resources,
        prompter: &MaskedPrompter<'_>,
        (list, at): (&[Step], usize),
    ) -> Flow {
        let id = step.id().to_string();
        // The gate this step runs under, and whether it must be asked here: at its own step,
        // or at the first step under it that runs when that one does not (a resume, a partial
        // run, a gate skipped by its `when:`).
        let gate = catalog::gate_of(list, at);
        let ask = gate.filter(|g| state.approved != Some((step.rollback, *g)));
        let gate_step = ask.map(|g| &list[g]);
        // Building the context costs a copy of every earlier output: only for steps that read it.
        let ctx = if uses_templates(step)
            || gate_step
                .and_then(|g| g.common.confirm.as_deref())
                .is_some_and(template::is_template)
        {
            self.context(&state.outputs)
        } else {
            taint::Contexts::undefined()
        };
        let redactor = &self.bus.redactor;
        let slot = Slot {
            phase,
            index,
            total,
            id: &id,
        };
        // A failure says where in the file: the failing field, or the step's `id:`.
        let fail = |state: &mut State, e: StepError, at: ByteSpan, started: Instant| {
            state.failed += 1;
            let status = if step.common.on_failure == Some(OnFailure::Continue) {
                StepStatus::FailedIgnored
            } else {
                StepStatus::Failed
            };
            let end = End {
                status,
                error: Some((&e.message, e.detail)),
                help: e.help,
                at: Some(at),
                ..End::default()
            };
            if let Err(err) = self.finish_step(&slot, started, end) {
                return Flow::Stop(RunStatus::Failed, Some(err));
            }
            self.after_failure(step, e.message)
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
                        StepError::new(format!("`when` could not be evaluated: {}", e.message)),
                        step.span_of("when"),
                        Instant::now(),
                    );
                }
            }
        }

        let rendered = match render_node_tracked(&step.params, &ctx, redactor, &self.runbook.source)
        {
            Ok(n) => n,
            Err((e, at)) => return fail(state, StepError::new(e), at, Instant::now()),
        };
        let (action, effect) = match step.describe(&rendered) {
            Ok(d) => d,
            Err(e) => {
                return fail(
                    state,
                    StepError::new(format!("invalid parameters: {e}")),
                    step.span_of("id"),
                    Instant::now(),
                );
            }
        };

        if self.options.step_by_step.load(Ordering::SeqCst)
            && let Some(stop) = self.ask_step(step, index, total, &action, prompter)
        {
            return stop;
        }

        if let (Some(g), Some(gate_step)) = (ask, gate_step)
            && let Some(question) = &gate_step.common.confirm
        {
            let question = match taint::render(question, &ctx, redactor) {
                Ok(q) => q,
                Err(e) => {
                    let at = self.template_place(gate_step.node.get("confirm"), &e);
                    return fail(state, StepError::new(e.message), at, Instant::now());
                }
            };
            if !self.options.assume_yes {
                step.kind.warm_up(&rendered, self.env, resources);
            }
            let approves = approves(list, g, at);
            match self.gate(&id, &question, &action, &effect, &approves, prompter) {
                Ok(true) => state.approved = Some((step.rollback, g)),
                Ok(false) => {
                    return Flow::Stop(
                        RunStatus::Declined,
                        Some(format!("declined at step `{id}`; nothing after it ran")),
                    );
                }
                Err(PromptError::Interrupted) => {
                    return Flow::Stop(
                        RunStatus::Interrupted,
                        Some(format!(
                            "stopped at the gate of step `{id}` (Ctrl-C): it and the steps after it did not run"
                        )),
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

        // A person's work with nobody to do it: a step that allows it is left undone, on the
        // record as such (after its gate, which `--yes` approved like every other). One that
        // does not was refused before the run began; run anyway (a library caller), its kind
        // fails it.
        let manual = step.kind.interactive(&rendered);
        if manual && !prompter.interactive() && step.kind.unattended(&rendered) == Unattended::Skip
        {
            let instructions = step.kind.instructions(&rendered);
            return self.not_done_by_a_person(&slot, state, &action, instructions);
        }

        // The first change under an approved gate opens its change window: from here a first
        // Ctrl-C lets the approved steps finish instead of stopping between two of them. A
        // nested runbook's own steps decide for it.
        let changes = match &effect {
            Effect::Changes(what) => Some(what.clone()),
            Effect::ReadOnly | Effect::Local => None,
        };
        if let Some(g) = gate
            && !step.rollback
            && changes.is_some()
            && state.window != Some((false, g))
            && step.kind.nested_runbook(&step.params).is_none()
        {
            self.interrupt.open(self.window(list, g, at));
            state.window = Some((false, g));
        }

        // Durable before anything happens elsewhere: the "running" mark (so a crash leaves an
        // in-flight step, not a silent one) and every earlier output, secrets included.
        let title = match &step.common.title {
            Some(t) => taint::render(t, &ctx, redactor).unwrap_or_else(|_| t.clone()),
            None => step.kind.name().to_string(),
        };
        let writes = step
            .kind
            .writes_named_by()
            .and_then(|field| rendered.get(field))
            .and_then(|n| n.as_str())
            .map(|w| redactor.redact(w).into_owned());
        let recorded = self
            .record(Record::StepStarted {
                phase,
                id: &id,
                kind: step.kind.name(),
                title: &title,
                writes: writes.as_deref(),
            })
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
        self.interrupt
            .step_started(&format!("{}{id}", self.nesting.prefix), changes.as_deref());
        self.bus.emit(Event::StepStarted {
            index,
            total,
            id: id.clone(),
            title,
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
        let nesting = self.nesting.clone();
        let warn_id = id.clone();
        let warn = move |text: &str| super::run::warn(&bus, &nesting, &warn_id, text);
        let bus = self.bus.clone();
        let note_id = id.clone();
        let note = move |text: &str| {
            bus.emit(Event::Note {
                id: note_id.clone(),
                text: text.to_string(),
            })
        };
        let redactor = self.bus.redactor.clone();
        let known = redactor.clone();
        let add_secret = move |s: &str| redactor.try_add(s);
        let holds_secret = move |s: &str| !known.spans(s).is_empty();
        let cx = RunCx {
            env: self.env,
            step_id: &id,
            prompter,
            resources,
            progress: &progress,
            note: &note,
            warn: &warn,
            add_secret: &add_secret,
            holds_secret: &holds_secret,
            assume_yes: self.options.assume_yes,
            nested: Some(&EngineNested { engine: self }),
            record: self
                .recorder
                .as_ref()
                .map(|r| r as &dyn crate::steps::RunRecord),
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
                _ = self.interrupt.aborted() => Err(StepError::new("aborted by a second Ctrl-C")),
            };
            match r {
                Err(e) if !e.declined && attempt < attempts && !self.interrupt.stopping() => {
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
                        let error = StepError::new(format!("output `{}`: {e}", o.name));
                        return fail(state, error, step.span_of("id"), started);
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
                if manual && let Err(e) = self.manual_answer(&id, ManualOutcome::Done) {
                    return Flow::Stop(RunStatus::Failed, Some(e));
                }
                state.ok += 1;
                let end = End {
                    status: StepStatus::Ok,
                    outputs: &outputs,
                    shown,
                    ..End::default()
                };
                if let Err(e) = self.finish_step(&slot, started, end) {
                    return Flow::Stop(RunStatus::Failed, Some(e));
                }
                self.interrupt.step_succeeded(changes.is_some());
                state.outputs.insert(id.clone(), outputs);
                Flow::Next
            }
            Err(e) if e.declined => {
                // A person said no (not Ctrl-C at the question): who, on the record.
                if manual
                    && self.interrupt.level() == 0
                    && let Err(e) = self.manual_answer(&id, ManualOutcome::Declined)
                {
                    return Flow::Stop(RunStatus::Failed, Some(e));
                }
                let end = End {
                    status: StepStatus::Declined,
                    error: Some((&e.message, None)),
                    ..End::default()
                };
                if let Err(err) = self.finish_step(&slot, started, end) {
                    return Flow::Stop(RunStatus::Failed, Some(err));
                }
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
                let end = End {
                    status: StepStatus::Interrupted,
                    error: Some((&e.message, None)),
                    ..End::default()
                };
                if let Err(err) = self.finish_step(&slot, started, end) {
                    return Flow::Stop(RunStatus::Failed, Some(err));
                }
                Flow::Stop(
                    RunStatus::Interrupted,
                    Some(format!("step `{id}` was aborted")),
                )
            }
            Err(e) => fail(state, e, step.span_of("id"), started),
        }
    }

    /// A person answered a manual step: who, in the journal (and so the audit log) and as an
    /// event, before the step's end.
    fn manual_answer(&self, id: &str, outcome: ManualOutcome) -> Result<(), String> {
        let by = operator();
        self.record(Record::Manual {
            id,
            outcome,
            by: &by,
        })?;
        self.bus.emit(Event::Manual {
            id: id.to_string(),
            outcome,
            by,
        });
        Ok(())
    }

    /// A manual step that allows it (`unattended: skip`), in a run nobody attends: left
    /// undone, and said so everywhere a done step would be seen. The journal records it (the
    /// audit log keeps it apart from work people did), the step counts as skipped, and the
    /// summary lists it as outstanding with what it asks.
    fn not_done_by_a_person(
        &self,
        slot: &Slot<'_>,
        state: &mut State,
        action: &str,
        instructions: Option<String>,
    ) -> Flow {
        let by = if self.options.assume_yes {
            "nobody: --yes, no terminal"
        } else {
            "nobody: no terminal"
        };
        let recorded = self
            .record(Record::Manual {
                id: slot.id,
                outcome: ManualOutcome::NotDoneByAPerson,
                by,
            })
            .and_then(|()| {
                self.record(Record::StepFinished {
                    phase: slot.phase,
                    id: slot.id,
                    status: StepStatus::Skipped,
                    outputs: &[],
                })
            });
        if let Err(e) = recorded {
            return Flow::Stop(RunStatus::Failed, Some(e));
        }
        state.skipped += 1;
        self.bus.emit(Event::Manual {
            id: slot.id.to_string(),
            outcome: ManualOutcome::NotDoneByAPerson,
            by: by.to_string(),
        });
        // What is left to do, whole, in the run's log.
        if let Some(text) = instructions {
            self.bus.emit(Event::Note {
                id: slot.id.to_string(),
                text,
            });
        }
        self.bus.emit(Event::StepSkipped {
            index: slot.index,
            total: slot.total,
            id: slot.id.to_string(),
            reason: "not done by a person: nobody attends this run; outstanding".into(),
        });
        self.nesting.notes().outstanding.push(Noted {
            id: format!("{}{}", self.nesting.prefix, slot.id),
            text: action.to_string(),
        });
        Flow::Next
    }

    /// The change window the gate of `list[gate]` opens when step `at` changes something:
    /// what it approved, and where a first Ctrl-C lets the run stop (before the next step
    /// that asks a person, or at the end).
    fn window(&self, list: &[Step], gate: usize, at: usize) -> Window {
        let prefix = &self.nesting.prefix;
        let range = catalog::approved_by(list, gate);
        let end = range.end;
        let stop = (at..end)
            .find(|&i| list[i].kind.interactive(&list[i].params))
            .unwrap_or(end);
        let last = list[stop.saturating_sub(1).max(at)].id();
        let then = match list.get(stop) {
            Some(next) => format!("then stops before `{prefix}{}`", next.id()),
            None if prefix.is_empty() => "then the run ends".to_string(),
            None => format!("then runbook `{}` ends", self.runbook.name()),
        };
        let steps: Vec<String> = list[range.clone()]
            .iter()
            .map(|s| format!("{prefix}{}", s.id()))
            .collect();
        Window {
            gate: format!("{prefix}{}", list[gate].id()),
            // The steps before this one are behind the run (ran, skipped, or done before a
            // resume): what is left to do starts here.
            done: steps[..at - range.start].to_vec(),
            steps,
            last: format!("{prefix}{last}"),
            then,
            env: self.env.name.clone(),
            ..Window::default()
        }
    }

    /// How a step ended, in this order: the journal's record (an error stops the run: nothing
    /// may happen unrecorded), then the event.
    fn finish_step(&self, slot: &Slot<'_>, started: Instant, end: End<'_>) -> Result<(), String> {
        self.record(Record::StepFinished {
            phase: slot.phase,
            id: slot.id,
            status: end.status,
            outputs: end.outputs,
        })?;
        let (error, detail) = match end.error {
            Some((e, d)) => (Some(e.clone()), d),
            None => (None, None),
        };
        let source = &self.runbook.source;
        let at = end.at.map(|span| {
            let (line, col) = source.line_col(span.start);
            format!("{}:{line}:{col}", crate::diag::display_path(&source.path))
        });
        self.bus.emit(Event::StepFinished {
            index: slot.index,
            total: slot.total,
            id: slot.id.to_string(),
            status: end.status,
            duration_ms: millis(started.elapsed()),
            error,
            detail,
            at,
            help: end.help,
            outputs: end.shown,
        });
        Ok(())
    }

    /// Where a template that failed to render is: its own place in the field's scalar
    /// (`node`), as check reports it, or the step's `id:` without one.
    fn template_place(&self, node: Option<&Node>, e: &template::TemplateError) -> ByteSpan {
        match (node, &e.range) {
            (Some(n), Some(r)) => self.runbook.source.locate(n, r.clone()),
            (Some(n), None) => n.span.clone(),
            (None, _) => self.runbook.node.span.clone(),
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
}

/// Which step, and where in the run: what its record and its events name.
struct Slot<'s> {
    phase: Phase,
    index: usize,
    total: usize,
    id: &'s str,
}

/// How a step ended: its status, its outputs (for the journal) and as shown (masked, cut), and
/// for a step that did not succeed, the error and the lines under it.
struct End<'o> {
    status: StepStatus,
    outputs: &'o [Output],
    shown: serde_json::Map<String, serde_json::Value>,
    error: Option<(&'o String, Option<String>)>,
    help: Option<String>,
    /// The place of a failure in the runbook file.
    at: Option<ByteSpan>,
}

impl Default for End<'_> {
    fn default() -> Self {
        End {
            status: StepStatus::Ok,
            outputs: &[],
            shown: serde_json::Map::new(),
            error: None,
            help: None,
            at: None,
        }
    }
}

/// What a gate approves, as its prompt says: the steps from `at` to the next gate, and
/// that they run without stopping for a person (empty when it approves only its own step).
fn approves(list: &[Step], gate: usize, at: usize) -> String {
    let range = catalog::approved_by(list, gate);
    if range.len() == 1 {
        return String::new();
    }
    let names: Vec<String> = list[at.max(gate)..range.end]
        .iter()
        .map(|s| {
            if s.kind.interactive(&s.params) {
                format!("`{}` (asks you)", s.id())
            } else {
                format!("`{}`", s.id())
            }
        })
        .collect();
    let whose = if at == gate {
        String::new()
    } else {
        format!(
            " (the rest of what the gate of `{}` approves)",
            list[gate].id()
        )
    };
    let rolling: Vec<String> = list[at.max(gate)..range.end]
        .iter()
        .filter(|s| matches!(s.common.on_failure, Some(OnFailure::Rollback(_))))
        .map(|s| format!("`{}`", s.id()))
        .collect();
    let rollback = match rolling.as_slice() {
        [] => String::new(),
        [one] => format!("; if {one} fails, its rollback runs without asking"),
        [init @ .., last] => format!(
            "; if {} or {last} fails, the rollback runs without asking",
            init.join(", ")
        ),
    };
    let they = if names.iter().any(|n| n.ends_with("(asks you)")) {
        "the others run one after another without stopping for a person"
    } else {
        "they run one after another without stopping for a person"
    };
    format!("approves {}{whose}: {they}{rollback}\n", names.join(", "))
}

/// A step's parameters rendered for a run: text computed from a secret is registered as one.
/// A template that fails says where it is in `source`, to the column when its error has one.
fn render_node_tracked(
    params: &Node,
    ctx: &taint::Contexts,
    redactor: &crate::secret::Redactor,
    source: &Source,
) -> Result<Node, (String, ByteSpan)> {
    params.map_scalars(&mut |node, s| {
        taint::render(s, ctx, redactor).map_err(|e| {
            let at = e
                .range
                .clone()
                .map_or(node.span.clone(), |r| source.locate(node, r));
            (format!("template: {}", e.message), at)
        })
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
