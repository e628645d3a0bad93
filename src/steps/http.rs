//! `http.check`: probe a URL until it answers as expected (status, body), optionally from a
//! host of the environment through an SSH tunnel (or from several, concurrently), with TLS
//! verified unless told otherwise.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use indexmap::IndexMap;
use reqwest::{Method, StatusCode, Url};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CheckCx, Effect, Kind, Output, OutputSpec, Outputs, RunCx, StepError, lock};
use crate::diag::Problem;
use crate::model::{Dur, Environment};

pub struct HttpCheck;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The URL to request (`http` or `https`). With `via`, as seen from that host.
    pub url: String,
    /// The HTTP method (default GET).
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// The request body.
    #[serde(default)]
    pub body: Option<String>,
    /// The expected status code, or a list of accepted ones (default 200).
    #[serde(default)]
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
    pub attempts: u32,
    /// The wait between two attempts (default 2s).
    #[serde(default = "default_delay")]
    pub delay: Dur,
    /// The limit for one request (default 10s).
    #[serde(default = "default_request_timeout")]
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

/// Where `http.check` makes its request from: a host or a group's name, or a list of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Via {
    /// A host of the environment, or the name of one of its host groups.
    One(String),
    /// Hosts of the environment.
    List(Vec<String>),
}

impl Via {
    /// For one host only: its name.
    pub fn single(host: &str) -> Via {
        Via::One(host.to_string())
    }
}

/// One status code or a list of them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ExpectStatus {
    One(u16),
    Any(Vec<u16>),
}

impl ExpectStatus {
    fn codes(&self) -> Vec<u16> {
        match self {
            ExpectStatus::One(c) => vec![*c],
            ExpectStatus::Any(v) => v.clone(),
        }
    }
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

/// The `body` output keeps at most this much of the response.
const BODY_LIMIT: usize = 64 * 1024;
/// How much of the body a failure shows.
const EXCERPT: usize = 300;

impl Params {
    pub(crate) fn expected(&self) -> Vec<u16> {
        self.expect_status
            .as_ref()
            .map_or_else(|| vec![200], ExpectStatus::codes)
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

    fn outputs(p: &Params, environments: &[Environment]) -> Vec<OutputSpec> {
        if p.fans_out(environments) {
            return vec![OutputSpec::public("hosts"), OutputSpec::public("failed")];
        }
        vec![OutputSpec::public("status"), OutputSpec::public("body")]
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        if !p.url.contains("{{") {
            match Url::parse(&p.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                Ok(u) if !matches!(u.scheme(), "http" | "https") => cx.problem_at(
                    "url",
                    Problem::error(
                        "runbook::bad-url",
                        format!("`{}` is not an http or https URL", p.url),
                    )
                    .help("write it like `https://localhost:1337/health`"),
                ),
                Ok(_) => cx.problem_at(
                    "url",
                    Problem::error("runbook::bad-url", format!("`{}` has no host", p.url)),
                ),
                Err(e) => cx.problem_at(
                    "url",
                    Problem::error("runbook::bad-url", format!("invalid URL `{}`: {e}", p.url))
                        .help("write it like `https://localhost:1337/health`"),
                ),
            }
        }
        if let Some(re) = &p.body_matches
            && !re.contains("{{")
            && let Err(e) = regex::Regex::new(re)
        {
            // The regex error is several lines with a caret; its last line says what is wrong.
            let why = e.to_string();
            let why = why.lines().last().unwrap_or("invalid").trim().to_string();
            cx.problem_at(
                "body_matches",
                Problem::error(
                    "runbook::bad-pattern",
                    format!("invalid regular expression in `body_matches`: {why}"),
                ),
            );
        }
        if !p.method.contains("{{") && Method::from_bytes(p.method.as_bytes()).is_err() {
            cx.problem_at(
                "method",
                Problem::error(
                    "runbook::bad-method",
                    format!("`{}` is not an HTTP method", p.method),
                )
                .help("write GET, HEAD, POST, PUT, PATCH or DELETE"),
            );
        }
        for code in p.expected() {
            if !(100..=599).contains(&code) {
                cx.problem_at(
                    "expect_status",
                    Problem::error(
                        "runbook::bad-status",
                        format!("{code} is not an HTTP status code (100 to 599)"),
                    ),
                );
            }
        }
        if p.attempts == 0 {
            cx.problem_at(
                "attempts",
                Problem::error(
                    "runbook::bad-attempts",
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
            insecure_warning(p, cx);
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

    fn by_hand(p: &Params, cx: &crate::docs::HandCx<'_>) -> Option<String> {
        use crate::docs::sh_quote;
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
            // The same port on this side of the tunnel, so the URL (and the certificate's
            // name) stay as written.
            let url = Url::parse(&p.url).ok();
            let host = url.as_ref().and_then(|u| u.host_str().map(str::to_string));
            let port = url.as_ref().and_then(Url::port_or_known_default);
            let (host, port) = match (host, port) {
                (Some(h), Some(p)) => (h, p.to_string()),
                _ => ("<host>".into(), "<port>".into()),
            };
            let tunnel = cx.ssh(via, &format!("-N -L {port}:{host}:{port}"));
            s.push_str(&format!(
                "Open a tunnel through `{via}` (stop it with `kill %1` at the end of the step):\n\n\
                 ```sh\n{tunnel} &\n```\n\nThen, from here:\n\n"
            ));
            if !matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
                curl.push_str(&format!(" --connect-to {host}:{port}:127.0.0.1:{port}"));
            }
        }
        if !p.method.eq_ignore_ascii_case("GET") {
            curl.push_str(&format!(" -X {}", p.method.to_ascii_uppercase()));
        }
        for (k, v) in &p.headers {
            if cx.mentions_secret(v) {
                s.push_str(&format!(
                    "Write the header line `{k}: {v}` into the file `headers` (with `umask 077`).\n\n"
                ));
                curl.push_str(" -H @headers");
            } else {
                curl.push_str(&format!(" -H {}", sh_quote(&format!("{k}: {v}"))));
            }
        }
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
            curl.push_str(&format!(" --cacert {}", crate::docs::sh_word(ca)));
        }
        if p.insecure {
            curl.push_str(" --insecure");
        }
        let body_checked = p.body_contains.is_some() || p.body_matches.is_some();
        if !body_checked {
            curl.push_str(" -o /dev/null");
        }
        curl.push_str(&format!(" -w '%{{http_code}}\\n' {}", sh_quote(&p.url)));
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
    url: Url,
    method: Method,
    body_re: Option<regex::Regex>,
    certs: Vec<reqwest::Certificate>,
}

impl Request {
    fn prepare(p: &Params) -> Result<Request, StepError> {
        let url = Url::parse(&p.url)
            .map_err(|e| StepError::new(format!("invalid URL `{}`: {e}", p.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(StepError::new(format!(
                "`{}` is not an http or https URL",
                p.url
            )));
        }
        let method = Method::from_bytes(p.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| StepError::new(format!("`{}` is not an HTTP method", p.method)))?;
        let body_re = match &p.body_matches {
            Some(re) => Some(
                regex::Regex::new(re)
                    .map_err(|_| StepError::new("invalid regular expression in `body_matches`"))?,
            ),
            None => None,
        };
        let certs = match &p.ca_file {
            Some(ca) => read_ca(ca)?,
            None => Vec::new(),
        };
        Ok(Request {
            url,
            method,
            body_re,
            certs,
        })
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
    // reqwest is built without a default crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut url = req.url.clone();
    let mut builder = reqwest::Client::builder()
        .timeout(p.request_timeout.0)
        .connect_timeout(p.request_timeout.0)
        // A redirect to a login page must not pass for a healthy answer: report it as is.
        .redirect(reqwest::redirect::Policy::none());
    if !req.certs.is_empty() {
        builder = builder.tls_certs_merge(req.certs.clone());
    }
    if p.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let mut host_header = None;
    if let Some(via) = via {
        let host = url
            .host_str()
            .ok_or_else(|| StepError::new(format!("`{}` has no host", p.url)))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let local = super::ssh::tunnel(cx, via, host.trim_matches(['[', ']']), port).await?;
        if url.domain().is_some() {
            // A name: connect to the tunnel but keep the name for SNI and verification.
            builder = builder.resolve(&host, local);
        } else {
            // An address is never resolved, so point the URL at the tunnel itself. The
            // certificate is then checked against the tunnel's loopback address, which is
            // what the host itself sees for the usual `https://127.0.0.1:PORT`.
            host_header = url.host_str().map(|h| match url.port() {
                Some(port) => format!("{h}:{port}"),
                None => h.to_string(),
            });
            point_at(&mut url, local);
        }
    }
    let client = builder.build().map_err(|e| {
        StepError::new(format!(
            "cannot set up the HTTP client: {}",
            super::error_chain(&e)
        ))
    })?;

    let expected = p.expected();
    let attempts = p.attempts.max(1);
    let mut n = 1;
    loop {
        let mut r = client.request(req.method.clone(), url.clone());
        for (k, v) in &p.headers {
            r = r.header(k.as_str(), v.as_str());
        }
        if let Some(h) = &host_header {
            r = r.header(reqwest::header::HOST, h.as_str());
        }
        if let Some(b) = &p.body {
            r = r.body(b.clone());
        }
        let attempt = match r.send().await {
            Ok(resp) => {
                let status = resp.status();
                let body = read_body(resp).await;
                let mismatch = mismatch(status, &body, &expected, p, req.body_re.as_ref());
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
        super::hosts_summary(self.answered, self.total, "answered", &self.failed)
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
    let status = super::Status::new(cx.progress);
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
    super::ssh::join_all((0..hosts.len()).map(one).collect()).await;

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
                    Problem::error("runbook::no-host", "`via` is an empty list")
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
                        "runbook::ambiguous-via",
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
                        "runbook::unknown-group",
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

fn mismatch(
    status: StatusCode,
    body: &str,
    expected: &[u16],
    p: &Params,
    re: Option<&regex::Regex>,
) -> Option<String> {
    if !expected.contains(&status.as_u16()) {
        return Some(status_text(status));
    }
    if let Some(needle) = &p.body_contains
        && !body.contains(needle.as_str())
    {
        return Some(format!(
            "{}, but the body does not contain `{needle}`",
            status_text(status)
        ));
    }
    if let (Some(re), Some(src)) = (re, &p.body_matches)
        && !re.is_match(body)
    {
        return Some(format!(
            "{}, but the body does not match `{src}`",
            status_text(status)
        ));
    }
    None
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

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

/// The body, truncated to [`BODY_LIMIT`] (read no further than that), as text.
async fn read_body(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < BODY_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            // A body cut short still tells something; keep what arrived.
            Ok(None) | Err(_) => break,
        }
    }
    buf.truncate(BODY_LIMIT);
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    // The cut may split a character; drop the replacement char it leaves at the end.
    if buf.len() == BODY_LIMIT && s.ends_with('\u{FFFD}') {
        s.pop();
    }
    s
}

/// The first lines of a body, for a failure's detail.
fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let mut cut: String = body.chars().take(EXCERPT).collect();
    let lines: Vec<&str> = cut.lines().take(5).collect();
    let shortened = lines.len() < cut.lines().count() || cut.len() < body.len();
    cut = lines.join("\n");
    if shortened {
        cut.push_str(" …");
    }
    format!("body: {cut}")
}

/// A short reason for a request that got no answer: the innermost cause, which names the
/// real problem (connection refused, an unknown issuer), without the chain's repetitions.
fn request_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!(
            "no answer within {} (`request_timeout`)",
            humantime::format_duration(timeout)
        );
    }
    let root = root_cause(e);
    let tls = {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut found = false;
        while let Some(s) = src {
            found |= s.is::<rustls::Error>();
            // `io::Error` hides the error it wraps from `source()` (and the connector nests
            // them), so step into it explicitly.
            src = match s
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => s.source(),
            };
        }
        found
    };
    if tls {
        format!("TLS: {root} (trust the server's CA with `ca_file`)")
    } else if e.is_connect() {
        format!("cannot connect: {root}")
    } else {
        root
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// A PEM file: a regular file of at most 1 MiB (a FIFO or a device named by mistake must
/// neither hang the step nor fill memory).
pub(crate) fn read_pem(path: &str) -> Result<Vec<u8>, crate::load::file::Refused> {
    crate::load::file::read_bytes(
        &super::expand_tilde(path),
        None,
        crate::load::file::MAX_FILE_BYTES,
    )
}

fn read_ca(path: &str) -> Result<Vec<reqwest::Certificate>, StepError> {
    let pem =
        read_pem(path).map_err(|e| StepError::new(format!("cannot read `ca_file` {path}: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| StepError::new(format!("`ca_file` {path} is not a PEM certificate")))?;
    if certs.is_empty() {
        return Err(StepError::new(format!(
            "`ca_file` {path} holds no certificate"
        )));
    }
    Ok(certs)
}

fn point_at(url: &mut Url, addr: SocketAddr) {
    // Both calls only fail for URLs that cannot have a host, excluded above.
    let _ = url.set_ip_host(addr.ip());
    let _ = url.set_port(Some(addr.port()));
}

/// Warn when `insecure` is used against an `https` URL of a protected environment.
fn insecure_warning(p: &Params, cx: &mut CheckCx<'_>) {
    let protected: Vec<String> = cx
        .environments
        .iter()
        .filter(|env| env.doc.protected)
        .filter(|env| {
            // Render what can be known now (the environment's vars); a URL that needs inputs
            // or step outputs counts as https when it says so anywhere.
            let ctx = serde_json::json!({ "env": env.template_vars() });
            match crate::template::render(&p.url, &crate::template::value(&ctx)) {
                Ok(url) => url.starts_with("https:"),
                Err(_) => p.url.contains("https:"),
            }
        })
        .map(|env| env.name.clone())
        .collect();
    if !protected.is_empty() {
        cx.problem_at(
            "insecure",
            Problem::warning(
                "runbook::insecure-tls",
                format!(
                    "`insecure: true` skips TLS verification, also in protected environment `{}`",
                    protected.join("`, `")
                ),
            )
            .help("trust the server's CA with `ca_file` instead"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_short() {
        let long = "x".repeat(10_000);
        let e = excerpt(&long);
        assert!(e.len() < EXCERPT + 20, "{}", e.len());
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("  "), "");
        assert_eq!(excerpt("not found\n"), "body: not found");
    }

    #[test]
    fn status_text_has_reason() {
        assert_eq!(
            status_text(StatusCode::SERVICE_UNAVAILABLE),
            "503 Service Unavailable"
        );
    }
}
