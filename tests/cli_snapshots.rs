//! Snapshots of outputs people and programs read: the top-level `--help`, `check --format
//! github` on an invalid fixture, and `list --output json` on the shipped runbooks.

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
    let first: serde_json::Value =
        serde_json::from_str(output.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["code"], "runbook::undefined-reference");
}

#[test]
fn check_refuses_both_output_and_format() {
    let run = Test::new()
        .args(&["check", "--output", "json", "--format", "github"])
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}
