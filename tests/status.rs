//! `runbook status` against the sandbox's SSM (moto): the status right after a real rotation,
//! a parameter whose last change is older than its schedule at a later `--at` (overdue, exit
//! 1; moto has no clock to move, and its parameters' dates cannot be set), a rollback that put the old
//! value back (its date is the old version's, read from the parameter's history), JSON, and
//! missing credentials. Each test has its own environment and parameter prefix in a temp dir.

mod common;

use common::{Sandbox, Test};

/// A prefix of a fixed length no other test (or earlier run) uses, so tables line up the same
/// way in every run once it is redacted.
fn prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!(
        "/runbook-test/status-{:08}-{nanos:020}-{n:02}",
        std::process::id()
    )
}

fn environments(prefix: &str) -> String {
    format!(
        "
        version: 1
        environments:
          statustest:
            aws:
              region: us-east-1
              endpoint: http://127.0.0.1:5000
            vars:
              ssm_prefix: {prefix}
          nowhere:
            aws:
              region: us-east-1
              endpoint: http://127.0.0.1:1
            vars:
              ssm_prefix: /nowhere
        "
    )
}

const ROTATE: &str = r#"
    version: 1
    name: rotate-token
    summary: Rotate TOKEN
    rotation: every 30 days
    steps:
      - id: token
        generate: { format: hex }
      - id: store
        ssm.put:
          name: "{{ env.ssm_prefix }}/TOKEN"
          value: "{{ steps.token.value }}"
          type: SecureString
          overwrite: true
"#;

/// Writes TOKEN too, with a longer schedule, and OTHER, which nothing has stored yet.
const BOOTSTRAP: &str = r#"
    version: 1
    name: bootstrap
    summary: Create TOKEN and OTHER
    rotation: every 365 days
    steps:
      - id: token
        generate: { format: hex }
      - id: put_token
        ssm.put:
          name: "{{ env.ssm_prefix }}/TOKEN"
          value: "{{ steps.token.value }}"
          type: SecureString
          if_exists: skip
      - id: put_other
        ssm.put:
          name: "{{ env.ssm_prefix }}/OTHER"
          value: "{{ steps.token.value }}"
          type: SecureString
          if_exists: skip
"#;

/// A name known only at run time.
const BY_INPUT: &str = r#"
    version: 1
    name: by-input
    summary: Write the parameter an input names
    rotation: on suspected compromise
    inputs:
      param: { description: the parameter }
    steps:
      - id: put
        ssm.put: { name: "{{ inputs.param }}", value: x, type: String, overwrite: true }
"#;

fn test(sb: &Sandbox, prefix: &str) -> Test {
    Test::new()
        .with_sandbox(sb)
        .environments(&environments(prefix))
        .runbook("rotate-token", ROTATE)
        .runbook("bootstrap", BOOTSTRAP)
        .runbook("by-input", BY_INPUT)
        .redact(&regex::escape(prefix), "[PREFIX]")
        .redact(r"\b\d{4}-\d{2}-\d{2}\b", "[DATE]")
}

fn document(stdout: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(stdout).expect("one JSON document");
    assert_eq!(doc["format"], 1, "{doc}");
    doc
}

#[test]
fn right_after_a_rotation_the_parameter_is_ok_and_its_run_is_named() {
    let sb = common::sandbox();
    let prefix = prefix();
    let t = test(&sb, &prefix);
    t.then(&["run", "rotate-token", "--env", "statustest", "--yes"])
        .run()
        .assert_code(0);
    let run_id = common::listed_runs(&t.again(&["runs", "--output", "json"]).stdout)[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    t.then(&["status", "--env", "statustest"])
        .stderr(
            "note: `by-input` step `put` writes `{{ inputs.param }}`, a name known only at run time: not shown\n",
        )
        .stdout(
            "
            PARAMETER                                                    STATE      DUE                      CHANGED        BY   LAST RUN                                SCHEDULE
            [PREFIX]/OTHER  never set  -                        -              -    -                                       every 365 days (bootstrap)
            [PREFIX]/TOKEN  ok         [DATE] (in 29 days)  [DATE] v1  N/A  [RUN-ID] rotate-token done  every 30 days (rotate-token)

            2 parameters: 1 ok, 1 never set
            ",
        )
        .success();

    // The same as one JSON document.
    let run = t.again(&["status", "--env", "statustest", "--output", "json"]);
    run.assert_code(0);
    let doc = document(&run.stdout);
    assert_eq!(doc["overdue"], 0);
    assert_eq!(doc["environments"], serde_json::json!(["statustest"]));
    let token = &doc["parameters"][1];
    assert_eq!(token["name"], format!("{prefix}/TOKEN"));
    assert_eq!(token["state"], "ok");
    assert_eq!(token["version"], 1);
    assert_eq!(token["schedule"]["days"], 30);
    assert_eq!(token["schedule"]["runbook"], "rotate-token");
    assert_eq!(token["last_run"]["run_id"], run_id.as_str());
    assert_eq!(token["last_run"]["outcome"], "done");
    assert_eq!(
        token["writers"],
        serde_json::json!([
            {"runbook": "bootstrap", "rotation": "every 365 days"},
            {"runbook": "rotate-token", "rotation": "every 30 days"},
        ])
    );
    assert_eq!(doc["parameters"][0]["state"], "never-set");
    assert_eq!(doc["unrendered"][0]["name"], "{{ inputs.param }}");
    assert_eq!(doc["unrendered"][0]["why"], "a name known only at run time");
    assert_eq!(token["last_run"]["changed_since"], false);
    // Metadata only: the value never leaves SSM.
    let value = common::ssm_value(&format!("{prefix}/TOKEN"));
    assert!(!run.stdout.contains(&value) && !run.stderr.contains(&value));

    // Rotated again from another state directory (another machine), over a second later
    // (audit times are whole seconds): this one's last run is still its own, and the row says
    // SSM changed since.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    test(&sb, &prefix)
        .again(&["run", "rotate-token", "--env", "statustest", "--yes"])
        .assert_code(0);
    let run = t.again(&["status", "--env", "statustest", "--output", "json"]);
    let token = &document(&run.stdout)["parameters"][1];
    assert_eq!(token["version"], 2, "{token}");
    assert_eq!(token["last_run"]["run_id"], run_id.as_str());
    assert_eq!(token["last_run"]["changed_since"], true, "{token}");
}

#[test]
fn all_environments_in_one_table_and_one_that_cannot_be_read_fails_the_report() {
    let sb = common::sandbox();
    test(&sb, &prefix())
        .args(&["status", "--all-envs"])
        .redact(r"(?m)^  cause: .*\n", "  cause: [CAUSE]\n")
        .stderr(
            "
            runbook::status-unavailable

              × cannot read the parameters of `nowhere` from SSM: cannot reach SSM at http://127.0.0.1:1
              help: check the network, the region (us-east-1) and `aws.endpoint` or AWS_ENDPOINT_URL_SSM
              cause: [CAUSE]
            note: `by-input` step `put` writes `{{ inputs.param }}`, a name known only at run time: not shown
            ",
        )
        .stdout(
            "
            ENV         PARAMETER                                                    STATE      DUE  CHANGED  BY  LAST RUN  SCHEDULE
            statustest  [PREFIX]/OTHER  never set  -    -        -   -         every 365 days (bootstrap)
            statustest  [PREFIX]/TOKEN  never set  -    -        -   -         every 30 days (rotate-token)

            2 parameters: 2 never set
            ",
        )
        .status(1);
}

#[test]
fn a_parameter_whose_last_change_is_older_than_its_schedule_is_overdue_and_exits_1() {
    let sb = common::sandbox();
    let t = test(&sb, &prefix());
    t.then(&["run", "rotate-token", "--env", "statustest", "--yes"])
        .run()
        .assert_code(0);
    // Judged 45½ days on: the rotation SSM dated now is then 15½ days past its 30.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(45 * 86_400 + 43_200);
    let at = humantime::format_rfc3339_seconds(later).to_string();
    let run = t.again(&[
        "status",
        "--env",
        "statustest",
        "--at",
        &at,
        "--output",
        "json",
    ]);
    run.assert_code(1);
    let doc = document(&run.stdout);
    assert_eq!(doc["overdue"], 1, "{doc}");
    assert_eq!(doc["now"], at.as_str());
    let token = &doc["parameters"][1];
    assert_eq!(token["state"], "overdue", "{token}");
    assert_eq!(token["schedule"]["runbook"], "rotate-token");
    // Due 30 days after SSM's date of the last change, which is before the judged time.
    let due = humantime::parse_rfc3339(token["due"].as_str().unwrap()).unwrap();
    let changed = humantime::parse_rfc3339(token["last_modified"].as_str().unwrap()).unwrap();
    assert_eq!(due.duration_since(changed).unwrap().as_secs(), 30 * 86_400);
    assert!(due < later);

    // The table says the same; the exit code alone is the alert.
    t.then(&["status", "--env", "statustest", "--at", &at])
        .stderr(
            "note: `by-input` step `put` writes `{{ inputs.param }}`, a name known only at run time: not shown\n",
        )
        .stdout(
            "
            PARAMETER                                                    STATE      DUE                       CHANGED        BY   LAST RUN                                SCHEDULE
            [PREFIX]/OTHER  never set  -                         -              -    -                                       every 365 days (bootstrap)
            [PREFIX]/TOKEN  overdue    [DATE] (15 days ago)  [DATE] v1  N/A  [RUN-ID] rotate-token done  every 30 days (rotate-token)

            2 parameters: 1 overdue, 1 never set
            ",
        )
        .status(1);

    // A time in the past is refused: today's dates were not known then.
    t.then(&["status", "--env", "statustest", "--at", "2020-01-01"])
        .stderr(
            "
            runbook::bad-input

              × --at [TIME] is in the past
              help: give a time from now on: `--at [DATE]` shows what will be overdue by then
            ",
        )
        .status(2);
}

#[test]
fn a_rotation_run_inside_another_runbook_named_by_its_input_is_its_last_run() {
    let sb = common::sandbox();
    let prefix = prefix();
    let t = test(&sb, &prefix).runbook(
        "respond",
        r#"
        version: 1
        name: respond
        summary: Rotate the secret an incident names
        rotation: on suspected compromise
        inputs:
          secret: { description: which, choices: [rotate-token] }
        steps:
          - id: rotate
            runbook.run: { name: "{{ inputs.secret }}" }
        "#,
    );
    t.then(&[
        "run",
        "respond",
        "--env",
        "statustest",
        "--input",
        "secret=rotate-token",
        "--yes",
    ])
    .run()
    .assert_code(0);
    let run_id = common::listed_runs(&t.again(&["runs", "--output", "json"]).stdout)[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = t.again(&["status", "--env", "statustest", "--output", "json"]);
    run.assert_code(0);
    let doc = document(&run.stdout);
    let token = &doc["parameters"][1];
    assert_eq!(token["name"], format!("{prefix}/TOKEN"));
    assert_eq!(token["last_run"]["run_id"], run_id.as_str(), "{token}");
    assert_eq!(token["last_run"]["runbook"], "respond");
    // Its schedule is still the rotation's own.
    assert_eq!(token["schedule"]["runbook"], "rotate-token");
}

#[test]
fn a_rollback_that_put_the_old_value_back_keeps_the_old_date() {
    let sb = common::sandbox();
    let prefix = prefix();
    let t = test(&sb, &prefix).runbook(
        "fails-late",
        r#"
        version: 1
        name: fails-late
        summary: Store a new TOKEN, fail, put the old one back
        rotation: every 30 days
        steps:
          - id: current
            ssm.get: { name: "{{ env.ssm_prefix }}/TOKEN" }
          - id: token
            generate: { format: hex }
          - id: store
            ssm.put:
              name: "{{ env.ssm_prefix }}/TOKEN"
              value: "{{ steps.token.value }}"
              type: SecureString
              overwrite: true
          - id: verify
            http.check: { url: "http://127.0.0.1:1/", attempts: 1, request_timeout: 1s }
            on_failure: restore
        rollback:
          - id: restore
            ssm.put:
              name: "{{ env.ssm_prefix }}/TOKEN"
              value: "{{ steps.current.value }}"
              type: SecureString
              overwrite: true
        "#,
    );
    t.then(&["run", "rotate-token", "--env", "statustest", "--yes"])
        .run()
        .assert_code(0);
    let run = t.again(&[
        "run",
        "fails-late",
        "--env",
        "statustest",
        "--yes",
        "--no-preflight",
    ]);
    run.assert_code(1);
    let run = t.again(&["status", "--env", "statustest", "--output", "json"]);
    run.assert_code(0);
    let doc = document(&run.stdout);
    let token = doc["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == format!("{prefix}/TOKEN"))
        .unwrap()
        .clone();
    // v1 by the rotation, v2 the failed run's new value, v3 the old value put back.
    assert_eq!(token["version"], 3, "{token}");
    assert_eq!(token["value_version"], 1, "{token}");
    assert_eq!(token["last_run"]["runbook"], "fails-late");
    assert_eq!(token["last_run"]["outcome"], "rolled-back");
    assert_eq!(token["last_run"]["put_back"], true);
    let since = humantime::parse_rfc3339(token["value_since"].as_str().unwrap()).unwrap();
    let changed = humantime::parse_rfc3339(token["last_modified"].as_str().unwrap()).unwrap();
    assert!(since <= changed);
}

#[test]
fn without_credentials_or_ssm_it_says_why_and_exits_1() {
    let sb = common::sandbox();
    let empty = tempfile::tempdir().unwrap();
    let nofile = empty.path().join("none").display().to_string();
    test(&sb, &prefix())
        // Blank variables count as unset; the files do not exist.
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env("AWS_SESSION_TOKEN", "")
        .env("AWS_PROFILE", "")
        .env("AWS_CONFIG_FILE", &nofile)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nofile)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", "")
        .env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
        .args(&["status", "--env", "statustest"])
        .redact(
            r"(?m)^  cause: .*\n",
            "  cause: [CAUSE]\n",
        )
        .stderr(
            "
            runbook::status-unavailable

              × cannot read the parameters of `statustest` from SSM: no AWS credentials for environment
              │ `statustest`
              help: set AWS_PROFILE (then `aws sso login` if it uses SSO), set `aws.profile` for the
                    environment, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
              cause: [CAUSE]
            ",
        )
        .status(1);

    // An endpoint nobody answers at.
    let run = test(&sb, &prefix()).again(&["status", "--env", "nowhere", "--output", "json"]);
    run.assert_code(1);
    let doc = document(&run.stdout);
    assert_eq!(doc["errors"][0]["env"], "nowhere");
    assert_eq!(doc["errors"][0]["code"], "runbook::status-unavailable");
    assert!(
        doc["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach SSM at http://127.0.0.1:1"),
        "{doc}"
    );
    assert!(
        run.stderr.contains("help: check the network"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_environment_is_invalid() {
    let sb = common::sandbox();
    test(&sb, &prefix())
        .args(&["status", "--env", "statustset"])
        .stderr(
            "
            runbook::unknown-env

              × no environment `statustset`
              help: did you mean `statustest`?
            ",
        )
        .status(2);
}
