//! What a rotation costs the app while a person runs it: `db-password` on the sandbox, once
//! at a terminal with every prompt answered after 3 s, once unattended (`--yes`), while a
//! poller requests the app's `/explore` every 50 ms and counts the failed requests.
//!
//! No person may be waited for inside the outage (from `alter_role` until the redeploy has
//! restarted the app with the new password), so the interactive run must fail no more
//! requests than the unattended one, give or take the restart. With a gate inside the window
//! (the shape before gates approved a stretch of steps) each 3 s answer added about 60 failed
//! requests.
//!
//! It rotates the sandbox's shared database password and restarts the app: run it alone,
//! under the sandbox lock. It prints the figures (`--nocapture`) for BENCHMARKS.md.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::pty::Pty;
use common::{Sandbox, sandbox};
use expectrl::Expect;

/// Failed requests the restart itself may cost on top of the unattended run's: its timing
/// moves by a few polls from run to run. A gate inside the window costs 60 per 3 s answer.
const RESTART_ALLOWANCE: usize = 10;

const ANSWER_AFTER: Duration = Duration::from_secs(3);
const POLL_EVERY: Duration = Duration::from_millis(50);
const URL: &str = "https://127.0.0.1:1337/explore";

#[derive(Debug, Default, Clone, Copy)]
struct Outage {
    requests: usize,
    failures: usize,
    /// The longest run of failed requests, and how long it lasted (first failure sent to the
    /// next success sent): recorded, never asserted on.
    longest: usize,
    longest_ms: u128,
}

/// Poll `/explore` until `stop`, one request at a time, each on a new connection (as clients
/// arriving one after another would).
fn poll(ca: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Outage> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let pem = std::fs::read(&ca).expect("the sandbox's CA");
            let client = reqwest::Client::builder()
                .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let mut o = Outage::default();
            let mut run = 0;
            let mut run_start = None;
            while !stop.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let ok = match client.get(URL).send().await {
                    Ok(r) => r.status() == 200,
                    Err(_) => false,
                };
                o.requests += 1;
                if ok {
                    if let Some(start) = run_start.take() {
                        let ms = sent.duration_since(start).as_millis();
                        if run > o.longest {
                            o.longest = run;
                            o.longest_ms = ms;
                        }
                    }
                    run = 0;
                } else {
                    o.failures += 1;
                    run += 1;
                    run_start.get_or_insert(sent);
                }
                tokio::time::sleep(POLL_EVERY).await;
            }
            if run > o.longest {
                o.longest = run;
                o.longest_ms = run_start.map_or(0, |s| s.elapsed().as_millis());
            }
            o
        })
    })
}

/// Run `during` while polling; the requests and failures seen meanwhile.
fn measured(sb: &Sandbox, during: impl FnOnce()) -> Outage {
    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll(sb.get("SANDBOX_CA_FILE"), stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    during();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap()
}

/// Restart the app with the DB-check cache set to `seconds` (`None`: its default), and wait
/// until it answers 200.
fn redeploy_with_cache(sb: &Sandbox, seconds: Option<&str>) {
    let file = sb.state.join("musehub/DB_CHECK_CACHE_SECONDS");
    match seconds {
        Some(s) => std::fs::write(&file, s).unwrap(),
        None => {
            let _ = std::fs::remove_file(&file);
        }
    }
    let out = std::process::Command::new("bash")
        .arg(sb.state.join("musehub/deploy/deploy.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.explore_status() != "200" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sb.explore_status(), "200", "the app is healthy again");
}

/// Restarts the app with its default DB-check cache when dropped (also when the test fails).
struct Restore<'s>(&'s Sandbox);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // No second panic from a failed assertion while unwinding: restore and go.
            let _ = std::fs::remove_file(self.0.state.join("musehub/DB_CHECK_CACHE_SECONDS"));
            let _ = std::process::Command::new("bash")
                .arg(self.0.state.join("musehub/deploy/deploy.sh"))
                .output();
        } else {
            redeploy_with_cache(self.0, None);
        }
    }
}

#[test]
fn a_person_at_the_gates_adds_no_outage_to_the_db_password_rotation() {
    let sb = sandbox();
    assert_eq!(sb.explore_status(), "200", "the app is healthy before");
    // Every request logs in to the database: the cache would hide up to a second of outage.
    redeploy_with_cache(&sb, Some("0"));
    // Put the app's default back however the test ends.
    let restore = Restore(&sb);

    let mut prompts = 0;
    let interactive = measured(&sb, || {
        let t = common::shipped(&sb).args(&["run", "db-password", "--env", "sandbox"]);
        let mut p = Pty::spawn(&t);
        // Every question, whatever it is, answered like a person who reads it for 3 s.
        while p.session.expect("(y/n)").is_ok() {
            prompts += 1;
            std::thread::sleep(ANSWER_AFTER);
            p.send("y\r");
            p.expect("approved by");
        }
        assert_eq!(p.finish(), 0, "{}", p.output());
    });
    let unattended = measured(&sb, || {
        common::shipped(&sb)
            .args(&["run", "db-password", "--env", "sandbox", "--yes"])
            .run()
            .assert_code(0);
    });

    drop(restore);
    let line = |what: &str, o: &Outage| {
        println!(
            "{what}: {} requests, {} failed, longest outage {} requests ({} ms)",
            o.requests, o.failures, o.longest, o.longest_ms
        );
    };
    println!("db-password on the sandbox, /explore every 50 ms, DB-check cache off");
    line(
        &format!("interactive ({prompts} prompt(s) answered after 3 s)"),
        &interactive,
    );
    line("unattended (--yes)", &unattended);

    assert!(prompts >= 1, "the interactive run asked at its gate");
    assert!(
        interactive.requests > 20 && unattended.requests > 5,
        "the poller ran: {interactive:?} {unattended:?}"
    );
    assert!(
        interactive.failures <= unattended.failures + RESTART_ALLOWANCE,
        "a person's answer was waited for inside the outage: {} failed requests interactively, {} unattended",
        interactive.failures,
        unattended.failures
    );
    let password = common::ssm_value("/musehub/sandbox/DB_PASSWORD");
    assert_eq!(sb.app_env("DB_PASSWORD"), password, "SSM and the app agree");
    assert!(common::db_login(&password), "and the database too");
}
