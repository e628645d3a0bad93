//! `db-password-alternating` on the sandbox: with the app's DB-check cache off, /explore is
//! polled every 50 ms through the rotation and no request is rejected for its password
//! (connection failures while the app restarts are counted apart); the previous login keeps
//! working; and the classic `db-password` and the alternating runbook follow each other in
//! either order. Each test puts the sandbox back on the classic role `musehub` at its end.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Sandbox, shipped, ssm_value};

/// The rotations share the sandbox's roles, SSM parameters and app: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const PREFIX: &str = "/musehub/sandbox";
const ADMIN: &str = "/musehub-admin/sandbox/DB_PASSWORD";

fn ssm(target: &str, body: serde_json::Value) -> Option<serde_json::Value> {
    use std::io::Write;
    let mut c = Command::new("curl")
        .args(["-s", "-X", "POST", "http://127.0.0.1:5000/"])
        .args(["-H", &format!("X-Amz-Target: AmazonSSM.{target}")])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["--data-binary", "@-", "-w", "\n%{http_code}"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let out = String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap();
    let (json, code) = out.rsplit_once('\n').unwrap();
    (code == "200").then(|| serde_json::from_str(json).unwrap())
}

fn put(name: &str, value: &str, kind: &str, overwrite: bool) {
    let _ = ssm(
        "PutParameter",
        serde_json::json!({"Name": name, "Value": value, "Type": kind, "Overwrite": overwrite}),
    );
}

fn exists(name: &str) -> bool {
    ssm("GetParameter", serde_json::json!({"Name": name})).is_some()
}

fn login(user: &str, password: &str) -> bool {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", "5433", "-U", user, "-d", "musehub"])
        .args(["-qAtX", "-w", "-c", "select 1"])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap()
        .status
        .success()
}

/// The sandbox as the alternating runbook needs it (what `scripts/sandbox up` seeds, for a
/// sandbox started before it did): `DB_USER` and the admin login's parameter. Returns the
/// classic role's password, which every test puts back at its end.
fn start(sb: &Sandbox) -> String {
    if !exists(&format!("{PREFIX}/DB_USER")) {
        put(&format!("{PREFIX}/DB_USER"), "musehub", "String", false);
    }
    if !exists(ADMIN) {
        put(
            ADMIN,
            &sb.get("SANDBOX_PG_ADMIN_PASSWORD"),
            "SecureString",
            false,
        );
    }
    if ssm_value(&format!("{PREFIX}/DB_USER")) != "musehub" {
        back_to_the_classic_role(sb);
    }
    assert_eq!(
        ssm_value(&format!("{PREFIX}/DB_USER")),
        "musehub",
        "precondition: the app uses the classic role"
    );
    let classic = ssm_value(&format!("{PREFIX}/DB_PASSWORD"));
    assert!(
        login("musehub", &classic),
        "precondition: SSM holds musehub's password"
    );
    classic
}

/// A sandbox an alternating rotation left on `musehub_blue` or `musehub_green` (someone tried
/// the runbook by hand): the classic role gets a new password, set as a SCRAM verifier through
/// the admin login (the plaintext never reaches the server's log), SSM names it again, and the
/// app is redeployed with it.
fn back_to_the_classic_role(sb: &Sandbox) {
    use std::io::Write;
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).unwrap();
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("python3")
        .arg(common::repo().join("scripts/sandbox.d/scram_verifier.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "scram_verifier.py");
    let verifier = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let ok = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5433",
            "-U",
            "runbook_admin",
            "-d",
            "musehub",
        ])
        .args(["-qAtX", "-w", "-c"])
        .arg(format!("ALTER ROLE musehub PASSWORD '{verifier}'"))
        .env("PGPASSWORD", sb.get("SANDBOX_PG_ADMIN_PASSWORD"))
        .env("PGCONNECT_TIMEOUT", "5")
        .status()
        .unwrap()
        .success();
    assert!(ok, "ALTER ROLE musehub as the sandbox's admin");
    put(&format!("{PREFIX}/DB_USER"), "musehub", "String", true);
    put(
        &format!("{PREFIX}/DB_PASSWORD"),
        &password,
        "SecureString",
        true,
    );
    redeploy(sb);
}

/// Redeploy the app with what SSM holds, through the app host's SSH login as a runbook does:
/// an app started from this process would inherit its open descriptors (a lock it runs under).
fn redeploy(sb: &Sandbox) {
    let dir = sb.state.join("musehub");
    let ok = Command::new("ssh")
        .arg("-F")
        .arg(sb.get("SANDBOX_SSH_CONFIG"))
        .arg(sb.get("SANDBOX_SSH_ALIAS"))
        .arg(format!(
            "cd {} && bash deploy/secrets.sh && bash deploy/deploy.sh",
            dir.display()
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "redeploy");
}

/// Back to the classic role with its password, the cache file as it was, the app redeployed.
fn finish(sb: &Sandbox, classic: &str, cache: Option<Vec<u8>>) {
    put(&format!("{PREFIX}/DB_USER"), "musehub", "String", true);
    put(
        &format!("{PREFIX}/DB_PASSWORD"),
        classic,
        "SecureString",
        true,
    );
    let file = sb.state.join("musehub/DB_CHECK_CACHE_SECONDS");
    match cache {
        Some(c) => std::fs::write(&file, c).unwrap(),
        None => {
            let _ = std::fs::remove_file(&file);
        }
    }
    redeploy(sb);
    assert_eq!(sb.explore_status(), "200");
}

/// The app's DB check without its cache (every /explore logs in), from a fresh start.
fn cache_off(sb: &Sandbox) -> Option<Vec<u8>> {
    let file = sb.state.join("musehub/DB_CHECK_CACHE_SECONDS");
    let before = std::fs::read(&file).ok();
    std::fs::write(&file, "0\n").unwrap();
    redeploy(sb);
    before
}

/// What a poller of /explore saw.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: usize,
    ok: usize,
    /// 503 "password rejected": the outage this strategy removes.
    rejected: usize,
    /// No answer (the restart) or another failure.
    other: usize,
}

/// Poll /explore every 50 ms while `f` runs.
fn polled<T>(sb: &Sandbox, f: impl FnOnce() -> T) -> (T, Counts) {
    let stop = AtomicBool::new(false);
    let ca = sb.get("SANDBOX_CA_FILE");
    std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let mut c = Counts::default();
            while !stop.load(Ordering::SeqCst) {
                let out = Command::new("curl")
                    .args([
                        "-s",
                        "--max-time",
                        "2",
                        "-w",
                        "\n%{http_code}",
                        "--cacert",
                        &ca,
                    ])
                    .arg("https://127.0.0.1:1337/explore")
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                c.requests += 1;
                if text.ends_with("\n200") {
                    c.ok += 1;
                } else if text.contains("password rejected") {
                    c.rejected += 1;
                } else {
                    c.other += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            c
        });
        let out = f();
        stop.store(true, Ordering::SeqCst);
        (out, poller.join().unwrap())
    })
}

/// One rotation under the poller; a failure is kept for the end, after the sandbox is put back.
fn rotate(sb: &Sandbox, runbook: &str, failed: &mut Vec<String>) -> Counts {
    let (run, counts) = polled(sb, || {
        shipped(sb)
            .args(&["run", runbook, "--env", "sandbox", "--yes"])
            .run()
    });
    if run.code != 0 {
        failed.push(format!("{runbook} exited {}: {}", run.code, run.stderr));
    }
    counts
}

#[test]
fn the_alternating_rotation_rejects_no_request_and_the_previous_login_keeps_working() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let classic = start(&sb);
    let cache = cache_off(&sb);

    let mut failed = Vec::new();
    let first = rotate(&sb, "db-password-alternating", &mut failed);
    let (user1, pw1) = (
        ssm_value(&format!("{PREFIX}/DB_USER")),
        ssm_value(&format!("{PREFIX}/DB_PASSWORD")),
    );
    let second = rotate(&sb, "db-password-alternating", &mut failed);
    let (user2, pw2) = (
        ssm_value(&format!("{PREFIX}/DB_USER")),
        ssm_value(&format!("{PREFIX}/DB_PASSWORD")),
    );
    println!("alternating rotation 1 (musehub -> {user1}): {first:?}");
    println!("alternating rotation 2 ({user1} -> {user2}): {second:?}");
    let env_user = sb.app_env("DB_USER");
    let env_pw = sb.app_env("DB_PASSWORD");
    let checks = [
        (
            user1 == "musehub_blue",
            "the first rotation moves the app to musehub_blue",
        ),
        (user2 == "musehub_green", "the second to musehub_green"),
        (
            pw1 != pw2 && pw1 != classic,
            "each rotation stores a new password",
        ),
        (
            env_user == user2 && env_pw == pw2,
            "the app's .env has them",
        ),
        (login(&user2, &pw2), "the new login works"),
        (login(&user1, &pw1), "the previous login still works"),
        (
            login("musehub", &classic),
            "the classic role was not touched",
        ),
        (
            first.rejected == 0 && second.rejected == 0,
            "no request was rejected for its password",
        ),
        (
            first.ok > 0 && second.ok > 0,
            "the poller saw the app answer",
        ),
    ];
    finish(&sb, &classic, cache);
    assert!(failed.is_empty(), "{failed:?}");
    for (ok, what) in checks {
        assert!(ok, "{what}: {first:?} {second:?}");
    }
}

#[test]
fn the_classic_and_the_alternating_runbooks_follow_each_other_in_either_order() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sb = common::sandbox();
    let classic = start(&sb);
    let cache = cache_off(&sb);

    // classic, then alternating, then classic (on the role the app then uses), then alternating
    let mut failed = Vec::new();
    let c1 = rotate(&sb, "db-password", &mut failed);
    let musehub_pw = ssm_value(&format!("{PREFIX}/DB_PASSWORD"));
    let a1 = rotate(&sb, "db-password-alternating", &mut failed);
    let blue_pw = ssm_value(&format!("{PREFIX}/DB_PASSWORD"));
    let c2 = rotate(&sb, "db-password", &mut failed);
    let blue_pw2 = ssm_value(&format!("{PREFIX}/DB_PASSWORD"));
    let user_after_classic = ssm_value(&format!("{PREFIX}/DB_USER"));
    let a2 = rotate(&sb, "db-password-alternating", &mut failed);
    let user_end = ssm_value(&format!("{PREFIX}/DB_USER"));
    let green_pw = ssm_value(&format!("{PREFIX}/DB_PASSWORD"));
    println!("classic rotation (musehub): {c1:?}");
    println!("alternating rotation (musehub -> musehub_blue): {a1:?}");
    println!("classic rotation (musehub_blue in place): {c2:?}");
    println!("alternating rotation (musehub_blue -> musehub_green): {a2:?}");
    let checks = [
        (
            login("musehub", &musehub_pw),
            "the classic rotation changed musehub",
        ),
        (
            user_after_classic == "musehub_blue",
            "the classic rotation kept the app's user",
        ),
        (
            !login("musehub_blue", &blue_pw),
            "and changed its password in place",
        ),
        (login("musehub_blue", &blue_pw2), "to the new one"),
        (
            user_end == "musehub_green" && login("musehub_green", &green_pw),
            "then alternating",
        ),
        (
            a1.rejected == 0 && a2.rejected == 0,
            "alternating rejected no request",
        ),
    ];
    // musehub's password is now the one the first classic rotation set.
    let _ = classic;
    finish(&sb, &musehub_pw, cache);
    assert!(failed.is_empty(), "{failed:?}");
    for (ok, what) in checks {
        assert!(ok, "{what}");
    }
}
