//! A series: one runbook on several environments, one after another
//! (`runbook run NAME --env staging --env production`). Each environment is a run of its own
//! (its own preflight, gates, verification, journal and run id); the next starts only when
//! the previous one is done, and the first that does not end done stops the rest. Every
//! environment is checked before the first one runs, and the runs share one series id,
//! recorded in their journals and audit lines.

use std::collections::HashSet;

use super::guard;
use super::run::One;
use super::series_cx::SeriesCx;
use super::{Failure, Kind, Session, Start};
use crate::diag::{Code, Problem};
use crate::display::visible_line;
use crate::journal;
use crate::load;
use crate::model::Environment;

/// How one environment of a series ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesEnv {
    pub env: String,
    /// `done`; how its run ended (`failed`, `rolled-back`, `declined`, `interrupted`);
    /// `refused` when it stopped before its run began (its preflight, a lock: nothing
    /// changed there); or `not-started`.
    pub status: String,
    /// Its run, once one began (a journal exists).
    pub run_id: Option<String>,
    /// How it failed, for the exit code (the CLI's to decide).
    #[serde(skip)]
    pub failed: Option<Kind>,
}

/// What a series did, environment by environment, and the commands that go on from where it
/// stopped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesReport {
    pub series: String,
    pub runbook: String,
    /// Every environment given, in order.
    pub environments: Vec<SeriesEnv>,
    /// The commands to run, in order, to finish what the series did not (empty when done).
    #[serde(rename = "continue")]
    pub go_on: Vec<String>,
}

impl SeriesReport {
    /// The report for people: one line per environment, then how to go on.
    pub fn lines(&self) -> Vec<String> {
        let width = self
            .environments
            .iter()
            .map(|e| visible_line(&e.env).chars().count())
            .max()
            .unwrap_or(0);
        let done = self
            .environments
            .iter()
            .filter(|e| e.status == "done")
            .count();
        let mut out = vec![format!(
            "series {} of {}: {done} of {} environments done",
            self.series,
            visible_line(&self.runbook),
            self.environments.len()
        )];
        for e in &self.environments {
            let name = visible_line(&e.env);
            let status = match e.status.as_str() {
                "refused" => "refused before its run began; nothing changed there",
                "not-started" => "not started",
                s => s,
            };
            let run = e
                .run_id
                .as_ref()
                .map_or(String::new(), |id| format!(" (run {id})"));
            out.push(format!("  {name:<width$}  {status}{run}"));
        }
        if let Some((first, rest)) = self.go_on.split_first() {
            let mut line = format!("to go on: `{}`", visible_line(first));
            for c in rest {
                line.push_str(&format!(", then `{}`", visible_line(c)));
            }
            out.push(line);
        }
        out
    }
}

impl Session {
    /// The environments `names`, in order: every unknown one and every repeated one is
    /// refused, together, before anything runs.
    pub fn environments_named<'a>(
        &self,
        catalog: &'a load::Catalog,
        rb: &crate::catalog::Runbook,
        names: &[String],
    ) -> Result<Vec<&'a Environment>, Failure> {
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        let mut envs = Vec::new();
        for name in names {
            if !seen.insert(name.as_str()) {
                problems.push(
                    Problem::error(
                        Code::DuplicateEnv,
                        format!(
                            "environment `{}` is given twice",
                            visible_line(name)
                        ),
                    )
                    .help("give each environment once: they run one after another, in the order given"),
                );
                continue;
            }
            match self.environment_for(catalog, rb, Some(name), false) {
                Ok(env) => envs.push(env),
                Err(f) if f.kind == Kind::Invalid && !f.problems.is_empty() => {
                    let unknown = f.problems.iter().all(|p| p.code == Code::UnknownEnv);
                    problems.extend(f.problems);
                    // environments.yaml itself is invalid: its problems once are enough.
                    if !unknown {
                        break;
                    }
                }
                Err(f) => return Err(f),
            }
        }
        if problems.is_empty() {
            Ok(envs)
        } else {
            Err(Failure::invalid_all(problems).line(format!(
                "nothing ran in any of the {} environments given",
                names.len()
            )))
        }
    }

    /// Run `start`'s runbook on `names`, one environment after another. Everything that can
    /// be decided before the first run (the environments, the inputs, the approvals, the
    /// unfinished runs of each) is decided for all of them first: a refusal there runs
    /// nothing anywhere. Then each environment is a run of its own; the first that does not
    /// end done stops the series. Returns the report with how the series ended, or the
    /// refusal when nothing ran.
    pub fn run_series(
        &self,
        start: Start<'_>,
        names: &[String],
        confirm_envs: &[String],
    ) -> Result<(SeriesReport, Result<(), Failure>), Failure> {
        let interactive = self.interactive(start.approval.step)?;
        let catalog = self.catalog()?;
        let rb = self.runbook(&catalog, start.name)?;
        let selected = Self::selection(rb, &start.selection)?;
        let envs = self.environments_named(&catalog, rb, names)?;
        let mismatched: Vec<Problem> = confirm_envs
            .iter()
            .filter(|c| !names.contains(c))
            .map(|c| {
                Problem::error(
                    Code::ConfirmEnvMismatch,
                    format!(
                        "--confirm-env `{}` is not one of this run's environments ({})",
                        c.escape_debug(),
                        names.join(", ")
                    ),
                )
                .help("--confirm-env repeats the name of a protected environment of the run, once for each")
            })
            .collect();
        if !mismatched.is_empty() {
            return Err(Failure::invalid_all(mismatched));
        }
        let values = self.bind_inputs(rb, start.inputs)?;
        // Two environments that write one parameter: the later run would overwrite what the
        // earlier stored, and its app would read another environment's secret.
        let mut shared = Vec::new();
        for (i, a) in envs.iter().enumerate() {
            for b in &envs[i + 1..] {
                let both = guard::written_by_both(rb, &catalog.runbooks, a, b, &values);
                if !both.is_empty() {
                    shared.push(
                        Problem::error(
                            Code::SameParameter,
                            format!(
                                "`{}` and `{}` would both write {} in the same SSM",
                                visible_line(&a.name),
                                visible_line(&b.name),
                                both.iter()
                                    .map(|n| format!("`{}`", visible_line(n)))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                        .help(format!(
                            "the run on `{}` would overwrite what the run on `{}` stored; give each environment its own `ssm_prefix` in {}, or run one of them alone",
                            visible_line(&b.name),
                            visible_line(&a.name),
                            load::ENVIRONMENTS_FILE
                        )),
                    );
                }
            }
        }
        if !shared.is_empty() {
            return Err(
                Failure::invalid_all(shared).line("nothing ran in any of the environments given")
            );
        }
        let ones: Vec<One<'_>> = envs
            .iter()
            .map(|env| One {
                catalog: &catalog,
                rb,
                env,
                values: &values,
                selected: selected.as_deref(),
                interactive,
                approval: super::Approval {
                    confirm_env: confirm_envs
                        .iter()
                        .find(|c| **c == env.name)
                        .map(String::as_str),
                    ..start.approval
                },
                no_preflight: start.no_preflight,
                new: start.new,
            })
            .collect();
        // Every environment admitted before the first runs: a refusal of the last one must
        // not come after the first one changed.
        for one in &ones {
            if let Err(f) = self.admit(one) {
                return Err(f.line(format!(
                    "nothing ran: every environment is checked before the first one ({}) runs",
                    visible_line(&names[0])
                )));
            }
        }
        let series = SeriesCx::new(journal::new_run_id(), self.front.clone());
        let state = journal::state_dir(self.state_dir.as_deref());
        self.front.say(&format!(
            "series {}: {} on {}, one after another; each environment is a run of its own, and the next begins only when the previous one is done\n",
            series.id,
            visible_line(rb.name()),
            names
                .iter()
                .map(|n| visible_line(n).into_owned())
                .collect::<Vec<_>>()
                .join(", then ")
        ));
        let mut environments: Vec<SeriesEnv> = names
            .iter()
            .map(|n| SeriesEnv {
                env: n.clone(),
                status: "not-started".into(),
                run_id: None,
                failed: None,
            })
            .collect();
        let mut outcome = Ok(());
        let mut resumable = None;
        for (i, one) in ones.iter().enumerate() {
            if series.stopped() {
                outcome = Err(Failure::quiet(Kind::Interrupted));
                break;
            }
            self.front.say(&format!(
                "\nenvironment {} of {}: {}\n",
                i + 1,
                ones.len(),
                visible_line(&one.env.name)
            ));
            let run_id = journal::new_run_id();
            let result = self.run_one(one, run_id.clone(), Some(&series));
            let run = journal::load_run(&state, &run_id);
            let e = &mut environments[i];
            e.run_id = run.as_ref().map(|r| r.run_id.clone());
            match result {
                Ok(()) => e.status = "done".into(),
                Err(f) => {
                    e.status = match &run {
                        Some(r) => r.status.clone(),
                        None if f.kind == Kind::Interrupted => "interrupted".into(),
                        None => "refused".into(),
                    };
                    e.failed = Some(f.kind);
                    resumable = run.filter(|r| r.resumable).map(|r| r.run_id);
                    outcome = Err(f);
                    break;
                }
            }
        }
        let go_on = go_on(
            rb.name(),
            &environments,
            resumable.as_deref(),
            start.inputs,
            &Approvals {
                yes: start.approval.yes,
                confirm_envs,
            },
        );
        Ok((
            SeriesReport {
                series: series.id.clone(),
                runbook: rb.name().to_string(),
                environments,
                go_on,
            },
            outcome,
        ))
    }
}

/// The approvals a series was given, which the commands that go on repeat: without them, a
/// command run where nobody can answer (CI) would stop at the first gate.
struct Approvals<'a> {
    yes: bool,
    confirm_envs: &'a [String],
}

impl Approvals<'_> {
    /// `--yes` and the `--confirm-env` of these environments, as given.
    fn flags<'e>(&self, envs: impl IntoIterator<Item = &'e str>) -> String {
        let mut out = String::new();
        if self.yes {
            out.push_str(" --yes");
        }
        for env in envs {
            if self.confirm_envs.iter().any(|c| c == env) {
                out.push_str(&format!(" --confirm-env {}", quote(env)));
            }
        }
        out
    }
}

/// The commands that finish what a series left: `resume` of the run that stopped when it can
/// be resumed, then a new series of the environments after it (or from it, when its run is
/// over: rolled back, refused, declined before any change), with the approvals it was given.
fn go_on(
    runbook: &str,
    envs: &[SeriesEnv],
    resumable: Option<&str>,
    inputs: &[String],
    approvals: &Approvals<'_>,
) -> Vec<String> {
    let Some(stopped) = envs.iter().position(|e| e.status != "done") else {
        return Vec::new();
    };
    let mut commands = Vec::new();
    let rest = match resumable {
        Some(id) => {
            commands.push(format!(
                "runbook resume {id}{}",
                approvals.flags([envs[stopped].env.as_str()])
            ));
            &envs[stopped + 1..]
        }
        None => &envs[stopped..],
    };
    if !rest.is_empty() {
        let mut c = format!("runbook run {}", quote(runbook));
        for e in rest {
            c.push_str(&format!(" --env {}", quote(&e.env)));
        }
        for i in inputs {
            c.push_str(&format!(" --input {}", quote(i)));
        }
        c.push_str(&approvals.flags(rest.iter().map(|e| e.env.as_str())));
        commands.push(c);
    }
    commands
}

/// One shell word: as it is when it is plain, else in single quotes.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        crate::template::sh_quote(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Approvals<'static> = Approvals {
        yes: false,
        confirm_envs: &[],
    };

    fn env(name: &str, status: &str) -> SeriesEnv {
        SeriesEnv {
            env: name.into(),
            status: status.into(),
            run_id: None,
            failed: None,
        }
    }

    #[test]
    fn the_way_on_resumes_the_stopped_run_then_runs_the_rest() {
        let envs = [
            env("staging", "done"),
            env("production", "failed"),
            env("eu", "not-started"),
        ];
        assert_eq!(
            go_on(
                "db-password",
                &envs,
                Some("20260101-000000-abcd"),
                &["reason=leak at 9".into()],
                &NONE
            ),
            [
                "runbook resume 20260101-000000-abcd",
                "runbook run db-password --env eu --input 'reason=leak at 9'"
            ]
        );
        assert_eq!(
            go_on("db-password", &envs, None, &[], &NONE),
            ["runbook run db-password --env production --env eu"]
        );
        let done = [env("staging", "done"), env("production", "done")];
        assert!(go_on("db-password", &done, None, &[], &NONE).is_empty());
        let last = [env("staging", "done"), env("production", "failed")];
        assert_eq!(
            go_on("x", &last, Some("20260101-000000-abcd"), &[], &NONE),
            ["runbook resume 20260101-000000-abcd"]
        );
        // The approvals given go on with the commands: `--yes`, and each protected
        // environment's `--confirm-env` where that environment is.
        let confirm = ["production".to_string(), "eu".to_string()];
        let given = Approvals {
            yes: true,
            confirm_envs: &confirm,
        };
        assert_eq!(
            go_on("x", &envs, Some("20260101-000000-abcd"), &[], &given),
            [
                "runbook resume 20260101-000000-abcd --yes --confirm-env production",
                "runbook run x --env eu --yes --confirm-env eu"
            ]
        );
    }

    #[test]
    fn a_word_with_a_quote_stays_one_word() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a-b_c"), "a-b_c");
        assert_eq!(quote(""), "''");
    }
}
