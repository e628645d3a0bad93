//! The shipped MuseHub runbooks, end to end on the sandbox: after a rotation, SSM, the live
//! database password and the app's `.env` agree and the app answers; a failed verification
//! rolls back; bootstrap is safe twice; plans of production and staging mask every secret.

mod common;

use std::sync::Mutex;

use common::{db_login, repo, shipped, ssm_value};

/// The rotations share the sandbox's musehub role, SSM parameters and app: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn db_password_rotates_everywhere_and_prints_no_secret() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let name = "/musehub/sandbox/DB_PASSWORD";
    let old = ssm_value(name);
    assert!(
        db_login(&old),
        "precondition: the sandbox's SSM password is the live one"
    );

    let run = shipped(&sb)
        .args(&["run", "db-password", "--env", "sandbox", "--yes"])
        .run();
    run.assert_code(0);

    let new = ssm_value(name);
    assert_ne!(new, old, "SSM holds a new password");
    assert_eq!(new.len(), 48, "24 random bytes as hex");
    assert!(db_login(&new), "the database accepts the new password");
    assert!(!db_login(&old), "the old password no longer works");
    assert_eq!(sb.app_env("DB_PASSWORD"), new, "the app's .env has it");
    assert_eq!(sb.explore_status(), "200");

    let all = String::from_utf8_lossy(&run.all_bytes()).into_owned();
    assert!(
        !all.contains(&new),
        "the new password leaked into the tool's output or files"
    );
    assert!(!all.contains(&old), "the old password leaked");
    let pg_log = std::fs::read_to_string(sb.get("SANDBOX_PG_LOG")).unwrap_or_default();
    assert!(
        !pg_log.contains(&new),
        "the plaintext reached the PostgreSQL log"
    );
}

#[test]
fn db_password_rolls_back_when_the_app_does_not_come_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let name = "/musehub/sandbox/DB_PASSWORD";
    let old = ssm_value(name);
    let fail = sb.state.join("musehub/FAIL_HEALTH");
    std::fs::write(&fail, "test").unwrap();
    let before = sb.deploys();

    // The app fails before the run starts: preflight would refuse it. This test is about the
    // rollback, so it starts without preflight.
    let t = shipped(&sb).args(&[
        "run",
        "db-password",
        "--env",
        "sandbox",
        "--yes",
        "--no-preflight",
    ]);
    let run = t.run();
    let _ = std::fs::remove_file(&fail);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("running rollback from restore_db_password"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("step `verify` failed"),
        "{}",
        run.stderr
    );

    assert_eq!(
        ssm_value(name),
        old,
        "SSM holds the old password again (as a new version)"
    );
    assert!(
        db_login(&old),
        "the database accepts the old password again"
    );
    assert_eq!(
        sb.app_env("DB_PASSWORD"),
        old,
        "the app's .env has the old password"
    );
    assert_eq!(
        sb.deploys(),
        before + 2,
        "deployed once with the new password, once back"
    );
    // The app was redeployed with the old password: once allowed to recover, it answers.
    let mut status = String::new();
    for _ in 0..50 {
        status = sb.explore_status();
        if status == "200" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(status, "200");
    // The rollback's own check failed while the app was held down, so the run is unfinished
    // (and keeps the old password in its private journal). Resuming finishes the rollback.
    assert!(run.stderr.contains("ALSO FAILED"), "{}", run.stderr);
    let resumed = t.again(&["resume", "--yes", "--no-preflight"]);
    resumed.assert_code(1);
    assert!(
        resumed
            .stderr
            .contains("rollback from `restore_db_password` completed"),
        "{}",
        resumed.stderr
    );
    assert_eq!(sb.deploys(), before + 2, "resume repeated no finished step");
    assert!(!String::from_utf8_lossy(&resumed.all_bytes()).contains(&old));
}

#[test]
fn plans_for_production_and_staging_show_every_step_with_secrets_masked() {
    let sb = common::sandbox();
    for f in common::walk(&repo().join("runbooks")) {
        let name = f.file_stem().unwrap().to_str().unwrap().to_string();
        if name == "environments" {
            continue;
        }
        for env in ["production", "staging"] {
            let run = shipped(&sb).args(&["plan", &name, "--env", env]).run();
            run.assert_code(0);
            assert!(
                run.stdout.contains(&format!("Plan: {name} on {env}")),
                "{}",
                run.stdout
            );
            let text = std::fs::read_to_string(&f).unwrap();
            let steps = text.matches("\n  - id: ").count();
            assert!(
                run.stdout.matches("\n      does: ").count() >= steps,
                "{name}: every step is in the plan\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn ssm_bootstrap_twice_leaves_existing_values_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let names = ["DB_PASSWORD", "WEBHOOK_SECRET_KEY", "RUNNER_TOKEN"]
        .map(|n| format!("/musehub/sandbox/{n}"));
    let before: Vec<String> = names.iter().map(|n| ssm_value(n)).collect();
    for _ in 0..2 {
        let run = shipped(&sb)
            .args(&["run", "ssm-bootstrap", "--env", "sandbox", "--yes"])
            .run();
        run.assert_code(0);
        let after: Vec<String> = names.iter().map(|n| ssm_value(n)).collect();
        assert_eq!(after, before, "existing values are unchanged");
        // The audit line names whose AWS credentials ran it (moto's identity here).
        let audit = std::fs::read_to_string(run.state.join("audit.jsonl")).unwrap();
        let line: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
        assert!(
            line["aws_identity"]
                .as_str()
                .unwrap_or_default()
                .starts_with("arn:aws:sts::"),
            "{line}"
        );
    }
}

#[test]
fn webhook_secret_rotates_to_a_fernet_key_and_asks_for_owners_to_be_told() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let name = "/musehub/sandbox/WEBHOOK_SECRET_KEY";
    let old = ssm_value(name);
    let run = shipped(&sb)
        .args(&["run", "webhook-secret", "--env", "sandbox", "--yes"])
        .run();
    run.assert_code(0);
    let new = ssm_value(name);
    assert_ne!(new, old);
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(&new)
        .expect("a Fernet key is URL-safe base64");
    assert_eq!(raw.len(), 32, "a Fernet key holds 32 bytes");
    assert_eq!(sb.app_env("WEBHOOK_SECRET_KEY"), new, "deployed");
    assert_eq!(sb.explore_status(), "200");
    // The sandbox has a notify target: the owners are told through it (tests/notify.rs
    // follows the notice; without a target, the manual step asks a person).
    assert!(run.stderr.contains("tell_owners: ok in"), "{}", run.stderr);
    // The run's own checks used the keys at the consumer: the new one signs, the old is refused.
    for id in ["verify_new_key", "old_key_refused"] {
        assert!(
            run.stderr.contains(&format!("{id}: ok in")),
            "{id}: {}",
            run.stderr
        );
    }
    // And so does the app, asked by the test itself.
    let body = r#"{"zen":"test"}"#;
    assert_eq!(sb.webhook_status(&new, body), "200");
    assert_eq!(sb.webhook_status(&old, body), "401");
    let all = String::from_utf8_lossy(&run.all_bytes()).into_owned();
    assert!(!all.contains(&new) && !all.contains(&old), "a key leaked");
    assert_no_signature_of(&all, &[&new, &old]);
}

/// No signature the run made with a key (of its own delivery body) reached its output.
fn assert_no_signature_of(all: &str, keys: &[&str]) {
    let body = r#"{"zen":"runbook: webhook key rotation check","hook_id":0}"#;
    for key in keys {
        let mac = runbook::state::hmac_sha256(key.as_bytes(), body.as_bytes());
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!all.contains(&hex), "a webhook signature was printed");
    }
}

/// The runner token rotates, the runner's call with the new token is accepted and with the old
/// one refused, by the run's own checks and by the app asked directly.
#[test]
fn runner_token_rotates_and_only_the_new_token_is_accepted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let name = "/musehub/sandbox/RUNNER_TOKEN";
    let old = ssm_value(name);
    assert_eq!(
        sb.runner_status(&old),
        "200",
        "precondition: the app runs with SSM's token"
    );
    let run = shipped(&sb)
        .args(&["run", "runner-token", "--env", "sandbox", "--yes"])
        .run();
    run.assert_code(0);
    let new = ssm_value(name);
    assert_ne!(new, old);
    assert_eq!(sb.app_env("RUNNER_TOKEN"), new, "deployed");
    for id in ["verify_new_token", "old_token_refused"] {
        assert!(
            run.stderr.contains(&format!("{id}: ok in")),
            "{id}: {}",
            run.stderr
        );
    }
    assert_eq!(sb.runner_status(&new), "200");
    assert_eq!(sb.runner_status(&old), "401");
    assert_eq!(
        sb.runner_status(&format!("{new}0")),
        "401",
        "a wrong token is refused"
    );
    let all = String::from_utf8_lossy(&run.all_bytes()).into_owned();
    assert!(!all.contains(&new) && !all.contains(&old), "a token leaked");
}

/// The checks the runbooks make at a consumer tell a right value from a wrong one: the same
/// requests, with SSM's live values and with wrong ones, against the app and the R2 stand-in.
#[test]
fn consumer_checks_pass_with_the_live_value_and_fail_with_a_wrong_one() {
    // The rotations above change these values and redeploy the app: a check made in the
    // middle of one would judge a value SSM no longer holds, or find the app restarting.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let runbook = r#"version: 1
name: consumers
summary: The consumer checks of the rotations, with a value to try
inputs:
  which: { description: live or wrong, choices: [live, wrong] }
steps:
  - id: webhook_key
    ssm.get: { name: "{{ env.ssm_prefix }}/WEBHOOK_SECRET_KEY" }
  - id: runner_token
    ssm.get: { name: "{{ env.ssm_prefix }}/RUNNER_TOKEN" }
  - id: r2_id
    ssm.get: { name: "{{ env.ssm_prefix }}/R2_ACCESS_KEY_ID" }
  - id: r2_secret
    ssm.get: { name: "{{ env.ssm_prefix }}/R2_SECRET_ACCESS_KEY" }
  - id: webhook
    on_failure: continue
    http.request:
      method: POST
      via: app
      url: "{{ env.webhook_url }}"
      ca_file: "{{ env.app_ca_file }}"
      headers:
        X-Hub-Signature-256: "sha256={{ 'ping' | hmac_sha256(steps.webhook_key.value ~ ('x' if inputs.which == 'wrong' else '')) }}"
      body: ping
      expect_status: 200
  - id: runner
    on_failure: continue
    http.request:
      method: GET
      via: app
      url: "{{ env.runner_url }}"
      ca_file: "{{ env.app_ca_file }}"
      headers: { Authorization: "Bearer {{ steps.runner_token.value }}{{ 'x' if inputs.which == 'wrong' else '' }}" }
      expect_status: 200
  - id: r2
    on_failure: continue
    http.request:
      method: GET
      via: app
      url: "{{ env.r2_endpoint }}/{{ env.r2_bucket }}?list-type=2&max-keys=1"
      aws_sigv4:
        access_key_id: "{{ steps.r2_id.value }}"
        secret_access_key: "{{ steps.r2_secret.value }}{{ 'x' if inputs.which == 'wrong' else '' }}"
        region: "{{ env.r2_region }}"
      expect_status: 200
"#;
    let secrets: Vec<String> = [
        "WEBHOOK_SECRET_KEY",
        "RUNNER_TOKEN",
        "R2_ACCESS_KEY_ID",
        "R2_SECRET_ACCESS_KEY",
    ]
    .iter()
    .map(|n| ssm_value(&format!("/musehub/sandbox/{n}")))
    .collect();
    let t = common::Test::new()
        .with_sandbox(&sb)
        .runbook("consumers", runbook);
    let live = t
        .then(&[
            "run",
            "consumers",
            "--env",
            "sandbox",
            "--yes",
            "--input",
            "which=live",
        ])
        .run();
    live.assert_code(0);
    assert!(
        live.stderr.contains("(7 ok, 0 failed, 0 skipped)"),
        "{}",
        live.stderr
    );
    for id in ["webhook", "runner", "r2"] {
        assert!(
            live.stderr.contains(&format!("{id}: ok in")),
            "{id}: {}",
            live.stderr
        );
    }
    let wrong = t
        .then(&[
            "run",
            "consumers",
            "--env",
            "sandbox",
            "--yes",
            "--input",
            "which=wrong",
        ])
        .run();
    // `on_failure: continue`: each check fails on its own, and the run goes on to the next.
    assert!(
        wrong.stderr.contains("(4 ok, 3 failed, 0 skipped)"),
        "{}",
        wrong.stderr
    );
    for (id, why) in [
        ("webhook", "401 Unauthorized"),
        ("runner", "401 Unauthorized"),
        (
            "r2",
            "403 Forbidden; the store says `SignatureDoesNotMatch`",
        ),
    ] {
        assert!(
            wrong.stderr.contains(&format!("unexpected answer: {why}")),
            "{id}: {}",
            wrong.stderr
        );
    }
    let all = [live.all_bytes(), wrong.all_bytes()].concat();
    for s in &secrets {
        assert!(!common::contains(&all, s), "a live secret was printed");
    }
}

#[test]
fn the_example_ci_workflow_is_valid_yaml_running_check() {
    let text = std::fs::read_to_string(repo().join("examples/github-check.yml")).unwrap();
    let node = runbook::load::yaml::parse(&text).expect("valid YAML");
    assert!(node.get("jobs").is_some());
    assert!(text.contains("runbook check --format github"));
}

/// The secret canary of a whole rotation: the new password — raw, base64- and URL-encoded —
/// is in no byte the tool wrote (stdout, JSON events, stderr, the finished journal, the event
/// log, the audit log) and in no local process's command line sampled during the run.
#[test]
fn a_rotation_leaves_no_trace_of_the_secret_in_any_output_file_or_argv() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let old = ssm_value("/musehub/sandbox/DB_PASSWORD");
    let sampler = common::ArgvSampler::start();
    let run = shipped(&sb)
        .args(&[
            "run",
            "db-password",
            "--env",
            "sandbox",
            "--yes",
            "--output",
            "json",
        ])
        .run();
    let argv = sampler.finish();
    run.assert_code(0);
    let new = ssm_value("/musehub/sandbox/DB_PASSWORD");
    assert!(run.stdout.lines().count() > 10, "JSON events were written");
    assert!(run.state.join("audit.jsonl").exists());
    use base64::Engine;
    let forms = |s: &str| {
        vec![
            s.to_string(),
            base64::engine::general_purpose::STANDARD.encode(s),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s),
            s.bytes().map(|b| format!("%{b:02X}")).collect::<String>(),
        ]
    };
    let all = run.all_bytes();
    for secret in [&new, &old] {
        for form in forms(secret) {
            assert!(
                !common::contains(&all, &form),
                "a form of a password is in the tool's output or files"
            );
            assert!(
                !argv.iter().any(|a| common::contains(a, &form)),
                "a form of a password is in a process's command line"
            );
        }
    }
}
