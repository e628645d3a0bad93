//! The JSON Schemas of the file formats, generated from the Rust types (checked in under
//! `schemas/`; a test keeps the files in sync).

use schemars::generate::SchemaSettings;

use crate::model::{EnvironmentsDoc, RunbookDoc};

fn generate<T: schemars::JsonSchema>(id: &str) -> String {
    let mut schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert(
        "$id".into(),
        format!("https://runbook.dev/schemas/{id}").into(),
    );
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

/// `schemas/runbook.v1.json`.
pub fn runbook() -> String {
    generate::<RunbookDoc>("runbook.v1.json")
}

/// `schemas/environments.v1.json`.
pub fn environments() -> String {
    generate::<EnvironmentsDoc>("environments.v1.json")
}
