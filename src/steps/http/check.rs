//! `http.check`: probe a URL until it answers as expected (status, body), optionally from a
//! host of the environment through an SSH tunnel (or from several, concurrently), with TLS
//! verified unless told otherwise. The client itself is `client.rs`'s.

use std::sync::Mutex;
use std::time::Duration;

use indexmap::IndexMap;
use reqwest::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use super::client::{
    self, Connection, ExpectStatus, Target, Via, excerpt, mismatch, read_body, request_error,
    status_text,
};
use crate::diag::{Code, Problem};
use crate::model::{Dur, Environment, patterns, ranges};
use crate::one_or_many::OneOrMany;
use crate::steps::common::lock;
use crate::steps::kind::{
    Check, CheckCx, Effect, Kind, Logged, Need, NeedCx, Needs, Output, OutputSpec, Outputs,
    ProbeCx, Resources, RunCx, Stage, Status, StepError,
};

pub struct HttpCheck;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The URL to request (`http` or `https`). With `via`, as seen from that host.
    #[schemars(regex(pattern = patterns::HTTP_URL))]
    pub url: String,
    /// The HTTP method (default GET).
    #[serde(default = "default_method")]
    #[schemars(regex(pattern = patterns::HTTP_TOKEN))]
    pub method: String,
    /// Request headers.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// The request body.
    #[serde(default)]
    pub body: Option<String>,
    /// The expected status code, or a list of accepted ones (default 200).
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany<client::StatusCodeSchema>>")]
    pub expect_status: Option<ExpectStatus>,
    /// The response body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The response body must match this regular expression (anywhere in the body).
    #[serde(default)]
    pub body_matches: Option<String>,
    /// How many requests to make before giving up (default 1): the step polls until the
    /// response matches, e.g. while a service restarts.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = ranges::HTTP_ATTEMPTS.0, max = ranges::HTTP_ATTEMPTS.1))]
    pub attempts: u32,
    /// The wait between two attempts (default 2s).
    #[serde(default = "default_delay")]
    #[schemars(extend("not" = patterns::outside(ranges::HTTP_DELAY)))]
    pub delay: Dur,
    /// The limit for one request (default 10s).
    #[serde(default = "default_request_timeout")]
    #[schemars(extend("not" = patterns::outside(ranges::REQUEST_TIMEOUT)))]
    pub request_timeout: Dur,
    /// A host of the environment to make the request from, through an SSH tunnel. Or several:
    /// a list of hosts, or the name of one of the environment's `groups`; every host then
    /// checks concurrently and the outputs are `hosts` (per host: status, ok) and `failed`.
    #[serde(default)]
    pub via: Option<Via>,
    /// A PEM file of a private CA to trust, in addition to the platform's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Skip TLS certificate verification. Only for hosts whose certificate cannot be verified.
    #[serde(default)]
    pub insecure: bool,
}

fn default_method() -> String {
    "GET".into()
}
fn default_attempts() -> u32 {
    1
}
fn default_delay() -> Dur {
    Dur(Duration::from_secs(2))
}
fn default_request_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}

impl Params {
    pub(crate) fn expected(&self) -> Vec<u16> {
        client::expected(self.expect_status.as_ref())
    }

    /// The hosts to check from in `env`, in order without duplicates: `None` for one request
    /// (from here, or from one host), `Some` when the step checks from several hosts.
    pub fn via_hosts(&self, env: &Environment) -> Result<Option<Vec<String>>, StepError> {
        let list = match &self.via {
            None => return Ok(None),
            Some(Via::One(name)) => match env.doc.groups.get(name) {
                Some(members) => members.clone(),
                None => return Ok(None),
            },
            Some(Via::List(l)) => l.clone(),
        };
        let mut seen = std::collections::HashSet::new();
        Ok(Some(
            list.into_iter()
                .filter(|h| seen.insert(h.clone()))
                .collect(),
        ))
    }

    /// Whether the step has the outputs of several hosts (`hosts`, `failed`): `via` is a list,
    /// or a name that is a host group of the environments (`check` refuses a name that is a
    /// group in one and a host in another).
    fn fans_out(&self, environments: &[Environment]) -> bool {
        match &self.via {
            Some(Via::List(_)) => true,
            Some(Via::One(name)) => environments.iter().any(|e| e.doc.groups.contains_key(name)),
            None => false,
        }
    }

    /// `via` as written, for plans.
    fn via_text(&self) -> Option<String> {
        match &self.via {
            None => None,
            Some(Via::One(v)) => Some(v.clone()),
            Some(Via::List(l)) if l.len() <= 3 => Some(l.join(", ")),
            Some(Via::List(l)) => Some(format!("{} hosts ({}, …)", l.len(), l[..2].join(", "))),
        }
    }

    fn is_read_only(&self) -> bool {
        let m = self.method.to_ascii_uppercase();
        m == "GET" || m == "HEAD"
    }
}

impl Kind for HttpCheck {
    const NAME: &'static str = "http.check";
    const SUMMARY: &'static str = "Request a URL until it answers with the expected status and body (outputs `status`, `body`), \
         or from several hosts with `via:` a list or a group (outputs `hosts`, `failed`).";
    type Params = Params;

    fn server_logged() -> &'static [(&'static str, Logged)] {
        &[("url", Logged::Url)]
    }

    fn outputs(p: &Params, environments: &[Environment]) -> Vec<OutputSpec> {
        if p.fans_out(environments) {
            return vec![OutputSpec::public("hosts"), OutputSpec::public("failed")];
        }
        vec![OutputSpec::public("status"), OutputSpec::public("body")]
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        client::check_url(&p.url, cx);
        client::check_body_matches(p.body_matches.as_deref(), cx);
        client::check_method(&p.method, cx);
        client::check_expected(&p.expected(), cx);
        if p.attempts == 0 {
            cx.problem_at(
                "attempts",
                Problem::error(
                    Code::BadAttempts,
                    "`attempts` counts every request and must be at least 1",
                ),
            );
        }
        use crate::model::ranges::{self, outside, outside_dur};
        if p.attempts > 0
            && let Some(help) = outside(p.attempts, ranges::HTTP_ATTEMPTS, |n| n.to_string())
        {
            cx.problem_at(
                "attempts",
                ranges::problem("attempts", &p.attempts.to_string(), help),
            );
        }
        for (field, d, range) in [
            ("delay", p.delay, ranges::HTTP_DELAY),
            (
                "request_timeout",
                p.request_timeout,
                ranges::REQUEST_TIMEOUT,
            ),
        ] {
            if let Some(help) = outside_dur(d.0, range) {
                let shown = humantime::format_duration(d.0).to_string();
                cx.problem_at(field, ranges::problem(field, &shown, help));
            }
        }
        check_via(p, cx);
        if p.insecure {
            client::insecure_warning(&p.url, cx);
        }
    }

    fn describe(p: &Params) -> String {
        let codes: Vec<String> = p.expected().iter().map(u16::to_string).collect();
        let mut s = format!(
            "{} {} expecting {}",
            p.method.to_ascii_uppercase(),
            p.url,
            codes.join(" or ")
        );
        if let Some(via) = p.via_text() {
            s.push_str(&format!(" (from {via})"));
        }
        if p.attempts > 1 {
            s.push_str(&format!(", up to {} attempts", p.attempts));
        }
        s
    }

    fn ssh_hosts(p: &Params, env: &Environment) -> Vec<String> {
        match p.via_hosts(env) {
            Ok(Some(hosts)) => hosts,
            Ok(None) => match &p.via {
                Some(Via::One(host)) => vec![host.clone()],
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        }
    }

    fn warm_up(p: &Params, env: &Environment, resources: &Resources) {
        crate::steps::ssh::warm_up(resources, env, &Self::ssh_hosts(p, env));
    }

    /// Only a `via` host is the environment's; a URL is the runbook's own.
    fn needs_environment(p: &Params) -> bool {
        p.via.is_some()
    }

    fn example() -> &'static str {
        "{ url: 'http://127.0.0.1:9/' }"
    }

    fn preflight(p: Option<Params>, cx: &NeedCx<'_>, needs: &mut Needs) {
        let Some(p) = p else {
            return;
        };
        let id = cx.step_id;
        // From several hosts (a list or a group): probe from each of them.
        let vias: Vec<Option<String>> = match (p.via_hosts(cx.env), &p.via) {
            (Ok(Some(hosts)), _) => hosts.into_iter().map(Some).collect(),
            (_, Some(Via::One(h))) => vec![Some(h.clone())],
            (_, _) => vec![None],
        };
        let mut all_known = needs.known("http", id, &p.url)
            && p.ca_file.as_deref().is_none_or(|f| needs.is_known(f));
        for via in vias.iter().flatten() {
            if needs.known("ssh", id, via) {
                needs.add(crate::steps::ssh::host_need(via.clone(), id));
            } else {
                all_known = false;
            }
        }
        // The whole request known before the run (from the environment and the inputs, no
        // step output, no secret) and read-only: preflight makes it, once, and judges it as
        // the step will (is the app healthy now?). Otherwise only that the endpoint answers.
        let whole = cx.judge
            && p.is_read_only()
            && p.headers.values().all(|v| needs.is_known(v))
            && [&p.body, &p.body_contains, &p.body_matches]
                .into_iter()
                .flatten()
                .all(|v| needs.is_known(v));
        if all_known {
            for via in vias {
                let mut p = p.clone();
                p.via = via.as_deref().map(Via::single);
                // A header only the run knows (a token) is left out of the probe.
                p.headers.retain(|_, v| needs.is_known(v));
                needs.add(Box::new(Endpoint(p, via, whole)));
            }
        }
    }

    fn effect(p: &Params) -> Effect {
        if p.is_read_only() {
            Effect::ReadOnly
        } else {
            Effect::Changes(format!("sends {} {}", p.method.to_ascii_uppercase(), p.url))
        }
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let req = Request::prepare(&p)?;
        let Some(hosts) = p.via_hosts(cx.env)? else {
            let via = match &p.via {
                Some(Via::One(h)) => Some(h.as_str()),
                _ => None,
            };
            let last = check_from(&p, &req, via, cx, cx.progress).await?;
            return match last {
                Attempt::Answered {
                    status,
                    body,
                    mismatch: None,
                } => Ok(vec![
                    Output {
                        name: "status".into(),
                        value: status.as_u16().into(),
                        secret: false,
                    },
                    Output {
                        name: "body".into(),
                        value: body.into(),
                        secret: false,
                    },
                ]),
                other => Err(failure(other, p.attempts.max(1))),
            };
        };
        fan_out(&p, &req, &hosts, cx).await
    }

    fn by_hand(p: &Params, cx: &crate::steps::hand::HandCx<'_>) -> Option<String> {
        use crate::steps::hand::sh_quote;
        let mut s = String::new();
        let mut curl = String::from("curl -sS");
        // Several hosts: the same check from each, shown for the first.
        let several = match (&p.via, cx.env) {
            (_, Some(env)) => p.via_hosts(env).ok().flatten(),
            (Some(Via::List(l)), None) => Some(l.clone()),
            _ => None,
        };
        let via = match (&several, &p.via) {
            (Some(hosts), _) => hosts.first().cloned(),
            (None, Some(Via::One(h))) => Some(h.clone()),
            (None, _) => None,
        };
        if let Some(hosts) = &several {
            let which: Vec<String> = hosts.iter().map(|h| format!("`{h}`")).collect();
            s.push_str(&format!(
                "From each of these hosts: {}. Every host must pass. Shown for `{}`:\n\n",
                which.join(", "),
                via.as_deref().unwrap_or("HOST")
            ));
        }
        if let Some(via) = &via {
            client::hand_tunnel(&p.url, via, cx, &mut s, &mut curl);
        }
        client::hand_headers(&p.method, &p.headers, cx, &mut s, &mut curl);
        if let Some(body) = &p.body {
            match cx.file_of(body) {
                Some(file) => curl.push_str(&format!(" --data-binary @{file}")),
                None if cx.mentions_secret(body) => {
                    s.push_str(&format!(
                        "Write the body `{body}` into the file `body` (with `umask 077`).\n\n"
                    ));
                    curl.push_str(" --data-binary @body");
                }
                None => curl.push_str(&format!(" --data-binary {}", sh_quote(body))),
            }
        }
        if let Some(ca) = &p.ca_file {
            curl.push_str(&format!(" --cacert {}", crate::steps::hand::sh_word(ca)));
        }
        if p.insecure {
            curl.push_str(" --insecure");
        }
        let body_checked = p.body_contains.is_some() || p.body_matches.is_some();
        if !body_checked {
            curl.push_str(" -o /dev/null");
        }
        let url = client::hand_url(&p.url, cx, &mut s);
        curl.push_str(&format!(" -w '%{{http_code}}\\n' {url}"));
        let fence = crate::display::md_fence(&curl);
        s.push_str(&format!("{fence}sh\n{curl}\n{fence}\n\n"));
        let codes: Vec<String> = p.expected().iter().map(u16::to_string).collect();
        s.push_str(&format!("It must print {}", codes.join(" or ")));
        if let Some(t) = &p.body_contains {
            s.push_str(&format!(" after a body containing `{t}`"));
        }
        if let Some(r) = &p.body_matches {
            s.push_str(&format!(" after a body matching `{r}`"));
        }
        if p.attempts > 1 {
            s.push_str(&format!(
                ". If not, try again every {}, {} times in all, before calling it failed.",
                humantime::format_duration(p.delay.0),
                p.attempts
            ));
        } else {
            s.push('.');
        }
        Some(s)
    }
}

/// The outcome of one request.
enum Attempt {
    Answered {
        status: StatusCode,
        body: String,
        /// Why the answer is not the expected one.
        mismatch: Option<String>,
    },
    /// No answer: the reason, already short.
    Failed(String),
}

/// What every request of the step shares, parsed once (for every host of a fan-out).
struct Request {
    target: Target,
    body_re: Option<regex::Regex>,
}

impl Request {
    fn prepare(p: &Params) -> Result<Request, StepError> {
        let mut target = Target::prepare(&p.url, &p.method, &p.headers)?;
        let body_re = client::body_pattern(p.body_matches.as_deref())?;
        if let Some(ca) = &p.ca_file {
            target.certs = client::read_ca(ca)?;
        }
        Ok(Request { target, body_re })
    }
}

/// Check from `via` (or from here): poll up to `attempts` times and return the last attempt,
/// the matching one when it came. An error is a failure to set up (the tunnel, the client).
async fn check_from(
    p: &Params,
    req: &Request,
    via: Option<&str>,
    cx: &RunCx<'_>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Attempt, StepError> {
    let conn = Connection::open(
        &req.target,
        &p.url,
        p.request_timeout.0,
        p.insecure,
        via,
        cx,
    )
    .await?;

    let expected = p.expected();
    let attempts = p.attempts.max(1);
    let mut n = 1;
    loop {
        let mut r = conn.request(&req.target.method, &p.headers);
        if let Some(b) = &p.body {
            r = r.body(b.clone());
        }
        let attempt = match r.send().await {
            Ok(resp) => {
                let status = resp.status();
                let body = read_body(resp).await;
                let mismatch = mismatch(
                    status,
                    &body,
                    &expected,
                    p.body_contains.as_deref(),
                    req.body_re.as_ref().map(|re| (re, re.as_str())),
                );
                Attempt::Answered {
                    status,
                    body,
                    mismatch,
                }
            }
            Err(e) => Attempt::Failed(request_error(&e, p.request_timeout.0)),
        };
        let why = match &attempt {
            Attempt::Answered { mismatch: None, .. } => return Ok(attempt),
            Attempt::Answered {
                mismatch: Some(m), ..
            } => m,
            Attempt::Failed(e) => e,
        };
        if n >= attempts {
            return Ok(attempt);
        }
        progress(&format!("attempt {n}/{attempts}: {why}"));
        n += 1;
        tokio::time::sleep(p.delay.0).await;
    }
}

/// How far a multi-host check is, behind one lock.
#[derive(Default)]
struct Tally {
    total: usize,
    answered: usize,
    /// Failed hosts in the order they failed, with the short reason.
    failed: Vec<(String, String)>,
}

impl Tally {
    /// "hosts 3/5 answered, 1 failed (h04: 503)".
    fn summary(&self) -> String {
        crate::steps::common::hosts_summary(self.answered, self.total, "answered", &self.failed)
    }
}

/// Check from every host at once (a check only reads, so there is nothing to roll out
/// gradually), each through its own tunnel of the run's SSH pool and with the step's polling.
async fn fan_out(
    p: &Params,
    req: &Request,
    hosts: &[String],
    cx: &RunCx<'_>,
) -> Result<Outputs, StepError> {
    let tally = Mutex::new(Tally {
        total: hosts.len(),
        ..Tally::default()
    });
    let status = crate::steps::common::Status::new(cx.progress);
    status.update(true, || lock(&tally).summary());
    // Per host, once finished: the final attempt, or why the check could not be made.
    let results: Mutex<Vec<Option<Result<Attempt, StepError>>>> =
        Mutex::new((0..hosts.len()).map(|_| None).collect());

    let one = |i: usize| {
        let (tally, results, status) = (&tally, &results, &status);
        async move {
            let host = hosts[i].as_str();
            let progress = |line: &str| {
                status.update(false, || {
                    format!("{} · {host}: {line}", lock(tally).summary())
                });
            };
            let r = check_from(p, req, Some(host), cx, &progress).await;
            let (summary, force) = {
                let mut t = lock(tally);
                t.answered += 1;
                let failed = short_failure(&r, &p.expected());
                let force = failed.is_some() || t.answered == t.total;
                if let Some(why) = failed {
                    t.failed.push((host.to_string(), why));
                }
                (t.summary(), force)
            };
            lock(results)[i] = Some(r);
            status.update(force, || summary);
        }
    };
    crate::steps::ssh::join_all((0..hosts.len()).map(one).collect()).await;

    let tally = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let attempts = p.attempts.max(1);
    let mut per_host = serde_json::Map::new();
    let mut failed = Vec::new();
    let mut detail = Vec::new();
    for (host, r) in hosts.iter().zip(results) {
        let (status, ok) = match r {
            Some(Ok(Attempt::Answered {
                status,
                mismatch: None,
                ..
            })) => (Some(status.as_u16()), true),
            Some(Ok(attempt)) => {
                let status = match &attempt {
                    Attempt::Answered { status, .. } => Some(status.as_u16()),
                    Attempt::Failed(_) => None,
                };
                // The step's detail has one line per host: the body excerpt stays out.
                detail.push(format!("{host}: {}", failure(attempt, attempts).message));
                (status, false)
            }
            Some(Err(e)) => {
                detail.push(format!("{host}: {}", e.message));
                (None, false)
            }
            None => {
                detail.push(format!("{host}: not checked"));
                (None, false)
            }
        };
        if !ok {
            failed.push(host.clone());
        }
        per_host.insert(
            host.clone(),
            serde_json::json!({ "status": status, "ok": ok }),
        );
    }
    if !failed.is_empty() {
        let named: Vec<String> = tally
            .failed
            .iter()
            .map(|(h, why)| format!("{h} ({why})"))
            .collect();
        return Err(StepError::new(format!(
            "failed from {} of {} hosts: {}",
            failed.len(),
            hosts.len(),
            named.join(", ")
        ))
        .with_detail(detail.join("\n")));
    }
    Ok(vec![
        Output {
            name: "hosts".into(),
            value: serde_json::Value::Object(per_host),
            secret: false,
        },
        Output {
            name: "failed".into(),
            value: serde_json::json!([]),
            secret: false,
        },
    ])
}

/// A few words on why a host's check failed (`503`, `200, body`, `cannot connect: …`), or
/// `None` when it passed.
fn short_failure(r: &Result<Attempt, StepError>, expected: &[u16]) -> Option<String> {
    match r {
        Ok(Attempt::Answered { mismatch: None, .. }) => None,
        Ok(Attempt::Answered { status, .. }) if !expected.contains(&status.as_u16()) => {
            Some(status.as_u16().to_string())
        }
        Ok(Attempt::Answered { status, .. }) => Some(format!("{}, body", status.as_u16())),
        Ok(Attempt::Failed(e)) => Some(e.clone()),
        Err(e) => Some(e.message.clone()),
    }
}

/// Check-time problems of `via`: unknown hosts, unknown groups, a name that is a group in one
/// environment and a host in another.
fn check_via(p: &Params, cx: &mut CheckCx<'_>) {
    match &p.via {
        None => {}
        Some(Via::List(list)) => {
            if list.is_empty() {
                cx.problem_at(
                    "via",
                    Problem::error(Code::NoHost, "`via` is an empty list")
                        .help("name a host, a list of hosts or a host group, or leave `via` out"),
                );
            }
            for h in list {
                cx.require_host("via", h);
            }
        }
        Some(Via::One(name)) => {
            if name.contains("{{") {
                return;
            }
            let groups: Vec<&Environment> = cx
                .environments
                .iter()
                .filter(|e| e.doc.groups.contains_key(name))
                .collect();
            if groups.is_empty() {
                cx.require_host("via", name);
                return;
            }
            let envs: Vec<&Environment> = cx.environments.iter().collect();
            for env in envs {
                if env.doc.groups.contains_key(name) {
                    continue;
                }
                let problem = if env.doc.hosts.contains_key(name) {
                    Problem::error(
                        Code::AmbiguousVia,
                        format!(
                            "`{name}` is a host group in environment `{}` but a host in `{}`",
                            groups[0].name, env.name
                        ),
                    )
                    .label("host or group?")
                    .help("give the group and the host different names")
                } else {
                    let known: Vec<&str> = env.doc.groups.keys().map(String::as_str).collect();
                    let help = crate::diag::did_you_mean(name, known.iter().copied())
                        .unwrap_or_else(|| {
                            format!(
                                "add the group under `environments.{}.groups` in environments.yaml",
                                env.name
                            )
                        });
                    Problem::error(
                        Code::UnknownGroup,
                        format!(
                            "environment `{}` has no host group or host `{name}`",
                            env.name
                        ),
                    )
                    .label("this group")
                    .help(help)
                };
                cx.problem_at("via", problem);
            }
        }
    }
}

fn failure(last: Attempt, attempts: u32) -> StepError {
    let after = if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    };
    match last {
        Attempt::Answered {
            status,
            body,
            mismatch,
        } => {
            let why = mismatch.unwrap_or_else(|| status_text(status));
            StepError::new(format!("unexpected answer{after}: {why}")).with_detail(excerpt(&body))
        }
        Attempt::Failed(e) => StepError::new(format!("request failed{after}: {e}")),
    }
}

/// `runbook preflight`: an endpoint answers (from its `via` host, if any). When the whole
/// request is known (`.2`), it is the step's own check made once, with no retry: a run must not
/// start on an app that already fails the check its verification makes, or that verification
/// rolls back for a reason the run did not cause. Otherwise one request without what only the
/// run knows: any answer shows the endpoint is there; its status is not judged.
struct Endpoint(Params, Option<String>, bool);

#[async_trait::async_trait]
impl Need for Endpoint {
    fn stage(&self) -> Stage {
        Stage::Call
    }
    fn key(&self) -> String {
        format!("{:?}", (&self.0.url, &self.1))
    }
    fn merge(&mut self, later: Box<dyn Need>) {
        // Two steps check one endpoint differently (a rollback's check of the same URL): keep
        // the first, but judge it if either can be.
        let later: Box<dyn std::any::Any> = later;
        if let Ok(later) = later.downcast::<Endpoint>()
            && later.2
            && !self.2
        {
            *self = *later;
        }
    }
    async fn check(&self, cx: &ProbeCx<'_>) -> Check {
        let (p, via) = (&self.0, &self.1);
        let via_text = via
            .as_ref()
            .map(|v| format!(" (from {v})"))
            .unwrap_or_default();
        let c = Check::new("http", format!("{}{via_text}", p.url));
        if let Some(why) = cx.behind(via.as_deref()) {
            return c.with(Status::Skip, why);
        }
        if self.2 {
            let once = Params {
                attempts: 1,
                ..p.clone()
            };
            return match <HttpCheck as Kind>::run(once, &cx.run).await {
                Ok(outputs) => {
                    let status = outputs
                        .iter()
                        .find(|o| o.name == "status")
                        .and_then(|o| o.value.as_u64())
                        .unwrap_or(0);
                    c.with(Status::Pass, format!("answered {status}, as the step expects"))
                }
                // A connection error keeps its own help; an answer the step would refuse gets
                // this one.
                Err(e) if e.help.is_some() => c.outcome(Err(e)),
                Err(e) => c.outcome(Err(e.with_help(
                    "the step makes this same check during the run: as the endpoint answers now, it would fail for a reason the run did not cause; make it healthy first",
                ))),
            };
        }
        // Any answer is an answer here: the endpoint is there. Its status is not judged: the
        // request lacks what only the run knows (a token), or would change something.
        let probe = Params {
            method: "GET".into(),
            body: None,
            expect_status: Some(ExpectStatus::List((100..=599).collect())),
            body_contains: None,
            body_matches: None,
            attempts: 1,
            ..p.clone()
        };
        let why = if p.is_read_only() {
            "the request needs a value only the run knows (a step output or a secret)".to_string()
        } else {
            format!(
                "the step sends {}, and preflight changes nothing",
                p.method.to_ascii_uppercase()
            )
        };
        match <HttpCheck as Kind>::run(probe, &cx.run).await {
            Err(e) => c.outcome(Err(e)),
            Ok(outputs) => {
                let status = outputs
                    .iter()
                    .find(|o| o.name == "status")
                    .and_then(|o| o.value.as_u64())
                    .unwrap_or(0);
                c.with(
                    Status::Skip,
                    format!("reachable (answered {status}); the check itself is skipped: {why}"),
                )
            }
        }
    }
}
