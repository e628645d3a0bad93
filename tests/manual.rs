//! Manual steps and `--yes`: a run nobody attends is refused before its first step when it
//! could reach a person's work, a step that allows it (`unattended: skip`) is recorded as not
//! done by a person (events, summary, audit line), and a person's answer records who.

mod common;

use common::Test;
use common::pty::Pty;
use runbook::engine::event::{Event, ManualOutcome, Noted};

/// A rotation with a dashboard step that collects values, a notification, and a rollback that
/// needs a person too; plus a nested runbook with a manual step of its own.
const ROTATION: &str = r#"
    version: 1
    name: rotation
    summary: Needs a person
    steps:
      - id: key
        generate: { format: hex }
      - id: create_token
        manual.confirm:
          instructions: Create a token in the dashboard.
          collect:
            token: { description: The token, secret: true }
      - id: child
        runbook.run: { name: child }
      - id: tell
        manual.confirm:
          instructions: Tell the owners.
          unattended: skip
    rollback:
      - id: undo
        manual.confirm:
          instructions: Delete the token again.
    "#;

const CHILD: &str = r#"
    version: 1
    name: child
    summary: A nested runbook with a person's step
    steps:
      - id: check_logs
        title: Read the logs
        manual.confirm:
          instructions: Read the logs.
    "#;

#[test]
fn a_run_nobody_attends_is_refused_up_front_listing_every_step_that_needs_a_person() {
    for yes in [true, false] {
        let mut args = vec!["run", "rotation", "--env", "sandbox"];
        if yes {
            args.push("--yes");
        }
        let run = Test::new()
            .with_repo_environments()
            .runbook("rotation", ROTATION)
            .runbook("child", CHILD)
            .args(&args)
            .stderr(
                "
                runbook::needs-person

                  × `rotation` has 3 manual steps only a person can do, and no terminal to ask on
                  help: run it in a terminal (`--yes` approves gates; it never does a person's work); a step the
                        run can do without (a notification) may say `unattended: skip`
                needs a person (nothing ran):
                  runbooks/rotation.yaml:7:9  step `create_token`: operator: Create a token in the dashboard. (collects token)
                  runbooks/rotation.yaml:19:9  step `undo`: operator: Delete the token again.
                  runbooks/child.yaml:5:9  step `check_logs`: Read the logs
                ",
            )
            .status(2);
        assert!(
            !run.state.join("runs").exists(),
            "nothing ran, not even a journal"
        );
    }
}

#[test]
fn a_step_that_may_be_skipped_is_recorded_as_not_done_by_a_person() {
    let t = Test::new().with_repo_environments().runbook(
        "notify",
        r#"
        version: 1
        name: notify
        summary: A rotation that tells people
        steps:
          - id: key
            generate: { format: hex }
          - id: tell
            title: Tell the owners
            manual.confirm:
              instructions: "Tell the owners of {{ env.name }}"
              unattended: skip
        "#,
    );
    let run = t
        .then(&["run", "notify", "--env", "sandbox", "--yes"])
        .stderr(
            "
            [TIME] run [RUN-ID]: notify on sandbox, 2 steps
            [TIME] step 1/2 key: generate 32 random bytes as hex
            [TIME] step 1/2 key: ok in [DURATION]
            [TIME] manual step tell: NOT DONE by a person (nobody: --yes, no terminal); it is left to do
            [TIME]   tell: Tell the owners of sandbox
            [TIME] step 2/2 tell: skipped (not done by a person: nobody attends this run; outstanding)
            [TIME] run [RUN-ID]: done in [DURATION] (1 ok, 0 failed, 1 skipped)
              1 manual step not done by a person, still to do by hand:
                tell: operator: Tell the owners of sandbox
            ",
        )
        .success();
    // The event log: who did it (nobody), and the summary's list.
    let log = run.event_log();
    assert!(log.contains(&Event::Manual {
        id: "tell".into(),
        outcome: ManualOutcome::NotDoneByAPerson,
        by: "nobody: --yes, no terminal".into(),
    }));
    let outstanding = log.iter().find_map(|e| match e {
        Event::RunFinished { outstanding, .. } => Some(outstanding.clone()),
        _ => None,
    });
    assert_eq!(
        outstanding,
        Some(vec![Noted {
            id: "tell".into(),
            text: "operator: Tell the owners of sandbox".into(),
        }])
    );
    // The audit line keeps it apart from work people did.
    let audit = std::fs::read_to_string(run.state.join("audit.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(line["manual"], serde_json::json!([]));
    let not_done = &line["not_done_by_person"];
    assert_eq!(not_done.as_array().map(Vec::len), Some(1), "{line}");
    assert_eq!(not_done[0]["step"], "tell");
    assert_eq!(not_done[0]["why"], "nobody: --yes, no terminal");
    assert_eq!(line["steps"]["tell"], "skipped");
}

/// At a terminal the person does the work, `--yes` or not, and the run records who.
#[test]
fn a_person_who_confirms_a_manual_step_is_on_the_record() {
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "notify",
            r#"
            version: 1
            name: notify
            summary: A rotation that tells people
            steps:
              - id: tell
                manual.confirm:
                  instructions: Tell the owners.
                  question: Told them?
                  unattended: skip
            "#,
        )
        .env("USER", "alice-oncall")
        .args(&["run", "notify", "--env", "sandbox", "--yes"]);
    let mut p = Pty::spawn(&t);
    p.expect("Told them?");
    p.send("y");
    p.send("\r");
    assert_eq!(p.finish(), 0, "{}", p.output());
    assert!(
        p.output().contains("manual step tell done by alice-oncall"),
        "{}",
        p.output()
    );
    let log: Vec<Event> = common::walk(&t.state_dir().join("runs"))
        .into_iter()
        .filter(|f| f.ends_with("events.jsonl"))
        .flat_map(|f| common::parse_events(&std::fs::read_to_string(&f).unwrap(), "events"))
        .collect();
    assert!(
        log.contains(&Event::Manual {
            id: "tell".into(),
            outcome: ManualOutcome::Done,
            by: "alice-oncall".into(),
        }),
        "{log:?}"
    );
    let audit = std::fs::read_to_string(t.state_dir().join("audit.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(line["manual"][0]["step"], "tell", "{line}");
    assert_eq!(line["manual"][0]["outcome"], "done");
    assert_eq!(line["manual"][0]["by"], "alice-oncall");
    assert_eq!(line["not_done_by_person"], serde_json::json!([]));
}
