//! What every HTTP kind shares: the target parsed once (URL, method, trusted CAs), the client
//! built for it (TLS verified unless told otherwise, redirects reported as they are, through
//! an SSH tunnel from a `via` host), the body read up to a limit, expected statuses and body
//! assertions, short reasons for failures, and the check-time problems of these parameters.
//!
//! A leaf: it knows no kind, so `http.check` and `http.request` both build on it.

use std::net::SocketAddr;
use std::time::Duration;

use indexmap::IndexMap;
use reqwest::{Method, StatusCode, Url};

use crate::diag::{Code, Problem};
use crate::one_or_many::OneOrMany;
use crate::steps::hand::{HandCx, sh_quote};
use crate::steps::kind::{CheckCx, RunCx, StepError};

/// Where a request is made from: a host or a group's name (`One`), or a list of hosts.
pub type Via = OneOrMany<String>;

impl Via {
    /// For one host only: its name.
    pub fn single(host: &str) -> Via {
        Via::One(host.to_string())
    }
}

/// One status code or a list of them.
pub type ExpectStatus = OneOrMany<u16>;

/// The schema of one expected status code (read as any `u16`; `check` refuses one outside
/// 100 to 599).
pub(super) struct StatusCodeSchema;

impl schemars::JsonSchema for StatusCodeSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StatusCode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "integer", "minimum": 100, "maximum": 599 })
    }
}

/// The `body` output keeps at most this much of the response.
pub(super) const BODY_LIMIT: usize = 64 * 1024;
/// How much of the body a failure shows.
pub(super) const EXCERPT: usize = 300;

/// The accepted status codes: the step's, or 200.
pub(super) fn expected(expect_status: Option<&ExpectStatus>) -> Vec<u16> {
    expect_status.map_or_else(|| vec![200], ExpectStatus::to_vec)
}

/// What every request of a step shares, parsed once (for every host of a fan-out).
pub(super) struct Target {
    pub url: Url,
    pub method: Method,
    pub certs: Vec<reqwest::Certificate>,
}

impl Target {
    /// The URL, method and headers, checked again after rendering (a template may have made
    /// them invalid) so that nothing is sent; the CAs are the caller's to read (`read_ca`).
    pub fn prepare(
        url: &str,
        method: &str,
        headers: &IndexMap<String, String>,
    ) -> Result<Target, StepError> {
        // A URL parser drops a line break or a tab silently: the request would go elsewhere
        // than the URL says.
        if url.chars().any(char::is_control) {
            // Not shown: escaped, a secret in it would no longer be recognised to be masked.
            return Err(StepError::new(
                "the rendered URL holds a control character (a line break?); nothing was sent",
            ));
        }
        for (name, value) in headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(StepError::new(format!(
                    "`{}` is not an HTTP header name; nothing was sent",
                    name.escape_debug()
                )));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(StepError::new(format!(
                    "the value of header `{name}` holds a character a header cannot carry \
                     (a line break, a control or a non-ASCII character); nothing was sent"
                )));
            }
        }
        let parsed =
            Url::parse(url).map_err(|e| StepError::new(format!("invalid URL `{url}`: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StepError::new(format!(
                "`{url}` is not an http or https URL"
            )));
        }
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| StepError::new(format!("`{method}` is not an HTTP method")))?;
        Ok(Target {
            url: parsed,
            method,
            certs: Vec::new(),
        })
    }
}

/// A client ready to send to a [`Target`]: through its tunnel when made from a `via` host.
pub(super) struct Connection {
    pub client: reqwest::Client,
    /// The URL to send to (the tunnel's address when the URL names an address).
    pub url: Url,
    /// The `Host` header the URL as written would have sent, when the URL was repointed.
    host_header: Option<String>,
}

impl Connection {
    /// Build the client for `target`, opening the tunnel through `via` first. `url_text` is
    /// the URL as written, for errors.
    pub async fn open(
        target: &Target,
        url_text: &str,
        timeout: Duration,
        insecure: bool,
        via: Option<&str>,
        cx: &RunCx<'_>,
    ) -> Result<Connection, StepError> {
        // reqwest is built without a default crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut url = target.url.clone();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect to a login page must not pass for a healthy answer: report it as is.
            .redirect(reqwest::redirect::Policy::none());
        if !target.certs.is_empty() {
            builder = builder.tls_certs_merge(target.certs.clone());
        }
        if insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let mut host_header = None;
        if let Some(via) = via {
            let host = url
                .host_str()
                .ok_or_else(|| StepError::new(format!("`{url_text}` has no host")))?
                .to_string();
            let port = url.port_or_known_default().unwrap_or(80);
            let local =
                crate::steps::ssh::tunnel(cx, via, host.trim_matches(['[', ']']), port).await?;
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
                crate::steps::common::error_chain(&e)
            ))
        })?;
        Ok(Connection {
            client,
            url,
            host_header,
        })
    }

    /// A request with the step's headers (and the `Host` of the URL as written); the caller
    /// adds the body.
    pub fn request(
        &self,
        method: &Method,
        headers: &IndexMap<String, String>,
    ) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method.clone(), self.url.clone());
        for (k, v) in headers {
            r = r.header(k.as_str(), v.as_str());
        }
        if let Some(h) = &self.host_header {
            r = r.header(reqwest::header::HOST, h.as_str());
        }
        r
    }
}

/// Why an answer is not the expected one: its status, or a body without the text or the
/// pattern it must have. `None` when it is.
pub(super) fn mismatch(
    status: StatusCode,
    body: &str,
    expected: &[u16],
    body_contains: Option<&str>,
    body_matches: Option<(&regex::Regex, &str)>,
) -> Option<String> {
    if !expected.contains(&status.as_u16()) {
        return Some(status_text(status));
    }
    if let Some(needle) = body_contains
        && !body.contains(needle)
    {
        return Some(format!(
            "{}, but the body does not contain `{needle}`",
            status_text(status)
        ));
    }
    if let Some((re, src)) = body_matches
        && !re.is_match(body)
    {
        return Some(format!(
            "{}, but the body does not match `{src}`",
            status_text(status)
        ));
    }
    None
}

/// `body_matches` compiled (checked at check time; a template may still make it invalid).
pub(super) fn body_pattern(body_matches: Option<&str>) -> Result<Option<regex::Regex>, StepError> {
    body_matches
        .map(|re| {
            regex::Regex::new(re)
                .map_err(|_| StepError::new("invalid regular expression in `body_matches`"))
        })
        .transpose()
}

pub(super) fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

/// The body, truncated to [`BODY_LIMIT`] (read no further than that), as text.
pub(super) async fn read_body(resp: reqwest::Response) -> String {
    // A body cut short still tells a check something; keep what arrived.
    let (buf, _) = read_up_to(resp, BODY_LIMIT).await;
    body_text(&buf, BODY_LIMIT)
}

/// At most `limit` bytes of the body (a chunk may carry it a little further), and the error
/// that cut it short, if one did before the end or the limit.
pub(super) async fn read_up_to(
    mut resp: reqwest::Response,
    limit: usize,
) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return (buf, Some(e)),
        }
    }
    (buf, None)
}

/// The first `limit` bytes of a body as text.
pub(super) fn body_text(buf: &[u8], limit: usize) -> String {
    let buf = &buf[..buf.len().min(limit)];
    let mut s = String::from_utf8_lossy(buf).into_owned();
    // The cut may split a character; drop the replacement char it leaves at the end.
    if buf.len() == limit && s.ends_with('\u{FFFD}') {
        s.pop();
    }
    s
}

/// The first lines of a body, for a failure's detail.
pub(super) fn excerpt(body: &str) -> String {
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
pub(super) fn request_error(e: &reqwest::Error, timeout: Duration) -> String {
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

pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
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
        &crate::steps::common::expand_tilde(path),
        None,
        crate::load::file::MAX_FILE_BYTES,
    )
}

pub(crate) fn read_ca(path: &str) -> Result<Vec<reqwest::Certificate>, StepError> {
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

pub(super) fn point_at(url: &mut Url, addr: SocketAddr) {
    // Both calls only fail for URLs that cannot have a host, excluded above.
    let _ = url.set_ip_host(addr.ip());
    let _ = url.set_port(Some(addr.port()));
}

/// Check-time problems of a URL: not http(s), no host, not a URL.
pub(super) fn check_url(url: &str, cx: &mut CheckCx<'_>) {
    if url.contains("{{") {
        return;
    }
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        Ok(u) if !matches!(u.scheme(), "http" | "https") => cx.problem_at(
            "url",
            Problem::error(Code::BadUrl, format!("`{url}` is not an http or https URL"))
                .help("write it like `https://localhost:1337/health`"),
        ),
        Ok(_) => cx.problem_at(
            "url",
            Problem::error(Code::BadUrl, format!("`{url}` has no host")),
        ),
        Err(e) => cx.problem_at(
            "url",
            Problem::error(Code::BadUrl, format!("invalid URL `{url}`: {e}"))
                .help("write it like `https://localhost:1337/health`"),
        ),
    }
}

/// Check-time problem of `body_matches`: a regular expression that does not compile.
pub(super) fn check_body_matches(body_matches: Option<&str>, cx: &mut CheckCx<'_>) {
    if let Some(re) = body_matches
        && !re.contains("{{")
        && let Err(e) = regex::Regex::new(re)
    {
        // The regex error is several lines with a caret; its last line says what is wrong.
        let why = e.to_string();
        let why = why.lines().last().unwrap_or("invalid").trim().to_string();
        cx.problem_at(
            "body_matches",
            Problem::error(
                Code::BadPattern,
                format!("invalid regular expression in `body_matches`: {why}"),
            ),
        );
    }
}

/// Check-time problem of `method`: not an HTTP method.
pub(super) fn check_method(method: &str, cx: &mut CheckCx<'_>) {
    if !method.contains("{{") && Method::from_bytes(method.as_bytes()).is_err() {
        cx.problem_at(
            "method",
            Problem::error(Code::BadMethod, format!("`{method}` is not an HTTP method"))
                .help("write GET, HEAD, POST, PUT, PATCH or DELETE"),
        );
    }
}

/// Check-time problems of `expect_status`: codes outside 100 to 599.
pub(super) fn check_expected(expected: &[u16], cx: &mut CheckCx<'_>) {
    for &code in expected {
        if !(100..=599).contains(&code) {
            cx.problem_at(
                "expect_status",
                Problem::error(
                    Code::BadStatus,
                    format!("{code} is not an HTTP status code (100 to 599)"),
                ),
            );
        }
    }
}

/// Warn when `insecure` is used against an `https` URL of a protected environment.
pub(super) fn insecure_warning(url: &str, cx: &mut CheckCx<'_>) {
    let protected: Vec<String> = cx
        .environments
        .iter()
        .filter(|env| env.doc.protected)
        .filter(|env| {
            // Render what can be known now (the environment's vars); a URL that needs inputs
            // or step outputs counts as https when it says so anywhere.
            let ctx = serde_json::json!({ "env": env.template_vars() });
            match crate::template::render(url, &crate::template::value(&ctx)) {
                Ok(url) => url.starts_with("https:"),
                Err(_) => url.contains("https:"),
            }
        })
        .map(|env| env.name.clone())
        .collect();
    if !protected.is_empty() {
        cx.problem_at(
            "insecure",
            Problem::warning(
                Code::InsecureTls,
                format!(
                    "`insecure: true` skips TLS verification, also in protected environment `{}`",
                    protected.join("`, `")
                ),
            )
            .help("trust the server's CA with `ca_file` instead"),
        );
    }
}

/// By hand: the tunnel through `via` to open first (into `s`), and the `curl` options that
/// send the URL as written through it.
pub(super) fn hand_tunnel(
    url: &str,
    via: &str,
    cx: &HandCx<'_>,
    s: &mut String,
    curl: &mut String,
) {
    // The same port on this side of the tunnel, so the URL (and the certificate's
    // name) stay as written.
    let url = Url::parse(url).ok();
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

/// By hand: the URL as `curl`'s last argument. One that holds a secret (a token in the
/// query, a password before the `@`) goes into a `curl` config file (the instructions say which
/// line), never onto the command line; and a `$TOKEN` inside single quotes would not even be
/// replaced, so the request would go without it.
pub(super) fn hand_url(url: &str, cx: &HandCx<'_>, s: &mut String) -> String {
    if cx.mentions_secret(url) {
        s.push_str(&format!(
            "Write the line `url = \"{url}\"` into the file `url` (with `umask 077`).\n\n"
        ));
        "-K url".to_string()
    } else {
        sh_quote(url)
    }
}

/// By hand: the `curl` options of the method and headers; a header that holds a secret goes
/// into a file (the instructions say which line), never onto the command line.
pub(super) fn hand_headers(
    method: &str,
    headers: &IndexMap<String, String>,
    cx: &HandCx<'_>,
    s: &mut String,
    curl: &mut String,
) {
    if !method.eq_ignore_ascii_case("GET") {
        curl.push_str(&format!(" -X {}", method.to_ascii_uppercase()));
    }
    // One file for all of them, read once: `-H @headers` twice would send each line twice.
    let mut in_file = false;
    for (k, v) in headers {
        if cx.mentions_secret(v) {
            if in_file {
                s.push_str(&format!(
                    "Add the header line `{k}: {v}` to the file `headers`, on a line of its own.\n\n"
                ));
            } else {
                s.push_str(&format!(
                    "Write the header line `{k}: {v}` into the file `headers` (with `umask 077`).\n\n"
                ));
                curl.push_str(" -H @headers");
                in_file = true;
            }
        } else {
            curl.push_str(&format!(" -H {}", sh_quote(&format!("{k}: {v}"))));
        }
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
