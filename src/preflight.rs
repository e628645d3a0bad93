//! Preflight: read-only checks that a run of a runbook in an environment will find what it
//! needs — AWS credentials and SSM parameters, SSH hosts, database logins, HTTP endpoints —
//! made with the step kinds' own connection code. Nothing is written and no value is returned:
//! every value read is registered with the caller's redactor, and every reason is masked.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde::Serialize;

use crate::engine::{InputValue, render_node};
use crate::load::yaml::Node;
use crate::model::{Environment, Runbook, Step};
use crate::secret::Redactor;
use crate::steps::ssm::IfExists;
use crate::steps::{Kind, Prompter, Resources, RunCx, StepError, http, psql, ssh, ssm};
use crate::{plan, template};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Works, but deserves a look (an HTTP 5xx while the app may be mid-deploy).
    Warn,
    /// Cannot be checked before the run (a name or password only the run knows).
    Skip,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked: `aws`, `ssm read`, `ssm write`, `ssh`, `database`, `http`.
    pub check: &'static str,
    pub target: String,
    pub status: Status,
    pub reason: String,
    /// More lines for a failure: what the service said, a help line.
    pub detail: Option<String>,
}

impl Check {
    fn new(check: &'static str, target: impl Into<String>) -> Check {
        Check {
            check,
            target: target.into(),
            status: Status::Pass,
            reason: String::new(),
            detail: None,
        }
    }
    fn with(mut self, status: Status, reason: impl Into<String>) -> Check {
        self.status = status;
        self.reason = reason.into();
        self
    }
    fn outcome(self, r: Result<String, StepError>) -> Check {
        match r {
            Ok(reason) => self.with(Status::Pass, reason),
            Err(e) => {
                let mut c = self.with(Status::Fail, e.message);
                c.detail = e.detail;
                c
            }
        }
    }
}

/// Whether every check passed (a warning or a skip does not fail a preflight).
pub fn passed(checks: &[Check]) -> bool {
    !checks.iter().any(|c| c.status == Status::Fail)
}

/// What the run will need, gathered from the steps' parameters rendered before the run.
#[derive(Default)]
struct Needs {
    aws: bool,
    /// SSM parameters read, by name: whether the step decrypts.
    reads: IndexMap<String, bool>,
    /// `ssm.get` steps by id: the parameter they read.
    read_by_step: HashMap<String, String>,
    /// SSM parameters written, by name: the step's policy when it exists.
    writes: IndexMap<String, IfExists>,
    /// Hosts by name: the steps that use them.
    hosts: IndexMap<String, Vec<String>>,
    /// Database logins by (database, user): how the password is known.
    logins: IndexMap<(String, String), Password>,
    /// HTTP endpoints by (url, via): the step's parameters.
    endpoints: IndexMap<(String, Option<String>), http::Params>,
    /// Checks that cannot be made: a name only the run knows.
    skipped: Vec<Check>,
}

/// How a database login's password can be had before the run.
enum Password {
    /// The template reads only the value of an `ssm.get` step: `(step id, template)`.
    FromSsm(String, String),
    /// Only the run knows it (a generated value, an input not given).
    RunTime,
}

/// Run every check, one after another, in the order: AWS, SSM reads, SSM writes, SSH,
/// databases, HTTP.
pub async fn preflight(
    runbook: &Runbook,
    env: &Environment,
    inputs: &IndexMap<String, InputValue>,
    prompter: &dyn Prompter,
    redactor: &Redactor,
) -> Vec<Check> {
    let ctx_json = plan::context(runbook, env, inputs);
    let needs = gather(runbook, env, &template::value(&ctx_json));

    let resources = Resources::default();
    let progress = |_: &str| {};
    let add_secret = |s: &str| redactor.try_add(s);
    let cx = |step_id: &'static str| RunCx {
        env,
        step_id,
        prompter,
        resources: &resources,
        progress: &progress,
        note: &progress,
        add_secret: &add_secret,
        assume_yes: false,
        nested: None,
    };
    let mut checks = Vec::new();

    if needs.aws {
        let c = Check::new("aws", format!("credentials of `{}`", env.name));
        checks.push(c.outcome(ssm::check_credentials(&cx("preflight")).await));
    }
    // Values read, by parameter name: only to log in to a database below, never shown.
    let mut values: HashMap<String, String> = HashMap::new();
    for (name, decrypt) in &needs.reads {
        let p = ssm::GetParams {
            name: name.clone(),
            decrypt: *decrypt,
        };
        let r = <ssm::Get as Kind>::run(p, &cx("preflight")).await;
        let c = Check::new("ssm read", name.clone());
        checks.push(c.outcome(r.map(|outputs| {
            let get = |n: &str| outputs.iter().find(|o| o.name == n).map(|o| &o.value);
            if let Some(v) = get("value").and_then(|v| v.as_str()) {
                values.insert(name.clone(), v.to_string());
            }
            format!(
                "readable ({}, version {})",
                get("type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("unknown type"),
                get("version").map(|v| v.to_string()).unwrap_or_default()
            )
        })));
    }
    for (name, policy) in &needs.writes {
        let c = Check::new("ssm write", name.clone());
        checks.push(match ssm::describe(&cx("preflight"), name).await {
            Ok(Some(version)) if *policy == IfExists::Fail => c.with(
                Status::Fail,
                format!("exists (version {version}) and the step does not overwrite it"),
            ),
            Ok(Some(version)) if *policy == IfExists::Skip => c.with(
                Status::Pass,
                format!("exists (version {version}); the run leaves it as it is"),
            ),
            Ok(Some(version)) => c.with(
                Status::Pass,
                format!("exists (version {version}); the run writes a new version"),
            ),
            Ok(None) => c.with(Status::Pass, "absent; the run creates it"),
            Err(e) => c.outcome(Err(e)),
        });
    }
    // A host that failed its own check is not tried again (and reported again) for each
    // database or endpoint behind it.
    let mut unreachable = std::collections::HashSet::new();
    let behind = |via: Option<&String>, unreachable: &std::collections::HashSet<String>| {
        via.filter(|v| unreachable.contains(*v))
            .map(|v| format!("skipped: reached through `{v}`, whose ssh check failed"))
    };
    for (host, users) in &needs.hosts {
        let c = Check::new("ssh", host.clone());
        let r = ssh::login(&cx("preflight"), host).await;
        if r.is_err() {
            unreachable.insert(host.clone());
        }
        checks.push(c.outcome(r.map(|t| {
            format!(
                "logged in to {t}, host key known (for {})",
                users.join(", ")
            )
        })));
    }
    for ((db, user), password) in &needs.logins {
        let c = Check::new("database", format!("{user}@{db}"));
        let via = env.doc.databases.get(db).and_then(|d| d.via.as_ref());
        if let Some(why) = behind(via, &unreachable) {
            checks.push(c.with(Status::Skip, why));
            continue;
        }
        let password = match password {
            Password::RunTime => {
                checks.push(c.with(Status::Skip, "skipped: password known only at run time"));
                continue;
            }
            Password::FromSsm(step, tmpl) => {
                let name = &needs.read_by_step[step];
                let Some(value) = values.get(name) else {
                    checks.push(c.with(
                        Status::Skip,
                        format!("skipped: its password is in `{name}`, which could not be read"),
                    ));
                    continue;
                };
                let mut ctx = ctx_json.clone();
                ctx["steps"][step.as_str()]["value"] = value.clone().into();
                match template::render(tmpl, &template::value(&ctx)) {
                    Ok(p) => p,
                    Err(_) => {
                        checks.push(c.with(Status::Skip, "skipped: cannot render its password"));
                        continue;
                    }
                }
            }
        };
        // Registered before any attempt: a server message quoting it is masked anyway.
        if let Err(e) = redactor.try_add(&password) {
            checks.push(c.with(Status::Fail, format!("its password: {e}")));
            continue;
        }
        let r = psql::check_login(&cx("preflight"), db, Some(user), &password).await;
        checks.push(c.outcome(r));
    }
    for ((url, via), p) in needs.endpoints {
        let via_text = via
            .as_ref()
            .map(|v| format!(" (from {v})"))
            .unwrap_or_default();
        let c = Check::new("http", format!("{url}{via_text}"));
        if let Some(why) = behind(via.as_ref(), &unreachable) {
            checks.push(c.with(Status::Skip, why));
            continue;
        }
        let expected = p.expected();
        // Any answer is an answer here: the status is judged below, with one attempt only.
        let probe = http::Params {
            method: "GET".into(),
            body: None,
            expect_status: Some(http::ExpectStatus::Any((100..=599).collect())),
            body_contains: None,
            body_matches: None,
            attempts: 1,
            ..p
        };
        let r = <http::HttpCheck as Kind>::run(probe, &cx("preflight")).await;
        checks.push(match r {
            Err(e) => c.outcome(Err(e)),
            Ok(outputs) => {
                let status = outputs
                    .iter()
                    .find(|o| o.name == "status")
                    .and_then(|o| o.value.as_u64())
                    .unwrap_or(0);
                let want: Vec<String> = expected.iter().map(u16::to_string).collect();
                let want = want.join(" or ");
                if expected.iter().any(|&e| u64::from(e) == status) {
                    c.with(Status::Pass, format!("answered {status}"))
                } else if status >= 500 {
                    c.with(
                        Status::Warn,
                        format!("answered {status}, the step expects {want} (mid-deploy?)"),
                    )
                } else {
                    c.with(
                        Status::Fail,
                        format!("answered {status}, the step expects {want}"),
                    )
                }
            }
        });
    }
    checks.extend(needs.skipped);
    ssh::close_all(&resources).await;

    for c in &mut checks {
        c.reason = redactor.redact(&c.reason).into_owned();
        c.target = redactor.redact(&c.target).into_owned();
        if let Some(d) = &mut c.detail {
            *d = redactor.redact(d).into_owned();
        }
    }
    checks
}

fn gather(runbook: &Runbook, env: &Environment, ctx: &minijinja::Value) -> Needs {
    let mut n = Needs::default();
    for step in runbook.all_steps() {
        let Ok(rendered) = render_node(&step.params, ctx) else {
            continue;
        };
        let id = step.id().to_string();
        match step.kind.name() {
            ssm::Get::NAME => {
                n.aws = true;
                if let Ok(p) = rendered.deserialize::<ssm::GetParams>()
                    && known(&mut n, "ssm read", &id, &p.name)
                {
                    n.read_by_step.insert(id.clone(), p.name.clone());
                    n.reads.entry(p.name).or_insert(p.decrypt);
                }
            }
            ssm::Put::NAME => {
                n.aws = true;
                if let Ok(p) = rendered.deserialize::<ssm::PutParams>()
                    && known(&mut n, "ssm write", &id, &p.name)
                {
                    let policy = p.policy();
                    n.writes.entry(p.name).or_insert(policy);
                }
            }
            ssh::SshExec::NAME => {
                if let Ok(p) = rendered.deserialize::<ssh::Params>()
                    && let Ok(hosts) = p.targets(env)
                {
                    for host in hosts {
                        if known(&mut n, "ssh", &id, &host) {
                            n.hosts.entry(host).or_default().push(id.clone());
                        }
                    }
                }
            }
            http::HttpCheck::NAME => {
                if let Ok(p) = rendered.deserialize::<http::Params>() {
                    // From several hosts (a list or a group): probe from each of them.
                    let vias: Vec<Option<String>> = match (p.via_hosts(env), &p.via) {
                        (Ok(Some(hosts)), _) => hosts.into_iter().map(Some).collect(),
                        (_, Some(http::Via::One(h))) => vec![Some(h.clone())],
                        (_, _) => vec![None],
                    };
                    let mut all_known = known(&mut n, "http", &id, &p.url)
                        && p.ca_file.as_deref().is_none_or(plan::is_known);
                    for via in vias.iter().flatten() {
                        if known(&mut n, "ssh", &id, via) {
                            n.hosts.entry(via.clone()).or_default().push(id.clone());
                        } else {
                            all_known = false;
                        }
                    }
                    if all_known {
                        for via in vias {
                            let mut p = p.clone();
                            p.via = via.as_deref().map(http::Via::single);
                            // A header only the run knows (a token) is left out of the probe.
                            p.headers.retain(|_, v| plan::is_known(v));
                            n.endpoints.entry((p.url.clone(), via)).or_insert(p);
                        }
                    }
                }
            }
            psql::Psql::NAME => {
                if let Ok(p) = rendered.deserialize::<psql::Params>() {
                    login(&mut n, env, step, &id, p);
                }
            }
            _ => {}
        }
    }
    n
}

/// A database login the run will make, with its `via` host.
fn login(n: &mut Needs, env: &Environment, step: &Step, id: &str, p: psql::Params) {
    if !known(n, "database", id, &p.database) {
        return;
    }
    let Some(spec) = env.doc.databases.get(&p.database) else {
        return;
    };
    if let Some(via) = &spec.via {
        n.hosts.entry(via.clone()).or_default().push(id.to_string());
    }
    let user = p.user.unwrap_or_else(|| spec.user.clone());
    if !known(n, "database", id, &user) {
        return;
    }
    let raw = step.params.get("password").and_then(Node::as_str);
    let password = raw
        .and_then(|raw| {
            let refs = template::references(raw).ok()?;
            let [only] = refs.as_slice() else {
                return None;
            };
            let step_id = only.strip_prefix("steps.")?.strip_suffix(".value")?;
            n.read_by_step
                .contains_key(step_id)
                .then(|| Password::FromSsm(step_id.to_string(), raw.to_string()))
        })
        .unwrap_or(Password::RunTime);
    let key = (p.database, user);
    // A login whose password can be had wins over one only the run knows (a rollback's).
    match n.logins.get(&key) {
        Some(Password::FromSsm(..)) => {}
        _ => {
            n.logins.insert(key, password);
        }
    }
}

/// Whether a rendered name is known before the run; if not, a skipped check says so.
fn known(n: &mut Needs, check: &'static str, step_id: &str, value: &str) -> bool {
    if plan::is_known(value) {
        return true;
    }
    n.skipped.push(
        Check::new(check, format!("step `{step_id}`"))
            .with(Status::Skip, "skipped: the name is known only at run time"),
    );
    false
}
