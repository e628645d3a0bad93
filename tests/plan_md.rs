//! `runbook plan --format md`: the Markdown plan of a shipped runbook, as a snapshot.

mod common;

use common::{Test, repo};

#[test]
fn db_password_on_staging_as_markdown() {
    let text = std::fs::read_to_string(repo().join("runbooks/db-password.yaml")).unwrap();
    let run = Test::new()
        .with_repo_environments()
        .runbook("db-password", &text)
        .args(&["plan", "db-password", "--env", "staging", "--format", "md"])
        .run();
    run.assert_code(0);
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn markdown_and_json_are_exclusive() {
    let text = std::fs::read_to_string(repo().join("runbooks/db-password.yaml")).unwrap();
    let run = Test::new()
        .with_repo_environments()
        .runbook("db-password", &text)
        .args(&[
            "plan",
            "db-password",
            "--env",
            "staging",
            "--format",
            "md",
            "--output",
            "json",
        ])
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}
