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
        /// The step's kind, its title as shown (masked), and what it writes for good
        /// ([`crate::steps::DynKind::writes_named_by`], rendered), for the run's history.
        kind: &'a str,
        title: &'a str,
        writes: Option<&'a str>,
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
    /// The run so far, as recorded (see [`crate::steps::RunRecord::history`]).
    fn history(&mut self) -> std::io::Result<crate::steps::RunHistory> {
        Err(std::io::Error::other("this run keeps no journal"))
    }
    /// Write a document of the run beside its journal (see
    /// [`crate::steps::RunRecord::write_document`]).
    fn write_document(&mut self, _name: &str, _text: &str) -> std::io::Result<std::path::PathBuf> {
        Err(std::io::Error::other("this run keeps no journal"))
    }
    /// `text` with the run's secrets masked, as the recorder writes them.
    fn mask(&self, text: &str) -> String {
        text.to_string()
    }
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

/// A step reads its run's record through the run's recorder (see [`crate::steps::RunRecord`]).
impl crate::steps::RunRecord for std::sync::Arc<std::sync::Mutex<Box<dyn Recorder>>> {
    fn history(&self) -> std::io::Result<crate::steps::RunHistory> {
        self.lock().unwrap_or_else(|e| e.into_inner()).history()
    }

    fn write_document(&self, name: &str, text: &str) -> std::io::Result<std::path::PathBuf> {
        self.lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_document(name, text)
    }

    fn mask(&self, text: &str) -> String {
        self.lock().unwrap_or_else(|e| e.into_inner()).mask(text)
    }
}
