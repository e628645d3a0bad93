//! `runbook.run` cycles are refused before anything runs: a runbook that comes back to
//! itself is invalid for `check`, `plan` and `run` alike, and no step of it runs.

mod common;

use common::Test;

const LAB: &str = r#"
    version: 1
    environments:
      lab: {}
"#;

fn runs(next: &str) -> String {
    format!(
        r#"
        version: 1
        name: NAME
        summary: Runs {next}
        steps:
          - id: token
            generate: {{ format: hex }}
          - id: next
            runbook.run: {{ name: {next} }}
        "#
    )
}

#[test]
fn a_cycle_through_three_runbooks_is_refused_everywhere() {
    let t = Test::new()
        .environments(LAB)
        .runbook("a", &runs("b").replace("NAME", "a"))
        .runbook("b", &runs("c").replace("NAME", "b"))
        .runbook("c", &runs("a").replace("NAME", "c"))
        .env("NO_COLOR", "1");
    let check = t.again(&["check"]);
    check.assert_code(2);
    for (file, cycle) in [
        ("a.yaml:8:", "a → b → c → a"),
        ("b.yaml:8:", "b → c → a → b"),
        ("c.yaml:8:", "c → a → b → c"),
    ] {
        assert!(check.stderr.contains(file), "{}", check.stderr);
        assert!(check.stderr.contains(cycle), "{}", check.stderr);
    }
    let plan = t.again(&["plan", "a", "--env", "lab"]);
    plan.assert_code(2);
    assert!(
        plan.stderr.contains("runbook::nested-cycle"),
        "{}",
        plan.stderr
    );
    let run = t.again(&["run", "a", "--env", "lab", "--yes"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("runbook `a` is invalid; nothing ran"),
        "{}",
        run.stderr
    );
    // Not a step ran: no run was recorded.
    let runs = t.again(&["runs", "--output", "json"]);
    assert!(
        common::listed_runs(&runs.stdout).is_empty(),
        "{}",
        runs.stdout
    );
}

#[test]
fn a_runbook_leading_into_a_cycle_is_refused_too() {
    let t = Test::new()
        .environments(LAB)
        .runbook("entry", &runs("b").replace("NAME", "entry"))
        .runbook("b", &runs("c").replace("NAME", "b"))
        .runbook("c", &runs("b").replace("NAME", "c"))
        .env("NO_COLOR", "1");
    let check = t.again(&["check", "runbooks/entry.yaml"]);
    check.assert_code(2);
    assert!(
        check
            .stderr
            .contains("runbook `b` leads into a `runbook.run` cycle: b → c → b"),
        "{}",
        check.stderr
    );
}
