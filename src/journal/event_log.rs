//! [`EventLog`]: `runs/<id>/events.jsonl`, the masked events the operator saw (a sink behind the
//! redactor, like the terminal), apart from the journal a resume reads.

use std::fs::File;
use std::path::Path;

use crate::engine::event::{Event, Sink, Stamped};
use crate::journal::format::{append_json_line, check_run_id, private_append, run_dir};
use crate::state;

/// The masked events of a run (what the operator saw), next to its journal.
pub struct EventLog {
    file: File,
}

impl EventLog {
    pub fn open(state: &Path, run_id: &str) -> std::io::Result<EventLog> {
        check_run_id(run_id)?;
        let dir = run_dir(state, run_id);
        state::check_dir(&dir, false)?;
        Ok(EventLog {
            file: private_append(&dir.join("events.jsonl"))?,
        })
    }
}

impl Sink for EventLog {
    fn event(&mut self, e: &Stamped) {
        if matches!(e.event, Event::StepProgress { .. }) {
            return;
        }
        let _ = append_json_line(&mut self.file, e);
    }
}
