//! `runbook preflight NAME --env E`: the read-only checks of [`crate::preflight`] as a table,
//! exit 0 when none failed and 1 otherwise.

use std::fmt::Write as _;

use super::{Ctx, exit, prompt};
use crate::display::{visible, visible_line};
use crate::preflight::{self, Check, Status};
use crate::secret::Redactor;

impl Ctx {
    pub(super) fn preflight(&self, name: &str, env: Option<&str>, inputs: &[String]) -> i32 {
        let catalog = match self.catalog() {
            Ok(c) => c,
            Err(code) => return code,
        };
        let (rb, env, values) = match self.offline_target(&catalog, name, env, inputs) {
            Ok(t) => t,
            Err(code) => return code,
        };
        let redactor = Redactor::new();
        for v in values.values().filter(|v| v.secret) {
            redactor.add(&v.value);
        }
        let runtime = match super::runs::new_runtime() {
            Ok(r) => r,
            Err(code) => return code,
        };
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
        print!("{}", table(&checks));
        if preflight::passed(&checks) {
            exit::DONE
        } else {
            exit::STEP_FAILED
        }
    }
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Skip => "skip",
        Status::Fail => "FAIL",
    }
}

/// The checks as an aligned table, then what each failure said, then a count. Targets and
/// reasons name hosts, parameters and remote answers: shown with control characters visible.
fn table(checks: &[Check]) -> String {
    let shown: Vec<Check> = checks
        .iter()
        .map(|c| Check {
            check: c.check,
            target: visible_line(&c.target).into_owned(),
            status: c.status,
            reason: visible_line(&c.reason).into_owned(),
            detail: c.detail.as_deref().map(|d| visible(d).into_owned()),
        })
        .collect();
    let checks = &shown[..];
    let mut o = String::new();
    let w_check = checks
        .iter()
        .map(|c| c.check.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let w_target = checks
        .iter()
        .map(|c| c.target.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let _ = writeln!(
        o,
        "{:w_check$}  {:w_target$}  RESULT  REASON",
        "CHECK", "TARGET"
    );
    for c in checks {
        let _ = writeln!(
            o,
            "{:w_check$}  {:w_target$}  {:6}  {}",
            c.check,
            c.target,
            status_text(c.status),
            c.reason
        );
    }
    for c in checks.iter().filter(|c| c.status == Status::Fail) {
        if let Some(d) = &c.detail {
            let _ = writeln!(o, "\n{} {}:", c.check, c.target);
            for line in d.lines() {
                let _ = writeln!(o, "  {line}");
            }
        }
    }
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let _ = writeln!(
        o,
        "\n{} check(s): {} passed, {} failed, {} warning(s), {} skipped",
        checks.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Warn),
        count(Status::Skip)
    );
    o
}
