//! `runbook preflight NAME --env E`: the read-only checks of [`crate::preflight`] as a table,
//! exit 0 when none failed and 1 otherwise.

use super::args::Output;
use super::{Ctx, json, prompt, ui};
use crate::display::visible_line;
use crate::preflight;
use crate::secret::Redactor;
use crate::session::{Failure, Kind};

impl Ctx {
    pub(super) fn preflight(
        &self,
        name: &str,
        envs: &[String],
        inputs: &[String],
        output: Output,
    ) -> Result<(), Failure> {
        let session = self.offline();
        let catalog = session.catalog()?;
        let (rb, found, values) = Self::offline_targets(&session, &catalog, name, envs, inputs)?;
        let redactor = Redactor::new();
        for v in values.values().filter(|v| v.secret) {
            redactor.add(&v.value);
        }
        let runtime = crate::session::runtime()?;
        let mut docs = Vec::new();
        let mut all_passed = true;
        for (i, env) in found.iter().enumerate() {
            eprintln!(
                "preflight: {} on {}; read-only, nothing changes",
                visible_line(rb.name()),
                visible_line(&env.name)
            );
            let checks = runtime.block_on(preflight::preflight(
                rb,
                env,
                &values,
                &prompt::NoPrompter,
                &redactor,
            ));
            let passed = preflight::passed(&checks);
            all_passed &= passed;
            match output {
                Output::Human => {
                    if i > 0 {
                        println!();
                    }
                    if found.len() > 1 {
                        println!("{}:", visible_line(&env.name));
                    }
                    let width = ui::stdout_width();
                    let table = preflight::table(&checks, width);
                    // The table fits; a failure's detail under it is wrapped here.
                    match width {
                        Some(w) => print!("{}", ui::wrap(&table, w)),
                        None => print!("{table}"),
                    }
                }
                Output::Json => docs.push(serde_json::json!({
                    "runbook": rb.name(),
                    "env": env.name,
                    "passed": passed,
                    "checks": checks,
                })),
            }
        }
        runtime.shutdown_background();
        // One document, failed checks included: they are the answer (exit 1 still says one
        // failed). Several environments: `environments`, each as one's document.
        if output == Output::Json {
            match docs.len() {
                1 => json::print_document(docs.remove(0)),
                _ => json::print_document(serde_json::json!({
                    "runbook": rb.name(),
                    "passed": all_passed,
                    "environments": docs,
                })),
            }
        }
        if all_passed {
            Ok(())
        } else {
            Err(Failure::quiet(Kind::StepFailed))
        }
    }
}
