//! Events the engine emits, and the bus that masks them and hands them to every sink.

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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
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

impl RunStatus {
    /// The documented exit code of a run that ended this way.
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Done => 0,
            RunStatus::Failed | RunStatus::RolledBack => 1,
            RunStatus::Declined => 3,
            RunStatus::Interrupted => 130,
        }
    }
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
}

impl Bus {
    pub fn new(redactor: Redactor, sinks: Vec<Box<dyn Sink>>) -> Bus {
        Bus {
            sinks: Arc::new(Mutex::new(sinks)),
            redactor,
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

    /// The event with every string field masked (through its JSON form, so no field is missed).
    fn mask(&self, event: Event) -> Event {
        if self.redactor.is_empty() {
            return event;
        }
        let Ok(mut v) = serde_json::to_value(&event) else {
            return event;
        };
        self.redactor.redact_json(&mut v);
        serde_json::from_value(v).unwrap_or(event)
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
