//! `runbook list --output json`: the catalog as one JSON document, for scripts and dashboards.

use super::json;
use crate::load::Catalog;

/// Print every valid runbook, in the document's `runbooks` list; invalid files are left to
/// `runbook check`, as in the table (a count of problems goes to stderr).
pub fn print(catalog: &Catalog) {
    let runbooks: Vec<serde_json::Value> = catalog
        .runbooks
        .iter()
        .map(|rb| {
            let d = &rb.doc;
            serde_json::json!({
                "name": d.name,
                "summary": d.summary,
                "rotation": d.rotation,
                "impact": d.impact,
                // Relative to the runbooks directory, so the output does not depend on where
                // it was run from.
                "file": rb.source.path.strip_prefix(&catalog.dir).unwrap_or(&rb.source.path),
                "inputs": d.inputs.keys().collect::<Vec<_>>(),
                "steps": rb.steps.len(),
                "rollback_steps": rb.rollback.len(),
                "gates": rb.steps.iter().filter(|s| s.common.confirm.is_some()).count(),
            })
        })
        .collect();
    json::print_document(serde_json::json!({ "runbooks": runbooks }));
    let errors = catalog.problems.iter().filter(|p| p.is_error()).count();
    if errors > 0 {
        eprintln!(
            "{errors} problem(s) in {}: run `runbook check` to see them.",
            catalog.dir.display()
        );
    }
}
