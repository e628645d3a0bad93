//! `http.request` against the sandbox's HTTP server (`/echo` answers with the method, headers
//! and body it got, as JSON), from here and through the sandbox's sshd (`via: app`).

mod common;

use base64::Engine;
use common::{Run, Sandbox, Test, sandbox, unique};

/// Run `steps` (YAML, indented as list items under `steps:`) with `--output json`.
fn run(sb: &Sandbox, inputs: &str, steps: &str, env: &[(&str, &str)]) -> Run {
    let yaml = format!(
        "version: 1\nname: call\nsummary: Call an API\n{inputs}steps:\n{}",
        common::unindent(steps)
    );
    // The step's own behaviour is under test: no preflight request before it (a test server
    // of one connection at a time would be busy with it).
    let mut t = Test::new().with_sandbox(sb).runbook("call", &yaml).args(&[
        "run",
        "call",
        "--env",
        "sandbox",
        "--yes",
        "--output",
        "json",
        "--no-preflight",
    ]);
    for (k, v) in env {
        t = t.env(k, v);
    }
    t.run()
}

/// What `/echo` received, from the `json` output of step `id`.
fn echoed(r: &Run, id: &str) -> serde_json::Value {
    r.finished(id)["outputs"]["json"].clone()
}

#[test]
fn get_post_json_and_put_text_and_outputs_feed_later_steps() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let r = run(
        &sb,
        "",
        &format!(
            r#"
            - id: get
              http.request: {{ method: GET, url: "{url}/echo?q=1" }}
            - id: post
              http.request:
                method: POST
                url: "{url}/echo"
                headers: {{ X-Request-Id: r-42 }}
                json: {{ text: "seen {{{{ steps.get.json.method }}}} {{{{ steps.get.status }}}}", ok: true }}
                expect_status: 200
                expect_json:
                  - {{ path: method, equals: POST }}
                  - {{ path: headers.content-type, equals: application/json }}
            - id: put
              http.request:
                method: put
                url: "{url}/echo"
                headers: {{ Content-Type: text/plain }}
                body: "path was {{{{ steps.get.json.path }}}}"
                body_contains: '"method": "PUT"'
            - id: read
              http.request:
                method: GET
                url: "{url}/status/204"
                expect_status: [200, 204]
            "#
        ),
        &[],
    );
    r.assert_code(0);

    let get = r.finished("get");
    assert_eq!(get["outputs"]["status"], 200);
    assert_eq!(echoed(&r, "get")["method"], "GET");
    assert_eq!(echoed(&r, "get")["path"], "/echo?q=1");
    assert_eq!(echoed(&r, "get")["body"], "");
    assert_eq!(
        get["outputs"]["headers"]["content-type"],
        "application/json"
    );

    // The mapping went as JSON, with the earlier step's outputs rendered into it.
    let post = echoed(&r, "post");
    assert_eq!(post["method"], "POST");
    assert_eq!(post["headers"]["x-request-id"], "r-42");
    let sent: serde_json::Value = serde_json::from_str(post["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({ "text": "seen GET 200", "ok": true })
    );

    let put = echoed(&r, "put");
    assert_eq!(put["method"], "PUT");
    assert_eq!(put["headers"]["content-type"], "text/plain");
    assert_eq!(put["body"], "path was /echo?q=1");
    // The body output is the text of the answer; the JSON output its parse.
    let body = r.finished("put")["outputs"]["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        put
    );

    let read = &r.finished("read")["outputs"];
    assert_eq!(read["status"], 204);
    assert_eq!(read["json"], serde_json::Value::Null, "no body, no JSON");
    assert_eq!(read["body"], "");
}

/// Every form of the secret a reader could recognise it in.
fn forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_string(),
        secret.to_uppercase(),
        secret.to_lowercase(),
        b64.encode(secret).trim_end_matches('=').to_string(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        b64.encode(format!("Bearer {secret}"))
            .trim_end_matches('=')
            .to_string(),
        hex.to_uppercase(),
        hex,
    ]
}

fn assert_no_leak(what: &str, bytes: &[u8], secret: &str) {
    let text = String::from_utf8_lossy(bytes);
    let lower = text.to_lowercase();
    for f in forms(secret) {
        assert!(
            !lower.contains(&f.to_lowercase()),
            "{what} holds the secret as `{f}`:\n{text}"
        );
    }
}

const TOKEN_INPUT: &str = "inputs:\n  token: { description: An API token, secret: true }\n";

#[test]
fn a_secret_header_is_masked_everywhere_and_makes_the_answer_secret() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let (https, ca) = (sb.get("SANDBOX_HTTPS_URL"), sb.get("SANDBOX_CA_FILE"));
    let secret = format!("tok{}", unique("canary").replace('-', ""));
    let steps = format!(
        r#"
        - id: notify
          http.request:
            method: POST
            url: "{url}/echo"
            headers: {{ Authorization: "Bearer {{{{ inputs.token }}}}", X-Upper: "{{{{ inputs.token | upper }}}}" }}
            json: {{ note: rotated }}
            # The server got the token: it says so in its answer.
            expect_json:
              - {{ path: method, equals: POST }}
              - {{ path: headers.authorization, equals: "Bearer {{{{ inputs.token }}}}" }}
        - id: after
          http.request:
            method: POST
            url: "{https}/status/202"
            ca_file: "{ca}"
            body: "answer was {{{{ steps.notify.status }}}}"
        - id: fail
          http.request:
            method: POST
            url: "{url}/status/403"
            headers: {{ Authorization: "Bearer {{{{ inputs.token }}}}" }}
        "#
    );
    let r = run(
        &sb,
        TOKEN_INPUT,
        &steps,
        &[("RUNBOOK_INPUT_TOKEN", &secret)],
    );
    r.assert_code(1);
    // The server got the token (it echoed it back): the answer's body is secret as a whole.
    let notify = &r.finished("notify")["outputs"];
    assert_eq!(notify["status"], 200);
    for o in ["json", "body"] {
        assert_eq!(notify[o], "••••••", "{o}: {notify}");
    }
    // Its headers do not repeat the token: they stay readable (but for text the secret body
    // holds too, like its content type, masked wherever it shows from then on).
    assert!(
        notify["headers"]["server"]
            .as_str()
            .unwrap()
            .starts_with("runbook-sandbox-httpd"),
        "{notify}"
    );
    // An answer to a request with no secret in it is public. (Text of a secret answer is
    // masked wherever it shows later, so a request to the same URL would be secret too.)
    let after = &r.finished("after")["outputs"];
    assert_eq!(after["status"], 202);
    assert_eq!(after["body"], "status 202");
    let fail = r.finished("fail");
    assert_eq!(fail["status"], "failed");
    assert_eq!(fail["error"], "unexpected answer: 403 Forbidden");
    r.abandon_unfinished();
    assert_no_leak(
        "the run (stdout, stderr, events, journal)",
        &r.all_bytes(),
        &secret,
    );

    // Plan, docs (by hand) and check show no value either.
    for args in [
        &["plan", "call", "--env", "sandbox"][..],
        &["docs", "call", "--env", "sandbox"][..],
    ] {
        let t = Test::new()
            .with_sandbox(&sb)
            .runbook(
                "call",
                &format!(
                    "version: 1\nname: call\nsummary: Call an API\n{TOKEN_INPUT}steps:\n{}",
                    common::unindent(&steps)
                ),
            )
            .env("RUNBOOK_INPUT_TOKEN", &secret)
            .args(args);
        let out = t.run();
        out.assert_code(0);
        assert_no_leak(&args.join(" "), &out.all_bytes(), &secret);
        if args[0] == "docs" {
            // By hand: the header goes into a file named in the text, the command names it.
            assert!(
                out.stdout.contains(
                    "Write the header line `Authorization: Bearer $TOKEN` into the file `headers`"
                ),
                "{}",
                out.stdout
            );
            assert!(out.stdout.contains(" -H @headers"), "{}", out.stdout);
        }
    }
}

#[test]
fn an_unexpected_status_fails_the_step_with_it() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let r = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "call",
            &format!(
                "version: 1\nname: call\nsummary: Call an API\nsteps:\n  - id: file\n    http.request: {{ method: POST, url: \"{url}/status/503\", expect_status: 201 }}\n"
            ),
        )
        .args(&["run", "call", "--env", "sandbox", "--yes"])
        .run();
    r.assert_code(1);
    assert!(
        r.stderr
            .contains("step `file` failed: unexpected answer: 503 Service Unavailable"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("body: status 503"), "{}", r.stderr);

    // A JSON expectation that does not hold says where and what.
    let r = run(
        &sb,
        "",
        &format!(
            r#"
            - id: file
              http.request:
                method: POST
                url: "{url}/echo"
                json: {{ a: 1 }}
                expect_json: [{{ path: method, equals: PUT }}]
            "#
        ),
        &[],
    );
    r.assert_code(1);
    assert_eq!(
        r.finished("file")["error"],
        "unexpected answer: `method` is `\"POST\"`, expected `\"PUT\"`"
    );
}

#[test]
fn via_a_host_sends_from_it_through_a_tunnel() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let r = run(
        &sb,
        "",
        &format!(
            r#"
            - id: hook
              http.request:
                method: POST
                url: "{url}/echo"
                via: app
                body: from the host
            "#
        ),
        &[],
    );
    r.assert_code(0);
    let got = echoed(&r, "hook");
    assert_eq!(got["method"], "POST");
    assert_eq!(got["body"], "from the host");
    // The URL as written, though the request went to the tunnel's local port.
    let authority = url.trim_start_matches("http://");
    assert_eq!(got["headers"]["host"], authority);

    // Preflight logs in to the host and reaches the endpoint from it, without sending the
    // request itself.
    let pre = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "call",
            &format!(
                "version: 1\nname: call\nsummary: Call an API\nsteps:\n  - id: hook\n    http.request: {{ method: POST, url: \"{url}/echo\", via: app }}\n"
            ),
        )
        .args(&["preflight", "call", "--env", "sandbox"])
        .run();
    pre.assert_code(0);
    let out = format!("{}{}", pre.stdout, pre.stderr);
    assert!(out.contains(&format!("{url}/echo (from app)")), "{out}");
    assert!(out.contains("reached; a HEAD of it answered 200"), "{out}");
}

#[test]
fn a_post_is_a_change_that_is_not_repeated_blindly() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let r = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "call",
            &format!(
                "version: 1\nname: call\nsummary: Call an API\nsteps:\n  - id: file\n    http.request: {{ method: POST, url: \"{url}/echo\" }}\n  - id: look\n    http.request: {{ method: GET, url: \"{url}/ok\" }}\n"
            ),
        )
        .args(&["plan", "call", "--env", "sandbox", "--output", "json"])
        .run();
    r.assert_code(0);
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let text = plan.to_string();
    assert!(text.contains(&format!("sends POST {url}/echo")), "{text}");
    assert!(text.contains("read-only"), "{text}");
}

#[test]
fn a_failure_shows_nothing_of_an_answer_to_a_request_that_carried_a_secret() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let secret = format!("tok{}", unique("canary").replace('-', ""));
    // What the API hands back: a value no mask knows (a token it just made, say), which the
    // request does not show either (the plan shows its body): the echo's `reversed`.
    let fresh: String = "fresh-Q7rK2Lp9Wz4Xv8Nc".chars().rev().collect();
    let r = run(
        &sb,
        TOKEN_INPUT,
        &format!(
            r#"
            - id: mint
              http.request:
                method: POST
                url: "{url}/echo"
                headers: {{ Authorization: "Bearer {{{{ inputs.token }}}}" }}
                body: "{fresh}"
                expect_json:
                  - {{ path: reversed, equals: other }}
            "#
        ),
        &[("RUNBOOK_INPUT_TOKEN", &secret)],
    );
    r.assert_code(1);
    let mint = r.finished("mint");
    assert_eq!(
        mint["error"],
        "unexpected answer: `reversed` is another value (not shown: the answer is secret), \
         expected `\"other\"`"
    );
    assert_eq!(
        mint["detail"],
        "body: not shown (the answer to a request that carried a secret may hold one)"
    );
    r.abandon_unfinished();
    let all = String::from_utf8_lossy(&r.all_bytes()).into_owned();
    assert!(!all.contains("Q7rK2Lp9"), "{all}");
}

#[test]
fn a_public_answer_shows_the_value_found_cut_to_one_line() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let long = "x".repeat(500);
    let r = run(
        &sb,
        "",
        &format!(
            r#"
            - id: get
              http.request:
                method: POST
                url: "{url}/echo"
                body: "{long}"
                expect_json:
                  - {{ path: body, equals: other }}
            "#
        ),
        &[],
    );
    r.assert_code(1);
    let shown = format!("\"{}", "x".repeat(119));
    assert_eq!(
        r.finished("get")["error"],
        format!("unexpected answer: `body` is `{shown} …`, expected `\"other\"`")
    );
}

/// A server that answers 200 with a body it announces longer than it sends, then waits.
fn cut_short_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"token\": \"abc",
            );
            let _ = stream.flush();
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
    });
    format!("http://{addr}")
}

#[test]
fn an_answer_cut_short_fails_the_step_instead_of_passing_half_a_body_on() {
    let sb = sandbox();
    let url = cut_short_server();
    let r = run(
        &sb,
        "",
        &format!(
            r#"
            - id: get
              http.request: {{ method: GET, url: "{url}/token", request_timeout: 1s }}
            "#
        ),
        &[],
    );
    r.assert_code(1);
    let get = r.finished("get");
    assert_eq!(get["status"], "failed");
    assert_eq!(
        get["error"],
        "the answer (200 OK) did not arrive in full: its body did not end within 1s \
         (`request_timeout`)"
    );
}

#[test]
fn by_hand_a_url_that_holds_a_secret_goes_into_a_curl_config_file() {
    let yaml = format!(
        "version: 1\nname: call\nsummary: Call an API\n{TOKEN_INPUT}steps:\n{}",
        common::unindent(
            r#"
            - id: read
              http.request:
                method: GET
                url: "https://api.example.com/v1/items?key={{ inputs.token }}"
            "#
        )
    );
    let out = Test::new()
        .runbook("call", &yaml)
        .args(&["docs", "call"])
        .run();
    out.assert_code(0);
    assert!(
        out.stdout.contains(
            "Write the line `url = \"https://api.example.com/v1/items?key=$TOKEN\"` into the \
             file `url` (with `umask 077`)."
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("curl -sS -w '\\n%{http_code}\\n' -K url\n"),
        "{}",
        out.stdout
    );
    // Neither typed onto the command line nor left unexpanded inside single quotes.
    assert!(
        !out.stdout.contains("'https://api.example.com"),
        "{}",
        out.stdout
    );
}

/// A server that answers every request 200 and hands each request's head and body to `tx`.
fn recording_server() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(300)));
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&got).into_owned());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (format!("http://{addr}"), rx)
}

#[test]
fn preflight_sends_a_bare_head_without_the_credentials_of_the_request() {
    let (url, rx) = recording_server();
    let authority = url.trim_start_matches("http://");
    let yaml = format!(
        "version: 1\nname: call\nsummary: Call an API\nsteps:\n  - id: hook\n    http.request:\n      method: POST\n      url: \"http://deploy:hunter2hunter2@{authority}/hook?x=1\"\n      headers: {{ X-Token: abcdefgh12345678 }}\n      json: {{ text: filed }}\n"
    );
    let pre = Test::new()
        .runbook("call", &yaml)
        .environments("version: 1\nenvironments:\n  lab:\n    description: A lab\n")
        .args(&["preflight", "call", "--env", "lab"])
        .run();
    pre.assert_code(0);
    let got: Vec<String> = rx.try_iter().collect();
    assert_eq!(got.len(), 1, "{got:?}");
    let head = got[0].to_ascii_lowercase();
    assert!(head.starts_with("head /hook?x=1 http/1.1\r\n"), "{head}");
    for absent in ["authorization", "x-token", "content-type", "filed"] {
        assert!(!head.contains(absent), "{absent}: {head}");
    }
}

#[test]
fn a_header_or_url_rendered_with_a_line_break_is_refused_before_anything_is_sent() {
    let (url, rx) = recording_server();
    let inputs = "inputs:\n  v: { description: A value }\n";
    for (params, error) in [
        (
            format!(
                "{{ method: POST, url: \"{url}/hook\", headers: {{ X-Note: \"{{{{ inputs.v }}}}\" }} }}"
            ),
            "the value of header `X-Note` holds a character a header cannot carry (a line \
             break, a control or a non-ASCII character); nothing was sent",
        ),
        (
            format!("{{ method: POST, url: \"{url}/hook?note={{{{ inputs.v }}}}\" }}"),
            "the rendered URL holds a control character (a line break?); nothing was sent",
        ),
    ] {
        let yaml = format!(
            "version: 1\nname: call\nsummary: Call an API\n{inputs}steps:\n  - id: hook\n    http.request: {params}\n"
        );
        let r = Test::new()
            .runbook("call", &yaml)
            .environments("version: 1\nenvironments:\n  lab:\n    description: A lab\n")
            .env("RUNBOOK_INPUT_V", "a\r\nX-Injected: 1")
            .args(&[
                "run",
                "call",
                "--env",
                "lab",
                "--yes",
                "--output",
                "json",
                "--no-preflight",
            ])
            .run();
        r.assert_code(1);
        assert_eq!(
            r.finished("hook")["error"],
            error.replace("{url}", &url),
            "{params}"
        );
    }
    let got: Vec<String> = rx.try_iter().collect();
    assert!(got.is_empty(), "{got:?}");
}

/// A server that answers every request with `answer` (a whole HTTP response).
fn answering_server(answer: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_header_that_carries_a_credential_back_makes_the_headers_secret() {
    let url = answering_server(
        "HTTP/1.1 201 Created\r\nX-Subject-Token: gAAAAABnewtoken7Qk2\r\n\
         Set-Cookie: session=Zr8mK2pW9xL4vN7q; HttpOnly\r\nContent-Length: 2\r\n\
         Connection: close\r\n\r\nok",
    );
    let plain = answering_server(
        "HTTP/1.1 200 OK\r\nX-Request-Id: r-42\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let yaml = format!(
        "version: 1\nname: call\nsummary: Call an API\nsteps:\n  - id: login\n    http.request: {{ method: POST, url: \"{url}/v3/auth/tokens\" }}\n  - id: look\n    http.request: {{ method: GET, url: \"{plain}/ok\" }}\n"
    );
    let r = Test::new()
        .runbook("call", &yaml)
        .environments("version: 1\nenvironments:\n  lab:\n    description: A lab\n")
        .args(&[
            "run",
            "call",
            "--env",
            "lab",
            "--yes",
            "--output",
            "json",
            "--no-preflight",
        ])
        .run();
    r.assert_code(0);
    assert_eq!(r.finished("login")["outputs"]["headers"], "••••••");
    // Headers that carry nothing of the kind stay readable.
    assert_eq!(
        r.finished("look")["outputs"]["headers"]["x-request-id"],
        "r-42"
    );
    let all = String::from_utf8_lossy(&r.all_bytes()).into_owned();
    for token in ["newtoken7Qk2", "Zr8mK2pW9xL4vN7q"] {
        assert!(!all.contains(token), "{token}: {all}");
    }
}

#[test]
fn by_hand_two_secret_headers_go_into_one_file_read_once() {
    let yaml = format!(
        "version: 1\nname: call\nsummary: Call an API\n{TOKEN_INPUT}steps:\n{}",
        common::unindent(
            r#"
            - id: hook
              http.request:
                method: POST
                url: "https://api.example.com/v1/hook"
                headers: { Authorization: "Bearer {{ inputs.token }}", X-Api-Key: "{{ inputs.token }}", X-Id: r-1 }
            "#
        )
    );
    let out = Test::new()
        .runbook("call", &yaml)
        .args(&["docs", "call"])
        .run();
    out.assert_code(0);
    assert!(
        out.stdout.contains(
            "Write the header line `Authorization: Bearer $TOKEN` into the file `headers` (with \
             `umask 077`).\n\nAdd the header line `X-Api-Key: $TOKEN` to the file `headers`, on a \
             line of its own.\n\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("curl -sS -X POST -H @headers -H 'X-Id: r-1' -w"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_body_cut_at_its_limit_inside_a_secret_is_secret() {
    let secret = "Zq8xK2mW9pL4vN7rT1yB6cF3hJ5gD0sA";
    // The 64 KiB the step keeps end 5 characters into the secret.
    let body = format!("{}{secret}", "a".repeat(64 * 1024 - 5));
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let url = answering_server(Box::leak(answer.into_boxed_str()));
    let yaml = format!(
        "version: 1\nname: call\nsummary: Call an API\n{TOKEN_INPUT}steps:\n  - id: read\n    http.request: {{ method: GET, url: \"{url}/big\" }}\n"
    );
    let r = Test::new()
        .runbook("call", &yaml)
        .environments("version: 1\nenvironments:\n  lab:\n    description: A lab\n")
        .env("RUNBOOK_INPUT_TOKEN", secret)
        .args(&[
            "run",
            "call",
            "--env",
            "lab",
            "--yes",
            "--output",
            "json",
            "--no-preflight",
        ])
        .run();
    r.assert_code(0);
    assert_eq!(r.finished("read")["outputs"]["body"], "••••••");
}

/// A login that carried a secret gets a session back in headers no word list names (a
/// `Location` with a token in its fragment, an `X-Sess-Id`; the sandbox makes them from the
/// request's body, reversed, which no mask knows): the headers are secret, and the session
/// shows nowhere. An answer with only the headers every server sends stays readable.
#[test]
fn after_a_request_that_carried_a_secret_an_unusual_header_makes_the_headers_secret() {
    let sb = sandbox();
    let url = sb.get("SANDBOX_HTTP_URL");
    let secret = format!("pw{}", unique("login").replace('-', ""));
    let steps = format!(
        r#"
        - id: login
          http.request:
            method: POST
            url: "{url}/login"
            body: "{{{{ inputs.token }}}}"
        - id: plain
          http.request:
            method: POST
            url: "{url}/ok"
            body: "{{{{ inputs.token }}}}"
        "#
    );
    let r = run(
        &sb,
        TOKEN_INPUT,
        &steps,
        &[("RUNBOOK_INPUT_TOKEN", &secret)],
    );
    r.abandon_unfinished();
    r.assert_code(0);
    assert_eq!(r.finished("login")["outputs"]["headers"], "••••••");
    // The second answer has only the headers every server sends: its headers stay an open
    // output (their values that the first, secret, headers also had are masked from then on).
    let plain = &r.finished("plain")["outputs"]["headers"];
    assert_eq!(plain["content-length"], "2", "{plain}");
    let session: String = secret.chars().rev().collect();
    let all = r.all_bytes();
    assert_no_leak("the run's output and files", &all, &secret);
    assert_no_leak("the run's output and files", &all, &session);
}
