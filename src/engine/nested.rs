//! Nested runs: a step that runs another runbook of the directory ([`Nested`]) runs it with
//! an engine of its own, inside this run (its journal, bus, locks and gates).

use indexmap::IndexMap;

use super::event::RunStatus;
use super::record::Resume;
use super::types::{Engine, MAX_NESTING, Nesting, RunOptions};
use crate::inputs::InputValue;
use crate::steps::{Nested, Output, StepError};

/// A step that runs a runbook ([`Nested`]): the engine runs the named runbook of its library as part of this run.
pub(super) struct EngineNested<'e, 'a> {
    pub(super) engine: &'e Engine<'a>,
}

#[async_trait::async_trait]
impl Nested for EngineNested<'_, '_> {
    async fn run_runbook(
        &self,
        step_id: &str,
        name: &str,
        given: IndexMap<String, String>,
    ) -> Result<Vec<Output>, StepError> {
        let parent = self.engine;
        if parent.nesting.depth >= MAX_NESTING {
            return Err(StepError::new(format!(
                "runbooks nest deeper than {MAX_NESTING} levels"
            )));
        }
        let child = parent
            .library
            .iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| StepError::new(format!("no runbook named `{name}`")))?;
        let mut inputs = IndexMap::new();
        let binding = crate::inputs::Given {
            values: &given,
            variables: false,
        };
        for (k, spec) in &child.doc.inputs {
            let value = binding
                .slot(k, spec)
                .value()
                .ok_or_else(|| StepError::new(crate::inputs::not_given(name, k)))?;
            // Typed like a value given on the command line; a refusal names the runbook.
            let value =
                crate::inputs::fit(k, spec, &value, std::time::SystemTime::now()).map_err(|p| {
                    StepError::new(format!("runbook `{name}`: {}", p.message))
                        .with_help(p.help.unwrap_or_default())
                })?;
            if spec.secret {
                parent
                    .bus
                    .redactor
                    .try_add(&value)
                    .map_err(|e| StepError::new(format!("input `{k}` of runbook `{name}`: {e}")))?;
            }
            // A value that holds a secret stays one in the child, whatever its input says.
            let secret = spec.secret || !parent.bus.redactor.spans(&value).is_empty();
            inputs.insert(k.clone(), InputValue { value, secret });
        }
        if let Some(extra) =
            crate::inputs::unknown(&child.doc.inputs, given.keys().map(String::as_str)).next()
        {
            return Err(StepError::new(crate::inputs::no_such_input(name, extra)));
        }
        // Before any of its steps: someone else running it on this environment stops it here.
        if let Some(locks) = &parent.nesting.locks {
            locks
                .lock(child.name(), &parent.env.name)
                .map_err(StepError::new)?;
        }
        let prefix = format!("{}{step_id}/", parent.nesting.prefix);
        // What the journal says the child already did, when this run is a resume.
        let strip = |id: &str| id.strip_prefix(prefix.as_str()).map(str::to_string);
        let resume = Resume {
            outputs: parent
                .resume
                .outputs
                .iter()
                .filter_map(|(id, o)| strip(id).map(|id| (id, o.clone())))
                .collect(),
            done: parent
                .resume
                .done
                .iter()
                .filter_map(|id| strip(id))
                .collect(),
            rollback: parent
                .resume
                .rollback
                .as_ref()
                .and_then(|(from, why)| strip(from).map(|f| (f, why.clone()))),
        };
        let engine = Engine {
            runbook: child,
            env: parent.env,
            inputs,
            prompter: parent.prompter,
            bus: parent.bus.clone(),
            interrupt: parent.interrupt.clone(),
            options: RunOptions {
                run_id: parent.options.run_id.clone(),
                assume_yes: parent.options.assume_yes,
                // A selection names the steps of the runbook it was given for, not these.
                selected: None,
                step_by_step: parent.options.step_by_step.clone(),
            },
            recorder: parent.recorder.clone(),
            library: parent.library,
            nesting: Nesting {
                prefix,
                depth: parent.nesting.depth + 1,
                env_confirmed: parent.nesting.env_confirmed.clone(),
                locks: parent.nesting.locks.clone(),
                notes: parent.nesting.notes.clone(),
            },
            resume,
        };
        let result = Box::pin(engine.run()).await;
        let why = result.message.unwrap_or_default();
        match result.status {
            RunStatus::Done => Ok(vec![Output {
                name: "status".into(),
                value: "done".into(),
                secret: false,
            }]),
            RunStatus::Declined | RunStatus::Interrupted => {
                Err(StepError::declined(format!("runbook `{name}`: {why}")))
            }
            RunStatus::Failed | RunStatus::RolledBack => {
                Err(StepError::new(format!("runbook `{name}` failed: {why}")))
            }
        }
    }
}
