//! Snapshots of outputs people and programs read: the top-level `--help`, `check --format
//! github` on an invalid fixture, `check` of a duplicate id (two labels), and `list --output json` on the shipped runbooks.

mod common;

use common::{Test, repo};

#[test]
fn top_level_help() {
    // clap wraps at COLUMNS and shows the values of the options' variables: all fixed, so
    // the snapshot depends neither on the terminal nor on the caller's environment.
    let run = Test::new()
        .env("COLUMNS", "100")
        .env("RUNBOOK_DIR", "")
        .env("RUNBOOK_STATE_DIR", "")
        .args(&["--help"])
        .run();
    run.assert_code(0);
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn check_github_annotations_of_an_invalid_fixture() {
    let t = Test::new();
    std::fs::copy(
        repo().join("tests/fixtures/invalid/later-step.yaml"),
        t.runbooks_dir().join("later-step.yaml"),
    )
    .unwrap();
    // A path relative to the working directory, as CI passes it.
    let run = t
        .args(&["check", "--format", "github", "runbooks/later-step.yaml"])
        .run();
    run.assert_code(2);
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn check_points_at_both_uses_of_a_duplicate_id() {
    let t = Test::new();
    std::fs::copy(
        repo().join("tests/fixtures/invalid/duplicate-step-id.yaml"),
        t.runbooks_dir().join("duplicate-step-id.yaml"),
    )
    .unwrap();
    let run = t
        .env("NO_COLOR", "1")
        .args(&["check", "runbooks/duplicate-step-id.yaml"])
        .run();
    run.assert_code(2);
    // The duplicate is the problem's place; its first use is a second label.
    insta::assert_snapshot!(run.stderr);
}

#[test]
fn list_json_of_the_shipped_runbooks() {
    let t = Test::new();
    for f in common::walk(&repo().join("runbooks")) {
        std::fs::copy(&f, t.runbooks_dir().join(f.file_name().unwrap())).unwrap();
    }
    let run = t.args(&["list", "--output", "json"]).run();
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn check_output_json_is_format_json() {
    let t = Test::new();
    std::fs::copy(
        repo().join("tests/fixtures/invalid/later-step.yaml"),
        t.runbooks_dir().join("later-step.yaml"),
    )
    .unwrap();
    let path = "runbooks/later-step.yaml";
    let output = t.args(&["check", "--output", "json", path]).run();
    let format = Test::new();
    std::fs::copy(
        repo().join("tests/fixtures/invalid/later-step.yaml"),
        format.runbooks_dir().join("later-step.yaml"),
    )
    .unwrap();
    let format = format.args(&["check", "--format", "json", path]).run();
    output.assert_code(2);
    assert_eq!(output.stdout, format.stdout);
    let first = common::checked_problems(&output.stdout)[0].clone();
    assert_eq!(first["code"], "runbook::undefined-reference");
}

#[test]
fn check_refuses_both_output_and_format() {
    Test::new()
        .args(&["check", "--output", "json", "--format", "github"])
        .stderr(
            "
            error: the argument '--output <OUTPUT>' cannot be used with '--format <FORMAT>'

            Usage: runbook check --output <OUTPUT> [PATHS]...

            For more information, try '--help'.
            ",
        )
        // It asked for JSON: the error is an object on stdout as well.
        .stdout(concat!(
            r#"{"format":1,"error":"invalid","exit_code":2,"code":null,"#,
            r#""message":"an argument cannot be used with one or more of the other specified arguments","#,
            r#""help":null,"file":null,"line":null,"col":null,"problems":[],"#,
            r#""notes":["error: an argument cannot be used with one or more of the other specified arguments"]}"#,
            "\n"
        ))
        .status(2);
}

/// The `--output json` event stream of a run (format of record for scripts): times, run ids,
/// durations and the digest redacted; secrets masked.
#[test]
fn run_events_as_json_lines() {
    let t = Test::new().with_repo_environments().runbook(
        "events",
        r#"
        version: 1
        name: events
        summary: every kind of event a local run emits
        inputs:
          mode: { description: Mode, choices: [fast, slow], default: fast }
        steps:
          - id: key
            title: Make a key
            generate: { format: hex }
          - id: slow_only
            when: inputs.mode == 'slow'
            generate: { format: hex }
          - id: apply
            confirm: Apply {{ steps.key.value }}?
            generate: { format: hex }
          - id: tell
            manual.confirm:
              instructions: "Use {{ steps.key.value }}"
              unattended: skip
        "#,
    );
    let run = t
        .args(&[
            "run", "events", "--env", "sandbox", "--yes", "--output", "json",
        ])
        .run();
    run.assert_code(0);
    let mut lines = Vec::new();
    for line in run.stdout.lines() {
        let mut e: serde_json::Value = serde_json::from_str(line).unwrap();
        for (k, v) in e.as_object_mut().unwrap().iter_mut() {
            if matches!(k.as_str(), "ts" | "run_id" | "duration_ms" | "digest") {
                *v = format!("[{k}]").into();
            }
        }
        lines.push(serde_json::to_string(&e).unwrap());
    }
    insta::assert_snapshot!(lines.join("\n"));
}
