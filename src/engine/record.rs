//! What the engine tells the run journal, and what a resumed run starts from.
//!
//! The engine knows no files: it hands [`Record`]s to a [`Recorder`] (the CLI gives it the
//! on-disk journal) and calls [`Recorder::sync`] before any step that changes something
//! outside this machine, so every value a later step could use — a generated secret above
//! all — is durable before it is used.

use std::collections::HashSet;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::event::{ManualOutcome, RunStatus, StepStatus};
use crate::steps::Output;

/// Which list a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Main,
    Rollback,
}

/// One fact about a run, in the order it happened.
#[derive(Debug)]
pub enum Record<'a> {
    Gate {
        id: &'a str,
        approved: bool,
        by: &'a str,
    },
    StepStarted {
        phase: Phase,
        id: &'a str,
    },
    /// A manual step's work, and who did it (or why nobody did).
    Manual {
        id: &'a str,
        outcome: ManualOutcome,
        by: &'a str,
    },
    StepFinished {
        phase: Phase,
        id: &'a str,
        status: StepStatus,
        outputs: &'a [Output],
    },
    RollbackStarted {
        failed: &'a str,
        from: &'a str,
    },
    RunFinished {
        status: RunStatus,
        message: Option<&'a str>,
    },
}

pub trait Recorder: Send {
    /// Append a record (it may stay buffered until [`Recorder::sync`]).
    fn record(&mut self, rec: Record<'_>) -> std::io::Result<()>;
    /// Make every record so far durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

/// Where a resumed run starts: the outputs of finished steps, which steps not to run again,
/// and whether the rollback had begun.
#[derive(Debug, Default, Clone)]
pub struct Resume {
    pub outputs: IndexMap<String, Vec<Output>>,
    /// Ids of steps (main or rollback) that finished (or were skipped) before.
    pub done: HashSet<String>,
    /// The rollback had started from this step; `failed` is the step whose failure started it.
    pub rollback: Option<(String, String)>,
}
