//! `http.request`: send one request (a webhook, an incident record, a vendor API call) and
//! keep its answer as outputs, optionally from a host of the environment through an SSH
//! tunnel. Sent once, never polled: a request that changes something must not be repeated
//! behind the operator's back.
//!
//! Secrets: a header or body read from a secret is masked like any rendered secret, shown by
//! hand as a file, never on the command line; the answer's outputs are secret when the request
//! read a secret or the answer repeats one, its headers when one repeats a secret or carries a
//! credential (`Set-Cookie`, a token). With `aws_sigv4:` the request is signed with an AWS
//! key pair (`sigv4.rs`): the key id is sent, the secret key never is.

use std::time::Duration;

use indexmap::IndexMap;
use reqwest::Method;
use schemars::JsonSchema;
use serde::Deserialize;

use super::client::{
    self, BODY_LIMIT, Connection, ExpectStatus, Target, excerpt, mismatch, request_error,
};
use super::sigv4::{self, Sigv4};
use crate::diag::{Code, Problem};
use crate::model::{Dur, Environment, patterns, ranges};
use crate::one_or_many::OneOrMany;
use crate::steps::common::json_path;
use crate::steps::hand::HandCx;
use crate::steps::kind::{
    Check, CheckCx, Effect, Kind, Logged, Need, NeedCx, Needs, Output, OutputSpec, Outputs,
    ProbeCx, Resources, RunCx, Stage, Status, StepError,
};

pub struct HttpRequest;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// One body: `json` or `body`.
#[schemars(extend("not" = { "allOf": [patterns::given("json"), patterns::given("body")] }))]
pub struct Params {
    /// The HTTP method: GET, HEAD, POST, PUT, PATCH or DELETE. Anything but GET and HEAD
    /// changes something.
    #[schemars(regex(pattern = patterns::HTTP_TOKEN))]
    pub method: String,
    /// The URL to send to (`http` or `https`). With `via`, as seen from that host.
    #[schemars(regex(pattern = patterns::HTTP_URL))]
    pub url: String,
    /// Request headers. A value read from a secret (a token) is masked everywhere.
    #[serde(default)]
    #[schemars(extend(
        "propertyNames" = { "pattern": patterns::HTTP_TOKEN },
        "additionalProperties" = { "type": "string", "pattern": "^[^\r\n]*$" }
    ))]
    pub headers: IndexMap<String, String>,
    /// A JSON body: this mapping, sent as JSON (with `Content-Type: application/json` unless
    /// `headers` sets one).
    #[serde(default)]
    pub json: Option<serde_json::Map<String, serde_json::Value>>,
    /// A text body, sent as written.
    #[serde(default)]
    pub body: Option<String>,
    /// The expected status code, or a list of accepted ones (default: any 2xx).
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany<client::StatusCodeSchema>>")]
    pub expect_status: Option<ExpectStatus>,
    /// The response body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The response body must match this regular expression (anywhere in the body).
    #[serde(default)]
    pub body_matches: Option<String>,
    /// Values the response body, parsed as JSON, must hold.
    #[serde(default)]
    pub expect_json: Vec<JsonEquals>,
    /// The limit for the request (default 10s).
    #[serde(default = "default_request_timeout")]
    #[schemars(extend("not" = patterns::outside(ranges::REQUEST_TIMEOUT)))]
    pub request_timeout: Dur,
    /// A host of the environment to send the request from, through an SSH tunnel.
    #[serde(default)]
    pub via: Option<String>,
    /// A PEM file of a private CA to trust, in addition to the platform's roots. Empty is
    /// none, so an optional setting of the environment can be templated in
    /// (`ca_file: "{{ env.notify.ca_file }}"`).
    #[serde(default, deserialize_with = "empty_is_none")]
    pub ca_file: Option<String>,
    /// Skip TLS certificate verification. Only for hosts whose certificate cannot be verified.
    #[serde(default)]
    pub insecure: bool,
    /// Sign the request with an AWS access key pair (SigV4), as S3, Cloudflare R2 and other
    /// S3-compatible stores want: a real call that proves the keys work, or are refused.
    #[serde(default)]
    pub aws_sigv4: Option<Sigv4>,
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonEquals {
    /// Dotted path into the document: `status`, `items.0.name` (empty: the whole document).
    pub path: String,
    /// The value expected there.
    pub equals: serde_json::Value,
}

/// How far past [`BODY_LIMIT`] a body is read to see whether the cut splits a secret (longer
/// than any secret a runbook holds).
const SECRET_SLACK: usize = 4096;

fn default_request_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}

impl Params {
    /// The accepted statuses: the step's, or every 2xx.
    fn expected(&self) -> Vec<u16> {
        match &self.expect_status {
            Some(e) => e.to_vec(),
            None => (200..=299).collect(),
        }
    }

    fn expected_text(&self) -> String {
        match &self.expect_status {
            Some(e) => {
                let codes: Vec<String> = e.to_vec().iter().map(u16::to_string).collect();
                codes.join(" or ")
            }
            None => "a 2xx status".into(),
        }
    }

    fn method(&self) -> String {
        self.method.to_ascii_uppercase()
    }

    fn is_read_only(&self) -> bool {
        matches!(self.method().as_str(), "GET" | "HEAD")
    }

    /// The body as sent, and whether it is JSON.
    fn body_text(&self) -> Option<(String, bool)> {
        match (&self.json, &self.body) {
            (Some(j), _) => Some((serde_json::Value::Object(j.clone()).to_string(), true)),
            (None, Some(b)) => Some((b.clone(), false)),
            (None, None) => None,
        }
    }

    /// Whether a part of the request is rendered from templates (and may read a secret).
    fn templated(&self) -> bool {
        let t = crate::template::is_template;
        t(&self.url)
            || self.headers.iter().any(|(k, v)| t(k) || t(v))
            || self.body_text().is_some_and(|(b, _)| t(&b))
            || self
                .aws_sigv4
                .as_ref()
                .is_some_and(|a| t(&a.access_key_id) || t(&a.secret_access_key))
    }

    fn sets_content_type(&self) -> bool {
        self.headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
    }
}

impl Kind for HttpRequest {
    const NAME: &'static str = "http.request";
    const SUMMARY: &'static str = "Send one HTTP request (a webhook, an incident record, a vendor API) with headers and a JSON or \
         text body, and check its answer (outputs `status`, `headers`, `json`, `body`).";
    type Params = Params;

    fn server_logged() -> &'static [(&'static str, Logged)] {
        &[("url", Logged::Url)]
    }

    fn outputs(p: &Params, _: &[Environment]) -> Vec<OutputSpec> {
        // A request written out in full reads no secret, so its answer is one only if it
        // repeats one (masked then, see `run`). A templated one may read a secret: whether its
        // answer is one is known only once it came.
        let answer = if p.templated() {
            OutputSpec::maybe
        } else {
            OutputSpec::public
        };
        vec![
            OutputSpec::public("status"),
            answer("headers"),
            answer("json"),
            answer("body"),
        ]
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        client::check_url(&p.url, cx);
        client::check_body_matches(p.body_matches.as_deref(), cx);
        client::check_method(&p.method, cx);
        client::check_expected(&p.expected(), cx);
        if p.expect_status
            .as_ref()
            .is_some_and(|e| e.to_vec().is_empty())
        {
            cx.problem_at(
                "expect_status",
                Problem::error(Code::BadStatus, "`expect_status` is an empty list")
                    .help("name the accepted codes, or leave `expect_status` out for any 2xx"),
            );
        }
        if p.json.is_some() && p.body.is_some() {
            cx.problem_at(
                "json",
                Problem::error(
                    Code::Invalid,
                    "both `json` and `body` give the request's body",
                )
                .label("one of the two")
                .help("keep `json:` for a JSON body or `body:` for text, not both"),
            );
        }
        for (name, value) in &p.headers {
            let problem = if !name.contains("{{")
                && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                Problem::error(
                    Code::Invalid,
                    format!("`{name}` is not an HTTP header name"),
                )
                .label("this header")
                .help("a header name is letters, digits and `-`, like `X-Request-Id`")
            } else if value.contains(['\r', '\n']) {
                Problem::error(
                    Code::Invalid,
                    format!("the value of header `{name}` spans several lines"),
                )
                .label("this header")
                .help("a header value is one line")
            } else {
                continue;
            };
            // At the header's value when it can be found, else at `headers`.
            match cx.params.get("headers").and_then(|h| h.get(name)) {
                Some(node) => {
                    let span = Some(node.span.clone());
                    cx.problems.push(Problem { span, ..problem });
                }
                None => cx.problem_at("headers", problem),
            }
        }
        use crate::model::ranges::{self, outside_dur};
        if let Some(help) = outside_dur(p.request_timeout.0, ranges::REQUEST_TIMEOUT) {
            let shown = humantime::format_duration(p.request_timeout.0).to_string();
            cx.problem_at(
                "request_timeout",
                ranges::problem("request_timeout", &shown, help),
            );
        }
        if let Some(via) = &p.via {
            cx.require_host("via", via);
        }
        if p.insecure {
            client::insecure_warning(&p.url, cx);
        }
    }

    fn describe(p: &Params) -> String {
        let mut s = format!("{} {} expecting {}", p.method(), p.url, p.expected_text());
        if let Some(via) = &p.via {
            s.push_str(&format!(" (from {via})"));
        }
        if let Some(a) = &p.aws_sigv4 {
            s.push_str(&format!(
                ", signed with AWS SigV4 ({}, {}) by key {}",
                a.service, a.region, a.access_key_id
            ));
        }
        // What is sent goes where the request goes as much as the URL: a `Host:` or a
        // `Content-Length` header changes where or what it lands. The reviewer and the
        // approver see every header and the body, whole (secrets masked like everywhere).
        for (k, v) in &p.headers {
            s.push_str(&format!(
                "\n  with header {k}: {}",
                crate::steps::common::whole_text(v)
            ));
        }
        if let Some(json) = &p.json {
            s.push_str(&format!(
                "\n  with JSON body {}",
                crate::steps::common::whole_text(
                    &serde_json::Value::Object(json.clone()).to_string()
                )
            ));
        }
        if let Some(body) = &p.body {
            s.push_str(&format!(
                "\n  with body:\n{}",
                crate::steps::common::whole_text(body)
            ));
        }
        s
    }

    fn effect(p: &Params) -> Effect {
        if p.is_read_only() {
            Effect::ReadOnly
        } else {
            Effect::Changes(format!("sends {} {}", p.method(), p.url))
        }
    }

    /// Sent again after a crash, a POST (or a PATCH) may file a second record; a PUT or a
    /// DELETE of the same thing lands the same.
    fn idempotent(p: &Params) -> bool {
        !matches!(p.method().as_str(), "POST" | "PATCH")
    }

    fn ssh_hosts(p: &Params, _env: &Environment) -> Vec<String> {
        p.via.iter().cloned().collect()
    }

    fn warm_up(p: &Params, env: &Environment, resources: &Resources) {
        crate::steps::ssh::warm_up(resources, env, &Self::ssh_hosts(p, env));
    }

    /// Only a `via` host is the environment's; a URL is the runbook's own.
    fn needs_environment(p: &Params) -> bool {
        p.via.is_some()
    }

    fn example() -> &'static str {
        "{ method: POST, url: 'http://127.0.0.1:9/hook', via: app, headers: { X-Token: abc }, json: { text: hi } }"
    }

    fn preflight(p: Option<Params>, cx: &NeedCx<'_>, needs: &mut Needs) {
        let Some(p) = p else {
            return;
        };
        let id = cx.step_id;
        let mut all_known = needs.known("http", id, &p.url)
            && p.ca_file.as_deref().is_none_or(|f| needs.is_known(f));
        if let Some(via) = &p.via {
            if needs.known("ssh", id, via) {
                needs.add(crate::steps::ssh::host_need(via.clone(), id));
            } else {
                all_known = false;
            }
        }
        if all_known {
            needs.add(Box::new(Reachable(p)));
        }
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let mut target = Target::prepare(&p.url, &p.method, &p.headers)?;
        let body_re = client::body_pattern(p.body_matches.as_deref())?;
        if let Some(ca) = &p.ca_file {
            target.certs = client::read_ca(ca)?;
        }
        let conn = Connection::open(
            &target,
            &p.url,
            p.request_timeout.0,
            p.insecure,
            p.via.as_deref(),
            cx,
        )
        .await?;
        let sent = p.body_text();
        let mut headers = p.headers.clone();
        if let Some((_, true)) = &sent
            && !p.sets_content_type()
        {
            headers.insert("content-type".into(), "application/json".into());
        }
        if let Some(a) = &p.aws_sigv4 {
            // Signed as the URL is written (its host, not a tunnel's), with every header and
            // the body exactly as they go.
            let body = sent.as_ref().map_or(&[][..], |(t, _)| t.as_bytes());
            for (k, v) in a.headers(target.method.as_str(), &target.url, &headers, body)? {
                headers.insert(k, v);
            }
        }
        let mut r = conn.request(&target.method, &headers);
        if let Some((text, _)) = &sent {
            r = r.body(text.clone());
        }
        // Whether a secret went into the request: then its answer is one too. (The secret
        // key of `aws_sigv4` is not sent, its key id is.)
        let holds = cx.holds_secret;
        let secret_sent = holds(&p.url)
            || p.headers.values().any(|v| holds(v))
            || sent.as_ref().is_some_and(|(t, _)| holds(t))
            || p.aws_sigv4
                .as_ref()
                .is_some_and(|a| holds(&a.access_key_id));

        let resp = r.send().await.map_err(|e| {
            StepError::new(format!(
                "request failed: {}",
                request_error(&e, p.request_timeout.0)
            ))
        })?;
        let status = resp.status();
        let mut headers = serde_json::Map::new();
        for (name, value) in resp.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(serde_json::Value::String(v)) => {
                    v.push_str(", ");
                    v.push_str(&value);
                }
                _ => {
                    headers.insert(name.as_str().to_string(), value.into());
                }
            }
        }
        // Read a little past the limit: a secret the cut splits still shows whole to
        // `holds`, so a body that keeps only its first characters is secret too.
        let (seen, cut_short) = client::read_up_to(resp, BODY_LIMIT + SECRET_SLACK).await;
        if let Some(e) = cut_short {
            // A part of a body is not the answer: later steps must not read a token or an
            // id from it. The request itself did arrive.
            let why = if e.is_timeout() {
                format!(
                    "its body did not end within {} (`request_timeout`)",
                    humantime::format_duration(p.request_timeout.0)
                )
            } else {
                request_error(&e, p.request_timeout.0)
            };
            return Err(StepError::new(format!(
                "the answer ({}) did not arrive in full: {why}",
                client::status_text(status)
            )));
        }
        let answer_secret = secret_sent || holds(&client::body_text(&seen, seen.len()));
        let body = client::body_text(&seen, BODY_LIMIT);
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);

        let why = mismatch(
            status,
            &body,
            &p.expected(),
            p.body_contains.as_deref(),
            body_re.as_ref().map(|re| (re, re.as_str())),
        )
        .or_else(|| json_mismatch(&p.expect_json, &body, &json, !answer_secret));
        if let Some(why) = why {
            // The answer to a request that carried a secret may hold another (a token just
            // made, which no mask knows yet): a failure shows none of it, as its outputs
            // would not.
            let code = p
                .aws_sigv4
                .as_ref()
                .and_then(|_| sigv4::error_code(&body))
                .map(|c| format!("; the store says `{c}`"))
                .unwrap_or_default();
            let detail = if secret_sent {
                "body: not shown (the answer to a request that carried a secret may hold one)"
                    .to_string()
            } else if answer_secret {
                "body: not shown (it holds a secret)".to_string()
            } else {
                excerpt(&body)
            };
            return Err(
                StepError::new(format!("unexpected answer: {why}{code}")).with_detail(detail)
            );
        }

        // A header that carries a credential back (a session cookie, a token made for this
        // login) is one no mask knows yet: it makes the headers secret, like a repeated one.
        // After a request that carried a secret, so does any header but the few every HTTP
        // server sends (a `Location` with a token in its fragment, an `X-Sess-Id`).
        // (The headers every server sends are not read for a repeated secret: their values,
        // such as a content type, may be masked text since an earlier answer was secret.)
        let headers_secret = headers.keys().any(|k| carries_credential(k))
            || headers
                .iter()
                .any(|(k, v)| !plain_header(k) && v.as_str().is_some_and(holds))
            || (answer_secret && headers.keys().any(|k| !plain_header(k)));
        let headers = serde_json::Value::Object(headers);
        // The body answers a request that held a secret: it may hold another (a token the
        // API hands back), so it is one, and so is its JSON. The headers (a content type, a
        // date) are one only when a value repeats a secret: every string of a secret output
        // is masked for the rest of the run. A value too short to be a secret (an empty body,
        // `ok`) cannot be one, nor be masked: it stays public.
        let body_value = serde_json::Value::String(body.clone());
        let body_secret = answer_secret && maskable(&body_value);
        let json_secret = body_secret && maskable(&json);
        Ok(vec![
            Output {
                name: "status".into(),
                value: status.as_u16().into(),
                secret: false,
            },
            Output {
                name: "headers".into(),
                value: headers,
                secret: headers_secret,
            },
            Output {
                name: "json".into(),
                value: json,
                secret: json_secret,
            },
            Output {
                name: "body".into(),
                value: body_value,
                secret: body_secret,
            },
        ])
    }

    fn by_hand(p: &Params, cx: &HandCx<'_>) -> Option<String> {
        use crate::steps::hand::sh_quote;
        let mut s = String::new();
        let mut curl = String::from("curl -sS");
        if let Some(via) = &p.via {
            client::hand_tunnel(&p.url, via, cx, &mut s, &mut curl);
        }
        client::hand_headers(&p.method, &p.headers, cx, &mut s, &mut curl);
        if let Some((body, is_json)) = p.body_text() {
            if is_json && !p.sets_content_type() {
                curl.push_str(" -H 'Content-Type: application/json'");
            }
            match cx.file_of(&body) {
                Some(file) => curl.push_str(&format!(" --data-binary @{file}")),
                None if cx.mentions_secret(&body) => {
                    s.push_str(&format!(
                        "Write the body `{body}` into the file `body` (with `umask 077`).\n\n"
                    ));
                    curl.push_str(" --data-binary @body");
                }
                None => curl.push_str(&format!(" --data-binary {}", sh_quote(&body))),
            }
        }
        if let Some(ca) = &p.ca_file {
            curl.push_str(&format!(" --cacert {}", crate::steps::hand::sh_word(ca)));
        }
        if p.insecure {
            curl.push_str(" --insecure");
        }
        if let Some(a) = &p.aws_sigv4 {
            // curl signs it itself; the key pair goes into a config file, never onto the
            // command line.
            s.push_str(&format!(
                "Write the line `user = \"{}:{}\"` into the file `sigv4` (with `umask 077`).\n\n",
                a.access_key_id, a.secret_access_key
            ));
            curl.push_str(&format!(
                " --aws-sigv4 {} -K sigv4",
                sh_quote(&format!("aws:amz:{}:{}", a.region, a.service))
            ));
        }
        let url = client::hand_url(&p.url, cx, &mut s);
        curl.push_str(&format!(" -w '\\n%{{http_code}}\\n' {url}"));
        let fence = crate::display::md_fence(&curl);
        s.push_str(&format!("{fence}sh\n{curl}\n{fence}\n\n"));
        s.push_str(&format!(
            "Send it once. Its last line must be {}",
            p.expected_text()
        ));
        let mut after = Vec::new();
        if let Some(t) = &p.body_contains {
            after.push(format!("containing `{t}`"));
        }
        if let Some(r) = &p.body_matches {
            after.push(format!("matching `{r}`"));
        }
        for a in &p.expect_json {
            after.push(format!(
                "with `{}` equal to `{}` in its JSON",
                a.path, a.equals
            ));
        }
        if !after.is_empty() {
            s.push_str(&format!(", after a body {}", after.join(" and ")));
        }
        s.push('.');
        Some(s)
    }
}

/// Whether a response header (by its lower-case name) is one that carries a credential:
/// `Set-Cookie`, `X-Subject-Token`, `X-Api-Key`, `Authorization`…
fn carries_credential(name: &str) -> bool {
    [
        "cookie",
        "token",
        "auth",
        "key",
        "secret",
        "session",
        "password",
        "credential",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// A response header every HTTP server sends, which never carries a credential back: what a
/// request that carried a secret may get back without its headers becoming secret.
fn plain_header(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "content-length"
            | "content-encoding"
            | "content-language"
            | "date"
            | "server"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "cache-control"
            | "pragma"
            | "expires"
            | "last-modified"
            | "etag"
            | "vary"
            | "age"
            | "accept-ranges"
            | "retry-after"
            | "alt-svc"
            | "via"
            | "strict-transport-security"
            | "x-content-type-options"
            | "x-frame-options"
            | "referrer-policy"
            | "content-security-policy"
    ) || name.starts_with("access-control-")
}

/// Whether the engine can mask a value marked secret: a string must be long enough.
fn maskable(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => crate::secret::check_len(s).is_ok(),
        _ => true,
    }
}

/// Why the body's JSON does not hold what `expect_json` says, if it does not.
/// `show` says whether the value found may be shown (not when the answer is secret); a shown
/// one is cut short, so that a whole document never fills the screen.
fn json_mismatch(
    expect: &[JsonEquals],
    body: &str,
    doc: &serde_json::Value,
    show: bool,
) -> Option<String> {
    if expect.is_empty() {
        return None;
    }
    if let Err(e) = serde_json::from_str::<serde_json::Value>(body) {
        return Some(format!("the body is not JSON ({e})"));
    }
    for a in expect {
        let got = json_path(doc, &a.path);
        if got != Some(&a.equals) {
            let got = match got {
                None => "nothing".to_string(),
                Some(_) if !show => "another value (not shown: the answer is secret)".to_string(),
                Some(v) => format!("`{}`", shorten(&v.to_string())),
            };
            return Some(format!("`{}` is {got}, expected `{}`", a.path, a.equals));
        }
    }
    None
}

/// A value found in the answer, cut to one readable line.
fn shorten(v: &str) -> String {
    const MAX: usize = 120;
    match v.char_indices().nth(MAX) {
        Some((i, _)) => format!("{} …", &v[..i]),
        None => v.to_string(),
    }
}

/// `runbook preflight`: the endpoint answers (from its `via` host, if any). The request itself
/// is not sent (it may change something): a `HEAD` of the URL, without the step's headers, body
/// or URL credentials, and any answer shows the endpoint is reached; a 5xx only warns.
struct Reachable(Params);

#[async_trait::async_trait]
impl Need for Reachable {
    fn stage(&self) -> Stage {
        Stage::Call
    }
    fn key(&self) -> String {
        format!("request {:?}", (&self.0.url, &self.0.via))
    }
    async fn check(&self, cx: &ProbeCx<'_>) -> Check {
        let p = &self.0;
        let via_text = p
            .via
            .as_ref()
            .map(|v| format!(" (from {v})"))
            .unwrap_or_default();
        let c = Check::new("http", format!("{}{via_text}", p.url));
        if let Some(why) = cx.behind(p.via.as_deref()) {
            return c.with(Status::Skip, why);
        }
        let probe = async {
            let mut target = Target::prepare(&p.url, "HEAD", &IndexMap::new())?;
            // The credentials before the `@` would go as an `Authorization` header: the probe
            // sends none of the request's (any answer, a 401 too, shows the endpoint is up).
            let _ = target.url.set_username("");
            let _ = target.url.set_password(None);
            if let Some(ca) = &p.ca_file {
                target.certs = client::read_ca(ca)?;
            }
            let conn = Connection::open(
                &target,
                &p.url,
                p.request_timeout.0,
                p.insecure,
                p.via.as_deref(),
                &cx.run,
            )
            .await?;
            conn.request(&Method::HEAD, &IndexMap::new())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| {
                    StepError::new(format!(
                        "request failed: {}",
                        request_error(&e, p.request_timeout.0)
                    ))
                })
        };
        match probe.await {
            Err(e) => c.outcome(Err(e)),
            Ok(status) if status >= 500 => c.with(
                Status::Warn,
                format!("reached; a HEAD of it answered {status} (mid-deploy?)"),
            ),
            Ok(status) => c.with(
                Status::Pass,
                format!("reached; a HEAD of it answered {status}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_templated_request_may_have_a_secret_answer() {
        let secrecy = |params: &str| -> Vec<Secrecy> {
            let p: Params = crate::load::yaml::parse(params)
                .unwrap()
                .deserialize()
                .unwrap();
            HttpRequest::outputs(&p, &[])
                .into_iter()
                .map(|o| o.secrecy)
                .collect()
        };
        use crate::steps::kind::Secrecy::{self, Maybe, Public};
        let literal = "{ method: POST, url: 'http://x/', headers: { A: b }, json: { c: d } }";
        assert_eq!(secrecy(literal), [Public; 4]);
        for templated in [
            "{ method: POST, url: 'http://x/{{ inputs.id }}' }",
            "{ method: POST, url: 'http://x/', headers: { A: '{{ inputs.t }}' } }",
            "{ method: POST, url: 'http://x/', json: { a: { b: ['{{ inputs.t }}'] } } }",
            "{ method: POST, url: 'http://x/', body: '{% if true %}x{% endif %}' }",
        ] {
            assert_eq!(
                secrecy(templated),
                [Public, Maybe, Maybe, Maybe],
                "{templated}"
            );
        }
    }

    #[test]
    fn only_post_and_patch_are_not_idempotent() {
        let p = |method: &str| -> Params {
            crate::load::yaml::parse(&format!("{{ method: {method}, url: 'http://x/' }}"))
                .unwrap()
                .deserialize()
                .unwrap()
        };
        for (m, idempotent, read_only) in [
            ("GET", true, true),
            ("head", true, true),
            ("PUT", true, false),
            ("DELETE", true, false),
            ("POST", false, false),
            ("patch", false, false),
        ] {
            assert_eq!(HttpRequest::idempotent(&p(m)), idempotent, "{m}");
            assert_eq!(
                HttpRequest::effect(&p(m)) == Effect::ReadOnly,
                read_only,
                "{m}"
            );
        }
    }
}
