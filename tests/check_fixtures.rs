//! `runbook check` over the fixture corpus: every file under `tests/fixtures/invalid/` states
//! the one problem it must produce in its first line, every file under
//! `tests/fixtures/warnings/` the one warning it must produce (and passes: exit 0), and every
//! file under `tests/fixtures/valid/` must pass without any.
//!
//! Header format: `# expect: CODE | MESSAGE SUBSTRING | line N [| help: HELP SUBSTRING]`.
//!
//! The whole human output of each invalid fixture is a snapshot as well
//! (`tests/snapshots/check_fixtures__check@<fixture>.snap`): what the operator reads, the
//! snippet, the underline and the help included. Update them with `INSTA_UPDATE=always cargo
//! test --test check_fixtures` (or `cargo insta review`) and read the diff before committing.
//!
//! A problem across runbooks (a `runbook.run` cycle) is a directory `CASE/` holding `CASE.yaml`
//! (the fixture, with the header) and the runbooks it names: all are checked together.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Expect {
    code: String,
    message: String,
    line: usize,
    help: Option<String>,
}

fn parse_header(text: &str) -> Result<Expect, String> {
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .ok_or("the first line is not `# expect: CODE | MESSAGE | line N`")?;
    let parts: Vec<&str> = rest.split(" | ").map(str::trim).collect();
    let (code, message, line) = match parts.as_slice() {
        [c, m, l] | [c, m, l, _] => (c, m, l),
        _ => return Err(format!("the header has {} parts, not 3 or 4", parts.len())),
    };
    let line = line
        .strip_prefix("line ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("`{line}` is not `line N`"))?;
    let help = match parts.get(3) {
        Some(h) => Some(
            h.strip_prefix("help: ")
                .ok_or_else(|| format!("`{h}` is not `help: TEXT`"))?
                .to_string(),
        ),
        None => None,
    };
    if !code.starts_with("runbook::") || message.is_empty() {
        return Err("the header needs a `runbook::` code and a message".into());
    }
    Ok(Expect {
        code: code.to_string(),
        message: message.to_string(),
        line,
        help,
    })
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = common::repo().join("tests/fixtures").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                let case = p.file_name().unwrap().to_string_lossy().into_owned();
                p.join(format!("{case}.yaml"))
            } else {
                p
            }
        })
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

struct Checked {
    code: i32,
    /// stdout and stderr of the human format, one after the other.
    human: String,
    stdout: String,
    stderr: String,
    json: Vec<serde_json::Value>,
}

/// `runbook check FILE` in a fresh directory holding the file and the repository's
/// environments (checks of hosts and env vars need them), as text and as JSON.
fn check(fixture: &Path) -> Checked {
    let tmp = tempfile::tempdir().unwrap();
    let name = fixture.file_name().unwrap();
    std::fs::copy(fixture, tmp.path().join(name)).unwrap();
    // A case directory: the runbooks the fixture names sit next to it.
    let parent = fixture.parent().unwrap();
    if parent
        .file_name()
        .map(|n| n.to_os_string().into_encoded_bytes())
        == fixture
            .file_stem()
            .map(|n| n.to_os_string().into_encoded_bytes())
    {
        for e in std::fs::read_dir(parent).unwrap() {
            let p = e.unwrap().path();
            if p != fixture {
                std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::copy(
        common::repo().join("runbooks/environments.yaml"),
        tmp.path().join("environments.yaml"),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(common::BIN)
            .current_dir(tmp.path())
            .arg("check")
            .args(extra)
            .arg(name)
            .env("NO_COLOR", "1")
            .output()
            .expect("run runbook check");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Only the directory is redacted: check output holds no time or id, and its durations
    // (`from 1s to 10m`) are part of what it says.
    let tmp_path = tmp.path().display().to_string();
    let (code, stdout, stderr) = run(&[]);
    let (stdout, stderr) = (
        stdout.replace(&tmp_path, "[TMP]"),
        stderr.replace(&tmp_path, "[TMP]"),
    );
    let (_, json, _) = run(&["--format", "json"]);
    let json = common::checked_problems(&json);
    Checked {
        code,
        human: format!("{stdout}{stderr}"),
        stdout,
        stderr,
        json,
    }
}

/// The text with miette's wrapping undone, so a long message can be found in it.
fn unwrapped(s: &str) -> String {
    s.lines()
        .map(|l| l.trim().trim_start_matches('│').trim())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// An invalid fixture's problem is an error (exit 2); a warning fixture's is a warning, and
/// the only problem (exit 0).
fn verify(fixture: &Path, severity: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(fixture).map_err(|e| e.to_string())?;
    let want = parse_header(&text)?;
    let file = fixture.file_name().unwrap().to_string_lossy().into_owned();
    let got = check(fixture);
    let mut why = Vec::new();
    let code = if severity == "error" { 2 } else { 0 };
    if got.code != code {
        why.push(format!("exit code {} instead of {code}", got.code));
    }
    if severity == "warning" && got.json.len() != 1 {
        why.push(format!(
            "{} problems instead of one warning",
            got.json.len()
        ));
    }
    let flat = unwrapped(&got.human);
    if !got.human.contains(&want.code) {
        why.push(format!("no `{}` in the output", want.code));
    }
    if !flat.contains(&want.message) {
        why.push(format!("no `{}` in the output", want.message));
    }
    let location = format!("{file}:{}:", want.line);
    if !got.human.contains(&location) {
        why.push(format!("no location `{location}` in the output"));
    }
    // The same problem must carry all three (and the help), not three different problems.
    let one = got.json.iter().any(|p| {
        p["severity"] == severity
            && p["code"] == want.code.as_str()
            && p["message"]
                .as_str()
                .is_some_and(|m| m.contains(&want.message))
            && p["line"] == want.line
            && want
                .help
                .as_ref()
                .is_none_or(|h| p["help"].as_str().is_some_and(|ph| ph.contains(h.as_str())))
    });
    if !one {
        why.push(format!(
            "no single problem with code, message, line{} as expected; problems: {}",
            if want.help.is_some() { " and help" } else { "" },
            got.json
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n    ")
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n  --- output\n{}", why.join("\n  "), got.human))
    }
}

#[test]
fn every_invalid_fixture_reports_its_problem() {
    let files = fixtures("invalid");
    assert!(files.len() >= 30, "only {} fixtures", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            verify(f, "error")
                .err()
                .map(|e| format!("{}: {e}", f.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_warning_fixture_reports_its_warning_and_passes() {
    let files = fixtures("warnings");
    assert!(!files.is_empty());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            verify(f, "warning")
                .err()
                .map(|e| format!("{}: {e}", f.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// What `runbook check FIXTURE` shows a person, whole, for every invalid and warning fixture:
/// one snapshot each, named after the fixture. Nothing on stdout; exit code 2 (0 for a
/// warning).
#[test]
fn human_check_output_of_every_invalid_fixture() {
    let warnings = fixtures("warnings");
    for f in fixtures("invalid")
        .into_iter()
        .chain(warnings.iter().cloned())
    {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let got = check(&f);
        let code = if warnings.contains(&f) { 0 } else { 2 };
        assert_eq!(got.code, code, "{name}: exit code\n{}", got.human);
        assert_eq!(
            got.stdout, "",
            "{name}: the human format writes to stderr only"
        );
        insta::with_settings!({
            description => format!("runbook check {name}.yaml (stderr)"),
            omit_expression => true,
            snapshot_suffix => name.as_str(),
        }, {
            insta::assert_snapshot!("check", got.stderr);
        });
    }
}

/// Every code a fixture reports, not only the one its header names, is one of the list
/// (`runbook::diag::Code`, published in docs/diagnostics.md).
#[test]
fn every_reported_code_is_in_the_list() {
    let mut unknown = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for f in fixtures("invalid").into_iter().chain(fixtures("warnings")) {
        for p in check(&f).json {
            let code = p["code"].as_str().unwrap_or_default().to_string();
            if runbook::diag::Code::from_name(&code).is_none() {
                unknown.push(format!(
                    "{}: {code}",
                    f.file_name().unwrap().to_string_lossy()
                ));
            }
            seen.insert(code);
        }
    }
    assert!(seen.len() >= 30, "only {} codes seen", seen.len());
    assert!(
        unknown.is_empty(),
        "codes not in the list:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_valid_fixture_passes() {
    let files = fixtures("valid");
    assert!(!files.is_empty());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let got = check(f);
            (got.code != 0 || !got.json.is_empty()).then(|| {
                format!(
                    "{}: exit code {}\n{}",
                    f.file_name().unwrap().to_string_lossy(),
                    got.code,
                    got.human
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_fixture_without_a_header_is_rejected() {
    assert!(parse_header("version: 1\n").is_err());
    assert!(parse_header("# expect: runbook::yaml | x\n").is_err());
    assert!(parse_header("# expect: runbook::yaml | x | line two\n").is_err());
    let e = parse_header("# expect: runbook::yaml | bad | line 3 | help: fix it\n").unwrap();
    assert_eq!((e.line, e.help.as_deref()), (3, Some("fix it")));
}
