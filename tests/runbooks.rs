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

    let t = shipped(&sb).args(&["run", "db-password", "--env", "sandbox", "--yes"]);
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
    let resumed = t.again(&["resume", "--yes"]);
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
    assert!(
        run.stderr.contains("Notify webhook owners"),
        "{}",
        run.stderr
    );
    let all = String::from_utf8_lossy(&run.all_bytes()).into_owned();
    assert!(!all.contains(&new) && !all.contains(&old), "a key leaked");
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
