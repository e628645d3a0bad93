//! Loaded runbooks: the file formats of `model` bound to the step kinds of `steps`. A
//! [`Runbook`] has passed every check of its own file; a [`Catalog`] is what a runbooks
//! directory holds, with the problems found in it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::diag::{Problem, Source};
use crate::load::yaml::{DeError, Node};
use crate::model::{Environments, RunbookDoc, StepCommon};
use crate::steps::{DynKind, Effect, OutputSpec};

/// Everything found in a runbooks directory.
pub struct Catalog {
    pub dir: PathBuf,
    pub runbooks: Vec<Runbook>,
    pub environments: Environments,
    pub problems: Vec<Problem>,
}

impl Catalog {
    pub fn find(&self, name: &str) -> Option<&Runbook> {
        self.runbooks.iter().find(|r| r.name() == name)
    }
}

/// A loaded, parsed runbook.
#[derive(Debug)]
pub struct Runbook {
    pub doc: RunbookDoc,
    pub steps: Vec<Step>,
    pub rollback: Vec<Step>,
    pub source: Arc<Source>,
    pub node: Node,
}

impl Runbook {
    pub fn name(&self) -> &str {
        &self.doc.name
    }

    /// Every step, main steps first then rollback steps.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(self.rollback.iter())
    }

    /// A digest of the file's bytes, to tell whether a runbook changed between runs.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let d = sha2::Sha256::digest(self.source.text.as_bytes());
        d.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// The gate that approves step `index` of `list` (the main or the rollback steps): the
/// nearest step at or before it with its own `confirm:`; `None` before the first gate.
pub fn gate_of(list: &[Step], index: usize) -> Option<usize> {
    list.get(..=index)?
        .iter()
        .rposition(|s| s.common.confirm.is_some())
}

/// The steps of `list` the gate of step `gate` approves: that step and every step after
/// it up to the next step with its own `confirm:`. They run one after another without
/// asking again, so no person is waited for in the middle of a change.
pub fn approved_by(list: &[Step], gate: usize) -> std::ops::Range<usize> {
    let end = list
        .iter()
        .enumerate()
        .skip(gate + 1)
        .find(|(_, s)| s.common.confirm.is_some())
        .map_or(list.len(), |(i, _)| i);
    gate..end
}

/// A parsed step: common fields, its kind and its parameters (still unrendered templates).
#[derive(Debug)]
pub struct Step {
    pub common: StepCommon,
    pub kind: &'static dyn DynKind,
    pub params: Node,
    /// The whole step mapping, for pointing at its fields.
    pub node: Node,
    /// The outputs this step produces (known statically).
    pub outputs: Vec<OutputSpec>,
    pub rollback: bool,
}

impl Step {
    pub fn id(&self) -> &str {
        &self.common.id
    }

    /// Safe to run again after a crash cut it short: the author's `idempotent:`, else
    /// `read_only: true` (a read is safe to repeat), else the kind's.
    pub fn idempotent(&self) -> bool {
        self.common
            .idempotent
            .unwrap_or_else(|| self.common.read_only || self.kind.idempotent(&self.params))
    }

    /// The step's one-line action and effect from `rendered` parameters: the kind's, read-only
    /// when the author declared it (`check` refused that for a kind that writes by nature).
    /// Every place that shows or decides by a step's effect asks here, not the kind.
    pub fn describe(&self, rendered: &Node) -> Result<(String, Effect), DeError> {
        let (action, effect) = self.kind.describe(rendered)?;
        let effect = match effect {
            Effect::Changes(_) if self.common.read_only => Effect::ReadOnly,
            e => e,
        };
        Ok((action, effect))
    }

    /// The span of a common field's value, or of the `id:` when absent.
    pub fn span_of(&self, field: &str) -> std::ops::Range<usize> {
        self.node
            .get(field)
            .or_else(|| self.node.get("id"))
            .map_or(self.node.span.clone(), |n| n.span.clone())
    }
}
