//! Events the engine emits, and the bus that masks them and hands them to every sink.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::secret::Redactor;

/// Something that happened in a run. Sinks (terminal, plain log, JSON lines, journal) render
/// them; none of them ever sees an unmasked secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        /// Version of this event format (`--output json`); bumped on incompatible changes.
        #[serde(default)]
        format: u32,
        run_id: String,
        runbook: String,
        env: String,
        steps: usize,
        digest: String,
        dry_run: bool,
    },
    StepStarted {
        index: usize,
        total: usize,
        id: String,
        title: String,
        kind: String,
        action: String,
    },
    /// A line of output from a running step (e.g. remote stdout).
    StepProgress {
        id: String,
        line: String,
    },
    StepSkipped {
        index: usize,
        total: usize,
        id: String,
        reason: String,
    },
    /// A gate was answered.
    Gate {
        id: String,
        question: String,
        approved: bool,
        by: String,
    },
    /// Instructions or a note shown to the operator.
    Note {
        id: String,
        text: String,
    },
    /// Something the operator must know of, from a step (`id`) or the run (`id` empty): it
    /// stays on every output and is repeated in `run_finished`. Added within format 1.
    Warning {
        id: String,
        text: String,
    },
    /// A manual step's work: done or declined by the person named in `by` (the same identity
    /// a gate records), or, in a run nobody attends, not done by a person (`by` says why;
    /// the step is skipped and outstanding). Added within format 1.
    Manual {
        id: String,
        outcome: ManualOutcome,
        by: String,
    },
    StepRetry {
        id: String,
        attempt: u32,
        attempts: u32,
        error: String,
        delay_ms: u64,
    },
    StepFinished {
        index: usize,
        total: usize,
        id: String,
        status: StepStatus,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// A failed step's place: `file:line:col` of the failing field (a template's own
        /// place in it) or of the step's `id:`. Added within format 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// What the operator can do about the failure. Added within format 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        help: Option<String>,
        /// Outputs, with secrets masked.
        #[serde(default)]
        outputs: serde_json::Map<String, serde_json::Value>,
    },
    RollbackStarted {
        failed: String,
        from: String,
    },
    RunFinished {
        run_id: String,
        status: RunStatus,
        duration_ms: u64,
        ok: usize,
        failed: usize,
        skipped: usize,
        /// Main steps the run never reached (it failed, was declined or interrupted before
        /// them), so that ok + failed + skipped + not_run is every step. Added within format 1.
        #[serde(default, skip_serializing_if = "is_zero")]
        not_run: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Every warning of the run, repeated for the summary. Added within format 1.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<Noted>,
        /// Manual steps nobody did (`unattended: skip` in a run nobody attended): work still
        /// to do by hand, with what the step asks. Added within format 1.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        outstanding: Vec<Noted>,
    },
}

/// A step (its id, empty for the run itself) and a text about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Noted {
    pub id: String,
    pub text: String,
}

/// How a manual step's work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManualOutcome {
    /// A person said it is done.
    Done,
    /// A person said no.
    Declined,
    /// Nobody attended the run, and the step allows that (`unattended: skip`).
    NotDoneByAPerson,
}

impl ManualOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ManualOutcome::Done => "done",
            ManualOutcome::Declined => "declined",
            ManualOutcome::NotDoneByAPerson => "not-done-by-a-person",
        }
    }
}

impl Event {
    /// Every text of the event, for masking: each string field and each output value. The
    /// destructuring names every field, so a field added to an event must be added here too
    /// (the compiler says so); numbers, flags and statuses hold no text.
    pub fn visit_text(
        &mut self,
        text: &mut dyn FnMut(&mut String),
        json: &mut dyn FnMut(&mut serde_json::Value),
    ) {
        match self {
            Event::RunStarted {
                format: _,
                run_id,
                runbook,
                env,
                steps: _,
                digest,
                dry_run: _,
            } => [run_id, runbook, env, digest].into_iter().for_each(text),
            Event::StepStarted {
                index: _,
                total: _,
                id,
                title,
                kind,
                action,
            } => [id, title, kind, action].into_iter().for_each(text),
            Event::StepProgress { id, line } => [id, line].into_iter().for_each(text),
            Event::StepSkipped {
                index: _,
                total: _,
                id,
                reason,
            } => [id, reason].into_iter().for_each(text),
            Event::Gate {
                id,
                question,
                approved: _,
                by,
            } => [id, question, by].into_iter().for_each(text),
            Event::Note { id, text: t } | Event::Warning { id, text: t } => {
                [id, t].into_iter().for_each(text);
            }
            Event::Manual { id, outcome: _, by } => [id, by].into_iter().for_each(text),
            Event::StepRetry {
                id,
                attempt: _,
                attempts: _,
                error,
                delay_ms: _,
            } => [id, error].into_iter().for_each(text),
            Event::StepFinished {
                index: _,
                total: _,
                id,
                status: _,
                duration_ms: _,
                error,
                detail,
                at,
                help,
                outputs,
            } => {
                text(id);
                error
                    .iter_mut()
                    .chain(detail.iter_mut())
                    .chain(at.iter_mut())
                    .chain(help.iter_mut())
                    .for_each(&mut *text);
                let mut v = serde_json::Value::Object(std::mem::take(outputs));
                json(&mut v);
                if let serde_json::Value::Object(o) = v {
                    *outputs = o;
                }
            }
            Event::RollbackStarted { failed, from } => [failed, from].into_iter().for_each(text),
            Event::RunFinished {
                run_id,
                status: _,
                duration_ms: _,
                ok: _,
                failed: _,
                skipped: _,
                not_run: _,
                message,
                warnings,
                outstanding,
            } => {
                text(run_id);
                message.iter_mut().for_each(&mut *text);
                for n in warnings.iter_mut().chain(outstanding.iter_mut()) {
                    let Noted { id, text: t } = n;
                    text(id);
                    text(t);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Ok,
    Failed,
    /// Failed, and `on_failure: continue` let the run go on.
    FailedIgnored,
    Declined,
    Interrupted,
    /// `when:` was false.
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Done,
    Failed,
    /// A step failed and its rollback steps ran; the run still counts as failed.
    RolledBack,
    Declined,
    Interrupted,
}

/// The version of the event format written by `--output json` and the event logs.
pub const EVENT_FORMAT: u32 = 1;

/// An event with the time it happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamped {
    pub ts: String,
    #[serde(flatten)]
    pub event: Event,
}

/// A consumer of events: terminal UI, plain log, JSON output, journal.
pub trait Sink: Send {
    fn event(&mut self, e: &Stamped);
    /// Called before a question is asked, so a progress display can get out of the way.
    fn suspend(&mut self, _f: &mut dyn FnMut()) -> bool {
        false
    }
    fn finish(&mut self) {}
}

/// Every event goes through the redactor once, then to every sink.
#[derive(Clone)]
pub struct Bus {
    sinks: Arc<Mutex<Vec<Box<dyn Sink>>>>,
    pub redactor: Redactor,
    /// The recent output lines of each running step (see [`Redactor::redact_line`]).
    carries: Arc<Mutex<HashMap<String, String>>>,
}

impl Bus {
    pub fn new(redactor: Redactor, sinks: Vec<Box<dyn Sink>>) -> Bus {
        Bus {
            sinks: Arc::new(Mutex::new(sinks)),
            redactor,
            carries: Arc::default(),
        }
    }

    pub fn emit(&self, event: Event) {
        let event = self.mask(event);
        let stamped = Stamped {
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event,
        };
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        for s in sinks.iter_mut() {
            s.event(&stamped);
        }
    }

    /// The event with every text field masked, field by field: never through a JSON round
    /// trip, where a secret that is also a word of the format (`step`, `note`) would break the
    /// event and make it go out unmasked. A step's output lines are masked knowing the lines
    /// before them, so a secret split over several lines is masked in each.
    fn mask(&self, mut event: Event) -> Event {
        if self.redactor.is_empty() {
            return event;
        }
        let r = &self.redactor;
        if let Event::StepProgress { id, line } = &mut event {
            let mut carries = self.carries.lock().unwrap_or_else(|e| e.into_inner());
            let carry = carries.entry(id.clone()).or_default();
            *line = r.redact_line(carry, line);
            r.redact_in_place(id);
            return event;
        }
        if let Event::StepFinished { id, .. } = &event {
            self.carries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
        event.visit_text(&mut |s| r.redact_in_place(s), &mut |v| r.redact_json(v));
        event
    }

    /// Run `f` (a prompt) with the progress display out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut f = Some(f);
        let mut out = None;
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        for s in sinks.iter_mut() {
            if s.suspend(&mut || {
                if let Some(f) = f.take() {
                    out = Some(f());
                }
            }) {
                break;
            }
        }
        drop(sinks);
        match out {
            Some(o) => o,
            None => (f.take().expect("not yet called"))(),
        }
    }

    pub fn finish(&self) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        for s in sinks.iter_mut() {
            s.finish();
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Capture(Arc<Mutex<Vec<String>>>);

    impl Sink for Capture {
        fn event(&mut self, e: &Stamped) {
            let line = serde_json::to_string(e).expect("an event serializes");
            self.0.lock().unwrap().push(line);
        }
    }

    /// A secret that is also a word of the event format (a tag, a field name, a status) does
    /// not make masking fail open: every other secret is still masked, and the event still
    /// goes out whole.
    #[test]
    fn a_secret_that_is_a_word_of_the_format_masks_nothing_else_open() {
        for word in [
            "step_finished",
            "event",
            "outputs",
            "duration_ms",
            "kebab-case",
            "failed-ignored",
        ] {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let redactor = Redactor::new();
            redactor.add(&format!("{word}{word}"));
            redactor.add(word);
            redactor.add("the-other-secret-value");
            let bus = Bus::new(redactor, vec![Box::new(Capture(seen.clone()))]);
            let mut outputs = serde_json::Map::new();
            outputs.insert("value".into(), "the-other-secret-value".into());
            bus.emit(Event::StepFinished {
                index: 1,
                total: 1,
                id: "step".into(),
                status: StepStatus::FailedIgnored,
                duration_ms: 5,
                error: Some(format!("bad {word} and the-other-secret-value")),
                detail: None,
                at: None,
                help: None,
                outputs,
            });
            let lines = seen.lock().unwrap();
            assert_eq!(lines.len(), 1);
            assert!(!lines[0].contains("the-other-secret-value"), "{}", lines[0]);
            let back: Stamped = serde_json::from_str(&lines[0]).expect("the event is whole");
            let Event::StepFinished { error, .. } = back.event else {
                panic!("{}", lines[0]);
            };
            let error = error.unwrap();
            assert!(word.len() < 8 || !error.contains(word), "{error}");
        }
    }

    #[test]
    fn output_lines_are_masked_knowing_the_lines_before() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let redactor = Redactor::new();
        let secret = "Zq8xK2mW9pL4vN7rT1yB6cF3hJ5gD0sA";
        redactor.add(secret);
        let bus = Bus::new(redactor, vec![Box::new(Capture(seen.clone()))]);
        for chunk in secret.as_bytes().chunks(12) {
            bus.emit(Event::StepProgress {
                id: "x".into(),
                line: String::from_utf8(chunk.to_vec()).unwrap(),
            });
        }
        let lines = seen.lock().unwrap();
        // The first 12 characters alone are not recognisable; every later line is masked.
        for l in &lines[1..] {
            assert!(l.contains(crate::secret::MASK), "{l}");
        }
    }
}
