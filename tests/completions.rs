//! `runbook completions` and `runbook man`: generated from the command-line definition, so
//! they parse and name every command.

mod common;

use std::io::Write;
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
    for sub in subcommands() {
        assert!(run.stdout.contains(&sub), "no completion for {sub}");
    }
}

#[test]
fn zsh_and_fish_completions_are_generated() {
    for shell in ["zsh", "fish"] {
        let run = Test::new().args(&["completions", shell]).run();
        run.assert_code(0);
        assert!(run.stdout.contains("plan"), "{shell}: {}", run.stdout);
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
