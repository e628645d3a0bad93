//! Notifications, against the sandbox's stand-in chat webhook (scripts/sandbox.d/httpd.py,
//! which accepts only the token of the URL seeded in SSM and appends what it accepted to
//! `SANDBOX_NOTIFY_LOG`): `webhook-secret` tells the owners before the key changes, or asks a
//! person when the environment has no target; `announce: true` brackets every changing run
//! with a start and an end message, whatever the end; a refused URL is a clear failure (the
//! notice) or a warning (an announcement); and the webhook's URL, which is its credential,
//! never appears in anything the tool wrote.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use base64::Engine;
use common::{Run, Sandbox, Test, sandbox, shipped, ssm_value, unique};
use runbook::engine::event::Event;

/// The webhook key, the app and the notice log are shared: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const NOTIFY_PARAM: &str = "/musehub-ops/sandbox/NOTIFY_WEBHOOK_URL";

/// What the stand-in webhook accepted so far, oldest first.
fn notices(sb: &Sandbox) -> Vec<serde_json::Value> {
    std::fs::read_to_string(sb.get("SANDBOX_NOTIFY_LOG"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The notices accepted since `before` of them were there.
fn new_notices(sb: &Sandbox, before: usize) -> Vec<String> {
    notices(sb)
        .into_iter()
        .skip(before)
        .map(|n| n["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// One call to the sandbox's SSM API, its JSON body sent on stdin (a value never in argv).
fn ssm_call(target: &str, body: &serde_json::Value) -> serde_json::Value {
    let mut child = Command::new("curl")
        .args(["-s", "-X", "POST", "http://127.0.0.1:5000/", "--data-binary", "@-"])
        .args(["-H", &format!("X-Amz-Target: AmazonSSM.{target}")])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn ssm_put_secure(name: &str, value: &str) {
    ssm_put(name, value, "SecureString");
}

fn ssm_put(name: &str, value: &str, kind: &str) {
    let r = ssm_call(
        "PutParameter",
        &serde_json::json!({"Name": name, "Value": value, "Type": kind, "Overwrite": true}),
    );
    assert!(r["Version"].is_number(), "PutParameter {name}: {r}");
}

/// A parameter's version and `LastModifiedDate` (seconds since the epoch).
fn ssm_meta(name: &str) -> (i64, f64) {
    let r = ssm_call(
        "GetParameter",
        &serde_json::json!({"Name": name, "WithDecryption": false}),
    );
    let p = &r["Parameter"];
    (
        p["Version"].as_i64().unwrap(),
        p["LastModifiedDate"].as_f64().unwrap(),
    )
}

/// The shipped runbooks on the sandbox, with environments.yaml changed by `edit`.
fn shipped_with(sb: &Sandbox, edit: impl Fn(String) -> String) -> Test {
    let t = shipped(sb);
    let path = t.runbooks_dir().join("environments.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit changed environments.yaml");
    std::fs::write(&path, edited).unwrap();
    t
}

fn announcing(text: String) -> String {
    text.replace("      announce: false ", "      announce: true ")
}

fn without_notify(text: String) -> String {
    let re = regex::Regex::new(r"(?m)^    notify:.*\n(      .*\n)*").unwrap();
    re.replace(&text, "").into_owned()
}

fn notify_parameter(name: &str) -> impl Fn(String) -> String + '_ {
    move |text: String| text.replace(NOTIFY_PARAM, name)
}

/// Every form of a secret a reader could recognise it in (as tests/masking.rs searches).
fn forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_string(),
        secret.chars().rev().collect(),
        b64.encode(secret).trim_end_matches('=').to_string(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        hex,
    ]
}

/// No form of any of `secrets`, in any letter case, also across line breaks, in what the
/// tool wrote (stdout, stderr, every file of the state directory).
fn assert_no_leak(run: &Run, secrets: &[(&str, &str)]) {
    let all = String::from_utf8_lossy(&run.all_bytes()).into_owned();
    let lower = all.to_lowercase();
    let joined = all.replace(['\n', '\r'], "").to_lowercase();
    for (what, secret) in secrets {
        for f in forms(secret) {
            let f = f.to_lowercase();
            assert!(
                !lower.contains(&f) && !joined.contains(&f),
                "{what} leaked (as {f})"
            );
        }
    }
}

/// The webhook's token: the part of its URL that is the credential.
fn token_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

fn run_id(run: &Run) -> String {
    let runs: Vec<_> = std::fs::read_dir(run.state.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// The webhook owners hear of the change through the notify target, before the key changes:
/// the notice arrived before SSM's new version was written, and the run's own events say
/// the post finished before the store began.
#[test]
fn webhook_owners_are_told_through_the_notify_target_before_the_key_changes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let key = "/musehub/sandbox/WEBHOOK_SECRET_KEY";
    let old = ssm_value(key);
    let (old_version, _) = ssm_meta(key);
    let url = ssm_value(NOTIFY_PARAM);
    let before = notices(&sb).len();

    let run = shipped(&sb)
        .args(&["run", "webhook-secret", "--env", "sandbox", "--yes"])
        .run();
    run.assert_code(0);

    let new = ssm_value(key);
    assert_ne!(new, old);
    let (version, changed_at) = ssm_meta(key);
    assert_eq!(version, old_version + 1, "one new version");
    let got: Vec<serde_json::Value> = notices(&sb).into_iter().skip(before).collect();
    assert_eq!(got.len(), 1, "one notice: {got:?}");
    let text = got[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Webhook signing key of sandbox changes now"),
        "{text}"
    );
    assert!(text.contains("re-register"), "{text}");
    assert_eq!(got[0]["content_type"], "application/json");
    assert!(
        got[0]["at"].as_f64().unwrap() < changed_at,
        "the notice arrived before SSM's new version was written"
    );

    // The run's own order: the post finished before the store started.
    let events = run.event_log();
    let finished = events
        .iter()
        .position(|e| matches!(e, Event::StepFinished { id, .. } if id == "tell_owners"))
        .expect("tell_owners finished");
    let stored = events
        .iter()
        .position(|e| matches!(e, Event::StepStarted { id, .. } if id == "store"))
        .expect("store started");
    assert!(finished < stored);
    // The manual fallback did not run: the notice was posted.
    assert!(
        run.stderr
            .contains("notify: skipped (when: not env.notify)"),
        "{}",
        run.stderr
    );
    assert_no_leak(
        &run,
        &[
            ("the webhook URL", &url),
            ("the webhook token", &token_of(&url)),
            ("the new key", &new),
            ("the old key", &old),
        ],
    );
}

/// Without a notify target, the manual step of old asks a person; a run nobody attends goes
/// on and lists it at the end as not done by a person. Nothing is posted.
#[test]
fn without_a_notify_target_the_manual_step_stands_in() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let before = notices(&sb).len();
    let run = shipped_with(&sb, without_notify)
        .args(&["run", "webhook-secret", "--env", "sandbox", "--yes"])
        .run();
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("Notify webhook owners before the key changes"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("tell_owners: skipped (when: env.notify)"),
        "{}",
        run.stderr
    );
    let audit = std::fs::read_to_string(run.state.join("audit.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert!(
        line["not_done_by_person"].to_string().contains("notify"),
        "{line}"
    );
    assert_eq!(new_notices(&sb, before), Vec::<String>::new());
}

/// A URL the webhook refuses (a wrong or revoked token) fails the notice before anything
/// changed, says so clearly, and shows neither the URL nor its token.
#[test]
fn a_refused_webhook_url_stops_the_rotation_before_any_change() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let key = "/musehub/sandbox/WEBHOOK_SECRET_KEY";
    let (version, _) = ssm_meta(key);
    let param = format!("/notify-test/{}/URL", unique("refused"));
    let live = ssm_value(NOTIFY_PARAM);
    let wrong = format!(
        "{}{}",
        &live[..live.rfind('/').unwrap() + 1],
        "Wr0ngT0kenWr0ngT0ken"
    );
    ssm_put_secure(&param, &wrong);
    let before = notices(&sb).len();

    let run = shipped_with(&sb, notify_parameter(&param))
        .args(&["run", "webhook-secret", "--env", "sandbox", "--yes"])
        .run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("step `tell_owners` failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("403"), "{}", run.stderr);
    assert_eq!(ssm_meta(key).0, version, "the key did not change");
    assert_eq!(new_notices(&sb, before), Vec::<String>::new());
    run.abandon_unfinished();
    assert_no_leak(
        &run,
        &[
            ("the wrong webhook URL", &wrong),
            ("its token", &token_of(&wrong)),
        ],
    );
}

/// A runbook of this test: a change (a parameter of its own), a check whose answer the input
/// chooses (`ok`, `fail`, `slow`), and a rollback.
fn probe(sb: &Sandbox, param: &str) -> String {
    let http = sb.get("SANDBOX_HTTP_URL");
    format!(
        r#"version: 1
name: announce-probe
summary: A change, a check that may fail, and its rollback
inputs:
  outcome: {{ description: how the check ends, choices: [ok, fail, slow] }}
steps:
  - id: change
    ssm.put: {{ name: "{param}", value: changed, type: String, overwrite: true }}
  - id: check
    on_failure: undo
    http.request:
      method: GET
      url: "{http}/{{{{ {{'ok': 'status/200', 'fail': 'status/500', 'slow': 'slow/3000'}}[inputs.outcome] }}}}"
      expect_status: 200
rollback:
  - id: undo
    ssm.put: {{ name: "{param}", value: undone, type: String, overwrite: true }}
"#
    )
}

fn announce_test(sb: &Sandbox, param: &str) -> Test {
    let t = shipped_with(sb, announcing);
    std::fs::write(
        t.runbooks_dir().join("announce-probe.yaml"),
        probe(sb, param),
    )
    .unwrap();
    t
}

/// `announce: true`: a run that succeeds and one that fails and rolls back are each bracketed
/// by a start and an end message naming the run, its operator and how it ended.
#[test]
fn announcements_bracket_a_run_that_succeeds_and_one_that_rolls_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let param = format!("/notify-test/{}", unique("announce"));
    let url = ssm_value(NOTIFY_PARAM);
    for (outcome, code, end) in [
        ("ok", 0, "succeeded."),
        ("fail", 1, "failed and was rolled back."),
    ] {
        let before = notices(&sb).len();
        let run = announce_test(&sb, &param)
            .args(&["run", "announce-probe", "--env", "sandbox", "--yes"])
            .args(&["--input", &format!("outcome={outcome}")])
            .run();
        run.assert_code(code);
        let id = run_id(&run);
        let got = new_notices(&sb, before);
        let about = format!("`announce-probe` on `sandbox` (run {id}, by ");
        assert_eq!(got.len(), 2, "{outcome}: {got:?}");
        assert!(
            got[0].starts_with(&format!("runbook: starting {about}")),
            "{got:?}"
        );
        assert!(
            got[1].starts_with(&format!("runbook: finished {about}")) && got[1].contains(end),
            "{outcome}: {got:?}"
        );
        assert!(
            !run.stderr.contains("could not be announced"),
            "{}",
            run.stderr
        );
        assert_no_leak(
            &run,
            &[("the webhook URL", &url), ("its token", &token_of(&url))],
        );
    }
    assert_eq!(ssm_value(&param), "undone", "the failed run rolled back");
}

/// Ctrl-C during a run still announces its end, as interrupted.
#[test]
fn an_interrupted_run_announces_its_end() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let param = format!("/notify-test/{}", unique("interrupt"));
    let before = notices(&sb).len();
    let t = announce_test(&sb, &param).args(&[
        "run",
        "announce-probe",
        "--env",
        "sandbox",
        "--yes",
        "--input",
        "outcome=slow",
    ]);
    let child = t
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once the start was announced (the run is under way).
    let mut started = false;
    for _ in 0..200 {
        if new_notices(&sb, before)
            .iter()
            .any(|n| n.starts_with("runbook: starting `announce-probe`"))
        {
            started = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(started, "the start was announced");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let got = new_notices(&sb, before);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[1].starts_with("runbook: finished `announce-probe`")
            && got[1].contains("was interrupted (Ctrl-C)")
            && got[1].contains("runbook resume"),
        "{got:?}"
    );
}

/// A refused or missing webhook URL makes an announcement a warning, never a failed run; the
/// warning says why without the URL. A read-only runbook is never announced.
#[test]
fn a_failed_announcement_is_a_warning_and_a_read_only_run_is_not_announced() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let param = format!("/notify-test/{}", unique("warn"));
    let live = ssm_value(NOTIFY_PARAM);
    let url_param = format!("/notify-test/{}/URL", unique("wrong"));
    let wrong = format!(
        "{}{}",
        &live[..live.rfind('/').unwrap() + 1],
        "N0tTheT0kenN0tTheT0ken"
    );
    ssm_put_secure(&url_param, &wrong);
    let before = notices(&sb).len();
    let t = announce_test(&sb, &param);
    let env = t.runbooks_dir().join("environments.yaml");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, text.replace(NOTIFY_PARAM, &url_param)).unwrap();
    let run = t
        .args(&["run", "announce-probe", "--env", "sandbox", "--yes"])
        .args(&["--input", "outcome=ok"])
        .run();
    run.assert_code(0);
    let id = run_id(&run);
    for when in ["the start", "the end"] {
        let line = format!(
            "warning: {when} of run {id} could not be announced to the notify target of `sandbox`: the target answered 403 (invalid_token); the webhook's URL was refused"
        );
        assert!(run.stderr.contains(&line), "{}", run.stderr);
    }
    assert!(run.stderr.contains(&url_param), "names the parameter");
    assert_no_leak(
        &run,
        &[("the wrong URL", &wrong), ("its token", &token_of(&wrong))],
    );

    // A parameter that does not exist: said so, and the run goes on.
    let missing = format!("/notify-test/{}/MISSING", unique("missing"));
    let t = announce_test(&sb, &param);
    let env = t.runbooks_dir().join("environments.yaml");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, text.replace(NOTIFY_PARAM, &missing)).unwrap();
    let run = t
        .args(&["run", "announce-probe", "--env", "sandbox", "--yes"])
        .args(&["--input", "outcome=ok"])
        .run();
    run.assert_code(0);
    assert!(
        run.stderr
            .contains(&format!("SSM parameter `{missing}` not found")),
        "{}",
        run.stderr
    );
    assert_eq!(new_notices(&sb, before), Vec::<String>::new());

    // Read-only: an audit changes nothing, and is not announced.
    let t = shipped_with(&sb, announcing).runbook(
        "read-only",
        r#"
        version: 1
        name: read-only
        summary: Reads a parameter
        steps:
          - id: user
            ssm.get: { name: "{{ env.ssm_prefix }}/DB_USER" }
        "#,
    );
    let run = t
        .args(&["run", "read-only", "--env", "sandbox", "--yes"])
        .run();
    run.assert_code(0);
    assert_eq!(new_notices(&sb, before), Vec::<String>::new());
}

/// environments.yaml: `notify:` names an SSM parameter (never the URL itself), and no var may
/// take the name templates see it under; each mistake at its line, with help. A URL written
/// there by mistake is a credential: placed by line and column, never shown.
#[test]
fn a_notify_section_that_is_not_a_parameter_name_is_refused() {
    let t = Test::new().environments(
        r#"
        version: 1
        environments:
          prod:
            notify:
              url_parameter: NOTIFY_WEBHOOK_URL
            vars:
              notify: yes
          staging:
            notify:
              url_parameter: https://hooks.example.com/services/T0/B0/Se3cretSe3cretSe3cret
        "#,
    );
    let run = t.args(&["check"]).run();
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("`url_parameter` of environment `prod` is not an SSM parameter name"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("environments.yaml:5:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "`url_parameter` of environment `staging` at runbooks/environments.yaml:10:22 holds a URL"
        ),
        "{}",
        run.stderr
    );
    assert_no_leak(&run, &[("the URL's token", "Se3cretSe3cretSe3cret")]);
    assert!(
        run.stderr
            .contains("environment `prod` has a var named `notify`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("environments.yaml:7:"),
        "{}",
        run.stderr
    );
}

/// The capability-URL recipe of the README, with the URL stored by mistake as a plain String:
/// `secret: true` on the read keeps it masked in the plan, the gate, the progress and every
/// file; the post arrives, with its Markdown text whole.
#[test]
fn a_webhook_url_stored_as_a_plain_string_is_still_masked() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = sandbox();
    let live = ssm_value(NOTIFY_PARAM);
    let param = format!("/notify-test/{}/URL", unique("string"));
    ssm_put(&param, &live, "String");
    let before = notices(&sb).len();
    let t = shipped_with(&sb, notify_parameter(&param)).runbook(
        "post",
        r#"
        version: 1
        name: post
        summary: Post a Markdown text to the notify target
        steps:
          - id: notify_url
            when: env.notify
            ssm.get: { name: "{{ env.notify.url_parameter }}", secret: true }
          - id: post
            when: env.notify
            http.request:
              method: POST
              url: "{{ steps.notify_url.value }}"
              ca_file: "{{ env.notify.ca_file }}"
              json: { text: "*Incident* on {{ env.name }}:\n- `a` & <b> \"quoted\"" }
              expect_status: 200
        "#,
    );
    let run = t.args(&["run", "post", "--env", "sandbox", "--yes"]).run();
    run.assert_code(0);
    assert_eq!(
        new_notices(&sb, before),
        vec!["*Incident* on sandbox:\n- `a` & <b> \"quoted\"".to_string()]
    );
    assert!(run.stderr.contains("post: POST ••••••"), "{}", run.stderr);
    assert_no_leak(
        &run,
        &[("the webhook URL", &live), ("its token", &token_of(&live))],
    );
}

/// Ctrl-C while an announcement waits on a slow chat service gives the post up: the run stops
/// before its first step, the end's post is tried, and a second Ctrl-C gives that up too.
#[test]
fn ctrl_c_gives_up_an_announcement_that_hangs() {
    let sb = sandbox();
    let param = format!("/notify-test/{}", unique("hang"));
    let url_param = format!("/notify-test/{}/URL", unique("slow"));
    // The HTTPS test server's endpoint that answers after 20 s (longer than a post may take).
    ssm_put_secure(&url_param, "https://localhost:8443/slow/20000");
    let t = announce_test(&sb, &param);
    let env = t.runbooks_dir().join("environments.yaml");
    let text = std::fs::read_to_string(&env).unwrap();
    std::fs::write(&env, text.replace(NOTIFY_PARAM, &url_param)).unwrap();
    let t = t.args(&[
        "run",
        "announce-probe",
        "--env",
        "sandbox",
        "--yes",
        "--input",
        "outcome=ok",
    ]);
    let child = t
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    // Once the run exists (its journal), the start's post is under way.
    let runs = t.state_dir().join("runs");
    for _ in 0..200 {
        if std::fs::read_dir(&runs).is_ok_and(|mut d| d.next().is_some()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let interrupt = || {
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    interrupt();
    std::thread::sleep(std::time::Duration::from_millis(500));
    interrupt();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    for when in ["the start", "the end"] {
        assert!(
            stderr.contains(&format!("warning: {when} of run"))
                && stderr.contains("given up at Ctrl-C"),
            "{when}: {stderr}"
        );
    }
    assert!(
        stderr.contains("interrupted before step `change`"),
        "{stderr}"
    );
}

/// A webhook URL written anywhere in a `notify:` section by mistake (under a wrong key, twice,
/// in a list) is the webhook's credential: every diagnostic about it says where, never shows
/// the lines, in `check`, `plan` and their JSON.
#[test]
fn a_webhook_url_misplaced_in_notify_is_never_shown_by_a_diagnostic() {
    let url = "https://hooks.example.com/services/T0/B0/SECRETxyzABC987";
    for notify in [
        format!("      url: {url}\n"),
        format!("      url_parameter: /a\n      url_parameter: {url}\n"),
        format!("      url_parameter: [{url}]\n"),
        "      url_parameter: hooks.example.com/services/T0/B0/SECRETxyzABC987\n".to_string(),
    ] {
        let envs = format!(
            "version: 1\nenvironments:\n  atk:\n    aws: {{ region: us-east-1 }}\n    notify:\n{notify}    vars: {{ a: b }}\n"
        );
        let t = Test::new().environments(&envs).runbook(
            "g",
            "version: 1\nname: g\nsummary: x\nsteps:\n  - id: a\n    generate: { format: hex }\n",
        );
        for args in [
            &["check"][..],
            &["check", "--output", "json"],
            &["plan", "g", "--env", "atk"],
        ] {
            let run = t.again(args);
            assert_ne!(run.code, 0, "{args:?}: {}", run.stderr);
            let all = format!("{}{}", run.stdout, run.stderr);
            assert!(!all.contains("SECRETxyz"), "{args:?}:\n{all}");
            assert!(all.contains("environments.yaml"), "{args:?}:\n{all}");
        }
    }
}
