//! `runbook status`: for each SSM parameter the runbooks write on an environment, when it was
//! last changed (SSM's metadata, never a value), the last run of the state directory's
//! `audit.jsonl` that changed it, the schedule its runbooks' `rotation:` gives, the date it is
//! due and whether it is overdue.
//!
//! The parameters are the names the runbooks' writing steps (the kinds that say which field
//! names what they write) render with the environment and the inputs' defaults. A name that
//! depends on an input without a default or on a step's output cannot be known before a run:
//! it is listed apart ([`Unrendered`]), not queried.
//!
//! Where several runbooks write one parameter, the strictest calendar schedule (`every N
//! days` with the smallest N) decides, and the row says which runbook gives it. A rotation
//! that rolled back stored the old value again as a new version: its date is then the date of
//! the version before the run (from `GetParameterHistory`), not that of the put-back.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use serde::Serialize;

use crate::catalog::Runbook;
use crate::engine::InputValue;
use crate::model::{Environment, Schedule};
use crate::steps::kind::{Resources, StepError};

/// At most this long before its due date a parameter is "due soon" (or half its interval,
/// when that is shorter).
pub const SOON: Duration = Duration::from_secs(14 * 86_400);
const DAY: u64 = 86_400;

/// Where a parameter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Past its due date.
    Overdue,
    /// Due within [`SOON`] (or half its interval).
    DueSoon,
    Ok,
    /// No runbook that writes it has a calendar schedule (`every N days`).
    NotScheduled,
    /// SSM has no such parameter.
    NeverSet,
    /// SSM gave no date of its last change.
    Undated,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Overdue => "overdue",
            State::DueSoon => "due soon",
            State::Ok => "ok",
            State::NotScheduled => "not scheduled",
            State::NeverSet => "never set",
            State::Undated => "no date",
        }
    }
}

/// A runbook that writes a parameter, and its schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Writer {
    pub runbook: String,
    /// `rotation:` as written (checked), `None` when it has none.
    pub rotation: Option<String>,
}

/// The schedule that decides a parameter's due date.
#[derive(Debug, Clone, Serialize)]
pub struct Deciding {
    /// `every 90 days`, `on suspected compromise`, … (normalized).
    pub text: String,
    /// The interval, for a calendar schedule.
    pub days: Option<u32>,
    pub runbook: String,
}

/// The last run in `audit.jsonl` that changed a parameter.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub run_id: String,
    pub runbook: String,
    pub started: String,
    pub ended: Option<String>,
    /// How the run ended: `done`, `failed`, `rolled-back`, …
    pub outcome: String,
    /// The run stored the old value again (its rollback's put ran).
    pub put_back: bool,
    /// SSM's latest version is newer than the run's end: something else (another machine's
    /// run, a person, another tool) stored the parameter since.
    pub changed_since: bool,
    /// How many versions the run stored (its write steps of the parameter that ended `ok`).
    #[serde(skip)]
    pub stored: i64,
}

/// One parameter of one environment.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub env: String,
    pub name: String,
    pub state: State,
    /// SSM's latest version, its date and who stored it (`LastModifiedUser`).
    pub version: Option<i64>,
    #[serde(serialize_with = "rfc3339")]
    pub last_modified: Option<SystemTime>,
    pub last_modified_user: Option<String>,
    /// When the value now stored was first stored: `last_modified`, or for a value a rollback
    /// put back, the date of the version it had before the run.
    #[serde(serialize_with = "rfc3339")]
    pub value_since: Option<SystemTime>,
    /// The version whose date `value_since` is, when it is not the latest.
    pub value_version: Option<i64>,
    pub schedule: Option<Deciding>,
    #[serde(serialize_with = "rfc3339")]
    pub due: Option<SystemTime>,
    pub last_run: Option<LastRun>,
    pub writers: Vec<Writer>,
}

/// A parameter name known only at run time: not queried.
#[derive(Debug, Clone, Serialize)]
pub struct Unrendered {
    pub env: String,
    pub runbook: String,
    pub step: String,
    /// The name as written (a template), or as rendered when SSM would refuse it.
    pub name: String,
    /// Why it is not queried: `known only at run time`, or `not a valid SSM parameter name`
    /// (one such name would make SSM refuse the whole batch).
    pub why: &'static str,
}

/// What SSM accepts in a parameter name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 2048
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
}

fn rfc3339<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string()),
        None => s.serialize_none(),
    }
}

/// A write of a runbook: the step's path (`store`, or `rotate/store` inside a nested
/// runbook), the name it writes, or its template when that is known only at run time.
#[derive(Debug, Clone)]
struct Put {
    path: String,
    name: Result<String, String>,
    /// A step of the runbook itself (not of one it runs).
    own: bool,
    /// A rollback step (it puts a value back).
    rollback: bool,
}

/// The inputs a runbook has before a run: the defaults of those that are not secret.
fn defaults(rb: &Runbook) -> IndexMap<String, InputValue> {
    rb.doc
        .inputs
        .iter()
        .filter(|(_, s)| !s.secret)
        .filter_map(|(n, s)| {
            Some((
                n.clone(),
                InputValue {
                    value: s.default.clone()?,
                    secret: false,
                },
            ))
        })
        .collect()
}

fn known(rendered: &str) -> bool {
    crate::plan::is_known(rendered) && !crate::template::is_template(rendered)
}

/// Every write of `rb` on `env` with `inputs`, through the runbooks it runs (whose names are
/// known before the run), each with its step path under `prefix`.
fn puts(
    rb: &Runbook,
    library: &[Runbook],
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
    prefix: &str,
    depth: usize,
    out: &mut Vec<Put>,
) -> Dynamic {
    let mut dynamic = Dynamic(false);
    // Cycles are refused by `check`; a last guard.
    if depth > 16 {
        return dynamic;
    }
    let plan = crate::plan::plan(rb, env, inputs);
    let rollback_ids: Vec<&str> = plan.rollback.iter().map(|s| s.id.as_str()).collect();
    for s in plan.steps.iter().chain(&plan.rollback) {
        let Some(kind) = crate::steps::find_kind(s.kind) else {
            continue;
        };
        let path = format!("{prefix}{}", s.id);
        if let Some(field) = kind.writes_named_by() {
            let written = rb
                .all_steps()
                .find(|st| st.id() == s.id)
                .and_then(|st| st.params.get(field))
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            let name = match s.param(field) {
                Some(n) if known(&n) => Ok(n),
                _ => Err(written),
            };
            out.push(Put {
                path: path.clone(),
                name,
                own: prefix.is_empty(),
                rollback: rollback_ids.contains(&s.id.as_str()),
            });
        }
        if let Some(field) = kind.runs_runbook_named_by() {
            let Some(name) = s.param(field).filter(|n| known(n)) else {
                dynamic.0 = true;
                continue;
            };
            let Some(child) = library.iter().find(|r| r.name() == name) else {
                continue;
            };
            let mut given = defaults(child);
            for (k, v) in &s.params {
                if let Some(name) = k.strip_prefix("inputs.")
                    && known(v)
                {
                    given.insert(
                        name.to_string(),
                        InputValue {
                            value: v.clone(),
                            secret: false,
                        },
                    );
                }
            }
            dynamic.0 |= puts(
                child,
                library,
                env,
                &given,
                &format!("{path}/"),
                depth + 1,
                out,
            )
            .0;
        }
    }
    dynamic
}

/// Whether a runbook runs another whose name is known only from a run's inputs.
#[derive(Debug, Clone, Copy)]
struct Dynamic(bool);

/// The inputs a run was started with, as its journal keeps them (a secret one has no value
/// there), over the runbook's defaults; `None` when the journal is gone.
fn run_inputs(state: &Path, rb: &Runbook, run_id: &str) -> Option<IndexMap<String, InputValue>> {
    let run = crate::journal::load_run(state, run_id)?;
    let mut inputs = defaults(rb);
    let given = run.records.iter().find_map(|r| match r {
        crate::journal::JRec::Meta { inputs, .. } => Some(inputs),
        _ => None,
    })?;
    for v in given.iter().filter(|v| !v.secret) {
        let value = match v.value.as_ref()? {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        inputs.insert(
            v.name.clone(),
            InputValue {
                value,
                secret: false,
            },
        );
    }
    Some(inputs)
}

/// The parameters the runbooks of `library` write on `env`, each with the runbooks that write
/// it (their own steps), and the names known only at run time.
pub fn targets(
    library: &[Runbook],
    env: &Environment,
) -> (BTreeMap<String, Vec<Writer>>, Vec<Unrendered>) {
    let mut names: BTreeMap<String, Vec<Writer>> = BTreeMap::new();
    let mut unrendered = Vec::new();
    for rb in library {
        let mut out = Vec::new();
        let _ = puts(rb, library, env, &defaults(rb), "", 0, &mut out);
        for p in out.into_iter().filter(|p| p.own) {
            match p.name {
                Ok(name) if !valid_name(&name) => unrendered.push(Unrendered {
                    env: env.name.clone(),
                    runbook: rb.name().to_string(),
                    step: p.path,
                    name,
                    why: "not a valid SSM parameter name",
                }),
                Ok(name) => {
                    let writers = names.entry(name).or_default();
                    if !writers.iter().any(|w| w.runbook == rb.name()) {
                        writers.push(Writer {
                            runbook: rb.name().to_string(),
                            rotation: rb.doc.rotation.clone(),
                        });
                    }
                }
                Err(template) => unrendered.push(Unrendered {
                    env: env.name.clone(),
                    runbook: rb.name().to_string(),
                    step: p.path,
                    name: template,
                    why: "a name known only at run time",
                }),
            }
        }
    }
    (names, unrendered)
}

/// The strictest schedule of a parameter's writers: the calendar one with the shortest
/// interval, else the first schedule written, else none.
pub fn deciding(writers: &[Writer]) -> Option<Deciding> {
    let parsed: Vec<(&Writer, Schedule)> = writers
        .iter()
        .filter_map(|w| Some((w, Schedule::parse(w.rotation.as_deref()?).ok()?)))
        .collect();
    // A rotation's own schedule over a bootstrap's `once per environment`.
    let pick = parsed
        .iter()
        .filter(|(_, s)| s.days().is_some())
        .min_by_key(|(_, s)| s.days())
        .or_else(|| {
            parsed
                .iter()
                .find(|(_, s)| *s != Schedule::OncePerEnvironment)
        })
        .or_else(|| parsed.first())?;
    Some(Deciding {
        text: pick.1.to_string(),
        days: pick.1.days(),
        runbook: pick.0.runbook.clone(),
    })
}

/// The state of a parameter changed at `since` (None: never set) with `schedule`, at `now`,
/// and its due date.
pub fn judge(
    exists: bool,
    since: Option<SystemTime>,
    schedule: Option<&Deciding>,
    now: SystemTime,
) -> (State, Option<SystemTime>) {
    if !exists {
        return (State::NeverSet, None);
    }
    let Some(days) = schedule.and_then(|s| s.days) else {
        return (State::NotScheduled, None);
    };
    let Some(since) = since else {
        return (State::Undated, None);
    };
    let interval = Duration::from_secs(u64::from(days) * DAY);
    let due = since + interval;
    let soon = SOON.min(interval / 2);
    let state = if now > due {
        State::Overdue
    } else if due.duration_since(now).unwrap_or_default() <= soon {
        State::DueSoon
    } else {
        State::Ok
    };
    (state, Some(due))
}

/// A run of `audit.jsonl` (its latest attempt).
struct AuditRun {
    run_id: String,
    runbook: String,
    started: String,
    ended: Option<String>,
    outcome: String,
    /// Step path → how it ended.
    steps: IndexMap<String, String>,
}

fn audit_runs(state: &Path, env: &str) -> Vec<AuditRun> {
    let mut by_id: IndexMap<String, AuditRun> = IndexMap::new();
    for line in crate::journal::read_audit(state) {
        let s = |k: &str| line.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if s("env").as_deref() != Some(env) {
            continue;
        }
        let (Some(run_id), Some(runbook), Some(started)) =
            (s("run_id"), s("runbook"), s("started"))
        else {
            continue;
        };
        let ended = &line["ended"];
        let steps = line
            .get("steps")
            .and_then(|v| v.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        // A later attempt (a resume) of the same run replaces the earlier one.
        by_id.shift_remove(&run_id);
        by_id.insert(
            run_id.clone(),
            AuditRun {
                run_id,
                runbook,
                started,
                ended: ended.get("at").and_then(|v| v.as_str()).map(str::to_string),
                outcome: ended
                    .get("status")
                    .and_then(|v| v.as_str())
                    .unwrap_or("unfinished")
                    .to_string(),
                steps,
            },
        );
    }
    by_id.into_values().collect()
}

/// The last run of `audit.jsonl` on `env` that changed each parameter (a write step of it, or
/// of a runbook it ran, ended `ok`).
fn last_runs(state: &Path, library: &[Runbook], env: &Environment) -> HashMap<String, LastRun> {
    let mut cache: HashMap<String, (Vec<Put>, Dynamic)> = HashMap::new();
    let mut last: HashMap<String, (SystemTime, LastRun)> = HashMap::new();
    for run in audit_runs(state, &env.name) {
        let Some(rb) = library.iter().find(|r| r.name() == run.runbook) else {
            continue;
        };
        let (cached, dynamic) = cache.entry(run.runbook.clone()).or_insert_with(|| {
            let mut out = Vec::new();
            let dynamic = puts(rb, library, env, &defaults(rb), "", 0, &mut out);
            (out, dynamic)
        });
        // A runbook it ran was named by an input (a compromise response's secret): its
        // journal has the inputs.
        let own;
        let puts = match dynamic
            .0
            .then(|| run_inputs(state, rb, &run.run_id))
            .flatten()
        {
            Some(inputs) => {
                let mut out = Vec::new();
                puts(rb, library, env, &inputs, "", 0, &mut out);
                own = out;
                &own
            }
            None => &*cached,
        };
        let at = parse_time(run.ended.as_deref().unwrap_or(&run.started))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut changed: IndexMap<String, (bool, i64)> = IndexMap::new();
        for p in puts.iter() {
            let Ok(name) = &p.name else { continue };
            if run.steps.get(&p.path).map(String::as_str) == Some("ok") {
                let (put_back, stored) = changed.entry(name.clone()).or_insert((false, 0));
                *put_back |= p.rollback;
                *stored += 1;
            }
        }
        for (name, (put_back, stored)) in changed {
            if last.get(&name).is_some_and(|(t, _)| *t > at) {
                continue;
            }
            last.insert(
                name,
                (
                    at,
                    LastRun {
                        run_id: run.run_id.clone(),
                        runbook: run.runbook.clone(),
                        started: run.started.clone(),
                        ended: run.ended.clone(),
                        outcome: run.outcome.clone(),
                        put_back,
                        changed_since: false,
                        stored,
                    },
                ),
            );
        }
    }
    last.into_iter().map(|(k, (_, r))| (k, r)).collect()
}

fn parse_time(t: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(t).ok()
}

/// The status of every parameter the runbooks write on `env`, at `now`: SSM is asked for the
/// metadata of them all (and the history of one a rollback put back). An SSM failure is the
/// environment's failure, with its help.
pub async fn status(
    library: &[Runbook],
    env: &Environment,
    state: Option<&Path>,
    now: SystemTime,
) -> Result<(Vec<Row>, Vec<Unrendered>), StepError> {
    let (names, unrendered) = targets(library, env);
    if names.is_empty() {
        return Ok((Vec::new(), unrendered));
    }
    let resources = Resources::default();
    let list: Vec<String> = names.keys().cloned().collect();
    let meta = crate::aws::meta::describe_many(env, &resources, &list, &|_| {}).await?;
    let runs = state.map_or_else(HashMap::new, |s| last_runs(s, library, env));
    let mut rows = Vec::new();
    for (name, writers) in names {
        let latest = meta.get(&name);
        let mut last_run = runs.get(&name).cloned();
        if let (Some(run), Some(modified)) = (&mut last_run, latest.and_then(|v| v.modified)) {
            // Audit times are whole seconds.
            run.changed_since = run
                .ended
                .as_deref()
                .and_then(parse_time)
                .is_some_and(|end| modified > end + Duration::from_secs(1));
        }
        let mut value_since = latest.and_then(|v| v.modified);
        let mut value_version = None;
        // A rollback stored the old value again: the value is that of the version before the
        // run's first write, if the latest version is the run's own last write (made within the
        // run, which stored `stored` versions; audit times are whole seconds).
        if let (Some(v), Some(run)) = (latest, &last_run)
            && run.put_back
            && let (Some(modified), Some(started)) = (v.modified, parse_time(&run.started))
            && modified + Duration::from_secs(1) >= started
            && run
                .ended
                .as_deref()
                .and_then(parse_time)
                .is_none_or(|end| modified <= end + Duration::from_secs(1))
        {
            let before = v.version - run.stored;
            let history = crate::aws::meta::history(env, &resources, &name).await?;
            if let Some(h) = history.iter().find(|h| h.version == before) {
                value_since = h.modified;
                value_version = Some(h.version);
            }
        }
        let schedule = deciding(&writers);
        let (state, due) = judge(latest.is_some(), value_since, schedule.as_ref(), now);
        rows.push(Row {
            env: env.name.clone(),
            name,
            state,
            version: latest.map(|v| v.version),
            last_modified: latest.and_then(|v| v.modified),
            last_modified_user: latest.and_then(|v| v.user.clone()),
            value_since,
            value_version,
            schedule,
            due,
            last_run,
            writers,
        });
    }
    Ok((rows, unrendered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(runbook: &str, rotation: Option<&str>) -> Writer {
        Writer {
            runbook: runbook.into(),
            rotation: rotation.map(str::to_string),
        }
    }

    #[test]
    fn the_strictest_calendar_schedule_decides() {
        let d = deciding(&[
            w("bootstrap", Some("once per environment")),
            w("slow", Some("every 180 days")),
            w("none", None),
            w("fast", Some("every 90 days")),
        ])
        .unwrap();
        assert_eq!((d.days, d.runbook.as_str()), (Some(90), "fast"));
        let d = deciding(&[w("none", None), w("b", Some("once per environment"))]).unwrap();
        assert_eq!((d.days, d.text.as_str()), (None, "once per environment"));
        let d = deciding(&[
            w("b", Some("once per environment")),
            w("c", Some("on suspected compromise")),
        ])
        .unwrap();
        assert_eq!(d.runbook, "c");
        assert!(deciding(&[w("none", None)]).is_none());
    }

    #[test]
    fn states_follow_the_due_date() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 * DAY);
        let every = |days| Deciding {
            text: String::new(),
            days: Some(days),
            runbook: String::new(),
        };
        let day = |n: u64| Duration::from_secs(n * DAY);
        let s = every(90);
        assert_eq!(judge(true, Some(t0), Some(&s), t0).0, State::Ok);
        assert_eq!(
            judge(true, Some(t0), Some(&s), t0 + day(77)).0,
            State::DueSoon
        );
        assert_eq!(
            judge(true, Some(t0), Some(&s), t0 + day(91)).0,
            State::Overdue
        );
        assert_eq!(judge(true, Some(t0), Some(&s), t0).1, Some(t0 + day(90)));
        // A short interval: due soon in its second half only.
        let s = every(2);
        assert_eq!(judge(true, Some(t0), Some(&s), t0).0, State::Ok);
        assert_eq!(
            judge(true, Some(t0), Some(&s), t0 + Duration::from_secs(DAY + 1)).0,
            State::DueSoon
        );
        assert_eq!(judge(false, None, Some(&s), t0).0, State::NeverSet);
        assert_eq!(judge(true, Some(t0), None, t0).0, State::NotScheduled);
        assert_eq!(judge(true, None, Some(&s), t0).0, State::Undated);
    }
}
