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
        env: Option<&str>,
        inputs: &[String],
        output: Output,
    ) -> Result<(), Failure> {
        let session = self.offline();
        let catalog = session.catalog()?;
        let (rb, env, values) = Self::offline_target(&session, &catalog, name, env, inputs)?;
        let redactor = Redactor::new();
        for v in values.values().filter(|v| v.secret) {
            redactor.add(&v.value);
        }
        let runtime = crate::session::runtime()?;
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
        runtime.shutdown_background();
        let passed = preflight::passed(&checks);
        match output {
            Output::Human => {
                let width = ui::stdout_width();
                let table = preflight::table(&checks, width);
                // The table fits; a failure's detail under it is wrapped here.
                match width {
                    Some(w) => print!("{}", ui::wrap(&table, w)),
                    None => print!("{table}"),
                }
            }
            // One document, failed checks included: they are the answer (exit 1 still says
            // one failed).
            Output::Json => json::print_document(serde_json::json!({
                "runbook": rb.name(),
                "env": env.name,
                "passed": passed,
                "checks": checks,
            })),
        }
        if passed {
            Ok(())
        } else {
            Err(Failure::quiet(Kind::StepFailed))
        }
    }
}
