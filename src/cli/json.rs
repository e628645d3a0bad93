//! The one JSON convention of `--output json`: a command that returns one thing prints one
//! JSON document (an object with `format` first); `run` and `resume`, which report events as
//! they happen, print JSON Lines (the events, `run_started` carrying `format`). A command
//! that fails before it printed any JSON prints one error object instead (one line, so it is
//! also a valid JSON Lines stream), after which nothing else is written on stdout.
//!
//! Every object is versioned by `format`, the number of the event format: fields may be added
//! within it; a change that breaks readers bumps it.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use crate::diag::Problem;
use crate::engine::event::EVENT_FORMAT;
use crate::session::{Failure, Kind};

/// Whether a JSON document or event was written on stdout by this process.
static WRITTEN: AtomicBool = AtomicBool::new(false);

/// Said by every writer of JSON on stdout (documents here, events in `ui::JsonSink`).
pub fn mark_written() {
    WRITTEN.store(true, Ordering::SeqCst);
}

fn written() -> bool {
    WRITTEN.load(Ordering::SeqCst)
}

/// `fields` as a versioned document: `format` first, then the fields in their order.
pub fn versioned(fields: Value) -> Value {
    let mut doc = Map::new();
    doc.insert("format".into(), Value::from(EVENT_FORMAT));
    match fields {
        Value::Object(m) => doc.extend(m.into_iter().filter(|(k, _)| k != "format")),
        other => {
            doc.insert("value".into(), other);
        }
    }
    Value::Object(doc)
}

/// Print `fields` as the command's one document (indented, for people who look at it too).
pub fn print_document(fields: Value) {
    mark_written();
    println!(
        "{}",
        serde_json::to_string_pretty(&versioned(fields)).unwrap_or_default()
    );
}

/// A problem as JSON: the same fields in `check`'s document and in an error object.
pub fn problem(p: &Problem) -> Value {
    let (file, line, col) = p
        .location()
        .map_or((None, None, None), |(f, l, c)| (Some(f), Some(l), Some(c)));
    serde_json::json!({
        "severity": p.severity,
        "code": p.code,
        "message": p.message,
        "help": p.help,
        "file": file,
        "line": line,
        "col": col,
    })
}

/// The word of a failure's kind, as the error object names it.
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::StepFailed => "failed",
        Kind::Invalid => "invalid",
        Kind::Declined => "declined",
        Kind::Interrupted => "interrupted",
    }
}

/// The error object of a failure: `error` (its kind), `exit_code`, and, from its first
/// error, `code`, `message`, `help` and `file`/`line`/`col` when known; every problem in
/// `problems` and the other lines in `notes`. Made of the same texts as the stderr report,
/// which never hold a secret value.
pub fn error_object(f: &Failure, exit_code: i32) -> Value {
    let first = f
        .problems
        .iter()
        .find(|p| p.is_error())
        .or(f.problems.first());
    let lines: Vec<&str> = f.lines.iter().map(|l| l.trim_end()).collect();
    let message = match first {
        Some(p) => p.message.clone(),
        None => lines
            .iter()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.strip_prefix("error: ").unwrap_or(l).to_string())
            .unwrap_or_else(|| default_message(f.kind).to_string()),
    };
    let mut obj = Map::new();
    obj.insert("format".into(), Value::from(EVENT_FORMAT));
    obj.insert("error".into(), Value::from(kind_name(f.kind)));
    obj.insert("exit_code".into(), Value::from(exit_code));
    obj.insert(
        "code".into(),
        first.map_or(Value::Null, |p| Value::from(p.code.as_str())),
    );
    obj.insert("message".into(), Value::from(message));
    obj.insert(
        "help".into(),
        first
            .and_then(|p| p.help.clone())
            .map_or(Value::Null, Value::from),
    );
    let place = first.map(problem).unwrap_or_default();
    for k in ["file", "line", "col"] {
        obj.insert(k.into(), place.get(k).cloned().unwrap_or(Value::Null));
    }
    obj.insert(
        "problems".into(),
        Value::Array(f.problems.iter().map(problem).collect()),
    );
    obj.insert(
        "notes".into(),
        Value::Array(
            lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| Value::from(*l))
                .collect(),
        ),
    );
    Value::Object(obj)
}

fn default_message(kind: Kind) -> &'static str {
    match kind {
        Kind::StepFailed => "the command failed",
        Kind::Invalid => "invalid runbook, environment or input; nothing ran",
        Kind::Declined => "declined by the operator",
        Kind::Interrupted => "interrupted",
    }
}

/// With `--output json`, a failure that left stdout without any JSON (refused before its
/// first event, or before its document) prints its error object there, on one line.
pub fn print_error_if_silent(f: &Failure, exit_code: i32) {
    if written() {
        return;
    }
    mark_written();
    println!("{}", error_object(f, exit_code));
}
