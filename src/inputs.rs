//! Binding a runbook's inputs: which value each declared input gets, and which names given are
//! not inputs at all. One rule for a run started from the command line, a runbook run by a
//! `runbook.run` step and `check`'s reading of such a step:
//!
//! - a value given (`--input`, the step's `inputs:`), then, on the command line only,
//!   `RUNBOOK_INPUT_<NAME>`, is the one chosen;
//! - else the default (a terminal asks, offering it);
//! - else the input is missing;
//! - a name given that the runbook does not declare is unknown.
//!
//! Sits below the engine (which binds a nested runbook's inputs) and `check`; it prints
//! nothing: what is wrong comes back as a [`Problem`].

use std::time::SystemTime;

use indexmap::IndexMap;

use crate::diag::{self, Code, Problem};
use crate::model::InputSpec;
use crate::steps::Prompter;

pub mod typed;

/// An input value the operator gave.
#[derive(Debug, Clone)]
pub struct InputValue {
    pub value: String,
    pub secret: bool,
}

/// What an input gets before anyone is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Given, or (on the command line) from `RUNBOOK_INPUT_<NAME>`: what someone chose.
    Chosen(String),
    /// Not chosen; the runbook's default.
    Default(String),
    /// Neither chosen nor defaulted.
    Missing,
}

impl Slot {
    /// The value, chosen or default.
    pub fn value(self) -> Option<String> {
        match self {
            Slot::Chosen(v) | Slot::Default(v) => Some(v),
            Slot::Missing => None,
        }
    }
}

/// Where values are chosen: the values given, and whether `RUNBOOK_INPUT_<NAME>` counts (for a
/// run started by a person, not for a runbook another one runs).
#[derive(Debug, Clone, Copy)]
pub struct Given<'g> {
    pub values: &'g IndexMap<String, String>,
    pub variables: bool,
}

impl Given<'_> {
    /// What input `name` gets before anyone is asked.
    pub fn slot(&self, name: &str, spec: &InputSpec) -> Slot {
        let chosen = self.values.get(name).cloned().or_else(|| {
            self.variables
                .then(|| std::env::var(env_var(name)).ok())
                .flatten()
        });
        match (chosen, &spec.default) {
            (Some(v), _) => Slot::Chosen(v),
            (None, Some(d)) => Slot::Default(d.clone()),
            (None, None) => Slot::Missing,
        }
    }
}

/// The names given that `declared` does not have, in the order given.
pub fn unknown<'g>(
    declared: &IndexMap<String, InputSpec>,
    given: impl IntoIterator<Item = &'g str>,
) -> impl Iterator<Item = &'g str> {
    given.into_iter().filter(|k| !declared.contains_key(*k))
}

/// A given name runbook `runbook` has no input of.
pub fn no_such_input(runbook: &str, input: &str) -> String {
    format!("runbook `{runbook}` has no input `{input}`")
}

/// A runbook run by a step that gives neither a value nor has a default for `input`.
pub fn not_given(runbook: &str, input: &str) -> String {
    format!("runbook `{runbook}` needs input `{input}`, which this step does not give")
}

/// `RUNBOOK_INPUT_<NAME>`: how a secret input reaches a non-interactive run without argv.
pub fn env_var(name: &str) -> String {
    format!(
        "RUNBOOK_INPUT_{}",
        name.to_uppercase().replace(['-', '.'], "_")
    )
}

/// `--input name=value` pairs, checked against the inputs `declared` by runbook `runbook`.
pub fn parse_command_line(
    runbook: &str,
    declared: &IndexMap<String, InputSpec>,
    raw: &[String],
) -> Result<IndexMap<String, String>, Problem> {
    let mut out = IndexMap::new();
    for item in raw {
        let Some((k, v)) = item.split_once('=') else {
            return Err(Problem::error(
                Code::BadInput,
                format!("`--input {item}` is not NAME=VALUE"),
            )
            .help("write it like `--input reason=scheduled`"));
        };
        let Some(spec) = declared.get(k) else {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            let help = diag::did_you_mean(k, known.iter().copied()).unwrap_or_else(|| {
                format!(
                    "its inputs are: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )
            });
            return Err(Problem::error(Code::UnknownInput, no_such_input(runbook, k)).help(help));
        };
        if spec.secret {
            // Refused, not just discouraged: the value is already in `ps` and the shell's
            // history, and this message must not repeat it.
            return Err(Problem::error(
                Code::SecretOnCommandLine,
                format!("input `{k}` is secret and cannot be given with --input"),
            )
            .help(format!(
                "a command line is visible to every user of the machine (ps) and kept in shell history: set {} in the environment, or leave it out and type it at the hidden prompt",
                env_var(k)
            )));
        }
        let v = fit(k, spec, v, SystemTime::now())?;
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// A value chosen for input `name`, checked against its choices and its type
/// ([`typed::normalize`]), in its normal form.
pub fn fit(name: &str, spec: &InputSpec, value: &str, now: SystemTime) -> Result<String, Problem> {
    check_choice(name, value, spec)?;
    typed::normalize(name, spec, value, now)
        .map_err(|r| Problem::error(Code::BadInput, r.message).help(r.help))
}

fn check_choice(name: &str, value: &str, spec: &InputSpec) -> Result<(), Problem> {
    if let Some(choices) = &spec.choices
        && !spec.multiple
        && !choices.iter().any(|c| c == value)
    {
        return Err(Problem::error(
            Code::BadInput,
            if spec.secret {
                // A secret value is never echoed, not even a wrong one.
                format!("the value given for secret input `{name}` is not one of its choices")
            } else {
                format!("`{value}` is not a choice of input `{name}`")
            },
        )
        .help(format!("choose one of: {}", choices.join(", "))));
    }
    Ok(())
}

/// The inputs known without asking (`--input`, `RUNBOOK_INPUT_<NAME>`, defaults): what `plan`
/// and `preflight` start from. Those not known stay out (shown as unknown).
pub fn known(
    runbook: &str,
    declared: &IndexMap<String, InputSpec>,
    raw: &[String],
) -> Result<IndexMap<String, InputValue>, Problem> {
    let values = parse_command_line(runbook, declared, raw)?;
    let given = Given {
        values: &values,
        variables: true,
    };
    let mut out = IndexMap::new();
    for (name, spec) in declared {
        if let Some(value) = given.slot(name, spec).value() {
            let value = fit(name, spec, &value, SystemTime::now())?;
            out.insert(
                name.clone(),
                InputValue {
                    value,
                    secret: spec.secret,
                },
            );
        }
    }
    Ok(out)
}

/// Why a run's inputs could not all be bound.
#[derive(Debug)]
pub enum Unbound {
    /// A value given or missing is wrong.
    Invalid(Problem),
    /// The operator interrupted a prompt.
    Interrupted,
}

/// Every input of a run started from the command line: chosen (`--input`,
/// `RUNBOOK_INPUT_<NAME>`, checked against its choices), else asked for on a terminal (the
/// default offered), else the default, else missing. A secret must be long enough to mask.
pub fn for_run(
    runbook: &str,
    declared: &IndexMap<String, InputSpec>,
    raw: &[String],
    prompter: &dyn Prompter,
) -> Result<IndexMap<String, InputValue>, Unbound> {
    let values = parse_command_line(runbook, declared, raw).map_err(Unbound::Invalid)?;
    let given = Given {
        values: &values,
        variables: true,
    };
    let mut out = IndexMap::new();
    for (name, spec) in declared {
        let value = match given.slot(name, spec) {
            Slot::Chosen(v) => fit(name, spec, &v, SystemTime::now()).map_err(Unbound::Invalid)?,
            // A typed value or several choices: typed as text, judged, and asked again with
            // the reason until it fits.
            _ if prompter.interactive() && typed::asked_checked(spec) => {
                let label = typed::prompt_label(spec);
                loop {
                    let v = prompter
                        .ask(&label, None, spec.default.as_deref(), false)
                        .map_err(|_| Unbound::Interrupted)?;
                    match typed::normalize(name, spec, &v, SystemTime::now()) {
                        Ok(v) => break v,
                        Err(r) => prompter.show(&format!("{}; {}", r.message, r.help)),
                    }
                }
            }
            // A secret typed at the prompt: long enough to mask, asked again when it is
            // not, and typed twice, since nothing else can tell a mistyped one.
            _ if prompter.interactive() && spec.secret && spec.choices.is_none() => {
                let check = |v: &str| {
                    crate::secret::check_len(v).map_err(|e| format!("`{name}`: {e}; try again"))
                };
                match prompter.ask_checked(&spec.description, true, true, &check) {
                    Ok(v) => v,
                    Err(_) => return Err(Unbound::Interrupted),
                }
            }
            _ if prompter.interactive() => {
                match prompter.ask(
                    &spec.description,
                    spec.choices.as_deref(),
                    spec.default.as_deref(),
                    spec.secret,
                ) {
                    Ok(v) => fit(name, spec, &v, SystemTime::now()).map_err(Unbound::Invalid)?,
                    Err(_) => return Err(Unbound::Interrupted),
                }
            }
            // Checked when the runbook was; normalized (and a `not_future` one judged) now.
            Slot::Default(d) => fit(name, spec, &d, SystemTime::now()).map_err(Unbound::Invalid)?,
            Slot::Missing => {
                let how = if spec.secret {
                    format!(
                        "set {} in the environment (a secret should not be on the command line)",
                        env_var(name)
                    )
                } else {
                    format!("pass --input {name}=VALUE")
                };
                return Err(Unbound::Invalid(
                    Problem::error(
                        Code::MissingInput,
                        format!("missing input `{name}` ({})", spec.description),
                    )
                    .help(format!("{how}; without a terminal nobody can be asked")),
                ));
            }
        };
        if spec.secret
            && let Err(e) = crate::secret::check_len(&value)
        {
            // Nothing of the value is shown, not even its first characters.
            return Err(Unbound::Invalid(
                Problem::error(
                    Code::ShortSecret,
                    format!("secret input `{name}`: {e}"),
                )
                .help(format!(
                    "a secret shorter than {} characters cannot be masked in output; give the real value",
                    crate::secret::MIN_SECRET_LEN
                )),
            ));
        }
        out.insert(
            name.clone(),
            InputValue {
                value,
                secret: spec.secret,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(default: Option<&str>) -> InputSpec {
        InputSpec {
            description: "d".into(),
            kind: crate::model::InputType::String,
            choices: None,
            multiple: false,
            not_future: false,
            default: default.map(str::to_string),
            secret: false,
        }
    }

    #[test]
    fn given_then_default_then_missing() {
        let values: IndexMap<String, String> = [("a".to_string(), "x".to_string())].into();
        let given = Given {
            values: &values,
            variables: false,
        };
        assert_eq!(given.slot("a", &spec(Some("d"))), Slot::Chosen("x".into()));
        assert_eq!(given.slot("b", &spec(Some("d"))), Slot::Default("d".into()));
        assert_eq!(given.slot("b", &spec(None)), Slot::Missing);
    }

    #[test]
    fn variable_names() {
        assert_eq!(env_var("db-host.name"), "RUNBOOK_INPUT_DB_HOST_NAME");
    }

    #[test]
    fn unknown_names_keep_their_order() {
        let declared: IndexMap<String, InputSpec> = [("a".to_string(), spec(None))].into();
        let got: Vec<&str> = unknown(&declared, ["z", "a", "y"]).collect();
        assert_eq!(got, ["z", "y"]);
    }
}
