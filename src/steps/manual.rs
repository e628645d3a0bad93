//! `manual.confirm`: work only a person can do (a web dashboard), with instructions, a wait,
//! and optionally values collected from the operator (hidden entry for secrets).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::kind::{
    CheckCx, Effect, Kind, Output, OutputSpec, Outputs, PromptError, RunCx, StepError, Unattended,
};
use crate::diag::{Code, Problem};

pub struct ManualConfirm;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// A step nobody attends collects nothing: later steps would read values nobody gave.
#[schemars(extend(
    "if" = { "properties": { "unattended": { "const": "skip" } }, "required": ["unattended"] },
    "then" = { "properties": { "collect": { "maxProperties": 0 } } }
))]
pub struct Params {
    /// What the operator must do, in Markdown.
    pub instructions: String,
    /// Values to collect once the work is done, by output name.
    #[serde(default)]
    pub collect: IndexMap<String, Collect>,
    /// The question that ends the step (default: "Done?"). Answering No stops the run.
    #[serde(default)]
    pub question: Option<String>,
    /// When nobody attends the run (no terminal): `refuse` (the default) refuses the whole run
    /// before its first step; `skip` leaves this step undone, recorded as not done by a person
    /// and listed as outstanding at the end of the run and in the audit log. Only for work the
    /// run does not depend on (a notification); not with `collect`.
    #[serde(default)]
    pub unattended: Unattended,
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

    /// A person's work needs nothing of an environment.
    fn needs_environment(_params: &Params) -> bool {
        false
    }

    fn example() -> &'static str {
        "{ instructions: Rotate the key in the console. }"
    }

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
        if p.unattended == Unattended::Skip && !p.collect.is_empty() {
            cx.problem_at(
                "unattended",
                Problem::error(
                    Code::SkipCollects,
                    "a manual step that collects values cannot be `unattended: skip`",
                )
                .label("left undone when nobody attends")
                .help("later steps need what it collects; remove `unattended: skip` (a run with nobody at a terminal is then refused before it starts)"),
            );
        }
        // Left undone, the step is shown with its secrets masked, and the run erases them when
        // it ends: the person who does the work later never gets the value it shows. A warning,
        // not an error: such a run is still safe (nothing is shown, the step is outstanding),
        // only the text is of no use to the person who picks it up.
        if p.unattended == Unattended::Skip {
            for (field, text) in [
                ("instructions", Some(&p.instructions)),
                ("question", p.question.as_ref()),
            ] {
                let Some(text) = text else { continue };
                let Ok(refs) = crate::template::references(text) else {
                    continue;
                };
                if let Some(secret) = refs.iter().find(|r| (cx.secret_refs)(r)) {
                    cx.problem_at(
                        field,
                        Problem::warning(
                            Code::SkipShowsSecret,
                            format!("`{field}` shows the secret `{secret}`, and the step is `unattended: skip`"),
                        )
                        .label("shown to nobody when nobody attends")
                        .help("a run with no terminal would mask it and erase it when it ends, so the person who does this later never sees it; remove `unattended: skip`, or say where to find the value (its SSM parameter) instead of showing it"),
                    );
                }
            }
        }
        for (name, c) in &p.collect {
            if let Some(pat) = &c.pattern
                && let Err(e) = regex::Regex::new(&format!("^(?:{pat})$"))
            {
                cx.problem_at(
                    "collect",
                    Problem::error(
                        Code::BadPattern,
                        format!("invalid pattern for `{name}`: {e}"),
                    ),
                );
            }
        }
    }

    fn interactive(_: &Params) -> bool {
        true
    }

    fn unattended(p: &Params) -> Unattended {
        p.unattended
    }

    fn instructions(p: &Params) -> Option<String> {
        Some(p.instructions.clone())
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
        // `--yes` approves gates; it never stands for a person's work. A run with nobody to
        // ask is refused before its first step, or (`unattended: skip`) the engine leaves this
        // step undone without running it: reaching here without a terminal is a caller's
        // mistake, and fails.
        if !prompter.interactive() {
            return Err(
                StepError::new("this manual step needs a person at a terminal")
                    .with_help("run it in a terminal; `--yes` approves gates, never a manual step"),
            );
        }
        prompter.show(&p.instructions);
        let mut outputs = Vec::new();
        for (name, c) in &p.collect {
            let re = c
                .pattern
                .as_ref()
                .and_then(|pat| regex::Regex::new(&format!("^(?:{pat})$")).ok());
            // Judged before it is taken, so a refused value never looks accepted; the refusal
            // names the form it must have, never the value.
            let check = |v: &str| -> Result<(), String> {
                let v = v.trim();
                if v.is_empty() {
                    Err(format!("`{name}` cannot be empty; try again"))
                } else if c.secret && crate::secret::check_len(v).is_err() {
                    Err(format!(
                        "`{name}` is a secret and needs at least {} characters; try again",
                        crate::secret::MIN_SECRET_LEN
                    ))
                } else if let (Some(re), Some(pat)) = (&re, &c.pattern)
                    && !re.is_match(v)
                {
                    Err(format!(
                        "`{name}` does not have the expected form: the whole value must match \
                         the regular expression `{pat}`; try again"
                    ))
                } else {
                    Ok(())
                }
            };
            // A secret no pattern can check is typed twice: a slip of the finger would
            // otherwise go on to be stored as the new credential.
            let twice = c.secret && c.pattern.is_none();
            let value = tokio::task::block_in_place(|| {
                prompter.ask_checked(&c.description, c.secret, twice, &check)
            })
            .map_err(prompt_err)?
            .trim()
            .to_string();
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

    fn by_hand(p: &Params, cx: &super::hand::HandCx<'_>) -> Option<String> {
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
