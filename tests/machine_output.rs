//! `--output json`: one document for a command that returns one thing, JSON Lines for the
//! events of a run, `format` on both, and an error object on stdout for a command that fails
//! before it wrote any JSON, made of the same texts as stderr: never a secret.

mod common;

use common::Test;
use serde_json::Value;

const RUNBOOK: &str = r#"
    version: 1
    name: tok
    summary: Uses a secret input
    inputs:
      token: { description: The token, secret: true }
    steps:
      - id: make
        generate: { format: hex }
    "#;

/// The one JSON value of stdout (a document or an error object).
fn one_document(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
}

#[test]
fn documents_are_one_json_value_with_format_first() {
    let t = Test::new().with_repo_environments().runbook("tok", RUNBOOK);
    for (args, key) in [
        (&["list", "--output", "json"][..], "runbooks"),
        (&["runs", "--output", "json"], "runs"),
        (&["check", "--output", "json"], "problems"),
        (
            &["plan", "tok", "--env", "sandbox", "--output", "json"],
            "steps",
        ),
        (&["show", "tok", "--output", "json"], "steps"),
        (
            &["preflight", "tok", "--env", "sandbox", "--output", "json"],
            "checks",
        ),
    ] {
        let r = t.again(args);
        r.assert_code(0);
        let doc = one_document(&r.stdout);
        let obj = doc.as_object().unwrap();
        assert_eq!(
            obj.keys().next().map(String::as_str),
            Some("format"),
            "{args:?}"
        );
        assert_eq!(doc["format"], 1, "{args:?}");
        assert!(doc[key].is_array(), "{args:?}: {}", r.stdout);
    }
    let show = one_document(&t.again(&["show", "tok", "--output", "json"]).stdout);
    assert_eq!(show["inputs"][0]["name"], "token");
    assert_eq!(show["inputs"][0]["secret"], true);
    assert_eq!(show["steps"][0]["id"], "make");
    assert_eq!(show["steps"][0]["kind"], "generate");
    let pre = t.again(&["preflight", "tok", "--env", "sandbox", "--output", "json"]);
    assert_eq!(one_document(&pre.stdout)["passed"], true, "{}", pre.stdout);
}

/// A refused run prints the error object on stdout (one line) and its report on stderr;
/// the object names the code, the message, the help, the place and the exit code.
#[test]
fn a_refused_run_prints_one_error_object() {
    let t = Test::new().with_repo_environments().runbook("tok", RUNBOOK);
    let r = t.again(&["run", "tok", "--env", "nowhere", "--output", "json"]);
    r.assert_code(2);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let e = one_document(&r.stdout);
    assert_eq!(e["format"], 1);
    assert_eq!(e["error"], "invalid");
    assert_eq!(e["exit_code"], 2);
    assert_eq!(e["code"], "runbook::unknown-env");
    assert_eq!(e["message"], "no environment `nowhere`");
    assert!(e["help"].is_string(), "{e}");
    assert_eq!(e["problems"][0]["code"], "runbook::unknown-env");
    assert!(r.stderr.contains("runbook::unknown-env"), "{}", r.stderr);

    // A problem in a file has its place.
    let bad = Test::new()
        .with_repo_environments()
        .runbook("bad", "version: 1\nname: bad\nsummary: s\nsteps:\n  - id: x\n    generate: { format: hex, bogus: 1 }\n");
    let r = bad.again(&["plan", "bad", "--env", "sandbox", "--output", "json"]);
    r.assert_code(2);
    let e = one_document(&r.stdout);
    assert!(e["file"].as_str().unwrap().ends_with("bad.yaml"), "{e}");
    assert_eq!(e["line"], 6, "{e}");
    assert!(e["col"].is_u64(), "{e}");

    // An unknown runbook, from `list`'s sibling commands too.
    for args in [
        &["plan", "nope", "--env", "sandbox", "--output", "json"][..],
        &["resume", "--output", "json"],
    ] {
        let r = t.again(args);
        r.assert_code(2);
        let e = one_document(&r.stdout);
        assert_eq!(e["exit_code"], 2, "{args:?}");
        assert!(e["message"].is_string(), "{args:?}");
    }
}

/// A secret given on the command line is refused; neither the error object nor stderr
/// shows its value.
#[test]
fn no_secret_in_an_error_object() {
    let canary = "canary-0123456789abcdef-secret";
    let t = Test::new().with_repo_environments().runbook("tok", RUNBOOK);
    let r = t.again(&[
        "run",
        "tok",
        "--env",
        "sandbox",
        "--input",
        &format!("token={canary}"),
        "--output",
        "json",
    ]);
    r.assert_code(2);
    let e = one_document(&r.stdout);
    assert_eq!(e["error"], "invalid");
    assert!(e["code"].is_string(), "{e}");
    assert!(!r.stdout.contains(canary), "{}", r.stdout);
    assert!(!r.stderr.contains(canary), "{}", r.stderr);
    assert!(
        !r.all_bytes()
            .windows(canary.len())
            .any(|w| w == canary.as_bytes())
    );
}

/// A run that started reports its end in its own events: no error object after them.
#[test]
fn a_run_that_started_ends_in_its_events_not_in_an_error_object() {
    let t = Test::new().runbook(
        "decline",
        r#"
        version: 1
        name: decline
        summary: Fails at its second step
        steps:
          - id: one
            generate: { format: hex }
          - id: two
            http.check: { url: "http://127.0.0.1:9/", attempts: 1 }
        "#,
    );
    let r = t.again(&["run", "decline", "--no-preflight", "--output", "json"]);
    r.assert_code(1);
    let events = r.events();
    assert!(matches!(
        events.last(),
        Some(runbook::engine::event::Event::RunFinished { .. })
    ));
    r.abandon_unfinished();
}

/// `check --output json` with errors is still one document: `ok` false, the counts, every
/// problem; it is the answer, not an error object.
#[test]
fn check_with_errors_is_a_document() {
    let t = Test::new().runbook("bad", "version: 1\nname: bad\nsummary: s\nsteps: []\n");
    let r = t.again(&["check", "--output", "json"]);
    r.assert_code(2);
    let doc = one_document(&r.stdout);
    assert_eq!(doc["ok"], false);
    assert!(doc["error"].is_null(), "{doc}");
    assert!(!common::checked_problems(&r.stdout).is_empty());
}
