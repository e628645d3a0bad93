//! Prompters: dialoguer on a terminal, a refusing one elsewhere. Every text they show (a
//! gate's question, a step's action, instructions, input labels and choices) comes from a
//! runbook, so its control characters are shown, never sent to the terminal
//! ([`crate::display`]).

use std::io::IsTerminal;

use console::{Term, style};
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Select};

use crate::display::{visible, visible_line};
use crate::steps::{PromptError, Prompter, StepAnswer};

/// Asks on the terminal (stderr), default No at every gate.
pub struct TerminalPrompter {
    theme: ColorfulTheme,
}

impl Default for TerminalPrompter {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalPrompter {
    pub fn new() -> TerminalPrompter {
        TerminalPrompter {
            theme: ColorfulTheme::default(),
        }
    }
}

fn map_err(e: dialoguer::Error) -> PromptError {
    let dialoguer::Error::IO(_) = e;
    PromptError::Interrupted
}

/// What a prompt left on the screen when Ctrl-C ended it: its line, with the default it
/// showed (`› no`), which would read like an answer. Replaced by a line that says what
/// happened, and the cursor dialoguer hid is shown again.
fn not_answered(term: &Term, prompt: &str) -> PromptError {
    let _ = term.clear_line();
    let _ = term.write_line(&format!(
        "{} {prompt} {}",
        style("✗").red(),
        style("· not answered (Ctrl-C): the run stops here").red()
    ));
    let _ = term.show_cursor();
    PromptError::Interrupted
}

/// One hidden line, read key by key with the terminal in raw mode, so Ctrl-C is a key that
/// ends the question, not a signal a run's handler takes while a line-mode read of the
/// terminal goes on waiting (dialoguer's `Password` reads a line: Ctrl-C during a run was
/// caught and the prompt stayed). Nothing is echoed; Backspace takes a character back.
fn read_hidden(term: &Term, prompt: &str) -> Result<String, PromptError> {
    use console::Key;
    let _ = term.write_str(&format!(
        "{} {prompt} {} ",
        style("?").yellow(),
        style("›").dim()
    ));
    let mut value = String::new();
    loop {
        match term.read_key() {
            Ok(Key::Enter) => break,
            Ok(Key::Backspace) => {
                value.pop();
            }
            Ok(Key::Char(c)) if !c.is_control() => value.push(c),
            Ok(Key::CtrlC) | Err(_) => return Err(not_answered(term, prompt)),
            Ok(_) => {}
        }
    }
    // The line is the question's until it is judged (`ask_hidden` marks it).
    let _ = term.clear_line();
    Ok(value)
}

/// A hidden value `check` accepts (a refusal says why, then asks again), typed twice when
/// `twice` and asked again while the two differ. An empty value is asked again.
fn ask_hidden(
    term: &Term,
    label: &str,
    twice: bool,
    check: &dyn Fn(&String) -> Result<(), String>,
) -> Result<String, PromptError> {
    loop {
        let value = read_hidden(term, label)?;
        let refused = if value.is_empty() {
            Some("a value is needed".to_string())
        } else {
            check(&value).err()
        };
        if let Some(why) = refused {
            let _ = term.write_line(&format!(
                "{} {label} {} {why}",
                style("✘").red(),
                style("·").dim()
            ));
            continue;
        }
        if twice {
            let again = read_hidden(
                term,
                &format!("{label} (again, to be sure it is typed right)"),
            )?;
            if again != value {
                let _ = term.write_line(&format!(
                    "{} {label} {} the two entries differ; type it again, twice",
                    style("✘").red(),
                    style("·").dim()
                ));
                continue;
            }
        }
        let _ = term.write_line(&format!(
            "{} {label} {} ********",
            style("✔").green(),
            style("·").dim()
        ));
        return Ok(value);
    }
}

impl Prompter for TerminalPrompter {
    /// A gate: once answered, its lines give way to the run's one line for it (approved or
    /// declined, by whom).
    fn confirm(&self, question: &str) -> Result<bool, PromptError> {
        let term = Term::stderr();
        let (prompt, above) = one_line_prompt(question);
        match Confirm::with_theme(&self.theme)
            .with_prompt(&prompt)
            .default(false)
            .wait_for_newline(true)
            .report(false)
            .interact_on_opt(&term)
        {
            Ok(a) => {
                let _ = term.clear_last_lines(above);
                Ok(a.unwrap_or(false))
            }
            Err(_) => Err(not_answered(&term, &prompt)),
        }
    }

    fn type_to_confirm(&self, question: &str, expected: &str) -> Result<bool, PromptError> {
        let term = Term::stderr();
        loop {
            let (prompt, above) = one_line_prompt(&format!("{question} (or press Enter to stop)"));
            let typed: String = match Input::with_theme(&self.theme)
                .with_prompt(&prompt)
                .allow_empty(true)
                .report(false)
                .interact_text_on(&term)
            {
                Ok(t) => t,
                Err(_) => return Err(not_answered(&term, &prompt)),
            };
            let typed = typed.trim();
            if typed == expected {
                let _ = term.clear_last_lines(above);
                return Ok(true);
            }
            if typed.is_empty() {
                let _ = term.clear_last_lines(above);
                return Ok(false);
            }
            eprintln!(
                "  `{}` is not `{}`.",
                visible_line(typed),
                visible_line(expected)
            );
        }
    }

    fn ask(
        &self,
        label: &str,
        choices: Option<&[String]>,
        default: Option<&str>,
        secret: bool,
    ) -> Result<String, PromptError> {
        let label = visible_line(label);
        if let Some(choices) = choices {
            let start = default
                .and_then(|d| choices.iter().position(|c| c == d))
                .unwrap_or(0);
            let shown: Vec<String> = choices
                .iter()
                .map(|c| visible_line(c).into_owned())
                .collect();
            let i = Select::with_theme(&self.theme)
                .with_prompt(label)
                .items(&shown)
                .default(start)
                .interact_opt()
                .map_err(map_err)?
                .ok_or(PromptError::Interrupted)?;
            return Ok(choices[i].clone());
        }
        let term = Term::stderr();
        if secret {
            return ask_hidden(&term, &label, false, &|_| Ok(()));
        }
        let mut input = Input::<String>::with_theme(&self.theme);
        match default {
            // What Enter gives is shown with its control characters visible; the value itself
            // stays as written.
            Some(d) if visible_line(d) != d => {
                input = input
                    .with_prompt(format!("{label} (Enter: {})", visible_line(d)))
                    .default(d.to_string())
                    .show_default(false);
            }
            Some(d) => input = input.with_prompt(label.as_ref()).default(d.to_string()),
            None => input = input.with_prompt(label.as_ref()),
        }
        input
            .interact_text_on(&term)
            .map_err(|_| not_answered(&term, &label))
    }

    fn ask_checked(
        &self,
        label: &str,
        secret: bool,
        twice: bool,
        check: &(dyn Fn(&str) -> Result<(), String> + Sync),
    ) -> Result<String, PromptError> {
        let label = visible_line(label).into_owned();
        // Ctrl-C leaves no stale prompt line and no hidden cursor (see `not_answered`).
        let term = Term::stderr();
        // dialoguer judges the value before it draws its mark of acceptance: a refused value
        // gets the refusal (`✘ …`) and the question again, never a tick first.
        let judge = |v: &String| check(v).map_err(|why| visible(&why).into_owned());
        if secret {
            return ask_hidden(&term, &label, twice, &judge);
        }
        Input::<String>::with_theme(&self.theme)
            .with_prompt(label.clone())
            .validate_with(|v: &String| judge(v))
            .interact_text_on(&term)
            .map_err(|_| not_answered(&term, &label))
    }

    fn show(&self, markdown: &str) {
        eprintln!();
        for line in render_markdown(markdown, instructions_width()).lines() {
            eprintln!("  {line}");
        }
        eprintln!();
    }

    fn interactive(&self) -> bool {
        true
    }

    fn step(&self, question: &str) -> Result<StepAnswer, PromptError> {
        // A typed letter and Enter, no default: a stray Enter must neither run a step nor
        // end the run.
        let term = Term::stderr();
        let (prompt, _) = one_line_prompt(&format!(
            "{question} [y]es / [n]o, stop / [c]ontinue without asking"
        ));
        let answer: String = Input::with_theme(&self.theme)
            .with_prompt(&prompt)
            .validate_with(|a: &String| -> Result<(), &str> {
                parse_step_answer(a).map(|_| ()).ok_or("answer y, n or c")
            })
            .interact_text_on(&term)
            .map_err(|_| not_answered(&term, &prompt))?;
        parse_step_answer(&answer).ok_or(PromptError::Interrupted)
    }
}

fn parse_step_answer(a: &str) -> Option<StepAnswer> {
    match a.trim().to_lowercase().as_str() {
        "y" | "yes" => Some(StepAnswer::Run),
        "n" | "no" => Some(StepAnswer::Stop),
        "c" | "continue" => Some(StepAnswer::Continue),
        _ => None,
    }
}

/// Print all of `question` but its last line (wrapped to the terminal), and return that line
/// for the prompt, and how many lines were printed above it (each fits the terminal, so a
/// caller can clear them): a prompt wider than the terminal wraps, and the prompt's redraw
/// on every key then repeats its first lines on the screen.
fn one_line_prompt(question: &str) -> (String, usize) {
    let width = super::ui::terminal_width().saturating_sub(12);
    let wrapped = super::ui::wrap(&visible(question.trim_end()), width);
    let mut lines: Vec<&str> = wrapped.lines().collect();
    let last = lines.pop().unwrap_or_default().trim_start().to_string();
    let above = lines.len();
    for l in lines {
        eprintln!("{l}");
    }
    (last, above)
}

/// Used when stdin or stderr is not a terminal: it never asks, so a gate can never hang.
pub struct NoPrompter;

impl Prompter for NoPrompter {
    fn confirm(&self, _: &str) -> Result<bool, PromptError> {
        Err(PromptError::NotInteractive)
    }
    fn type_to_confirm(&self, _: &str, _: &str) -> Result<bool, PromptError> {
        Err(PromptError::NotInteractive)
    }
    fn ask(
        &self,
        _: &str,
        _: Option<&[String]>,
        _: Option<&str>,
        _: bool,
    ) -> Result<String, PromptError> {
        Err(PromptError::NotInteractive)
    }
    fn show(&self, markdown: &str) {
        for line in render_markdown(markdown, instructions_width()).lines() {
            eprintln!("  {line}");
        }
    }
    fn interactive(&self) -> bool {
        false
    }
}

/// True when a person can answer: stdin and stderr are terminals.
pub fn is_interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Markdown for a terminal `width` columns wide (see [`super::markdown`]), control
/// characters visible.
pub fn render_markdown(md: &str, width: usize) -> String {
    super::markdown::render(&visible(md), width)
}

/// The width instructions are reflowed to on stderr: the terminal's, less the two columns
/// they are indented by; 80 when stderr is not a terminal (a log keeps lines of its own).
fn instructions_width() -> usize {
    let cols = if std::io::stderr().is_terminal() {
        super::ui::terminal_width()
    } else {
        80
    };
    cols.saturating_sub(2)
}
