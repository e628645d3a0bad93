//! `runbook completions` and `runbook man`: generated from the command-line definition, so
//! they parse and name every command. Completion is dynamic and tested the way a shell uses
//! it: the script is sourced in `bash` and its completion function called with COMP_WORDS and
//! COMP_CWORD set, and what it leaves in COMPREPLY is read.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::Test;

/// The commands `runbook --help` lists (the command line is the binary's own, not a library
/// type).
fn subcommands() -> Vec<String> {
    let help = Test::new().args(&["--help"]).run();
    help.assert_code(0);
    let names: Vec<String> = help
        .stdout
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        // A command's line starts two spaces in; its wrapped description, further in.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(names.len() > 10, "{}", help.stdout);
    names
}

/// What bash's completion function for `runbook` puts in COMPREPLY for the line `words`
/// (the last word is the one being completed), after sourcing the script of `runbook
/// completions bash` in a new `bash`, with `env` set.
fn complete_in(env: &[(&str, &std::ffi::OsStr)], cwd: &Path, words: &[&str]) -> Vec<String> {
    let script = Command::new(common::BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success());
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect();
    let prev = words.len().checked_sub(2).map_or("", |i| words[i]);
    let program = format!(
        "source /dev/stdin\n\
         compopt() {{ return 0; }}\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         COMP_TYPE=9\n\
         _clap_complete_runbook runbook \"${{COMP_WORDS[COMP_CWORD]}}\" '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let mut bash = Command::new("bash");
    bash.arg("--norc")
        .arg("-c")
        .arg(&program)
        .current_dir(cwd)
        .env_remove("RUNBOOK_DIR")
        .env_remove("RUNBOOK_STATE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        bash.env(k, v);
    }
    let mut child = bash.spawn().expect("bash");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&script.stdout)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The values among candidates: an empty word also gets the options (clap_complete offers
/// them next to a value), which these tests do not check.
fn values(candidates: Vec<String>) -> Vec<String> {
    candidates
        .into_iter()
        .filter(|c| !c.starts_with('-'))
        .collect()
}

/// As [`complete_in`], in the repository (whose `runbooks/` is the default directory).
fn complete(words: &[&str]) -> Vec<String> {
    complete_in(&[], &common::repo(), words)
}

#[test]
fn bash_completion_parses_and_completes_every_command() {
    let run = Test::new().args(&["completions", "bash"]).run();
    run.assert_code(0);
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    bash.stdin
        .take()
        .unwrap()
        .write_all(run.stdout.as_bytes())
        .unwrap();
    let out = bash.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The script calls this binary back: every command is completed, by the function itself.
    let offered = complete(&["runbook", ""]);
    for sub in subcommands() {
        assert!(
            offered.contains(&sub),
            "no completion for {sub}: {offered:?}"
        );
    }
    assert_eq!(complete(&["runbook", "pr"]), ["preflight"]);
}

/// The runbook names of the directory, not its files: `run d<TAB>` is a runbook, never
/// `docs/`.
#[test]
fn bash_completes_runbook_names_from_the_runbook_directory() {
    let mut names = values(complete(&["runbook", "run", ""]));
    names.sort();
    assert_eq!(
        names,
        [
            "compromise-response",
            "db-password",
            "db-password-alternating",
            "image-audit",
            "r2-credentials",
            "runner-token",
            "ssm-bootstrap",
            "webhook-secret",
        ]
    );
    let mut d = complete(&["runbook", "run", "d"]);
    d.sort();
    assert_eq!(d, ["db-password", "db-password-alternating"]);
    for cmd in ["plan", "preflight", "show", "docs"] {
        assert!(
            complete(&["runbook", cmd, "web"]) == ["webhook-secret"],
            "{cmd}"
        );
    }
}

/// `--env` completes the environments of `environments.yaml`, `--from` and `--only` the step
/// ids of the runbook on the line, in order, and `--input` its inputs as `name=`, then an
/// input's choices.
#[test]
fn bash_completes_environments_steps_and_inputs_of_the_named_runbook() {
    for words in [
        &["runbook", "run", "db-password", "--env", ""][..],
        &["runbook", "plan", "db-password", "--env", ""],
        &["runbook", "run", "--env", ""],
        &["runbook", "run", "x", "--confirm-env", ""],
    ] {
        assert_eq!(
            complete(words),
            ["production", "staging", "sandbox"],
            "{words:?}"
        );
    }
    assert_eq!(
        complete(&["runbook", "run", "db-password", "--env", "st"]),
        ["staging"]
    );
    let steps = [
        "current_user",
        "current",
        "new_password",
        "alter_role",
        "store",
        "redeploy",
        "verify",
    ];
    assert_eq!(
        complete(&["runbook", "run", "db-password", "--from", ""]),
        steps
    );
    assert_eq!(
        complete(&[
            "runbook",
            "run",
            "db-password",
            "--env",
            "sandbox",
            "--only",
            "re"
        ]),
        ["redeploy"]
    );
    // The next step of a comma list.
    assert_eq!(
        complete(&["runbook", "run", "db-password", "--only", "store,v"]),
        ["store,verify"]
    );
    // No runbook on the line, or an unknown one: nothing to offer.
    assert!(complete(&["runbook", "run", "--from", ""]).is_empty());
    assert!(complete(&["runbook", "run", "nope", "--from", ""]).is_empty());

    assert_eq!(
        complete(&["runbook", "run", "compromise-response", "--input", ""]),
        ["secrets=", "suspected_since="]
    );
    assert_eq!(
        complete(&["runbook", "plan", "compromise-response", "-i", "su"]),
        ["suspected_since="]
    );
    assert_eq!(
        complete(&[
            "runbook",
            "run",
            "compromise-response",
            "--input",
            "secrets=r"
        ]),
        ["secrets=r2-credentials", "secrets=runner-token"]
    );
    // Several choices: `all`, then the next one after a comma, none offered twice.
    assert_eq!(
        complete(&["runbook", "run", "compromise-response", "-i", "secrets=a"]),
        ["secrets=all"]
    );
    assert_eq!(
        complete(&[
            "runbook",
            "run",
            "compromise-response",
            "-i",
            "secrets=runner-token,r"
        ]),
        ["secrets=runner-token,r2-credentials"]
    );
}

/// The directory is `--dir` (either spelling) or `RUNBOOK_DIR`, as for a real command; a
/// secret input is not offered to `run` (refused there), and a broken or unreadable file
/// costs its own candidates only, silently.
#[test]
fn bash_completion_reads_the_directory_of_the_line_and_survives_broken_files() {
    let t = Test::new()
        .runbook(
            "alpha",
            r#"
            version: 1
            name: alpha
            summary: First
            inputs:
              token: { description: A token, secret: true }
              region: { description: Where, choices: [eu, us] }
            steps:
              - id: one
                generate: { format: hex }
              - id: two
                generate: { format: hex }
            rollback:
              - id: undo
                generate: { format: hex }
            "#,
        )
        .runbook("broken", "version: 1\nname: [unclosed\n  steps: {\n")
        .runbook("notmapping", "- just\n- a list\n")
        // A terminal escape in a name: never typed into the line or drawn on the terminal.
        .runbook(
            "evil",
            "version: 1\nname: \"al\\e[31mpha\"\nsummary: s\nsteps: []\n",
        )
        .environments(
            r#"
            version: 1
            environments:
              dev: {}
              "d\e]0;title\u0007": {}
            "#,
        );
    std::fs::write(t.runbooks_dir().join("binary.yaml"), [0xff, 0xfe, 0, 1]).unwrap();
    let dir = t.runbooks_dir();
    let elsewhere = common::repo();
    let d = dir.to_str().unwrap();
    for words in [
        &["runbook", "--dir", d, "run", ""][..],
        &["runbook", &format!("--dir={d}"), "run", ""],
        &["runbook", "run", "--dir", d, ""],
    ] {
        assert_eq!(
            values(complete_in(&[], &elsewhere, words)),
            ["alpha"],
            "{words:?}"
        );
    }
    let env = [("RUNBOOK_DIR", dir.as_os_str())];
    assert_eq!(
        values(complete_in(&env, &elsewhere, &["runbook", "run", ""])),
        ["alpha"]
    );
    assert_eq!(
        complete_in(&env, &elsewhere, &["runbook", "run", "alpha", "--env", ""]),
        ["dev"]
    );
    // Main steps only: a rollback step is not selectable.
    assert_eq!(
        complete_in(&env, &elsewhere, &["runbook", "run", "alpha", "--from", ""]),
        ["one", "two"]
    );
    assert_eq!(
        complete_in(&env, &elsewhere, &["runbook", "run", "alpha", "-i", ""]),
        ["region="]
    );
    assert_eq!(
        complete_in(&env, &elsewhere, &["runbook", "plan", "alpha", "-i", ""]),
        ["token=", "region="]
    );
    // A directory that does not exist: nothing, and no error on the prompt.
    let missing = [("RUNBOOK_DIR", std::ffi::OsStr::new("/nonexistent/runbooks"))];
    assert!(values(complete_in(&missing, &elsewhere, &["runbook", "run", ""])).is_empty());
    assert!(complete_in(&missing, &elsewhere, &["runbook", "run", "x", "--env", ""]).is_empty());
}

/// `resume` completes the runs it can continue, `abandon` those it can give up, from the
/// state directory of the line (`--state-dir` or `RUNBOOK_STATE_DIR`).
#[test]
fn bash_completes_run_ids_from_the_state_directory() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = Test::new().runbook(
        "closed",
        &format!(
            r#"
            version: 1
            name: closed
            summary: A check of a port nothing listens on
            steps:
              - id: key
                generate: {{ format: hex }}
              - id: up
                http.check: {{ url: "http://127.0.0.1:{port}/", attempts: 1 }}
            "#
        ),
    );
    t.then(&["run", "closed", "--no-preflight"])
        .run()
        .assert_code(1);
    let runs = t.again(&["runs", "--output", "json"]);
    runs.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    let id = doc["runs"][0]["run_id"].as_str().unwrap().to_string();
    let state = t.state_dir();
    let s = state.to_str().unwrap();
    let elsewhere = common::repo();
    assert_eq!(
        values(complete_in(
            &[],
            &elsewhere,
            &["runbook", "--state-dir", s, "resume", ""]
        )),
        vec![id.clone()]
    );
    let env = [("RUNBOOK_STATE_DIR", state.as_os_str())];
    assert_eq!(
        values(complete_in(&env, &elsewhere, &["runbook", "abandon", ""])),
        vec![id.clone()]
    );
    assert_eq!(
        complete_in(&env, &elsewhere, &["runbook", "resume", &id[..4]]),
        vec![id.clone()]
    );
    t.again(&["abandon", &id]).assert_code(0);
    // Given up: nothing to resume or abandon any more.
    assert!(values(complete_in(&env, &elsewhere, &["runbook", "resume", ""])).is_empty());
    assert!(values(complete_in(&env, &elsewhere, &["runbook", "abandon", ""])).is_empty());
}
/// zsh, fish, elvish and PowerShell source a registration that calls the binary back; the
/// answer it gives zsh and fish (asked the way their scripts ask) completes the commands.
#[test]
fn zsh_and_fish_completions_are_generated() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = Test::new().args(&["completions", shell]).run();
        run.assert_code(0);
        assert!(
            run.stdout.contains("RUNBOOK_COMPLETE") && run.stdout.contains(common::BIN),
            "{shell}: {}",
            run.stdout
        );
    }
    for shell in ["zsh", "fish"] {
        let out = Command::new(common::BIN)
            .args(["--", "runbook", "pla"])
            .env("RUNBOOK_COMPLETE", shell)
            .env("_CLAP_COMPLETE_INDEX", "1")
            .current_dir(common::repo())
            .output()
            .unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("plan"), "{shell}: {text}");
    }
}

#[test]
fn man_page_mentions_every_command() {
    let run = Test::new().args(&["man"]).run();
    run.assert_code(0);
    assert!(run.stdout.starts_with(".ie"), "{}", &run.stdout[..200]);
    assert!(run.stdout.contains(".TH runbook 1"));
    for sub in subcommands().iter().filter(|s| *s != "help") {
        assert!(
            run.stdout.contains(&format!(".SS \"runbook {sub}\"")),
            "the man page has no section for `{sub}`"
        );
    }
    // The examples of `run` and `plan` are in it.
    assert!(run.stdout.contains("\\-\\-format md"));
}

#[test]
fn run_and_plan_help_carry_examples() {
    for cmd in ["run", "plan"] {
        let run = Test::new().args(&[cmd, "--help"]).run();
        run.assert_code(0);
        assert!(
            run.stdout
                .contains(&format!("Examples:\n  runbook {cmd} db-password")),
            "{}",
            run.stdout
        );
    }
}
