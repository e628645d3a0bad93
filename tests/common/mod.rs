//! A builder harness over the real binary: a runbooks directory, arguments, environment, and
//! the output and exit code, so a test reads like a terminal session.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod pty;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            if r["resumable"] == true {
                let id = r["run_id"].as_str().unwrap();
                let st = Command::new(BIN)
                    .arg("--state-dir")
                    .arg(&self.state)
                    .args(["abandon", id])
                    .status()
                    .unwrap();
                assert!(st.success(), "abandon {id}");
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
        Test {
            dir: self.dir.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: self.env.clone(),
            stdin: None,
        }
        .run()
    }

    pub fn run(&self) -> Run {
        let mut c = self.command();
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

/// Can role musehub log in to the sandbox database with this password? (psql reads it from
/// the environment, not the command line.)
pub fn db_login(password: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5433",
            "-U",
            "musehub",
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
