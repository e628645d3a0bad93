//! `runbook status --env E` / `--all-envs`: the SSM parameters the runbooks write, when each
//! was last changed and is due ([`crate::status`]), as a table fitted to the terminal or one
//! JSON document. Exit 1 when one is overdue or an environment's SSM could not be read.

use std::time::SystemTime;

use super::args::Output;
use super::{Ctx, json, ui};
use crate::diag::{Code, Problem};
use crate::display::visible_line;
use crate::model::Environment;
use crate::session::{Failure, Kind};
use crate::status::{Row, State, Unrendered};

const DAY: u64 = 86_400;

/// `2026-12-06`, the day of a time (UTC).
fn day(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
}

/// `in 12 days`, `3 days ago`, relative to `now`.
fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(d) if d.as_secs() < DAY => "in less than a day".into(),
        Ok(d) => format!(
            "in {}",
            crate::plan::plural((d.as_secs() / DAY) as usize, "day")
        ),
        Err(e) if e.duration().as_secs() < DAY => "less than a day ago".into(),
        Err(e) => format!(
            "{} ago",
            crate::plan::plural((e.duration().as_secs() / DAY) as usize, "day")
        ),
    }
}

fn cells(r: &Row, now: SystemTime, all: bool) -> Vec<String> {
    let due = r
        .due
        .map_or("-".into(), |d| format!("{} ({})", day(d), relative(d, now)));
    let changed = match (r.last_modified, r.version) {
        (Some(t), Some(v)) => {
            let mut s = format!("{} v{v}", day(t));
            if let (Some(vv), Some(since)) = (r.value_version, r.value_since) {
                s.push_str(&format!(" (the value of v{vv}, {})", day(since)));
            }
            s
        }
        (None, Some(v)) => format!("v{v}"),
        _ => "-".into(),
    };
    let last_run = r.last_run.as_ref().map_or("-".into(), |l| {
        let mut s = format!("{} {} {}", l.run_id, l.runbook, l.outcome);
        if l.put_back {
            s.push_str(" (old value put back)");
        }
        if l.changed_since {
            s.push_str(" (changed in SSM since)");
        }
        s
    });
    let schedule = match &r.schedule {
        Some(d) => format!("{} ({})", d.text, d.runbook),
        None => {
            let names: Vec<&str> = r.writers.iter().map(|w| w.runbook.as_str()).collect();
            format!("none ({})", names.join(", "))
        }
    };
    let mut row = Vec::new();
    if all {
        row.push(r.env.clone());
    }
    row.extend([
        r.name.clone(),
        r.state.as_str().to_string(),
        due,
        changed,
        r.last_modified_user.clone().unwrap_or_else(|| "-".into()),
        last_run,
        schedule,
    ]);
    row.iter().map(|c| visible_line(c).into_owned()).collect()
}

impl Ctx {
    pub(super) fn status(
        &self,
        env: Option<&str>,
        all_envs: bool,
        at: Option<SystemTime>,
        output: Output,
    ) -> Result<(), Failure> {
        let now = SystemTime::now();
        // A time before now would judge today's dates as if they had been known then.
        if let Some(t) = at
            && t + std::time::Duration::from_secs(60) < now
        {
            return Err(Failure::invalid(
                Problem::error(
                    Code::BadInput,
                    format!(
                        "--at {} is in the past",
                        humantime::format_rfc3339_seconds(t)
                    ),
                )
                .help(
                    "give a time from now on: `--at 2027-03-01` shows what will be overdue by then",
                ),
            ));
        }
        let now = at.unwrap_or(now);
        let session = self.offline();
        let catalog = session.catalog()?;
        let envs: Vec<&Environment> = if all_envs {
            session.environment(&catalog, None, false).map_or_else(
                // `environment` refuses a missing name when there are several: take them all,
                // once environments.yaml has no error (it said so when it has one).
                |f| {
                    if f.problems.iter().any(|p| p.code == Code::MissingEnv)
                        && !catalog.environments.list.is_empty()
                    {
                        Ok(catalog.environments.list.iter().collect())
                    } else {
                        Err(f)
                    }
                },
                |e| Ok(vec![e]),
            )?
        } else {
            vec![session.environment(&catalog, env, false).map_err(|mut f| {
                // Several environments and none named: `--all-envs` is the other answer.
                for p in f.problems.iter_mut().filter(|p| p.code == Code::MissingEnv) {
                    if let Some(h) = &mut p.help {
                        h.push_str(", or --all-envs");
                    }
                }
                f
            })?]
        };
        let state = session.state(false)?;
        let audit = state.join("audit.jsonl");
        if audit.symlink_metadata().is_ok()
            && let Err(e) = crate::state::open_read(&audit)
        {
            eprintln!(
                "note: {} cannot be read ({e}): no last run is shown",
                audit.display()
            );
        }
        let runtime = crate::session::runtime()?;
        let mut rows: Vec<Row> = Vec::new();
        let mut unrendered: Vec<Unrendered> = Vec::new();
        let mut failed = 0;
        let mut errors: Vec<serde_json::Value> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        for e in &envs {
            if all_envs && e.doc.aws.is_none() {
                skipped.push(e.name.clone());
                continue;
            }
            match runtime.block_on(crate::status::status(
                &catalog.runbooks,
                e,
                Some(&state),
                now,
            )) {
                Ok((r, u)) => {
                    rows.extend(r);
                    unrendered.extend(u);
                }
                Err(err) => {
                    let mut p = Problem::error(
                        Code::StatusUnavailable,
                        format!(
                            "cannot read the parameters of `{}` from SSM: {}",
                            e.name, err.message
                        ),
                    );
                    if let Some(h) = &err.help {
                        p = p.help(h.clone());
                    }
                    errors.push(serde_json::json!({
                        "env": e.name,
                        "code": Code::StatusUnavailable,
                        "message": p.message,
                        "detail": err.detail,
                        "help": p.help,
                    }));
                    // Said now, each with its cause under it; the table of the others follows.
                    self.report(std::slice::from_ref(&p));
                    if let Some(d) = &err.detail {
                        eprintln!("  {}", visible_line(d));
                    }
                    failed += 1;
                }
            }
        }
        runtime.shutdown_background();
        let overdue = rows.iter().filter(|r| r.state == State::Overdue).count();
        match output {
            Output::Json => json::print_document(serde_json::json!({
                "now": humantime::format_rfc3339_seconds(now).to_string(),
                "environments": envs.iter().map(|e| &e.name).filter(|n| !skipped.contains(n)).collect::<Vec<_>>(),
                "overdue": overdue,
                "parameters": rows,
                "unrendered": unrendered,
                "skipped_environments": skipped,
                "errors": errors,
            })),
            Output::Human => {
                for n in &skipped {
                    eprintln!(
                        "note: environment `{}` has no `aws:` settings: it has no SSM parameters to show",
                        visible_line(n)
                    );
                }
                for u in &unrendered {
                    eprintln!(
                        "note: `{}` step `{}` writes `{}`, {}: not shown",
                        visible_line(&u.runbook),
                        visible_line(&u.step),
                        visible_line(&u.name),
                        u.why
                    );
                }
                if !rows.is_empty() {
                    let all = all_envs;
                    let mut header = vec![
                        "PARAMETER",
                        "STATE",
                        "DUE",
                        "CHANGED",
                        "BY",
                        "LAST RUN",
                        "SCHEDULE",
                    ];
                    if all {
                        header.insert(0, "ENV");
                    }
                    let table: Vec<Vec<String>> = rows.iter().map(|r| cells(r, now, all)).collect();
                    print!(
                        "{}",
                        crate::table::render(
                            &header,
                            &["ENV", "PARAMETER", "STATE"],
                            &table,
                            ui::stdout_width()
                        )
                    );
                    println!("\n{}", summary(&rows));
                } else if failed == 0 {
                    println!("no SSM parameter is written by the runbooks here");
                }
            }
        }
        let invalid = catalog.problems.iter().filter(|p| p.is_error()).count();
        if invalid > 0 {
            eprintln!(
                "{invalid} problem(s) in {}: run `runbook check` to see them (their runbooks are not counted).",
                self.dir.display()
            );
        }
        if failed > 0 || overdue > 0 {
            return Err(Failure::quiet(Kind::StepFailed));
        }
        Ok(())
    }
}

/// `1 overdue, 2 due soon, 4 ok, …`: the states that occur, in order of urgency.
fn summary(rows: &[Row]) -> String {
    let order = [
        State::Overdue,
        State::DueSoon,
        State::Ok,
        State::NotScheduled,
        State::NeverSet,
        State::Undated,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|s| {
            let n = rows.iter().filter(|r| r.state == *s).count();
            (n > 0).then(|| format!("{n} {}", s.as_str()))
        })
        .collect();
    format!(
        "{}: {}",
        crate::plan::plural(rows.len(), "parameter"),
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn relative_days() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100 * DAY);
        let d = |n: u64| Duration::from_secs(n * DAY);
        assert_eq!(relative(now + d(12), now), "in 12 days");
        assert_eq!(relative(now + d(1), now), "in 1 day");
        assert_eq!(
            relative(now + Duration::from_secs(5), now),
            "in less than a day"
        );
        assert_eq!(relative(now - d(3), now), "3 days ago");
        assert_eq!(day(now), "1970-04-11");
    }
}
