//! What a run proves before it starts and leaves behind when it stops: a run or resume that
//! cannot finish (no AWS credentials, an app already failing its check) changes nothing and
//! leaves no run; `--no-preflight` is recorded; a decline before any outside change and a
//! finished rollback erase the run's secrets, anything else says what it keeps; a second run
//! while one is unfinished is refused (`--new` abandons it); a runbook that needs no
//! environment runs without one.
//!
//! The tests on the shipped db-password runbook touch the shared sandbox: run this file under
//! the sandbox lock.

mod common;

use std::process::Command;
use std::sync::Mutex;

use base64::Engine as _;
use common::pty::Pty;
use common::{Test, db_login, shipped, ssm_value};

/// The tests that use the sandbox's musehub secrets and app run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const ENTER: &str = "\r";
const DB_PASSWORD: &str = "/musehub/sandbox/DB_PASSWORD";

/// A parameter's version, read by the test straight from the sandbox's SSM API.
fn ssm_version(name: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", "http://127.0.0.1:5000/"])
        .args(["-H", "X-Amz-Target: AmazonSSM.GetParameter", "-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["-d", &format!(r#"{{"Name":"{name}"}}"#)])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Parameter"]["Version"].as_u64().unwrap()
}

/// What a rotation could have changed: the password in SSM, its version, and whether the
/// database accepts it.
fn db_state() -> (String, u64, bool) {
    let v = ssm_value(DB_PASSWORD);
    let ok = db_login(&v);
    (v, ssm_version(DB_PASSWORD), ok)
}

/// No AWS credentials at all: the sandbox's are emptied, and no file provides any.
fn without_aws(t: Test) -> Test {
    t.env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent")
}

/// The runs of the test's state directory, as `runbook runs --output json` lists them.
fn runs(t: &Test) -> Vec<serde_json::Value> {
    let r = t.again(&["runs", "--output", "json"]);
    r.assert_code(0);
    common::listed_runs(&r.stdout)
}

/// The audit lines of the test's state directory.
fn audit(t: &Test) -> Vec<serde_json::Value> {
    std::fs::read_to_string(t.state_dir().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every form of a secret a reader could recognise (as tests/masking.rs looks for them).
fn forms(secret: &str) -> Vec<String> {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_string(),
        base64::engine::general_purpose::STANDARD
            .encode(secret)
            .trim_end_matches('=')
            .to_string(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        hex.to_uppercase(),
        hex,
    ]
}

/// Every byte of every file under the state directory, in lower case.
fn state_text(t: &Test) -> String {
    let mut all = Vec::new();
    for f in common::walk(&t.state_dir()) {
        all.extend(std::fs::read(f).unwrap_or_default());
    }
    String::from_utf8_lossy(&all).to_lowercase()
}

/// The secret values a journal still holds (by output name): a value kept beside `secret`.
fn journal_secrets(t: &Test) -> Vec<String> {
    let mut kept = Vec::new();
    for f in common::walk(&t.state_dir().join("runs")) {
        if !f.ends_with("journal.jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let rec: serde_json::Value = serde_json::from_str(line).unwrap();
            for list in ["inputs", "outputs"] {
                for v in rec[list].as_array().into_iter().flatten() {
                    if v["secret"] == true && v.get("value").is_some() {
                        kept.push(format!("{}.{}", rec["id"], v["name"]));
                    }
                }
            }
        }
    }
    kept
}

/// The issue's case: without AWS credentials, the run stops before its first step; SSM, the
/// database password and the app are as they were, and no run is left to resume.
#[test]
fn a_run_without_aws_credentials_changes_nothing_and_leaves_no_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let before = db_state();
    assert!(before.2, "precondition: SSM and the database agree");
    let deploys = sb.deploys();
    let t = without_aws(shipped(&sb)).args(&["run", "db-password", "--env", "sandbox", "--yes"]);
    let run = t.run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("runbook::preflight-failed")
            && run.stderr.contains("nothing ran and nothing changed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("aws        credentials of `sandbox`   ")
            || run.stderr.contains("aws        credentials of `sandbox` "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("skipped: the AWS credentials check failed"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("step 1/"),
        "no step started: {}",
        run.stderr
    );
    assert_eq!(db_state(), before);
    assert_eq!(sb.deploys(), deploys);
    assert!(runs(&t).is_empty(), "no run was created");
    assert!(!t.state_dir().join("runs").exists());
}

/// A resume without AWS credentials used to change the database password and then fail at
/// the SSM write, leaving the two apart. Now it checks first: nothing changes, and the run
/// stays as it was, resumable.
#[test]
fn a_resume_without_aws_credentials_changes_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let before = db_state();
    assert!(before.2, "precondition: SSM and the database agree");
    // An unfinished run that read the password and made the new one, and stopped before the
    // database: its journal cannot be written from the 6th record on (as on a full disk).
    let t = shipped(&sb)
        .env("RUNBOOK_TEST_FAIL_JOURNAL_AFTER", "5")
        .args(&["run", "db-password", "--env", "sandbox", "--yes"]);
    let first = t.run();
    assert_ne!(first.code, 0, "{}", first.stderr);
    let listed = runs(&t);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["resumable"], true);
    assert_eq!(db_state(), before, "the first attempt changed nothing");
    let journal = common::walk(&t.state_dir().join("runs"))
        .into_iter()
        .find(|f| f.ends_with("journal.jsonl"))
        .unwrap();
    let journal_before = std::fs::read(&journal).unwrap();

    let resume = without_aws(t.then(&["resume", "--yes"])).run();
    resume.assert_code(1);
    assert!(
        resume.stderr.contains("runbook::preflight-failed"),
        "{}",
        resume.stderr
    );
    assert_eq!(db_state(), before, "the database password did not change");
    assert_eq!(std::fs::read(&journal).unwrap(), journal_before);
    assert_eq!(runs(&t)[0]["resumable"], true, "still there to resume");
    t.again(&["abandon", listed[0]["run_id"].as_str().unwrap()])
        .assert_code(0);
}

/// An app already failing the check the rotation ends with: the run does not start (its
/// verification would roll back for a reason it did not cause), and says which check failed.
#[test]
fn a_rotation_does_not_start_on_an_app_that_is_already_failing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let before = db_state();
    let deploys = sb.deploys();
    let fail = sb.state.join("musehub/FAIL_HEALTH");
    std::fs::write(&fail, "test").unwrap();
    let t = shipped(&sb).args(&["run", "db-password", "--env", "sandbox", "--yes"]);
    let run = t.run();
    let _ = std::fs::remove_file(&fail);
    run.assert_code(1);
    let row = run
        .stderr
        .lines()
        .find(|l| l.starts_with("http "))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(row.contains("FAIL") && row.contains("503"), "{row}");
    assert!(
        run.stderr
            .contains("the step makes this same check during the run"),
        "{}",
        run.stderr
    );
    assert_eq!(db_state(), before);
    assert_eq!(sb.deploys(), deploys, "nothing was redeployed");
    assert!(runs(&t).is_empty());
}

/// A check that needs a value only the run knows is not made at preflight, and the preflight
/// table says so; one known whole is made once, as the step makes it.
#[test]
fn preflight_judges_a_check_known_before_the_run_and_skips_one_that_is_not() {
    let sb = common::sandbox();
    let http = sb.get("SANDBOX_HTTP_URL");
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "probe",
            &format!(
                r#"
                version: 1
                name: probe
                summary: One check known before the run, one needing a run's value
                steps:
                  - id: token
                    generate: {{ format: hex, bytes: 16 }}
                  - id: with_token
                    http.check:
                      url: "{http}/status/503"
                      headers: {{ Authorization: "Bearer {{{{ steps.token.value }}}}" }}
                  - id: healthy
                    http.check: {{ url: "{http}/status/200" }}
                "#
            ),
        )
        .args(&["preflight", "probe", "--env", "sandbox"]);
    let run = t.run();
    run.assert_code(0);
    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("http "))
        .collect();
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    assert!(
        rows[0].contains("skip")
            && rows[0].contains("reachable (answered 503); the check itself is skipped: the request needs a value only the run knows"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("pass") && rows[1].contains("answered 200, as the step expects"),
        "{}",
        rows[1]
    );
}

/// `--no-preflight` starts without the checks, says so before the run, and the audit line
/// records it; without it, the same run stops at preflight.
#[test]
fn no_preflight_is_said_and_recorded_in_the_audit_line() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = Test::new().runbook(
        "closed",
        &format!(
            r#"
            version: 1
            name: closed
            summary: A check of a port nothing listens on
            steps:
              - id: up
                http.check: {{ url: "http://127.0.0.1:{port}/" }}
            "#
        ),
    );
    let refused = t.then(&["run", "closed"]).run();
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("runbook::preflight-failed"),
        "{}",
        refused.stderr
    );
    assert!(runs(&t).is_empty() && audit(&t).is_empty());

    let run = t.then(&["run", "closed", "--no-preflight"]).run();
    run.assert_code(1);
    assert!(
        run.stderr.starts_with(
            "warning: --no-preflight: the checks that this run can finish were not made (recorded in the audit log)\n"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("step 1/1 up: FAILED"), "{}", run.stderr);
    let lines = audit(&t);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["preflight"], "skipped (--no-preflight)");
    let id = lines[0]["run_id"].as_str().unwrap().to_string();

    // The resume of the same run, with the checks: they fail again, and nothing is recorded.
    let resumed = t.then(&["resume", &id]).run();
    resumed.assert_code(1);
    assert_eq!(audit(&t).len(), 1);
    let resumed = t.then(&["resume", &id, "--no-preflight"]).run();
    resumed.assert_code(1);
    let lines = audit(&t);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["preflight"], "skipped (--no-preflight)");
}

/// A runbook whose gate follows only local steps, with a planted secret input, and a step
/// after the gate that changes something elsewhere (a POST to the sandbox's server).
fn declinable(http: &str) -> String {
    format!(
        r#"
        version: 1
        name: declinable
        summary: A secret made, then a gate before the first outside change
        inputs:
          token: {{ secret: true, description: A planted secret }}
        steps:
          - id: key
            generate: {{ format: hex, bytes: 16 }}
          - id: send
            confirm: Send the key now?
            http.request:
              method: POST
              url: "{http}/echo"
              json: {{ key: "{{{{ steps.key.value }}}}" }}
          - id: tell
            confirm: Tell the owners now?
            http.request: {{ method: POST, url: "{http}/echo", json: {{ done: true }} }}
        "#
    )
}

/// Declined before any outside change: nothing elsewhere needs the secrets, so the run's end
/// erases them at once; no form of the planted secret is left in any file of the state
/// directory, and the run is over (nothing to resume, a new run is not refused).
#[test]
fn a_decline_before_any_change_leaves_no_secret_anywhere_in_the_state_dir() {
    let sb = common::sandbox();
    let secret = "Zq7-decline-canary-4Hk9xW2p";
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("declinable", &declinable(&sb.get("SANDBOX_HTTP_URL")))
        .env("RUNBOOK_INPUT_TOKEN", secret)
        .args(&["run", "declinable", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("Send the key now?");
    p.send("n");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 3, "{}", p.output());
    assert!(
        p.output()
            .contains("nothing was changed elsewhere before the decline"),
        "{}",
        p.output()
    );
    assert_eq!(journal_secrets(&t), Vec::<String>::new());
    let all = state_text(&t);
    for f in forms(secret) {
        assert!(
            !all.contains(&f.to_lowercase()),
            "`{f}` left in the state directory"
        );
    }
    let listed = runs(&t);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "declined");
    assert_eq!(listed[0]["resumable"], false);
    let again = t.again(&["resume"]);
    again.assert_code(2);
}

/// Declined after an outside change: the secrets stay (a resume may need them), and the end
/// of the run says which, why, and the two ways on; a new run is then refused until the old
/// one is resumed or abandoned, and `--new` abandons it, recorded.
#[test]
fn a_decline_after_a_change_says_what_it_keeps_and_a_second_run_is_refused() {
    let sb = common::sandbox();
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("declinable", &declinable(&sb.get("SANDBOX_HTTP_URL")))
        .env("RUNBOOK_INPUT_TOKEN", "Zq7-kept-canary-4Hk9xW2p")
        .args(&["run", "declinable", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("Send the key now?");
    p.send("y");
    p.send(ENTER);
    p.expect("Tell the owners now?");
    p.send("n");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 3, "{}", p.output());
    let out = p.output().replace('\r', "");
    let id = runs(&t)[0]["run_id"].as_str().unwrap().to_string();
    for want in [
        format!(
            // The echo's answer holds the key: the step's outputs are secret too.
            "note: run {id} keeps 4 secret values in its journal (mode 0600): inputs.token, steps.key.value, steps.send.json, steps.send.body"
        ),
        "  why: `send` changed something elsewhere that may already use them; a resume needs them to finish or roll back".to_string(),
        format!(
            "  `runbook resume {id}` goes on where it stopped; `runbook abandon {id}` erases them"
        ),
    ] {
        assert!(out.contains(&want), "{want}\n---\n{out}");
    }
    assert_eq!(journal_secrets(&t).len(), 4);

    let refused = t
        .then(&["run", "declinable", "--env", "sandbox", "--yes"])
        .run();
    refused.assert_code(2);
    assert!(
        refused.stderr.contains(&format!(
            "run {id} of `declinable` on `sandbox` is unfinished (declined, started "
        )) && refused.stderr.contains("ago)"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!("`runbook resume {id}`"))
            && refused.stderr.contains("--new"),
        "{}",
        refused.stderr
    );
    assert_eq!(runs(&t).len(), 1, "the refused run left no run");

    let new = t
        .then(&["run", "declinable", "--env", "sandbox", "--yes", "--new"])
        .run();
    new.assert_code(0);
    assert!(
        new.stderr.contains(&format!(
            "run {id} abandoned (--new): the secrets its journal held are erased"
        )),
        "{}",
        new.stderr
    );
    let listed = runs(&t);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["status"], "abandoned");
    assert_eq!(listed[1]["status"], "done");
    let lines = audit(&t);
    assert_eq!(
        lines.last().unwrap()["abandoned_runs"],
        serde_json::json!([id])
    );
    assert_eq!(journal_secrets(&t), Vec::<String>::new());
}

/// A finished rollback erases the run's secrets as a finished run does.
#[test]
fn a_finished_rollback_erases_the_secrets() {
    let sb = common::sandbox();
    let http = sb.get("SANDBOX_HTTP_URL");
    let secret = "Zq7-rollback-canary-4Hk9xW2p";
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "rolls",
            &format!(
                r#"
                version: 1
                name: rolls
                summary: A change that fails and is rolled back
                inputs:
                  token: {{ secret: true, description: A planted secret }}
                steps:
                  - id: key
                    generate: {{ format: hex, bytes: 16 }}
                  - id: change
                    on_failure: undo
                    http.request:
                      method: POST
                      url: "{http}/status/500"
                      json: {{ key: "{{{{ steps.key.value }}}}" }}
                rollback:
                  - id: undo
                    http.request: {{ method: POST, url: "{http}/echo", json: {{ undo: true }} }}
                "#
            ),
        )
        .env("RUNBOOK_INPUT_TOKEN", secret)
        .args(&["run", "rolls", "--env", "sandbox", "--yes"]);
    let run = t.run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("rolled-back") || run.stderr.contains("rolled back"),
        "{}",
        run.stderr
    );
    assert_eq!(runs(&t)[0]["status"], "rolled-back");
    assert_eq!(journal_secrets(&t), Vec::<String>::new());
    let all = state_text(&t);
    for f in forms(secret) {
        assert!(
            !all.contains(&f.to_lowercase()),
            "`{f}` left in the state directory"
        );
    }
    assert!(!run.stderr.contains("keeps"), "{}", run.stderr);
}

/// A runbook of `generate` and `manual.confirm` steps needs no environment: it runs without
/// `--env` and without any environments.yaml. One whose template reads `env.*` still needs
/// one, and says why.
#[test]
fn a_runbook_that_needs_no_environment_runs_without_one() {
    let t = Test::new()
        .runbook(
            "handover",
            r#"
            version: 1
            name: handover
            summary: Make a key and hand it to a person
            steps:
              - id: key
                generate: { format: hex, bytes: 16 }
              - id: hand
                manual.confirm:
                  instructions: Paste the key into the dashboard.
            "#,
        )
        .runbook(
            "needs",
            r#"
            version: 1
            name: needs
            summary: A key for the environment's dashboard
            steps:
              - id: key
                title: "Make the key for {{ env.name }}"
                generate: { format: hex, bytes: 16 }
            "#,
        )
        .args(&["run", "handover"]);
    assert!(!t.runbooks_dir().join("environments.yaml").exists());
    let mut p = Pty::spawn(&t);
    p.expect("Paste the key into the dashboard.");
    p.send("y");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 0, "{}", p.output());
    let listed = runs(&t);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "done");
    assert_eq!(listed[0]["env"], "none");

    t.then(&["plan", "handover"]).run().assert_code(0);
    t.then(&["run", "needs"])
        .stderr(
            "
            runbook::missing-env

              × `needs` needs an environment (a step uses hosts, databases or AWS, or a template reads
              │ `env.*`), and environments.yaml defines none
              help: define one in [TMP]/runbooks/environments.yaml, then pass --env NAME
            ",
        )
        .status(2);
}

/// A runbook that writes SSM parameter `name` and then fails (a POST answered 500) before it
/// finishes: an unfinished run that changed something. `nest` runs the runbook `nest` instead
/// of writing.
fn writer(name: &str, http: &str, param: &str) -> String {
    format!(
        r#"
        version: 1
        name: {name}
        summary: Write one parameter, then fail before finishing
        steps:
          - id: put
            ssm.put: {{ name: "{param}", value: "{name}", type: String, overwrite: true }}
          - id: tell
            http.request: {{ method: POST, url: "{http}/status/500", json: {{ done: true }} }}
        "#
    )
}

/// The refusal of a second run covers other runbooks too: while a run that wrote an SSM
/// parameter is unfinished, a run of another runbook that writes the same parameter (itself,
/// or in a runbook it runs) is refused, naming the run and the parameter; one that writes
/// another parameter starts; `--new` abandons the unfinished run.
#[test]
fn a_run_of_another_runbook_that_writes_the_same_parameter_is_refused() {
    let sb = common::sandbox();
    let http = sb.get("SANDBOX_HTTP_URL");
    let shared = "/runbook-guard-test/shared/TOKEN";
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("first", &writer("first", &http, shared))
        .runbook("second", &writer("second", &http, shared))
        .runbook(
            "elsewhere",
            &writer("elsewhere", &http, "/runbook-guard-test/elsewhere/TOKEN"),
        )
        .runbook(
            "outer",
            r#"
            version: 1
            name: outer
            summary: Run `second` inside
            steps:
              - id: inner
                runbook.run: { name: second }
            "#,
        )
        // A runbook that writes the parameter its input names, run with that input.
        .runbook(
            "byparam",
            r#"
            version: 1
            name: byparam
            summary: Write the parameter named by an input
            inputs:
              param: { description: The parameter }
            steps:
              - id: put
                ssm.put: { name: "{{ inputs.param }}", value: x, type: String, overwrite: true }
            "#,
        )
        .runbook(
            "outer2",
            &format!(
                r#"
                version: 1
                name: outer2
                summary: Run `byparam` on the shared parameter
                steps:
                  - id: inner
                    runbook.run: {{ name: byparam, inputs: {{ param: "{shared}" }} }}
                "#
            ),
        )
        .args(&["run", "first", "--env", "sandbox", "--yes"]);
    t.run().assert_code(1);
    let id = runs(&t)[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs(&t)[0]["resumable"], true);

    for name in ["second", "outer", "outer2"] {
        let refused = t.then(&["run", name, "--env", "sandbox", "--yes"]).run();
        refused.assert_code(2);
        let err = refused.stderr.replace('\n', " ").replace("│", "");
        let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
        for want in [
            format!("run {id} of `first` on `sandbox` is unfinished"),
            format!("it writes SSM parameter `{shared}`, as `{name}` would"),
            format!("`runbook resume {id}`"),
            format!("`runbook run {name} --env sandbox --new`"),
        ] {
            assert!(err.contains(&want), "{want}\n---\n{err}");
        }
    }
    assert_eq!(runs(&t).len(), 1, "the refused runs left no run");
    assert_eq!(ssm_value(shared), "first", "nothing was written");

    // Another parameter: no collision; it fails at its own POST, unfinished beside `first`.
    t.then(&["run", "elsewhere", "--env", "sandbox", "--yes"])
        .run()
        .assert_code(1);
    assert_eq!(runs(&t).len(), 2);

    let new = t
        .then(&["run", "second", "--env", "sandbox", "--yes", "--new"])
        .run();
    new.assert_code(1);
    assert!(
        new.stderr.contains(&format!("run {id} abandoned (--new)")),
        "{}",
        new.stderr
    );
    let listed = runs(&t);
    let of = |runbook: &str| -> Vec<&serde_json::Value> {
        listed.iter().filter(|r| r["runbook"] == runbook).collect()
    };
    assert_eq!(of("first")[0]["status"], "abandoned");
    assert_eq!(
        of("elsewhere")[0]["resumable"],
        true,
        "`elsewhere` is left alone"
    );
    assert_eq!(of("second")[0]["resumable"], true);
    assert_eq!(ssm_value(shared), "second");
}

/// A runbook none of whose steps changes anything elsewhere (an audit, a check) rotates
/// nothing: a failed run of it does not stop the next one, which would only be refused
/// "beside a second rotation" that does not exist.
#[test]
fn a_failed_run_of_a_read_only_runbook_does_not_refuse_the_next() {
    let sb = common::sandbox();
    let http = sb.get("SANDBOX_HTTP_URL");
    let t = Test::new().with_sandbox(&sb).runbook(
        "probe",
        &format!(
            r#"
            version: 1
            name: probe
            summary: A read-only check that fails
            steps:
              - id: key
                generate: {{ format: hex, bytes: 16 }}
              - id: missing
                http.check: {{ url: "{http}/no-such-page", expect_status: 200 }}
            "#
        ),
    );
    let run = || {
        let run = t
            .then(&[
                "run",
                "probe",
                "--env",
                "sandbox",
                "--yes",
                "--no-preflight",
            ])
            .run();
        run.assert_code(1);
        assert!(
            !run.stderr.contains("runbook::unfinished-run"),
            "{}",
            run.stderr
        );
        run
    };
    run();
    let last = run();
    let listed = runs(&t);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|r| r["status"] == "failed"), "{listed:?}");
    // Still there to resume or abandon, each: only the refusal is gone.
    assert!(listed.iter().all(|r| r["resumable"] == true), "{listed:?}");
    last.abandon_unfinished();
}

/// A person's work is a change elsewhere: declined at the gate after a manual step that
/// collected a token (made in a dashboard), the run keeps the token and says so, and does not
/// claim that nothing was changed.
#[test]
fn a_decline_after_a_manual_step_keeps_what_the_person_made() {
    let sb = common::sandbox();
    let http = sb.get("SANDBOX_HTTP_URL");
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "handed",
            &format!(
                r#"
                version: 1
                name: handed
                summary: A token made by a person, then stored
                steps:
                  - id: create
                    manual.confirm:
                      instructions: Create the token in the dashboard.
                      question: Created?
                      collect:
                        token: {{ description: The new token, secret: true, pattern: "[A-Za-z0-9-]{{16,64}}" }}
                  - id: send
                    confirm: Send the token now?
                    http.request:
                      method: POST
                      url: "{http}/echo"
                      json: {{ token: "{{{{ steps.create.token }}}}" }}
                "#
            ),
        )
        .args(&["run", "handed", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    p.expect("The new token");
    p.type_hidden("Dashboard-token-0123456789");
    p.expect("Created?");
    p.send("y");
    p.send(ENTER);
    p.expect("Send the token now?");
    p.send("n");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 3, "{}", p.output());
    let out = p.output();
    assert!(
        !out.contains("nothing was changed elsewhere"),
        "a person's work is a change: {out}"
    );
    assert!(out.contains("keeps"), "{out}");
    assert_eq!(
        journal_secrets(&t),
        vec!["\"create\".\"token\"".to_string()]
    );
    let listed = runs(&t);
    assert_eq!(listed[0]["resumable"], true, "{listed:?}");
    t.again(&["abandon", listed[0]["run_id"].as_str().unwrap()])
        .assert_code(0);
}

/// A run that is still going counts too: while a run of one runbook waits at its gate (it has
/// read the value it would roll back to), a run of another runbook that writes the same
/// parameter is refused, even with `--new`, and told to wait.
#[test]
fn a_live_run_that_writes_the_same_parameter_refuses_another_runbook() {
    let sb = common::sandbox();
    let http = sb.get("SANDBOX_HTTP_URL");
    let shared = "/runbook-guard-test/live/TOKEN";
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "waiting",
            &format!(
                r#"
                version: 1
                name: waiting
                summary: Write one parameter after a gate
                rotation: every 90 days
                steps:
                  - id: key
                    generate: {{ format: hex, bytes: 16 }}
                  - id: put
                    confirm: Write it now?
                    ssm.put: {{ name: "{shared}", value: waiting, type: String, overwrite: true }}
                "#
            ),
        )
        .runbook("other", &writer("other", &http, shared))
        .args(&["run", "waiting", "--env", "sandbox"]);
    let mut p = Pty::spawn(&t);
    // The question itself, not a warning's snippet of the file that holds its text: only at
    // the gate does the run hold its lock.
    p.expect("Write it now? (y/n)");
    for args in [
        vec!["run", "other", "--env", "sandbox", "--yes"],
        vec!["run", "other", "--env", "sandbox", "--yes", "--new"],
    ] {
        let refused = t.then(&args).run();
        refused.assert_code(2);
        let err = refused.stderr.replace('\n', " ").replace("│", "");
        let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
        for want in [
            "of `waiting` on `sandbox` is unfinished (running,".to_string(),
            format!("it writes SSM parameter `{shared}`"),
            "it is running now: wait until it ends".to_string(),
        ] {
            assert!(err.contains(&want), "{want}\n---\n{err}");
        }
    }
    p.send("n");
    p.send(ENTER);
    assert_eq!(p.finish(), 3, "{}", p.output());
    // Over (declined before any change): the other runbook starts now.
    t.then(&["run", "other", "--env", "sandbox", "--yes"])
        .run()
        .abandon_unfinished()
        .assert_code(1);
}
