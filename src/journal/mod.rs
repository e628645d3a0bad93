//! The run journal, run locks and the audit log, under the state directory.
//!
//! ```text
//! <state>/runs/<run-id>/journal.jsonl   what happened, in order: the facts a resume needs, including
//!                                       secret outputs while the run is unfinished (0600)
//! <state>/runs/<run-id>/events.jsonl    the masked events the operator saw
//! <state>/locks/<runbook>@<env>.lock    who is running this runbook on this environment
//! <state>/audit.jsonl                   one line per ended run attempt, secrets as fingerprints
//! ```
//!
//! Directories are 0700 and files 0600, opened through [`crate::state`] (never through a
//! symbolic link, refused when someone else could have written them). The journal is
//! append-only while the run goes on and synced before every step that changes something
//! elsewhere; when the run is over for good (done, rolled back, abandoned) it is rewritten once
//! without the secret values.
//!
//! One file per job: `format` (run ids, paths, the record types, the JSON line), `recorder`
//! ([`RunJournal`]), `event_log` ([`EventLog`]), `runs` (reading runs back), `audit`
//! (`audit.jsonl`) and `lock` ([`RunLock`]). This file is the module list and the names the rest
//! of the crate uses.

mod audit;
mod event_log;
mod format;
mod lock;
mod recorder;
mod runs;

pub use audit::read_audit;
pub use event_log::EventLog;
pub use format::{JRec, JValue, new_run_id, run_dir, state_dir, valid_run_id};
pub use lock::{LockError, LockHolder, RunLock, live_holder};
pub use recorder::{Health, HealthState, RunJournal, RunMeta, assume_done};
pub use runs::{
    InFlight, Journal, Kept, RunSummary, kept, list_runs, load_run, read_journal, resume_point,
    selection,
};

pub use crate::state::hostname;
