//! The real binary in a pseudo-terminal: gates (approve, decline, default No), a protected
//! environment's typed name, hidden entry of a collected secret, a choice list for a missing
//! input; and the same kind of runbook without a terminal.

mod common;

use std::io::{Read, Write};

use common::pty::Pty;
use common::{Sandbox, Test, masters_of, sandbox, unique};

/// The tests that redeploy the sandbox's shared app run one at a time.
static DEPLOYS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Enter as a terminal sends it in raw mode.
const ENTER: &str = "\r";
const DOWN: &str = "\x1b[B";

/// Every journal event of the test's runs.
fn events(t: &Test) -> Vec<serde_json::Value> {
    common::walk(&t.state_dir().join("runs"))
        .into_iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect()
}

fn started(t: &Test, id: &str) -> bool {
    events(t)
        .iter()
        .any(|e| e["event"] == "step_started" && e["id"] == id)
}

fn finished_ok(t: &Test, id: &str) -> bool {
    events(t)
        .iter()
        .any(|e| e["event"] == "step_finished" && e["id"] == id && e["status"] == "ok")
}

/// GET a path of the sandbox's HTTP server; the status code.
fn http_status(sb: &Sandbox, path: &str) -> u16 {
    let base = sb.get("SANDBOX_HTTP_URL");
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the sandbox httpd");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

/// A gated step between two others. The last step requests `/flaky/<key>/1` of the sandbox's
/// server, which leaves a trace outside the tool: after it ran, the same URL answers 200.
/// Runs answered at a terminal start with --no-preflight: preflight's request of that URL
/// would leave the same trace before the gate is even asked.
fn gated_runbook(sb: &Sandbox, key: &str) -> String {
    format!(
        r#"
        version: 1
        name: gated
        summary: A gate between two steps
        steps:
          - id: before
            generate: {{ format: hex }}
          - id: rotate
            confirm: Rotate the token now?
            generate: {{ format: hex }}
          - id: later
            http.check: {{ url: "{}/flaky/{key}/1", expect_status: 503 }}
        "#,
        sb.get("SANDBOX_HTTP_URL")
    )
}

#[test]
fn approving_a_gate_runs_the_rest() {
    let sb = sandbox();
    let key = unique("approve");
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("gated", &gated_runbook(&sb, &key))
        .args(&["run", "gated", "--env", "sandbox", "--no-preflight"]);
    let mut p = Pty::spawn(&t);
    p.expect("Rotate the token now?");
    p.send("y");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 0, "{}", p.output());
    assert!(finished_ok(&t, "rotate") && finished_ok(&t, "later"));
    assert_eq!(http_status(&sb, &format!("/flaky/{key}/1")), 200);
}

#[test]
fn declining_a_gate_stops_the_run() {
    let sb = sandbox();
    let key = unique("decline");
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("gated", &gated_runbook(&sb, &key))
        .args(&["run", "gated", "--env", "sandbox", "--no-preflight"]);
    let mut p = Pty::spawn(&t);
    p.expect("Rotate the token now?");
    p.send("n");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 3, "{}", p.output());
    assert!(finished_ok(&t, "before"));
    assert!(!started(&t, "rotate") && !started(&t, "later"));
    // The later step never reached the server: the first request of this key is ours.
    assert_eq!(http_status(&sb, &format!("/flaky/{key}/1")), 503);
}

#[test]
fn a_gate_defaults_to_no() {
    let sb = sandbox();
    let key = unique("default");
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("gated", &gated_runbook(&sb, &key))
        .args(&["run", "gated", "--env", "sandbox", "--no-preflight"]);
    let mut p = Pty::spawn(&t);
    p.expect("Rotate the token now?");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 3, "{}", p.output());
    assert!(!started(&t, "rotate") && !started(&t, "later"));
    assert_eq!(http_status(&sb, &format!("/flaky/{key}/1")), 503);
}

#[test]
fn a_protected_environment_needs_its_name_typed() {
    let t = Test::new()
        .environments(
            r#"
            version: 1
            environments:
              vault:
                description: A protected test environment
                protected: true
            "#,
        )
        .runbook(
            "guarded",
            r#"
            version: 1
            name: guarded
            summary: A gate in a protected environment
            steps:
              - id: rotate
                confirm: Rotate the key?
                generate: { format: hex }
            "#,
        )
        .args(&["run", "guarded", "--env", "vault"]);
    let mut p = Pty::spawn(&t);
    p.expect("Rotate the key?");
    p.send("y");
    p.send(ENTER);
    p.expect("Type its name");
    p.send("valt");
    p.send(ENTER);
    p.expect("is not `vault`");
    p.send("vault");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 0, "{}", p.output());
    assert!(finished_ok(&t, "rotate"));
}

const VAULT: &str = r#"
    version: 1
    environments:
      vault:
        description: A protected test environment
        protected: true
    "#;

const GUARDED: &str = r#"
    version: 1
    name: guarded
    summary: A gate in a protected environment
    steps:
      - id: rotate
        confirm: Rotate the key?
        generate: { format: hex }
    "#;

/// On a terminal as without one, `--yes` alone does not stand for a protected environment's
/// typed name: refused before anything runs, naming `--confirm-env`. With it, nothing is asked.
#[test]
fn yes_on_a_terminal_does_not_skip_a_protected_environments_name() {
    let t = Test::new()
        .environments(VAULT)
        .runbook("guarded", GUARDED)
        .args(&["run", "guarded", "--env", "vault", "--yes"]);
    let mut p = Pty::spawn(&t);
    let code = p.finish();
    assert_eq!(code, 2, "{}", p.output());
    assert!(
        p.output().contains("protected environment"),
        "{}",
        p.output()
    );
    assert!(p.output().contains("--confirm-env vault"), "{}", p.output());
    assert!(!t.state_dir().join("runs").exists(), "nothing ran");

    let wrong = Test::new()
        .environments(VAULT)
        .runbook("guarded", GUARDED)
        .args(&[
            "run",
            "guarded",
            "--env",
            "vault",
            "--yes",
            "--confirm-env",
            "vaul",
        ]);
    let mut p = Pty::spawn(&wrong);
    assert_eq!(p.finish(), 2, "{}", p.output());
    assert!(
        p.output().contains("is not the environment"),
        "{}",
        p.output()
    );
    assert!(!wrong.state_dir().join("runs").exists(), "nothing ran");

    let named = Test::new()
        .environments(VAULT)
        .runbook("guarded", GUARDED)
        .args(&[
            "run",
            "guarded",
            "--env",
            "vault",
            "--yes",
            "--confirm-env",
            "vault",
        ]);
    let mut p = Pty::spawn(&named);
    assert_eq!(p.finish(), 0, "{}", p.output());
    assert!(!p.output().contains("Type its name"), "{}", p.output());
    assert!(finished_ok(&named, "rotate"));
}

/// `--confirm-env` without `--yes`: the gate still asks y/N, the name is not asked again.
#[test]
fn confirm_env_on_a_terminal_stands_for_the_typed_name() {
    let t = Test::new()
        .environments(VAULT)
        .runbook("guarded", GUARDED)
        .args(&["run", "guarded", "--env", "vault", "--confirm-env", "vault"]);
    let mut p = Pty::spawn(&t);
    p.expect("Rotate the key?");
    p.send("y");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 0, "{}", p.output());
    assert!(!p.output().contains("Type its name"), "{}", p.output());
    assert!(finished_ok(&t, "rotate"));
}

#[test]
fn a_collected_secret_is_not_echoed() {
    const SECRET: &str = "pl4nted-R2-s3cret-9f1c";
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "dashboard",
            r#"
            version: 1
            name: dashboard
            summary: Collect a token from a dashboard
            steps:
              - id: create_token
                manual.confirm:
                  instructions: Create an API token in the dashboard.
                  collect:
                    token: { description: Paste the new token, secret: true }
                  question: Stored it?
            "#,
        )
        .args(&["run", "dashboard", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("Paste the new token");
    p.type_hidden(SECRET);
    // No pattern can check it: it is typed twice.
    p.expect("again, to be sure");
    p.type_hidden(SECRET);
    p.expect("Stored it?");
    p.send("y");
    p.send(ENTER);
    let code = p.finish();
    let out = p.output();
    assert_eq!(code, 0, "{out}");
    assert!(finished_ok(&t, "create_token"));
    assert!(!out.contains(SECRET), "the secret was echoed:\n{out}");
    let journal: String = events(&t).iter().map(|e| e.to_string()).collect();
    assert!(!journal.contains(SECRET), "the secret is in the journal");
}

/// A value of the wrong form is refused before anything marks it accepted, and the refusal
/// states the form; the value itself is never shown.
#[test]
fn a_refused_value_gets_no_tick_and_the_refusal_states_the_form() {
    const BAD: &str = "not-the-form-7Qx!";
    const GOOD: &str = "Abcdefgh12345678Zz";
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "dashboard",
            r#"
            version: 1
            name: dashboard
            summary: Collect a key id from a dashboard
            steps:
              - id: create_token
                manual.confirm:
                  instructions: Create an API token in the dashboard.
                  collect:
                    key_id:
                      description: Access Key ID of the new token
                      secret: true
                      pattern: "[A-Za-z0-9]{16,64}"
                    region: { description: The token's region, pattern: "[a-z]+-[0-9]" }
                  question: Stored it?
            "#,
        )
        .args(&["run", "dashboard", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("Access Key ID of the new token");
    p.type_hidden(BAD);
    p.expect("does not have the expected form");
    let before = p.output();
    let asked = before.rfind("Access Key ID of the new token").unwrap();
    assert!(
        !before[asked..].contains('✔'),
        "a tick before the refusal:\n{before}"
    );
    p.expect("[A-Za-z0-9]{16,64}");
    p.expect("Access Key ID of the new token");
    p.type_hidden(GOOD);
    // A value that is not secret is judged the same way before it is taken.
    p.expect("The token's region");
    p.send("Europe");
    p.send(ENTER);
    p.expect("`region` does not have the expected form");
    let before = p.output();
    let asked = before.rfind("The token's region").unwrap();
    assert!(
        !before[asked..].contains('✔'),
        "a tick before the refusal:\n{before}"
    );
    p.expect("[a-z]+-[0-9]");
    p.send("eu-1");
    p.send(ENTER);
    p.expect("Stored it?");
    p.send("y");
    p.send(ENTER);
    let code = p.finish();
    let out = p.output();
    assert_eq!(code, 0, "{out}");
    assert!(finished_ok(&t, "create_token"));
    assert!(
        !out.contains(BAD) && !out.contains(GOOD),
        "a value was echoed:\n{out}"
    );
    // A secret with a pattern is checked, so it is asked once.
    assert!(!out.contains("again, to be sure"), "{out}");
}

/// A secret nothing can check is typed twice, in a manual step and as an input asked at the
/// start of a run; two entries that differ are refused and both are asked again.
#[test]
fn an_unchecked_secret_is_typed_twice_and_a_mismatch_is_asked_again() {
    const FIRST: &str = "first-typing-4e8b1c";
    const SLIP: &str = "first-typing-4e8b1v";
    const INPUT: &str = "input-secret-93af27";
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "dashboard",
            r#"
            version: 1
            name: dashboard
            summary: Collect a token from a dashboard
            inputs:
              admin_token: { description: The admin token, secret: true }
            steps:
              - id: create_token
                manual.confirm:
                  instructions: Create an API token in the dashboard.
                  collect:
                    token: { description: Paste the new token, secret: true }
                  question: Stored it?
            "#,
        )
        .args(&["run", "dashboard", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("The admin token");
    p.type_hidden("short");
    p.expect("try again");
    p.expect("The admin token");
    p.type_hidden(INPUT);
    p.expect("again, to be sure");
    p.type_hidden(INPUT);
    p.expect("Paste the new token");
    p.type_hidden(FIRST);
    p.expect("again, to be sure");
    p.type_hidden(SLIP);
    p.expect("the two entries differ");
    p.expect("Paste the new token");
    p.type_hidden(FIRST);
    p.expect("again, to be sure");
    p.type_hidden(FIRST);
    p.expect("Stored it?");
    p.send("y");
    p.send(ENTER);
    let code = p.finish();
    let out = p.output();
    assert_eq!(code, 0, "{out}");
    assert!(finished_ok(&t, "create_token"));
    for v in [FIRST, SLIP, INPUT] {
        assert!(!out.contains(v), "`{v}` was echoed:\n{out}");
    }
}

/// A typed input or one of several choices is typed as text at the terminal; a value that
/// does not fit is explained and asked again, and a default is offered.
#[test]
fn a_typed_input_that_does_not_fit_is_asked_again() {
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "typed",
            r#"
            version: 1
            name: typed
            summary: Typed inputs asked on a terminal
            inputs:
              batch: { description: Hosts per batch, type: integer }
              since: { description: Since when, type: datetime, not_future: true }
              pick:
                description: Which ones
                choices: [north, south, west]
                multiple: true
                default: all
            steps:
              - id: token
                title: "batch {{ inputs.batch * 2 }} from {{ inputs.since }} for {{ inputs.pick | join('+') }}"
                generate: { format: hex }
            "#,
        )
        .args(&["run", "typed", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("Hosts per batch (a whole number)");
    p.send("ten");
    p.send(ENTER);
    p.expect("is not an integer");
    p.expect("Hosts per batch (a whole number)");
    p.send("4");
    p.send(ENTER);
    p.expect("Since when (RFC 3339, e.g. 2026-11-20T14:00Z, not in the future)");
    p.send("2999-01-01T00:00Z");
    p.send(ENTER);
    p.expect("is in the future");
    p.expect("Since when");
    p.send("2026-11-20T15:00+01:00");
    p.send(ENTER);
    p.expect("Which ones (one or more of north, south, west, separated by commas, or all)");
    p.send("west,nort");
    p.send(ENTER);
    p.expect("did you mean");
    p.expect("Which ones");
    p.send("west,north");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 0, "{}", p.output());
    let out = p.output();
    assert!(
        out.contains("batch 8 from 2026-11-20T14:00:00Z for north+west"),
        "{out}"
    );
}

#[test]
fn a_missing_input_is_chosen_from_a_list() {
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "choose",
            r#"
            version: 1
            name: choose
            summary: An input with choices
            inputs:
              region: { description: Which region, choices: [north, south, west] }
            steps:
              - id: token
                title: "token for {{ inputs.region }}"
                generate: { format: hex }
            "#,
        )
        .args(&["run", "choose", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("Which region");
    p.expect("west");
    p.send(DOWN);
    p.send(DOWN);
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 0, "{}", p.output());
    let out = p.output();
    // The plan, printed after the inputs are known, renders the title with the choice.
    assert!(out.contains("token for west"), "{out}");
    assert!(finished_ok(&t, "token"));
}

#[test]
fn without_a_terminal_a_gate_needs_yes() {
    let sb = sandbox();
    let key = unique("noterm");
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("gated", &gated_runbook(&sb, &key))
        .args(&["run", "gated", "--env", "sandbox"]);
    let r = t.run();
    r.assert_code(2);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(!started(&t, "before") && !started(&t, "later"));
    assert_eq!(http_status(&sb, &format!("/flaky/{key}/1")), 503);
}

/// §7: the chosen rotation runs inside the response (its steps journaled as `rotate/<step>`),
/// then every review collects its evidence and the incident summary is built from it.
#[test]
fn compromise_response_rotates_through_the_chosen_runbook_and_collects_evidence() {
    let _deploys = DEPLOYS.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let name = "/musehub/sandbox/RUNNER_TOKEN";
    let before = common::ssm_value(name);
    let t = common::shipped(&sb).args(&[
        "run",
        "compromise-response",
        "--env",
        "sandbox",
        "--yes",
        "--input",
        "secrets=runner-token",
        "--input",
        "suspected_since=2026-11-20T14:00Z",
    ]);
    let mut p = Pty::spawn(&t);
    for (prompt, answer, done) in [
        (
            "What CloudTrail shows",
            "only the deploy role",
            "Is the CloudTrail review done?",
        ),
        (
            "What was revoked",
            "nothing to revoke: old token invalid",
            "Are the old values revoked?",
        ),
        (
            "What the logs show",
            "no anomalies",
            "Is the log review done?",
        ),
        (
            "Link or id of the incident entry",
            "INC-42",
            "Is the incident recorded?",
        ),
    ] {
        p.expect(prompt);
        p.send(answer);
        p.send(ENTER);
        p.expect(done);
        p.send("y");
        p.send(ENTER);
    }
    assert_eq!(p.finish(), 0, "{}", p.output());
    let record: String = common::walk(&t.state_dir().join("runs"))
        .iter()
        .filter(|f| f.ends_with("incident.md"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        record.contains("- `cloudtrail` findings: only the deploy role"),
        "{record}"
    );
    let after = common::ssm_value(name);
    assert_ne!(after, before, "the runner token was rotated");
    assert_eq!(sb.app_env("RUNNER_TOKEN"), after, "and deployed");
    let nested: Vec<String> = events(&t)
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect();
    for id in [
        "store",
        "redeploy",
        "verify",
        "rotate_runner_token",
        "record",
    ] {
        assert!(nested.iter().any(|n| n == id), "{id} ran: {nested:?}");
    }
    let journal: String = common::walk(&t.state_dir().join("runs"))
        .iter()
        .filter(|f| f.ends_with("journal.jsonl"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        journal.contains(r#""id":"rotate_runner_token/store""#),
        "nested steps are journaled under the step"
    );
    assert!(!p.output().contains(&after), "the new token was printed");
}

/// The journal's steps that ended `ok`, by their journaled id (`parent_step/step`).
fn journaled_ok(t: &Test) -> Vec<String> {
    common::walk(&t.state_dir().join("runs"))
        .iter()
        .filter(|f| f.ends_with("journal.jsonl"))
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .filter(|r| r["status"] == "ok")
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

/// A host compromise (`secrets=all`): the four rotations run one after another, each its own
/// runbook with its gates and its verification at the consumer; the old R2 access key id is
/// named in clear (it is not a secret); the CloudTrail review gives the exact command and
/// console links for the environment's region and the exposure window, in UTC.
#[test]
fn compromise_response_with_all_rotates_every_secret_one_after_another() {
    let _deploys = DEPLOYS.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let names = [
        "/musehub/sandbox/DB_PASSWORD",
        "/musehub/sandbox/R2_ACCESS_KEY_ID",
        "/musehub/sandbox/R2_SECRET_ACCESS_KEY",
        "/musehub/sandbox/RUNNER_TOKEN",
        "/musehub/sandbox/WEBHOOK_SECRET_KEY",
    ];
    let before: Vec<String> = names.iter().map(|n| common::ssm_value(n)).collect();
    assert!(
        common::db_login(&before[0]),
        "precondition: SSM holds the live DB password"
    );
    let old_id = before[1].clone();
    let (key_id, secret) = sb.r2_new_token();
    let notices_before = notices(&sb).len();
    let t = common::shipped(&sb).args(&[
        "run",
        "compromise-response",
        "--env",
        "sandbox",
        "--yes",
        "--input",
        "secrets=all",
        "--input",
        // An offset: used in UTC.
        "suspected_since=2026-11-20T15:00+01:00",
    ]);
    let mut p = Pty::spawn(&t);
    // r2-credentials, second: the dashboard work.
    p.expect("Access Key ID of the new token");
    p.send(&key_id);
    p.send(ENTER);
    p.expect("Secret Access Key of the new token");
    p.type_hidden(&secret);
    p.expect("Have you created the token");
    p.send("y");
    p.send(ENTER);
    p.expect("Is the old token revoked?");
    sb.r2_revoke(&old_id);
    p.send("y");
    p.send(ENTER);
    // webhook-secret, last: its owners are told first, through the sandbox's notify target
    // (no question: the notice is posted).
    for (prompt, answer, done) in [
        (
            "What CloudTrail shows",
            "only the deploy role",
            "Is the CloudTrail review done?",
        ),
        (
            "What was revoked",
            "old R2 token deleted",
            "Are the old values revoked?",
        ),
        (
            "What the logs show",
            "no anomalies",
            "Is the log review done?",
        ),
        (
            "Link or id of the incident entry",
            "INC-43",
            "Is the incident recorded?",
        ),
    ] {
        p.expect(prompt);
        p.send(answer);
        p.send(ENTER);
        p.expect(done);
        p.send("y");
        p.send(ENTER);
    }
    assert_eq!(p.finish(), 0, "{}", p.output());
    let out = p.output();

    let after: Vec<String> = names.iter().map(|n| common::ssm_value(n)).collect();
    for ((name, b), a) in names.iter().zip(&before).zip(&after) {
        assert_ne!(a, b, "{name} was rotated");
        assert!(
            !out.contains(a.as_str()),
            "{name}: the new value was printed"
        );
    }
    assert_eq!(after[1], key_id);
    assert_eq!(after[2], secret);
    assert!(
        common::db_login(&after[0]),
        "the database takes the new password"
    );
    assert!(!common::db_login(&before[0]), "and refuses the old one");
    for (key, value) in [
        ("DB_PASSWORD", &after[0]),
        ("R2_SECRET_ACCESS_KEY", &after[2]),
        ("RUNNER_TOKEN", &after[3]),
        ("WEBHOOK_SECRET_KEY", &after[4]),
    ] {
        assert_eq!(&sb.app_env(key), value, "{key} is deployed");
    }
    assert_eq!(sb.r2_list_objects(&key_id, &secret), "ok");

    // Each rotation ran as its own runbook and verified at its consumer, in this order.
    let ok = journaled_ok(&t);
    let order: Vec<usize> = [
        "rotate_db_password/verify",
        "rotate_r2_credentials/verify_new_keys",
        "rotate_r2_credentials/old_keys_refused",
        "rotate_runner_token/verify_new_token",
        "rotate_runner_token/old_token_refused",
        "rotate_webhook_secret/verify_new_key",
        "rotate_webhook_secret/old_key_refused",
        "record",
    ]
    .iter()
    .map(|id| {
        ok.iter()
            .position(|o| o == id)
            .unwrap_or_else(|| panic!("{id} did not end ok: {ok:?}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{ok:?}");

    // The old access key id is public: named where it is to be revoked, and in the record.
    assert!(out.contains(&format!("access key id {old_id},")), "{out}");

    // The incident record, from the run's journal: in the state directory, and posted to the
    // environment's incident channel (after the webhook owners' notice).
    let records: Vec<String> = common::walk(&t.state_dir().join("runs"))
        .iter()
        .filter(|f| f.ends_with("incident.md"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "one incident record");
    let record = &records[0];
    let run_id = common::listed_runs(&t.again(&["runs", "--output", "json"]).stdout)[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    for text in [
        "# Incident: suspected compromise of db-password, r2-credentials, runner-token, webhook-secret in sandbox".to_string(),
        "- Exposure suspected since: 2026-11-20T14:00:00Z".to_string(),
        format!("- Old R2 access key id, to be revoked: `{old_id}`"),
        format!("- Run id: `{run_id}`"),
        "| `rotate_db_password/store` |".to_string(),
        "- `cloudtrail` findings: only the deploy role".to_string(),
        "- `revoke` revocation: old R2 token deleted".to_string(),
        "- `logs` log_findings: no anomalies".to_string(),
    ] {
        assert!(record.contains(&text), "{text}:\n{record}");
    }
    // Each rotated parameter, with the version it had before and the one it has now.
    for name in names {
        let row = record
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("{name} is not in the record:\n{record}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (before, after): (u64, u64) = (cells[2].parse().unwrap(), cells[3].parse().unwrap());
        assert!(after > before, "{row}");
    }
    let posted = notices(&sb);
    let posted: Vec<&str> = posted[notices_before..]
        .iter()
        .map(|n| n["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        posted.len(),
        2,
        "the owners' notice, then the record: {posted:?}"
    );
    assert!(posted[0].contains("webhook"), "{posted:?}");
    assert_eq!(posted[1], record.as_str(), "the record is posted whole");
    for a in &after {
        assert!(!record.contains(a.as_str()), "a new value is in the record");
    }
    // The CloudTrail review: the environment's region, the four reads, the window in UTC.
    for text in [
        "aws cloudtrail lookup-events --region us-east-1",
        "--start-time 2026-11-20T14:00:00Z",
        "for event in GetParameter GetParameters GetParametersByPath GetParameterHistory; do",
        "https://us-east-1.console.aws.amazon.com/cloudtrail/home?region=us-east-1#/events?EventName=GetParametersByPath&ReadOnly=true&StartTime=2026-11-20T14:00:00Z",
    ] {
        assert!(out.contains(text), "{text}: {out}");
    }
    assert!(
        !out.contains(&secret) && !out.contains(&key_id),
        "a collected value was printed"
    );
}

/// §4: the operator creates the token in the dashboard; the runbook collects both values with
/// hidden entry, stores and deploys them, lists the bucket with them (a real S3 call), and only
/// then asks for the old token's revocation, after which the old keys must be refused.
#[test]
fn r2_credentials_collects_hidden_values_stores_and_deploys_them() {
    let _deploys = DEPLOYS.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let old_id = common::ssm_value("/musehub/sandbox/R2_ACCESS_KEY_ID");
    let old_secret = common::ssm_value("/musehub/sandbox/R2_SECRET_ACCESS_KEY");
    assert_eq!(
        sb.r2_list_objects(&old_id, &old_secret),
        "ok",
        "precondition: SSM holds a live token"
    );
    let (key_id, secret) = sb.r2_new_token();
    let t = common::shipped(&sb).args(&["run", "r2-credentials", "--env", "sandbox", "--yes"]);
    let mut p = Pty::spawn(&t);
    p.expect("Access Key ID of the new token");
    p.send(&key_id);
    p.send(ENTER);
    p.expect("Secret Access Key of the new token");
    p.type_hidden(&secret);
    p.expect("Have you created the token");
    p.send("y");
    p.send(ENTER);
    p.expect("Is the old token revoked?");
    assert!(
        finished_ok(&t, "verify_new_keys"),
        "the new keys were checked before the question"
    );
    sb.r2_revoke(&old_id);
    p.send("y");
    p.send(ENTER);
    assert_eq!(p.finish(), 0, "{}", p.output());
    assert!(finished_ok(&t, "old_keys_refused"), "{}", p.output());
    assert_eq!(
        common::ssm_value("/musehub/sandbox/R2_ACCESS_KEY_ID"),
        key_id
    );
    assert_eq!(
        common::ssm_value("/musehub/sandbox/R2_SECRET_ACCESS_KEY"),
        secret
    );
    assert_eq!(sb.app_env("R2_SECRET_ACCESS_KEY"), secret, "deployed");
    assert_eq!(sb.r2_list_objects(&key_id, &secret), "ok");
    assert_eq!(
        sb.r2_list_objects(&old_id, &old_secret),
        "InvalidAccessKeyId"
    );
    assert!(
        !p.output().contains(&secret),
        "the hidden entry was echoed or printed"
    );
    assert!(
        !p.output().contains(&key_id),
        "the key id (collected as a secret) was printed"
    );
    let files: Vec<u8> = common::walk(&t.state_dir())
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(
        !common::contains(&files, &secret),
        "a finished run keeps no secret"
    );
}

/// A mistyped secret of the new token fails the S3 call that verifies it (403
/// SignatureDoesNotMatch): the old keys go back to SSM and are redeployed, nothing is revoked.
#[test]
fn r2_credentials_with_a_mistyped_secret_fails_verification_and_rolls_back() {
    let _deploys = DEPLOYS.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let old_id = common::ssm_value("/musehub/sandbox/R2_ACCESS_KEY_ID");
    let old_secret = common::ssm_value("/musehub/sandbox/R2_SECRET_ACCESS_KEY");
    // The rollback's last check lists the bucket with these keys: they must be live to start.
    assert_eq!(
        sb.r2_list_objects(&old_id, &old_secret),
        "ok",
        "precondition: SSM holds a live token"
    );
    let (key_id, secret) = sb.r2_new_token();
    // One character wrong, as a person copying it might type it.
    let last = secret.chars().last().unwrap();
    let typo = format!(
        "{}{}",
        &secret[..secret.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let t = common::shipped(&sb).args(&["run", "r2-credentials", "--env", "sandbox", "--yes"]);
    let mut p = Pty::spawn(&t);
    p.expect("Access Key ID of the new token");
    p.send(&key_id);
    p.send(ENTER);
    p.expect("Secret Access Key of the new token");
    p.send(&typo);
    p.send(ENTER);
    p.expect("Have you created the token");
    p.send("y");
    p.send(ENTER);
    let code = p.finish();
    let out = p.output();
    sb.r2_revoke(&key_id);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("SignatureDoesNotMatch"), "{out}");
    assert!(
        !started(&t, "revoke_old"),
        "nothing is revoked after a failed check"
    );
    assert!(
        finished_ok(&t, "verify_old_keys"),
        "the rollback checked the old keys: {out}"
    );
    assert_eq!(
        common::ssm_value("/musehub/sandbox/R2_ACCESS_KEY_ID"),
        old_id
    );
    assert_eq!(
        common::ssm_value("/musehub/sandbox/R2_SECRET_ACCESS_KEY"),
        old_secret
    );
    assert_eq!(
        sb.app_env("R2_SECRET_ACCESS_KEY"),
        old_secret,
        "the old keys are deployed again"
    );
    assert_eq!(sb.r2_list_objects(&old_id, &old_secret), "ok");
    assert!(
        !out.contains(&typo) && !out.contains(&key_id),
        "a collected value was printed"
    );
}

/// The first Ctrl-C lets the running step finish and stops the run (exit 130); `resume` then
/// runs only what is left.
#[test]
fn ctrl_c_stops_after_the_current_step_and_resume_finishes_the_run() {
    let sb = sandbox();
    let marker = format!("/tmp/runbook-sandbox/{}", unique("ctrlc"));
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "slow",
            &format!(
                r#"
                version: 1
                name: slow
                summary: a slow step between two quick ones
                steps:
                  - id: first
                    generate: {{ format: hex }}
                  - id: slow
                    ssh.exec: {{ host: app, command: "echo started; sleep 2; touch {marker}" }}
                  - id: last
                    generate: {{ format: hex }}
                "#
            ),
        )
        .args(&["run", "slow", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("│ started"); // the remote command's output, shown live
    p.send("\x03");
    p.expect("stopping after the current step");
    assert_eq!(p.finish(), 130, "{}", p.output());
    assert!(
        std::path::Path::new(&marker).exists(),
        "the running step was allowed to finish"
    );
    assert!(
        finished_ok(&t, "slow") && !finished_ok(&t, "last"),
        "{}",
        p.output()
    );
    let resumed = t.again(&["resume"]);
    resumed.assert_code(0);
    assert!(
        resumed
            .stderr
            .contains("slow: skipped (finished before the resume)"),
        "{}",
        resumed.stderr
    );
    assert!(finished_ok(&t, "last"));
    let _ = std::fs::remove_file(&marker);
}

#[test]
fn the_ssh_connection_opens_while_the_operator_reads_the_gate() {
    let sb = sandbox();
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "remote",
            r#"
            version: 1
            name: remote
            summary: A gated command on the host
            steps:
              - id: hello
                confirm: Say hello on the host?
                ssh.exec: { host: app, command: "echo hello" }
            "#,
        )
        .args(&["run", "remote", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("Say hello on the host?");
    let pid = p.session.get_process().pid().as_raw() as u32;
    // Nobody has answered yet, and the master connection to `app` is already up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while masters_of(pid) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(masters_of(pid) > 0, "no SSH master while the gate waits");
    p.send("y");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 0, "{}", p.output());
    assert!(finished_ok(&t, "hello"));
    assert_eq!(masters_of(pid), 0, "the run's masters stop with it");
}

/// On a terminal, a failed step's place and help are lines of their own under it.
#[test]
fn a_failed_step_shows_its_place_and_help_on_a_terminal() {
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "group",
            r#"
            version: 1
            name: group
            summary: A host group known only at run time
            inputs:
              g: { description: Group, default: nowhere }
            steps:
              - id: restart
                ssh.exec:
                  hosts: "{{ inputs.g }}"
                  command: "true"
            "#,
        )
        .args(&[
            "run",
            "group",
            "--env",
            "sandbox",
            "--yes",
            "--input",
            "g=nowhere",
        ]);
    let mut p = Pty::spawn(&t);
    let code = p.finish();
    let out = p.output();
    assert_eq!(code, 1, "{out}");
    let text = console::strip_ansi_codes(&out).replace("\r\n", "\n");
    // What the terminal shows of each line: the text after its last carriage return (a spinner
    // frame drawn before the failure is overwritten, not part of the line).
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l))
        .collect();
    let failed = lines
        .iter()
        .position(|l| l.starts_with("✗ [1/1] restart failed"))
        .unwrap_or_else(|| panic!("no failed step in:\n{text}"));
    assert_eq!(
        lines[failed + 1..failed + 5],
        [
            "    environment `sandbox` has no host group `nowhere`",
            "  at runbooks/group.yaml:7:9",
            // Wrapped at the pty's 120 columns, like every line of the terminal sink.
            "  help: define it under `environments.sandbox.groups` in environments.yaml; for one host write `host: nowhere` or",
            "    `hosts: [nowhere]`",
        ],
        "{text}"
    );
}

/// The messages the sandbox's incident channel accepted, oldest first.
fn notices(sb: &common::Sandbox) -> Vec<serde_json::Value> {
    std::fs::read_to_string(sb.get("SANDBOX_NOTIFY_LOG"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Ctrl-C at a hidden prompt of a manual step ends the question and the run (130), says so on
/// the prompt's line, and leaves the step not done. (A line-mode hidden read let the run's
/// Ctrl-C handler take the signal while the read went on waiting: the prompt stayed.)
#[test]
fn ctrl_c_at_a_hidden_prompt_stops_the_run() {
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "dashboard",
            r#"
            version: 1
            name: dashboard
            summary: Collect a token
            steps:
              - id: create_token
                manual.confirm:
                  instructions: Create an API token in the dashboard.
                  collect:
                    token: { description: Paste the new token, secret: true }
            "#,
        )
        .args(&["run", "dashboard", "--env", "sandbox", "--no-preflight"]);
    let mut p = Pty::spawn(&t);
    p.expect("Paste the new token");
    p.type_hidden("\u{3}");
    assert_eq!(p.finish(), 130, "{}", p.output());
    assert!(
        p.output().contains("not answered (Ctrl-C)"),
        "{}",
        p.output()
    );
}
