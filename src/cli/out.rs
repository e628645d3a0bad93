//! Writing to stdout and stderr without ever panicking: what `print!` and friends do for the
//! crate (they are shadowed in `lib.rs`).
//!
//! A closed pipe (`runbook runs | head -1`) or a full disk behind a redirection is not a bug of
//! ours, so it must not be a panic. Output that cannot be written is dropped and the command
//! goes on: for `run` that is the safe choice — stopping between two steps of a rotation
//! because a reader went away would leave it half done, while the journal and `events.jsonl`
//! still record everything and the exit code still tells the outcome. [`stdout_gone`] says
//! whether something was lost, for a command that wants to know.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// True once a write to stdout failed (its reader is gone); later output is dropped.
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

pub fn stdout(args: Arguments<'_>) {
    if stdout_gone() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_fmt(args).and_then(|()| out.flush()).is_err() {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

pub fn stdout_line(args: Arguments<'_>) {
    stdout(format_args!("{args}\n"));
}

pub fn stderr(args: Arguments<'_>) {
    // Nowhere left to say that stderr failed: drop it.
    let _ = std::io::stderr().lock().write_fmt(args);
}

pub fn stderr_line(args: Arguments<'_>) {
    stderr(format_args!("{args}\n"));
}

/// Replace the default panic message (which prints the payload: it may hold a value from a
/// runbook, an input or a service's answer) by one line naming only the place in our code.
/// The process then ends with [`super::exit::INTERNAL`].
pub fn install_panic_hook() {
    static SAID: AtomicBool = AtomicBool::new(false);
    std::panic::set_hook(Box::new(|info| {
        if SAID.swap(true, Ordering::Relaxed) {
            return;
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        stderr(format_args!(
            "error: internal error in runbook {}{place}; this is a bug, please report it with the command that was run (no secret is shown here). \
             A run that was in progress is in `runbook runs`; `runbook resume` continues it.\n",
            env!("CARGO_PKG_VERSION")
        ));
    }));
}
