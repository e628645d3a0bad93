//! A `psql` step without `password:` logs in the libpq way, against the sandbox's PostgreSQL:
//! the database's `password_parameter` (SSM), `PGPASSWORD`, the file `PGPASSFILE` names or
//! `~/.pgpass` (only at mode 0600 or less, as libpq), else no password; when none works the
//! error names every source tried, never a value.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Run, Sandbox, Test, contains, sandbox, unique};

/// The admin database through the sandbox's host, optionally with a `password_parameter`.
fn environments(sb: &Sandbox, parameter: Option<&str>) -> String {
    let parameter = parameter
        .map(|p| format!("password_parameter: {p}"))
        .unwrap_or_default();
    format!(
        "
        version: 1
        environments:
          sandbox:
            aws:
              region: us-east-1
              endpoint: http://127.0.0.1:5000
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
                {parameter}
        ",
        host = sb.get("SANDBOX_SSH_HOST"),
        ssh_port = sb.get("SANDBOX_SSH_PORT"),
        user = sb.get("SANDBOX_SSH_USER"),
        key = sb.get("SANDBOX_SSH_KEY"),
        known_hosts = sb.get("SANDBOX_SSH_KNOWN_HOSTS"),
        pg_port = sb.get("SANDBOX_PG_PORT"),
    )
}

const QUERY: &str = r#"
    version: 1
    name: x
    summary: a query with no password given
    steps:
      - id: q
        psql:
          database: admin
          sql: select current_user as who
    "#;

/// A test whose home is its own directory and whose libpq variables are empty (libpq, and
/// the tool, take an empty one as not set), so only what the test gives is found.
fn test(sb: &Sandbox, parameter: Option<&str>) -> Test {
    let t = Test::new().with_sandbox(sb);
    let home = t.state_dir().parent().unwrap().join("home");
    std::fs::create_dir_all(&home).unwrap();
    t.environments(&environments(sb, parameter))
        .runbook("x", QUERY)
        .env("HOME", home.to_str().unwrap())
        .env("PGPASSWORD", "")
        .env("PGPASSFILE", "")
}

fn home(t: &Test) -> std::path::PathBuf {
    t.state_dir().parent().unwrap().join("home")
}

/// A password file with `text`, at `mode`.
fn pgpass(path: &std::path::Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn who(run: &Run) -> String {
    run.finished("q")["outputs"]["rows"][0]["who"]
        .as_str()
        .unwrap_or_else(|| panic!("{}\n{}", run.stdout, run.stderr))
        .to_string()
}

/// The admin password as a password-file field: `:` and `\` escaped.
fn field(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

#[test]
fn a_pgpassfile_at_mode_600_gives_the_password_and_its_first_matching_line_wins() {
    let sb = sandbox();
    let t = test(&sb, None);
    let admin = sb.get("SANDBOX_PG_ADMIN_PASSWORD");
    let port = sb.get("SANDBOX_PG_PORT");
    let file = home(&t).join("passwords");
    // A comment, lines for another port, database and user, then `*` fields; the last line
    // would be wrong, and is never reached.
    pgpass(
        &file,
        &format!(
            "# runbook test\n\
             127.0.0.1:1:runbook_admin:runbook_admin:wrong-port-password\n\
             127.0.0.1:{port}:musehub:runbook_admin:wrong-database-password\n\
             127.0.0.1:{port}:runbook_admin:musehub:wrong-user-password\n\
             *:{port}:*:runbook_admin:{}\n\
             127.0.0.1:{port}:runbook_admin:runbook_admin:never-reached-password\n",
            field(&admin)
        ),
        0o600,
    );
    let run = t
        .env("PGPASSFILE", file.to_str().unwrap())
        .args(&["run", "x", "--env", "sandbox", "--output", "json"])
        .run();
    run.assert_code(0);
    assert_eq!(who(&run), "runbook_admin");
    assert!(
        !contains(&run.all_bytes(), &admin),
        "the password was shown"
    );
}

#[test]
fn a_home_pgpass_is_read_when_pgpassfile_is_not_set() {
    let sb = sandbox();
    let t = test(&sb, None);
    let admin = sb.get("SANDBOX_PG_ADMIN_PASSWORD");
    pgpass(
        &home(&t).join(".pgpass"),
        &format!(
            "127.0.0.1:{}:runbook_admin:runbook_admin:{}\n",
            sb.get("SANDBOX_PG_PORT"),
            field(&admin)
        ),
        0o400,
    );
    let run = t
        .args(&["run", "x", "--env", "sandbox", "--output", "json"])
        .run();
    run.assert_code(0);
    assert_eq!(who(&run), "runbook_admin");
}

#[test]
fn pgpassword_of_the_tools_own_environment_gives_the_password() {
    let sb = sandbox();
    let admin = sb.get("SANDBOX_PG_ADMIN_PASSWORD");
    let run = test(&sb, None)
        .env("PGPASSWORD", &admin)
        .args(&["run", "x", "--env", "sandbox", "--output", "json"])
        .run();
    run.assert_code(0);
    assert_eq!(who(&run), "runbook_admin");
    assert!(
        !contains(&run.all_bytes(), &admin),
        "the password was shown"
    );
}

/// Stores `value` as a SecureString straight through the sandbox's SSM API.
fn ssm_put(name: &str, value: &str) {
    let body = serde_json::json!({
        "Name": name, "Value": value, "Type": "SecureString", "Overwrite": true
    });
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", "http://127.0.0.1:5000/"])
        .args(["-H", "X-Amz-Target: AmazonSSM.PutParameter", "-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["--data-binary", "@-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(body.to_string().as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(out.success(), "PutParameter {name}");
}

#[test]
fn a_password_parameter_of_the_database_is_read_at_run_time_and_by_preflight() {
    let sb = sandbox();
    let admin = sb.get("SANDBOX_PG_ADMIN_PASSWORD");
    let name = format!("/runbook-test/{}/DB_PASSWORD", unique("pgparam"));
    ssm_put(&name, &admin);
    // PGPASSWORD is wrong: the environment's own parameter comes first, as a conninfo
    // password does in libpq.
    let t = test(&sb, Some(&name)).env("PGPASSWORD", "wrong-password-from-the-environment");
    let run = t
        .then(&["run", "x", "--env", "sandbox", "--output", "json"])
        .run();
    run.assert_code(0);
    assert_eq!(who(&run), "runbook_admin");
    assert!(
        !contains(&run.all_bytes(), &admin),
        "the password was shown"
    );

    let pre = t.again(&["preflight", "x", "--env", "sandbox"]);
    assert!(
        pre.stdout.contains(&format!(
            "logged in as runbook_admin (password from SSM parameter {name} (`password_parameter` of database `admin`))"
        )),
        "{}\n{}",
        pre.stdout,
        pre.stderr
    );
    assert!(!contains(&pre.all_bytes(), &admin));
}

#[test]
fn with_no_source_left_the_error_names_every_source_tried_and_how_to_give_one() {
    let sb = sandbox();
    let t = test(&sb, None);
    let admin = sb.get("SANDBOX_PG_ADMIN_PASSWORD");
    let port = sb.get("SANDBOX_PG_PORT");
    // A right password in a file the group and others can read: libpq ignores it, and so do we.
    let file = home(&t).join("passwords");
    pgpass(&file, &format!("*:*:*:*:{}\n", field(&admin)), 0o644);
    let t = t.env("PGPASSFILE", file.to_str().unwrap());
    let ssh = format!(
        "{}@{}:{}",
        sb.get("SANDBOX_SSH_USER"),
        sb.get("SANDBOX_SSH_HOST"),
        sb.get("SANDBOX_SSH_PORT")
    );
    // The run's preflight makes the same login first: the run stops there, before its
    // first step, and says the same.
    let pre = t
        .then(&["run", "x", "--env", "sandbox"])
        .stderr(&format!(
            "
            runbook::preflight-failed

              × preflight: 1 of 2 checks failed; nothing ran and nothing changed
              help: fix what failed, then run again (`runbook preflight x --env sandbox` shows every check);
                    --no-preflight starts without these checks, recorded in the audit log
            CHECK     TARGET               RESULT  REASON
            ssh       app                  pass    logged in to {ssh}, host key known (for q)
            database  runbook_admin@admin  FAIL    cannot log in to database `admin` (runbook_admin@127.0.0.1:{port}/runbook_admin via app): the server asks for a password, and none was found

            database runbook_admin@admin:
              tried, in order:
              - the step's `password`: not given
              - `password_parameter` of database `admin`: not set
              - PGPASSWORD: not set
              - PGPASSFILE [TMP]/home/passwords: ignored: its mode is 0644, and group or others have access (libpq uses it only at 0600 or less)
              - no password: the server asks for one
              help: give the step a `password:`, set `password_parameter` under `environments.sandbox.databases.admin`, set PGPASSWORD, or put the line `127.0.0.1:{port}:runbook_admin:runbook_admin:<password>` in a password file of mode 0600 (PGPASSFILE or ~/.pgpass)

            2 check(s): 1 passed, 1 failed, 0 warning(s), 0 skipped
            "
        ))
        .status(1);
    // Without preflight, the step's own login fails the same way, at the step.
    let run = t
        .then(&["run", "x", "--env", "sandbox", "--no-preflight"])
        .stderr(&format!(
            "
            warning: --no-preflight: the checks that this run can finish were not made (recorded in the audit log)
            [TIME] run [RUN-ID]: x on sandbox, 1 step
            [TIME] step 1/1 q: on admin: select current_user as who
            [TIME] step 1/1 q: FAILED in [DURATION]: cannot log in to database `admin` (runbook_admin@127.0.0.1:{port}/runbook_admin via app): the server asks for a password, and none was found
                | tried, in order:
                | - the step's `password`: not given
                | - `password_parameter` of database `admin`: not set
                | - PGPASSWORD: not set
                | - PGPASSFILE [TMP]/home/passwords: ignored: its mode is 0644, and group or others have access (libpq uses it only at 0600 or less)
                | - no password: the server asks for one
              at runbooks/x.yaml:5:9
              help: give the step a `password:`, set `password_parameter` under `environments.sandbox.databases.admin`, set PGPASSWORD, or put the line `127.0.0.1:{port}:runbook_admin:runbook_admin:<password>` in a password file of mode 0600 (PGPASSFILE or ~/.pgpass)
            [TIME] run [RUN-ID]: FAILED in [DURATION] (0 ok, 1 failed, 0 skipped): step `q` failed: cannot log in to database `admin` (runbook_admin@127.0.0.1:{port}/runbook_admin via app): the server asks for a password, and none was found
            "
        ))
        .status(1);
    for run in [pre, run] {
        assert!(
            !contains(&run.all_bytes(), &admin),
            "the password was shown"
        );
    }
}
