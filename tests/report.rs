//! `report.write`: the run's record, from its journal, in the state directory: run id and
//! operator, each step's start and end (nested runbooks' too), SSM versions before and after,
//! gates and manual steps, findings; never a secret. Against the sandbox's SSM (moto).

mod common;

use common::Test;
use common::pty::Pty;

/// A rotation of a test parameter (a new value every run), run inside an incident runbook that
/// collects a finding and writes the record.
fn incident(param: &str) -> (String, String) {
    let child = format!(
        r#"
        version: 1
        name: rotate
        summary: Rotate a test parameter
        rotation: every 90 days
        steps:
          - id: new
            generate: {{ format: hex }}
          - id: store
            title: Store the new value
            confirm: Store a new value in {param}?
            ssm.put:
              name: {param}
              value: "{{{{ steps.new.value }}}}"
              type: SecureString
              overwrite: true
        "#
    );
    let parent = r#"
        version: 1
        name: incident
        summary: Respond to a suspected leak
        rotation: on suspected compromise
        inputs:
          since:
            description: Since when
            default: 2026-12-01T00:00:00Z
        steps:
          - id: rotate
            runbook.run: { name: rotate }
          - id: review
            title: Review the logs
            manual.confirm:
              instructions: Review the logs.
              collect:
                findings: { description: What the logs show }
          - id: record
            report.write:
              name: incident
              title: "Incident: test parameter in {{ env.name }}"
              body: |
                Exposure suspected since {{ inputs.since }}.
        "#;
    (child, parent.to_string())
}

fn run_incident(t: &Test, finding: &str) -> (i32, String) {
    let mut p = Pty::spawn(t);
    p.expect("Store a new value");
    p.send("y");
    p.send("\r");
    p.expect("What the logs show");
    p.send(finding);
    p.send("\r");
    p.expect("Done?");
    p.send("y");
    p.send("\r");
    let code = p.finish();
    (code, p.output())
}

fn record_of(t: &Test) -> Vec<String> {
    let mut records: Vec<_> = common::walk(&t.state_dir().join("runs"))
        .into_iter()
        .filter(|f| f.ends_with("incident.md"))
        .collect();
    records.sort();
    records
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

#[test]
fn the_record_holds_the_run_its_versions_and_findings_and_no_secret() {
    let sb = common::sandbox();
    let param = format!("/runbook-test/{}", common::unique("report"));
    let (child, parent) = incident(&param);
    let t = Test::new()
        .with_repo_environments()
        .with_sandbox(&sb)
        .runbook("rotate", &child)
        .runbook("incident", &parent)
        .env("USER", "alice-oncall")
        .args(&[
            "run",
            "incident",
            "--env",
            "sandbox",
            "--input",
            "since=2026-12-01T00:00:00Z",
        ]);

    let (code, out1) = run_incident(&t, "two requests | from 203.0.113.9");
    assert_eq!(code, 0, "{out1}");
    let first = common::ssm_value(&param);

    // A second incident on the same parameter: its record starts from the version the first made.
    let (code, out2) = run_incident(&t, "nothing unusual");
    assert_eq!(code, 0, "{out2}");
    let second = common::ssm_value(&param);

    let records = record_of(&t);
    assert_eq!(records.len(), 2, "one record per run");
    let runs = common::listed_runs(&t.again(&["runs", "--output", "json"]).stdout);
    let ids: Vec<String> = runs
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();

    let with = |needle: &str| records.iter().filter(|r| r.contains(needle)).count();
    assert_eq!(with("# Incident: test parameter in sandbox\n"), 2);
    assert_eq!(with("Exposure suspected since 2026-12-01T00:00:00Z."), 2);
    for id in &ids {
        assert_eq!(with(&format!("- Run id: `{id}`")), 1, "{records:?}");
    }
    assert_eq!(with("- Operator: alice-oncall on "), 2);
    // Nested steps, with their times, and the gate that approved the change.
    assert_eq!(
        with("| `rotate/store` | Store the new value | 20"),
        2,
        "{records:?}"
    );
    assert_eq!(with("| `rotate/store` | gate approved | alice-oncall |"), 2);
    assert_eq!(with("| `review` | manual step: done | alice-oncall |"), 2);
    // Versions before and after: a new parameter, then the next version.
    assert_eq!(
        with(&format!("| `{param}` | none (new) | 1 | `rotate/store` |")),
        1,
        "{records:?}"
    );
    assert_eq!(
        with(&format!("| `{param}` | 1 | 2 | `rotate/store` |")),
        1,
        "{records:?}"
    );
    assert_eq!(
        with("- `review` findings: two requests | from 203.0.113.9\n"),
        1
    );
    assert_eq!(with("- `review` findings: nothing unusual\n"), 1);
    // The record is not a row of itself.
    assert_eq!(with("| `record` |"), 0);

    // No value of the rotation, in any form, in anything the runs wrote.
    let mut bytes = t.again(&["runs"]).all_bytes();
    bytes.extend_from_slice(out1.as_bytes());
    bytes.extend_from_slice(out2.as_bytes());
    for secret in [&first, &second] {
        for form in forms(secret) {
            assert!(
                !common::contains(&bytes, &form),
                "a form of a secret was written"
            );
            for r in &records {
                assert!(!r.contains(&form), "a form of a secret is in the record");
            }
        }
    }
}

/// A record's name is a file name in the run's directory: anything else is refused at check
/// time, pointing at it.
#[test]
fn a_record_name_that_is_not_a_file_name_is_refused_at_check_time() {
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "bad",
            r#"
            version: 1
            name: bad
            summary: Writes its record outside the run
            steps:
              - id: record
                report.write: { title: Record, name: ../../escape }
            "#,
        )
        .args(&["check"]);
    let run = t.run();
    assert_eq!(run.code, 2, "{}", run.stderr);
    let err = &run.stderr;
    assert!(err.contains("runbook::bad-report-name"), "{err}");
    assert!(err.contains("runbooks/bad.yaml:6:42"), "{err}");
}

/// A secret as a tool could print it: raw, case-changed, base64, hex.
fn forms(secret: &str) -> Vec<String> {
    use base64::Engine;
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_string(),
        secret.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        hex.clone(),
        hex.to_uppercase(),
    ]
}

/// A nested runbook's record is its own file, named after the step that ran it: it never
/// replaces its parent's (or a sibling's) record.
#[test]
fn a_nested_record_never_replaces_its_parents() {
    let child = r#"
        version: 1
        name: child
        summary: Writes its own record
        steps:
          - id: record
            report.write: { title: Child record }
        "#;
    let parent = r#"
        version: 1
        name: parent
        summary: Runs the child twice, then writes its record
        steps:
          - id: first
            runbook.run: { name: child }
          - id: second
            runbook.run: { name: child }
          - id: record
            report.write: { title: Parent record }
        "#;
    let t = Test::new()
        .with_repo_environments()
        .runbook("child", child)
        .runbook("parent", parent)
        .args(&["run", "parent", "--env", "sandbox", "--yes"]);
    let run = t.run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut names: Vec<String> = common::walk(&t.state_dir().join("runs"))
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["first-report.md", "report.md", "second-report.md"]);
    let read = |n: &str| {
        let f = common::walk(&t.state_dir().join("runs"))
            .into_iter()
            .find(|f| f.ends_with(n))
            .unwrap();
        std::fs::read_to_string(f).unwrap()
    };
    assert!(read("report.md").starts_with("# Parent record\n"));
    assert!(read("first-report.md").starts_with("# Child record\n"));
}

/// A secret the record's text reads (a secret input in its body, changed by a filter or not)
/// is masked in the file and in the `text` the run passes on, like everywhere else.
#[test]
fn a_secret_in_the_records_text_is_masked_in_the_file() {
    let secret = "tok-PLANTED-r3cord-4491";
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "leaky",
            r#"
            version: 1
            name: leaky
            summary: A record whose author templated a secret into it
            inputs:
              token: { description: An API token, secret: true }
            steps:
              - id: record
                report.write:
                  title: Record
                  body: "token {{ inputs.token }} and {{ inputs.token | upper }}"
              - id: echo
                title: "{{ steps.record.text | length }}"
                generate: { format: hex }
            "#,
        )
        .env("RUNBOOK_INPUT_TOKEN", secret)
        .args(&["run", "leaky", "--env", "sandbox", "--yes"]);
    let run = t.run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let record: String = common::walk(&t.state_dir().join("runs"))
        .iter()
        .filter(|f| f.ends_with("report.md"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(record.contains("token ••••••"), "{record}");
    for form in forms(secret) {
        assert!(
            !record.contains(&form),
            "a form of the secret is in the record"
        );
        assert!(
            !common::contains(&run.all_bytes(), &form),
            "a form of the secret was written"
        );
    }
}
