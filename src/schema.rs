//! The JSON Schemas of the file formats, generated from the Rust types (checked in under
//! `schemas/`; a test keeps the files in sync).

use schemars::generate::SchemaSettings;

use crate::model::{EnvironmentsDoc, RunbookDoc};

fn generate<T: schemars::JsonSchema>() -> String {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

/// `schemas/runbook.v1.json`.
pub fn runbook() -> String {
    generate::<RunbookDoc>()
}

/// `schemas/environments.v1.json`.
pub fn environments() -> String {
    generate::<EnvironmentsDoc>()
}
