//! The state directory under attack: two runs racing for one lock, locks and journals naming a
//! reused pid, run ids that climb out of `runs/`, symbolic links and loose modes, torn and
//! damaged journals, a journal that cannot be written (a full disk), keyed fingerprints.
//! Offline: the only outside step is an `http.check` of a server the test itself runs.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Test, contains};

/// An HTTP server answering 200 after `delay`, counting the requests it got.
struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn server(delay: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(delay);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            });
        }
    });
    Server { url, hits }
}

const ENVS: &str = r#"
    version: 1
    environments:
      local:
        description: This machine only
    "#;

/// A secret generated, then an outside step: a request to `url`.
fn gen_then_check(url: &str) -> String {
    format!(
        r#"
        version: 1
        name: gencheck
        summary: a secret, then a request
        inputs:
          token: {{ description: A token, secret: true }}
        steps:
          - id: key
            generate: {{ format: hex, bytes: 24 }}
          - id: check
            http.check: {{ url: "{url}" }}
        "#
    )
}

/// Runs here start with `--no-preflight`: these tests count the requests the steps make, and
/// are about the journal and the locks, not the checks before a run.
fn test_with(url: &str) -> Test {
    Test::new()
        .environments(ENVS)
        .runbook("gencheck", &gen_then_check(url))
        .env("RUNBOOK_INPUT_TOKEN", "tok-STATE-planted-5e1d")
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn run_ids(t: &Test) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(t.state_dir().join("runs"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn journal_path(t: &Test, id: &str) -> std::path::PathBuf {
    t.state_dir().join("runs").join(id).join("journal.jsonl")
}

/// The generated key of a run, read from its (unfinished) journal.
fn generated_key(t: &Test, id: &str) -> String {
    let text = std::fs::read_to_string(journal_path(t, id)).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| r["id"] == "key" && r["status"] == "ok")
        .and_then(|r| r["outputs"][0]["value"].as_str().map(str::to_string))
        .expect("the key in the journal")
}

/// A failed run (its request goes to a closed port), resumable, its secrets in its journal.
fn failed_run() -> (Test, String, String) {
    let t = test_with("http://127.0.0.1:1/");
    t.again(&["run", "gencheck", "--env", "local", "--no-preflight"])
        .assert_code(1);
    let id = run_ids(&t).pop().unwrap();
    let key = generated_key(&t, &id);
    (t, id, key)
}

fn runs_json(t: &Test) -> Vec<serde_json::Value> {
    let out = t.again(&["runs", "--output", "json"]);
    out.assert_code(0);
    common::listed_runs(&out.stdout)
}

// ---------------------------------------------------------------------------------------------
// Locks.

/// Two runs of one runbook on one environment, started together, 50 times: exactly one
/// proceeds each time, the other is refused naming the holder.
#[test]
fn two_runs_started_together_never_both_get_the_lock() {
    let s = server(Duration::from_millis(250));
    let t = test_with(&s.url);
    for round in 0..50 {
        let spawn = || {
            let mut c = t.command();
            c.args(["run", "gencheck", "--env", "local", "--no-preflight"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
        codes.sort();
        let refused = if a.status.code() == Some(2) { &a } else { &b };
        assert_eq!(
            codes,
            [0, 2],
            "round {round}: exactly one run proceeds\n{}\n{}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("is being run by"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 50, "one request per round");
}

fn my_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn plant_lock(t: &Test, record: &serde_json::Value) -> std::path::PathBuf {
    let locks = t.state_dir().join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let path = locks.join("gencheck@local.lock");
    std::fs::write(&path, record.to_string()).unwrap();
    path
}

/// A lock naming a live pid that is not its holder (pid 1 after a reboot) is stale; a lock
/// naming a live process with its right start time is respected.
#[test]
fn a_reused_pid_does_not_hold_a_lock_and_a_live_holder_does() {
    let s = server(Duration::ZERO);
    let t = test_with(&s.url);
    let base = serde_json::json!({
        "user": "x", "host": hostname(), "pid": 1, "run_id": "20000101-000000-0000",
        "started": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    let stale = [
        // pid 1, running, but with another start time.
        serde_json::json!({ "start_time": 987_654_321u64, "boot_id": boot_id() }),
        // Written during another boot.
        serde_json::json!({ "start_time": 1, "boot_id": "00000000-0000-0000-0000-000000000000" }),
        // An older version's record: no start time, written long before pid 1 started.
        serde_json::json!({ "started": "2001-01-01T00:00:00Z" }),
    ];
    for extra in stale {
        let mut rec = base.clone();
        rec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let path = plant_lock(&t, &rec);
        let run = t.again(&["run", "gencheck", "--env", "local", "--no-preflight"]);
        run.assert_code(0);
        assert!(!path.exists(), "taken over and released: {rec}");
    }
    // The holder is this test process, with its own start time and boot.
    let mut live = base.clone();
    live["pid"] = std::process::id().into();
    live["start_time"] = my_start_time().into();
    live["boot_id"] = boot_id().into();
    let path = plant_lock(&t, &live);
    let refused = t.again(&["run", "gencheck", "--env", "local", "--no-preflight"]);
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains(&format!("pid {}", std::process::id())),
        "{}",
        refused.stderr
    );
    assert!(path.exists(), "a live holder's lock is left alone");
    // The same live process in an older record (no start time, written now): respected too.
    let mut old = base;
    old["pid"] = std::process::id().into();
    plant_lock(&t, &old);
    t.again(&["run", "gencheck", "--env", "local", "--no-preflight"])
        .assert_code(2);
}

/// A lock whose holder cannot be read (empty, garbage) is never taken for stale.
#[test]
fn an_unreadable_lock_is_never_taken_over() {
    let s = server(Duration::ZERO);
    let t = test_with(&s.url);
    for text in ["", "{\"user\":", "not json"] {
        let locks = t.state_dir().join("locks");
        std::fs::create_dir_all(&locks).unwrap();
        let path = locks.join("gencheck@local.lock");
        std::fs::write(&path, text).unwrap();
        let refused = t.again(&["run", "gencheck", "--env", "local", "--no-preflight"]);
        refused.assert_code(2);
        assert!(
            refused.stderr.contains("cannot be read") && refused.stderr.contains("rm "),
            "{}",
            refused.stderr
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 0, "nothing ran");
}

/// A journal naming a reused pid (pid 1, another start time) is a crashed run, not a running
/// one: it can be resumed and abandoned.
#[test]
fn a_journal_naming_a_reused_pid_is_not_running() {
    let (t, id, key) = failed_run();
    let path = journal_path(&t, &id);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["pid"] = 1.into();
    lines[0]["start_time"] = 987_654_321u64.into();
    // Drop the end: as if the run had died.
    lines.retain(|r| r["rec"] != "end");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let runs = runs_json(&t);
    assert_eq!(runs[0]["status"], "crashed", "{runs:?}");
    assert_eq!(runs[0]["resumable"], true);
    let done = t.again(&["abandon", &id]);
    done.assert_code(0);
    assert!(!contains(&done.all_bytes(), &key));
}

// ---------------------------------------------------------------------------------------------
// Run ids.

#[test]
fn a_run_id_cannot_leave_the_state_directory() {
    let (t, _, _) = failed_run();
    // A journal outside the state directory, as `../../outside/x` would find it.
    let outside = t.dir.path().join("outside/x");
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("journal.jsonl");
    std::fs::copy(journal_path(&t, &run_ids(&t)[0]), &victim).unwrap();
    let before = std::fs::read(&victim).unwrap();
    for args in [
        vec!["resume", "../../outside/x"],
        vec!["abandon", "../../outside/x"],
        vec!["resume", "/etc"],
        vec!["abandon", "20260101-000000-abcd/../.."],
        vec!["resume", "20260101-000000-ABCD"],
    ] {
        let run = t.again(&args);
        run.assert_code(2);
        assert!(run.stderr.contains("is not a run id"), "{}", run.stderr);
        assert!(run.stderr.contains("runbook runs"), "{}", run.stderr);
    }
    assert_eq!(std::fs::read(&victim).unwrap(), before, "untouched");
}

// ---------------------------------------------------------------------------------------------
// Symbolic links and modes.

#[test]
fn a_symlinked_audit_log_or_journal_is_never_written_through() {
    let (t, id, key) = failed_run();
    let target = t.dir.path().join("elsewhere.txt");
    std::fs::write(&target, "precious\n").unwrap();

    // The audit log: every run appends to it.
    let audit = t.state_dir().join("audit.jsonl");
    std::fs::remove_file(&audit).unwrap();
    std::os::unix::fs::symlink(&target, &audit).unwrap();
    let refused = t.again(&["run", "gencheck", "--env", "local", "--no-preflight"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("symbolic link"),
        "{}",
        refused.stderr
    );
    assert_eq!(run_ids(&t).len(), 1, "nothing ran");
    let refused = t.again(&["abandon", &id]);
    refused.assert_code(2);
    std::fs::remove_file(&audit).unwrap();

    // The journal: a resume or an abandon would rewrite it.
    let journal = journal_path(&t, &id);
    let copy = t.dir.path().join("journal-copy.jsonl");
    std::fs::rename(&journal, &copy).unwrap();
    std::os::unix::fs::symlink(&target, &journal).unwrap();
    for args in [vec!["resume", id.as_str()], vec!["abandon", id.as_str()]] {
        let run = t.again(&args);
        run.assert_code(2);
        assert!(
            run.stderr.contains("symbolic link"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    // Put back, the run is still there to be abandoned.
    std::fs::remove_file(&journal).unwrap();
    std::fs::rename(&copy, &journal).unwrap();
    let done = t.again(&["abandon", &id]);
    done.assert_code(0);
    assert!(!contains(&done.all_bytes(), &key));
}

#[test]
fn a_state_directory_others_can_write_is_refused() {
    let s = server(Duration::ZERO);
    let t = test_with(&s.url);
    let state = t.state_dir();
    for (dir, m) in [("", 0o777), ("", 0o770), ("runs", 0o757), ("locks", 0o722)] {
        std::fs::create_dir_all(state.join("runs")).unwrap();
        std::fs::create_dir_all(state.join("locks")).unwrap();
        let p = state.join(dir);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        for args in [
            vec!["run", "gencheck", "--env", "local", "--no-preflight"],
            vec!["runs"],
        ] {
            let run = t.again(&args);
            run.assert_code(2);
            assert!(
                run.stderr.contains("writable by other users") && run.stderr.contains("chmod go-w"),
                "{dir} {m:o}: {}",
                run.stderr
            );
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // A directory of the state that is a symbolic link.
    let elsewhere = t.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::remove_dir(state.join("runs")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, state.join("runs")).unwrap();
    let run = t.again(&["run", "gencheck", "--env", "local", "--no-preflight"]);
    run.assert_code(2);
    assert!(run.stderr.contains("symbolic link"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(s.hits.load(Ordering::SeqCst), 0, "nothing ran");

    // Owned by someone else (needs root to arrange; said, not skipped silently).
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::remove_file(state.join("runs")).unwrap();
        std::fs::create_dir(state.join("runs")).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), None).unwrap();
        let run = t.again(&["run", "gencheck", "--env", "local", "--no-preflight"]);
        run.assert_code(2);
        assert!(
            run.stderr.contains("is owned by uid 65534"),
            "{}",
            run.stderr
        );
    } else {
        eprintln!("not root: the other-owner case needs chown and is not run here");
    }
}

#[test]
fn a_new_state_directory_is_private() {
    let s = server(Duration::ZERO);
    let t = test_with(&s.url);
    let xdg = t.dir.path().join("xdg");
    // No --state-dir: the default under $XDG_STATE_HOME.
    let mut c = std::process::Command::new(common::BIN);
    c.arg("--dir")
        .arg(t.runbooks_dir())
        .args(["run", "gencheck", "--env", "local", "--no-preflight"])
        .env("XDG_STATE_HOME", &xdg)
        .env_remove("RUNBOOK_STATE_DIR")
        .env("RUNBOOK_INPUT_TOKEN", "tok-STATE-planted-5e1d");
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = xdg.join("runbook");
    for d in [state.clone(), state.join("runs"), state.join("locks")] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    assert_eq!(mode(&state.join("fingerprint.key")), 0o600);
    assert_eq!(mode(&state.join("audit.jsonl")), 0o600);
}

// ---------------------------------------------------------------------------------------------
// Torn and damaged journals.

/// A torn last record: the run stays listed, resumable and abandonable; a record appended
/// after it is a whole line.
#[test]
fn a_torn_last_record_keeps_the_run_and_the_next_record() {
    let (t, id, key) = failed_run();
    let path = journal_path(&t, &id);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(br#"{"rec":"step","phase":"main","id":"chec"#)
        .unwrap();
    drop(f);
    let listed = t.again(&["runs"]);
    listed.assert_code(0);
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);
    assert!(listed.stdout.contains("failed *"), "{}", listed.stdout);
    assert!(listed.stderr.contains("incomplete"), "{}", listed.stderr);

    // Resumed (it fails again at the same step): every line of the journal is whole.
    let resumed = t.again(&["resume", &id, "--no-preflight"]);
    resumed.assert_code(1);
    assert!(
        resumed.stderr.contains("key: skipped"),
        "{}",
        resumed.stderr
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("a whole record");
    }
    assert!(text.contains(r#""rec":"resumed""#));

    let done = t.again(&["abandon", &id]);
    done.assert_code(0);
    assert!(!contains(&done.all_bytes(), &key));
}

/// Invalid UTF-8 inside a record hides neither the run nor the rest of its journal; even a
/// damaged first record leaves the run there to be abandoned, its secrets erased.
#[test]
fn invalid_utf8_in_a_journal_hides_nothing() {
    for damaged_line in [2usize, 0] {
        let (t, id, key) = failed_run();
        let path = journal_path(&t, &id);
        let mut lines: Vec<Vec<u8>> = std::fs::read(&path)
            .unwrap()
            .split(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        // An invalid byte inside a string of the record.
        let at = lines[damaged_line].len() / 2;
        lines[damaged_line].insert(at, 0xff);
        std::fs::write(&path, lines.join(&b'\n')).unwrap();

        let listed = t.again(&["runs", "--output", "json"]);
        listed.assert_code(0);
        assert!(listed.stdout.contains(&id), "{}", listed.stdout);
        assert!(
            listed
                .stderr
                .contains(&format!("line {} of", damaged_line + 1)),
            "{}",
            listed.stderr
        );
        assert!(listed.stderr.contains("invalid UTF-8"), "{}", listed.stderr);
        let run = &runs_json(&t)[0];
        if damaged_line == 0 {
            // Which runbook it ran is lost with the first record; how it ended is not.
            assert_eq!(run["runbook"], "?", "{run}");
            assert_eq!(run["status"], "failed", "{run}");
            assert_eq!(run["resumable"], false);
            let refused = t.again(&["resume", &id]);
            refused.assert_code(2);
            assert!(
                refused.stderr.contains("runbook abandon"),
                "{}",
                refused.stderr
            );
        } else {
            assert_eq!(run["status"], "failed", "{run}");
            assert_eq!(run["resumable"], true);
        }
        assert_eq!(run["abandonable"], true);
        let done = t.again(&["abandon", &id]);
        done.assert_code(0);
        assert!(!contains(&done.all_bytes(), &key), "line {damaged_line}");
        assert!(!contains(&done.all_bytes(), "tok-STATE-planted-5e1d"));
    }
}

// ---------------------------------------------------------------------------------------------
// A journal that cannot be written.

/// Writes fail as on a full disk (`RLIMIT_FSIZE`: the journal cannot grow past 1 KiB): the
/// run stops before its outside step and says what is left on disk and how to remove it.
#[test]
fn a_journal_that_cannot_grow_stops_the_run_before_its_outside_step() {
    let s = server(Duration::ZERO);
    // A key big enough that its record does not fit under the limit.
    let rb = gen_then_check(&s.url).replace("bytes: 24", "bytes: 600");
    let t = Test::new()
        .environments(ENVS)
        .runbook("gencheck", &rb)
        .env("RUNBOOK_INPUT_TOKEN", "tok-STATE-planted-5e1d");
    let mut c = std::process::Command::new("sh");
    let inner = t.command();
    let mut line = String::from("trap '' XFSZ; ulimit -f 2; exec");
    line.push_str(&format!(" '{}'", common::BIN));
    for a in inner.get_args() {
        line.push_str(&format!(" '{}'", a.to_str().unwrap()));
    }
    line.push_str(" run gencheck --env local --no-preflight");
    c.arg("-c").arg(&line);
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        0,
        "the outside step never ran"
    );
    let id = run_ids(&t).pop().unwrap();
    assert!(stderr.contains("could not be written"), "{stderr}");
    assert!(
        stderr.contains(&journal_path(&t, &id).display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("secret values"), "{stderr}");
    assert!(
        stderr.contains(&format!("runbook abandon {id}")),
        "{stderr}"
    );
    // Every line that made it is whole.
    for l in std::fs::read_to_string(journal_path(&t, &id))
        .unwrap()
        .lines()
    {
        serde_json::from_str::<serde_json::Value>(l).expect("a whole record");
    }
    let done = t.again(&["abandon", &id]);
    done.assert_code(0);
    assert!(!contains(&done.all_bytes(), "tok-STATE-planted-5e1d"));
}

/// The run's last write (the journal rewritten without its secrets) fails: not "done" and
/// exit 0, but what is left on disk, exit 1. (Debug builds fail the journal's writes on
/// request; release builds have no such switch.)
#[test]
fn a_run_whose_end_cannot_be_recorded_says_its_secrets_are_still_on_disk() {
    let s = server(Duration::ZERO);
    // Five appends (start, two steps started and finished), then the final rewrite fails.
    let t = test_with(&s.url)
        .env("RUNBOOK_TEST_FAIL_JOURNAL_AFTER", "5")
        .args(&["run", "gencheck", "--env", "local", "--no-preflight"]);
    let run = t.run();
    run.assert_code(1);
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    let id = run_ids(&t).pop().unwrap();
    assert!(
        run.stderr.contains("still holds this run's secret values"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("runbook abandon {id}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no audit line"), "{}", run.stderr);
    assert!(
        contains(&run.all_bytes(), "tok-STATE-planted-5e1d"),
        "the secret is where it says"
    );
}

// ---------------------------------------------------------------------------------------------
// Fingerprints.

#[test]
fn fingerprints_are_keyed_per_state_directory() {
    let s = server(Duration::ZERO);
    let secret = "tok-STATE-planted-5e1d";
    let fps: Vec<String> = (0..2)
        .map(|_| {
            let t = test_with(&s.url);
            t.again(&["run", "gencheck", "--env", "local", "--no-preflight"])
                .assert_code(0);
            let key = t.state_dir().join("fingerprint.key");
            assert_eq!(std::fs::read(&key).unwrap().len(), 32);
            assert_eq!(mode(&key), 0o600);
            let audit = std::fs::read_to_string(t.state_dir().join("audit.jsonl")).unwrap();
            let line: serde_json::Value =
                serde_json::from_str(audit.lines().next().unwrap()).unwrap();
            let fp = line["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["input"] == "token")
                .unwrap()["fingerprint"]
                .as_str()
                .unwrap()
                .to_string();
            // The journal's fingerprint is the audit's.
            let id = run_ids(&t).pop().unwrap();
            let journal = std::fs::read_to_string(journal_path(&t, &id)).unwrap();
            assert!(journal.contains(&fp));
            assert!(!journal.contains(secret));
            fp
        })
        .collect();
    for fp in &fps {
        let hex = fp.strip_prefix("hmac-sha256:").expect(fp);
        assert_eq!(hex.len(), 32, "{fp}");
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(fps[0], fps[1], "the same secret, two keys");

    // A key file others can read, or a link, is refused before anything runs.
    let t = test_with(&s.url);
    t.again(&["run", "gencheck", "--env", "local", "--no-preflight"])
        .assert_code(0);
    let key = t.state_dir().join("fingerprint.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = t.again(&["run", "gencheck", "--env", "local", "--no-preflight"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("fingerprint.key"),
        "{}",
        refused.stderr
    );
    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink("/dev/null", &key).unwrap();
    let refused = t.again(&["run", "gencheck", "--env", "local", "--no-preflight"]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("symbolic link"),
        "{}",
        refused.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Nested runs.

fn nested(url: &str) -> Test {
    Test::new()
        .environments(ENVS)
        .runbook(
            "inner",
            &format!(
                r#"
                version: 1
                name: inner
                summary: a request
                steps:
                  - id: check
                    http.check: {{ url: "{url}" }}
                "#
            ),
        )
        .runbook(
            "outer",
            r#"
            version: 1
            name: outer
            summary: runs inner, or not
            inputs:
              which: { description: Which, choices: [inner, none] }
            steps:
              - id: first
                generate: { format: hex }
              - id: nested
                when: "inputs.which != 'none'"
                runbook.run: { name: "{{ inputs.which }}" }
            "#,
        )
        .runbook(
            "none",
            r#"
            version: 1
            name: none
            summary: nothing outside
            steps:
              - id: k
                generate: { format: hex }
            "#,
        )
}

/// A runbook run inside another takes its own lock: someone running it refuses the whole run
/// before its first step; while the run goes on, it holds that lock.
#[test]
fn a_nested_runbook_runs_under_its_own_lock() {
    let s = server(Duration::from_millis(1500));
    let t = nested(&s.url);
    let live = serde_json::json!({
        "user": "x", "host": hostname(), "pid": std::process::id(), "run_id": "20000101-000000-0000",
        "started": "2000-01-01T00:00:00Z", "start_time": my_start_time(), "boot_id": boot_id(),
    });
    let locks = t.state_dir().join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let inner_lock = locks.join("inner@local.lock");
    std::fs::write(&inner_lock, live.to_string()).unwrap();
    let refused = t.again(&["run", "outer", "--env", "local", "--input", "which=inner"]);
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("`inner` on `local` is being run by"),
        "{}",
        refused.stderr
    );
    assert!(run_ids(&t).is_empty(), "nothing ran");
    // Another choice does not need it.
    t.again(&["run", "outer", "--env", "local", "--input", "which=none"])
        .assert_code(0);
    std::fs::remove_file(&inner_lock).unwrap();

    // While outer runs inner, inner cannot be run on its own.
    let mut c = t.command();
    c.args(["run", "outer", "--env", "local", "--input", "which=inner"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    for _ in 0..100 {
        if s.hits.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = t.again(&["run", "inner", "--env", "local"]);
    second.assert_code(2);
    assert!(
        second.stderr.contains(&format!("pid {}", child.id())),
        "{}",
        second.stderr
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!inner_lock.exists(), "released with the run");
}
