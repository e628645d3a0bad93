//! `runbook check [PATH…]`: every problem of the runbooks and environments given (or of the
//! directory), in file order, shown for a person, as one JSON document, or as GitHub workflow
//! commands; exit 2 when one is an error.

use std::path::{Path, PathBuf};

use super::args::CheckFormat;
use super::{Ctx, json};
use crate::check;
use crate::load::{self, Catalog};
use crate::session::{Failure, Kind};

impl Ctx {
    pub(super) fn check(&self, paths: &[PathBuf], format: CheckFormat) -> Result<(), Failure> {
        let paths = if paths.is_empty() {
            vec![self.dir.clone()]
        } else {
            paths.to_vec()
        };
        let mut problems = Vec::new();
        let mut files = 0usize;
        for path in &paths {
            if path.is_dir() {
                match check::load_dir(path) {
                    Ok(c) => {
                        files += c.runbooks.len() + usize::from(c.environments.source.is_some());
                        // Count the invalid runbooks too.
                        files += count_invalid(&c);
                        problems.extend(c.problems);
                    }
                    Err(p) => problems.push(p),
                }
            } else {
                files += 1;
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if path
                    .file_name()
                    .is_some_and(|n| n == load::ENVIRONMENTS_FILE)
                {
                    check::load_environments_in(dir, &mut problems);
                } else {
                    let envs = check::load_environments_in(dir, &mut problems);
                    // The runbooks a step may run are its neighbours.
                    if let Some(rb) = check::load_runbook_file(path, &envs, &mut problems)
                        && let Ok(library) = check::load_dir(dir)
                    {
                        check::nested_runbooks(&[&rb], &library.runbooks, &mut problems);
                    }
                }
            }
        }
        // In file order, so the output reads top to bottom.
        problems.sort_by_key(|p| {
            (
                p.source.as_ref().map(|s| s.path.clone()),
                p.span.as_ref().map_or(0, |s| s.start),
            )
        });
        let errors = problems.iter().filter(|p| p.is_error()).count();
        let warnings = problems.len() - errors;
        match format {
            CheckFormat::Human => {
                self.report(&problems);
                if errors == 0 {
                    eprintln!(
                        "checked {files} file(s): ok{}",
                        if warnings > 0 {
                            format!(", {warnings} warning(s)")
                        } else {
                            String::new()
                        }
                    );
                } else {
                    eprintln!("checked {files} file(s): {errors} error(s), {warnings} warning(s)");
                }
            }
            CheckFormat::Json => json::print_document(serde_json::json!({
                "ok": errors == 0,
                "files": files,
                "errors": errors,
                "warnings": warnings,
                "problems": problems.iter().map(json::problem).collect::<Vec<_>>(),
            })),
            CheckFormat::Github => {
                for p in &problems {
                    let level = if p.is_error() { "error" } else { "warning" };
                    let msg = gh_escape(&match &p.help {
                        Some(h) => format!("{} ({})", p.message, h),
                        None => p.message.clone(),
                    });
                    let title = gh_property(p.code.as_str());
                    match p.location() {
                        Some((file, line, col)) => println!(
                            "::{level} file={},line={line},col={col},title={title}::{msg}",
                            gh_property(&file)
                        ),
                        None => println!("::{level} title={title}::{msg}"),
                    }
                }
            }
        }
        if errors > 0 {
            // Every problem is shown above: the failure has nothing more to say.
            Err(Failure::quiet(Kind::Invalid))
        } else {
            Ok(())
        }
    }
}

fn count_invalid(c: &Catalog) -> usize {
    let mut files: Vec<&Path> = c
        .problems
        .iter()
        .filter_map(|p| p.source.as_ref().map(|s| s.path.as_path()))
        .collect();
    files.sort();
    files.dedup();
    files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != load::ENVIRONMENTS_FILE))
        .filter(|f| !c.runbooks.iter().any(|r| r.source.path == **f))
        .count()
}

/// The message of a workflow command: `%`, CR and LF escaped, so no text (a file name, a
/// value quoted in a message) can end the line and start a command of its own.
fn gh_escape(s: &str) -> String {
    // Control and invisible characters (bidi overrides) visible, as on every other output.
    crate::display::visible(s)
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property of a workflow command (`file=`, `title=`): also `:` and `,`, which would end it.
fn gh_property(s: &str) -> String {
    gh_escape(s).replace(':', "%3A").replace(',', "%2C")
}
