//! `psql` with TLS against the sandbox's PostgreSQL (which offers TLS with a certificate for
//! localhost and 127.0.0.1 from the sandbox CA, and still takes plain connections): every
//! `sslmode`, the session really encrypted, and clear errors when the certificate does not check.

mod common;

use common::{Run, Sandbox, Test, contains, sandbox};

/// The admin database under one name per case.
fn environments(sb: &Sandbox) -> String {
    let db = |host: &str, sslmode: &str, ca: bool, via: bool| {
        format!(
            "{{ host: '{host}', port: {port}, name: runbook_admin, user: runbook_admin, sslmode: {sslmode}{ca}{via} }}",
            port = sb.get("SANDBOX_PG_PORT"),
            ca = if ca {
                format!(", ca_file: {}", sb.get("SANDBOX_CA_FILE"))
            } else {
                String::new()
            },
            via = if via { ", via: app" } else { "" },
        )
    };
    let pg = sb.get("SANDBOX_PG_HOST");
    format!(
        "
        version: 1
        environments:
          sandbox:
            hosts:
              app:
                address: {host}
                port: {ssh_port}
                user: {user}
                key_file: {key}
                known_hosts: {known_hosts}
            databases:
              disable: {disable}
              prefer: {prefer}
              require: {require}
              verify_ca: {verify_ca}
              full_ip: {full_ip}
              full_name: {full_name}
              full_tunnel: {full_tunnel}
              full_no_ca: {full_no_ca}
              full_wrong_name: {full_wrong_name}
              ca_wrong_name: {ca_wrong_name}
        ",
        host = sb.get("SANDBOX_SSH_HOST"),
        ssh_port = sb.get("SANDBOX_SSH_PORT"),
        user = sb.get("SANDBOX_SSH_USER"),
        key = sb.get("SANDBOX_SSH_KEY"),
        known_hosts = sb.get("SANDBOX_SSH_KNOWN_HOSTS"),
        disable = db(&pg, "disable", false, false),
        prefer = db(&pg, "prefer", false, false),
        require = db(&pg, "require", false, false),
        verify_ca = db(&pg, "verify-ca", true, false),
        full_ip = db("127.0.0.1", "verify-full", true, false),
        full_name = db("localhost", "verify-full", true, false),
        // The tunnel ends on 127.0.0.1 here; the name checked must still be `localhost`.
        full_tunnel = db("localhost", "verify-full", true, true),
        full_no_ca = db(&pg, "verify-full", false, false),
        // 127.0.0.1 as an IPv6 address: the same server, a name its certificate does not hold.
        full_wrong_name = db("::ffff:127.0.0.1", "verify-full", true, false),
        ca_wrong_name = db("::ffff:127.0.0.1", "verify-ca", true, false),
    )
}

/// One step on `database` asking whether its own session is encrypted.
fn ssl_of(sb: &Sandbox, database: &str) -> Run {
    Test::new()
        .environments(&environments(sb))
        .runbook(
            "x",
            &format!(
                r#"
                version: 1
                name: x
                summary: is the session encrypted
                inputs:
                  admin_pw: {{ description: admin password, secret: true }}
                steps:
                  - id: q
                    psql:
                      database: {database}
                      password: "{{{{ inputs.admin_pw }}}}"
                      sql: select ssl from pg_stat_ssl where pid = pg_backend_pid()
                "#
            ),
        )
        .args(&["run", "x", "--env", "sandbox", "--yes", "--output", "json"])
        .env(
            "RUNBOOK_INPUT_ADMIN_PW",
            &sb.get("SANDBOX_PG_ADMIN_PASSWORD"),
        )
        .run()
}

fn assert_ssl(sb: &Sandbox, database: &str, encrypted: bool) {
    let r = ssl_of(sb, database);
    r.assert_code(0);
    assert_eq!(
        r.finished("q")["outputs"]["rows"],
        serde_json::json!([{ "ssl": encrypted }]),
        "database {database}"
    );
}

#[test]
fn require_encrypts_the_session() {
    assert_ssl(&sandbox(), "require", true);
}

#[test]
fn prefer_takes_tls_when_the_server_offers_it() {
    assert_ssl(&sandbox(), "prefer", true);
}

#[test]
fn disable_stays_plain() {
    assert_ssl(&sandbox(), "disable", false);
}

#[test]
fn verify_full_with_the_ca_file_by_address_and_by_name() {
    let sb = sandbox();
    assert_ssl(&sb, "full_ip", true);
    assert_ssl(&sb, "full_name", true);
}

#[test]
fn verify_full_through_a_tunnel_checks_the_database_host_name() {
    assert_ssl(&sandbox(), "full_tunnel", true);
}

#[test]
fn verify_ca_checks_the_chain_but_not_the_name() {
    let sb = sandbox();
    assert_ssl(&sb, "verify_ca", true);
    assert_ssl(&sb, "ca_wrong_name", true);
}

#[test]
fn verify_full_without_the_ca_file_names_the_unknown_issuer_and_the_fix() {
    let sb = sandbox();
    let r = ssl_of(&sb, "full_no_ca");
    r.assert_code(1);
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(
        text.contains("the server's certificate has an unknown issuer (sslmode verify-full)"),
        "{text}"
    );
    // The fix is the step's `help`, apart from what the server said.
    assert_eq!(
        r.finished("q")["help"],
        "set `ca_file` under `environments.sandbox.databases.full_no_ca` to the PEM file of the CA that signed the server's certificate",
        "{text}"
    );
    assert!(!contains(
        &r.abandon_unfinished().all_bytes(),
        &sb.get("SANDBOX_PG_ADMIN_PASSWORD")
    ));
}

#[test]
fn verify_full_refuses_a_certificate_for_another_name() {
    let r = ssl_of(&sandbox(), "full_wrong_name");
    r.assert_code(1);
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(
        text.contains("the server's certificate is not valid for host `::ffff:127.0.0.1`"),
        "{text}"
    );
    assert!(text.contains("`sslmode: verify-ca`"), "{text}");
}

#[test]
fn require_refuses_a_server_without_tls() {
    // A stand-in server that answers PostgreSQL's TLS request with "N" (no TLS), as one
    // with `ssl = off` does, then hangs up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut request = [0u8; 8];
        s.read_exact(&mut request).unwrap();
        // SSLRequest: length 8, code 80877103.
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
        s.write_all(b"N").unwrap();
    });
    let r = Test::new()
        .environments(&format!(
            "
            version: 1
            environments:
              sandbox:
                databases:
                  plain: {{ host: 127.0.0.1, port: {port}, name: app, user: app, sslmode: require }}
            "
        ))
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: require TLS
            steps:
              - id: q
                psql: { database: plain, password: not-the-password, sql: select 1 }
            "#,
        )
        .args(&["run", "x", "--env", "sandbox", "--yes"])
        .run();
    server.join().unwrap();
    r.assert_code(1);
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(
        text.contains("the server does not support TLS (sslmode require)"),
        "{text}"
    );
    assert!(text.contains("set `sslmode: disable`"), "{text}");
}
