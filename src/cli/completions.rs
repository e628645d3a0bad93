//! `runbook completions SHELL` and `runbook man`: shell completions and a man page, both
//! generated from the clap definition of the command line, so they never drift from it.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use super::args::Cli;
use crate::session::{Failure, Kind};

/// Print the completion script of `shell` on stdout.
pub fn completions(shell: Shell) -> Result<(), Failure> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "runbook", &mut out);
    finish(out.flush())
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
