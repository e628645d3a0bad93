//! Values put into a shell command: the `shell_quote` filter, `check`'s warning for an input
//! or a step output templated into `ssh.exec`'s command unquoted, and `docs` quoting hosts.

mod common;

use common::Test;

fn runbook(command: &str) -> String {
    format!(
        r#"
        version: 1
        name: svc
        summary: Restart a service
        inputs:
          svc:
            description: The service
          region:
            description: Where
            choices: [west, east]
            default: west
        steps:
          - id: find
            ssh.exec: {{ host: app, command: "hostname" }}
          - id: restart
            ssh.exec:
              host: app
              command: "{command}"
        "#
    )
}

fn check(command: &str) -> common::Run {
    Test::new()
        .with_repo_environments()
        .runbook("svc", &runbook(command))
        .env("NO_COLOR", "1")
        .args(&["check", "--format", "json"])
        .run()
}

fn warnings(run: &common::Run) -> Vec<serde_json::Value> {
    common::checked_problems(&run.stdout)
        .into_iter()
        .filter(|p| p["code"] == "runbook::unquoted-in-shell")
        .collect()
}

#[test]
fn an_input_in_a_command_unquoted_is_a_warning_with_its_place_and_the_safe_way() {
    let run = check("systemctl restart {{ inputs.svc }}");
    run.assert_code(0);
    let w = warnings(&run);
    assert_eq!(w.len(), 1, "{}", run.stdout);
    assert_eq!(w[0]["severity"], "warning");
    assert_eq!(w[0]["line"], 17);
    assert!(
        w[0]["message"]
            .as_str()
            .unwrap()
            .contains("input `svc` goes into the shell command `command` unquoted"),
        "{}",
        w[0]
    );
    let help = w[0]["help"].as_str().unwrap();
    assert!(
        help.contains("pass it through `env:` (the safe way"),
        "{help}"
    );
    assert!(help.contains("| shell_quote"), "{help}");
}

#[test]
fn a_step_output_in_a_command_is_a_warning_too() {
    let run = check("echo {{ steps.find.stdout | trim }}");
    assert_eq!(warnings(&run).len(), 1, "{}", run.stdout);
}

#[test]
fn quoted_chosen_and_environment_values_are_not_warned_about() {
    for command in [
        "systemctl restart {{ inputs.svc | shell_quote }}",
        "systemctl restart {{ inputs.svc|trim|shell_quote -}}",
        "deploy --region {{ inputs.region }}",
        "cd {{ env.app_dir }} && ls",
    ] {
        let run = check(command);
        run.assert_code(0);
        assert!(warnings(&run).is_empty(), "{command}: {}", run.stdout);
    }
}

#[test]
fn shell_quote_renders_one_word_in_the_plan() {
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "svc",
            &runbook("systemctl restart {{ inputs.svc | shell_quote }}"),
        )
        .args(&[
            "plan",
            "svc",
            "--env",
            "staging",
            "--input",
            "svc=it's; rm -rf ~",
        ]);
    let run = t.run();
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(r"on app: systemctl restart 'it'\''s; rm -rf ~'"),
        "{}",
        run.stdout
    );
}

#[test]
fn docs_quote_the_host_and_the_user() {
    let t = Test::new()
        .environments(
            r#"
            version: 1
            environments:
              odd:
                hosts:
                  app: { address: "example.com;id", user: "o'neil" }
            "#,
        )
        .runbook("svc", &runbook("uptime"))
        .args(&["docs", "svc", "--env", "odd"]);
    let run = t.run();
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(r"ssh 'o'\''neil@example.com;id' 'uptime'"),
        "{}",
        run.stdout
    );
}
