//! Prompters: dialoguer on a terminal, a refusing one elsewhere. Every text they show (a
//! gate's question, a step's action, instructions, input labels and choices) comes from a
//! runbook, so its control characters are shown, never sent to the terminal
//! ([`crate::display`]).

use std::io::IsTerminal;

use console::{Term, style};
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};

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
            return Password::with_theme(&self.theme)
                .with_prompt(label.as_ref())
                .allow_empty_password(false)
                .interact_on(&term)
                .map_err(|_| not_answered(&term, &label));
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
        // dialoguer judges the value before it draws its mark of acceptance: a refused value
        // gets the refusal (`✘ …`) and the question again, never a tick first.
        let judge = |v: &String| check(v).map_err(|why| visible(&why).into_owned());
        if secret {
            let mut password = Password::with_theme(&self.theme)
                .with_prompt(label.clone())
                .allow_empty_password(false)
                .validate_with(judge);
            if twice {
                password = password.with_confirmation(
                    format!("{label} (again, to be sure it is typed right)"),
                    "the two entries differ; type it again, twice",
                );
            }
            return password.interact().map_err(map_err);
        }
        Input::<String>::with_theme(&self.theme)
            .with_prompt(label)
            .validate_with(|v: &String| judge(v))
            .interact_text()
            .map_err(map_err)
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
