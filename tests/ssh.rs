//! `ssh.exec` against the sandbox's sshd: outputs, expectations, secrets through `env`/`stdin`
//! (never in a local argv), host key refusal, unreachable hosts, one connection per host.

mod common;

use std::collections::BTreeSet;

use common::{ArgvSampler, Run, Sandbox, Test, sandbox, unique};

/// A sandbox environment file whose `app` host has the given extra fields.
fn environments(sb: &Sandbox, app_extra: &str) -> String {
    format!(
        "
        version: 1
        environments:
          sandbox:
            hosts:
              app:
                address: {}
                port: {}
                user: {}
                key_file: {}
{}
        ",
        sb.get("SANDBOX_SSH_HOST"),
        sb.get("SANDBOX_SSH_PORT"),
        sb.get("SANDBOX_SSH_USER"),
        sb.get("SANDBOX_SSH_KEY"),
        app_extra
            .lines()
            .map(|l| format!("                {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn run(sb: &Sandbox, yaml: &str) -> Run {
    Test::new()
        .with_sandbox(sb)
        .runbook("x", yaml)
        .args(&["run", "x", "--env", "sandbox", "--yes"])
        .run()
}

fn text(r: &Run) -> String {
    format!("{}\n{}", r.stdout, r.stderr)
}

#[test]
fn outputs_are_stdout_stderr_exit_code_and_json() {
    let sb = sandbox();
    let r = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: outputs
            steps:
              - id: a
                ssh.exec:
                  host: app
                  command: "echo hello; echo warn >&2; exit 3"
                  expect: { exit_code: [0, 3] }
              - id: b
                ssh.exec:
                  host: app
                  command: echo '{"status":"up","items":[{"n":1}]}'
                  expect:
                    json:
                      - { path: status, equals: up }
                      - { path: items.0.n, equals: 1 }
              - id: c
                ssh.exec:
                  host: app
                  command: "echo 'got {{ steps.a.stdout }} {{ steps.a.exit_code }} {{ steps.b.json.status }}'"
            "#,
        )
        .args(&["run", "x", "--env", "sandbox", "--yes", "--output", "json"])
        .run();
    r.assert_code(0);
    let a = r.finished("a");
    assert_eq!(a["outputs"]["stdout"], "hello");
    assert_eq!(a["outputs"]["stderr"], "warn");
    assert_eq!(a["outputs"]["exit_code"], 3);
    assert_eq!(a["outputs"]["json"], serde_json::Value::Null);
    assert_eq!(r.finished("b")["outputs"]["json"]["items"][0]["n"], 1);
    assert_eq!(r.finished("c")["outputs"]["stdout"], "got hello 3 up");
}

#[test]
fn a_failed_exit_code_fails_the_run_with_the_whole_stderr() {
    let sb = sandbox();
    let r = run(
        &sb,
        r#"
        version: 1
        name: x
        summary: failing command
        steps:
          - id: boom
            ssh.exec:
              host: app
              command: "for i in $(seq 1 30); do echo problem-$i >&2; done; exit 4"
          - id: never
            ssh.exec: { host: app, command: echo should-not-run }
        "#,
    );
    r.assert_code(1);
    let t = text(&r);
    assert!(t.contains("the command exited with 4 (expected 0)"), "{t}");
    // All of it, under the failure: the first error is often the one that matters.
    let detail = &t[t.find("stderr:").expect("the stderr under the failure")..];
    for i in 1..=30 {
        assert!(
            detail.contains(&format!("problem-{i}\n")),
            "problem-{i}: {t}"
        );
    }
    assert!(!t.contains("should-not-run"), "{t}");
}

#[test]
fn expectations_pass_and_fail_with_the_failed_one_named() {
    let sb = sandbox();
    let ok = run(
        &sb,
        r#"
        version: 1
        name: x
        summary: expectations that hold
        steps:
          - id: a
            ssh.exec:
              host: app
              command: "echo 'service: active (running)'; echo 'note: fine' >&2"
              expect:
                stdout_contains: active
                stdout_matches: '(?m)^service: active'
                stdout_not_matches: failed
                stderr_not_matches: '(?i)error'
        "#,
    );
    ok.assert_code(0);

    for (expect, message) in [
        (
            "stdout_contains: inactive",
            "expect.stdout_contains: stdout does not contain `inactive`",
        ),
        (
            "stdout_matches: '^down'",
            "expect.stdout_matches: stdout does not match `^down`",
        ),
        (
            "stdout_not_matches: 'act.ve'",
            "expect.stdout_not_matches: stdout matches `act.ve` (at `service: active (running)`)",
        ),
        (
            "stderr_not_matches: fine",
            "expect.stderr_not_matches: stderr matches `fine`",
        ),
        (
            "json: [{ path: a, equals: 1 }]",
            "expect.json: stdout is not JSON",
        ),
    ] {
        let r = run(
            &sb,
            &format!(
                r#"
                version: 1
                name: x
                summary: an expectation that fails
                steps:
                  - id: a
                    ssh.exec:
                      host: app
                      command: "echo 'service: active (running)'; echo 'note: fine' >&2"
                      expect: {{ {expect} }}
                "#
            ),
        );
        r.assert_code(1);
        assert!(text(&r).contains(message), "{expect}: {}", text(&r));
        // The detail shows what the command printed.
        assert!(
            text(&r).contains("service: active (running)"),
            "{}",
            text(&r)
        );
    }
}

#[test]
fn a_secret_reaches_the_host_through_env_and_stdin_and_nowhere_else() {
    let sb = sandbox();
    let dir = sb.state.join("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let by_env = dir.join(unique("ssh-env"));
    let by_stdin = dir.join(unique("ssh-stdin"));
    let sampler = ArgvSampler::start();
    let r = run(
        &sb,
        &format!(
            r#"
            version: 1
            name: x
            summary: secrets through env and stdin
            steps:
              - id: new
                generate: {{ format: hex, bytes: 24 }}
              - id: by_env
                ssh.exec:
                  host: app
                  command: "sleep 0.3; printf '%s' \"$NEW_SECRET\" > {}; echo stored"
                  env: {{ NEW_SECRET: "{{{{ steps.new.value }}}}" }}
              - id: by_stdin
                ssh.exec:
                  host: app
                  command: "sleep 0.3; cat > {}; echo stored"
                  stdin: "{{{{ steps.new.value }}}}"
            "#,
            by_env.display(),
            by_stdin.display()
        ),
    );
    let argv = sampler.finish();
    r.assert_code(0);
    let secret = std::fs::read_to_string(&by_env).unwrap();
    let _ = std::fs::remove_file(&by_env);
    let from_stdin = std::fs::read_to_string(&by_stdin).unwrap();
    let _ = std::fs::remove_file(&by_stdin);
    assert_eq!(secret.len(), 48, "the remote received the generated value");
    assert_eq!(from_stdin, secret);

    let all = r.all_bytes();
    assert!(
        !all.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret is in the tool's output"
    );
    assert!(argv.len() > 10, "the sampler saw processes");
    assert!(
        argv.iter()
            .any(|c| c.starts_with(b"ssh\0") && c.windows(12).any(|w| w == b"runbook-ssh-")),
        "the sampler saw the run's ssh master"
    );
    for c in &argv {
        assert!(
            !c.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in a local argv: {}",
            String::from_utf8_lossy(c)
        );
    }
}

#[test]
fn many_steps_on_one_host_share_one_connection() {
    let sb = sandbox();
    let log = sb.state.join("ssh/sshd.log");
    let before = std::fs::read(&log).unwrap().len();
    let steps: String = (1..=5)
        .map(|i| {
            format!("  - id: s{i}\n    ssh.exec: {{ host: app, command: 'echo $SSH_CLIENT' }}\n")
        })
        .collect();
    let r = Test::new()
        .with_sandbox(&sb)
        .runbook(
            "x",
            &format!("version: 1\nname: x\nsummary: five commands\nsteps:\n{steps}"),
        )
        .args(&["run", "x", "--env", "sandbox", "--yes", "--output", "json"])
        .run();
    r.assert_code(0);
    // $SSH_CLIENT is "client-address client-port server-port": one TCP connection, one port.
    let ports: BTreeSet<String> = (1..=5)
        .map(|i| {
            let out = r.finished(&format!("s{i}"))["outputs"]["stdout"].clone();
            out.as_str().unwrap().split(' ').nth(1).unwrap().to_string()
        })
        .collect();
    assert_eq!(
        ports.len(),
        1,
        "every step used the same connection: {ports:?}"
    );
    let port = ports.into_iter().next().unwrap();
    // Other tests log in concurrently; count only the logins from this connection's port.
    let added = std::fs::read(&log).unwrap();
    let added = String::from_utf8_lossy(&added[before..]);
    let logins = added
        .lines()
        .filter(|l| l.contains("Accepted publickey") && l.contains(&format!(" port {port} ")))
        .count();
    assert_eq!(logins, 1, "{added}");
}

#[test]
fn a_host_key_that_does_not_match_is_refused() {
    let sb = sandbox();
    let t = Test::new();
    let other_key = t.dir.path().join("other");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let public: Vec<&str> = public.split_whitespace().take(2).collect();
    let changed = t.dir.path().join("known_hosts_changed");
    std::fs::write(
        &changed,
        format!(
            "[{}]:{} {}\n",
            sb.get("SANDBOX_SSH_HOST"),
            sb.get("SANDBOX_SSH_PORT"),
            public.join(" ")
        ),
    )
    .unwrap();
    let empty = t.dir.path().join("known_hosts_empty");
    std::fs::write(&empty, "").unwrap();

    for (file, message) in [(&changed, "does NOT match"), (&empty, "is not in")] {
        let r = Test::new()
            .environments(&environments(
                &sb,
                &format!("known_hosts: {}", file.display()),
            ))
            .runbook(
                "x",
                r#"
                version: 1
                name: x
                summary: host key
                steps:
                  - id: a
                    ssh.exec: { host: app, command: echo should-not-run }
                "#,
            )
            .args(&["run", "x", "--env", "sandbox", "--yes"])
            .run();
        r.assert_code(1);
        let t = text(&r);
        let expected = format!(
            "the host key of `app` (root@127.0.0.1:{}) {message} {}",
            sb.get("SANDBOX_SSH_PORT"),
            file.display()
        );
        assert!(t.contains(&expected), "{t}");
        assert!(t.contains("help:") && t.contains("out of band"), "{t}");
        assert!(!t.contains("a | should-not-run"), "{t}");
    }
}

#[test]
fn an_unreachable_port_is_a_clear_error() {
    let sb = sandbox();
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let envs = environments(&sb, "connect_timeout: 3s").replace(
        &format!("port: {}", sb.get("SANDBOX_SSH_PORT")),
        &format!("port: {port}"),
    );
    let r = Test::new()
        .environments(&envs)
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: nobody home
            steps:
              - id: a
                ssh.exec: { host: app, command: "true" }
            "#,
        )
        .args(&["run", "x", "--env", "sandbox", "--yes"])
        .run();
    r.assert_code(1);
    let t = text(&r);
    assert!(
        t.contains(&format!(
            "cannot connect to `app` (root@127.0.0.1:{port}): connection refused"
        )),
        "{t}"
    );
    assert!(t.contains("is sshd running"), "{t}");
}

#[test]
fn check_warns_about_a_secret_in_the_command() {
    let r = Test::new()
        .with_repo_environments()
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: a secret on a command line
            steps:
              - id: new
                generate: { format: hex }
              - id: leak
                ssh.exec: { host: app, command: "echo {{ steps.new.value }} > /tmp/x" }
              - id: fine
                ssh.exec:
                  host: app
                  command: 'echo "$V" > /tmp/x'
                  env: { V: "{{ steps.new.value }}" }
            "#,
        )
        .args(&["check"])
        .run();
    r.assert_code(0);
    let t = text(&r);
    assert!(t.contains("runbook::secret-in-command"), "{t}");
    assert!(t.contains("steps.new.value"), "{t}");
    assert!(t.contains("pass it through `env:`"), "{t}");
    assert_eq!(t.matches("runbook::secret-in-command").count(), 1, "{t}");
}
