//! `ssm.get` and `ssm.put` against the sandbox's SSM (moto) through the real binary. What is in
//! SSM is checked straight against the service, not only through the tool.

mod common;

use std::process::Command;

use common::{Run, Sandbox, Test};

/// A parameter name no other test (or earlier run) uses.
fn unique(tag: &str) -> String {
    format!("/runbook-test/{}", common::unique(tag))
}

/// A planted value that is easy to search for.
fn planted(tag: &str) -> String {
    format!("planted-{tag}-{}", unique("v").replace('/', "_"))
}

/// Environments with the sandbox's SSM, and one whose endpoint refuses connections.
const ENVIRONMENTS: &str = "
    version: 1
    environments:
      sandbox:
        aws:
          region: us-east-1
          endpoint: http://127.0.0.1:5000
      nowhere:
        aws:
          region: us-east-1
          endpoint: http://127.0.0.1:1
";

fn test(sb: &Sandbox) -> Test {
    Test::new().with_sandbox(sb).environments(ENVIRONMENTS)
}

/// One SSM API call straight to moto (which ignores signatures), as JSON.
fn moto(sb: &Sandbox, target: &str, body: serde_json::Value) -> serde_json::Value {
    let url = sb.get("AWS_ENDPOINT_URL_SSM");
    let out = Command::new("curl")
        .args(["-sS", "-X", "POST", &url])
        .args(["-H", &format!("X-Amz-Target: AmazonSSM.{target}")])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["-d", &body.to_string()])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from SSM")
}

/// The stored (decrypted) value and version of a parameter.
fn stored(sb: &Sandbox, name: &str) -> (String, i64) {
    let r = moto(
        sb,
        "GetParameter",
        serde_json::json!({"Name": name, "WithDecryption": true}),
    );
    let p = &r["Parameter"];
    assert!(p.is_object(), "no parameter {name}: {r}");
    (
        p["Value"].as_str().unwrap().to_string(),
        p["Version"].as_i64().unwrap(),
    )
}

fn seed(sb: &Sandbox, name: &str, value: &str, kind: &str) {
    moto(
        sb,
        "PutParameter",
        serde_json::json!({"Name": name, "Value": value, "Type": kind, "Overwrite": true}),
    );
}

fn contains(run: &Run, needle: &str) -> bool {
    let all = run.all_bytes();
    all.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn both(run: &Run) -> String {
    format!("{}\n{}", run.stdout, run.stderr)
}

#[test]
fn put_then_get_round_trip_and_versions_increment() {
    let sb = common::sandbox();
    let name = unique("roundtrip");
    let runbook = format!(
        r#"
        version: 1
        name: rt
        summary: put twice, read back
        inputs:
          v:
            description: the value
        steps:
          - id: first
            ssm.put:
              name: {name}
              value: "{{{{ inputs.v }}}}-1"
              type: String
          - id: second
            ssm.put:
              name: {name}
              value: "{{{{ inputs.v }}}}-2"
              type: String
              overwrite: true
          - id: read
            ssm.get:
              name: {name}
        "#
    );
    let v = planted("rt");
    let t = test(&sb).runbook("rt", &runbook).args(&[
        "run",
        "rt",
        "--env",
        "sandbox",
        "--yes",
        "--input",
        &format!("v={v}"),
    ]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(0);
    assert_eq!(stored(&sb, &name), (format!("{v}-2"), 2));
    // A String parameter is public: its value is in the journal's outputs.
    assert!(
        contains(&run, &format!("{v}-2")),
        "{v}\n{}",
        String::from_utf8_lossy(&run.all_bytes())
    );
    let journal = String::from_utf8_lossy(&run.all_bytes()).into_owned();
    assert!(
        journal.contains(r#""version":1"#) && journal.contains(r#""version":2"#),
        "{journal}"
    );
    assert!(journal.contains(r#""type":"String""#), "{journal}");
}

#[test]
fn secure_string_values_are_masked_everywhere() {
    let sb = common::sandbox();
    let put_name = unique("secure-put");
    let get_name = unique("secure-get");
    let put_value = planted("put");
    let got_value = planted("get");
    seed(&sb, &get_name, &got_value, "SecureString");
    let runbook = format!(
        r#"
        version: 1
        name: sec
        summary: secrets in and out
        inputs:
          v:
            description: the value
        steps:
          - id: put
            ssm.put:
              name: {put_name}
              value: "{{{{ inputs.v }}}}"
          - id: get
            ssm.get:
              name: {get_name}
          - id: show
            manual.confirm:
              instructions: "got {{{{ steps.get.value }}}} at version {{{{ steps.get.version }}}}"
              unattended: skip
        "#
    );
    let t = test(&sb).runbook("sec", &runbook).args(&[
        "run",
        "sec",
        "--env",
        "sandbox",
        "--yes",
        "--input",
        &format!("v={put_value}"),
    ]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(0);
    assert_eq!(stored(&sb, &put_name).0, put_value);
    // The journal exists, so the searches below are not vacuous.
    assert!(!common::walk(&run.state).is_empty(), "no journal written");
    assert!(
        !contains(&run, &put_value),
        "put value leaked:\n{}",
        both(&run)
    );
    assert!(
        !contains(&run, &got_value),
        "got value leaked:\n{}",
        both(&run)
    );
    let journal = String::from_utf8_lossy(&run.all_bytes()).into_owned();
    assert!(journal.contains(r#""type":"SecureString""#), "{journal}");
}

#[test]
fn existing_parameter_without_overwrite_fails_and_is_unchanged() {
    let sb = common::sandbox();
    let name = unique("exists");
    seed(&sb, &name, "original", "String");
    let runbook = format!(
        r#"
        version: 1
        name: ow
        summary: must not exist
        steps:
          - id: put
            ssm.put:
              name: {name}
              value: replacement
              type: String
              overwrite: false
        "#
    );
    let t = test(&sb).runbook("ow", &runbook).args(&[
        "run",
        "ow",
        "--env",
        "sandbox",
        "--yes",
        "--no-preflight",
    ]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(1);
    let text = both(&run);
    assert!(
        text.contains(&format!("SSM parameter `{name}` already exists")),
        "{text}"
    );
    assert!(
        text.contains("overwrite: true") && text.contains("if_exists: skip"),
        "{text}"
    );
    assert!(!text.contains("service error"), "{text}");
    assert!(!text.contains("replacement"), "{text}");
    assert_eq!(stored(&sb, &name), ("original".to_string(), 1));
}

#[test]
fn if_exists_skip_leaves_the_value_and_reports_skipped() {
    let sb = common::sandbox();
    let name = unique("skip");
    seed(&sb, &name, "original", "SecureString");
    seed(&sb, &name, "original-2", "SecureString");
    let fresh = unique("skip-fresh");
    let runbook = format!(
        r#"
        version: 1
        name: sk
        summary: only if absent
        steps:
          - id: kept
            ssm.put:
              name: {name}
              value: not-written
              if_exists: skip
          - id: created
            ssm.put:
              name: {fresh}
              value: written-value
              if_exists: skip
        "#
    );
    let t = test(&sb)
        .runbook("sk", &runbook)
        .args(&["run", "sk", "--env", "sandbox", "--yes"]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(0);
    assert_eq!(stored(&sb, &name), ("original-2".to_string(), 2));
    assert_eq!(stored(&sb, &fresh), ("written-value".to_string(), 1));
    let journal = String::from_utf8_lossy(&run.all_bytes()).into_owned();
    assert!(
        journal.contains(r#""version":2,"skipped":true"#),
        "{journal}"
    );
    assert!(
        journal.contains(r#""version":1,"skipped":false"#),
        "{journal}"
    );
    assert!(!journal.contains("not-written"), "{journal}");
}

#[test]
fn plan_shows_the_change_but_not_the_value() {
    let sb = common::sandbox();
    let name = unique("plan");
    let runbook = format!(
        r#"
        version: 1
        name: pl
        summary: plan only
        steps:
          - id: put
            ssm.put:
              name: {name}
              value: plan-planted-value
              if_exists: skip
        "#
    );
    let t = test(&sb)
        .runbook("pl", &runbook)
        .args(&["plan", "pl", "--env", "sandbox"]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(0);
    let text = both(&run);
    assert!(
        text.contains(&format!("SSM {name}: created if absent")),
        "{text}"
    );
    assert!(!contains(&run, "plan-planted-value"), "{text}");
}

#[test]
fn get_of_a_missing_parameter_names_it() {
    let sb = common::sandbox();
    let name = unique("missing");
    let runbook = format!(
        r#"
        version: 1
        name: miss
        summary: read nothing
        steps:
          - id: read
            ssm.get:
              name: {name}
        "#
    );
    let t = test(&sb)
        .runbook("miss", &runbook)
        .args(&["run", "miss", "--env", "sandbox", "--yes"]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(1);
    let text = both(&run);
    assert!(
        text.contains(&format!("SSM parameter `{name}` not found")),
        "{text}"
    );
    assert!(text.contains("region us-east-1"), "{text}");
    assert!(!text.contains("service error"), "{text}");
}

#[test]
fn unreachable_endpoint_fails_clearly_within_the_timeout() {
    let sb = common::sandbox();
    let name = unique("unreachable");
    let runbook = format!(
        r#"
        version: 1
        name: far
        summary: nobody answers
        steps:
          - id: put
            timeout: 60s
            ssm.put:
              name: {name}
              value: far-planted-value
        "#
    );
    let t = test(&sb)
        .runbook("far", &runbook)
        .args(&["run", "far", "--env", "nowhere", "--yes"]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(1);
    let text = both(&run);
    assert!(
        text.contains("cannot reach SSM at http://127.0.0.1:1"),
        "{text}"
    );
    assert!(!text.contains("timed out"), "{text}");
    assert!(!contains(&run, "far-planted-value"), "{text}");
}

#[test]
fn missing_credentials_say_how_to_get_some() {
    let sb = common::sandbox();
    let name = unique("nocreds");
    let runbook = format!(
        r#"
        version: 1
        name: nc
        summary: no credentials
        steps:
          - id: read
            ssm.get:
              name: {name}
        "#
    );
    let empty = tempfile::tempdir().unwrap();
    let nofile = empty.path().join("none").display().to_string();
    let t = test(&sb)
        .runbook("nc", &runbook)
        // Blank variables count as unset; the files do not exist.
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env("AWS_SESSION_TOKEN", "")
        .env("AWS_PROFILE", "")
        .env("AWS_CONFIG_FILE", &nofile)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nofile)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", "")
        .env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
        .args(&["run", "nc", "--env", "sandbox", "--yes"]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(1);
    let text = both(&run);
    assert!(
        text.contains("no AWS credentials for environment `sandbox`"),
        "{text}"
    );
    assert!(
        text.contains("AWS_PROFILE") && text.contains("aws sso login"),
        "{text}"
    );
}

#[test]
fn contradictory_overwrite_and_if_exists_is_refused_before_running() {
    let sb = common::sandbox();
    let name = unique("contradiction");
    let runbook = format!(
        r#"
        version: 1
        name: bad
        summary: contradictory
        steps:
          - id: put
            ssm.put:
              name: {name}
              value: x
              overwrite: true
              if_exists: skip
        "#
    );
    let t = test(&sb)
        .runbook("bad", &runbook)
        .args(&["run", "bad", "--env", "sandbox", "--yes"]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(2);
    let text = both(&run);
    assert!(
        text.contains("`overwrite: true` contradicts `if_exists: skip`"),
        "{text}"
    );
    // `if_exists:` is line 10 of the file.
    assert!(text.contains("bad.yaml:10:"), "{text}");
    let r = moto(&sb, "GetParameter", serde_json::json!({"Name": name}));
    assert!(r["Parameter"].is_null(), "nothing may run: {r}");
}

#[test]
fn check_time_name_and_unencrypted_secret_warnings() {
    let sb = common::sandbox();
    let runbook = r#"
        version: 1
        name: chk
        summary: check-time problems
        steps:
          - id: gen
            generate:
              format: hex
          - id: put
            ssm.put:
              name: /runbook-test/plain
              value: "{{ steps.gen.value }}"
              type: String
          - id: read
            ssm.get:
              name: DB_PASSWORD
    "#;
    let t = test(&sb).runbook("chk", runbook).args(&["check"]);
    // Keep `t`: its directory holds the state (journal) that `all_bytes` reads.
    let run = t.run();
    run.assert_code(2);
    let text = both(&run);
    assert!(
        text.contains("`type: String` stores it unencrypted"),
        "{text}"
    );
    assert!(
        text.contains("SSM parameter name `DB_PASSWORD` must start with `/`"),
        "{text}"
    );
    assert!(text.contains("chk.yaml:15:"), "{text}");
}

/// `public: true` reads a SecureString that is not a secret (an access key id kept beside its
/// secret key) and shows it in clear; `secret: true` masks a plain String (a webhook URL
/// someone stored without encryption). Without either, the type decides.
#[test]
fn public_and_secret_override_what_the_parameters_type_says() {
    let sb = common::sandbox();
    let id_name = unique("key-id");
    let url_name = unique("hook-url");
    let id_value = planted("id");
    let url_value = planted("url");
    seed(&sb, &id_name, &id_value, "SecureString");
    seed(&sb, &url_name, &url_value, "String");
    let runbook = format!(
        r#"
        version: 1
        name: types
        summary: a public SecureString and a secret String
        steps:
          - id: key_id
            ssm.get: {{ name: {id_name}, public: true }}
          - id: url
            ssm.get: {{ name: {url_name}, secret: true }}
        "#
    );
    let t = test(&sb)
        .runbook("types", &runbook)
        .args(&["run", "types", "--env", "sandbox", "--output", "json"]);
    let run = t.run();
    run.assert_code(0);
    let outputs = |id: &str| -> serde_json::Value {
        run.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "step_finished" && e["id"] == id)
            .unwrap_or_else(|| panic!("{id} finished:\n{}", run.stdout))["outputs"]
            .clone()
    };
    assert_eq!(
        outputs("key_id")["value"],
        id_value.as_str(),
        "shown in clear"
    );
    assert_eq!(outputs("url")["value"], "••••••", "masked");
    assert!(!contains(&run, &url_value), "the secret String leaked");
}
