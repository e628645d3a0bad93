//! Step-by-step and partial runs over the real binary: `--step` in a pseudo-terminal (run,
//! stop, continue), `--from` and `--only` (skipped steps reported, references to outputs of
//! steps that will not run refused before anything runs), and a resume of a partial run that
//! stays partial.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::Test;
use common::pty::Pty;

/// Enter as a terminal sends it in raw mode.
const ENTER: &str = "\r";

/// Three local steps; the third reads the first's output.
const THREE: &str = r#"
    version: 1
    name: three
    summary: Three local steps
    steps:
      - id: first
        generate: { format: hex }
      - id: second
        generate: { format: hex }
      - id: third
        title: "after {{ steps.first.value | length }} hex digits"
        generate: { format: hex }
"#;

fn three() -> Test {
    Test::new().with_repo_environments().runbook("three", THREE)
}

/// The `--output json` events of a run.
fn events(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn skipped_reason(out: &str, id: &str) -> Option<String> {
    events(out)
        .into_iter()
        .find(|e| e["event"] == "step_skipped" && e["id"] == id)
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
}

fn ran(out: &str, id: &str) -> bool {
    events(out)
        .iter()
        .any(|e| e["event"] == "step_started" && e["id"] == id)
}

#[test]
fn from_a_step_skips_the_earlier_ones_as_not_selected() {
    let t = Test::new().with_repo_environments().runbook(
        "three",
        &THREE.replace(
            r#"title: "after {{ steps.first.value | length }} hex digits""#,
            r#"title: "after {{ steps.second.value | length }} hex digits""#,
        ),
    );
    let run = t
        .args(&["run", "three", "--env", "sandbox", "--from", "second"])
        .args(&["--output", "json"])
        .run();
    run.assert_code(0);
    assert_eq!(
        skipped_reason(&run.stdout, "first").as_deref(),
        Some("not selected")
    );
    assert!(!ran(&run.stdout, "first"));
    assert_eq!(run.finished("second")["status"], "ok");
    assert_eq!(run.finished("third")["status"], "ok");
    let end = events(&run.stdout).pop().unwrap();
    assert_eq!(end["event"], "run_finished");
    assert_eq!(
        (end["ok"].as_u64(), end["skipped"].as_u64()),
        (Some(2), Some(1))
    );
    // Said before the run, on stderr (stdout is only JSON).
    assert!(
        run.stderr
            .contains("warning: partial run: `first` will not run (not selected)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_selected_step_that_reads_an_unselected_output_is_refused_before_anything_runs() {
    let t = three();
    let run = t.again(&["run", "three", "--env", "sandbox", "--from", "second"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("step `third` reads `steps.first.value`, but step `first` will not run"),
        "{}",
        run.stderr
    );
    assert!(!t.state_dir().join("runs").exists(), "nothing may run");

    let only = three()
        .args(&["run", "three", "--env", "sandbox", "--only", "second,third"])
        .run();
    only.assert_code(2);
    assert!(
        only.stderr.contains("`steps.first.value`"),
        "{}",
        only.stderr
    );
}

#[test]
fn only_runs_just_the_named_steps() {
    let run = three()
        .args(&["run", "three", "--env", "sandbox", "--only", "second"])
        .args(&["--output", "json"])
        .run();
    run.assert_code(0);
    assert!(ran(&run.stdout, "second"));
    for id in ["first", "third"] {
        assert!(!ran(&run.stdout, id), "{id} ran");
        assert_eq!(
            skipped_reason(&run.stdout, id).as_deref(),
            Some("not selected")
        );
    }
    // Repeating the flag is the same as a comma list.
    let repeated = three()
        .args(&[
            "run", "three", "--env", "sandbox", "--only", "first", "--only", "third",
        ])
        .args(&["--output", "json"])
        .run();
    repeated.assert_code(0);
    assert!(ran(&repeated.stdout, "first") && ran(&repeated.stdout, "third"));
    assert!(!ran(&repeated.stdout, "second"));
}

#[test]
fn an_unknown_step_is_named() {
    let run = three()
        .args(&["run", "three", "--env", "sandbox", "--from", "secnod"])
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("runbook `three` has no step `secnod`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("first, second, third"),
        "{}",
        run.stderr
    );
}

#[test]
fn step_by_step_needs_a_terminal() {
    let run = three()
        .args(&["run", "three", "--env", "sandbox", "--step"])
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("--step"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("step 1/3"),
        "nothing may run: {}",
        run.stderr
    );
}

/// Answers an HTTP request with 200 on every connection, from a thread.
fn serve_ok(listener: TcpListener) {
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
}

#[test]
fn a_resumed_partial_run_runs_no_step_it_did_not_select() {
    // A port nothing listens on (yet): the selected step fails until the test serves it.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = Test::new().with_repo_environments().runbook(
        "probe",
        &format!(
            r#"
            version: 1
            name: probe
            summary: A probe between two local steps
            steps:
              - id: before
                generate: {{ format: hex }}
              - id: probe
                http.check: {{ url: "http://127.0.0.1:{port}/", request_timeout: 5s }}
              - id: after
                generate: {{ format: hex }}
            "#
        ),
    );
    let first = t.again(&[
        "run",
        "probe",
        "--env",
        "sandbox",
        "--only",
        "probe",
        "--output",
        "json",
        "--no-preflight",
    ]);
    first.assert_code(1);
    assert_eq!(first.finished("probe")["status"], "failed");
    assert!(!ran(&first.stdout, "after"));

    serve_ok(TcpListener::bind(("127.0.0.1", port)).expect("bind the probe's port"));
    let resumed = t.again(&["resume", "--output", "json"]);
    resumed.assert_code(0);
    assert_eq!(resumed.finished("probe")["status"], "ok");
    for id in ["before", "after"] {
        assert!(!ran(&resumed.stdout, id), "{id} ran on resume");
        assert_eq!(
            skipped_reason(&resumed.stdout, id).as_deref(),
            Some("not selected")
        );
    }
    // The audit says the run was partial.
    let audit = std::fs::read_to_string(t.state_dir().join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["selected"], serde_json::json!(["probe"]));
}

#[test]
fn step_by_step_asks_before_each_step_until_continue() {
    let t = three().args(&["run", "three", "--env", "sandbox", "--step"]);
    let mut p = Pty::spawn(&t);
    p.expect("Run step 1/3 `first`");
    p.send(&format!("y{ENTER}"));
    p.expect("Run step 2/3 `second`");
    p.send(&format!("c{ENTER}"));
    p.expect("done");
    let code = p.finish();
    let out = p.output();
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("Run step 3/3"),
        "asked after continue:\n{out}"
    );
    assert!(out.contains("3 ok"), "{out}");
}

#[test]
fn answering_no_stops_the_run_as_declined() {
    let t = three().args(&["run", "three", "--env", "sandbox", "--step"]);
    let mut p = Pty::spawn(&t);
    p.expect("Run step 1/3 `first`");
    // Anything but y, n or c is asked again.
    p.send(&format!("maybe{ENTER}"));
    p.expect("answer y, n or c");
    p.send(&format!("y{ENTER}"));
    p.expect("Run step 2/3 `second`");
    p.send(&format!("n{ENTER}"));
    let code = p.finish();
    let out = p.output();
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("stopped before step `second`"), "{out}");
    assert!(out.contains("1 ok"), "{out}");

    // Nothing was changed elsewhere before the decline: the run is over, its secrets erased,
    // and a new run starts from the first step (not refused as a second unfinished one).
    assert!(
        out.contains("nothing was changed elsewhere before the decline"),
        "{out}"
    );
    t.again(&["resume", "--output", "json"]).assert_code(2);
    let again = t.again(&["run", "three", "--env", "sandbox", "--output", "json"]);
    again.assert_code(0);
    assert!(ran(&again.stdout, "first") && ran(&again.stdout, "third"));
}

/// `--dry-run` shows the whole plan: with a selection it would pass one the run refuses (a
/// step reading an output of a step that does not run), so it does not take one.
#[test]
fn a_dry_run_does_not_take_a_selection_it_could_not_judge() {
    for sel in [&["--only", "second"][..], &["--from", "second"]] {
        let mut args = vec!["run", "three", "--env", "sandbox", "--dry-run"];
        args.extend_from_slice(sel);
        let run = three().args(&args).run();
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
        assert!(!run.stdout.contains("Plan:"), "{}", run.stdout);
    }
}
