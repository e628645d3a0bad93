//! Asking the operator: the step-by-step question, the gate of a step with `confirm:`
//! (with the protected environment's typed name), and the prompter that masks every question.

use std::sync::atomic::Ordering;

use super::event::{Bus, Event, RunStatus};
use super::record::Record;
use super::types::{Engine, Flow};
use crate::catalog::Step;
use crate::steps::{Effect, PromptError, Prompter, StepAnswer};

impl Engine<'_> {
    /// A step's action as a question shows it: every line (the lines after the first
    /// indented, so they read as the command and not as the question), up to a screenful;
    /// a longer one says how many lines are left out and where to read them all.
    fn at_prompt(&self, action: &str) -> String {
        /// Enough for any command a person can read at a gate; the plan shows all of it.
        const LINES: usize = 15;
        let lines: Vec<&str> = action.lines().collect();
        let shown = if lines.len() > LINES {
            &lines[..LINES - 1]
        } else {
            &lines[..]
        };
        let mut out = shown.join("\n    ");
        if lines.len() > LINES {
            out.push_str(&format!(
                "\n    … {} more lines; see `runbook plan {} --env {}`",
                lines.len() - shown.len(),
                self.runbook.name(),
                self.env.name
            ));
        }
        out
    }

    /// Step by step: ask before the step; `Some` when the run stops here.
    pub(super) fn ask_step(
        &self,
        step: &Step,
        index: usize,
        total: usize,
        action: &str,
        prompter: &MaskedPrompter<'_>,
    ) -> Option<Flow> {
        let id = step.id();
        let phase = if step.rollback {
            "rollback step"
        } else {
            "step"
        };
        // Step by step is the operator's choice; inside a change window they are told that
        // production waits, half changed, while they read.
        let waiting = match self.interrupt.window_gate() {
            Some(g) => format!(
                "(inside the change window approved at `{g}`: {} is half changed until it ends)\n",
                self.env.name
            ),
            None => String::new(),
        };
        let question = if action.contains('\n') {
            format!(
                "{waiting}{phase} {index}/{total} `{id}`: {}\nRun it?",
                self.at_prompt(action)
            )
        } else {
            format!("{waiting}Run {phase} {index}/{total} `{id}`: {action}?")
        };
        match tokio::task::block_in_place(|| prompter.step(&question)) {
            Ok(StepAnswer::Run) => None,
            Ok(StepAnswer::Continue) => {
                self.options.step_by_step.store(false, Ordering::SeqCst);
                None
            }
            Ok(StepAnswer::Stop) => Some(Flow::Stop(
                RunStatus::Declined,
                Some(format!(
                    "stopped before step `{id}` (step by step); it and the steps after it did not run"
                )),
            )),
            Err(PromptError::Interrupted) => Some(Flow::Stop(
                RunStatus::Interrupted,
                Some(format!("interrupted before step `{id}`")),
            )),
            Err(PromptError::NotInteractive) => Some(Flow::Stop(
                RunStatus::Declined,
                Some(format!(
                    "cannot ask before step `{id}`: a step-by-step run needs a terminal"
                )),
            )),
        }
    }

    /// Ask at a gate. `--yes` approves; a protected environment also needs its name typed once.
    /// `approves`: the line that says which steps the answer approves (empty, or ending in a
    /// line break).
    pub(super) fn gate(
        &self,
        id: &str,
        question: &str,
        action: &str,
        effect: &Effect,
        approves: &str,
        prompter: &MaskedPrompter<'_>,
    ) -> Result<bool, PromptError> {
        let env = &self.env.name;
        if self.options.assume_yes {
            self.record(Record::Gate {
                id,
                approved: true,
                by: "--yes",
            })
            .map_err(|_| PromptError::Interrupted)?;
            self.bus.emit(Event::Gate {
                id: id.into(),
                question: question.into(),
                approved: true,
                by: "--yes".into(),
            });
            return Ok(true);
        }
        if !prompter.interactive() {
            return Err(PromptError::NotInteractive);
        }
        // What will happen first (what the step does, what it changes, as the plan says),
        // the question last: a terminal prompts on the last line.
        let effect = match effect {
            Effect::ReadOnly => "read-only".to_string(),
            Effect::Local => "local only (changes nothing elsewhere)".to_string(),
            Effect::Changes(what) => format!("CHANGES {what}"),
        };
        let approves = if approves.is_empty() {
            String::new()
        } else {
            format!("  {approves}")
        };
        let full = format!(
            "GATE at step `{id}`:\n  does: {}\n  effect: {effect}\n{approves}{question}",
            self.at_prompt(action).replace("\n    ", "\n        ")
        );
        let mut approved = tokio::task::block_in_place(|| prompter.confirm(&full))?;
        if approved && self.env.doc.protected && !self.nesting.env_confirmed.load(Ordering::SeqCst)
        {
            approved = tokio::task::block_in_place(|| {
                prompter.type_to_confirm(
                    &format!("`{env}` is a protected environment. Type its name to go on"),
                    env,
                )
            })?;
            self.nesting.env_confirmed.store(approved, Ordering::SeqCst);
        }
        let by = operator();
        self.record(Record::Gate {
            id,
            approved,
            by: &by,
        })
        .map_err(|_| PromptError::Interrupted)?;
        self.bus.emit(Event::Gate {
            id: id.into(),
            question: question.into(),
            approved,
            by,
        });
        Ok(approved)
    }
}

/// The engine's face of the CLI's prompter: every text is masked, and progress gets out of the way.
pub(super) struct MaskedPrompter<'a> {
    pub(super) inner: &'a dyn Prompter,
    pub(super) bus: &'a Bus,
    /// Told while a question waits, so Ctrl-C there is reported as what it does.
    pub(super) interrupt: &'a super::types::Interrupt,
}

impl Prompter for MaskedPrompter<'_> {
    fn confirm(&self, question: &str) -> Result<bool, PromptError> {
        let q = self.bus.redactor.redact(question).into_owned();
        self.interrupt
            .asking(|| self.bus.suspend(|| self.inner.confirm(&q)))
    }
    fn type_to_confirm(&self, question: &str, expected: &str) -> Result<bool, PromptError> {
        let q = self.bus.redactor.redact(question).into_owned();
        self.interrupt.asking(|| {
            self.bus
                .suspend(|| self.inner.type_to_confirm(&q, expected))
        })
    }
    fn ask(
        &self,
        label: &str,
        choices: Option<&[String]>,
        default: Option<&str>,
        secret: bool,
    ) -> Result<String, PromptError> {
        let l = self.bus.redactor.redact(label).into_owned();
        self.interrupt.asking(|| {
            self.bus
                .suspend(|| self.inner.ask(&l, choices, default, secret))
        })
    }
    fn ask_checked(
        &self,
        label: &str,
        secret: bool,
        twice: bool,
        check: &(dyn Fn(&str) -> Result<(), String> + Sync),
    ) -> Result<String, PromptError> {
        let l = self.bus.redactor.redact(label).into_owned();
        // What a refusal says is masked like every other text.
        let masked = |v: &str| check(v).map_err(|why| self.bus.redactor.redact(&why).into_owned());
        self.interrupt.asking(|| {
            self.bus
                .suspend(|| self.inner.ask_checked(&l, secret, twice, &masked))
        })
    }
    fn show(&self, markdown: &str) {
        let m = self.bus.redactor.redact(markdown).into_owned();
        self.bus.suspend(|| self.inner.show(&m));
    }
    fn interactive(&self) -> bool {
        self.inner.interactive()
    }
    fn step(&self, question: &str) -> Result<StepAnswer, PromptError> {
        let q = self.bus.redactor.redact(question).into_owned();
        self.interrupt
            .asking(|| self.bus.suspend(|| self.inner.step(&q)))
    }
}

/// Who is running this: the local user name.
pub fn operator() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(user_of_uid)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of this process's user in /etc/passwd (a root shell often has no `$USER`).
fn user_of_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(uid.as_str()))
        .and_then(|l| l.split(':').next().map(str::to_string));
    Some(name.unwrap_or(format!("uid {uid}")))
}
