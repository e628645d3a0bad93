//! `http.check` against the sandbox's HTTP and HTTPS test server.

mod common;

use common::{Run, Sandbox, Test, sandbox, unique};

/// Run a one-step runbook whose `http.check` parameters are `params` (YAML lines, indented
/// under the kind key).
fn check(sb: &Sandbox, params: &str) -> Run {
    let mut yaml = String::from(
        "version: 1\nname: probe\nsummary: Probe a URL\nsteps:\n  - id: probe\n    http.check:\n",
    );
    for line in params.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str("      ");
        yaml.push_str(line.trim());
        yaml.push('\n');
    }
    // The step's own behaviour (polling, TLS, failures) is what these tests look at: no
    // preflight request before it (it would take one answer of a flaky endpoint).
    Test::new()
        .with_sandbox(sb)
        .runbook("probe", &yaml)
        .args(&[
            "run",
            "probe",
            "--env",
            "sandbox",
            "--yes",
            "--no-preflight",
        ])
        .run()
}

fn out(r: &Run) -> String {
    format!("{}{}", r.stdout, r.stderr)
}

#[test]
fn ok_answers_200() {
    let sb = sandbox();
    let r = check(&sb, &format!("url: {}/ok", sb.get("SANDBOX_HTTP_URL")));
    r.assert_code(0);
}

#[test]
fn unexpected_status_fails_with_it() {
    let sb = sandbox();
    let r = check(
        &sb,
        &format!("url: {}/nothing-here", sb.get("SANDBOX_HTTP_URL")),
    );
    r.assert_code(1);
    let o = out(&r);
    assert!(o.contains("404 Not Found"), "{o}");
    assert!(o.contains("not found"), "a body excerpt: {o}");
}

#[test]
fn a_list_of_accepted_codes() {
    let sb = sandbox();
    let r = check(
        &sb,
        &format!(
            "url: {}/status/204\nexpect_status: [200, 204]",
            sb.get("SANDBOX_HTTP_URL")
        ),
    );
    r.assert_code(0);
}

#[test]
fn flaky_endpoint_recovers_within_attempts() {
    let sb = sandbox();
    let key = unique("flaky");
    let r = check(
        &sb,
        &format!(
            "url: {}/flaky/{key}/2\nattempts: 5\ndelay: 10ms",
            sb.get("SANDBOX_HTTP_URL")
        ),
    );
    r.assert_code(0);
}

#[test]
fn unavailable_forever_fails_after_all_attempts() {
    let sb = sandbox();
    let r = check(
        &sb,
        &format!(
            "url: {}/status/503\nattempts: 3\ndelay: 10ms",
            sb.get("SANDBOX_HTTP_URL")
        ),
    );
    r.assert_code(1);
    let o = out(&r);
    assert!(o.contains("503 Service Unavailable"), "{o}");
    assert!(o.contains("after 3 attempts"), "{o}");
}

#[test]
fn https_with_the_sandbox_ca() {
    let sb = sandbox();
    let r = check(
        &sb,
        &format!(
            "url: {}/ok\nca_file: {}",
            sb.get("SANDBOX_HTTPS_URL"),
            sb.get("SANDBOX_CA_FILE")
        ),
    );
    r.assert_code(0);
}

#[test]
fn https_without_the_ca_is_a_clear_tls_error() {
    let sb = sandbox();
    let r = check(&sb, &format!("url: {}/ok", sb.get("SANDBOX_HTTPS_URL")));
    r.assert_code(1);
    let o = out(&r);
    assert!(o.contains("TLS"), "{o}");
    assert!(o.contains("ca_file"), "a hint: {o}");
    assert!(!o.contains("panicked"), "{o}");
    assert!(o.lines().count() < 30, "short: {o}");
}

#[test]
fn https_insecure_skips_verification() {
    let sb = sandbox();
    let r = check(
        &sb,
        &format!("url: {}/ok\ninsecure: true", sb.get("SANDBOX_HTTPS_URL")),
    );
    r.assert_code(0);
}

#[test]
fn body_contains_and_matches() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    check(&sb, &format!("url: {url}/ok\nbody_contains: ok")).assert_code(0);
    check(&sb, &format!("url: {url}/ok\nbody_matches: '^o[k]$'")).assert_code(0);

    let r = check(&sb, &format!("url: {url}/ok\nbody_contains: healthy"));
    r.assert_code(1);
    assert!(
        out(&r).contains("does not contain `healthy`"),
        "{}",
        out(&r)
    );
    let r = check(&sb, &format!("url: {url}/ok\nbody_matches: '^\\d+$'"));
    r.assert_code(1);
    assert!(out(&r).contains("does not match"), "{}", out(&r));
}

#[test]
fn post_with_headers_and_body() {
    let sb = sandbox();
    let r = check(
        &sb,
        &format!(
            "url: {}/echo\nmethod: POST\nheaders: {{ X-Probe: yes-please }}\nbody: hello\nbody_matches: '\"body\": ?\"hello\"'\nbody_contains: yes-please",
            sb.get("SANDBOX_HTTP_URL")
        ),
    );
    r.assert_code(0);
}

#[test]
fn request_timeout_is_a_failure() {
    let sb = sandbox();
    let r = check(
        &sb,
        &format!(
            "url: {}/slow/5000\nrequest_timeout: 200ms",
            sb.get("SANDBOX_HTTP_URL")
        ),
    );
    r.assert_code(1);
    assert!(out(&r).contains("request_timeout"), "{}", out(&r));
}

#[test]
fn check_rejects_bad_parameters() {
    let sb = sandbox();
    let r = check(
        &sb,
        "url: ftp://example.com/x\nbody_matches: '(unclosed'\nvia: nope",
    );
    r.assert_code(2);
    let o = out(&r);
    assert!(o.contains("not an http or https URL"), "{o}");
    assert!(o.contains("invalid regular expression"), "{o}");
    assert!(o.contains("no host `nope`"), "{o}");
}

#[test]
fn outputs_feed_later_steps() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let yaml = format!(
        r#"
        version: 1
        name: chain
        summary: Read the outputs of a probe
        steps:
          - id: first
            http.check: {{ url: "{url}/status/202", expect_status: 202 }}
          - id: second
            http.check:
              url: "{url}/status/{{{{ steps.first.status }}}}"
              expect_status: 202
              body_contains: "{{{{ steps.first.body }}}}"
        "#
    );
    Test::new()
        .with_sandbox(&sb)
        .runbook("chain", &yaml)
        .args(&["run", "chain", "--env", "sandbox", "--yes"])
        .run()
        .assert_code(0);
}

#[test]
fn insecure_against_a_protected_environment_is_a_warning() {
    let r = Test::new()
        .with_repo_environments()
        .runbook(
            "careless",
            r#"
            version: 1
            name: careless
            summary: Skip TLS verification
            steps:
              - id: probe
                http.check: { url: "{{ env.app_url }}/explore", insecure: true }
            "#,
        )
        .args(&["check"])
        .run();
    r.assert_code(0);
    assert!(r.stderr.contains("runbook::insecure-tls"), "{}", r.stderr);
    assert!(r.stderr.contains("`production`"), "{}", r.stderr);
}

#[test]
fn by_hand_a_url_that_holds_a_secret_goes_into_a_curl_config_file() {
    let yaml = "version: 1\nname: probe\nsummary: Probe a URL\n\
        inputs:\n  token: { description: An API token, secret: true }\n\
        steps:\n  - id: probe\n    http.check: { url: \"https://api.example.com/health?key={{ inputs.token }}\" }\n";
    let out = Test::new()
        .runbook("probe", yaml)
        .args(&["docs", "probe"])
        .run();
    out.assert_code(0);
    assert!(
        out.stdout.contains(
            "Write the line `url = \"https://api.example.com/health?key=$TOKEN\"` into the \
             file `url` (with `umask 077`)."
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("-w '%{http_code}\\n' -K url\n"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("'https://api.example.com"),
        "{}",
        out.stdout
    );
}
