//! `psql` against the sandbox's PostgreSQL: queries with bind parameters through an SSH tunnel,
//! `set_password` (the plaintext never reaches the server's log), and clear login errors.

mod common;

use common::{Run, Sandbox, Test, contains, sandbox, unique};

/// The sandbox host, and the admin database twice: through the host and directly.
fn environments(sb: &Sandbox) -> String {
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
              admin:
                via: app
                host: 127.0.0.1
                port: {pg_port}
                name: runbook_admin
                user: runbook_admin
                sslmode: disable
              direct:
                host: {pg_host}
                port: {pg_port}
                name: runbook_admin
                user: runbook_admin
                sslmode: disable
        ",
        host = sb.get("SANDBOX_SSH_HOST"),
        ssh_port = sb.get("SANDBOX_SSH_PORT"),
        user = sb.get("SANDBOX_SSH_USER"),
        key = sb.get("SANDBOX_SSH_KEY"),
        known_hosts = sb.get("SANDBOX_SSH_KNOWN_HOSTS"),
        pg_host = sb.get("SANDBOX_PG_HOST"),
        pg_port = sb.get("SANDBOX_PG_PORT"),
    )
}

/// Run `x` with the admin password (and any other secret inputs) in RUNBOOK_INPUT_* variables,
/// never on the command line.
fn run(sb: &Sandbox, yaml: &str, inputs: &[(&str, &str)]) -> Run {
    let mut t = Test::new()
        .environments(&environments(sb))
        .runbook("x", yaml)
        .args(&["run", "x", "--env", "sandbox", "--yes", "--output", "json"])
        .env(
            "RUNBOOK_INPUT_ADMIN_PW",
            &sb.get("SANDBOX_PG_ADMIN_PASSWORD"),
        );
    for (k, v) in inputs {
        t = t.env(&format!("RUNBOOK_INPUT_{}", k.to_uppercase()), v);
    }
    t.run()
}

#[test]
fn a_query_with_bind_parameters_through_the_ssh_tunnel() {
    let sb = sandbox();
    let r = run(
        &sb,
        r#"
        version: 1
        name: x
        summary: a query
        inputs:
          admin_pw: { description: admin password, secret: true }
        steps:
          - id: q
            psql:
              database: admin
              password: "{{ inputs.admin_pw }}"
              sql: "select $1::int + 1 as n, $2 as s, $3::text as z, true as b, inet_server_port() as port"
              params: ["41", "it's", ~]
        "#,
        &[],
    );
    r.assert_code(0);
    let out = r.finished("q")["outputs"].clone();
    assert_eq!(
        out["rows"],
        serde_json::json!([{"n": 42, "s": "it's", "z": null, "b": true, "port": 5433}])
    );
    assert_eq!(out["affected"], 1);
}

#[test]
fn set_password_changes_the_login_and_never_logs_the_plaintext() {
    let sb = sandbox();
    let id = unique("r").replace('-', "_");
    let role = format!("rb_test_{id}");
    // Secrets of their own, sharing no 16-character run with the role's name (such a run of a
    // secret is masked wherever it appears).
    let salt = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(id.as_bytes());
        format!("{:016x}", h.finish())
    };
    let old = format!("old-{salt}");
    // A space, quotes and a backslash: nothing may break the statement or the login.
    let new = format!("new pw'\"\\-{salt}");
    let own = format!("own-{salt}");
    let r = run(
        &sb,
        &format!(
            r#"
            version: 1
            name: x
            summary: rotate a test role
            inputs:
              admin_pw: {{ description: admin password, secret: true }}
              new_pw: {{ description: new password, secret: true }}
              own_pw: {{ description: another password, secret: true }}
            steps:
              - id: create
                psql:
                  database: direct
                  password: "{{{{ inputs.admin_pw }}}}"
                  sql: "CREATE ROLE {role} LOGIN PASSWORD '{old}'"
              - id: rotate
                psql:
                  database: admin
                  password: "{{{{ inputs.admin_pw }}}}"
                  set_password: {{ role: {role}, password: "{{{{ inputs.new_pw }}}}" }}
              - id: login
                psql:
                  database: admin
                  user: {role}
                  password: "{{{{ inputs.new_pw }}}}"
                  sql: select current_user as me
              # The role itself may not turn statement logging off: the change still goes ahead.
              - id: self
                psql:
                  database: direct
                  user: {role}
                  password: "{{{{ inputs.new_pw }}}}"
                  set_password: {{ role: {role}, password: "{{{{ inputs.own_pw }}}}" }}
              - id: login_again
                psql:
                  database: direct
                  user: {role}
                  password: "{{{{ inputs.own_pw }}}}"
                  sql: select current_user as me
            "#
        ),
        &[("new_pw", &new), ("own_pw", &own)],
    );
    r.assert_code(0);
    assert_eq!(
        r.finished("login")["outputs"]["rows"][0]["me"],
        role.as_str()
    );
    assert_eq!(
        r.finished("login_again")["outputs"]["rows"][0]["me"],
        role.as_str()
    );
    assert!(
        r.stdout.contains("statement logging stays on"),
        "the operator is told: {}",
        r.stdout
    );

    // The old password no longer works.
    let old_login = run(
        &sb,
        &format!(
            r#"
            version: 1
            name: x
            summary: old password
            inputs:
              old_pw: {{ description: old password, secret: true }}
            steps:
              - id: login
                psql:
                  database: direct
                  user: {role}
                  password: "{{{{ inputs.old_pw }}}}"
                  sql: select 1
            "#
        ),
        &[("old_pw", &old)],
    );
    old_login.assert_code(1);
    let text = format!("{}{}", old_login.stdout, old_login.stderr);
    assert!(
        text.contains(&format!(
            "password authentication failed for user \\\"{role}\\\" (28P01)"
        )),
        "{text}"
    );

    let log = std::fs::read(sb.get("SANDBOX_PG_LOG")).unwrap();
    assert!(
        !contains(&log, &new),
        "the new password is in the server log"
    );
    assert!(
        !contains(&log, &own),
        "the second password is in the server log"
    );
    let out = r.all_bytes();
    assert!(!contains(&out, &new) && !contains(&out, &own));
    // (The old password was written into the `create` step's SQL, so it is only a secret here.)
    assert!(!contains(&old_login.abandon_unfinished().all_bytes(), &old));

    let cleanup = run(
        &sb,
        &format!(
            r#"
            version: 1
            name: x
            summary: clean up
            inputs:
              admin_pw: {{ description: admin password, secret: true }}
            steps:
              - id: drop
                psql:
                  database: direct
                  password: "{{{{ inputs.admin_pw }}}}"
                  sql: DROP ROLE {role}
            "#
        ),
        &[],
    );
    cleanup.assert_code(0);
}

#[test]
fn a_wrong_password_is_refused_with_the_server_message_and_never_shown() {
    let sb = sandbox();
    let wrong = format!("wrong-{}", unique("r").replace('-', "_"));
    let r = Test::new()
        .environments(&environments(&sb))
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: wrong password
            inputs:
              pw: { description: a password, secret: true }
            steps:
              - id: login
                psql:
                  database: admin
                  password: "{{ inputs.pw }}"
                  sql: select 1
            "#,
        )
        .args(&["run", "x", "--env", "sandbox", "--yes"])
        .env("RUNBOOK_INPUT_PW", &wrong)
        .run();
    r.assert_code(1);
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(
        text.contains(&format!(
            "cannot log in to database `admin` (runbook_admin@127.0.0.1:{}/runbook_admin via app): \
             password authentication failed for user \"runbook_admin\" (28P01)",
            sb.get("SANDBOX_PG_PORT")
        )),
        "{text}"
    );
    assert!(!contains(&r.abandon_unfinished().all_bytes(), &wrong));
}

#[test]
fn check_requires_exactly_one_action_and_warns_of_an_unused_ca_file() {
    let r = Test::new()
        .environments(
            "
            version: 1
            environments:
              sandbox:
                databases:
                  tls: { host: db.example.com, name: app, user: app, sslmode: require, ca_file: ca.pem }
            ",
        )
        .runbook(
            "x",
            r#"
            version: 1
            name: x
            summary: bad psql steps
            steps:
              - id: both
                psql:
                  database: tls
                  password: x
                  sql: select 1
                  set_password: { role: app, password: y }
            "#,
        )
        .args(&["check"])
        .run();
    r.assert_code(2);
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(
        text.contains("exactly one of `sql` and `set_password`"),
        "{text}"
    );
    assert!(
        text.contains("has a `ca_file`, which sslmode `require` does not use"),
        "{text}"
    );
}
