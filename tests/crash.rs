//! Crash safety: `db-password` on the sandbox is killed with SIGKILL at every step boundary and
//! in the middle of every step; each time `runbook resume` finishes the rotation, and then SSM,
//! the live database password and the app's `.env` agree, the app answers, and no finished
//! side-effect step ran twice. Prints the matrix.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Test, db_login, masters_of, shipped, ssm_value};

/// Run `db-password` and SIGKILL it when the event `event` of step `id` appears. Returns
/// whether the kill happened before the run ended, and the killed process's id.
fn run_and_kill(t: &Test, event: &str, id: &str) -> (bool, u32) {
    let mut cmd = t.command();
    cmd.args([
        "run",
        "db-password",
        "--env",
        "sandbox",
        "--yes",
        "--output",
        "json",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if e["event"] == event && e["id"] == id {
            child.kill().unwrap(); // SIGKILL: no cleanup, no journal end record
            killed = true;
            break;
        }
    }
    let _ = child.wait();
    (killed, pid)
}

/// The steps the journal of the (only) run says were running when it died, and finished.
fn journal_state(t: &Test) -> (Vec<String>, Vec<String>) {
    let runs = t.state_dir().join("runs");
    let mut running = Vec::new();
    let mut done = Vec::new();
    for f in common::walk(&runs)
        .into_iter()
        .filter(|f| f.ends_with("journal.jsonl"))
    {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            if r["rec"] != "step" {
                continue;
            }
            let id = r["id"].as_str().unwrap().to_string();
            if r["status"] == "running" {
                running.push(id);
            } else {
                running.retain(|x| *x != id);
                done.push(id);
            }
        }
    }
    (running, done)
}

/// The run ended as done (its journal has the end record).
fn ended_done(t: &Test) -> bool {
    common::walk(&t.state_dir().join("runs"))
        .into_iter()
        .filter(|f| f.ends_with("journal.jsonl"))
        .any(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .any(|l| l.contains(r#""rec":"end","status":"done""#))
        })
}

#[test]
fn db_password_survives_sigkill_at_every_step_boundary_and_mid_step() {
    let sb = common::sandbox();
    let steps = [
        "current",
        "new_password",
        "alter_role",
        "store",
        "redeploy",
        "verify",
    ];
    let mut matrix = vec![format!(
        "{:<28} {:<22} {:<8} {:>7}  result",
        "killed at", "in flight", "resume", "deploys"
    )];
    let mut failures = Vec::new();
    // Killed when a step starts, when it finishes, and — for the redeploy — half-way through
    // its remote script (at its first line of output, after secrets.sh ran, before deploy.sh).
    let mut positions: Vec<(&str, &str, &str)> = Vec::new();
    for id in steps {
        positions.push(("step_started", "during", id));
        if id == "redeploy" {
            positions.push(("step_progress", "mid-script", id));
        }
        positions.push(("step_finished", "after", id));
    }
    {
        for (event, label, id) in positions {
            let t = shipped(&sb);
            let before = sb.deploys();
            let (killed, pid) = run_and_kill(&t, event, id);
            let (in_flight, _) = journal_state(&t);
            // A kill after the last step can land after the run already ended: nothing to resume.
            let ended = ended_done(&t);
            let resumed = if ended {
                t.again(&["runs"])
            } else {
                t.again(&["resume", "--yes"])
            };
            let after = sb.deploys();
            let ssm = ssm_value("/musehub/sandbox/DB_PASSWORD");
            let redeploy_repeated = in_flight.iter().any(|s| s == "redeploy");
            let mut problems = Vec::new();
            if !killed {
                problems.push("the run ended before the kill".to_string());
            }
            // The next run stops the SSH masters the killed one left behind.
            if !ended && masters_of(pid) > 0 {
                problems.push("the killed run's SSH master outlived the resume".into());
            }
            if resumed.code != 0 {
                problems.push(format!(
                    "resume exited {}: {}",
                    resumed.code, resumed.stderr
                ));
            }
            if sb.app_env("DB_PASSWORD") != ssm {
                problems.push(".env differs from SSM".into());
            }
            if !db_login(&ssm) {
                problems.push("the database refuses the SSM password".into());
            }
            if sb.explore_status() != "200" {
                problems.push("/explore is not 200".into());
            }
            let max = if redeploy_repeated { 2 } else { 1 };
            if after - before == 0 || after - before > max {
                problems.push(format!(
                    "{} deploys (expected 1{})",
                    after - before,
                    if max == 2 { " or 2" } else { "" }
                ));
            }
            let all = String::from_utf8_lossy(&resumed.all_bytes()).into_owned();
            if all.contains(&ssm) {
                problems.push("the new password is in the tool's output or files".into());
            }
            matrix.push(format!(
                "{:<28} {:<22} {:<8} {:>7}  {}",
                format!("{label} {id}"),
                if in_flight.is_empty() {
                    "-".to_string()
                } else {
                    in_flight.join(",")
                },
                if ended {
                    "(done)".to_string()
                } else {
                    resumed.code.to_string()
                },
                after - before,
                if problems.is_empty() {
                    "ok".to_string()
                } else {
                    problems.join("; ")
                }
            ));
            if !problems.is_empty() {
                failures.push(format!("{label} {id}"));
            }
        }
    }
    println!("{}", matrix.join("\n"));
    assert!(
        failures.is_empty(),
        "failed positions: {failures:?}\n{}",
        matrix.join("\n")
    );
}
