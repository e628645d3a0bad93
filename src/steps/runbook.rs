//! `runbook.run`: run another runbook of the same directory as one step (e.g. the rotation
//! that a compromise response chooses), against the same environment, in the same run.
//!
//! The engine does the running (through [`super::kind::Nested`]): the child's steps are journaled
//! inside this run, so a crash resumes inside the child without repeating its finished steps.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::kind::{Effect, Kind, NestedRunbook, OutputSpec, Outputs, RunCx, StepError};
use crate::load::yaml::Node;

pub struct RunRunbook;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The runbook to run (its `name`), from the same directory.
    pub name: String,
    /// Its inputs, by name.
    #[serde(default)]
    pub inputs: IndexMap<String, String>,
}

impl Kind for RunRunbook {
    const NAME: &'static str = "runbook.run";
    const SUMMARY: &'static str = "Run another runbook as one step, against the same environment.";
    type Params = Params;

    /// The child runbook's own steps say (the session follows `nested_runbook`).
    fn needs_environment(_params: &Params) -> bool {
        false
    }

    fn example() -> &'static str {
        "{ name: other }"
    }

    const RUNS_RUNBOOK_NAMED_BY: Option<&'static str> = Some("name");

    fn nested_runbook(params: &Node) -> Option<NestedRunbook<'_>> {
        let name = params.get("name").filter(|n| n.as_str().is_some())?;
        let inputs = params
            .get("inputs")
            .and_then(Node::as_map)
            .map_or_else(Vec::new, |m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?, v)))
                    .collect()
            });
        Some(NestedRunbook { name, inputs })
    }

    fn outputs(_: &Params, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        vec![OutputSpec::public("status")]
    }

    fn describe(p: &Params) -> String {
        if p.inputs.is_empty() {
            format!("run runbook `{}`", p.name)
        } else {
            let given: Vec<String> = p.inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("run runbook `{}` with {}", p.name, given.join(", "))
        }
    }

    fn effect(p: &Params) -> Effect {
        Effect::Changes(format!(
            "whatever runbook `{}` changes (see its plan)",
            p.name
        ))
    }

    /// Running it again resumes the child: its finished steps are never repeated.
    fn idempotent(_: &Params) -> bool {
        true
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let nested = cx
            .nested
            .ok_or_else(|| StepError::new("runbooks cannot be nested here"))?;
        nested.run_runbook(cx.step_id, &p.name, p.inputs).await
    }
}
