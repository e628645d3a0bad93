//! `runbook list`: the runbooks of the directory as a table (`--output json`: `list_json.rs`);
//! files with problems are counted on stderr and left to `runbook check`.

use super::args::Output;
use super::{Ctx, list_json};
use crate::display::visible_line;
use crate::session::Failure;

impl Ctx {
    pub(super) fn list(&self, output: Output) -> Result<(), Failure> {
        let session = self.offline();
        let catalog = session.catalog()?;
        if output == Output::Json {
            list_json::print(&catalog);
            return Ok(());
        }
        let w = catalog
            .runbooks
            .iter()
            .map(|r| r.name().len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:w$}  {:<16}  {:<28}  SUMMARY",
            "NAME", "ROTATION", "IMPACT"
        );
        for rb in &catalog.runbooks {
            let d = &rb.doc;
            println!(
                "{:w$}  {:<16}  {:<28}  {}",
                visible_line(&d.name),
                visible_line(d.rotation.as_deref().unwrap_or("-")),
                visible_line(d.impact.as_deref().unwrap_or("-")),
                visible_line(&d.summary)
            );
        }
        let errors = catalog.problems.iter().filter(|p| p.is_error()).count();
        if errors > 0 {
            eprintln!(
                "\n{errors} problem(s) in {}: run `runbook check` to see them.",
                self.dir.display()
            );
        }
        Ok(())
    }
}
