//! A builder harness over the real binary: a runbooks directory, arguments, environment, and
//! the output and exit code, so a test reads like a terminal session.
//!
//! A test states what the terminal shows, whole:
//!
//! ```ignore
//! Test::new()
//!     .args(&["plan", "rotat", "--env", "sandbox"])
//!     .stderr("error[runbook::unknown-runbook]: …\n")
//!     .status(2);
//! ```
//!
//! `status` runs the binary and compares the exit code, stdout and stderr exactly (an output
//! not stated must be empty), after [`Redactor`] has replaced what changes from run to run:
//! times, durations, run ids and temporary paths. `Run::events` reads `--output json` lines
//! and `Run::event_log` a run's `events.jsonl`, both as the library's own `Event`.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod pty;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use runbook::engine::event::{Event, Stamped};

pub const BIN: &str = env!("CARGO_BIN_EXE_runbook");

/// Remove the common leading indentation of a multi-line string literal.
pub fn unindent(s: &str) -> String {
    let s = s.strip_prefix('\n').unwrap_or(s);
    let indent = s
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: String = s
        .lines()
        .map(|l| {
            if l.len() >= indent {
                &l[indent..]
            } else {
                l.trim_start()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// An expected output. A literal that starts with a newline is a block written at the code's
/// indentation: [`unindent`]ed, every line ending in a newline, and a last line of nothing but
/// that indentation (the closing quote on a line of its own) is not a line of the output. Any
/// other text is taken as it is (leading spaces included).
pub fn expected(text: &str) -> String {
    if !text.starts_with('\n') {
        return text.to_string();
    }
    let mut s = unindent(text);
    if text
        .rsplit('\n')
        .next()
        .is_some_and(|last| !last.is_empty() && last.trim().is_empty())
    {
        s.pop();
    }
    s
}

/// The repository root (where `runbooks/` and `scripts/` are).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Test {
    /// Shared with every [`Run`], so the files outlive the builder.
    pub dir: std::sync::Arc<tempfile::TempDir>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    /// The working directory, relative to `dir` (`None`: `dir` itself).
    cwd: Option<PathBuf>,
    /// What [`Test::status`] expects on stdout and stderr (unindented; `None`: nothing).
    want_stdout: Option<String>,
    want_stderr: Option<String>,
    /// Replacements of this test's own, applied after the standard ones.
    redactions: Vec<(regex::Regex, String)>,
}

pub struct Run {
    _dir: std::sync::Arc<tempfile::TempDir>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub state: PathBuf,
}

impl Run {
    /// Everything the tool wrote: stdout, stderr and every file under the state directory.
    pub fn all_bytes(&self) -> Vec<u8> {
        let mut all = self.stdout.clone().into_bytes();
        all.extend_from_slice(self.stderr.as_bytes());
        for f in walk(&self.state) {
            all.extend(std::fs::read(f).unwrap_or_default());
        }
        all
    }

    /// Abandon every unfinished run of this state directory. An unfinished run keeps its
    /// secrets in its journal (so it can be resumed); abandoning erases them. Tests of failing
    /// runs call this before searching `all_bytes()` for planted secrets.
    pub fn abandon_unfinished(&self) -> &Run {
        let out = Command::new(BIN)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["runs", "--output", "json"])
            .output()
            .unwrap();
        for r in listed_runs(&String::from_utf8_lossy(&out.stdout)) {
            if r["resumable"] == true {
                let id = r["run_id"].as_str().unwrap();
                // Captured, not inherited: a test's own output is what it asserts on.
                let out = Command::new(BIN)
                    .arg("--state-dir")
                    .arg(&self.state)
                    .args(["abandon", id])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "abandon {id}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        self
    }

    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Replaces what changes from one run to the next with a fixed word, so a test can state an
/// output whole: the test's directory (`[TMP]`), other temporary paths (`[TEMP]`), RFC 3339
/// times (`[TIME]`), run ids (`[RUN-ID]`) and the durations the tool measured (`in [DURATION]`
/// for `in 0ms`, `in 1.5s`, `in 2m05s`).
pub struct Redactor {
    dirs: Vec<String>,
    rules: Vec<(regex::Regex, String)>,
}

impl Redactor {
    pub fn new(dir: &Path, extra: &[(regex::Regex, String)]) -> Redactor {
        let mut dirs = vec![dir.display().to_string()];
        if let Ok(real) = dir.canonicalize() {
            dirs.push(real.display().to_string());
        }
        let temp = regex::escape(std::env::temp_dir().to_string_lossy().trim_end_matches('/'));
        let mut rules: Vec<(regex::Regex, String)> = [
            (format!(r"{temp}/[^\s/:`'\x22]+"), "[TEMP]"),
            (
                r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})".into(),
                "[TIME]",
            ),
            (r"\b\d{8}-\d{6}-[0-9a-f]{4}\b".into(), "[RUN-ID]"),
            // Only where the tool prints one (`ok in 4ms`, `again in 1.5s`): a duration in a
            // message (`from 1s to 10m`) is part of what it says.
            (
                r"\bin (?:\d+m\d{2}s|\d+\.\ds|\d+ms)\b".into(),
                "in [DURATION]",
            ),
        ]
        .into_iter()
        .map(|(p, w)| (regex::Regex::new(&p).unwrap(), w.to_string()))
        .collect();
        rules.extend(extra.iter().cloned());
        Redactor { dirs, rules }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        // The longest first: a canonical path may extend the given one.
        let mut dirs = self.dirs.clone();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
        for d in &dirs {
            out = out.replace(d.as_str(), "[TMP]");
        }
        for (re, with) in &self.rules {
            out = re.replace_all(&out, with.as_str()).into_owned();
        }
        out
    }
}

/// What differs between two texts, line by line, for a failed expectation.
fn mismatch(what: &str, want: &str, have: &str) -> String {
    let (w, h): (Vec<&str>, Vec<&str>) = (want.lines().collect(), have.lines().collect());
    let first = (0..w.len().max(h.len()))
        .find(|&i| w.get(i) != h.get(i))
        .unwrap_or(0);
    let mut out = format!("--- {what}: first difference at line {}\n", first + 1);
    for (i, l) in h.iter().enumerate() {
        let mark = if w.get(i) == Some(l) { ' ' } else { '+' };
        out.push_str(&format!("{mark} {l}\n"));
    }
    for (i, l) in w.iter().enumerate() {
        if h.get(i) != Some(l) {
            out.push_str(&format!("- line {}: {l}\n", i + 1));
        }
    }
    if want.ends_with('\n') != have.ends_with('\n') {
        out.push_str("(the two differ in their last newline)\n");
    }
    out.push_str(&format!("--- the {what} as a literal:\n{have:?}\n"));
    out
}

/// Events as the library writes them (`--output json` lines, `events.jsonl`), typed: every
/// line must parse, so a change of the format fails here rather than in a grep.
/// The runs of `runbook runs --output json` (one document, `format` 1, its `runs` list).
pub fn listed_runs(stdout: &str) -> Vec<serde_json::Value> {
    let doc: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not one document ({e}): {stdout}"));
    assert_eq!(doc["format"], 1, "{stdout}");
    doc["runs"].as_array().expect("a list of runs").clone()
}

/// The problems of `runbook check --format json` (one document, `format` 1, its `problems`).
pub fn checked_problems(stdout: &str) -> Vec<serde_json::Value> {
    let doc: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not one document ({e}): {stdout}"));
    assert_eq!(doc["format"], 1, "{stdout}");
    let problems = doc["problems"]
        .as_array()
        .expect("a list of problems")
        .clone();
    let errors = problems.iter().filter(|p| p["severity"] == "error").count();
    assert_eq!(doc["errors"], errors, "{stdout}");
    assert_eq!(doc["warnings"], problems.len() - errors, "{stdout}");
    assert_eq!(doc["ok"], errors == 0, "{stdout}");
    problems
}

pub fn parse_events(text: &str, from: &str) -> Vec<Event> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Stamped>(l)
                .unwrap_or_else(|e| panic!("line {} of {from} is not an event ({e}): {l}", i + 1))
                .event
        })
        .collect()
}

impl Run {
    /// The events of `--output json`, in order.
    pub fn events(&self) -> Vec<Event> {
        parse_events(&self.stdout, "stdout")
    }

    /// The events of this state directory's only run, from its `events.jsonl`.
    pub fn event_log(&self) -> Vec<Event> {
        let runs: Vec<PathBuf> = std::fs::read_dir(self.state.join("runs"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert_eq!(runs.len(), 1, "not one run: {runs:?}");
        let path = runs[0].join("events.jsonl");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        parse_events(&text, &path.display().to_string())
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

impl Test {
    /// A fresh directory with an empty `runbooks/` and a private state directory.
    pub fn new() -> Test {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
        Test {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
            want_stdout: None,
            want_stderr: None,
            redactions: Vec::new(),
        }
    }

    /// Use the repository's `runbooks/environments.yaml` (production, staging, sandbox).
    pub fn with_repo_environments(self) -> Test {
        std::fs::copy(
            repo().join("runbooks/environments.yaml"),
            self.runbooks_dir().join("environments.yaml"),
        )
        .unwrap();
        self
    }

    pub fn runbooks_dir(&self) -> PathBuf {
        self.dir.path().join("runbooks")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Write `runbooks/<name>.yaml` (the text is unindented).
    pub fn runbook(self, name: &str, yaml: &str) -> Test {
        std::fs::write(
            self.runbooks_dir().join(format!("{name}.yaml")),
            unindent(yaml),
        )
        .unwrap();
        self
    }

    pub fn environments(self, yaml: &str) -> Test {
        std::fs::write(
            self.runbooks_dir().join("environments.yaml"),
            unindent(yaml),
        )
        .unwrap();
        self
    }

    pub fn args(mut self, args: &[&str]) -> Test {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Test {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn stdin(mut self, s: &str) -> Test {
        self.stdin = Some(s.into());
        self
    }

    /// The command that `run` would execute (for PTY tests).
    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .arg("--dir")
            .arg(self.runbooks_dir())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(&self.args)
            .env("NO_COLOR", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Run the tool again in the same directory and environment with other arguments
    /// (e.g. `resume` after a run).
    pub fn again(&self, args: &[&str]) -> Run {
        self.then(args).run()
    }

    /// A new test in the same directory and environment, with other arguments and no
    /// expectations yet: `t.then(&["resume", id]).stderr("…").status(0)`.
    pub fn then(&self, args: &[&str]) -> Test {
        Test {
            dir: self.dir.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: self.env.clone(),
            stdin: None,
            cwd: self.cwd.clone(),
            want_stdout: None,
            want_stderr: None,
            redactions: self.redactions.clone(),
        }
    }

    /// Run in `rel` (relative to the test's directory) instead of the directory itself.
    pub fn current_dir(mut self, rel: &str) -> Test {
        self.cwd = Some(rel.into());
        self
    }

    /// The exact stdout [`Test::status`] expects, after redaction (see [`expected`]).
    pub fn stdout(mut self, text: &str) -> Test {
        self.want_stdout = Some(expected(text));
        self
    }

    /// The exact stderr [`Test::status`] expects, after redaction (see [`expected`]).
    pub fn stderr(mut self, text: &str) -> Test {
        self.want_stderr = Some(expected(text));
        self
    }

    /// One more replacement for this test's outputs (a regex), after the standard ones.
    pub fn redact(mut self, pattern: &str, with: &str) -> Test {
        self.redactions
            .push((regex::Regex::new(pattern).unwrap(), with.to_string()));
        self
    }

    /// What this test's outputs are compared through.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.dir.path(), &self.redactions)
    }

    /// Run, and assert exit code 0 and the stated outputs.
    #[track_caller]
    pub fn success(self) -> Run {
        self.status(0)
    }

    /// Run, and assert the exit code and the stated outputs exactly: stdout and stderr, once
    /// redacted, are what [`Test::stdout`] and [`Test::stderr`] said, or empty when they said
    /// nothing. The [`Run`] keeps the unredacted text.
    #[track_caller]
    pub fn status(self, code: i32) -> Run {
        let run = self.run();
        let r = self.redactor();
        let (stdout, stderr) = (r.apply(&run.stdout), r.apply(&run.stderr));
        let want_out = self.want_stdout.as_deref().unwrap_or("");
        let want_err = self.want_stderr.as_deref().unwrap_or("");
        let mut bad = Vec::new();
        if run.code != code {
            bad.push(format!("exit code {} instead of {code}", run.code));
        }
        if stdout != want_out {
            bad.push(mismatch("stdout", want_out, &stdout));
        }
        if stderr != want_err {
            bad.push(mismatch("stderr", want_err, &stderr));
        }
        if !bad.is_empty() {
            panic!(
                "`runbook {}` did not do what the test says:\n{}",
                self.args.join(" "),
                bad.join("\n")
            );
        }
        run
    }

    pub fn run(&self) -> Run {
        let mut c = self.command();
        if let Some(rel) = &self.cwd {
            c.current_dir(self.dir.path().join(rel));
        }
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn runbook");
        if let Some(s) = &self.stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            _dir: self.dir.clone(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            state: self.state_dir(),
        }
    }
}

/// The sandbox's settings (from `scripts/sandbox env`). Tests that need the real services call
/// this; it fails loudly when the sandbox is not up, never skips.
pub struct Sandbox {
    pub state: PathBuf,
    pub vars: Vec<(String, String)>,
}

impl Sandbox {
    pub fn get(&self, k: &str) -> String {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("sandbox has no {k}"))
    }
}

pub fn sandbox() -> Sandbox {
    let out = Command::new(repo().join("scripts/sandbox"))
        .arg("env")
        .output()
        .expect("run scripts/sandbox env");
    assert!(
        out.status.success(),
        "scripts/sandbox env failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vars: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches('\'').trim_matches('"').to_string(),
            )
        })
        .collect();
    let state = vars
        .iter()
        .find(|(k, _)| k == "RUNBOOK_SANDBOX")
        .map(|(_, v)| PathBuf::from(v))
        .expect("RUNBOOK_SANDBOX");
    assert!(
        state.join("ssh/known_hosts").exists(),
        "the sandbox is not up: run `scripts/sandbox up` (the test command does this)"
    );
    Sandbox { state, vars }
}

impl Test {
    /// Point the AWS SDK at the sandbox (credentials, region, no IMDS).
    pub fn with_sandbox(mut self, sb: &Sandbox) -> Test {
        for (k, v) in &sb.vars {
            if k.starts_with("AWS_") {
                self.env.push((k.clone(), v.clone()));
            }
        }
        self.with_repo_environments()
    }
}

/// A name no other test (or earlier run) uses: SSM parameters, roles, the HTTP server's keys.
pub fn unique(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{tag}-{}-{nanos}-{n}", std::process::id())
}

/// True when `needle` occurs in `haystack` (bytes the tool wrote, a server log).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

impl Run {
    /// The `step_finished` event of step `id` in the `--output json` lines.
    pub fn finished(&self, id: &str) -> serde_json::Value {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "step_finished" && e["id"] == id)
            .unwrap_or_else(|| {
                panic!(
                    "no step_finished for {id}\n{}\n{}",
                    self.stdout, self.stderr
                )
            })
    }
}

/// A parameter's decrypted value, read by the test straight from the sandbox's SSM API.
pub fn ssm_value(name: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", "http://127.0.0.1:5000/"])
        .args(["-H", "X-Amz-Target: AmazonSSM.GetParameter", "-H", "Content-Type: application/x-amz-json-1.1"])
        .args([
            "-H",
            "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0",
        ])
        .args(["-d", &format!(r#"{{"Name":"{name}","WithDecryption":true}}"#)])
        .output()
        .unwrap();
    assert!(out.status.success(), "GetParameter {name}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Parameter"]["Value"].as_str().unwrap().to_string()
}

/// The stand-in MuseHub host of the sandbox, as the rotation tests look at it.
impl Sandbox {
    /// A value of the app's `.env` (what the last deploy fetched from SSM).
    pub fn app_env(&self, key: &str) -> String {
        let text = std::fs::read_to_string(self.state.join("musehub/.env")).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    }

    /// The status code of the app's `/explore` (200 only while it can log in to the database).
    pub fn explore_status(&self) -> String {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(self.get("SANDBOX_CA_FILE"))
            .arg("https://127.0.0.1:1337/explore")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many times the app was deployed.
    pub fn deploys(&self) -> usize {
        std::fs::read_to_string(self.state.join("musehub/deploy.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }
}

/// Can the role the app logs in as (`DB_USER` in SSM: `musehub`, or the other login role
/// after an alternating rotation) log in to the sandbox database with this password? (psql
/// reads it from the environment, not the command line.)
pub fn db_login(password: &str) -> bool {
    let user = ssm_value("/musehub/sandbox/DB_USER");
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5433",
            "-U",
            &user,
            "-d",
            "musehub",
            "-qAtX",
            "-c",
            "select 1",
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap()
        .status
        .success()
}

/// A test directory with the repository's runbooks and environments, pointed at the sandbox.
pub fn shipped(sb: &Sandbox) -> Test {
    let t = Test::new().with_sandbox(sb);
    for f in walk(&repo().join("runbooks")) {
        std::fs::copy(&f, t.runbooks_dir().join(f.file_name().unwrap())).unwrap();
    }
    t
}

/// Every local process's command line, sampled until stopped.
pub struct ArgvSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<Vec<u8>>>>,
    thread: std::thread::JoinHandle<()>,
}

impl ArgvSampler {
    pub fn start() -> ArgvSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                        v.lock().unwrap().insert(c);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        ArgvSampler { stop, seen, thread }
    }

    pub fn finish(self) -> std::collections::BTreeSet<Vec<u8>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
        std::sync::Arc::try_unwrap(self.seen)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// Processes whose command line names the SSH control directory of run process `pid`
/// (`runbook-ssh-<pid>-…`): that run's masters.
pub fn masters_of(pid: u32) -> usize {
    let needle = format!("runbook-ssh-{pid}-");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .count()
}

/// The consumers of MuseHub's rotated secrets in the sandbox, checked from the test itself.
impl Sandbox {
    /// The R2 stand-in's dashboard (`scripts/sandbox r2 new-token`): a new token's key id and
    /// secret, shown once.
    pub fn r2_new_token(&self) -> (String, String) {
        let out = self.r2(&["new-token"]);
        let text = String::from_utf8_lossy(&out);
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} from r2 new-token"))
                .to_string()
        };
        (get("R2_ACCESS_KEY_ID="), get("R2_SECRET_ACCESS_KEY="))
    }

    /// Revoke a token in the R2 stand-in's dashboard.
    pub fn r2_revoke(&self, key_id: &str) {
        self.r2(&["revoke", key_id]);
    }

    /// The key ids of the R2 stand-in's live tokens.
    pub fn r2_live(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.r2(&["list"]))
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn r2(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new(repo().join("scripts/sandbox"))
            .arg("r2")
            .args(args)
            .env("RUNBOOK_SANDBOX", &self.state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/sandbox r2 {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// What the R2 stand-in answers a ListObjectsV2 of the sandbox bucket signed with this
    /// key pair: `ok`, or the S3 error code (boto3 of the sandbox's venv; the keys go through
    /// its environment, not its command line).
    pub fn r2_list_objects(&self, key_id: &str, secret: &str) -> String {
        let script = "import boto3, os, sys\n\
            from botocore.exceptions import ClientError\n\
            c = boto3.client('s3', endpoint_url=os.environ['R2_URL'], region_name='auto')\n\
            try:\n    c.list_objects_v2(Bucket=os.environ['R2_BUCKET']); print('ok')\n\
            except ClientError as e:\n    print(e.response['Error']['Code'])\n";
        let out = Command::new(self.state.join("venv/bin/python"))
            .args(["-c", script])
            .env("AWS_ACCESS_KEY_ID", key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("R2_URL", self.get("SANDBOX_R2_URL"))
            .env("R2_BUCKET", self.get("SANDBOX_R2_BUCKET"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The status of a request to the app (curl; headers through a file, never argv).
    pub fn app_status(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path().join("headers");
        let text: String = headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        std::fs::write(&h, text).unwrap();
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                method,
                "--cacert",
            ])
            .arg(self.get("SANDBOX_CA_FILE"))
            .arg("-H")
            .arg(format!("@{}", h.display()))
            .args(["--data-binary", body])
            .arg(format!("https://127.0.0.1:1337{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The app's answer to a webhook delivery of `body` signed with `key` (GitHub's way).
    pub fn webhook_status(&self, key: &str, body: &str) -> String {
        let mac = runbook::state::hmac_sha256(key.as_bytes(), body.as_bytes());
        let sig: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        let header = format!("sha256={sig}");
        self.app_status(
            "POST",
            "/webhooks/github",
            &[("X-Hub-Signature-256", &header)],
            body,
        )
    }

    /// The app's answer to the runner's call with `token`.
    pub fn runner_status(&self, token: &str) -> String {
        let auth = format!("Bearer {token}");
        self.app_status("GET", "/api/runner/ping", &[("Authorization", &auth)], "")
    }
}
