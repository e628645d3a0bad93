//! What an operator's terminal shows at the end of a run, captured from a real terminal
//! (tmux): the rendered plan, step lines and summary as a snapshot at 80 columns, and at 40
//! columns no line wider than the terminal (a wrapped progress line cannot be redrawn in place:
//! it flickers and leaves copies behind).
//!
//! tmux must be installed (`scripts/test` installs it when missing); these tests install
//! nothing.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Test;
use runbook::engine::event::Event;

/// Quick local steps: one generates, one is skipped by `when`, one fails and the run goes on
/// (nothing listens on port 9 of the loopback), one more after it.
const RUNBOOK: &str = r#"
    version: 1
    name: screen
    summary: Quick local steps, for a look at the terminal output
    steps:
      - id: token
        title: A new token
        generate: { format: hex, bytes: 16 }
      - id: legacy
        title: Only for the old setup
        when: "false"
        generate: { format: hex }
      - id: probe
        title: Probe a service that is down
        on_failure: continue
        http.check: { url: "http://127.0.0.1:9/health", request_timeout: 5s }
      - id: after
        generate: { format: base64 }
"#;

/// A tmux server of its own (its own socket), killed when the test ends, pass or fail.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    /// Run `script` in a detached session of `cols` x `rows`.
    fn start(script: &Path, cols: u16, rows: u16) -> Tmux {
        let t = Tmux {
            socket: common::unique("runbook-screen"),
        };
        let st = t
            .cmd()
            .args(["new-session", "-d", "-s", "run"])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .arg(format!("sh {}", script.display()))
            .status()
            .expect("tmux is needed for this test (scripts/test installs it)");
        assert!(st.success(), "tmux new-session");
        t
    }

    /// The pane's text; `history` adds the lines scrolled off, `join` undoes the terminal's
    /// own wrapping (so a line the tool printed too long shows as one long line).
    fn capture(&self, history: bool, join: bool) -> String {
        let mut c = self.cmd();
        c.args(["capture-pane", "-p", "-t", "run"]);
        if history {
            c.args(["-S", "-"]);
        }
        if join {
            c.arg("-J");
        }
        let out = c.output().expect("tmux capture-pane");
        assert!(out.status.success(), "tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait for the script's last line (`[exit N]`).
    fn wait_for_exit(&self) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture(true, true);
            if screen.contains("[exit ") {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the run did not end:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

fn quote(s: &std::ffi::OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"))
}

/// A shell script that runs the test's command as `Test::run` would, prints its exit code,
/// and waits (so the pane stays to be captured).
fn script(t: &Test) -> std::path::PathBuf {
    script_of(t, &[t])
}

/// A shell script that runs each command in turn (in the directory of `t`), then prints the
/// last one's exit code and waits.
fn script_of(t: &Test, commands: &[&Test]) -> std::path::PathBuf {
    let mut line = String::from("exec 2>&1\n");
    for c in commands {
        let cmd = c.command();
        if let Some(dir) = cmd.get_current_dir() {
            line.push_str(&format!("cd {}\n", quote(dir.as_os_str())));
        }
        line.push_str("env");
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                line.push_str(&format!(" {}={}", k.to_string_lossy(), quote(v)));
            }
        }
        line.push_str(&format!(" {}", quote(cmd.get_program())));
        for a in cmd.get_args() {
            line.push_str(&format!(" {}", quote(a)));
        }
        line.push('\n');
    }
    line.push_str("echo \"[exit $?]\"\nsleep 600\n");
    let path = t.dir.path().join("run.sh");
    std::fs::write(&path, line).unwrap();
    path
}

fn screen_test() -> Test {
    Test::new()
        .with_repo_environments()
        .runbook("screen", RUNBOOK)
        .args(&["run", "screen", "--env", "sandbox", "--no-preflight"])
}

/// Durations and run ids change from run to run.
fn redact(screen: &str) -> String {
    let run_id = regex::Regex::new(r"\d{8}-\d{6}-[0-9a-f]{4}").unwrap();
    let dur = regex::Regex::new(r"\b(\d+m\d{2}s|\d+(\.\d+)?(ms|s))\b").unwrap();
    let s = run_id.replace_all(screen, "[run-id]");
    let s = dur.replace_all(&s, "[time]");
    s.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_matches('\n')
        .to_string()
}

#[test]
fn the_final_screen_at_80_columns() {
    let t = screen_test();
    let tmux = Tmux::start(&script(&t), 80, 60);
    tmux.wait_for_exit();
    let screen = tmux.capture(false, false);
    assert!(screen.contains("[exit 0]"), "{screen}");
    insta::assert_snapshot!(redact(&screen));
}

#[test]
fn no_line_is_wider_than_a_40_column_terminal() {
    let t = screen_test();
    let tmux = Tmux::start(&script(&t), 40, 30);
    let all = tmux.wait_for_exit();
    assert!(all.contains("[exit 0]"), "{all}");
    for line in all.lines() {
        assert!(
            line.trim_end().chars().count() <= 40,
            "wider than 40 columns: {line:?}\n{all}"
        );
    }
    // The progress redrew in place: each step's result is on the screen once.
    for id in ["token", "probe", "after"] {
        let n = all
            .lines()
            .filter(|l| l.contains(&format!("] {id} ")) || l.ends_with(&format!("] {id}")))
            .count();
        assert_eq!(n, 1, "`{id}` shown {n} times:\n{all}");
    }
}

/// A kind's warning (psql's "statement logging stays on", when a role may not turn it off) is
/// a line that stays on a real terminal, not the spinner's passing message; it is in the
/// run's `events.jsonl`, and the summary repeats it.
#[test]
fn a_warning_stays_on_the_terminal_in_the_event_log_and_in_the_summary() {
    let sb = common::sandbox();
    let role = format!("rb_warn_{}", common::unique("w").replace('-', "_"));
    let environments = format!(
        "
        version: 1
        environments:
          sandbox:
            databases:
              direct:
                host: {host}
                port: {port}
                name: runbook_admin
                user: runbook_admin
                sslmode: disable
        ",
        host = sb.get("SANDBOX_PG_HOST"),
        port = sb.get("SANDBOX_PG_PORT"),
    );
    // The role may not set `log_statement`: it changes its own password with logging on.
    let runbook = format!(
        r#"
        version: 1
        name: warn
        summary: A role sets its own password
        inputs:
          admin_pw: {{ description: admin password, secret: true }}
          new_pw: {{ description: new password, secret: true }}
        steps:
          - id: create
            psql:
              database: direct
              password: "{{{{ inputs.admin_pw }}}}"
              sql: "CREATE ROLE {role} LOGIN PASSWORD 'old-pw-of-{role}'"
          - id: own
            psql:
              database: direct
              user: {role}
              password: "old-pw-of-{role}"
              set_password: {{ role: {role}, password: "{{{{ inputs.new_pw }}}}" }}
          - id: drop
            psql:
              database: direct
              password: "{{{{ inputs.admin_pw }}}}"
              sql: "DROP ROLE {role}"
        "#
    );
    let t = Test::new()
        .environments(&environments)
        .runbook("warn", &runbook)
        .env(
            "RUNBOOK_INPUT_ADMIN_PW",
            &sb.get("SANDBOX_PG_ADMIN_PASSWORD"),
        )
        .env("RUNBOOK_INPUT_NEW_PW", "new-pw-9c1f7e3a5b")
        .args(&["run", "warn", "--env", "sandbox"]);
    let tmux = Tmux::start(&script(&t), 200, 60);
    let all = tmux.wait_for_exit();
    assert!(all.contains("[exit 0]"), "{all}");
    let warning = "own: statement logging stays on (permission denied to set parameter \"log_statement\"); a server log can hold the SCRAM verifier, never the password";
    let lines: Vec<&str> = all.lines().map(str::trim_end).collect();
    // A line of its own while the run goes on, and again under the summary.
    assert!(
        lines.contains(&format!("⚠ warning: {warning}").as_str()),
        "{all}"
    );
    let done = lines
        .iter()
        .position(|l| l.starts_with("done in "))
        .unwrap_or_else(|| panic!("no summary:\n{all}"));
    assert_eq!(
        lines[done + 1..done + 3],
        ["  1 warning:".to_string(), format!("    {warning}")],
        "{all}"
    );
    let runs = t.state_dir().join("runs");
    let log: Vec<Event> = common::walk(&runs)
        .into_iter()
        .filter(|f| f.ends_with("events.jsonl"))
        .flat_map(|f| common::parse_events(&std::fs::read_to_string(&f).unwrap(), "events"))
        .collect();
    let (id, text) = warning.split_once(": ").unwrap();
    assert!(
        log.contains(&Event::Warning {
            id: id.into(),
            text: text.into(),
        }),
        "{log:?}"
    );
}

/// `list`, `preflight` and `runs` on a terminal of 80 and of 120 columns: no line wider than
/// the terminal, and what is too long for its column wraps there at a space (a runbook's name
/// and a check's name stay whole). On a pipe, every row stays one line.
#[test]
fn tables_fit_80_and_120_columns_and_rows_stay_whole_on_a_pipe() {
    let sb = common::sandbox();
    let t = common::shipped(&sb).runbook("screen", RUNBOOK);
    let commands = [
        t.then(&["list"]),
        t.then(&["preflight", "db-password", "--env", "sandbox"]),
        t.then(&["run", "screen", "--env", "sandbox", "--no-preflight"]),
        t.then(&["runs"]),
    ];
    for width in [80u16, 120] {
        let tmux = Tmux::start(
            &script_of(&t, &commands.iter().collect::<Vec<_>>()),
            width,
            40,
        );
        let all = tmux.wait_for_exit();
        assert!(all.contains("[exit 0]"), "{all}");
        for line in all.lines() {
            assert!(
                line.trim_end().chars().count() <= width as usize,
                "wider than {width} columns: {line:?}\n{all}"
            );
        }
        let lines: Vec<&str> = all.lines().map(str::trim_end).collect();
        // Names and checks whole, at the start of their row.
        for name in [
            "compromise-response ",
            "db-password-alternating ",
            "webhook-secret ",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(name)),
                "`{name}` not whole at {width}:\n{all}"
            );
        }
        assert!(
            lines.iter().any(|l| l.starts_with("ssh        app  ")),
            "{all}"
        );
        // Cells wrap at spaces: every word of a long summary is on the screen whole.
        let summary =
            "Respond to a suspected secret compromise - rotate, audit access, revoke, record";
        for word in summary.split(' ') {
            assert!(
                lines
                    .iter()
                    .any(|l| l.split_whitespace().any(|w| w == word)),
                "`{word}` cut at {width}:\n{all}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("RUN ") && l.ends_with("OPERATOR")),
            "{all}"
        );
    }
    // On a pipe: one line a runbook, a check, a run.
    let list = t.again(&["list"]);
    list.assert_code(0);
    let rows = list.stdout.lines().count();
    let files = std::fs::read_dir(t.runbooks_dir())
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n != "environments.yaml" && n.to_string_lossy().ends_with(".yaml")
        })
        .count();
    assert_eq!(rows, files + 1, "{}", list.stdout);
}

impl Tmux {
    /// Wait until the visible pane shows `text`; the pane then.
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture(false, false);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{text:?} never showed:\n{}",
                self.capture(true, false)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let st = self
            .cmd()
            .args(["send-keys", "-t", "run"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(st.success(), "tmux send-keys");
    }
}

/// A script whose shell survives Ctrl-C (the run gets it, the pane stays to be captured).
fn script_keeping_ctrl_c(t: &Test) -> std::path::PathBuf {
    let path = script(t);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("trap : INT\n{text}")).unwrap();
    path
}

/// The shipped `db-password` on a terminal of 80x24 and of 120x40: when its gate is asked,
/// the gate of the step being approved, what it does and what it changes are on the screen
/// (the compact plan does not push them off). Declined: nothing changes.
#[test]
fn the_gate_being_asked_is_on_the_screen_at_80x24_and_120x40() {
    let sb = common::sandbox();
    for (cols, rows) in [(80u16, 24u16), (120, 40)] {
        let t = common::shipped(&sb).args(&["run", "db-password", "--env", "sandbox"]);
        let tmux = Tmux::start(&script(&t), cols, rows);
        let screen = tmux.wait_for("(y/n)");
        for shown in [
            "GATE at step `alter_role`:",
            "  does: set the password of role",
            "  effect: CHANGES the password of role",
            "Rotate the password of role",
        ] {
            assert!(
                screen.contains(shown),
                "{shown:?} not on the {cols}x{rows} screen:\n{screen}"
            );
        }
        if rows >= 40 {
            assert!(screen.contains("Plan: db-password on sandbox"), "{screen}");
            assert!(screen.contains("4/7 GATE   alter_role"), "{screen}");
        }
        for line in screen.lines() {
            assert!(line.chars().count() <= cols as usize, "{line:?}\n{screen}");
        }
        tmux.keys(&["n", "Enter"]);
        let all = tmux.wait_for_exit();
        assert!(all.contains("[exit 3]"), "{all}");
    }
}

/// Two gates: the first approved, the second declined. Each leaves one line; the declined
/// one reads as declined; the summary counts the steps that did not run.
const TWO_GATES: &str = r#"
    version: 1
    name: gates
    summary: Two gates
    steps:
      - id: first
        confirm: Make the first change?
        generate: { format: hex }
      - id: second
        confirm: Make the second change?
        generate: { format: hex }
      - id: last
        generate: { format: hex }
"#;

#[test]
fn an_answered_gate_is_one_line_and_a_declined_one_says_so() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("gates", TWO_GATES)
        .args(&["run", "gates", "--env", "sandbox", "--no-preflight"]);
    let tmux = Tmux::start(&script(&t), 80, 40);
    tmux.wait_for("Make the first change?");
    tmux.keys(&["y", "Enter"]);
    tmux.wait_for("Make the second change?");
    tmux.keys(&["n", "Enter"]);
    tmux.wait_for_exit();
    let screen = tmux.capture(false, false);
    assert!(screen.contains("[exit 3]"), "{screen}");
    insta::assert_snapshot!(redact(&screen));
}

/// Ctrl-C at a gate stops the run at once, and the prompt says so instead of showing its
/// default (`› no`) as if it were an answer.
#[test]
fn ctrl_c_at_a_gate_says_the_run_stops_there() {
    let t = Test::new()
        .with_repo_environments()
        .runbook("gates", TWO_GATES)
        .args(&["run", "gates", "--env", "sandbox", "--no-preflight"]);
    let tmux = Tmux::start(&script_keeping_ctrl_c(&t), 80, 40);
    tmux.wait_for("Make the first change?");
    tmux.keys(&["C-c"]);
    tmux.wait_for_exit();
    let screen = tmux.capture(false, false);
    assert!(screen.contains("[exit 130]"), "{screen}");
    assert!(!screen.contains("› no"), "{screen}");
    assert!(
        !screen.contains("stopping after the current step"),
        "{screen}"
    );
    insta::assert_snapshot!(redact(&screen));
}

/// Ctrl-C during a step: the message above the spinner, no frozen spinner line left above
/// `^C`, then the step's end and the summary, with the step that did not run counted.
#[test]
fn ctrl_c_during_a_step_leaves_no_stale_spinner_line() {
    let sb = common::sandbox();
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "slow",
            r#"
            version: 1
            name: slow
            summary: a slow step between two quick ones
            steps:
              - id: first
                generate: { format: hex }
              - id: slow
                ssh.exec: { host: app, command: "echo started; sleep 2" }
              - id: last
                generate: { format: hex }
            "#,
        )
        .args(&["run", "slow", "--env", "sandbox", "--no-preflight"]);
    let tmux = Tmux::start(&script_keeping_ctrl_c(&t), 80, 40);
    tmux.wait_for("│ started");
    tmux.keys(&["C-c"]);
    tmux.wait_for_exit();
    let screen = tmux.capture(false, false);
    assert!(screen.contains("[exit 130]"), "{screen}");
    assert!(
        !screen.lines().any(|l| l.contains("[2/3] slow │")),
        "a spinner line stayed:\n{screen}"
    );
    insta::assert_snapshot!(redact(&screen));
}

/// A failed run counts the step it never reached; its resume counts the steps finished
/// before it as skipped, so each summary adds up to every step.
#[test]
fn summaries_add_up_after_a_failure_and_after_a_resume() {
    let sb = common::sandbox();
    let marker = format!("/tmp/runbook-sandbox/{}", common::unique("resume"));
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "counted",
            &format!(
                r#"
                version: 1
                name: counted
                summary: the second step fails until a file exists
                steps:
                  - id: first
                    generate: {{ format: hex }}
                  - id: needs_file
                    ssh.exec: {{ host: app, command: "test -f {marker}" }}
                  - id: last
                    generate: {{ format: hex }}
                "#
            ),
        )
        .args(&["run", "counted", "--env", "sandbox", "--no-preflight"]);
    let failed = t.run();
    failed.assert_code(1);
    std::fs::write(&marker, "").unwrap();
    let resumed = t.again(&["resume", "--no-preflight"]);
    let _ = std::fs::remove_file(&marker);
    resumed.assert_code(0);
    let summary = |text: &str| {
        let redactor = t.redactor();
        redactor
            .apply(text)
            .lines()
            .filter(|l| l.contains("skipped") || l.contains(": FAILED") || l.contains("done in"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    insta::assert_snapshot!(format!(
        "{}\n---\n{}",
        summary(&failed.stderr),
        summary(&resumed.stderr)
    ));
}

/// A run resumed inside its rollback says which step failed once: "`x` failed", never
/// "step `x` failed failed".
#[test]
fn a_rollback_resumed_names_the_failed_step_once() {
    let sb = common::sandbox();
    let marker = format!("/tmp/runbook-sandbox/{}", common::unique("undo"));
    let t = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "undo",
            &format!(
                r#"
                version: 1
                name: undo
                summary: a step that fails, and a rollback that fails until a file exists
                steps:
                  - id: change
                    on_failure: undo
                    ssh.exec: {{ host: app, command: "false" }}
                rollback:
                  - id: undo
                    ssh.exec: {{ host: app, command: "test -f {marker}" }}
                "#
            ),
        )
        .args(&["run", "undo", "--env", "sandbox", "--no-preflight"]);
    let failed = t.run();
    failed.assert_code(1);
    std::fs::write(&marker, "").unwrap();
    let resumed = t.again(&["resume", "--no-preflight"]);
    let _ = std::fs::remove_file(&marker);
    let text = t.redactor().apply(&resumed.stderr);
    assert!(!text.contains("failed failed"), "{text}");
    assert!(
        text.contains("rollback: change failed, running rollback from undo"),
        "{text}"
    );
    resumed.assert_code(1);
}

/// A manual step's instructions on an 80-column terminal: the paragraph a template made
/// ragged is reflowed to the width, the code block and the list keep their lines.
#[test]
fn manual_instructions_are_reflowed_to_the_terminal() {
    let t = Test::new()
        .runbook(
            "tell",
            r#"
            version: 1
            name: tell
            summary: Tell the team
            inputs:
              who: { description: Who restarts the workers }
            steps:
              - id: tell
                manual.confirm:
                  instructions: |
                    ## Tell {{ inputs.who }}
                    Post in the channel that {{ inputs.who }} may now restart the
                    workers of the queue, and that the old token stops working at
                    midnight.
                    ```sh
                    curl -X POST https://chat.example/hooks/rotation   --data 'done'
                    ```
                    - keep the thread open
                    - say when it is done
                  question: Told them?
            "#,
        )
        .args(&[
            "run",
            "tell",
            "--input",
            "who=the on-call engineer of the payments team in Europe",
        ]);
    let tmux = Tmux::start(&script(&t), 80, 40);
    let start = Instant::now();
    let screen = loop {
        let screen = tmux.capture(true, false);
        if screen.contains("Told them?") {
            break screen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never asked:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("  Post in the channel"))
        .unwrap_or_else(|| panic!("no instructions:\n{screen}"));
    assert_eq!(
        lines[at..at + 7],
        [
            "  Post in the channel that the on-call engineer of the payments team in Europe",
            "  may now restart the workers of the queue, and that the old token stops working",
            "  at midnight.",
            "  ```sh",
            "  curl -X POST https://chat.example/hooks/rotation   --data 'done'",
            "  ```",
            "  - keep the thread open",
        ],
        "{screen}"
    );
    let _ = tmux
        .cmd()
        .args(["send-keys", "-t", "run", "y", "Enter"])
        .status();
    let all = tmux.wait_for_exit();
    assert!(all.contains("[exit 0]"), "{all}");
}
