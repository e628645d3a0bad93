//! The CLI over the real binary: schemas in sync, shipped runbooks valid, plans offline,
//! inputs, exit codes, and planted secrets never printed.

mod common;

use common::{Test, repo};
use runbook::engine::event::Event;

#[test]
fn committed_schemas_match_the_generated_ones() {
    for (which, file) in [
        ("runbook", "schemas/runbook.v1.json"),
        ("environments", "schemas/environments.v1.json"),
    ] {
        let run = Test::new().args(&["schema", which]).run();
        run.assert_code(0);
        let path = repo().join(file);
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &run.stdout).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == run.stdout,
            "{file} is stale: run `UPDATE_SCHEMAS=1 cargo test --test cli committed_schemas` and commit it"
        );
        let v: serde_json::Value = serde_json::from_str(&committed).unwrap();
        assert!(v["$schema"].as_str().unwrap().contains("2020-12"));
    }
}

#[test]
fn every_shipped_runbook_passes_check_and_carries_the_schema_modeline() {
    let dir = repo().join("runbooks");
    let files = common::walk(&dir).len();
    Test::new()
        .args(&["check", dir.to_str().unwrap()])
        .stderr(&format!("checked {files} file(s): ok\n"))
        .success();
    for f in common::walk(&dir) {
        let text = std::fs::read_to_string(&f).unwrap();
        let which = if f.ends_with("environments.yaml") {
            "environments"
        } else {
            "runbook"
        };
        assert!(
            text.starts_with(&format!(
                "# yaml-language-server: $schema=../schemas/{which}.v1.json\n"
            )),
            "{} lacks the schema modeline",
            f.display()
        );
    }
}

const ROTATE: &str = r#"
    version: 1
    name: rotate
    summary: Make a secret and hand it to a person
    inputs:
      token: { description: An API token, secret: true }
      reason: { description: Why now, choices: [scheduled, compromise], default: scheduled }
    steps:
      - id: new_key
        generate: { format: base64url, bytes: 24 }
      - id: tell
        manual.confirm:
          instructions: "Paste {{ steps.new_key.value }} and {{ inputs.token }} for {{ inputs.reason }}"
          unattended: skip
"#;

/// What `plan` and `run` of [`ROTATE`] say first: its manual step shows secrets, and nobody
/// would see them when nobody attends (a warning; the run goes on).
const ROTATE_WARNING: &str = "
    runbook::skip-shows-secret

      ⚠ `instructions` shows the secret `inputs.token`, and the step is `unattended: skip`
        ╭─[runbooks/rotate.yaml:12:21]
     11 │     manual.confirm:
     12 │       instructions: \"Paste {{ steps.new_key.value }} and {{ inputs.token }} for {{ inputs.reason }}\"
        ·                     ────────────────────────────────────────┬───────────────────────────────────────
        ·                                                             ╰── shown to nobody when nobody attends
     13 │       unattended: skip
        ╰────
      help: a run with no terminal would mask it and erase it when it ends, so the person who does
            this later never sees it; remove `unattended: skip`, or say where to find the value (its
            SSM parameter) instead of showing it
";

/// [`ROTATE_WARNING`], then `rest`.
fn after_rotate_warning(rest: &str) -> String {
    rotate_warning() + &common::expected(rest)
}

fn rotate_warning() -> String {
    common::unindent(ROTATE_WARNING).trim_end().to_string() + "\n"
}

#[test]
fn plan_works_without_any_network() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("rotate", ROTATE);
    let mut c = std::process::Command::new("unshare");
    c.arg("-n")
        .arg(common::BIN)
        .arg("--dir")
        .arg(t.runbooks_dir());
    c.args([
        "plan",
        "rotate",
        "--env",
        "production",
        "--input",
        "reason=compromise",
    ]);
    c.env("RUNBOOK_INPUT_TOKEN", "tok-PLANTED-plan-1234");
    let out = c.output().expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Plan: rotate on production (protected)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("⟨steps.new_key.value⟩"),
        "unknown values are shown as such: {stdout}"
    );
    assert!(
        stdout.contains("and •••••• for compromise"),
        "secret inputs are masked: {stdout}"
    );
    assert!(!stdout.contains("PLANTED"), "{stdout}");
}

#[test]
fn a_gated_runbook_without_a_terminal_is_refused_before_any_step() {
    let t = Test::new().with_repo_environments().runbook(
        "gated",
        r#"
        version: 1
        name: gated
        summary: Has a gate
        steps:
          - id: key
            generate: { format: hex }
          - id: apply
            confirm: Apply it?
            generate: { format: hex }
        "#,
    );
    let run = t
        .args(&["run", "gated", "--env", "staging"])
        .stderr(
            "
            runbook::needs-terminal

              × `gated` has 1 gate(s) or manual step(s) and there is no terminal to ask on
              help: run it in a terminal, or pass --yes to approve every gate (see `runbook plan` first)
            ",
        )
        .status(2);
    assert!(
        !run.state.join("runs").exists(),
        "nothing may run, not even a journal"
    );
}

#[test]
fn missing_input_off_a_terminal_is_an_error_naming_it() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("rotate", ROTATE);
    // A secret input points at the env var.
    t.args(&["run", "rotate", "--env", "sandbox", "--yes"])
        .stderr(&after_rotate_warning(
            "
            runbook::missing-input

              × missing input `token` (An API token)
              help: set RUNBOOK_INPUT_TOKEN in the environment (a secret should not be on the command line);
                    without a terminal nobody can be asked
            ",
        ))
        .status(2);
}

#[test]
fn bad_inputs_are_refused_with_help() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("rotate", ROTATE);
    t.then(&["plan", "rotate", "--env", "sandbox", "--input", "reasn=x"])
        .stderr(&after_rotate_warning(
            "
            runbook::unknown-input

              × runbook `rotate` has no input `reasn`
              help: did you mean `reason`?
            ",
        ))
        .status(2);
    t.then(&[
        "plan",
        "rotate",
        "--env",
        "sandbox",
        "--input",
        "reason=whim",
    ])
    .stderr(&after_rotate_warning(
        "
            runbook::bad-input

              × `whim` is not a choice of input `reason`
              help: choose one of: scheduled, compromise
            ",
    ))
    .status(2);
}

#[test]
fn unknown_runbook_and_environment_say_what_exists() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("rotate", ROTATE);
    t.then(&["plan", "rotat", "--env", "sandbox"])
        .stderr(
            "
            runbook::no-such-runbook

              × no runbook named `rotat` in [TMP]/runbooks
              help: did you mean `rotate`?
            ",
        )
        .status(2);
    t.then(&["plan", "rotate", "--env", "prod"])
        .stderr(&after_rotate_warning(
            "
            runbook::unknown-env

              × no environment `prod`
              help: did you mean `production`?
            ",
        ))
        .status(2);
}

#[test]
fn planted_secrets_never_appear_in_any_output_or_file() {
    let planted = "tok-PLANTED-9f8e7d6c";
    let t = Test::new()
        .with_repo_environments()
        .runbook("rotate", ROTATE)
        .env("RUNBOOK_INPUT_TOKEN", planted)
        .args(&["run", "rotate", "--env", "sandbox", "--yes"]);
    // The generated value is unknown to the test: read it nowhere, but prove the mask was used
    // where it would have been printed.
    let run = t
        .stderr(&after_rotate_warning(
            "
            [TIME] run [RUN-ID]: rotate on sandbox, 2 steps
            [TIME] step 1/2 new_key: generate 24 random bytes as base64url
            [TIME] step 1/2 new_key: ok in [DURATION]
            [TIME] manual step tell: NOT DONE by a person (nobody: --yes, no terminal); it is left to do
            [TIME]   tell: Paste •••••• and •••••• for scheduled
            [TIME] step 2/2 tell: skipped (not done by a person: nobody attends this run; outstanding)
            [TIME] run [RUN-ID]: done in [DURATION] (1 ok, 0 failed, 1 skipped)
              1 manual step not done by a person, still to do by hand:
                tell: operator: Paste •••••• and •••••• for scheduled
            ",
        ))
        .success();
    let all = run.all_bytes();
    let hay = String::from_utf8_lossy(&all);
    assert!(!hay.contains(planted), "the planted secret leaked");
    use base64::Engine;
    assert!(!hay.contains(&base64::engine::general_purpose::STANDARD.encode(planted)));
    // JSON output too.
    let t = Test::new()
        .with_repo_environments()
        .runbook("rotate", ROTATE)
        .env("RUNBOOK_INPUT_TOKEN", planted)
        .args(&[
            "run", "rotate", "--env", "sandbox", "--yes", "--output", "json",
        ]);
    let run = t
        .stderr(&rotate_warning())
        .redact(r#""duration_ms":\d+"#, r#""duration_ms":[MS]"#)
        .redact(r#""digest":"[0-9a-f]+""#, r#""digest":"[DIGEST]""#)
        .stdout(
            r#"
            {"ts":"[TIME]","event":"run_started","format":1,"run_id":"[RUN-ID]","runbook":"rotate","env":"sandbox","steps":2,"digest":"[DIGEST]","dry_run":false}
            {"ts":"[TIME]","event":"step_started","index":1,"total":2,"id":"new_key","title":"generate","kind":"generate","action":"generate 24 random bytes as base64url"}
            {"ts":"[TIME]","event":"step_finished","index":1,"total":2,"id":"new_key","status":"ok","duration_ms":[MS],"outputs":{"value":"••••••"}}
            {"ts":"[TIME]","event":"manual","id":"tell","outcome":"not-done-by-a-person","by":"nobody: --yes, no terminal"}
            {"ts":"[TIME]","event":"note","id":"tell","text":"Paste •••••• and •••••• for scheduled"}
            {"ts":"[TIME]","event":"step_skipped","index":2,"total":2,"id":"tell","reason":"not done by a person: nobody attends this run; outstanding"}
            {"ts":"[TIME]","event":"run_finished","run_id":"[RUN-ID]","status":"done","duration_ms":[MS],"ok":1,"failed":0,"skipped":1,"outstanding":[{"id":"tell","text":"operator: Paste •••••• and •••••• for scheduled"}]}
            "#,
        )
        .success();
    // Each line is an event; the generated secret is masked in the outputs of its step.
    let outputs: Vec<serde_json::Value> = run
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StepFinished { id, outputs, .. } if id == "new_key" => {
                Some(serde_json::Value::Object(outputs))
            }
            _ => None,
        })
        .collect();
    assert_eq!(outputs, [serde_json::json!({ "value": "••••••" })]);
    assert!(!String::from_utf8_lossy(&run.all_bytes()).contains(planted));
}

#[test]
fn journal_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = Test::new()
        .with_repo_environments()
        .runbook("rotate", ROTATE)
        .env("RUNBOOK_INPUT_TOKEN", "tok-1234567");
    let run = t
        .args(&["run", "rotate", "--env", "sandbox", "--yes"])
        .run();
    run.assert_code(0);
    let runs = run.state.join("runs");
    assert_eq!(
        std::fs::metadata(&runs).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in common::walk(&runs) {
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            f.display()
        );
    }
}

#[test]
fn help_documents_exit_codes() {
    let run = Test::new().args(&["--help"]).run();
    run.assert_code(0);
    for code in ["0 ", "1 ", "2 ", "3 ", "130"] {
        assert!(run.stdout.contains(code), "{}", run.stdout);
    }
}

#[test]
fn newer_format_version_is_refused_plainly() {
    let t = Test::new().with_repo_environments().runbook(
        "future",
        "version: 2\nname: future\nsummary: From the future\nsteps: []\n",
    );
    t.args(&["check"])
        .stderr(&format!(
            "
            runbook::unsupported-version

              × this runbook is format version 2; this runbook binary ({}) reads version 1
               ╭─[runbooks/future.yaml:1:10]
             1 │ version: 2
               ·          ┬
               ·          ╰── newer than this binary
             2 │ name: future
               ╰────
              help: upgrade runbook to read this file
            checked 2 file(s): 1 error(s), 0 warning(s)
            ",
            env!("CARGO_PKG_VERSION")
        ))
        .status(2);
}

#[test]
fn a_failed_step_stops_the_run_and_a_skipped_step_is_reported() {
    let t = Test::new().with_repo_environments().runbook(
        "skip",
        r#"
        version: 1
        name: skip
        summary: when
        inputs:
          which: { description: Which, choices: [a, b], default: a }
        steps:
          - id: only_b
            when: inputs.which == 'b'
            generate: { format: hex }
          - id: always
            generate: { format: fernet }
        "#,
    );
    let run = t
        .args(&["run", "skip", "--env", "sandbox"])
        .stderr(
            "
            [TIME] run [RUN-ID]: skip on sandbox, 2 steps
            [TIME] step 1/2 only_b: skipped (when: inputs.which == 'b')
            [TIME] step 2/2 always: generate a Fernet key
            [TIME] step 2/2 always: ok in [DURATION]
            [TIME] run [RUN-ID]: done in [DURATION] (1 ok, 0 failed, 1 skipped)
            ",
        )
        .success();
    // What the operator saw is what the run's event log keeps.
    let log: Vec<(String, String)> = run
        .event_log()
        .into_iter()
        .filter_map(|e| match e {
            Event::StepSkipped { id, reason, .. } => Some((id, reason)),
            Event::StepFinished { id, status, .. } => Some((id, format!("{status:?}"))),
            _ => None,
        })
        .collect();
    assert_eq!(
        log,
        [
            ("only_b".into(), "when: inputs.which == 'b'".into()),
            ("always".into(), "Ok".into()),
        ]
    );
}

/// A runbook whose first step fails in a template at run time (a division by an input that is
/// 0; its template is rendered before anything else is decided, even for a manual step nobody
/// attends) and whose second fails at run time with help (a host group only the run knows).
const PLACES: &str = r#"
    version: 1
    name: places
    summary: Failures that say where they are
    inputs:
      n: { description: Divisor, default: "0" }
      group: { description: Hosts, default: nowhere }
    steps:
      - id: hand
        manual.confirm:
          instructions: |
            Ten by n is {{ 10 // (inputs.n | int) }}.
          unattended: skip
      - id: ask
        ssh.exec:
          hosts: "{{ inputs.group }}"
          command: "true"
    "#;

#[test]
fn a_run_time_template_error_points_at_the_template_in_the_file() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("places", PLACES);
    // Line 11 of the file holds the template; column 24 is where `10 // …` begins, as check
    // would point at it.
    t.then(&["run", "places", "--env", "sandbox", "--yes"])
        .stderr(
            "
            [TIME] run [RUN-ID]: places on sandbox, 2 steps
            [TIME] step 1/2 hand: FAILED in [DURATION]: template: invalid operation: unable to calculate 10 // 0
              at runbooks/places.yaml:11:24
            [TIME] run [RUN-ID]: FAILED in [DURATION] (0 ok, 1 failed, 0 skipped, 1 not run): step `hand` failed: template: invalid operation: unable to calculate 10 // 0
            ",
        )
        .status(1);
    // A state directory of its own: the failed run above is unfinished, and a second run
    // beside it would be refused.
    let t = Test::new()
        .with_repo_environments()
        .runbook("places", PLACES);
    let run = t.then(&[
        "run", "places", "--env", "sandbox", "--yes", "--output", "json",
    ]);
    let run = run.run();
    run.assert_code(1);
    let finished = run.finished("hand");
    assert_eq!(finished["at"], "runbooks/places.yaml:11:24", "{finished}");
    assert!(finished.get("help").is_none(), "{finished}");
}

#[test]
fn a_failed_step_says_where_it_is_and_what_to_do_apart_from_its_error() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("places", PLACES);
    t.then(&[
        "run", "places", "--env", "sandbox", "--yes", "--input", "n=2",
    ])
    .stderr(
        "
        [TIME] run [RUN-ID]: places on sandbox, 2 steps
        [TIME] manual step hand: NOT DONE by a person (nobody: --yes, no terminal); it is left to do
        [TIME]   hand: Ten by n is 5.
        [TIME] step 1/2 hand: skipped (not done by a person: nobody attends this run; outstanding)
        [TIME] step 2/2 ask: on group nowhere (1 at a time): true
        [TIME] step 2/2 ask: FAILED in [DURATION]: environment `sandbox` has no host group `nowhere`
          at runbooks/places.yaml:13:9
          help: define it under `environments.sandbox.groups` in environments.yaml; for one host write `host: nowhere` or `hosts: [nowhere]`
        [TIME] run [RUN-ID]: FAILED in [DURATION] (0 ok, 1 failed, 1 skipped): step `ask` failed: environment `sandbox` has no host group `nowhere`
          1 manual step not done by a person, still to do by hand:
            hand: operator: Ten by n is 5.
        ",
    )
    .status(1);
    // The same, as JSON events: the place and the help are fields of their own, and the
    // error holds neither. (In a state directory of its own: the failed run above is
    // unfinished, and a second run beside it would be refused.)
    let t = Test::new()
        .with_repo_environments()
        .runbook("places", PLACES);
    let run = t
        .then(&[
            "run", "places", "--env", "sandbox", "--yes", "--input", "n=2", "--output", "json",
        ])
        .run();
    run.assert_code(1);
    assert_eq!(run.stderr, "");
    let failed: Vec<_> = run
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StepFinished {
                id,
                error,
                detail,
                at,
                help,
                ..
            } if error.is_some() => Some((id, error, detail, at, help)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [(
            "ask".to_string(),
            Some("environment `sandbox` has no host group `nowhere`".to_string()),
            None,
            Some("runbooks/places.yaml:13:9".to_string()),
            Some(
                "define it under `environments.sandbox.groups` in environments.yaml; for one host write `host: nowhere` or `hosts: [nowhere]`"
                    .to_string()
            ),
        )]
    );
}
