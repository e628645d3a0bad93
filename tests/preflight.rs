//! `runbook preflight` against the sandbox: every check of db-password passes; a wrong
//! known_hosts, a closed database port or a closed HTTP port fails the matching check with a
//! clear reason; no secret value is ever printed. Failures come from test-specific
//! environments, never from stopping the shared services.

mod common;

use common::{Sandbox, Test, repo};

const RUNBOOK: &str = "db-password";

/// The sandbox environment, with the parts a test breaks given as arguments.
fn environments(sb: &Sandbox, known_hosts: &str, db_port: u16, app_url: &str) -> String {
    let s = sb.state.display();
    format!(
        r#"
        version: 1
        environments:
          sandbox:
            aws: {{ region: us-east-1, endpoint: "http://127.0.0.1:5000" }}
            hosts:
              app:
                address: 127.0.0.1
                port: 2222
                user: root
                key_file: {s}/ssh/client_ed25519
                known_hosts: {known_hosts}
                connect_timeout: 5s
            databases:
              main: {{ via: app, host: 127.0.0.1, port: {db_port}, name: musehub, user: musehub, sslmode: disable }}
            vars:
              ssm_prefix: /musehub/sandbox
              app_dir: {s}/musehub
              app_url: "{app_url}"
              app_ca_file: {s}/tls/ca.pem
              docker: docker
        "#
    )
}

fn shipped(sb: &Sandbox) -> Test {
    let text = std::fs::read_to_string(repo().join("runbooks/db-password.yaml")).unwrap();
    Test::new().with_sandbox(sb).runbook(RUNBOOK, &text)
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The row of `check` in the table: (result, reason).
fn row<'a>(stdout: &'a str, check: &str) -> (&'a str, &'a str) {
    let header = stdout.lines().next().unwrap();
    let result_at = header.find("RESULT").unwrap();
    let reason_at = header.find("REASON").unwrap();
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{check} ")))
        .unwrap_or_else(|| panic!("no `{check}` row in\n{stdout}"));
    (line[result_at..reason_at].trim(), &line[reason_at..])
}

#[test]
fn db_password_on_the_sandbox_passes_and_prints_no_secret() {
    let sb = common::sandbox();
    let before = common::ssm_value("/musehub/sandbox/DB_PASSWORD");
    let user_before = common::ssm_value("/musehub/sandbox/DB_USER");
    let t = shipped(&sb).args(&["preflight", RUNBOOK, "--env", "sandbox"]);
    // The sandbox app is shared: another suite's rotation may be redeploying it right now,
    // which is what the http check is there to notice. Ask again a few times before failing.
    let mut run = t.run();
    for _ in 0..5 {
        if run.code == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(3));
        run = t.run();
    }
    run.assert_code(0);
    for check in ["aws", "ssm read", "ssm write", "ssh", "database", "http"] {
        assert_eq!(row(&run.stdout, check).0, "pass", "{}", run.stdout);
    }
    // As the role the run will rotate, read from `DB_USER` (an alternating rotation may have
    // moved the app to another role), not the database's default user.
    let user_after = common::ssm_value("/musehub/sandbox/DB_USER");
    let reason = row(&run.stdout, "database").1.trim_end();
    assert!(
        [&user_before, &user_after]
            .iter()
            .any(|u| reason == format!("logged in as {u}")),
        "{}",
        run.stdout
    );
    assert!(row(&run.stdout, "http").1.contains("answered 200"));
    let after = common::ssm_value("/musehub/sandbox/DB_PASSWORD");
    for secret in [before, after] {
        assert!(
            !common::contains(&run.all_bytes(), &secret),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn an_unknown_host_key_fails_the_ssh_check() {
    let sb = common::sandbox();
    let t = shipped(&sb);
    let empty = t.dir.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();
    let run = t
        .environments(&environments(
            &sb,
            &empty.display().to_string(),
            5433,
            "https://127.0.0.1:1337",
        ))
        .args(&["preflight", RUNBOOK, "--env", "sandbox"])
        .run();
    run.assert_code(1);
    let (result, reason) = row(&run.stdout, "ssh");
    assert_eq!(result, "FAIL", "{}", run.stdout);
    assert!(
        reason.contains("the host key of `app`") && reason.contains("is not in"),
        "{reason}"
    );
    // SSM does not need the host: it still passes.
    assert_eq!(row(&run.stdout, "ssm read").0, "pass");
}

#[test]
fn a_closed_database_port_fails_the_database_check() {
    let sb = common::sandbox();
    let kh = sb.state.join("ssh/known_hosts").display().to_string();
    let port = closed_port();
    let run = shipped(&sb)
        .environments(&environments(&sb, &kh, port, "https://127.0.0.1:1337"))
        .args(&["preflight", RUNBOOK, "--env", "sandbox"])
        .run();
    run.assert_code(1);
    assert_eq!(row(&run.stdout, "ssh").0, "pass", "{}", run.stdout);
    let (result, reason) = row(&run.stdout, "database");
    assert_eq!(result, "FAIL", "{}", run.stdout);
    assert!(
        reason.contains("cannot log in to database `main`"),
        "{reason}"
    );
    let secret = common::ssm_value("/musehub/sandbox/DB_PASSWORD");
    assert!(!common::contains(&run.all_bytes(), &secret));
}

#[test]
fn a_closed_http_port_fails_the_http_check() {
    let sb = common::sandbox();
    let kh = sb.state.join("ssh/known_hosts").display().to_string();
    let url = format!("https://127.0.0.1:{}", closed_port());
    let run = shipped(&sb)
        .environments(&environments(&sb, &kh, 5433, &url))
        .args(&["preflight", RUNBOOK, "--env", "sandbox"])
        .run();
    run.assert_code(1);
    let (result, reason) = row(&run.stdout, "http");
    assert_eq!(result, "FAIL", "{}", run.stdout);
    assert!(reason.contains("request failed"), "{reason}");
    assert_eq!(row(&run.stdout, "database").0, "pass", "{}", run.stdout);
}

/// A check whose request is known whole before the run is made as the step makes it: a 503
/// where the step expects 200 fails (the app is failing now), it is not a warning.
#[test]
fn a_5xx_answer_fails_the_check_and_a_generated_password_is_skipped() {
    let sb = common::sandbox();
    let run = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "probe",
            r#"
            version: 1
            name: probe
            summary: A 503 and a login with a password only the run knows
            steps:
              - id: pw
                generate: { format: hex, bytes: 16 }
              - id: login
                psql: { database: main, password: "{{ steps.pw.value }}", sql: SELECT 1 }
              - id: health
                http.check: { url: "http://127.0.0.1:8080/status/503" }
            "#,
        )
        .args(&["preflight", "probe", "--env", "sandbox"])
        .run();
    run.assert_code(1);
    let (result, reason) = row(&run.stdout, "http");
    assert_eq!(result, "FAIL", "{}", run.stdout);
    assert!(reason.contains("503"), "{reason}");
    let (result, reason) = row(&run.stdout, "database");
    assert_eq!(result, "skip");
    assert_eq!(reason, "skipped: password known only at run time");
}

#[test]
fn an_unreachable_ssm_endpoint_fails_the_ssm_checks() {
    let sb = common::sandbox();
    let kh = sb.state.join("ssh/known_hosts").display().to_string();
    let port = closed_port();
    let envs = environments(&sb, &kh, 5433, "https://127.0.0.1:1337")
        .replace("http://127.0.0.1:5000", &format!("http://127.0.0.1:{port}"));
    let run = shipped(&sb)
        .environments(&envs)
        .args(&["preflight", RUNBOOK, "--env", "sandbox"])
        .run();
    run.assert_code(1);
    let (result, reason) = row(&run.stdout, "ssm read");
    assert_eq!(result, "FAIL", "{}", run.stdout);
    assert!(reason.contains("cannot reach SSM"), "{reason}");
}
