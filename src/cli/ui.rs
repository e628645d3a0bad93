//! Sinks that show a run: live progress on a terminal, timestamped lines elsewhere, JSON lines.
//!
//! The terminal and plain sinks show every string of an event with its control characters
//! visible ([`crate::display`]): names and commands come from a runbook, output lines from a
//! remote program, and neither may move the cursor, erase a line or recolour the screen. The
//! JSON sink keeps the exact strings (JSON escapes them).

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use console::style;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::event::{Event, ManualOutcome, Noted, RunStatus, Sink, Stamped, StepStatus};

/// Live progress: one spinner for the running step (n/m, title, elapsed, last output line),
/// a line per finished step with its duration, and a summary.
///
/// Every line fits the terminal's width: the spinner's line is cut (a line that wraps cannot
/// be redrawn in place, so it would flicker and leave copies behind) and printed lines are
/// wrapped by the sink itself, under their indent, so nothing is lost in a narrow terminal.
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
        TerminalSink {
            bar: None,
            width: terminal_width(),
        }
    }

    /// Print a line above the spinner; one too long for the terminal is wrapped, without
    /// its colours (a style cannot be cut in the middle safely).
    fn line(&self, s: &str) {
        let text = if console::measure_text_width(s) <= self.width {
            s.to_string()
        } else {
            wrap(&console::strip_ansi_codes(s), self.width)
        };
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// The first line of `s` in `room` columns, `…` where anything is left out.
    fn cut(&self, s: &str, room: usize) -> String {
        let mut lines = s.trim_end().lines();
        let first = lines.next().unwrap_or_default();
        let s = match lines.next() {
            Some(_) => format!("{first} …"),
            None => first.to_string(),
        };
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

/// The spinner of the running step, while one is drawn: what Ctrl-C's message is printed
/// above (the terminal's `^C` lands on the spinner's line, which is redrawn, so no frozen
/// copy of it stays on the screen).
fn active() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    static ACTIVE: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Print `text`, what Ctrl-C did, above the running step's spinner; false when none is drawn.
///
/// indicatif fills the spinner's line with spaces to the terminal's edge, so the terminal's
/// echo of the key (`^C`, when the terminal echoes control characters) wraps to a line of its
/// own: that line is cleared and the cursor put back on the spinner's, which the spinner then
/// clears itself before `text`. Without it, a frozen copy of the spinner stays above `^C`.
pub fn above_progress(text: &str) -> bool {
    match active().as_ref() {
        Some(bar) if !bar.is_hidden() => {
            if echoes_control_keys() {
                let term = console::Term::stderr();
                let _ = term.clear_line();
                let _ = term.move_cursor_up(1);
            }
            bar.println(text);
            true
        }
        _ => false,
    }
}

/// Whether the terminal on stderr echoes a control key as `^C` (ECHO and ECHOCTL).
fn echoes_control_keys() -> bool {
    // SAFETY: tcgetattr only writes the struct it is given, which is plain data.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(2, &mut t) } != 0 {
        return false;
    }
    t.c_lflag & libc::ECHO != 0 && t.c_lflag & libc::ECHOCTL != 0
}

/// The width of the terminal on stderr, at least 40 columns.
pub fn terminal_width() -> usize {
    (console::Term::stderr().size().1 as usize).clamp(40, 200)
}

/// The width a table printed on stdout must fit: the terminal's, or `None` when stdout is
/// not a terminal (a pipe or a file keeps one line a row).
pub fn stdout_width() -> Option<usize> {
    use std::io::IsTerminal;
    std::io::stdout()
        .is_terminal()
        .then(|| (console::Term::stdout().size().1 as usize).max(20))
}

/// The width of stderr when it is a terminal (`None` otherwise).
pub fn stderr_width() -> Option<usize> {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal().then(terminal_width)
}

/// `text` with every line longer than `width` columns wrapped at spaces (or anywhere, for a
/// word longer than the line), continuation lines indented two columns past the line's own
/// indent so they read as one item.
pub fn wrap(text: &str, width: usize) -> String {
    text.split('\n')
        .map(|l| wrap_line(l, width.max(10)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn wrap_line(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let indent = line.chars().take_while(|c| *c == ' ').count();
    let (first, hang) = (indent.min(width / 2), (indent + 2).min(width / 2));
    let mut lines = Vec::new();
    let mut cur = " ".repeat(first);
    let mut len = first;
    let mut empty = true;
    for word in line[indent..].split(' ').filter(|w| !w.is_empty()) {
        let mut w: Vec<char> = word.chars().collect();
        if !empty && len + 1 + w.len() > width {
            lines.push(std::mem::replace(&mut cur, " ".repeat(hang)));
            (len, empty) = (hang, true);
        }
        if !empty {
            cur.push(' ');
            len += 1;
        }
        // A word longer than the room left: cut it where the line ends.
        while len + w.len() > width {
            cur.extend(w.drain(..width - len));
            lines.push(std::mem::replace(&mut cur, " ".repeat(hang)));
            len = hang;
        }
        len += w.len();
        cur.extend(w);
        empty = false;
    }
    lines.push(cur);
    lines.join("\n")
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

/// The event as a person may see it: a remote program's redrawn lines (`\r`) as a terminal
/// would have left them, then every string with its control characters visible. Field by
/// field through `Event::visit_text`, which names every field.
pub fn shown(e: &Event) -> Cow<'_, Event> {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => visible(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    fn visible(s: &mut String) {
        if let Cow::Owned(vis) = crate::display::visible(s) {
            *s = vis;
        }
    }
    let mut out = e.clone();
    match &mut out {
        Event::StepProgress { line: s, .. }
        | Event::StepFinished {
            detail: Some(s), ..
        } if s.contains('\r') => *s = redrawn(s),
        _ => {}
    }
    out.visit_text(&mut visible, &mut walk);
    if out == *e {
        Cow::Borrowed(e)
    } else {
        Cow::Owned(out)
    }
}

/// Output lines redrawn with `\r` (a progress counter) as a terminal would have left them:
/// the text after the last carriage return of each line.
fn redrawn(text: &str) -> String {
    text.split('\n')
        .map(|l| {
            l.trim_end_matches('\r')
                .rsplit('\r')
                .next()
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Sink for TerminalSink {
    fn event(&mut self, e: &Stamped) {
        let event = shown(&e.event);
        match event.as_ref() {
            Event::RunStarted {
                run_id,
                runbook,
                env,
                steps,
                ..
            } => {
                self.line(&format!(
                    "{} {} on {} — {} (run {run_id})",
                    style("▶").cyan().bold(),
                    style(runbook).bold(),
                    style(env).bold(),
                    crate::plan::plural(*steps, "step")
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
                // Hidden until its prefix and message are set: no half-drawn first frame.
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
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
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(100));
                *active() = Some(bar.clone());
                if let Some(old) = self.bar.replace(bar) {
                    old.finish_and_clear();
                }
            }
            Event::StepProgress { line, id } => {
                if let Some(b) = &self.bar {
                    let shown = format!("{id} │ {}", line.trim());
                    b.set_message(self.cut(&shown, self.width.saturating_sub(20)));
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
            // The one line an answered gate leaves (the prompt clears its own): the answer,
            // who gave it, and the question, cut to the line.
            Event::Gate {
                id,
                approved,
                by,
                question,
            } => {
                let (mark, what) = if *approved {
                    (style("✔").green(), style("approved").green())
                } else {
                    (style("✗").red(), style("declined").red())
                };
                let head = format!("gate of {id} {what} by {by}");
                let room = self
                    .width
                    .saturating_sub(console::measure_text_width(&head) + 5);
                let question = if room >= 12 {
                    format!(": {}", self.cut(question, room))
                } else {
                    String::new()
                };
                self.line(&format!("{mark} {head}{question}"));
            }
            Event::Note { id, text } if !id.is_empty() => {
                self.line(&format!("{} {id}: {text}", style("!").yellow()));
            }
            Event::Note { text, .. } => self.line(text),
            // A line of its own above the spinner, never the spinner's passing message.
            Event::Warning { id, text } => {
                let head = style("⚠ warning:").yellow().bold();
                if id.is_empty() {
                    self.line(&format!("{head} {text}"));
                } else {
                    self.line(&format!("{head} {id}: {text}"));
                }
            }
            Event::Manual { id, outcome, by } => {
                let line = match outcome {
                    ManualOutcome::Done => format!(
                        "{} manual step {id} {} by {by}",
                        style("✔").green(),
                        style("done").green()
                    ),
                    ManualOutcome::Declined => format!(
                        "{} manual step {id} {} by {by}",
                        style("✗").red(),
                        style("declined").red()
                    ),
                    ManualOutcome::NotDoneByAPerson => format!(
                        "{} manual step {id} {} ({by}); it is left to do",
                        style("!").yellow().bold(),
                        style("not done by a person").yellow().bold()
                    ),
                };
                self.line(&line);
            }
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
                at,
                help,
                ..
            } => {
                if let Some(b) = self.bar.take() {
                    active().take();
                    b.finish_and_clear();
                }
                let (mark, word) = match status {
                    StepStatus::Ok => (style("✓").green(), None),
                    StepStatus::FailedIgnored => (
                        style("!").yellow(),
                        Some(style("failed, continuing").yellow()),
                    ),
                    StepStatus::Failed => (style("✗").red(), Some(style("failed").red())),
                    StepStatus::Declined => (style("✗").yellow(), Some(style("declined").yellow())),
                    StepStatus::Interrupted => (style("✗").red(), Some(style("interrupted").red())),
                    StepStatus::Skipped => (style("–").dim(), Some(style("skipped").dim())),
                };
                let word = word.map(|w| format!("{w} ")).unwrap_or_default();
                self.line(&format!(
                    "{mark} [{index}/{total}] {id} {word}{}",
                    style(fmt_ms(*duration_ms)).dim()
                ));
                if let Some(err) = error {
                    self.line(&format!("    {}", style(err).red()));
                }
                // All of it: what the step printed is what the operator needs to see.
                if let Some(d) = detail {
                    for l in d.lines() {
                        self.line(&format!("    │ {l}"));
                    }
                }
                if let Some(at) = at {
                    self.line(&format!("  {} {at}", style("at").dim()));
                }
                if let Some(h) = help {
                    self.line(&format!("  {} {h}", style("help:").cyan()));
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
                not_run,
                message,
                run_id,
                warnings,
                outstanding,
            } => {
                if let Some(b) = self.bar.take() {
                    active().take();
                    b.finish_and_clear();
                }
                let word = match status {
                    RunStatus::Done => style("done").green().bold(),
                    RunStatus::Failed => style("failed").red().bold(),
                    RunStatus::RolledBack => style("failed, rolled back").red().bold(),
                    RunStatus::Declined => style("stopped: declined").yellow().bold(),
                    RunStatus::Interrupted => style("interrupted").yellow().bold(),
                };
                self.line(&format!(
                    "{word} in {} — {} (run {run_id})",
                    fmt_ms(*duration_ms),
                    counts(*ok, *failed, *skipped, *not_run)
                ));
                if let Some(m) = message {
                    self.line(&format!("  {m}"));
                }
                for (heading, l) in summary_lines(warnings, outstanding) {
                    if heading {
                        self.line(&format!("  {}", style(l).yellow().bold()));
                    } else {
                        self.line(&format!("    {l}"));
                    }
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
            active().take();
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
        let event = shown(&e.event);
        let text = match event.as_ref() {
            Event::RunStarted {
                run_id,
                runbook,
                env,
                steps,
                ..
            } => {
                format!(
                    "run {run_id}: {runbook} on {env}, {}",
                    crate::plan::plural(*steps, "step")
                )
            }
            Event::StepStarted {
                index,
                total,
                id,
                action,
                ..
            } => format!(
                "step {index}/{total} {id}: {}",
                crate::plan::hanging(action, 4)
            ),
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
            Event::Warning { id, text } if id.is_empty() => format!("warning: {text}"),
            Event::Warning { id, text } => format!("warning: step {id}: {text}"),
            Event::Manual { id, outcome, by } => match outcome {
                ManualOutcome::Done => format!("manual step {id}: done by {by}"),
                ManualOutcome::Declined => format!("manual step {id}: declined by {by}"),
                ManualOutcome::NotDoneByAPerson => {
                    format!("manual step {id}: NOT DONE by a person ({by}); it is left to do")
                }
            },
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
                at,
                help,
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
                if let Some(at) = at {
                    s.push_str(&format!("\n  at {at}"));
                }
                if let Some(h) = help {
                    s.push_str(&format!("\n  help: {h}"));
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
                not_run,
                message,
                warnings,
                outstanding,
            } => {
                let mut s = format!(
                    "run {run_id}: {} in {} ({})",
                    run_word(*status),
                    fmt_ms(*duration_ms),
                    counts(*ok, *failed, *skipped, *not_run)
                );
                if let Some(m) = message {
                    s.push_str(&format!(": {m}"));
                }
                for (heading, l) in summary_lines(warnings, outstanding) {
                    s.push_str(if heading { "\n  " } else { "\n    " });
                    s.push_str(&l);
                }
                s
            }
        };
        // Built whole, then written at once: stderr is unbuffered, and `writeln!` on it makes
        // a system call per piece (the time, a space, the text, the newline), between which
        // the output of another process sharing the stream could land.
        let mut lines = String::with_capacity(e.ts.len() + text.len() + 2);
        for (i, l) in text.lines().enumerate() {
            if i == 0 {
                lines.push_str(&e.ts);
                lines.push(' ');
            }
            lines.push_str(l);
            lines.push('\n');
        }
        let _ = self.out.write_all(lines.as_bytes());
        let _ = self.out.flush();
    }
}

/// What a run's summary repeats under its last line: every warning, and the manual work
/// nobody did, each under a heading of its own (`1 warning:`): (is a heading, text).
fn summary_lines(warnings: &[Noted], outstanding: &[Noted]) -> Vec<(bool, String)> {
    let item = |n: &Noted| {
        let text = crate::plan::hanging(&n.text, 6);
        if n.id.is_empty() {
            (false, text)
        } else {
            (false, format!("{}: {text}", n.id))
        }
    };
    let mut out = Vec::new();
    if !warnings.is_empty() {
        let head = crate::plan::plural(warnings.len(), "warning");
        out.push((true, format!("{head}:")));
        out.extend(warnings.iter().map(item));
    }
    if !outstanding.is_empty() {
        let head = crate::plan::plural(outstanding.len(), "manual step");
        out.push((
            true,
            format!("{head} not done by a person, still to do by hand:"),
        ));
        out.extend(outstanding.iter().map(item));
    }
    out
}

/// The steps of a run, counted so that they add up to all of them: the steps it never
/// reached are "not run" (said only when there are some).
fn counts(ok: usize, failed: usize, skipped: usize, not_run: usize) -> String {
    let mut s = format!("{ok} ok, {failed} failed, {skipped} skipped");
    if not_run > 0 {
        s.push_str(&format!(", {not_run} not run"));
    }
    s
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
        // One write a line, the newline included.
        if let Ok(mut line) = serde_json::to_vec(e) {
            super::json::mark_written();
            line.push(b'\n');
            let _ = self.out.write_all(&line);
            let _ = self.out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;
    use super::{PlainSink, Sink};
    use crate::engine::event::{Event, Stamped};

    fn plain(event: Event) -> String {
        let mut out = Vec::new();
        PlainSink::new(&mut out).event(&Stamped {
            ts: "t".into(),
            event,
        });
        String::from_utf8(out).unwrap()
    }

    /// A failed step says where it is in its file and what to do, each on a line of its own,
    /// after what the step printed.
    #[test]
    fn a_failed_step_shows_its_place_and_help_on_lines_of_their_own() {
        let text = plain(Event::StepFinished {
            index: 2,
            total: 3,
            id: "restart".into(),
            status: crate::engine::event::StepStatus::Failed,
            duration_ms: 5,
            error: Some("exit code 3".into()),
            detail: Some("stderr: no such unit".into()),
            at: Some("runbooks/rotate.yaml:12:9".into()),
            help: Some("check the unit's name".into()),
            outputs: Default::default(),
        });
        assert_eq!(
            text,
            "t step 2/3 restart: FAILED in 5ms: exit code 3\n    | stderr: no such unit\n  at runbooks/rotate.yaml:12:9\n  help: check the unit's name\n"
        );
    }

    #[test]
    fn remote_output_cannot_drive_the_terminal() {
        let line = plain(Event::StepProgress {
            id: "deploy".into(),
            line: "\u{1b}]0;owned\u{7}\u{1b}[1A\u{1b}[2Kall good\u{202e}".into(),
        });
        assert_eq!(
            line,
            "t   deploy | \\e]0;owned\\x07\\e[1A\\e[2Kall good\\u{202e}\n"
        );
        // A redrawn progress counter is shown as the terminal would have left it.
        let detail = plain(Event::StepFinished {
            index: 1,
            total: 1,
            id: "deploy".into(),
            status: crate::engine::event::StepStatus::Ok,
            duration_ms: 5,
            error: None,
            detail: Some("10%\r50%\r100%\r\ndone\u{1b}[31m".into()),
            at: None,
            help: None,
            outputs: Default::default(),
        });
        assert!(
            detail.contains("    | 100%\n    | done\\e[31m\n"),
            "{detail}"
        );
    }

    #[test]
    fn long_lines_wrap_under_their_indent_and_fit() {
        let w = wrap(
            "    the command exited with 4 (expected 0) after a long wait",
            20,
        );
        assert_eq!(
            w,
            "    the command\n      exited with 4\n      (expected 0)\n      after a long\n      wait"
        );
        let long = wrap("  id: 0123456789abcdef0123456789", 16);
        assert!(long.lines().all(|l| l.chars().count() <= 16), "{long}");
        assert_eq!(
            long.replace(['\n', ' '], ""),
            "id:0123456789abcdef0123456789"
        );
        assert_eq!(wrap("short\n\nlines", 20), "short\n\nlines");
    }
}
