//! `run`, `resume`, `runs` and `abandon` on the command line: the terminal a session talks
//! through (prompter, sinks, wrapped text), and the tables of runs. What a run does around the
//! engine is [`crate::session`]'s.

use std::io::IsTerminal;
use std::sync::Arc;

use super::args::Output;
use super::{Ctx, json, prompt, report, ui};
use crate::diag::Problem;
use crate::engine::event::Sink;
use crate::session::{self, Failure, Frontend, Resume, Start};
use crate::steps::Prompter;

/// The terminal (or the pipes) a session talks through.
pub(super) struct Terminal {
    interactive: bool,
    color: bool,
    output: Output,
    prompter: Box<dyn Prompter>,
    /// The spinner of [`Frontend::status`], while one is shown.
    status: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Terminal {
    pub(super) fn new(interactive: bool, color: bool, output: Output) -> Terminal {
        let prompter: Box<dyn Prompter> = if interactive {
            Box::new(prompt::TerminalPrompter::new())
        } else {
            Box::new(prompt::NoPrompter)
        };
        Terminal {
            interactive,
            color,
            output,
            prompter,
            status: std::sync::Mutex::new(None),
        }
    }
}

impl Frontend for Terminal {
    fn interactive(&self) -> bool {
        self.interactive
    }

    fn prompter(&self) -> &dyn Prompter {
        self.prompter.as_ref()
    }

    fn report(&self, problems: &[Problem]) {
        report(problems, self.color);
    }

    /// Wrapped to the terminal's width when stderr is one.
    fn say(&self, text: &str) {
        if std::io::stderr().is_terminal() {
            eprint!("{}", ui::wrap(text, ui::terminal_width()));
        } else {
            eprint!("{text}");
        }
    }

    fn line(&self, text: &str) {
        eprintln!("{text}");
    }

    fn width(&self) -> Option<usize> {
        ui::stderr_width()
    }

    /// Above the running step's spinner when there is one; else on a line of its own.
    fn interrupted(&self, text: &str) {
        // Wrapped here: a line wider than the terminal breaks the spinner's redraw.
        let text = ui::wrap(&format!("Ctrl-C: {text}"), ui::terminal_width());
        if self.output != Output::Human || !ui::above_progress(&text) {
            eprintln!("\n{text}");
        }
    }

    /// A spinner on a terminal (stderr, human output); nothing on a pipe, where the line that
    /// follows says how it went.
    fn status(&self, text: Option<&str>) {
        if self.output != Output::Human || !std::io::stderr().is_terminal() {
            return;
        }
        let mut slot = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match text {
            Some(t) => {
                let bar = slot.get_or_insert_with(|| {
                    let bar = indicatif::ProgressBar::new_spinner();
                    bar.enable_steady_tick(std::time::Duration::from_millis(100));
                    bar
                });
                bar.set_message(crate::display::visible_line(t).into_owned());
            }
            None => {
                if let Some(bar) = slot.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }

    fn sinks(&self) -> Vec<Box<dyn Sink>> {
        let sink: Box<dyn Sink> = match self.output {
            Output::Json => Box::new(ui::JsonSink::new(std::io::stdout())),
            Output::Human if std::io::stderr().is_terminal() => Box::new(ui::TerminalSink::new()),
            Output::Human => Box::new(ui::PlainSink::new(std::io::stderr())),
        };
        vec![sink]
    }
}

impl Ctx {
    /// The session of a command: the directories, and a frontend that asks a person only when
    /// `interactive` (a terminal, human output).
    pub(super) fn session(&self, interactive: bool, output: Output) -> session::Session {
        session::Session {
            dir: self.dir.clone(),
            state_dir: self.state_dir.clone(),
            front: Arc::new(Terminal::new(interactive, self.color, output)),
        }
    }

    /// The session of a command that asks nobody.
    pub(super) fn offline(&self) -> session::Session {
        self.session(false, Output::Human)
    }

    /// A session that asks a person only on a terminal and with human output.
    fn run_session(&self, output: Output) -> session::Session {
        self.session(prompt::is_interactive() && output == Output::Human, output)
    }

    pub(super) fn run(&self, start: Start<'_>, output: Output) -> Result<(), Failure> {
        self.run_session(output).run(start)
    }

    /// `run --env a --env b …`: the series, then its report (stderr for people, one
    /// `series_finished` line for `--output json`), with the first failing environment's
    /// outcome as the command's.
    pub(super) fn run_series(
        &self,
        start: Start<'_>,
        envs: &[String],
        confirm_envs: &[String],
        output: Output,
    ) -> Result<(), Failure> {
        let (report, result) = self
            .run_session(output)
            .run_series(start, envs, confirm_envs)?;
        let exit_code = match &result {
            Ok(()) => super::exit::DONE,
            Err(f) => super::exit::code(f.kind),
        };
        if output == Output::Json {
            let mut fields = serde_json::json!({
                "ts": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                "event": "series_finished",
                "format": crate::engine::event::EVENT_FORMAT,
            });
            if let (Some(obj), Ok(serde_json::Value::Object(more))) =
                (fields.as_object_mut(), serde_json::to_value(&report))
            {
                obj.extend(more);
                let status = match &result {
                    Ok(()) => "done",
                    Err(_) => report
                        .environments
                        .iter()
                        .find(|e| e.failed.is_some())
                        .map_or("interrupted", |e| e.status.as_str()),
                };
                obj.insert("status".into(), status.into());
                obj.insert("exit_code".into(), exit_code.into());
                // A refusal before its run began printed no event: its error is here.
                let error = match &result {
                    Err(f) if !f.problems.is_empty() || !f.lines.is_empty() => {
                        json::error_object(f, exit_code)
                    }
                    _ => serde_json::Value::Null,
                };
                obj.insert("error".into(), error);
            }
            json::mark_written();
            println!("{fields}");
        }
        match result {
            Ok(()) => {
                eprintln!();
                for line in report.lines() {
                    eprintln!("{line}");
                }
                Ok(())
            }
            Err(f) => Err(report.lines().into_iter().fold(f.line(""), Failure::line)),
        }
    }

    pub(super) fn resume(&self, request: Resume<'_>, output: Output) -> Result<(), Failure> {
        self.run_session(output).resume(request)
    }

    pub(super) fn runs(&self, output: Output) -> Result<(), Failure> {
        let runs = self.offline().runs()?;
        match output {
            Output::Json => json::print_document(serde_json::json!({ "runs": runs })),
            Output::Human => {
                // The series column only where a run of several environments is listed.
                let series = runs.iter().any(|r| r.series.is_some());
                let rows: Vec<Vec<String>> = runs
                    .iter()
                    .map(|r| {
                        let status = if r.resumable {
                            format!("{} *", r.status)
                        } else {
                            r.status.clone()
                        };
                        let of = r.series.clone().unwrap_or_default();
                        let mut cells = vec![
                            &r.run_id,
                            &r.runbook,
                            &r.env,
                            &status,
                            &r.started,
                            &r.operator,
                        ];
                        if series {
                            cells.push(&of);
                        }
                        cells
                            .iter()
                            .map(|v| crate::display::visible_line(v).into_owned())
                            .collect()
                    })
                    .collect();
                let mut header = vec!["RUN", "RUNBOOK", "ENV", "STATUS", "STARTED", "OPERATOR"];
                let mut whole = vec!["RUN", "RUNBOOK", "ENV", "STATUS", "STARTED"];
                if series {
                    header.push("SERIES");
                    whole.push("SERIES");
                }
                print!(
                    "{}",
                    crate::table::render(&header, &whole, &rows, ui::stdout_width())
                );
                if runs.iter().any(|r| r.resumable) {
                    println!(
                        "\n* resumable: `runbook resume [RUN]` continues at the first unfinished step"
                    );
                }
            }
        }
        Ok(())
    }

    pub(super) fn abandon(&self, run_id: &str) -> Result<(), Failure> {
        self.offline().abandon(run_id)?;
        eprintln!("run {run_id} abandoned; the secrets it held are erased from its journal");
        Ok(())
    }
}
