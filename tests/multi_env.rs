//! One runbook on several environments in one invocation (`run NAME --env a --env b`),
//! against the sandbox: two environments of the test's own environments.yaml both use the
//! sandbox's SSM and HTTP server, each under its own `ssm_prefix`, so what one run changed
//! is told apart from what the other did (or did not).
//!
//! They run in order, one audit line each, tied by one series id; a failing first environment
//! leaves the second untouched; a decline at the second's gate leaves the first done; a
//! repeated or unknown environment is refused with nothing changed anywhere.
//!
//! Every test writes only parameters of its own (unique prefixes): no shared sandbox state.

mod common;

use std::process::Command;

use common::pty::Pty;
use common::{Test, unique};

const ENTER: &str = "\r";

/// A parameter's value, or `None` when the sandbox's SSM has no such parameter.
fn ssm(name: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "http://127.0.0.1:5000/"])
        .args(["-H", "X-Amz-Target: AmazonSSM.GetParameter", "-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["-d", &format!(r#"{{"Name":"{name}","WithDecryption":true}}"#)])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Parameter"]["Value"].as_str().map(str::to_string)
}

/// Two environments on the sandbox: `first` and `second` (protected), each with its own SSM
/// prefix and the URL its verification checks (`first_check`: a status path of the sandbox's
/// HTTP server).
fn two_envs(sb: &common::Sandbox, prefix: &str, first_check: &str) -> String {
    let http = sb.get("SANDBOX_HTTP_URL");
    format!(
        r#"
        version: 1
        environments:
          first:
            aws: {{ region: us-east-1, endpoint: "http://127.0.0.1:5000" }}
            vars:
              ssm_prefix: {prefix}/first
              check_url: {http}{first_check}
          second:
            protected: true
            aws: {{ region: us-east-1, endpoint: "http://127.0.0.1:5000" }}
            vars:
              ssm_prefix: {prefix}/second
              check_url: {http}/ok
        "#
    )
}

/// A stand-in rotation: a new value stored under the environment's prefix, then verified at
/// the environment's check URL (which needs the stored version: not judged by preflight).
const ROTATE: &str = r#"
    version: 1
    name: rotate
    summary: A stand-in rotation of one secret per environment
    rotation: every 90 days
    inputs:
      reason: { description: Why, default: scheduled }
    steps:
      - id: value
        generate: { format: hex, bytes: 16 }
      - id: store
        confirm: Store the new value in {{ env.name }}?
        ssm.put:
          name: "{{ env.ssm_prefix }}/TOKEN"
          value: "{{ steps.value.value }}"
          type: SecureString
          overwrite: true
      - id: verify
        http.check:
          url: "{{ env.check_url }}?version={{ steps.store.version }}"
          expect_status: 200
          attempts: 1
    "#;

fn test(sb: &common::Sandbox, prefix: &str, first_check: &str) -> Test {
    Test::new()
        .with_sandbox(sb)
        .environments(&two_envs(sb, prefix, first_check))
        .runbook("rotate", ROTATE)
}

fn audit(t: &Test) -> Vec<serde_json::Value> {
    audit_in(&t.state_dir())
}

fn audit_in(state: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn runs(t: &Test) -> Vec<serde_json::Value> {
    let r = t.again(&["runs", "--output", "json"]);
    r.assert_code(0);
    common::listed_runs(&r.stdout)
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn both_environments_run_in_order_with_one_audit_line_each_sharing_the_series_id() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("order"));
    let t = test(&sb, &prefix, "/ok").args(&[
        "run",
        "rotate",
        "--env",
        "first",
        "--env",
        "second",
        "--yes",
        "--confirm-env",
        "second",
        "--output",
        "json",
    ]);
    let run = t.run();
    run.assert_code(0);
    assert!(ssm(&format!("{prefix}/first/TOKEN")).is_some());
    assert!(ssm(&format!("{prefix}/second/TOKEN")).is_some());

    // The events of each run, the first's all before the second's, then the series' end.
    let lines = json_lines(&run.stdout);
    let started: Vec<&str> = lines
        .iter()
        .filter(|e| e["event"] == "run_started")
        .map(|e| e["env"].as_str().unwrap())
        .collect();
    assert_eq!(started, ["first", "second"]);
    let first_end = lines
        .iter()
        .position(|e| e["event"] == "run_finished")
        .unwrap();
    let second_start = lines
        .iter()
        .rposition(|e| e["event"] == "run_started")
        .unwrap();
    assert!(first_end < second_start, "{}", run.stdout);
    let end = lines.last().unwrap();
    assert_eq!(end["event"], "series_finished", "{}", run.stdout);
    assert_eq!(end["status"], "done");
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["continue"], serde_json::json!([]));
    let series = end["series"].as_str().unwrap().to_string();

    let audit = audit(&t);
    assert_eq!(audit.len(), 2, "one audit line per environment");
    assert_eq!(audit[0]["env"], "first");
    assert_eq!(audit[1]["env"], "second");
    assert_ne!(audit[0]["run_id"], audit[1]["run_id"]);
    for line in &audit {
        assert_eq!(line["series"], series.as_str());
        assert_eq!(line["ended"]["status"], "done");
    }
    assert_eq!(
        end["environments"],
        serde_json::json!([
            { "env": "first", "status": "done", "run_id": audit[0]["run_id"] },
            { "env": "second", "status": "done", "run_id": audit[1]["run_id"] },
        ])
    );
    // The journals record it too, and `runs` shows it.
    let listed = runs(&t);
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|r| r["series"] == series.as_str()));
    assert!(!run.stderr.contains("to go on"), "{}", run.stderr);
    // The table shows the series too (a column only when a run of several is listed).
    let table = t.again(&["runs"]);
    table.assert_code(0);
    let rows: Vec<Vec<&str>> = table
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "RUN", "RUNBOOK", "ENV", "STATUS", "STARTED", "OPERATOR", "SERIES"
        ]
    );
    for (row, env) in rows[1..].iter().zip(["first", "second"]) {
        assert_eq!((row[2], row[3], row[6]), (env, "done", series.as_str()));
    }
    assert_eq!(rows.len(), 3, "{}", table.stdout);
}

/// The first environment fails its verification: the second never starts. What the terminal
/// shows, whole: the series, each run as a run of one shows itself, then the report and the
/// commands that go on (the failed run resumed, then the rest with the same inputs).
#[test]
fn a_failing_first_environment_stops_the_second_and_says_how_to_go_on() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("fail"));
    let t = test(&sb, &prefix, "/status/503")
        .args(&[
            "run",
            "rotate",
            "--env",
            "first",
            "--env",
            "second",
            "--yes",
            "--confirm-env",
            "second",
            "--input",
            "reason=leak at 9",
        ])
        .redact(&regex::escape(&prefix), "[PREFIX]")
        .stderr(
            "
            series [RUN-ID]: rotate on first, then second, one after another; each environment is a run of its own, and the next begins only when the previous one is done

            environment 1 of 2: first
            preflight: 2 checks passed, 1 skipped (known only at run time; `runbook preflight` lists them)
            [TIME] run [RUN-ID]: rotate on first, 3 steps
            [TIME] step 1/3 value: generate 16 random bytes as hex
            [TIME] step 1/3 value: ok in [DURATION]
            [TIME] gate store: Store the new value in first? -> approved by --yes
            [TIME] step 2/3 store: write SSM parameter [PREFIX]/first/TOKEN as SecureString (new version)
            [TIME] step 2/3 store: ok in [DURATION]
            [TIME] step 3/3 verify: GET http://127.0.0.1:8080/status/503?version=1 expecting 200
            [TIME] step 3/3 verify: FAILED in [DURATION]: unexpected answer: 503 Service Unavailable
                | body: status 503
              at runbooks/rotate.yaml:17:9
            [TIME] run [RUN-ID]: FAILED in [DURATION] (2 ok, 1 failed, 0 skipped): step `verify` failed: unexpected answer: 503 Service Unavailable
            note: run [RUN-ID] keeps 1 secret value in its journal (mode 0600): steps.value.value
              why: `store` changed something elsewhere that may already use them; a resume needs them to finish or roll back
              `runbook resume [RUN-ID]` goes on where it stopped; `runbook abandon [RUN-ID]` erases them

            series [RUN-ID] of rotate: 0 of 2 environments done
              first   failed (run [RUN-ID])
              second  not started
            to go on: `runbook resume [RUN-ID] --yes`, then `runbook run rotate --env second --input 'reason=leak at 9' --yes --confirm-env second`
            ",
        );
    let run = t.status(1);
    // The first changed (and failed its verification); the second was never touched.
    assert!(ssm(&format!("{prefix}/first/TOKEN")).is_some());
    assert_eq!(ssm(&format!("{prefix}/second/TOKEN")), None);
    let audit = audit_in(&run.state);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["env"], "first");
    assert_eq!(audit[0]["ended"]["status"], "failed");
    let id = audit[0]["run_id"].as_str().unwrap();
    let series = audit[0]["series"].as_str().unwrap();
    assert!(run.stderr.starts_with(&format!("series {series}: ")));
    assert!(
        run.stderr
            .contains(&format!("to go on: `runbook resume {id} --yes`"))
    );
    run.abandon_unfinished();
}

/// At a terminal: each environment is a run of its own, so the second's gate asks again,
/// and, the second being protected, for its name, although the first's gate was approved.
#[test]
fn at_a_terminal_each_environment_asks_at_its_own_gate_and_a_protected_one_for_its_name() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("gates"));
    let t = test(&sb, &prefix, "/ok").args(&[
        "run",
        "rotate",
        "--env",
        "first",
        "--env",
        "second",
        "--input",
        "reason=test",
    ]);
    let mut p = Pty::spawn(&t);
    p.expect("Store the new value in first?");
    p.send("y");
    p.send(ENTER);
    p.expect("environment 2 of 2: second");
    p.expect("Store the new value in second?");
    p.send("y");
    p.send(ENTER);
    p.expect("Type its name");
    p.send("second");
    p.send(ENTER);
    let code = p.finish();
    let out = p.output().replace('\r', "");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("Type its name").count(), 1, "{out}");
    assert!(ssm(&format!("{prefix}/first/TOKEN")).is_some());
    assert!(ssm(&format!("{prefix}/second/TOKEN")).is_some());
    let audit = audit(&t);
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0]["series"], audit[1]["series"]);
    assert!(out.contains("2 of 2 environments done"), "{out}");
}

/// A plain `n` at the second's gate: declined, exit 3, the first done, and the way on is a
/// new run of the second (declined before any change, its run is over).
#[test]
fn a_plain_decline_at_the_second_gate_is_exit_3_and_the_way_on_is_the_second_again() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("no"));
    let t = test(&sb, &prefix, "/ok").args(&[
        "run",
        "rotate",
        "--env",
        "first",
        "--env",
        "second",
        "--input",
        "reason=test",
    ]);
    let mut p = Pty::spawn(&t);
    p.expect("Store the new value in first?");
    p.send("y");
    p.send(ENTER);
    p.expect("Store the new value in second?");
    p.send("n");
    p.send(ENTER);
    let code = p.finish();
    let out = p.output().replace('\r', "");
    assert_eq!(code, 3, "{out}");
    assert!(ssm(&format!("{prefix}/first/TOKEN")).is_some());
    assert_eq!(ssm(&format!("{prefix}/second/TOKEN")), None);
    let audit = audit(&t);
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1]["ended"]["status"], "declined");
    for want in [
        "1 of 2 environments done",
        "  second  declined (run ",
        "to go on: `runbook run rotate --env second --input reason=test`",
    ] {
        assert!(out.contains(want), "{want}\n---\n{out}");
    }
}

#[test]
fn a_repeated_or_unknown_environment_is_refused_with_nothing_changed() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("refused"));
    let t = test(&sb, &prefix, "/ok");
    let twice = t.then(&[
        "run",
        "rotate",
        "--env",
        "first",
        "--env",
        "second",
        "--env",
        "first",
        "--yes",
        "--confirm-env",
        "second",
    ]);
    twice
        .stderr(
            "runbook::duplicate-env\n\n  × environment `first` is given twice\n  help: give each environment once: they run one after another, in the order given\nnothing ran in any of the 3 environments given\n",
        )
        .status(2);
    let unknown = t.then(&[
        "run", "rotate", "--env", "first", "--env", "secnd", "--env", "third", "--yes", "--output",
        "json",
    ]);
    let run = unknown.run();
    run.assert_code(2);
    let err: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(err["error"], "invalid");
    assert_eq!(err["code"], "runbook::unknown-env");
    assert_eq!(err["message"], "no environment `secnd`");
    assert_eq!(err["problems"].as_array().unwrap().len(), 2);
    // A protected environment later in the list without its --confirm-env: refused before
    // the first one ran.
    let unconfirmed = t
        .then(&[
            "run", "rotate", "--env", "first", "--env", "second", "--yes",
        ])
        .run();
    unconfirmed.assert_code(2);
    assert!(
        unconfirmed
            .stderr
            .contains("`second` is a protected environment: --yes alone does not approve it"),
        "{}",
        unconfirmed.stderr
    );
    assert!(
        unconfirmed.stderr.contains(
            "nothing ran: every environment is checked before the first one (first) runs"
        ),
        "{}",
        unconfirmed.stderr
    );
    let stray = t
        .then(&[
            "run",
            "rotate",
            "--env",
            "first",
            "--env",
            "second",
            "--yes",
            "--confirm-env",
            "production",
        ])
        .run();
    stray.assert_code(2);
    assert!(
        stray.stderr.contains("runbook::confirm-env-mismatch"),
        "{}",
        stray.stderr
    );
    for env in ["first", "second"] {
        assert_eq!(ssm(&format!("{prefix}/{env}/TOKEN")), None);
    }
    assert!(audit(&t).is_empty());
    assert!(runs(&t).is_empty());
}

/// `plan` shows each environment's plan, in order; with `--output json`, `plans`.
#[test]
fn plan_shows_each_environment() {
    let sb = common::sandbox();
    let t = test(&sb, "/multienv/plan", "/ok");
    let run = t
        .then(&["plan", "rotate", "--env", "second", "--env", "first"])
        .run();
    run.assert_code(0);
    let second = run
        .stdout
        .find("Plan: rotate on second (protected)")
        .unwrap();
    let first = run.stdout.find("Plan: rotate on first").unwrap();
    assert!(second < first, "{}", run.stdout);
    let json = t
        .then(&[
            "plan", "rotate", "--env", "second", "--env", "first", "--output", "json",
        ])
        .run();
    json.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let envs: Vec<&str> = doc["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["env"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["second", "first"]);
    t.then(&["plan", "rotate", "--env", "first", "--env", "first"])
        .run()
        .assert_code(2);
}

/// `preflight` checks each environment in turn; with `--output json`, `environments`; exit 1
/// when a check of any fails.
#[test]
fn preflight_checks_each_environment() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("preflight"));
    let t = slow(&sb, &prefix, "/ok", "/status/503");
    let run = t
        .then(&[
            "preflight",
            "slow",
            "--env",
            "first",
            "--env",
            "second",
            "--output",
            "json",
        ])
        .run();
    run.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["passed"], false);
    let envs: Vec<(&str, bool)> = doc["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["env"].as_str().unwrap(), e["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(envs, [("first", true), ("second", false)]);
    let human = t
        .then(&["preflight", "slow", "--env", "first", "--env", "second"])
        .run();
    human.assert_code(1);
    assert!(human.stdout.starts_with("first:\n"), "{}", human.stdout);
    assert!(human.stdout.contains("\n\nsecond:\n"), "{}", human.stdout);
}

/// A runbook with a check the preflight makes (`health_url`, known before the run) and one
/// it cannot (`slow_url`, which reads a value of the run), then a change.
const SLOW: &str = r#"
    version: 1
    name: slow
    summary: A value stored after two checks
    rotation: every 90 days
    steps:
      - id: health
        http.check: { url: "{{ env.health_url }}", expect_status: 200, attempts: 1 }
      - id: wait
        http.check:
          url: "{{ env.slow_url }}?after={{ steps.health.status }}"
          expect_status: 200
          attempts: 1
      - id: store
        ssm.put: { name: "{{ env.ssm_prefix }}/SLOW", value: "stored-in-{{ env.name }}", overwrite: true }
    "#;

fn slow(sb: &common::Sandbox, prefix: &str, first_slow: &str, second_health: &str) -> Test {
    let http = sb.get("SANDBOX_HTTP_URL");
    Test::new()
        .with_sandbox(sb)
        .environments(&format!(
            r#"
            version: 1
            environments:
              first:
                aws: {{ region: us-east-1, endpoint: "http://127.0.0.1:5000" }}
                vars:
                  ssm_prefix: {prefix}/first
                  health_url: {http}/ok
                  slow_url: {http}{first_slow}
              second:
                aws: {{ region: us-east-1, endpoint: "http://127.0.0.1:5000" }}
                vars:
                  ssm_prefix: {prefix}/second
                  health_url: {http}{second_health}
                  slow_url: {http}/ok
            "#
        ))
        .runbook("slow", SLOW)
        .args(&["run", "slow", "--env", "first", "--env", "second"])
}

/// Ctrl-C while the first environment's run is in a step: that run stops after the step
/// (interrupted, resumable), and the second does not start.
#[test]
fn ctrl_c_in_the_first_run_stops_the_series() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("ctrlc"));
    let t = slow(&sb, &prefix, "/slow/3000", "/ok");
    let mut p = Pty::spawn(&t);
    p.expect("slow on first");
    p.expect("[2/3] wait");
    p.send("\x03");
    let code = p.finish();
    let out = p.output().replace('\r', "");
    assert_eq!(code, 130, "{out}");
    assert_eq!(ssm(&format!("{prefix}/first/SLOW")), None);
    assert_eq!(ssm(&format!("{prefix}/second/SLOW")), None);
    let listed = runs(&t);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "interrupted");
    let id = listed[0]["run_id"].as_str().unwrap();
    for want in [
        format!("  first   interrupted (run {id})"),
        "  second  not started".to_string(),
        format!("to go on: `runbook resume {id}`, then `runbook run slow --env second`"),
    ] {
        assert!(out.contains(&want), "{want}\n---\n{out}");
    }
    // The guard of unfinished runs applies per environment, and to all before any runs: with
    // the first's run unfinished, a series that would run the second first is refused whole.
    let again = t.again(&["run", "slow", "--env", "second", "--env", "first"]);
    again.assert_code(2);
    assert!(
        again
            .stderr
            .contains(&format!("run {id} of `slow` on `first` is unfinished")),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains(
            "nothing ran: every environment is checked before the first one (second) runs"
        ),
        "{}",
        again.stderr
    );
    assert_eq!(ssm(&format!("{prefix}/second/SLOW")), None);
    t.again(&["abandon", id]).assert_code(0);
}

/// Ctrl-C after the first environment's run, while the second's preflight runs (no engine
/// listens then): the second's run never begins, the first stays done.
#[test]
fn ctrl_c_between_two_runs_stops_the_series_before_the_next_begins() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("between"));
    let t = slow(&sb, &prefix, "/ok", "/slow/3000");
    let mut p = Pty::spawn(&t);
    p.expect("environment 2 of 2: second");
    p.send("\x03");
    let code = p.finish();
    let out = p.output().replace('\r', "");
    assert_eq!(code, 130, "{out}");
    assert_eq!(
        ssm(&format!("{prefix}/first/SLOW")).as_deref(),
        Some("stored-in-first")
    );
    assert_eq!(ssm(&format!("{prefix}/second/SLOW")), None);
    let listed = runs(&t);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "done");
    for want in [
        "Ctrl-C: the series stops before the next environment's run begins",
        "Ctrl-C: the run on second did not begin; nothing changed there",
        "  second  interrupted\n",
        "to go on: `runbook run slow --env second`",
    ] {
        assert!(out.contains(want), "{want}\n---\n{out}");
    }
}

/// The second environment's preflight fails (its app answers 503): its run never begins, so
/// it wrote no event; `series_finished` carries its error, and the first stays done.
#[test]
fn a_refused_second_environment_is_said_in_series_finished() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("refused2"));
    let t = slow(&sb, &prefix, "/ok", "/status/503").args(&["--output", "json"]);
    let run = t.run();
    run.assert_code(1);
    assert_eq!(
        ssm(&format!("{prefix}/first/SLOW")).as_deref(),
        Some("stored-in-first")
    );
    assert_eq!(ssm(&format!("{prefix}/second/SLOW")), None);
    let lines = json_lines(&run.stdout);
    let end = lines.last().unwrap();
    assert_eq!(end["event"], "series_finished", "{}", run.stdout);
    assert_eq!(end["status"], "refused");
    assert_eq!(end["exit_code"], 1);
    assert_eq!(end["environments"][0]["status"], "done");
    assert_eq!(end["environments"][1]["status"], "refused");
    assert_eq!(end["environments"][1]["run_id"], serde_json::Value::Null);
    assert_eq!(end["error"]["error"], "failed");
    assert_eq!(
        end["continue"],
        serde_json::json!(["runbook run slow --env second"])
    );
    // Exactly one run began: the first's.
    assert_eq!(
        lines.iter().filter(|e| e["event"] == "run_started").count(),
        1
    );
    assert!(
        run.stderr
            .contains("  second  refused before its run began; nothing changed there"),
        "{}",
        run.stderr
    );
}

/// Two environments that would write the same parameter of the same SSM: the second run would
/// overwrite what the first stored. Refused before either runs.
#[test]
fn two_environments_writing_one_parameter_are_refused() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("same"));
    let envs = two_envs(&sb, &prefix, "/ok").replace(
        &format!("ssm_prefix: {prefix}/second"),
        &format!("ssm_prefix: {prefix}/first"),
    );
    let t = Test::new()
        .with_sandbox(&sb)
        .environments(&envs)
        .runbook("rotate", ROTATE)
        .args(&[
            "run",
            "rotate",
            "--env",
            "first",
            "--env",
            "second",
            "--yes",
            "--confirm-env",
            "second",
        ]);
    let run = t.run();
    run.assert_code(2);
    for want in [
        "runbook::same-parameter".to_string(),
        format!("`first` and `second` would both write `{prefix}/first/TOKEN`"),
        "nothing ran in any of the environments given".to_string(),
    ] {
        // The report wraps a long line at the width (the unique prefix's length varies).
        let flat = run.stderr.replace("\n  │ ", "");
        assert!(flat.contains(&want), "{want}\n---\n{}", run.stderr);
    }
    assert_eq!(ssm(&format!("{prefix}/first/TOKEN")), None);
    assert!(audit(&t).is_empty());
}

/// A secret input is bound once and used by every environment's run: it reaches the server
/// (a header) in both, and no output or file of the series holds it in any form.
#[test]
fn a_secret_input_serves_every_environment_and_is_never_shown() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("secret"));
    let secret = "Zq7-series-canary-4Hk9xW2p";
    let http = sb.get("SANDBOX_HTTP_URL");
    let t = test(&sb, &prefix, "/ok")
        .runbook(
            "announce",
            &format!(
                r#"
                version: 1
                name: announce
                summary: Tell a server, with a token
                inputs:
                  token: {{ secret: true, description: The token }}
                steps:
                  - id: tell
                    http.request:
                      method: POST
                      url: "{http}/echo"
                      headers: {{ Authorization: "Bearer {{{{ inputs.token }}}}" }}
                      json: {{ env: "{{{{ env.name }}}}" }}
                      # The server got the token, in each environment's run.
                      expect_json:
                        - {{ path: headers.authorization, equals: "Bearer {{{{ inputs.token }}}}" }}
                "#
            ),
        )
        .env("RUNBOOK_INPUT_TOKEN", secret)
        .args(&[
            "run", "announce", "--env", "first", "--env", "second", "--output", "json",
        ]);
    let run = t.run();
    run.assert_code(0);
    let lines = json_lines(&run.stdout);
    let told: Vec<&str> = lines
        .iter()
        .filter(|e| e["event"] == "step_finished" && e["id"] == "tell")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(told, ["ok", "ok"]);
    let all = String::from_utf8_lossy(&run.all_bytes()).to_lowercase();
    assert!(
        !all.contains(&secret.to_lowercase()),
        "the secret was written"
    );
    assert!(
        !all.contains("series-canary"),
        "a part of the secret was written"
    );
    let audit = audit(&t);
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0]["secrets"][0]["input"], "token");
    assert_eq!(
        audit[0]["secrets"][0]["fingerprint"], audit[1]["secrets"][0]["fingerprint"],
        "the same value in both runs"
    );
}

/// The first environment fails and rolls back: its run is over (nothing to resume), so the way
/// on is a new series from it; the second was never touched.
#[test]
fn a_rolled_back_first_environment_stops_the_second() {
    let sb = common::sandbox();
    let prefix = format!("/multienv/{}", unique("rollback"));
    let t = test(&sb, &prefix, "/status/500")
        .runbook(
            "undo",
            r#"
            version: 1
            name: undo
            summary: A value stored, verified, and put back when the verification fails
            rotation: every 90 days
            steps:
              - id: store
                ssm.put: { name: "{{ env.ssm_prefix }}/UNDO", value: new-value, overwrite: true }
              - id: verify
                on_failure: restore
                http.check:
                  url: "{{ env.check_url }}?version={{ steps.store.version }}"
                  expect_status: 200
                  attempts: 1
            rollback:
              - id: restore
                ssm.put: { name: "{{ env.ssm_prefix }}/UNDO", value: old-value, overwrite: true }
            "#,
        )
        .args(&[
            "run",
            "undo",
            "--env",
            "first",
            "--env",
            "second",
            "--yes",
            "--confirm-env",
            "second",
        ]);
    let run = t.run();
    run.assert_code(1);
    assert_eq!(
        ssm(&format!("{prefix}/first/UNDO")).as_deref(),
        Some("old-value")
    );
    assert_eq!(ssm(&format!("{prefix}/second/UNDO")), None);
    let id = runs(&t)[0]["run_id"].as_str().unwrap().to_string();
    assert!(
        run.stderr.ends_with(&format!(
            "  first   rolled-back (run {id})\n  second  not started\nto go on: `runbook run undo --env first --env second --yes --confirm-env second`\n"
        )),
        "{}",
        run.stderr
    );
}
