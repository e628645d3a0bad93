//! The run journal over the real binary: resume after a failure, refusal after a change (and
//! `--force`, recorded), the lock against concurrent runs, the audit record, file modes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{Test, contains};

/// A runbook whose second step runs `command` on the sandbox host.
fn two_steps(command: &str) -> String {
    format!(
        r#"
        version: 1
        name: twostep
        summary: generate, then a command
        inputs:
          token: {{ description: A token, secret: true }}
        steps:
          - id: key
            generate: {{ format: hex, bytes: 24 }}
          - id: cmd
            ssh.exec: {{ host: app, command: "{command}" }}
        "#
    )
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn audit_lines(t: &Test) -> Vec<serde_json::Value> {
    std::fs::read_to_string(t.state_dir().join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_failed_run_resumes_at_the_failed_step_and_never_repeats_a_finished_one() {
    let sb = common::sandbox();
    let planted = "tok-PLANTED-resume-71b2";
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("twostep", &two_steps("exit 3"))
        .env("RUNBOOK_INPUT_TOKEN", planted);
    let first = t.again(&["run", "twostep", "--env", "sandbox"]);
    first.assert_code(1);

    // Unfinished: the journal keeps what a resume needs, privately.
    let runs_dir = t.state_dir().join("runs");
    assert_eq!(mode(&t.state_dir().join("runs")), 0o700);
    for f in common::walk(&runs_dir) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    assert_eq!(mode(&t.state_dir().join("audit.jsonl")), 0o600);
    let listed = t.again(&["runs"]);
    assert!(listed.stdout.contains("failed *"), "{}", listed.stdout);

    // The runbook changed since: refused, nothing ran.
    std::fs::write(
        t.runbooks_dir().join("twostep.yaml"),
        common::unindent(&two_steps("true")),
    )
    .unwrap();
    let refused = t.again(&["resume"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("changed since run"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);

    // --force goes on with the new version, at the failed step; the generated key is reused.
    let resumed = t.again(&["resume", "--force"]);
    resumed.assert_code(0);
    assert!(
        resumed
            .stderr
            .contains("key: skipped (finished before the resume)"),
        "{}",
        resumed.stderr
    );
    assert!(resumed.stderr.contains("cmd: ok"), "{}", resumed.stderr);
    let audit = audit_lines(&t);
    assert_eq!(audit.len(), 2, "one line per run attempt");
    assert_eq!(audit[1]["resumed_with_force"], true);
    assert_eq!(audit[1]["ended"]["status"], "done");
    let key_fp = audit[1]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["output"] == "steps.key.value")
        .unwrap()["fingerprint"]
        .clone();
    assert_eq!(
        audit[0]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["output"] == "steps.key.value")
            .unwrap()["fingerprint"],
        key_fp,
        "the resumed run used the key generated before the failure"
    );

    // Finished: no secret anywhere, the journal included; the token only as a fingerprint,
    // keyed with the state directory's key.
    let key: [u8; 32] = std::fs::read(t.state_dir().join("fingerprint.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let fp = runbook::state::Fingerprints::with_key(key)
        .of(&serde_json::json!(planted))
        .unwrap();
    assert!(
        audit[1]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["input"] == "token" && s["fingerprint"] == fp)
    );
    assert!(
        !contains(&resumed.all_bytes(), planted),
        "the planted secret survived the run"
    );
    let again = t.again(&["resume"]);
    again.assert_code(2);
    assert!(
        again.stderr.contains("no unfinished run"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_second_concurrent_run_is_refused_naming_the_holder() {
    let sb = common::sandbox();
    let marker = format!("/tmp/runbook-sandbox/{}", common::unique("lock"));
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook("twostep", &two_steps(&format!("touch {marker}; sleep 3")))
        .env("RUNBOOK_INPUT_TOKEN", "tok-lock-1234");
    let mut first = t.command();
    first
        .args(["run", "twostep", "--env", "sandbox"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = first.spawn().unwrap();
    // Wait until the first run is inside its long step.
    for _ in 0..200 {
        if std::path::Path::new(&marker).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = t.again(&["run", "twostep", "--env", "sandbox"]);
    second.assert_code(2);
    assert!(
        second.stderr.contains("is being run by"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("pid {}", child.id())),
        "{}",
        second.stderr
    );
    assert!(child.wait().unwrap().success());
    let third = t.again(&["run", "twostep", "--env", "sandbox"]);
    third.assert_code(0);
    let _ = std::fs::remove_file(&marker);
}

#[test]
fn a_lock_left_by_a_dead_process_is_taken_over() {
    let t = Test::new().with_repo_environments().runbook(
        "gen",
        r#"
        version: 1
        name: gen
        summary: one step
        steps:
          - id: key
            generate: { format: hex }
        "#,
    );
    let locks = t.state_dir().join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    // pid 2^22 + 1 is above the kernel's limit: certainly not running.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        locks.join("gen@sandbox.lock"),
        format!(
            r#"{{"user":"x","host":"{}","pid":4194305,"run_id":"old","started":"then"}}"#,
            host.trim()
        ),
    )
    .unwrap();
    t.again(&["run", "gen", "--env", "sandbox"]).assert_code(0);
    assert!(
        !locks.join("gen@sandbox.lock").exists(),
        "the lock is released at the end"
    );
}

/// Put a String parameter straight into the sandbox's SSM (as another machine would).
fn ssm_put(name: &str, value: &str) {
    let body =
        serde_json::json!({ "Name": name, "Value": value, "Type": "String", "Overwrite": true })
            .to_string();
    let st = std::process::Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-X", "POST", "http://127.0.0.1:5000/"])
        .args(["-H", "X-Amz-Target: AmazonSSM.PutParameter", "-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["-d", &body])
        .status()
        .unwrap();
    assert!(st.success());
}

fn ssm_exists(name: &str) -> bool {
    let body = serde_json::json!({ "Name": name }).to_string();
    std::process::Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-X", "POST", "http://127.0.0.1:5000/"])
        .args(["-H", "X-Amz-Target: AmazonSSM.GetParameter", "-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["-d", &body])
        .status()
        .unwrap()
        .success()
}

/// An environment with `shared_lock:` keeps operators on other machines apart: a lock held
/// in SSM by someone else refuses the run naming them; an expired one is taken over; the
/// lock is gone after the run.
#[test]
fn a_shared_lock_in_ssm_keeps_other_machines_apart() {
    let sb = common::sandbox();
    let prefix = format!("/runbook-test/{}", common::unique("locks"));
    let t = Test::new()
        .with_sandbox(&sb)
        .environments(&format!(
            r#"
            version: 1
            environments:
              team:
                aws: {{ region: us-east-1, endpoint: "http://127.0.0.1:5000" }}
                shared_lock: {{ parameter_prefix: "{prefix}", expires_after: 1h }}
            "#
        ))
        .runbook(
            "gen",
            r#"
            version: 1
            name: gen
            summary: one step
            steps:
              - id: key
                generate: { format: hex }
            "#,
        );
    let lock = format!("{prefix}/gen.team");
    let far = 4_000_000_000u64;
    ssm_put(
        &lock,
        &format!(
            r#"{{"user":"alice","host":"laptop-7","pid":4242,"run_id":"r-1","started":"then","expires":{far}}}"#
        ),
    );
    let refused = t.again(&["run", "gen", "--env", "team"]);
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("is being run by alice@laptop-7 (pid 4242, run r-1"),
        "{}",
        refused.stderr
    );
    assert!(
        !t.state_dir().join("runs").exists(),
        "a refused run leaves no journal"
    );

    ssm_put(
        &lock,
        r#"{"user":"bob","host":"gone","pid":1,"run_id":"r-0","started":"long ago","expires":1}"#,
    );
    t.again(&["run", "gen", "--env", "team"]).assert_code(0);
    assert!(!ssm_exists(&lock), "the lock is released after the run");
}

/// A run killed while a step was running, and the journal's in-flight step.
fn killed_during(t: &Test, id: &str) {
    use std::io::BufRead;
    let mut cmd = t.command();
    cmd.args(["run", "reads", "--env", "sandbox", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let e: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if e["event"] == "step_started" && e["id"] == id {
            child.kill().unwrap(); // SIGKILL: the step stays "running" in the journal
            break;
        }
    }
    let _ = child.wait();
}

/// A step its author declared read-only is run again when a run died while it was running;
/// the same command without the declaration is not repeated blindly.
#[test]
fn an_in_flight_read_only_step_is_run_again_on_resume() {
    let sb = common::sandbox();
    for read_only in [true, false] {
        let t = Test::new().with_sandbox(&sb).runbook(
            "reads",
            &format!(
                r#"
                version: 1
                name: reads
                summary: a slow look at the host
                steps:
                  - id: look
                    read_only: {read_only}
                    ssh.exec: {{ host: app, command: "sleep 2; uname" }}
                "#
            ),
        );
        killed_during(&t, "look");
        let resume = t.again(&["resume"]);
        if read_only {
            resume.assert_code(0);
        } else {
            resume.assert_code(2);
            assert!(
                resume.stderr.contains("was running when run"),
                "{}",
                resume.stderr
            );
        }
    }
}
