//! What a run is made of: the engine and its options, the Ctrl-C state, the nesting of runs,
//! and the state the step loop carries. A leaf of the engine: its other files read these, and
//! this file reads none of them but the event and journal records.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;

use super::event::{Bus, Noted, RunStatus};
use super::record::{Recorder, Resume};
use crate::catalog::Runbook;
use crate::inputs::InputValue;
use crate::model::Environment;
use crate::steps::{Output, Prompter};

/// Ctrl-C state shared with the signal handler: 0 running, 1 stop at the next safe point, 2
/// abort now. Inside a change window (the steps a gate approved, once one of them changed
/// something) the next safe point is the window's end: stopping in its middle would leave
/// production half changed (a password set that the app does not have yet).
#[derive(Debug, Default, Clone)]
pub struct Interrupt {
    level: Arc<AtomicU8>,
    notify: Arc<tokio::sync::Notify>,
    /// The windows open now, innermost last (a nested runbook's inside its parent's).
    windows: Arc<Mutex<Vec<Window>>>,
    /// A question is on the screen (or was when Ctrl-C ended it): Ctrl-C there ends the
    /// question and the run at once, and the prompt says so, not the signal's message.
    asking: Arc<AtomicBool>,
}

/// A change window: the steps a gate approved, from the first of them that changed something
/// to the last one that runs before the run would ask a person again.
#[derive(Debug, Clone, Default)]
pub(super) struct Window {
    /// The step whose gate approved it (with the nesting prefix), or the first step of a
    /// rollback.
    pub(super) gate: String,
    /// Every step the gate approved, in order (a rollback's: its steps).
    pub(super) steps: Vec<String>,
    /// The last step a first Ctrl-C lets run.
    pub(super) last: String,
    /// What comes after `last` ("then stops before `x`", "then the run ends").
    pub(super) then: String,
    pub(super) rollback: bool,
    /// The environment it changes (what a stop in its middle would leave half changed).
    pub(super) env: String,
    /// The steps that finished, what the window changed so far (step, what), and the step
    /// running now (step, its effect).
    pub(super) done: Vec<String>,
    pub(super) changed: Vec<(String, String)>,
    pub(super) running: Option<(String, String)>,
}

impl Window {
    /// Where production stands: what changed, what is cut short, what did not run.
    fn state(&self) -> String {
        let mut parts = Vec::new();
        if !self.changed.is_empty() {
            let done: Vec<String> = self
                .changed
                .iter()
                .map(|(id, what)| format!("`{id}` ({what})"))
                .collect();
            parts.push(format!("changed: {}", done.join(", ")));
        }
        if let Some((id, what)) = &self.running {
            parts.push(format!(
                "cut short, may or may not have taken effect: `{id}` ({what})"
            ));
        }
        let left: Vec<String> = self
            .steps
            .iter()
            .filter(|id| {
                !self.done.contains(id) && self.running.as_ref().is_none_or(|(r, _)| r != *id)
            })
            .map(|id| format!("`{id}`"))
            .collect();
        if !left.is_empty() {
            parts.push(format!("not run: {}", left.join(", ")));
        }
        parts.join("; ")
    }
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
    pub(super) async fn aborted(&self) {
        loop {
            let notified = self.notify.notified();
            if self.level() >= 2 {
                return;
            }
            notified.await;
        }
    }

    /// What the operator is told when Ctrl-C raised the state to `level`: exactly what the
    /// run does now.
    pub fn message(&self, level: u8) -> Option<String> {
        if self.asking.load(Ordering::SeqCst) {
            return None;
        }
        let windows = self.windows();
        let w = windows.last();
        match (level, w) {
            (1, None) => {
                Some("stopping after the current step; press Ctrl-C again to abort it".into())
            }
            (1, Some(w)) if w.rollback => Some(format!(
                "not stopping yet: the rollback from `{}` goes on to its end ({}), since stopping it half way would leave the change half undone. Press Ctrl-C again to abort it at once",
                w.gate,
                list(&w.steps)
            )),
            (1, Some(w)) => {
                let then = &w.then;
                Some(format!(
                    "not stopping yet: the run is inside the change window approved at `{}` ({}), and stopping in its middle would leave {} half changed. It goes on to the end of `{}` (or rolls back if a step fails), {then}. Press Ctrl-C again to abort at once",
                    w.gate,
                    list(&w.steps),
                    w.env,
                    w.last
                ))
            }
            (2, Some(w)) => Some(format!(
                "aborting now, inside the change window approved at `{}`: {}",
                w.gate,
                w.state()
            )),
            _ => None,
        }
    }

    /// Ask a person: while `ask` waits, Ctrl-C is the prompt's to report. One that ended
    /// the question leaves the mark set: the signal may be handled after the prompt returned,
    /// and the run stops at once anyway.
    pub(super) fn asking<T>(
        &self,
        ask: impl FnOnce() -> Result<T, crate::steps::PromptError>,
    ) -> Result<T, crate::steps::PromptError> {
        self.asking.store(true, Ordering::SeqCst);
        let answer = ask();
        if !matches!(answer, Err(crate::steps::PromptError::Interrupted)) {
            self.asking.store(false, Ordering::SeqCst);
        }
        answer
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, Vec<Window>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// How many windows are open (a nested run closes only its own).
    pub(super) fn depth(&self) -> usize {
        self.windows().len()
    }
    /// Whether the run is inside a change window (its own or, for a nested run, its parent's).
    pub(super) fn in_window(&self) -> bool {
        !self.windows().is_empty()
    }
    /// The step whose gate opened the innermost change window, while one is open.
    pub(super) fn window_gate(&self) -> Option<String> {
        self.windows().last().map(|w| w.gate.clone())
    }
    /// Whether the run must stop at the next step boundary: a second Ctrl-C, or a first one
    /// outside a change window.
    pub(super) fn stopping(&self) -> bool {
        match self.level() {
            0 => false,
            1 => !self.in_window(),
            _ => true,
        }
    }
    pub(super) fn open(&self, w: Window) {
        self.windows().push(w);
    }
    /// Close the windows opened after `depth` windows were open.
    pub(super) fn close_to(&self, depth: usize) {
        self.windows().truncate(depth);
    }
    /// Record on the innermost window that step `id` started; `changes`: what it changes
    /// elsewhere (`None`: nothing).
    pub(super) fn step_started(&self, id: &str, changes: Option<&str>) {
        if let Some(w) = self.windows().last_mut() {
            // One that failed and was let go on from (`on_failure: continue`) is over too.
            if let Some((before, _)) = w.running.take() {
                w.done.push(before);
            }
            let what = changes.unwrap_or("changes nothing elsewhere");
            w.running = Some((id.to_string(), what.to_string()));
        }
    }
    /// Record on the innermost window that the running step succeeded, so what it changes
    /// (if anything) has changed. A step that did not succeed stays "cut short".
    pub(super) fn step_succeeded(&self, changes: bool) {
        if let Some(w) = self.windows().last_mut()
            && let Some((id, what)) = w.running.take()
        {
            if changes {
                w.changed.push((id.clone(), what));
            }
            w.done.push(id);
        }
    }
    /// Where production stands in the innermost window, for the run's last message.
    pub(super) fn state(&self) -> Option<(String, String)> {
        self.windows()
            .last()
            .filter(|w| !w.rollback)
            .map(|w| (w.gate.clone(), w.state()))
    }
}

fn list(ids: &[String]) -> String {
    ids.iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
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
    /// Every runbook of the directory, for steps that run one.
    pub library: &'a [Runbook],
    /// Where this engine sits when it runs a runbook inside another one.
    pub nesting: Nesting,
    /// Where a resumed run starts (empty for a new run).
    pub resume: Resume,
}

/// A runbook run by a step of another one journals its steps as `<parent step>/<step>`, shares
/// the run's "protected environment confirmed" state and its locks, and may not nest without
/// end.
#[derive(Debug, Clone, Default)]
pub struct Nesting {
    pub prefix: String,
    pub depth: u8,
    pub env_confirmed: Arc<AtomicBool>,
    /// Takes the run lock of a nested runbook before it starts (none: no locks, as in tests).
    pub locks: Option<Arc<dyn ChildLocks>>,
    /// What the run's summary repeats, shared with nested runs so the outer summary has all.
    pub notes: Arc<std::sync::Mutex<RunNotes>>,
}

/// What a run's summary repeats: its warnings, and the manual work nobody did.
#[derive(Debug, Default)]
pub struct RunNotes {
    pub warnings: Vec<Noted>,
    pub outstanding: Vec<Noted>,
}

impl Nesting {
    pub(super) fn notes(&self) -> std::sync::MutexGuard<'_, RunNotes> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The run locks of the runbooks a run runs inside itself: a nested runbook runs under its own
/// lock (runbook, environment), like a run of it on its own, held until the whole run ends.
pub trait ChildLocks: Send + Sync + std::fmt::Debug {
    /// Take (or find already held by this run) the lock of `runbook` on `env`; the error says
    /// who holds it.
    fn lock(&self, runbook: &str, env: &str) -> Result<(), String>;
}

pub(super) const MAX_NESTING: u8 = 4;

/// Outputs of finished steps, by step id.
pub(super) type StepOutputs = IndexMap<String, Vec<Output>>;

pub(super) struct State {
    pub(super) outputs: StepOutputs,
    /// The gate whose answer holds, as (in the rollback, index of its step): the steps it
    /// approves run without asking again. A run that starts inside them (a resume, `--from`,
    /// a gate skipped by its `when:`) asks that gate at its first step that runs.
    pub(super) approved: Option<(bool, usize)>,
    /// The change window this engine opened (the same key), while it is open.
    pub(super) window: Option<(bool, usize)>,
    pub(super) ok: usize,
    pub(super) failed: usize,
    pub(super) skipped: usize,
}

pub(super) enum Flow {
    Next,
    Stop(RunStatus, Option<String>),
    /// Run the rollback steps from this id; the string says what failed.
    Rollback(String, String),
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
