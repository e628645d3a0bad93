//! Preflight: read-only checks that a run of a runbook in an environment will find what it
//! needs — AWS credentials and SSM parameters, SSH hosts, database logins, HTTP endpoints —
//! made with the step kinds' own connection code. Nothing is written and no value is returned:
//! every value read is registered with the caller's redactor, and every reason is masked.
//!
//! `runbook preflight` shows the checks as a table; `run` and `resume` make the same checks
//! before their journal exists (see `session::run`), so a run that cannot finish never starts.
//! The checks of one wave run concurrently: a wave only waits for what it builds on (a login's
//! password read from SSM, an endpoint reached through a host).

use std::fmt::Write as _;

use indexmap::IndexMap;

use crate::display::{visible, visible_line};

use crate::catalog::Runbook;
use crate::engine::InputValue;
use crate::model::Environment;
use crate::plan;
use crate::secret::Redactor;
pub use crate::steps::{Check, Status};
use crate::steps::{KINDS, NeedCx, Needs, ProbeCx, Prompter, Resources, RunCx, Stage};
use crate::template::{self, render_node};

/// Whether every check passed (a warning or a skip does not fail a preflight).
pub fn passed(checks: &[Check]) -> bool {
    !checks.iter().any(|c| c.status == Status::Fail)
}

/// Which steps a preflight is for, and who hears of its progress.
#[derive(Default)]
pub struct Scope<'a> {
    /// Steps that will not run (finished before a resume, not selected): what they need is
    /// not checked. `None`: every step.
    pub skip: Option<&'a std::collections::HashSet<String>>,
    /// Called as each check ends: how many ended, of how many.
    pub progress: Option<&'a (dyn Fn(usize, usize) + Sync)>,
    /// The run has changed things elsewhere already (a resume): the checks its steps make are
    /// not judged now (the app may be down because of the half-done rotation).
    pub changed: bool,
}

/// The checks every step of `runbook` needs (see [`preflight_scoped`]).
pub async fn preflight(
    runbook: &Runbook,
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
    prompter: &dyn Prompter,
    redactor: &Redactor,
) -> Vec<Check> {
    preflight_scoped(runbook, env, inputs, prompter, redactor, Scope::default()).await
}

/// Which wave a stage's checks run in: credentials first; then SSM reads, SSM writes and SSH
/// logins, which need nothing of each other; then database logins (a password read from SSM,
/// a tunnel through a host) and endpoints (reached through a host).
fn wave(stage: Stage) -> u8 {
    match stage {
        Stage::Credentials => 0,
        Stage::Read | Stage::Write | Stage::Host => 1,
        Stage::Login | Stage::Call => 2,
    }
}

/// Run every check, wave by wave, the checks of a wave concurrently, listed in the order of
/// their stages (AWS, SSM reads, SSM writes, SSH, databases, HTTP): what each step's kind says
/// it needs, from its parameters rendered before the run, each checked once.
pub async fn preflight_scoped(
    runbook: &Runbook,
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
    prompter: &dyn Prompter,
    redactor: &Redactor,
    scope: Scope<'_>,
) -> Vec<Check> {
    let ctx_json = plan::context(runbook, env, inputs);
    let ctx = template::value(&ctx_json);
    let mut needs = Needs::new(&plan::is_known);
    for step in runbook.all_steps() {
        if scope.skip.is_some_and(|s| s.contains(step.id())) {
            continue;
        }
        let Ok(rendered) = render_node(&step.params, &ctx) else {
            continue;
        };
        let cx = NeedCx {
            step_id: step.id(),
            params: &step.params,
            env,
            judge: !scope.changed,
        };
        step.kind.preflight(&rendered, &cx, &mut needs);
    }
    let gathered = needs.gathered();

    let resources = Resources::default();
    let progress = |_: &str| {};
    let add_secret = |s: &str| redactor.try_add(s);
    let holds_secret = |s: &str| !redactor.spans(s).is_empty();
    let run = RunCx {
        env,
        step_id: "preflight",
        prompter,
        resources: &resources,
        progress: &progress,
        note: &progress,
        warn: &progress,
        add_secret: &add_secret,
        holds_secret: &holds_secret,
        assume_yes: false,
        nested: None,
        record: None,
    };
    let cx = ProbeCx::new(run, &ctx_json, &gathered.readable);
    let total = gathered.needs.len();
    let slots: Vec<std::sync::Mutex<Option<Check>>> =
        (0..total).map(|_| std::sync::Mutex::new(None)).collect();
    let ended = std::sync::atomic::AtomicUsize::new(0);
    for w in 0..=2 {
        let futures: Vec<_> = gathered
            .needs
            .iter()
            .zip(&slots)
            .filter(|(need, _)| wave(need.stage()) == w)
            .map(|(need, slot)| {
                let (cx, ended) = (&cx, &ended);
                let progress = scope.progress;
                async move {
                    let c = need.check(cx).await;
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
                    let n = ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if let Some(p) = progress {
                        p(n, total);
                    }
                }
            })
            .collect();
        crate::steps::fanout::join_all(futures).await;
    }
    let mut checks: Vec<Check> = slots
        .into_iter()
        .filter_map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    checks.extend(gathered.skipped);
    for kind in KINDS {
        kind.close(&resources).await;
    }

    for c in &mut checks {
        c.reason = redactor.redact(&c.reason).into_owned();
        c.target = redactor.redact(&c.target).into_owned();
        if let Some(d) = &mut c.detail {
            *d = redactor.redact(d).into_owned();
        }
    }
    checks
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Skip => "skip",
        Status::Fail => "FAIL",
    }
}

/// The checks as an aligned table (fitted to `width`, the terminal's, when given), then what each failure said, then a count. Targets and
/// reasons name hosts, parameters and remote answers: shown with control characters visible.
pub fn table(checks: &[Check], width: Option<usize>) -> String {
    let shown: Vec<Check> = checks
        .iter()
        .map(|c| {
            // A reason of several lines (a credential chain) keeps the table one line a
            // check: its first line there, the rest with the detail.
            let (first, rest) = c.reason.split_once('\n').unwrap_or((&c.reason, ""));
            let detail = [rest.trim(), c.detail.as_deref().unwrap_or("")]
                .iter()
                .filter(|t| !t.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("\n");
            Check {
                check: c.check,
                target: visible_line(&c.target).into_owned(),
                status: c.status,
                reason: visible_line(first).into_owned(),
                detail: (!detail.is_empty()).then(|| visible(&detail).into_owned()),
            }
        })
        .collect();
    let checks = &shown[..];
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                c.check.to_string(),
                c.target.clone(),
                status_text(c.status).to_string(),
                c.reason.clone(),
            ]
        })
        .collect();
    let mut o = crate::table::render(
        &["CHECK", "TARGET", "RESULT", "REASON"],
        &["CHECK", "RESULT"],
        &rows,
        width,
    );
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
