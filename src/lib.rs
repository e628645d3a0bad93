//! `runbook`: operational runbooks written as versioned YAML, run with plans, gates, live
//! progress and masked secrets.
//!
//! The pipeline, one module per stage: [`load`] (YAML with spans → typed model, with [`check`])
//! → [`plan`] → [`engine`] (events) → sinks ([`cli::ui`], [`journal`]). Step kinds live in
//! [`steps`], one file each. [`cli`] is the only module that prints or picks exit codes.

pub mod check;
pub mod cli;
pub mod diag;
pub mod display;
pub mod docs;
pub mod engine;
pub mod journal;
pub mod load;
pub mod model;
pub mod plan;
pub mod plan_md;
pub mod preflight;
pub mod schema;
pub mod secret;
pub mod select;
pub mod state;
pub mod steps;
pub mod template;
