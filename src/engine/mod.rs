//! The engine: runs a checked runbook's steps in order against one environment.
//!
//! It renders templates, evaluates `when:`, asks at gates, applies `timeout`/`retry`/
//! `on_failure`, and reports everything as [`event::Event`]s. It never prints and knows no
//! AWS, SSH or SQL: those live in the step kinds.
//!
//! This file only lists the parts; none of them imports it (the shared types are in `types`).

pub mod event;
mod gate;
mod nested;
pub mod record;
mod run;
mod step;
pub mod taint;
mod types;

pub use crate::inputs::InputValue;
pub use gate::operator;
pub use types::{ChildLocks, Engine, Interrupt, Nesting, RunOptions, RunResult};
