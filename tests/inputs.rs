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
