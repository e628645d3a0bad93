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
            let run = t.again(&all);
            run.assert_code(2);
            assert!(
                run.stderr.contains("input `token` is secret"),
                "{all:?}: {}",
                run.stderr
            );
            assert!(run.stderr.contains("RUNBOOK_INPUT_TOKEN"), "{}", run.stderr);
            assert!(run.stderr.contains("prompt"), "{}", run.stderr);
            assert!(
                !contains(&run.all_bytes(), PLANTED),
                "{all:?}: the value leaked"
            );
            assert!(!t.state_dir().join("runs").exists(), "nothing ran");
        }
    }
    // The way that is meant: from the environment.
    t.again(&[
        "run", "tokened", "--env", "local", "--yes", "--input", "reason=x",
    ])
    .assert_code(2);
    let ok = t
        .env("RUNBOOK_INPUT_TOKEN", PLANTED)
        .args(&[
            "run", "tokened", "--env", "local", "--yes", "--input", "reason=x",
        ])
        .run();
    ok.assert_code(0);
}

#[test]
fn a_protected_environment_needs_its_name_with_yes() {
    let t = t().env("RUNBOOK_INPUT_TOKEN", PLANTED);
    let base = ["run", "tokened", "--env", "vault", "--input", "reason=x"];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend(extra);
        t.again(&a)
    };
    let refused = run(&["--yes"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("--confirm-env vault"),
        "{}",
        refused.stderr
    );
    let wrong = run(&["--yes", "--confirm-env", "production"]);
    wrong.assert_code(2);
    assert!(
        wrong.stderr.contains("is not the environment"),
        "{}",
        wrong.stderr
    );
    // A wrong name is refused even where it would not be needed.
    let mut a = base.to_vec();
    a[3] = "local";
    a.extend(["--yes", "--confirm-env", "vault"]);
    t.again(&a).assert_code(2);
    assert!(!t.state_dir().join("runs").exists(), "nothing ran");
    run(&["--yes", "--confirm-env", "vault"]).assert_code(0);
}
