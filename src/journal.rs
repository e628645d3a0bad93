//! The run journal: every event of a run, masked, appended to a private file (0600 in a 0700
//! directory) under the state directory, flushed at each step transition.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::engine::event::{Event, Sink, Stamped};

/// The state directory: `--state-dir`, `$RUNBOOK_STATE_DIR`, `$XDG_STATE_HOME/runbook`, or
/// `~/.local/state/runbook`.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("RUNBOOK_STATE_DIR") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_STATE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("runbook");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/runbook")
}

/// A new run id: UTC time plus randomness, sortable.
pub fn new_run_id() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let digits: String = now.chars().filter(char::is_ascii_digit).collect();
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    format!(
        "{}-{}-{:02x}{:02x}",
        &digits[..8],
        &digits[8..14],
        r[0],
        r[1]
    )
}

pub struct JournalSink {
    file: File,
    pub path: PathBuf,
}

impl JournalSink {
    pub fn create(state_dir: &Path, run_id: &str) -> std::io::Result<JournalSink> {
        let dir = state_dir.join("runs");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let path = dir.join(format!("{run_id}.jsonl"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        Ok(JournalSink { file, path })
    }
}

impl Sink for JournalSink {
    fn event(&mut self, e: &Stamped) {
        if matches!(e.event, Event::StepProgress { .. }) {
            return;
        }
        if let Ok(line) = serde_json::to_string(e) {
            let _ = writeln!(self.file, "{line}");
        }
        if matches!(
            e.event,
            Event::StepFinished { .. }
                | Event::StepStarted { .. }
                | Event::RunFinished { .. }
                | Event::Gate { .. }
        ) {
            let _ = self.file.sync_data();
        }
    }
}
