//! What the kinds share beyond the traits: how a command is shown, error chains, paths of
//! environments.yaml, a lock that survives poisoning. (What fan-outs share is `fanout.rs`.)

use std::sync::Mutex;

/// Until every fan-out imports them from `steps::fanout`.
pub(crate) use super::fanout::{Status, hosts_summary};

/// A command or a script as a step's action shows it: every line, without the blank lines
/// and trailing space around it. A one-line command starts on the action's line; a longer
/// one is shown whole, and each renderer lays out the lines after the first.
pub fn whole_text(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    let mut out = lines[start.min(lines.len())..].join("\n");
    // The first line's own indent would only push it away from `on host:`.
    if let Some(trimmed) = out.strip_prefix(|c: char| c == ' ' || c == '\t') {
        out = trimmed.trim_start_matches([' ', '\t']).to_string();
    }
    out
}

/// The first line of a step's action and, when it has more, how many: for the places with
/// room for one line only (a spinner, a heading).
pub fn first_line(action: &str) -> (&str, usize) {
    let mut lines = action.lines();
    let first = lines.next().unwrap_or_default();
    (first, lines.count())
}

/// An error and its causes joined with `: `, skipping a cause a layer already repeats in its
/// own text. (The SDKs' own displays are either just "service error" or a debug dump.)
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// `~` and `~/x` in a path of environments.yaml.
pub fn expand_tilde(p: &str) -> std::path::PathBuf {
    match (p.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            let mut h = std::path::PathBuf::from(home);
            h.push(rest.trim_start_matches('/'));
            h
        }
        _ => std::path::PathBuf::from(p),
    }
}

/// A std mutex's guard, also after a panic elsewhere poisoned it (the data stays usable: every
/// holder leaves it consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The value at a dotted path (`items.0.name`; `$.` in front is allowed), as `expect.json` of
/// `ssh.exec` and `expect_json` of `http.request` name it.
pub fn json_path<'a>(doc: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let path = path.trim().trim_start_matches('$').trim_start_matches('.');
    if path.is_empty() {
        return Some(doc);
    }
    path.split('.').try_fold(doc, |v, part| match v {
        serde_json::Value::Object(m) => m.get(part),
        serde_json::Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod json_path_tests {
    use super::*;

    #[test]
    fn json_paths() {
        let doc = serde_json::json!({"a": {"b": [1, {"c": "x"}]}});
        assert_eq!(json_path(&doc, "a.b.1.c"), Some(&serde_json::json!("x")));
        assert_eq!(json_path(&doc, "$.a.b.0"), Some(&serde_json::json!(1)));
        assert_eq!(json_path(&doc, "a.z"), None);
        assert_eq!(json_path(&doc, ""), Some(&doc));
    }
}
