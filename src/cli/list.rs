//! `runbook list`: the runbooks of the directory as a table fitted to the terminal (`--output json`: `list_json.rs`);
//! files with problems are counted on stderr and left to `runbook check`.

use super::args::Output;
use super::{Ctx, list_json, ui};
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
        let rows: Vec<Vec<String>> = catalog
            .runbooks
            .iter()
            .map(|rb| {
                let d = &rb.doc;
                vec![
                    visible_line(&d.name).into_owned(),
                    visible_line(d.rotation.as_deref().unwrap_or("-")).into_owned(),
                    visible_line(d.impact.as_deref().unwrap_or("-")).into_owned(),
                    visible_line(&d.summary).into_owned(),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::table::render(
                &["NAME", "ROTATION", "IMPACT", "SUMMARY"],
                &["NAME"],
                &rows,
                ui::stdout_width()
            )
        );
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
