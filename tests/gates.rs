//! Gates approve a stretch of steps: a `confirm:` approves its step and every step after it up
//! to the next gate, so a change runs to its end without waiting for a person. `check` warns
//! about a gate after a change; a run that starts inside a gate's steps asks that gate; inside
//! a change window a first Ctrl-C lets the approved steps finish, a second aborts and says
//! where production stands.

mod common;

use common::pty::Pty;
use common::{Sandbox, Test, sandbox, unique};

const ENTER: &str = "\r";

fn check(yaml: &str) -> common::Run {
    Test::new()
        .with_repo_environments()
        .runbook("rotate", yaml)
        .env("NO_COLOR", "1")
        .args(&["check", "--format", "json"])
        .run()
}

fn gate_warnings(run: &common::Run) -> Vec<serde_json::Value> {
    common::checked_problems(&run.stdout)
        .into_iter()
        .filter(|p| p["code"] == "runbook::gate-after-change")
        .collect()
}

/// The shape the shipped rotations had: a gate on each change.
const GATE_PER_CHANGE: &str = r#"
version: 1
name: rotate
summary: A gate on every change
steps:
  - id: current
    ssm.get: { name: /x/DB_PASSWORD }
  - id: alter_role
    confirm: Set the password?
    ssh.exec: { host: app, command: "true" }
  - id: store
    confirm: Store it?
    ssm.put: { name: /x/DB_PASSWORD, value: "{{ steps.current.value }}", type: SecureString, overwrite: true }
  - id: verify
    http.check: { url: "https://localhost:1337/explore" }
"#;

#[test]
fn a_gate_after_a_change_is_a_warning_at_the_gate_naming_the_change() {
    let run = check(GATE_PER_CHANGE);
    run.assert_code(0);
    let w = gate_warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stdout);
    assert_eq!(w[0]["severity"], "warning");
    assert_eq!(w[0]["line"], 11, "{}", w[0]);
    assert_eq!(
        w[0]["message"],
        "a gate at step `store` comes after `alter_role` changed something: the run would wait for a person in the middle of the change"
    );
    assert!(
        w[0]["help"].as_str().unwrap().starts_with(
            "move this `confirm:` to the first step that changes something (`alter_role`)"
        ),
        "{}",
        w[0]
    );
    // The human form points at the gate and at the change.
    let human = Test::new()
        .with_repo_environments()
        .runbook("rotate", GATE_PER_CHANGE)
        .env("NO_COLOR", "1")
        .args(&["check"])
        .run();
    human.assert_code(0);
    assert!(
        human.stderr.contains("waits for a person here")
            && human.stderr.contains("the change starts here"),
        "{}",
        human.stderr
    );
}

#[test]
fn one_gate_before_the_first_change_and_a_manual_step_after_it_are_not_warned() {
    let run = check(
        r#"
        version: 1
        name: rotate
        summary: One gate, then a person's work at the end
        steps:
          - id: current
            confirm: Rotate?
            ssm.get: { name: /x/DB_PASSWORD }
          - id: store
            ssm.put: { name: /x/DB_PASSWORD, value: "{{ steps.current.value }}", type: SecureString, overwrite: true }
          - id: verify
            http.check: { url: "https://localhost:1337/explore" }
          - id: revoke
            manual.confirm: { instructions: Revoke the old one., question: Revoked? }
        "#,
    );
    run.assert_code(0);
    assert!(gate_warnings(&run).is_empty(), "{}", run.stdout);
}

#[test]
fn a_gate_in_a_rollback_of_a_change_is_a_warning() {
    let run = check(
        r#"
        version: 1
        name: rotate
        summary: A rollback that stops for a person
        steps:
          - id: store
            confirm: Store it?
            ssm.put: { name: /x/A, value: "{{ 'a' * 20 }}", type: SecureString, overwrite: true }
          - id: verify
            on_failure: restore
            http.check: { url: "https://localhost:1337/explore" }
        rollback:
          - id: restore
            confirm: Put the old one back?
            ssm.put: { name: /x/A, value: "{{ 'b' * 20 }}", type: SecureString, overwrite: true }
        "#,
    );
    run.assert_code(0);
    let w = gate_warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stdout);
    assert!(
        w[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("a gate in the rollback at step `restore` comes after `store`"),
        "{}",
        w[0]
    );
}

/// The shipped runbooks ask once, before their first change: `check` has nothing to say.
#[test]
fn the_shipped_runbooks_have_no_gate_after_a_change() {
    let run = Test::new()
        .args(&[
            "check",
            "--format",
            "json",
            common::repo().join("runbooks").to_str().unwrap(),
        ])
        .run();
    run.assert_code(0);
    assert_eq!(
        common::checked_problems(&run.stdout),
        Vec::<serde_json::Value>::new(),
        "no problem at all, warnings included"
    );
}

#[test]
fn the_plan_says_what_each_gate_approves() {
    let text = std::fs::read_to_string(common::repo().join("runbooks/db-password.yaml")).unwrap();
    let t = Test::new()
        .with_repo_environments()
        .runbook("db-password", &text);
    let plan = t.then(&["plan", "db-password", "--env", "staging"]).run();
    plan.assert_code(0);
    assert!(
        plan.stdout.contains(
            "      approves: alter_role, store, redeploy, verify — they run one after another without stopping for a person\n"
        ),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(" 6/7 redeploy [ssh.exec] — Redeploy the app with the new secrets\n      no gate of its own: approved at `alter_role`\n"),
        "{}",
        plan.stdout
    );
    let json = t
        .then(&[
            "plan",
            "db-password",
            "--env",
            "staging",
            "--output",
            "json",
        ])
        .run();
    json.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["steps"][3]["approves"],
        serde_json::json!(["alter_role", "store", "redeploy", "verify"])
    );
    assert_eq!(v["steps"][5]["approved_at"], "alter_role");
    assert!(v["steps"][0].get("approved_at").is_none());
}

/// Two changes under one gate, then a person's step: a window from `first` to `second`.
fn window_runbook(sb: &Sandbox, m1: &str, m2: &str, sleep: u32) -> String {
    let _ = sb;
    format!(
        r#"
        version: 1
        name: window
        summary: Two changes under one gate, then a manual step
        steps:
          - id: read
            generate: {{ format: hex }}
          - id: first
            confirm: Make both changes?
            ssh.exec: {{ host: app, command: "echo started; sleep {sleep}; touch {m1}" }}
          - id: second
            ssh.exec: {{ host: app, command: "touch {m2}" }}
          - id: look
            manual.confirm: {{ instructions: Look at it., question: Looked? }}
        "#
    )
}

/// What the terminal showed, without colours and with its line wrapping undone.
fn flat(out: &str) -> String {
    console::strip_ansi_codes(out)
        .replace('\r', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn marker(tag: &str) -> String {
    format!("/tmp/runbook-sandbox/{}", unique(tag))
}

fn exists(p: &str) -> bool {
    std::path::Path::new(p).exists()
}

#[test]
fn a_first_ctrl_c_inside_a_change_window_lets_the_approved_steps_finish() {
    let sb = sandbox();
    let (m1, m2) = (marker("w1"), marker("w2"));
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("window", &window_runbook(&sb, &m1, &m2, 2))
        .args(&["run", "window", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    // The gate says what its answer approves.
    p.expect("approves `first`, `second`, `look` (asks you)");
    p.expect("Make both changes?");
    p.send("y");
    p.send(ENTER);
    p.expect("│ started");
    p.send("\x03");
    p.expect("not stopping yet");
    let code = p.finish();
    let out = flat(&p.output());
    for said in [
        "approves `first`, `second`, `look` (asks you): the others run one after another without stopping for a person",
        "not stopping yet: the run is inside the change window approved at `first` (`first`, `second`, `look`), and stopping in its middle would leave sandbox half changed.",
        "It goes on to the end of `second` (or rolls back if a step fails), then stops before `look`. Press Ctrl-C again to abort at once",
    ] {
        assert!(out.contains(said), "{said:?} not in:\n{out}");
    }
    assert_eq!(code, 130, "{out}");
    assert!(
        exists(&m1) && exists(&m2),
        "both approved changes ran: {out}"
    );
    assert!(
        !out.contains("Looked?"),
        "the manual step was not asked: {out}"
    );
    assert!(
        out.contains("interrupted before step `look`, once the change window approved at `first` had run to its end"),
        "{out}"
    );
    let _ = std::fs::remove_file(&m1);
    let _ = std::fs::remove_file(&m2);
}

#[test]
fn a_second_ctrl_c_aborts_and_says_what_changed_and_what_did_not_run() {
    let sb = sandbox();
    let (m1, m2) = (marker("a1"), marker("a2"));
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("window", &window_runbook(&sb, &m1, &m2, 5))
        .args(&["run", "window", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("Make both changes?");
    p.send("y");
    p.send(ENTER);
    p.expect("│ started");
    p.send("\x03");
    p.expect("not stopping yet");
    p.send("\x03");
    p.expect("aborting now");
    let code = p.finish();
    let out = flat(&p.output());
    assert!(
        out.contains("aborting now, inside the change window approved at `first`: cut short, may or may not have taken effect: `first` (runs a command on `app`); not run: `second`, `look`"),
        "{out}"
    );
    assert_eq!(code, 130, "{out}");
    assert!(
        !exists(&m2),
        "the step after the aborted one did not run: {out}"
    );
    assert!(
        out.contains(
            "step `first` was aborted; inside the change window approved at `first`: cut short"
        ),
        "the run's last words say it too: {out}"
    );
    // The remote command may still end its sleep and touch its marker: clean up after it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !exists(&m1) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&m1);
}

/// A gate whose step does not run (`--from` past it, its `when:` false, a resume after it) is
/// asked at the first step under it that runs: no approved step runs unapproved.
const TWO_UNDER_ONE: &str = r#"
version: 1
name: pair
summary: Two steps under one gate
inputs:
  skip: { description: Skip the gate's own step, choices: ["yes", "no"], default: "no" }
steps:
  - id: first
    when: inputs.skip == "no"
    confirm: Approve both?
    generate: { format: hex }
  - id: second
    generate: { format: hex }
"#;

#[test]
fn a_partial_run_inside_a_gates_steps_asks_that_gate() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("pair", TWO_UNDER_ONE)
        .args(&[
            "run", "pair", "--env", "sandbox", "--from", "second", "--input", "skip=no",
        ]);
    let mut p = Pty::spawn(&t);
    p.expect("approves `second` (the rest of what the gate");
    p.expect("Approve both?");
    p.send("n");
    p.send(ENTER);
    assert_eq!(p.finish(), 3, "{}", p.output());

    // Without a terminal it needs --yes, like any gate.
    let run = t
        .then(&["run", "pair", "--env", "sandbox", "--from", "second"])
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
}

#[test]
fn a_gate_skipped_by_its_when_is_asked_at_the_next_step_it_approves() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("pair", TWO_UNDER_ONE)
        .args(&["run", "pair", "--env", "sandbox", "--input", "skip=yes"]);
    let mut p = Pty::spawn(&t);
    p.expect("step `second`");
    p.expect("Approve both?");
    p.send("y");
    p.send(ENTER);
    assert_eq!(p.finish(), 0, "{}", p.output());
}

#[test]
fn a_resume_inside_a_gates_steps_asks_that_gate_again() {
    let sb = sandbox();
    let key = unique("resume-gate");
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "pair",
            &format!(
                r#"
                version: 1
                name: pair
                summary: A gate, then a check that fails once
                steps:
                  - id: first
                    confirm: Approve both?
                    generate: {{ format: hex }}
                  - id: second
                    http.check: {{ url: "{}/flaky/{key}/1", expect_status: 200, attempts: 1 }}
                "#,
                sb.get("SANDBOX_HTTP_URL")
            ),
        )
        // No preflight: its probe of the flaky URL would take the one failure meant for the step.
        .args(&["run", "pair", "--env", "sandbox", "--no-preflight"]);
    let mut p = Pty::spawn(&t);
    p.expect("Approve both?");
    p.send("y");
    p.send(ENTER);
    assert_eq!(p.finish(), 1, "{}", p.output());

    let resume = t.then(&["resume"]);
    let mut p = Pty::spawn(&resume);
    p.expect("approves `second` (the rest of what the gate");
    p.expect("Approve both?");
    p.send("y");
    p.send(ENTER);
    assert_eq!(p.finish(), 0, "{}", p.output());
}

#[test]
fn a_nested_runbooks_gate_after_a_change_is_a_warning_at_the_step_that_runs_it() {
    let run = Test::new()
        .with_repo_environments()
        .runbook(
            "parent",
            r#"
            version: 1
            name: parent
            summary: A change, then a runbook that asks
            steps:
              - id: store
                confirm: Store and rotate?
                ssm.put: { name: /x/A, value: "{{ 'a' * 20 }}", type: SecureString, overwrite: true }
              - id: rotate
                runbook.run: { name: child }
            "#,
        )
        .runbook(
            "child",
            r#"
            version: 1
            name: child
            summary: Asks before its change
            steps:
              - id: put
                confirm: Put it?
                ssm.put: { name: /x/B, value: "{{ 'b' * 20 }}", type: SecureString, overwrite: true }
            "#,
        )
        .env("NO_COLOR", "1")
        .args(&["check", "--format", "json"])
        .run();
    run.assert_code(0);
    let w = gate_warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stdout);
    assert_eq!(
        w[0]["message"],
        "step `rotate` runs runbook `child`, whose gate at `put` comes after `store` changed something: the run would wait for a person in the middle of the change"
    );
    assert!(
        w[0]["file"].as_str().unwrap().ends_with("parent.yaml"),
        "{}",
        w[0]
    );
}

#[test]
fn a_first_ctrl_c_during_a_rollback_lets_it_finish() {
    let sb = sandbox();
    let (m1, m2) = (marker("r1"), marker("r2"));
    let key = unique("rollback-ctrlc");
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "undo",
            &format!(
                r#"
                version: 1
                name: undo
                summary: A change whose check fails, and a slow rollback
                steps:
                  - id: change
                    confirm: Change it?
                    ssh.exec: {{ host: app, command: "true" }}
                  - id: check
                    on_failure: undo
                    http.check: {{ url: "{}/flaky/{key}/1", expect_status: 200, attempts: 1 }}
                rollback:
                  - id: undo
                    ssh.exec: {{ host: app, command: "echo undoing; sleep 2; touch {m1}" }}
                  - id: undo_more
                    ssh.exec: {{ host: app, command: "touch {m2}" }}
                "#,
                sb.get("SANDBOX_HTTP_URL")
            ),
        )
        // No preflight: its probe of the flaky URL would take the one failure meant for the check.
        .args(&["run", "undo", "--env", "sandbox", "--no-preflight"]);
    let mut p = Pty::spawn(&t);
    p.expect("Change it?");
    p.send("y");
    p.send(ENTER);
    p.expect("│ undoing");
    p.send("\x03");
    p.expect("not stopping yet");
    let code = p.finish();
    let out = flat(&p.output());
    assert_eq!(code, 1, "rolled back: {out}");
    assert!(
        out.contains("not stopping yet: the rollback from `undo` goes on to its end (`undo`, `undo_more`), since stopping it half way would leave the change half undone."),
        "{out}"
    );
    assert!(exists(&m1) && exists(&m2), "the whole rollback ran: {out}");
    let _ = std::fs::remove_file(&m1);
    let _ = std::fs::remove_file(&m2);
}

/// Step by step is the operator's choice, and inside a change window its question says that
/// production waits, half changed, while they read.
#[test]
fn step_by_step_inside_a_change_window_says_production_waits() {
    let sb = sandbox();
    let (m1, m2) = (marker("s1"), marker("s2"));
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("window", &window_runbook(&sb, &m1, &m2, 0))
        .args(&["run", "window", "--env", "sandbox", "--step"]);
    let mut p = Pty::spawn(&t);
    p.expect("Run step 1/4 `read`");
    p.send(&format!("y{ENTER}"));
    p.expect("Run step 2/4 `first`");
    p.send(&format!("y{ENTER}"));
    p.expect("Make both changes?");
    p.send(&format!("y{ENTER}"));
    p.expect(
        "(inside the change window approved at `first`: sandbox is half changed until it ends)",
    );
    p.expect("Run step 3/4 `second`");
    p.send(&format!("n{ENTER}"));
    assert_eq!(p.finish(), 3, "{}", p.output());
    assert!(exists(&m1) && !exists(&m2));
    let _ = std::fs::remove_file(&m1);
}
