//! `runbook`: operational runbooks written as versioned YAML, run with plans, gates, live
//! progress and masked secrets.
//!
//! The pipeline, one module per stage: [`load`] (YAML with spans → typed model, with [`check`])
//! → [`plan`] → [`engine`] (events) → sinks (the terminal's, [`journal`]). Step kinds live in
//! [`steps`], one file each. [`session`] runs and resumes around the engine; [`cli`], a thin
//! layer over it that exports only [`cli::main`], is the only module that prints or picks exit
//! codes.

// `print!`, `println!`, `eprint!` and `eprintln!` of the standard library panic when the other
// end of the pipe is gone (`runbook run ... 2>&1 | head -1`). These shadow them for the whole
// crate (a macro defined here, before the modules, comes first in their scope), so no print of
// ours can panic: output that cannot be written is dropped. See `cli::out`.
macro_rules! print {
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::cli::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::stdout_line(format_args!($($arg)*)) };
}
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::cli::out::stderr(format_args!($($arg)*)) };
}
macro_rules! eprintln {
    () => { $crate::cli::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::stderr_line(format_args!($($arg)*)) };
}

pub mod aws;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod diag;
pub mod display;
pub mod docs;
pub mod engine;
pub mod flowchart;
pub mod inputs;
pub mod journal;
pub mod load;
pub mod model;
pub mod one_or_many;
pub mod plan;
pub mod plan_md;
pub mod preflight;
pub mod schema;
pub mod secret;
pub mod select;
pub mod session;
pub mod state;
pub mod status;
pub mod steps;
pub mod table;
pub mod template;
