//! `expect:` of `ssh.exec`: what a command's result must look like (exit codes, patterns on
//! its output, values of its JSON), judged the same way on every host, and the output a
//! failure shows; and the lines `report:` keeps as what the step found.

use std::fmt::Write as _;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

use crate::one_or_many::OneOrMany;
use crate::steps::common::json_path;
use crate::steps::kind::{RunCx, StepError};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Accepted exit codes: one or a list (default 0).
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany<ExitCodeSchema>>")]
    pub exit_code: Option<ExitCodes>,
    /// Text stdout must contain.
    #[serde(default)]
    pub stdout_contains: Option<String>,
    /// A regular expression stdout must match (anywhere; `(?m)` for line anchors).
    #[serde(default)]
    pub stdout_matches: Option<String>,
    /// A regular expression stdout must not match.
    #[serde(default)]
    pub stdout_not_matches: Option<String>,
    /// A regular expression stderr must not match.
    #[serde(default)]
    pub stderr_not_matches: Option<String>,
    /// Values stdout, parsed as JSON, must hold.
    #[serde(default)]
    pub json: Vec<JsonAssert>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonAssert {
    /// Dotted path into the document: `status`, `items.0.name` (empty: the whole document).
    pub path: String,
    /// The value expected there.
    pub equals: serde_json::Value,
}

/// One exit code or a list of them.
pub type ExitCodes = OneOrMany<i64>;

/// The schema of one exit code (read as any integer; `check` refuses one outside 0 to 255).
struct ExitCodeSchema;

impl JsonSchema for ExitCodeSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExitCode".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 0, "maximum": 255 })
    }
}

/// The command's result on one host.
pub(super) struct Ran {
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) code: Option<i32>,
}

/// Why a host failed: a few words for progress, and the whole sentence.
pub(super) struct Failure {
    pub(super) short: String,
    pub(super) message: String,
}

/// The step's `expect:` with its patterns compiled once for every host.
pub(super) struct Checks {
    stdout_matches: Option<regex::Regex>,
    stdout_not: Option<regex::Regex>,
    stderr_not: Option<regex::Regex>,
}

impl Checks {
    /// Compile the patterns before touching any host.
    pub(super) fn compile(expect: &Expect) -> Result<Checks, StepError> {
        let re = |field: &str, pat: &Option<String>| -> Result<Option<regex::Regex>, StepError> {
            pat.as_deref()
                .map(|s| {
                    regex::Regex::new(s).map_err(|e| {
                        StepError::new(format!(
                            "invalid regular expression in `expect.{field}`: {e}"
                        ))
                    })
                })
                .transpose()
        };
        Ok(Checks {
            stdout_matches: re("stdout_matches", &expect.stdout_matches)?,
            stdout_not: re("stdout_not_matches", &expect.stdout_not_matches)?,
            stderr_not: re("stderr_not_matches", &expect.stderr_not_matches)?,
        })
    }

    /// Whether a result is what `expect:` asks for.
    pub(super) fn judge(&self, expect: &Expect, ran: &Ran) -> Result<(), Failure> {
        let fail = |short: &str, message: String| {
            Err(Failure {
                short: short.to_string(),
                message,
            })
        };
        let (stdout, stderr) = (&ran.stdout, &ran.stderr);
        let allowed = expect.exit_code.clone().unwrap_or(ExitCodes::One(0));
        match ran.code {
            None => {
                return fail(
                    "no exit code",
                    "the command ended without an exit code (killed by a signal, or the connection dropped)".into(),
                );
            }
            Some(c) if !allowed.as_slice().contains(&i64::from(c)) => {
                let expected: Vec<String> = allowed.as_slice().iter().map(i64::to_string).collect();
                return fail(
                    &format!("exit {c}"),
                    format!(
                        "the command exited with {c} (expected {})",
                        expected.join(" or ")
                    ),
                );
            }
            Some(_) => {}
        }
        if let Some(s) = &expect.stdout_contains
            && !stdout.contains(s.as_str())
        {
            return fail(
                "stdout_contains",
                format!("expect.stdout_contains: stdout does not contain `{s}`"),
            );
        }
        if let Some(r) = &self.stdout_matches
            && !r.is_match(stdout)
        {
            return fail(
                "stdout_matches",
                format!("expect.stdout_matches: stdout does not match `{r}`"),
            );
        }
        if let Some(r) = &self.stdout_not
            && let Some(m) = r.find(stdout)
        {
            return fail(
                "stdout_not_matches",
                format!(
                    "expect.stdout_not_matches: stdout matches `{r}` (at `{}`)",
                    line_of(stdout, m.start())
                ),
            );
        }
        if let Some(r) = &self.stderr_not
            && let Some(m) = r.find(stderr)
        {
            return fail(
                "stderr_not_matches",
                format!(
                    "expect.stderr_not_matches: stderr matches `{r}` (at `{}`)",
                    line_of(stderr, m.start())
                ),
            );
        }
        if !expect.json.is_empty() {
            let doc: serde_json::Value = match serde_json::from_str(stdout) {
                Ok(d) => d,
                Err(e) => return fail("json", format!("expect.json: stdout is not JSON ({e})")),
            };
            for a in &expect.json {
                let got = json_path(&doc, &a.path);
                if got != Some(&a.equals) {
                    let got = got.map_or("nothing".to_string(), |v| format!("`{v}`"));
                    return fail(
                        "json",
                        format!(
                            "expect.json: `{}` is {got}, expected `{}`",
                            a.path, a.equals
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// A failure shows what the command printed in full (the first error is often at the top);
/// only a runaway output is cut, to its last lines.
const TAIL_LINES: usize = 1000;

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

/// Both streams, for a failure's detail (only a runaway one cut to its last lines).
pub(super) fn tails(stdout: &str, stderr: &str) -> String {
    let mut d = String::new();
    for (name, s) in [("stdout", stdout), ("stderr", stderr)] {
        if s.trim().is_empty() {
            continue;
        }
        let n = s.trim_end().lines().count();
        let head = if n > TAIL_LINES {
            format!("{name} (last {TAIL_LINES} of {n} lines):")
        } else {
            format!("{name}:")
        };
        if !d.is_empty() {
            d.push('\n');
        }
        let _ = write!(d, "{head}\n{}", tail(s));
    }
    d
}

fn line_of(s: &str, at: usize) -> &str {
    let start = s[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = s[at..].find('\n').map_or(s.len(), |i| at + i);
    s[start..end].trim()
}

/// The lines of `stdout` that `report:` matches, each a note of the step (`prefix`: the host,
/// on several hosts), whether the step then passes its `expect:` or not: what it found is
/// the evidence either way.
pub(super) fn report(
    pattern: Option<&str>,
    cx: &RunCx<'_>,
    prefix: &str,
    stdout: &str,
) -> Result<(), StepError> {
    let Some(pat) = pattern else {
        return Ok(());
    };
    let re = regex::Regex::new(pat)
        .map_err(|e| StepError::new(format!("invalid regular expression in `report`: {e}")))?;
    for line in stdout.lines().map(|l| l.trim_end_matches('\r')) {
        if re.is_match(line) {
            (cx.note)(&format!("{prefix}{line}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_lines() {
        let out: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let t = tails(&out, "boom\n");
        assert!(t.starts_with("stdout:\nline 1\n"), "{t}");
        assert!(t.ends_with("line 30\nstderr:\nboom"));
        let runaway: String = (1..=1005).map(|i| format!("line {i}\n")).collect();
        let t = tails(&runaway, "");
        assert!(
            t.starts_with("stdout (last 1000 of 1005 lines):\nline 6\n"),
            "{t}"
        );
    }
}
