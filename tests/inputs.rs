//! Inputs and approvals on the command line, without a terminal: a secret input is never
//! taken from argv (visible in `ps`, kept in shell history), and a protected environment's
//! approval needs its name.

mod common;

use common::{Test, contains};

const PLANTED: &str = "tok-ARGV-planted-77c3";

fn t() -> Test {
    Test::new()
        .environments(
            r#"
            version: 1
            environments:
              local:
                description: This machine
              vault:
                description: Protected
                protected: true
            "#,
        )
        .runbook(
            "tokened",
            r#"
            version: 1
            name: tokened
            summary: takes a secret token
            inputs:
              token: { description: A token, secret: true }
              reason: { description: Why }
            steps:
              - id: key
                confirm: Go?
                generate: { format: hex }
            "#,
        )
}

/// What a secret given with `--input` gets: the refusal, naming the variable and the prompt,
/// never the value.
const SECRET_REFUSED: &str = "
    runbook::secret-on-command-line

      × input `token` is secret and cannot be given with --input
      help: a command line is visible to every user of the machine (ps) and kept in shell history: set
            RUNBOOK_INPUT_TOKEN in the environment, or leave it out and type it at the hidden prompt
";

#[test]
fn a_secret_input_on_the_command_line_is_refused_without_echoing_it() {
    let t = t();
    for args in [
        vec!["run", "tokened", "--env", "local", "--yes"],
        vec!["plan", "tokened", "--env", "local"],
        vec!["preflight", "tokened", "--env", "local"],
        vec!["run", "tokened", "--env", "local", "--dry-run"],
    ] {
        for given in [
            vec!["--input".to_string(), format!("token={PLANTED}")],
            vec![format!("--input=token={PLANTED}")],
            vec!["-i".to_string(), format!("token={PLANTED}")],
        ] {
            let mut all: Vec<&str> = args.clone();
            all.extend(given.iter().map(String::as_str));
            all.extend(["--input", "reason=test"]);
            let run = t.then(&all).stderr(SECRET_REFUSED).status(2);
            assert!(
                !contains(&run.all_bytes(), PLANTED),
                "{all:?}: the value leaked"
            );
            assert!(!t.state_dir().join("runs").exists(), "nothing ran");
        }
    }
    // The way that is meant: from the environment.
    t.then(&[
        "run", "tokened", "--env", "local", "--yes", "--input", "reason=x",
    ])
    .stderr(
        "
        runbook::missing-input

          × missing input `token` (A token)
          help: set RUNBOOK_INPUT_TOKEN in the environment (a secret should not be on the command line);
                without a terminal nobody can be asked
        ",
    )
    .status(2);
    t.env("RUNBOOK_INPUT_TOKEN", PLANTED)
        .args(&[
            "run", "tokened", "--env", "local", "--yes", "--input", "reason=x",
        ])
        .stderr(
            "
            [TIME] run [RUN-ID]: tokened on local, 1 step
            [TIME] gate key: Go? -> approved by --yes
            [TIME] step 1/1 key: generate 32 random bytes as hex
            [TIME] step 1/1 key: ok in [DURATION]
            [TIME] run [RUN-ID]: done in [DURATION] (1 ok, 0 failed, 0 skipped)
            ",
        )
        .success();
}

#[test]
fn a_protected_environment_needs_its_name_with_yes() {
    let t = t().env("RUNBOOK_INPUT_TOKEN", PLANTED);
    let base = ["run", "tokened", "--env", "vault", "--input", "reason=x"];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend(extra);
        t.then(&a)
    };
    run(&["--yes"])
        .stderr(
            "
            runbook::protected-env

              × `vault` is a protected environment: --yes alone does not approve it
              help: also pass --confirm-env vault (its name, to show the approval was meant), or leave out
                    --yes and type the name at the first gate
            ",
        )
        .status(2);
    run(&["--yes", "--confirm-env", "production"])
        .stderr(
            "
            runbook::confirm-env-mismatch

              × --confirm-env `production` is not the environment of this run (`vault`)
              help: --confirm-env must repeat the environment's name: --confirm-env vault
            ",
        )
        .status(2);
    // A wrong name is refused even where it would not be needed.
    let mut a = base.to_vec();
    a[3] = "local";
    a.extend(["--yes", "--confirm-env", "vault"]);
    t.then(&a)
        .stderr(
            "
            runbook::confirm-env-mismatch

              × --confirm-env `vault` is not the environment of this run (`local`)
              help: --confirm-env must repeat the environment's name: --confirm-env local
            ",
        )
        .status(2);
    assert!(!t.state_dir().join("runs").exists(), "nothing ran");
    run(&["--yes", "--confirm-env", "vault"])
        .stderr(
            "
            [TIME] run [RUN-ID]: tokened on vault, 1 step
            [TIME] gate key: Go? -> approved by --yes
            [TIME] step 1/1 key: generate 32 random bytes as hex
            [TIME] step 1/1 key: ok in [DURATION]
            [TIME] run [RUN-ID]: done in [DURATION] (1 ok, 0 failed, 0 skipped)
            ",
        )
        .success();
}

/// A runbook with an input of each type, several choices, and a nested runbook given typed
/// values: what the steps see is shown by their titles in the plan and the run.
fn typed() -> Test {
    Test::new()
        .environments(
            r#"
            version: 1
            environments:
              local:
                description: This machine
              cloud:
                description: With AWS settings
                aws: { region: eu-west-3 }
            "#,
        )
        .runbook(
            "typed",
            r#"
            version: 1
            name: typed
            summary: typed inputs
            inputs:
              batch: { description: Hosts per batch, type: integer, default: 2 }
              dry: { description: Dry run, type: boolean, default: false }
              since: { description: Since when, type: datetime, not_future: true }
              secrets:
                description: Which secrets
                choices: [db-password, runner-token, webhook-secret]
                multiple: true
            steps:
              - id: db
                title: "db: {{ inputs.secrets | join('+') }} from {{ inputs.since }}, next batch {{ inputs.batch + 1 }}, dry {{ inputs.dry | string | lower }}"
                when: "'db-password' in inputs.secrets and not inputs.dry"
                generate: { format: hex }
              - id: hook
                when: "'webhook-secret' in inputs.secrets"
                generate: { format: hex }
            "#,
        )
        .runbook(
            "outer",
            r#"
            version: 1
            name: outer
            summary: gives typed values to a nested runbook
            inputs:
              since: { description: Since when, type: datetime }
              flag: { description: A flag, type: boolean, default: true }
              pick: { description: Which, choices: [webhook-secret, db-password], multiple: true, default: all }
            steps:
              - id: inner
                runbook.run:
                  name: typed
                  inputs:
                    secrets: "{{ inputs.pick }}"
                    since: "{{ inputs.since }}"
                    batch: "{{ 'x' if inputs.since == '2026-01-01T00:00:00Z' else '7' }}"
                    dry: "{{ not inputs.flag }}"
            "#,
        )
}

/// The titles of the steps started, from a run's JSON Lines.
fn titles(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "step_started")
        .filter_map(|e| e["title"].as_str().map(str::to_string))
        .collect()
}

fn bad_input(message: &str, help: &str) -> String {
    format!("runbook::bad-input × {message} help: {help}")
}

/// Text with its line breaks and indentation as single spaces: a help wraps where the
/// terminal's width says.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_typed_input_given_on_the_command_line_is_checked_named_and_explained() {
    let t = typed();
    let base = ["run", "typed", "--env", "local", "--yes"];
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[
                "-i",
                "batch=ten",
                "-i",
                "since=2026-01-01T00:00Z",
                "-i",
                "secrets=all",
            ],
            "input `batch`: `ten` is not an integer",
            "give a whole number, e.g. 3 or -1",
        ),
        (
            &[
                "-i",
                "dry=yes",
                "-i",
                "since=2026-01-01T00:00Z",
                "-i",
                "secrets=all",
            ],
            "input `dry`: `yes` is not a boolean",
            "give `true` or `false`",
        ),
        (
            &["-i", "since=2026-01-01", "-i", "secrets=all"],
            "input `since`: `2026-01-01` is a date without a time",
            "add the time and its zone, e.g. 2026-11-20T00:00Z for the start of the day in UTC",
        ),
        (
            &["-i", "since=2026-01-01T10:00", "-i", "secrets=all"],
            "input `since`: `2026-01-01T10:00` has no time zone",
            "add `Z` for UTC or the offset from UTC, e.g. 2026-11-20T14:00Z or 2026-11-20T15:00+01:00",
        ),
        (
            &[
                "-i",
                "since=2026-01-01T00:00Z",
                "-i",
                "secrets=runner-token,db-password,runner-token",
            ],
            "input `secrets`: `runner-token` is given twice",
            "give each value once; choose from: db-password, runner-token, webhook-secret; or all for every one",
        ),
        (
            &["-i", "since=2026-01-01T00:00Z", "-i", "secrets=db-pasword"],
            "input `secrets`: `db-pasword` is not one of its choices",
            "did you mean `db-password`? choose from: db-password, runner-token, webhook-secret; or all for every one",
        ),
        (
            &[
                "-i",
                "since=2026-01-01T00:00Z",
                "-i",
                "secrets=all,db-password",
            ],
            "input `secrets`: `all` is given with other values",
            "`all` already means every choice: give it alone",
        ),
    ];
    for (given, message, help) in cases {
        let mut args = base.to_vec();
        args.extend(*given);
        // The same refusal before a run and before a plan.
        let mut plan = vec!["plan", "typed", "--env", "local"];
        plan.extend(*given);
        for args in [&args, &plan] {
            let r = t.again(args);
            r.assert_code(2);
            assert_eq!(flat(&r.stderr), flat(&bad_input(message, help)), "{args:?}");
        }
    }
    // In the future: the help says when now is (a time in the past, or a wrong zone).
    let future = t.again(&[
        "run",
        "typed",
        "--env",
        "local",
        "--yes",
        "-i",
        "since=2999-01-01T00:00Z",
        "-i",
        "secrets=all",
    ]);
    future.assert_code(2);
    let said = future
        .stderr
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        said.contains("× input `since`: `2999-01-01T00:00Z` is in the future help: give a time no later than now, 20")
            && said.contains("a local time needs its own offset (e.g. +01:00), not `Z`"),
        "{said}"
    );
    assert!(!t.state_dir().join("runs").exists(), "nothing ran");
    // From the environment, as from --input.
    t.env("RUNBOOK_INPUT_BATCH", "2.5")
        .args(&[
            "run",
            "typed",
            "--env",
            "local",
            "--yes",
            "-i",
            "since=2026-01-01T00:00Z",
            "-i",
            "secrets=all",
        ])
        .stderr(
            "
            runbook::bad-input

              × input `batch`: `2.5` is not an integer
              help: give a whole number, e.g. 3 or -1
            ",
        )
        .status(2);
}

#[test]
fn templates_see_numbers_bools_utc_times_and_lists_in_the_order_of_the_choices() {
    let t = typed();
    let run = t
        .then(&[
            "run",
            "typed",
            "--env",
            "local",
            "--yes",
            "-i",
            "since=2026-01-01T01:30+01:30",
            "-i",
            "secrets=webhook-secret, db-password",
        ])
        .stderr(
            "
            [TIME] run [RUN-ID]: typed on local, 2 steps
            [TIME] step 1/2 db: generate 32 random bytes as hex
            [TIME] step 1/2 db: ok in [DURATION]
            [TIME] step 2/2 hook: generate 32 random bytes as hex
            [TIME] step 2/2 hook: ok in [DURATION]
            [TIME] run [RUN-ID]: done in [DURATION] (2 ok, 0 failed, 0 skipped)
            ",
        )
        .success();
    let _ = run;
    let json = t.again(&[
        "run",
        "typed",
        "--env",
        "local",
        "--yes",
        "--output",
        "json",
        "-i",
        "since=2026-01-01T01:30+01:30",
        "-i",
        "secrets=webhook-secret, db-password",
    ]);
    json.assert_code(0);
    assert_eq!(
        titles(&json.stdout),
        [
            "db: db-password+webhook-secret from 2026-01-01T00:00:00Z, next batch 3, dry false",
            "generate"
        ]
    );
    // `all`, a `when:` that reads a bool, and the journal keeps the normal form.
    let run = t.again(&[
        "run",
        "typed",
        "--env",
        "local",
        "--yes",
        "-i",
        "since=2026-01-01T00:00Z",
        "-i",
        "secrets=all",
        "-i",
        "dry=true",
    ]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("step 1/2 db: skipped"),
        "{}",
        run.stderr
    );
    let journals: String = common::walk(&t.state_dir().join("runs"))
        .iter()
        .filter(|f| f.ends_with("journal.jsonl"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        journals.contains("db-password,runner-token,webhook-secret"),
        "{journals}"
    );
}

#[test]
fn a_nested_runbook_checks_the_typed_values_it_is_given() {
    let t = typed();
    // `batch` renders to 7: fine; the list is put in the order of the choices.
    let ok = t.again(&[
        "run",
        "outer",
        "--env",
        "local",
        "--yes",
        "-i",
        "since=2026-02-01T00:00Z",
    ]);
    ok.assert_code(0);
    assert!(
        ok.stderr.contains(
            "run runbook `typed` with secrets=['webhook-secret', 'db-password'], since=2026-02-01T00:00:00Z, batch=7, dry=False"
        ),
        "{}",
        ok.stderr
    );
    let json = t.again(&[
        "run",
        "outer",
        "--env",
        "local",
        "--yes",
        "--output",
        "json",
        "-i",
        "since=2026-02-01T00:00Z",
    ]);
    assert!(
        titles(&json.stdout).contains(
            &"db: db-password+webhook-secret from 2026-02-01T00:00:00Z, next batch 8, dry false"
                .to_string()
        ),
        "{}",
        json.stdout
    );
    // `batch` renders to `x`: the step fails, naming the runbook, the input and the value.
    let bad = t.again(&[
        "run",
        "outer",
        "--env",
        "local",
        "--yes",
        "-i",
        "since=2026-01-01T00:00Z",
    ]);
    bad.assert_code(1);
    assert!(
        bad.stderr
            .contains("runbook `typed`: input `batch`: `x` is not an integer"),
        "{}",
        bad.stderr
    );
    // A time in the future, given by the outer runbook (whose own input allows it).
    let future = t.again(&[
        "run",
        "outer",
        "--env",
        "local",
        "--yes",
        "--new",
        "-i",
        "since=2999-01-01T00:00Z",
    ]);
    future.assert_code(1);
    assert!(
        future
            .stderr
            .contains("runbook `typed`: input `since`: `2999-01-01T00:00:00Z` is in the future"),
        "{}",
        future.stderr
    );
}

#[test]
fn env_aws_region_is_the_environments_aws_region() {
    let t = Test::new()
        .environments(
            r#"
            version: 1
            environments:
              cloud:
                aws: { region: eu-west-3 }
              bare: {}
            "#,
        )
        .runbook(
            "region",
            r#"
            version: 1
            name: region
            summary: reads the region
            steps:
              - id: key
                title: "in {{ env.aws_region }}"
                generate: { format: hex }
            "#,
        );
    let check = t.again(&["check"]);
    check.assert_code(2);
    assert!(
        flat(&check.stderr).contains("× environment `bare` has no var `aws_region`")
            && flat(&check.stderr).contains("add `aws:` with a `region` to environment `bare`"),
        "{}",
        check.stderr
    );
}

/// Several choices each run by a step of their own (`when: "'x' in inputs.pick"`), one after
/// another: a failing one stops the rest.
#[test]
fn a_failing_nested_runbook_stops_the_ones_after_it() {
    let t = Test::new()
        .environments(
            r#"
            version: 1
            environments:
              local: {}
            "#,
        )
        .runbook(
            "fails",
            r#"
            version: 1
            name: fails
            summary: a check that nothing answers
            steps:
              - id: probe
                http.check: { url: "http://127.0.0.1:9/", attempts: 1 }
            "#,
        )
        .runbook(
            "works",
            r#"
            version: 1
            name: works
            summary: makes a key
            steps:
              - id: key
                generate: { format: hex }
            "#,
        )
        .runbook(
            "both",
            r#"
            version: 1
            name: both
            summary: runs the chosen ones in order
            inputs:
              pick: { description: Which, choices: [fails, works], multiple: true }
            steps:
              - id: run_fails
                when: "'fails' in inputs.pick"
                runbook.run: { name: fails }
              - id: run_works
                when: "'works' in inputs.pick"
                runbook.run: { name: works }
            "#,
        );
    let only = t.again(&[
        "run",
        "both",
        "--env",
        "local",
        "--yes",
        "--no-preflight",
        "-i",
        "pick=works",
    ]);
    only.assert_code(0);
    assert!(
        only.stderr.contains("step 1/2 run_fails: skipped"),
        "{}",
        only.stderr
    );
    let all = t.again(&[
        "run",
        "both",
        "--env",
        "local",
        "--yes",
        "--no-preflight",
        "-i",
        "pick=all",
    ]);
    all.assert_code(1);
    assert!(
        all.stderr.contains("step 1/2 run_fails: FAILED"),
        "{}",
        all.stderr
    );
    assert!(!all.stderr.contains("run_works"), "{}", all.stderr);
}
