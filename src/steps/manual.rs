//! `manual.confirm`: work only a person can do (a web dashboard), with instructions, a wait,
//! and optionally values collected from the operator (hidden entry for secrets).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CheckCx, Effect, Kind, Output, OutputSpec, Outputs, PromptError, RunCx, StepError};
use crate::diag::Problem;

pub struct ManualConfirm;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// What the operator must do, in Markdown.
    pub instructions: String,
    /// Values to collect once the work is done, by output name.
    #[serde(default)]
    pub collect: IndexMap<String, Collect>,
    /// The question that ends the step (default: "Done?"). Answering No stops the run.
    #[serde(default)]
    pub question: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    /// The prompt shown to the operator.
    pub description: String,
    /// Hidden entry; the value is a secret.
    #[serde(default)]
    pub secret: bool,
    /// A regular expression the whole value must match.
    #[serde(default)]
    pub pattern: Option<String>,
}

impl Kind for ManualConfirm {
    const NAME: &'static str = "manual.confirm";
    const SUMMARY: &'static str =
        "Show instructions to the operator, wait until they are done, and collect values.";
    type Params = Params;

    fn outputs(p: &Params, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        p.collect
            .iter()
            .map(|(name, c)| {
                if c.secret {
                    OutputSpec::secret(name)
                } else {
                    OutputSpec::public(name)
                }
            })
            .collect()
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        for (name, c) in &p.collect {
            if let Some(pat) = &c.pattern
                && let Err(e) = regex::Regex::new(&format!("^(?:{pat})$"))
            {
                cx.problem_at(
                    "collect",
                    Problem::error(
                        "runbook::bad-pattern",
                        format!("invalid pattern for `{name}`: {e}"),
                    ),
                );
            }
        }
    }

    fn interactive(_: &Params) -> bool {
        true
    }

    fn describe(p: &Params) -> String {
        let first = p
            .instructions
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .trim_start_matches('#')
            .trim();
        if p.collect.is_empty() {
            format!("operator: {first}")
        } else {
            let names: Vec<&str> = p.collect.keys().map(String::as_str).collect();
            format!("operator: {first} (collects {})", names.join(", "))
        }
    }

    fn effect(_: &Params) -> Effect {
        Effect::Local
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let prompter = cx.prompter;
        if !prompter.interactive() {
            if cx.assume_yes && p.collect.is_empty() {
                prompter.show(&p.instructions);
                return Ok(Vec::new());
            }
            return Err(StepError::new("this manual step needs an operator at a terminal")
                .with_detail("run it in a terminal; `--yes` can only skip manual steps that collect no values"));
        }
        prompter.show(&p.instructions);
        let mut outputs = Vec::new();
        for (name, c) in &p.collect {
            let re = c
                .pattern
                .as_ref()
                .and_then(|pat| regex::Regex::new(&format!("^(?:{pat})$")).ok());
            let value = loop {
                let v = tokio::task::block_in_place(|| {
                    prompter.ask(&c.description, None, None, c.secret)
                })
                .map_err(prompt_err)?;
                let v = v.trim().to_string();
                if v.is_empty() {
                    prompter.show(&format!("`{name}` cannot be empty."));
                } else if c.secret && crate::secret::check_len(&v).is_err() {
                    prompter.show(&format!(
                        "`{name}` is a secret and needs at least {} characters; try again.",
                        crate::secret::MIN_SECRET_LEN
                    ));
                } else if re.as_ref().is_some_and(|re| !re.is_match(&v)) {
                    prompter.show(&format!(
                        "`{name}` does not have the expected form; try again."
                    ));
                } else {
                    break v;
                }
            };
            if c.secret {
                (cx.add_secret)(&value)?;
            }
            outputs.push(Output {
                name: name.clone(),
                value: value.into(),
                secret: c.secret,
            });
        }
        let question = p.question.as_deref().unwrap_or("Done?");
        let done =
            tokio::task::block_in_place(|| prompter.confirm(question)).map_err(prompt_err)?;
        if !done {
            return Err(StepError::declined("the operator answered no"));
        }
        Ok(outputs)
    }

    fn by_hand(p: &Params, cx: &crate::docs::HandCx<'_>) -> Option<String> {
        // A blockquote keeps the instructions' own headings and lists inside this step.
        let mut s: String = p
            .instructions
            .trim_end()
            .lines()
            .map(|l| format!("> {l}").trim_end().to_string() + "\n")
            .collect();
        if !p.collect.is_empty() {
            s.push_str("\nThen keep these values:\n\n");
            for (name, c) in &p.collect {
                if c.secret {
                    let file = cx.secret_file(name);
                    s.push_str(&format!(
                        "- {}: a secret; paste it into the file `{file}` (`{}` below) without it \
                         showing: `(umask 077 && read -rs v && printf '%s' \"$v\" > {file})`\n",
                        c.description,
                        cx.secret_placeholder(name)
                    ));
                } else {
                    s.push_str(&format!(
                        "- {}: note it (`<steps.{}.{name}>` below)\n",
                        c.description, cx.step_id
                    ));
                }
            }
        }
        s.push_str(&format!(
            "\n**Stop and confirm:** {} Go on only if the answer is yes.",
            p.question.as_deref().unwrap_or("Done?")
        ));
        Some(s)
    }
}

fn prompt_err(e: PromptError) -> StepError {
    match e {
        PromptError::Interrupted => StepError::declined("interrupted at the prompt"),
        PromptError::NotInteractive => StepError::new(e.to_string()),
    }
}
