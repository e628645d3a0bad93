//! `runbook completions SHELL` and `runbook man`: shell completions and a man page, both
//! generated from the clap definition of the command line, so they never drift from it.
//!
//! Completions are dynamic: the script a shell sources calls `runbook` back with
//! `RUNBOOK_COMPLETE=<shell>` and the words of the line, and clap_complete's engine answers
//! from the clap definition, asking `complete.rs` for the values only the project knows
//! (runbook, environment, step, input and run names).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use super::args::Cli;
use super::complete;
use crate::session::{Failure, Kind};

/// The variable that turns a call of `runbook` into a completion request (clap's default,
/// `COMPLETE`, is too common a name to act on).
pub const COMPLETE_VAR: &str = "RUNBOOK_COMPLETE";

/// When the shell asks for completions (`RUNBOOK_COMPLETE` set): answer on stdout and end the
/// process. Nothing is said on stderr and a failure ends quietly: a broken runbook file must
/// never fill the operator's prompt with errors.
pub fn answer_request() {
    match std::env::var_os(COMPLETE_VAR) {
        Some(v) if !v.is_empty() && v != "0" => {}
        _ => return,
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    // The words of the line being completed come after `--`.
    let words: Vec<OsString> = args
        .iter()
        .position(|a| a == "--")
        .map(|i| args[i + 1..].to_vec())
        .unwrap_or_default();
    complete::set_context(context_of(&words));
    let current_dir = std::env::current_dir().ok();
    let done = clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .bin("runbook")
        .try_complete(args, current_dir.as_deref());
    let _ = std::io::stdout().flush();
    std::process::exit(if done.is_ok() { 0 } else { 1 });
}

/// What the candidates depend on: the directories and the runbook named so far, read by clap
/// itself (so `--dir=x`, `RUNBOOK_DIR` and the default mean what they mean in a real run),
/// ignoring every error a half-written line has.
fn context_of(words: &[OsString]) -> complete::Context {
    let mut cx = complete::Context {
        dir: PathBuf::from("runbooks"),
        ..Default::default()
    };
    if words.is_empty() {
        return cx;
    }
    let Ok(m) = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(words)
    else {
        return cx;
    };
    if let Some(dir) = m.try_get_one::<PathBuf>("dir").ok().flatten() {
        cx.dir = dir.clone();
    }
    cx.state_dir = m
        .try_get_one::<PathBuf>("state_dir")
        .ok()
        .flatten()
        .cloned();
    if let Some((name, sub)) = m.subcommand() {
        cx.command = Some(name.to_string());
        cx.runbook = sub.try_get_one::<String>("name").ok().flatten().cloned();
    }
    cx
}

/// Print the registration script of `shell` on stdout: it completes `runbook` by calling this
/// binary back (see [`answer_request`]).
pub fn completions(shell: Shell) -> Result<(), Failure> {
    let shell: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Elvish => &Elvish,
        Shell::PowerShell => &Powershell,
        _ => {
            return Err(Failure::quiet(Kind::Invalid).line("error: no completions for this shell"));
        }
    };
    // The binary the shell calls back: as invoked (`runbook`, found on PATH), or, when given
    // as a path, that path made absolute so the script works from any directory.
    let mut completer = std::env::args_os()
        .next()
        .map_or_else(|| PathBuf::from("runbook"), PathBuf::from);
    if completer.components().count() > 1
        && completer.is_relative()
        && let Ok(cwd) = std::env::current_dir()
    {
        completer = cwd.join(completer);
    }
    let mut script = Vec::new();
    let r = shell
        .write_registration(
            COMPLETE_VAR,
            "runbook",
            "runbook",
            &completer.to_string_lossy(),
            &mut script,
        )
        .and_then(|()| {
            let mut out = std::io::stdout().lock();
            out.write_all(&script)?;
            out.flush()
        });
    finish(r)
}

/// Print the man page (roff) on stdout: one page with a section per command, since the
/// `runbook-plan(1)` pages a multi-page set would refer to are never installed.
pub fn man() -> Result<(), Failure> {
    let mut page = Vec::new();
    let r = render_man(&mut page).and_then(|()| {
        // Every rendered part starts with the same two string definitions; keep the first.
        let mut seen = std::collections::HashSet::new();
        let mut out = std::io::stdout().lock();
        for line in String::from_utf8_lossy(&page).lines() {
            let preamble = line.starts_with(".ie \\n(.g") || line.starts_with(".el .ds Aq");
            if !preamble || seen.insert(line.to_string()) {
                writeln!(out, "{line}")?;
            }
        }
        out.flush()
    });
    finish(r)
}

fn render_man(w: &mut Vec<u8>) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    // Built, so every subcommand's usage reads `runbook plan …`.
    cmd.build();
    let top = clap_mangen::Man::new(cmd.clone());
    top.render_title(w)?;
    top.render_name_section(w)?;
    top.render_synopsis_section(w)?;
    top.render_description_section(w)?;
    top.render_options_section(w)?;
    writeln!(w, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("runbook {}", sub.get_name());
        writeln!(w, ".SS \"{name}\"")?;
        // The global options are described once, at the top.
        let sub = sub
            .clone()
            .bin_name(&name)
            .mut_args(|a| if a.is_global_set() { a.hide(true) } else { a });
        let man = clap_mangen::Man::new(sub.clone());
        let mut part = Vec::new();
        man.render_synopsis_section(&mut part)?;
        man.render_description_section(&mut part)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut part)?;
        }
        if sub.get_after_help().is_some() {
            man.render_extra_section(&mut part)?;
        }
        // A command's own headings become paragraphs under its subsection.
        for line in String::from_utf8_lossy(&part).lines() {
            match line.strip_prefix(".SH ") {
                Some(heading) => writeln!(w, ".PP\n\\fB{}\\fR\n.br", title_case(heading))?,
                None => writeln!(w, "{line}")?,
            }
        }
    }
    top.render_extra_section(w)?;
    top.render_version_section(w)
}

/// `SYNOPSIS` → `Synopsis`.
fn title_case(s: &str) -> String {
    let s = s.trim_matches('"').to_lowercase();
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn finish(r: std::io::Result<()>) -> Result<(), Failure> {
    match r {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            Err(Failure::quiet(Kind::StepFailed)
                .line(format!("error: cannot write to stdout: {e}")))
        }
    }
}
