//! Sinks that show a run: live progress on a terminal, timestamped lines elsewhere, JSON lines.

use std::io::Write;
use std::time::Duration;

use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::event::{Event, RunStatus, Sink, Stamped, StepStatus};

/// Live progress: one spinner for the running step (n/m, title, elapsed, last output line),
/// a line per finished step with its duration, and a summary.
pub struct TerminalSink {
    bar: Option<ProgressBar>,
    width: usize,
}

impl Default for TerminalSink {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalSink {
    pub fn new() -> TerminalSink {
        let width = console::Term::stderr().size().1 as usize;
        TerminalSink {
            bar: None,
            width: width.clamp(40, 200),
        }
    }

    fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    fn cut(&self, s: &str, room: usize) -> String {
        let s = s.replace(['\r', '\t'], " ");
        if s.chars().count() <= room {
            s
        } else {
            let mut t: String = s.chars().take(room.saturating_sub(1)).collect();
            t.push('…');
            t
        }
    }
}

pub fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

impl Sink for TerminalSink {
    fn event(&mut self, e: &Stamped) {
        match &e.event {
            Event::RunStarted {
                run_id,
                runbook,
                env,
                steps,
                ..
            } => {
                self.line(&format!(
                    "{} {} on {} — {steps} steps (run {run_id})",
                    style("▶").cyan().bold(),
                    style(runbook).bold(),
                    style(env).bold()
                ));
            }
            Event::StepStarted {
                index,
                total,
                id,
                title,
                action,
                ..
            } => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} [{prefix}] {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(format!("{index}/{total}"));
                let head = if title == id {
                    id.clone()
                } else {
                    format!("{id} — {title}")
                };
                bar.set_message(
                    self.cut(&format!("{head}: {action}"), self.width.saturating_sub(20)),
                );
                bar.enable_steady_tick(Duration::from_millis(100));
                if let Some(old) = self.bar.replace(bar) {
                    old.finish_and_clear();
                }
            }
            Event::StepProgress { line, id } => {
                if let Some(b) = &self.bar {
                    let room = self.width.saturating_sub(24 + id.len());
                    b.set_message(format!("{id} │ {}", self.cut(line.trim(), room)));
                }
            }
            Event::StepSkipped {
                index,
                total,
                id,
                reason,
            } => {
                self.line(&format!(
                    "{} [{index}/{total}] {id} {}",
                    style("–").dim(),
                    style(format!("skipped ({reason})")).dim()
                ));
            }
            Event::Gate {
                id, approved, by, ..
            } => {
                let what = if *approved {
                    style("approved").green()
                } else {
                    style("declined").red()
                };
                self.line(&format!(
                    "{} gate of {id} {what} by {by}",
                    style("?").yellow()
                ));
            }
            Event::Note { text, .. } => self.line(text),
            Event::StepRetry {
                id,
                attempt,
                attempts,
                error,
                delay_ms,
            } => {
                self.line(&format!(
                    "{} {id}: attempt {attempt}/{attempts} failed: {error}; again in {}",
                    style("↻").yellow(),
                    fmt_ms(*delay_ms)
                ));
            }
            Event::StepFinished {
                index,
                total,
                id,
                status,
                duration_ms,
                error,
                detail,
                ..
            } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                let (mark, word) = match status {
                    StepStatus::Ok => (style("✓").green(), style("").dim()),
                    StepStatus::FailedIgnored => {
                        (style("!").yellow(), style("failed, continuing").yellow())
                    }
                    StepStatus::Failed => (style("✗").red(), style("failed").red()),
                    StepStatus::Declined => (style("✗").yellow(), style("declined").yellow()),
                    StepStatus::Interrupted => (style("✗").red(), style("interrupted").red()),
                    StepStatus::Skipped => (style("–").dim(), style("skipped").dim()),
                };
                eprintln!(
                    "{mark} [{index}/{total}] {id} {word} {}",
                    style(fmt_ms(*duration_ms)).dim()
                );
                if let Some(err) = error {
                    eprintln!("    {}", style(err).red());
                }
                if let Some(d) = detail {
                    for l in d.lines() {
                        eprintln!("    │ {l}");
                    }
                }
            }
            Event::RollbackStarted { failed, from } => {
                self.line(&format!(
                    "{} {failed} failed: rolling back from {from}",
                    style("↺").yellow().bold()
                ));
            }
            Event::RunFinished {
                status,
                duration_ms,
                ok,
                failed,
                skipped,
                message,
                run_id,
            } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                let word = match status {
                    RunStatus::Done => style("done").green().bold(),
                    RunStatus::Failed => style("failed").red().bold(),
                    RunStatus::RolledBack => style("failed, rolled back").red().bold(),
                    RunStatus::Declined => style("stopped: declined").yellow().bold(),
                    RunStatus::Interrupted => style("interrupted").yellow().bold(),
                };
                eprintln!(
                    "{word} in {} — {ok} ok, {failed} failed, {skipped} skipped (run {run_id})",
                    fmt_ms(*duration_ms)
                );
                if let Some(m) = message {
                    eprintln!("  {m}");
                }
            }
        }
    }

    fn suspend(&mut self, f: &mut dyn FnMut()) -> bool {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
        true
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Plain timestamped lines, no escape codes: for logs and CI.
pub struct PlainSink<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> PlainSink<W> {
    pub fn new(out: W) -> Self {
        PlainSink { out }
    }
}

impl<W: Write + Send> Sink for PlainSink<W> {
    fn event(&mut self, e: &Stamped) {
        let text = match &e.event {
            Event::RunStarted {
                run_id,
                runbook,
                env,
                steps,
                ..
            } => {
                format!("run {run_id}: {runbook} on {env}, {steps} steps")
            }
            Event::StepStarted {
                index,
                total,
                id,
                action,
                ..
            } => format!("step {index}/{total} {id}: {action}"),
            Event::StepProgress { id, line } => format!("  {id} | {line}"),
            Event::StepSkipped {
                index,
                total,
                id,
                reason,
            } => format!("step {index}/{total} {id}: skipped ({reason})"),
            Event::Gate {
                id,
                question,
                approved,
                by,
            } => {
                format!(
                    "gate {id}: {question} -> {} by {by}",
                    if *approved { "approved" } else { "declined" }
                )
            }
            Event::Note { id, text } => format!("  {id}: {text}"),
            Event::StepRetry {
                id,
                attempt,
                attempts,
                error,
                delay_ms,
            } => {
                format!(
                    "step {id}: attempt {attempt}/{attempts} failed: {error}; retrying in {}",
                    fmt_ms(*delay_ms)
                )
            }
            Event::StepFinished {
                index,
                total,
                id,
                status,
                duration_ms,
                error,
                detail,
                ..
            } => {
                let mut s = format!(
                    "step {index}/{total} {id}: {} in {}",
                    status_word(*status),
                    fmt_ms(*duration_ms)
                );
                if let Some(err) = error {
                    s.push_str(&format!(": {err}"));
                }
                if let Some(d) = detail {
                    for l in d.lines() {
                        s.push_str(&format!("\n    | {l}"));
                    }
                }
                s
            }
            Event::RollbackStarted { failed, from } => {
                format!("rollback: {failed} failed, running rollback from {from}")
            }
            Event::RunFinished {
                run_id,
                status,
                duration_ms,
                ok,
                failed,
                skipped,
                message,
            } => {
                let mut s = format!(
                    "run {run_id}: {} in {} ({ok} ok, {failed} failed, {skipped} skipped)",
                    run_word(*status),
                    fmt_ms(*duration_ms)
                );
                if let Some(m) = message {
                    s.push_str(&format!(": {m}"));
                }
                s
            }
        };
        for (i, l) in text.lines().enumerate() {
            let _ = if i == 0 {
                writeln!(self.out, "{} {l}", e.ts)
            } else {
                writeln!(self.out, "{l}")
            };
        }
        let _ = self.out.flush();
    }
}

fn status_word(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Ok => "ok",
        StepStatus::Failed => "FAILED",
        StepStatus::FailedIgnored => "failed (continuing)",
        StepStatus::Declined => "declined",
        StepStatus::Interrupted => "interrupted",
        StepStatus::Skipped => "skipped",
    }
}

fn run_word(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Done => "done",
        RunStatus::Failed => "FAILED",
        RunStatus::RolledBack => "FAILED (rolled back)",
        RunStatus::Declined => "declined",
        RunStatus::Interrupted => "interrupted",
    }
}

/// One JSON object per event per line (`--output json`).
pub struct JsonSink<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonSink<W> {
    pub fn new(out: W) -> Self {
        JsonSink { out }
    }
}

impl<W: Write + Send> Sink for JsonSink<W> {
    fn event(&mut self, e: &Stamped) {
        if let Ok(line) = serde_json::to_string(e) {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }
}
