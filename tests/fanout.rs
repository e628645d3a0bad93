//! `ssh.exec` on several hosts against the sandbox's sshd, whose fleet is many aliases of the
//! one server (each alias gets its own master connection): per-host outputs, `RUNBOOK_HOST`,
//! `max_failures`, rolling `batch`es, and whether `parallel` really overlaps the commands.

mod common;

use std::path::{Path, PathBuf};

use common::{Run, Sandbox, Test, sandbox, unique};

/// An environments file whose `sandbox` has hosts `h01`..`hNN`, all the sandbox's sshd, and a
/// group `fleet` of all of them.
fn fleet(sb: &Sandbox, n: usize) -> String {
    let mut y = String::from("version: 1\nenvironments:\n  sandbox:\n    hosts:\n");
    for i in 1..=n {
        y.push_str(&format!(
            "      h{i:02}: {{ address: {}, port: {}, user: {}, key_file: {}, known_hosts: {} }}\n",
            sb.get("SANDBOX_SSH_HOST"),
            sb.get("SANDBOX_SSH_PORT"),
            sb.get("SANDBOX_SSH_USER"),
            sb.get("SANDBOX_SSH_KEY"),
            sb.get("SANDBOX_SSH_KNOWN_HOSTS"),
        ));
    }
    let names: Vec<String> = (1..=n).map(|i| format!("h{i:02}")).collect();
    y.push_str(&format!(
        "    groups:\n      fleet: [{}]\n",
        names.join(", ")
    ));
    y
}

/// A fresh directory under the sandbox's state that the remote commands write into (the
/// sandbox's sshd runs on this machine, so the test reads it directly).
fn scratch(sb: &Sandbox, tag: &str) -> PathBuf {
    let dir = sb.state.join(unique(tag));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(sb: &Sandbox, hosts: usize, step: &str) -> Run {
    let yaml = format!(
        "version: 1\nname: x\nsummary: fan-out\nsteps:\n{}",
        common::unindent(step)
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    Test::new()
        .environments(&fleet(sb, hosts))
        .runbook("x", &yaml)
        .args(&[
            "run",
            "x",
            "--env",
            "sandbox",
            "--yes",
            "--output",
            "json",
            "--no-preflight",
        ])
        .run()
}

/// `(start, end)` in nanoseconds recorded by each host's command, by host.
fn intervals(dir: &Path) -> Vec<(String, u128, u128)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let mut it = text.split_whitespace().map(|t| t.parse::<u128>().unwrap());
            let (a, b) = (it.next().unwrap(), it.next().unwrap());
            (e.file_name().to_string_lossy().into_owned(), a, b)
        })
        .collect();
    v.sort();
    v
}

fn overlapping_pairs(v: &[(String, u128, u128)]) -> usize {
    let mut n = 0;
    for (i, a) in v.iter().enumerate() {
        for b in &v[i + 1..] {
            if a.1 < b.2 && b.1 < a.2 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn ten_hosts_five_at_a_time_give_per_host_outputs() {
    let sb = sandbox();
    let r = run(
        &sb,
        10,
        r#"
        - id: fan
          ssh.exec:
            hosts: fleet
            parallel: 5
            command: 'echo "hello from $RUNBOOK_HOST"; echo "note $RUNBOOK_HOST" >&2'
        - id: after
          ssh.exec:
            host: h01
            command: "echo '{{ steps.fan.hosts.h07.stdout }} / {{ steps.fan.failed | length }}'"
        "#,
    );
    r.assert_code(0);
    let out = &r.finished("fan")["outputs"];
    let hosts = out["hosts"].as_object().unwrap();
    let names: Vec<&str> = hosts.keys().map(String::as_str).collect();
    let expected: Vec<String> = (1..=10).map(|i| format!("h{i:02}")).collect();
    assert_eq!(names, expected, "every host, in the group's order");
    for (h, v) in hosts {
        assert_eq!(v["stdout"], format!("hello from {h}"));
        assert_eq!(v["stderr"], format!("note {h}"));
        assert_eq!(v["exit_code"], 0);
        assert_eq!(v["ok"], true);
    }
    assert_eq!(out["failed"], serde_json::json!([]));
    assert_eq!(
        r.finished("after")["outputs"]["stdout"],
        "hello from h07 / 0"
    );
}

#[test]
fn a_failure_stops_later_batches_and_names_the_host() {
    let sb = sandbox();
    let dir = scratch(&sb, "fanout-batch");
    let r = run(
        &sb,
        6,
        &format!(
            r#"
            - id: roll
              ssh.exec:
                hosts: [h01, h02, h03, h04, h05, h06]
                batch: 2
                parallel: 2
                env: {{ DIR: "{}" }}
                command: |
                  touch "$DIR/$RUNBOOK_HOST"
                  if [ "$RUNBOOK_HOST" = h03 ]; then echo "disk full on h03" >&2; exit 2; fi
            "#,
            dir.display()
        ),
    );
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let f = r.finished("roll");
    let error = f["error"].as_str().unwrap();
    assert!(error.contains("h03 (exit 2)"), "{error}");
    assert!(error.contains("2 not started (h05, h06)"), "{error}");
    let detail = f["detail"].as_str().unwrap();
    assert!(
        detail.contains("h03: the command exited with 2"),
        "{detail}"
    );
    assert!(detail.contains("disk full on h03"), "{detail}");
    let mut ran: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ran.sort();
    // h04 is in h03's batch, so it ran; the third batch never started.
    assert_eq!(ran, ["h01", "h02", "h03", "h04"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failures_within_max_failures_succeed_and_are_listed() {
    let sb = sandbox();
    let r = run(
        &sb,
        4,
        r#"
        - id: fan
          ssh.exec:
            hosts: fleet
            parallel: 2
            max_failures: 1
            command: 'if [ "$RUNBOOK_HOST" = h02 ]; then echo nope >&2; exit 3; fi; echo ok'
        "#,
    );
    r.assert_code(0);
    let out = &r.finished("fan")["outputs"];
    assert_eq!(out["failed"], serde_json::json!(["h02"]));
    assert_eq!(out["hosts"]["h02"]["ok"], false);
    assert_eq!(out["hosts"]["h02"]["exit_code"], 3);
    assert_eq!(out["hosts"]["h02"]["stderr"], "nope");
    assert_eq!(out["hosts"]["h04"]["ok"], true);
    // The step succeeds, but the failed host is said in the run's record, not only in outputs.
    let notes: Vec<String> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "note" && e["id"] == "fan")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        notes,
        ["1 of 4 hosts failed, within max_failures (1): h02 (exit 3)"]
    );

    // One more failure than allowed fails the step, naming both hosts.
    let r = run(
        &sb,
        4,
        r#"
        - id: fan
          ssh.exec:
            hosts: fleet
            max_failures: 1
            command: 'case "$RUNBOOK_HOST" in h01|h03) exit 1;; esac'
        "#,
    );
    assert_ne!(r.code, 0);
    let error = r.finished("fan")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("h01 (exit 1), h03 (exit 1)"),
        "{error}\n{}",
        r.stderr
    );
    assert!(error.contains("max_failures: 1"), "{error}");
}

/// Each host's command records when it started and ended; the test compares the intervals
/// (never wall-clock durations).
fn timed_step(dir: &Path, parallel: u32) -> String {
    format!(
        r#"
        - id: timed
          ssh.exec:
            hosts: fleet
            parallel: {parallel}
            env: {{ DIR: "{}" }}
            command: 'start=$(date +%s%N); sleep 0.3; echo "$start $(date +%s%N)" > "$DIR/$RUNBOOK_HOST"'
        "#,
        dir.display()
    )
}

#[test]
fn parallel_overlaps_and_serial_does_not() {
    let sb = sandbox();
    let dir = scratch(&sb, "fanout-par");
    run(&sb, 5, &timed_step(&dir, 5)).assert_code(0);
    let v = intervals(&dir);
    assert_eq!(v.len(), 5);
    assert!(overlapping_pairs(&v) >= 1, "no two hosts overlapped: {v:?}");
    let _ = std::fs::remove_dir_all(&dir);

    let dir = scratch(&sb, "fanout-ser");
    run(&sb, 5, &timed_step(&dir, 1)).assert_code(0);
    let v = intervals(&dir);
    assert_eq!(v.len(), 5);
    assert_eq!(overlapping_pairs(&v), 0, "one at a time overlapped: {v:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_reports_unknown_group_members_and_bad_fan_out_params() {
    let sb = sandbox();
    let envs = fleet(&sb, 2).replace("fleet: [h01, h02]", "fleet: [h01, h011]");
    let r = Test::new()
        .environments(&envs)
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: bad fan-out
            steps:
              - id: a
                ssh.exec: { hosts: web, command: "true" }
              - id: b
                ssh.exec: { host: h01, hosts: [h02], command: "true" }
              - id: c
                ssh.exec: { hosts: [h01, h09], parallel: 0, command: "true" }
              - id: d
                ssh.exec: { host: h01, batch: 2, command: "true" }
            "#,
        )
        .args(&["check"])
        .run();
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let t = format!("{}{}", r.stdout, r.stderr);
    for needle in [
        "group `fleet` of environment `sandbox` names host `h011`, which it does not have",
        "environments.yaml:8:",
        "did you mean `h01`?",
        "environment `sandbox` has no host group `web`",
        "`host` and `hosts` exclude each other",
        "environment `sandbox` has no host `h09`",
        "`parallel` must be at least 1",
        "`batch` applies only to several hosts",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }
}

// ---------------------------------------------------------------------------------------------
// http.check from several hosts
// ---------------------------------------------------------------------------------------------

#[test]
fn http_check_via_a_list_and_a_group_gives_per_host_outputs() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let r = run(
        &sb,
        3,
        &format!(
            r#"
            - id: list
              http.check: {{ url: "{url}/ok", via: [h01, h02, h03] }}
            - id: group
              http.check: {{ url: "{url}/ok", via: fleet }}
            - id: one
              http.check: {{ url: "{url}/ok", via: h02 }}
            "#
        ),
    );
    r.assert_code(0);
    for id in ["list", "group"] {
        let out = &r.finished(id)["outputs"];
        let hosts = out["hosts"].as_object().unwrap();
        let names: Vec<&str> = hosts.keys().map(String::as_str).collect();
        assert_eq!(names, ["h01", "h02", "h03"], "{id}");
        for v in hosts.values() {
            assert_eq!(v["status"], 200, "{id}");
            assert_eq!(v["ok"], true, "{id}");
        }
        assert_eq!(out["failed"], serde_json::json!([]), "{id}");
    }
    // One host keeps the single-host outputs.
    assert_eq!(r.finished("one")["outputs"]["status"], 200);
}

#[test]
fn http_check_failing_on_one_host_names_it() {
    let sb = sandbox();
    // The hosts are aliases of one server, so the same URL answers alike everywhere, except
    // this one: the first request gets 503, every later one 200. Exactly one host fails.
    let key = unique("via-flaky");
    let r = run(
        &sb,
        3,
        &format!(
            r#"
            - id: probe
              http.check:
                url: "{}/flaky/{key}/1"
                via: fleet
                attempts: 1
            "#,
            sb.get("SANDBOX_HTTP_URL")
        ),
    );
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let f = r.finished("probe");
    let error = f["error"].as_str().unwrap();
    let failed: Vec<&str> = ["h01", "h02", "h03"]
        .into_iter()
        .filter(|h| error.contains(&format!("{h} (503)")))
        .collect();
    assert_eq!(failed.len(), 1, "{error}");
    assert!(error.contains("failed from 1 of 3 hosts"), "{error}");
    let detail = f["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{}: unexpected answer: 503", failed[0])),
        "{detail}"
    );
}

#[test]
fn http_check_reports_unknown_via_hosts_and_outputs_of_the_wrong_form() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let r = Test::new()
        .environments(&fleet(&sb, 2))
        .runbook(
            "x",
            &format!(
                r#"
                version: 1
                name: x
                summary: bad via
                steps:
                  - id: a
                    http.check: {{ url: "{url}/ok", via: [h01, h09] }}
                  - id: b
                    http.check: {{ url: "{url}/ok", via: fleet }}
                  - id: c
                    ssh.exec: {{ host: h01, command: "echo {{{{ steps.b.status }}}}" }}
                "#
            ),
        )
        .args(&["check"])
        .run();
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let t = format!("{}{}", r.stdout, r.stderr);
    for needle in ["environment `sandbox` has no host `h09`", "steps.b.status"] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }
}

#[test]
fn progress_over_many_hosts_is_a_status_not_a_line_per_host() {
    // 20 hosts printing 5 lines each: a line per host and per output line would be 121
    // progress events. The status passes at most once a second, plus the first, failures and
    // the last.
    let sb = sandbox();
    let r = run(
        &sb,
        20,
        r#"
        - id: fan
          ssh.exec:
            hosts: fleet
            parallel: 20
            max_failures: 1
            command: 'for i in 1 2 3 4 5; do echo "line $i"; done; [ "$RUNBOOK_HOST" != h13 ]'
        "#,
    );
    r.assert_code(0);
    let progress: Vec<String> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "step_progress" && e["id"] == "fan")
        .map(|e| e["line"].as_str().unwrap().to_string())
        .collect();
    assert!(
        progress.len() < 20,
        "{} progress events:\n{}",
        progress.len(),
        progress.join("\n")
    );
    assert_eq!(progress.first().unwrap(), "hosts 0/20 done");
    assert!(
        progress
            .iter()
            .any(|l| l.contains("1 failed (h13: exit 1)")),
        "the failure is always shown: {progress:?}"
    );
    assert_eq!(
        progress.last().unwrap(),
        "hosts 20/20 done, 1 failed (h13: exit 1)"
    );
}
