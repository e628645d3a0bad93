//! `ssh.exec` and the per-run SSH connections (one multiplexed master per host), which `psql`
//! and `http.check` also use for tunnels.
//!
//! Commands travel over the master's control socket (openssh's native mux), so no local
//! process ever has a command, its environment or its input in its argument list. Values from
//! `env:` reach the remote shell through its standard input, never through any argv.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use openssh::{ForwardType, KnownHosts, Session, SessionBuilder, Socket, Stdio};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

use super::{
    CheckCx, Effect, Kind, Output, OutputSpec, Outputs, Resources, RunCx, StepError, lock,
};
use crate::diag::Problem;
use crate::model::{Environment, HostKeyChecking, HostSpec};

// ---------------------------------------------------------------------------------------------
// The connection pool
// ---------------------------------------------------------------------------------------------

/// The run's SSH connections, one multiplexed master per host of the environment, opened on
/// first use. Dropping the pool (the engine drops its resources at the end of the run) stops
/// every master and removes the control directory.
#[derive(Default)]
pub struct Pool {
    /// Per host, a slot whose async lock makes concurrent first uses open one connection.
    hosts: Mutex<HashMap<String, Slot>>,
    /// A short private directory for the control sockets (a unix socket path must stay under
    /// ~107 bytes, which a deep temporary directory can exceed).
    control_dir: Mutex<Option<PathBuf>>,
}

/// A host's connection, once open; its lock is held while opening it.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Conn>>>>;

struct Conn {
    session: Arc<Session>,
    /// Local forwards already open, by remote target.
    tunnels: tokio::sync::Mutex<HashMap<(String, u16), SocketAddr>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Dropping a native-mux session sends the master its exit request synchronously; the
        // master owns the forwards, so they close with it.
        let slots: Vec<_> = lock(&self.hosts).drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Ok(mut guard) = slot.try_lock() {
                guard.take();
            }
        }
        if let Some(dir) = lock(&self.control_dir).take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Stop every SSH master of the run now. Dropping the run's [`Resources`] does the same; this
/// lets the engine do it at a point of its choosing.
pub async fn close_all(resources: &Resources) {
    let pool = resources.get::<Pool>();
    let slots: Vec<_> = lock(&pool.hosts).drain().map(|(_, s)| s).collect();
    for slot in slots {
        // The last reference to a session sends its master the exit request when dropped.
        drop(slot.lock().await.take());
    }
}

impl Pool {
    fn control_dir(&self) -> Result<PathBuf, StepError> {
        let mut guard = lock(&self.control_dir);
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        let base = control_base();
        let suffix: String = super::generate::random_bytes(4)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // Named after this process, so a later run can tell when its masters are orphans.
        let dir = base.join(format!("{CONTROL_PREFIX}{}-{suffix}", std::process::id()));
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| {
                    StepError::new(format!(
                        "cannot create a directory for SSH control sockets in {}: {e}",
                        base.display()
                    ))
                })?;
        }
        *guard = Some(dir.clone());
        Ok(dir)
    }

    async fn conn(
        &self,
        env_name: &str,
        host: &str,
        spec: &HostSpec,
    ) -> Result<Arc<Conn>, StepError> {
        let slot = lock(&self.hosts)
            .entry(host.to_string())
            .or_default()
            .clone();
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let session = connect(host, env_name, spec, &self.control_dir()?).await?;
        let conn = Arc::new(Conn {
            session: Arc::new(session),
            tunnels: Default::default(),
        });
        *guard = Some(conn.clone());
        Ok(conn)
    }
}

/// Control directories are `<base>/runbook-ssh-<pid>-<random>`.
const CONTROL_PREFIX: &str = "runbook-ssh-";

/// Where control directories go: the temporary directory, unless its path is so long that a
/// socket path under it would pass the ~107-byte limit (openssh adds
/// `/.ssh-connectionXXXXXX/master`, ~30 bytes).
fn control_base() -> PathBuf {
    let base = std::env::temp_dir();
    if base.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        base
    }
}

/// Stop the SSH masters of runs that died without stopping them (SIGKILL, a crash, a machine
/// put to sleep for good), so an authenticated connection to a server never outlives its run
/// by more than the next run's start. A control directory whose process is gone is an orphan:
/// each master in it is asked to exit over its socket, then the directory is removed. Only
/// this user's directories are touched. Best effort: nothing here fails a run.
pub async fn reap_orphans() {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(control_base()) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CONTROL_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let owned = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if !owned || pid <= 0 || process_alive(pid) {
            continue;
        }
        for sub in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let master = sub.path().join("master");
            if master.exists() {
                let session = Session::resume_mux(master.into_boxed_path(), None);
                let _ = tokio::time::timeout(Duration::from_secs(2), session.close()).await;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Whether a process with this pid exists (one we may not signal exists too).
fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// At most this many connections open early for one gate (a fan-out's first ones).
const WARM_UP_MAX: usize = 10;

/// Open the run's connections to `hosts` (the first [`WARM_UP_MAX`]) in background tasks;
/// a host already connected, or unknown to the environment, is left alone.
pub(super) fn warm_up(resources: &Resources, env: &Environment, hosts: &[String]) {
    let pool = resources.get::<Pool>();
    for host in hosts.iter().take(WARM_UP_MAX) {
        let Some(spec) = env.doc.hosts.get(host).cloned() else {
            continue;
        };
        let open = lock(&pool.hosts)
            .get(host)
            .is_some_and(|slot| slot.try_lock().map_or(true, |c| c.is_some()));
        if open {
            continue;
        }
        let (pool, env_name, host) = (pool.clone(), env.name.clone(), host.clone());
        tokio::spawn(async move {
            let _ = pool.conn(&env_name, &host, &spec).await;
        });
    }
}

/// The run's connection to `host` of the environment, opened on first use.
async fn session(cx: &RunCx<'_>, host: &str) -> Result<Arc<Conn>, StepError> {
    let spec = cx.env.doc.hosts.get(host).ok_or_else(|| {
        StepError::new(format!(
            "environment `{}` has no host `{host}`",
            cx.env.name
        ))
    })?;
    let pool = cx.resources.get::<Pool>();
    pool.conn(&cx.env.name, host, spec).await
}

/// `runbook preflight`: open (or reuse) the run's connection to `host`, which checks the
/// address, the host key and the login. Returns the `user@address:port` it reached.
pub(crate) async fn login(cx: &RunCx<'_>, host: &str) -> Result<String, StepError> {
    session(cx, host).await?;
    Ok(cx
        .env
        .doc
        .hosts
        .get(host)
        .map(target_text)
        .unwrap_or_default())
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn target_text(spec: &HostSpec) -> String {
    let user = spec
        .user
        .as_deref()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    format!("{user}{}:{}", spec.address, spec.port.unwrap_or(22))
}

async fn connect(
    host: &str,
    env_name: &str,
    spec: &HostSpec,
    control_dir: &Path,
) -> Result<Session, StepError> {
    let mut b = SessionBuilder::default();
    if let Some(user) = &spec.user {
        b.user(user.clone());
    }
    if let Some(port) = spec.port {
        b.port(port);
    }
    if let Some(key) = &spec.key_file {
        b.keyfile(super::expand_tilde(key));
    }
    if let Some(kh) = &spec.known_hosts {
        b.user_known_hosts_file(super::expand_tilde(kh));
    }
    b.known_hosts_check(match spec.host_key_checking {
        HostKeyChecking::Strict => KnownHosts::Strict,
        HostKeyChecking::AcceptNew => KnownHosts::Add,
    });
    let timeout = spec
        .connect_timeout
        .map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0);
    // ssh takes whole seconds; never let a sub-second timeout become "no timeout" (0).
    b.connect_timeout(timeout.max(Duration::from_secs(1)));
    b.control_directory(control_dir);
    // The environment's own ~/.ssh/config still applies: no `-F`.
    b.connect_mux(&spec.address)
        .await
        .map_err(|e| connect_error(host, env_name, spec, timeout, &e))
}

/// A short message naming the host, from what ssh wrote to its log.
fn connect_error(
    host: &str,
    env_name: &str,
    spec: &HostSpec,
    timeout: Duration,
    e: &openssh::Error,
) -> StepError {
    let target = target_text(spec);
    let (kind, log) = match e {
        openssh::Error::Connect(io) => (Some(io.kind()), io.to_string()),
        openssh::Error::Master(io) => (None, io.to_string()),
        other => (None, other.to_string()),
    };
    let key_changed =
        log.contains("IDENTIFICATION HAS CHANGED") || log.contains("has changed and you");
    // ssh's banner of `@` lines only repeats what the message says.
    let log: String = log
        .replace('\r', "")
        .lines()
        .filter(|l| !l.starts_with('@'))
        .collect::<Vec<_>>()
        .join("\n");
    let known_hosts = spec
        .known_hosts
        .clone()
        .unwrap_or_else(|| "~/.ssh/known_hosts".into());
    let hosts_key = format!("`environments.{env_name}.hosts.{host}`");
    let (message, help) = if key_changed {
        (
            format!("the host key of `{host}` ({target}) does NOT match {known_hosts}: refused"),
            format!(
                "someone may be intercepting the connection, or the host was reinstalled; verify its \
                 key fingerprint out of band before updating {known_hosts}"
            ),
        )
    } else if log.contains("Host key verification failed") || log.contains("host key is known") {
        (
            format!("the host key of `{host}` ({target}) is not in {known_hosts}: refused"),
            format!(
                "verify the host's key fingerprint out of band and add it to {known_hosts} \
                 (`ssh-keyscan -p {} {}` prints it), or set `host_key_checking: accept-new` under {hosts_key}",
                spec.port.unwrap_or(22),
                spec.address
            ),
        )
    } else if kind == Some(std::io::ErrorKind::ConnectionRefused)
        || log.contains("Connection refused")
    {
        (
            format!("cannot connect to `{host}` ({target}): connection refused"),
            format!(
                "is sshd running and listening there? check `address` and `port` under {hosts_key}"
            ),
        )
    } else if kind == Some(std::io::ErrorKind::TimedOut) || log.contains("timed out") {
        (
            format!(
                "cannot connect to `{host}` ({target}): no answer within {}",
                humantime::format_duration(timeout)
            ),
            format!(
                "check the address, the network path and firewalls; `connect_timeout` under {hosts_key} sets the wait"
            ),
        )
    } else if kind == Some(std::io::ErrorKind::PermissionDenied)
        || log.contains("Permission denied")
    {
        (
            format!("`{host}` ({target}) refused the login: permission denied"),
            format!(
                "check `user` and `key_file` under {hosts_key}, and that the key is in the remote authorized_keys"
            ),
        )
    } else if log.contains("Could not resolve") {
        (
            format!("cannot resolve the address of `{host}` ({target})"),
            format!("check `address` under {hosts_key}"),
        )
    } else {
        (
            format!("cannot connect to `{host}` ({target})"),
            "the lines below are what ssh reported".to_string(),
        )
    };
    let detail = log.trim();
    let detail = if detail.is_empty() {
        format!("help: {help}")
    } else {
        format!("{detail}\nhelp: {help}")
    };
    StepError::new(message).with_detail(detail)
}

/// A local address that reaches `remote_host:remote_port` as seen from `host` of the
/// environment, through the run's SSH connection to `host` (opened on first use).
pub async fn tunnel(
    cx: &RunCx<'_>,
    host: &str,
    remote_host: &str,
    remote_port: u16,
) -> Result<std::net::SocketAddr, StepError> {
    let conn = session(cx, host).await?;
    let mut tunnels = conn.tunnels.lock().await;
    let key = (remote_host.to_string(), remote_port);
    if let Some(addr) = tunnels.get(&key) {
        return Ok(*addr);
    }
    // Pick a free port, then ask the master to listen on it. Another process may take the port
    // between the two; the master then refuses and another port is tried.
    let mut last = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| StepError::new(format!("cannot find a free local port: {e}")))?
            .port();
        let listen: Socket<'_> = (Ipv4Addr::LOCALHOST, port).into();
        match conn
            .session
            .request_port_forward(
                ForwardType::Local,
                listen,
                Socket::new(remote_host, remote_port),
            )
            .await
        {
            Ok(()) => {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                tunnels.insert(key, addr);
                return Ok(addr);
            }
            Err(openssh::Error::Disconnected) => {
                return Err(StepError::new(format!(
                    "the SSH connection to `{host}` was lost"
                )));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(StepError::new(format!(
        "cannot open a tunnel through `{host}` to {remote_host}:{remote_port}"
    ))
    .with_detail(format!(
        "{}\nhelp: the host's sshd must allow TCP forwarding (`AllowTcpForwarding yes`)",
        last.map(|e| super::error_chain(&e)).unwrap_or_default()
    )))
}

// ---------------------------------------------------------------------------------------------
// ssh.exec
// ---------------------------------------------------------------------------------------------

pub struct SshExec;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// One host of the environment (`hosts:` in environments.yaml). Give `host` or `hosts`.
    #[serde(default)]
    pub host: Option<String>,
    /// Several hosts: a list of hosts of the environment, or the name of one of its `groups`.
    /// The outputs are then `hosts` (per host: stdout, stderr, exit_code, ok) and `failed`.
    #[serde(default)]
    pub hosts: Option<Targets>,
    /// With `hosts`: how many hosts run the command at the same time (default 1).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// With `hosts`: how many hosts may fail with the step still succeeding (default 0). One
    /// more failure stops starting new hosts, lets the running ones finish, and fails the step.
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// With `hosts`: a rolling change in batches of this many hosts. A batch starts only when
    /// every host of the previous one finished and the failures are within `max_failures`.
    #[serde(default)]
    pub batch: Option<u32>,
    /// Run by the remote user's login shell. Never put a secret here: use `env` or `stdin`.
    pub command: String,
    /// Text given to the command on its standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Environment variables for the command, delivered through the SSH channel's input, never
    /// in a command line.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// What the result must look like; the step fails otherwise.
    #[serde(default)]
    pub expect: Expect,
}

/// The hosts of a multi-host `ssh.exec`: a list of hosts, or a group's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    List(Vec<String>),
    Group(String),
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Targets;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of hosts or the name of a host group")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Targets, E> {
                Ok(Targets::Group(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Targets, A::Error> {
                let mut v = Vec::new();
                while let Some(h) = a.next_element::<String>()? {
                    v.push(h);
                }
                Ok(Targets::List(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Targets {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Targets".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                { "type": "string", "description": "a host group of the environment (`groups:`)" },
                { "type": "array", "items": { "type": "string" }, "minItems": 1, "description": "hosts of the environment" }
            ]
        })
    }
}

impl Params {
    /// The hosts the step runs on, in order, for `env` (a group resolved, duplicates dropped).
    pub fn targets(&self, env: &Environment) -> Result<Vec<String>, StepError> {
        let list = match (&self.host, &self.hosts) {
            (Some(h), None) => return Ok(vec![h.clone()]),
            (None, Some(Targets::List(l))) => l.clone(),
            (None, Some(Targets::Group(g))) => env
                .doc
                .groups
                .get(g)
                .cloned()
                .ok_or_else(|| unknown_group(env, g))?,
            (Some(_), Some(_)) => return Err(StepError::new(BOTH_HOST_AND_HOSTS)),
            (None, None) => return Err(StepError::new(NEITHER_HOST_NOR_HOSTS)),
        };
        let mut seen = std::collections::HashSet::new();
        Ok(list
            .into_iter()
            .filter(|h| seen.insert(h.clone()))
            .collect())
    }

    /// `host`, or `hosts` as written, for plans.
    fn target_text(&self) -> String {
        match (&self.host, &self.hosts) {
            (Some(h), _) => h.clone(),
            (None, Some(Targets::Group(g))) => format!("group {g}"),
            (None, Some(Targets::List(l))) if l.len() <= 3 => l.join(", "),
            (None, Some(Targets::List(l))) => {
                format!("{} hosts ({}, …)", l.len(), l[..2].join(", "))
            }
            (None, None) => "?".into(),
        }
    }
}

const BOTH_HOST_AND_HOSTS: &str = "`host` and `hosts` exclude each other: give one";
const NEITHER_HOST_NOR_HOSTS: &str =
    "`ssh.exec` needs `host` (one host) or `hosts` (a list or a group)";

fn unknown_group(env: &Environment, group: &str) -> StepError {
    let known: Vec<&str> = env.doc.groups.keys().map(String::as_str).collect();
    let help = crate::diag::did_you_mean(group, known.iter().copied()).unwrap_or_else(|| {
        format!(
            "define it under `environments.{}.groups` in environments.yaml; for one host write `host: {group}` or `hosts: [{group}]`",
            env.name
        )
    });
    StepError::new(format!(
        "environment `{}` has no host group `{group}`",
        env.name
    ))
    .with_detail(format!("help: {help}"))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Accepted exit codes: one or a list (default 0).
    #[serde(default)]
    pub exit_code: Option<ExitCodes>,
    /// Text stdout must contain.
    #[serde(default)]
    pub stdout_contains: Option<String>,
    /// A regular expression stdout must match (anywhere; `(?m)` for line anchors).
    #[serde(default)]
    pub stdout_matches: Option<String>,
    /// A regular expression stdout must not match.
    #[serde(default)]
    pub stdout_not_matches: Option<String>,
    /// A regular expression stderr must not match.
    #[serde(default)]
    pub stderr_not_matches: Option<String>,
    /// Values stdout, parsed as JSON, must hold.
    #[serde(default)]
    pub json: Vec<JsonAssert>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonAssert {
    /// Dotted path into the document: `status`, `items.0.name` (empty: the whole document).
    pub path: String,
    /// The value expected there.
    pub equals: serde_json::Value,
}

/// One exit code or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitCodes(pub Vec<i64>);

impl<'de> Deserialize<'de> for ExitCodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ExitCodes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an exit code or a list of exit codes")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ExitCodes, E> {
                Ok(ExitCodes(vec![v]))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ExitCodes, E> {
                i64::try_from(v)
                    .map(|v| ExitCodes(vec![v]))
                    .map_err(|_| E::custom("exit code out of range"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ExitCodes, A::Error> {
                let mut v = Vec::new();
                while let Some(c) = a.next_element::<i64>()? {
                    v.push(c);
                }
                Ok(ExitCodes(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ExitCodes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExitCodes".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "oneOf": [
                { "type": "integer", "minimum": 0, "maximum": 255 },
                { "type": "array", "items": { "type": "integer", "minimum": 0, "maximum": 255 }, "minItems": 1 }
            ]
        })
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

impl Kind for SshExec {
    const NAME: &'static str = "ssh.exec";
    const SHELL_FIELDS: &'static [&'static str] = &["command"];
    const SUMMARY: &'static str = "Run a command on a host over SSH (outputs `stdout`, `stderr`, `exit_code`, `json`), \
         or on several hosts with `hosts:` (outputs `hosts`, `failed`).";
    type Params = Params;

    fn outputs(p: &Params, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        if p.hosts.is_some() {
            return vec![OutputSpec::public("hosts"), OutputSpec::public("failed")];
        }
        vec![
            OutputSpec::public("stdout"),
            OutputSpec::public("stderr"),
            OutputSpec::public("exit_code"),
            OutputSpec::public("json"),
        ]
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        check_targets(p, cx);
        if let Ok(refs) = crate::template::references(&p.command) {
            let secret: Vec<String> = refs.into_iter().filter(|r| (cx.secret_refs)(r)).collect();
            if !secret.is_empty() {
                cx.problem_at(
                    "command",
                    Problem::warning(
                        "runbook::secret-in-command",
                        format!(
                            "the command contains a secret ({}): it would be in the remote command line, visible to `ps` there",
                            secret.join(", ")
                        ),
                    )
                    .label("secret here")
                    .help("pass it through `env:` (read it as $NAME) or `stdin:`"),
                );
            }
        }
        for name in p.env.keys() {
            if !valid_env_name(name) {
                cx.problem_at(
                    "env",
                    Problem::error(
                        "runbook::bad-env-name",
                        format!("`{name}` is not a valid environment variable name"),
                    )
                    .help("use letters, digits and `_`, not starting with a digit"),
                );
            }
        }
        let e = &p.expect;
        for (field, pat) in [
            ("stdout_matches", &e.stdout_matches),
            ("stdout_not_matches", &e.stdout_not_matches),
            ("stderr_not_matches", &e.stderr_not_matches),
        ] {
            if let Some(pat) = pat
                && !pat.contains("{{")
                && let Err(err) = regex::Regex::new(pat)
            {
                cx.problem_at(
                    "expect",
                    Problem::error(
                        "runbook::bad-pattern",
                        format!("invalid regular expression in `expect.{field}`: {err}"),
                    ),
                );
            }
        }
        if let Some(codes) = &e.exit_code
            && (codes.0.is_empty() || codes.0.iter().any(|c| !(0..=255).contains(c)))
        {
            cx.problem_at(
                "expect",
                Problem::error(
                    "runbook::bad-exit-code",
                    "`expect.exit_code` takes codes from 0 to 255",
                ),
            );
        }
    }

    /// The whole command, every line of it: what a reviewer approves is what runs. (Places
    /// with room for one line cut it and say so.)
    fn describe(p: &Params) -> String {
        let command = super::whole_text(&p.command);
        let mut how = Vec::new();
        if p.hosts.is_some() {
            how.push(format!("{} at a time", p.parallel.unwrap_or(1)));
            if let Some(b) = p.batch {
                how.push(format!("batches of {b}"));
            }
            if let Some(m) = p.max_failures.filter(|m| *m > 0) {
                how.push(format!("up to {m} may fail"));
            }
        }
        let how = if how.is_empty() {
            String::new()
        } else {
            format!(" ({})", how.join(", "))
        };
        // What the command is given runs as much as the command itself (`bash -s` with a
        // script on stdin, `eval "$OPTS"`): the reviewer sees it too.
        let mut given = String::new();
        for (k, v) in &p.env {
            given.push_str(&format!("\n  with env {k}={}", super::whole_text(v)));
        }
        if let Some(stdin) = &p.stdin {
            given.push_str(&format!("\n  with stdin:\n{}", super::whole_text(stdin)));
        }
        format!("on {}{how}: {command}{given}", p.target_text())
    }

    fn ssh_hosts(p: &Params, env: &Environment) -> Vec<String> {
        p.targets(env).unwrap_or_default()
    }

    fn effect(p: &Params) -> Effect {
        Effect::Changes(match (&p.host, &p.hosts) {
            (_, Some(Targets::Group(g))) => format!("runs a command on every host of group `{g}`"),
            (_, Some(Targets::List(l))) => {
                let l: Vec<String> = l.iter().map(|h| format!("`{h}`")).collect();
                format!("runs a command on {}", l.join(", "))
            }
            (h, None) => format!("runs a command on `{}`", h.as_deref().unwrap_or("?")),
        })
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let checks = Checks::compile(&p)?;
        let hosts = p.targets(cx.env)?;
        if p.hosts.is_none() {
            let host = &hosts[0];
            let ran = exec(cx, host, &p, cx.progress).await?;
            if let Err(f) = checks.judge(&p, &ran) {
                return Err(StepError::new(f.message).with_detail(tails(&ran.stdout, &ran.stderr)));
            }
            // Like the shell's `$(...)`: trailing newlines are not part of the value.
            let json: serde_json::Value =
                serde_json::from_str(&ran.stdout).unwrap_or(serde_json::Value::Null);
            return Ok(vec![
                public("stdout", trim_newlines(&ran.stdout).into()),
                public("stderr", trim_newlines(&ran.stderr).into()),
                public("exit_code", ran.code.into()),
                public("json", json),
            ]);
        }
        fan_out(&p, &checks, &hosts, cx).await
    }

    fn by_hand(p: &Params, cx: &crate::docs::HandCx<'_>) -> Option<String> {
        let mut env: Vec<(&str, &str)> = p
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // By hand, the automatic variable is only worth writing when the command reads it.
        let hosts = match cx.env {
            Some(e) => p.targets(e).ok(),
            None => None,
        };
        let first = hosts
            .as_ref()
            .and_then(|h| h.first().cloned())
            .or_else(|| p.host.clone())
            .unwrap_or_else(|| "HOST".to_string());
        if p.command.contains(HOST_VAR) && !p.env.contains_key(HOST_VAR) {
            env.insert(0, (HOST_VAR, first.as_str()));
        }
        let mut s = String::new();
        if p.hosts.is_some() {
            let which = match (&hosts, &p.hosts) {
                (Some(h), _) => h
                    .iter()
                    .map(|h| format!("`{h}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                (None, Some(Targets::Group(g))) => format!("every host of group `{g}`"),
                (None, _) => p.target_text(),
            };
            let _ = write!(
                s,
                "On each of these hosts: {which}; {} at a time{}. Stop starting new hosts once more than {} failed. \
                 Shown for `{first}`:\n\n",
                p.parallel.unwrap_or(1),
                p.batch
                    .map(|b| format!(", in batches of {b} (finish a batch before the next)"))
                    .unwrap_or_default(),
                p.max_failures.unwrap_or(0),
            );
        }
        s.push_str(&cx.remote_command(&first, &p.command, &env, p.stdin.as_deref()));
        let e = &p.expect;
        let mut checks = Vec::new();
        let codes = e.exit_code.clone().map_or(vec![0], |c| c.0);
        let codes: Vec<String> = codes.iter().map(i64::to_string).collect();
        checks.push(format!("it exits with {} (`echo $?`)", codes.join(" or ")));
        if let Some(t) = &e.stdout_contains {
            checks.push(format!("its output contains `{t}`"));
        }
        if let Some(r) = &e.stdout_matches {
            checks.push(format!("its output matches the regular expression `{r}`"));
        }
        if let Some(r) = &e.stdout_not_matches {
            checks.push(format!(
                "its output does not match the regular expression `{r}`"
            ));
        }
        if let Some(r) = &e.stderr_not_matches {
            checks.push(format!("its error output does not match `{r}`"));
        }
        for a in &e.json {
            checks.push(format!(
                "its JSON output has `{}` equal to `{}`",
                a.path, a.equals
            ));
        }
        s.push_str("\nCheck that ");
        s.push_str(&checks.join("; "));
        s.push_str(". Otherwise the step failed.");
        Some(s)
    }
}

/// Check-time problems of `host`/`hosts`/`parallel`/`max_failures`/`batch`.
fn check_targets(p: &Params, cx: &mut CheckCx<'_>) {
    match (&p.host, &p.hosts) {
        (Some(h), None) => {
            cx.require_host("host", h);
            for (field, v) in [
                ("parallel", p.parallel),
                ("max_failures", p.max_failures),
                ("batch", p.batch),
            ] {
                if v.is_some() {
                    cx.problem_at(
                        field,
                        Problem::error(
                            "runbook::fan-out-needs-hosts",
                            format!("`{field}` applies only to several hosts"),
                        )
                        .label("with `host:`")
                        .help(format!("write `hosts: [{h}, …]` or `hosts: GROUP`")),
                    );
                }
            }
        }
        (Some(_), Some(_)) => cx.problem_at(
            "hosts",
            Problem::error("runbook::host-and-hosts", BOTH_HOST_AND_HOSTS)
                .help("`host:` names one host; `hosts:` a list or a group"),
        ),
        (None, None) => cx.problem_at(
            "command",
            Problem::error("runbook::no-host", NEITHER_HOST_NOR_HOSTS)
                .help("add `host: NAME`, `hosts: [A, B]` or `hosts: GROUP`"),
        ),
        (None, Some(Targets::List(list))) => {
            if list.is_empty() {
                cx.problem_at(
                    "hosts",
                    Problem::error("runbook::no-host", "`hosts` is an empty list"),
                );
            }
            let mut seen = std::collections::HashSet::new();
            for h in list {
                cx.require_host("hosts", h);
                if !seen.insert(h) {
                    cx.problem_at(
                        "hosts",
                        Problem::warning(
                            "runbook::duplicate-host",
                            format!("host `{h}` is listed twice: it runs once"),
                        ),
                    );
                }
            }
        }
        (None, Some(Targets::Group(g))) => {
            if !g.contains("{{") {
                for env in cx.environments {
                    if !env.doc.groups.contains_key(g) {
                        let err = unknown_group(env, g);
                        let help = err.detail.unwrap_or_default();
                        let problems = Problem::error("runbook::unknown-group", err.message)
                            .label("this group")
                            .help(help.trim_start_matches("help: "));
                        cx.problem_at("hosts", problems);
                    }
                }
            }
        }
    }
    for field in ["parallel", "batch"] {
        let v = if field == "parallel" {
            p.parallel
        } else {
            p.batch
        };
        if v == Some(0) {
            cx.problem_at(
                field,
                Problem::error(
                    "runbook::bad-fan-out",
                    format!("`{field}` must be at least 1"),
                ),
            );
        }
    }
    use crate::model::ranges::{self, outside};
    for (field, v, range) in [
        ("parallel", p.parallel, ranges::PARALLEL),
        ("batch", p.batch, ranges::BATCH),
        ("max_failures", p.max_failures, ranges::MAX_FAILURES),
    ] {
        if let Some(v) = v.filter(|v| *v > 0 || field == "max_failures")
            && let Some(help) = outside(v, range, |n| n.to_string())
        {
            cx.problem_at(field, ranges::problem(field, &v.to_string(), help));
        }
    }
    for code in p.expect.exit_code.iter().flat_map(|c| c.0.iter()) {
        if let Some(help) = outside(*code, ranges::EXIT_CODE, |n| n.to_string()) {
            cx.problem_at(
                "expect",
                ranges::problem("expect.exit_code", &code.to_string(), help),
            );
        }
    }
}

/// The command's result on one host.
struct Ran {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

/// Why a host failed: a few words for progress, and the whole sentence.
struct Failure {
    short: String,
    message: String,
}

/// The step's `expect:` with its patterns compiled once for every host.
struct Checks {
    stdout_matches: Option<regex::Regex>,
    stdout_not: Option<regex::Regex>,
    stderr_not: Option<regex::Regex>,
}

impl Checks {
    /// Compile the patterns and validate `env` before touching any host.
    fn compile(p: &Params) -> Result<Checks, StepError> {
        let re = |field: &str, pat: &Option<String>| -> Result<Option<regex::Regex>, StepError> {
            pat.as_deref()
                .map(|s| {
                    regex::Regex::new(s).map_err(|e| {
                        StepError::new(format!(
                            "invalid regular expression in `expect.{field}`: {e}"
                        ))
                    })
                })
                .transpose()
        };
        for name in p.env.keys() {
            if !valid_env_name(name) {
                return Err(StepError::new(format!(
                    "`{name}` is not a valid environment variable name"
                )));
            }
        }
        if p.env.values().any(|v| v.contains('\0')) {
            return Err(StepError::new("an `env` value contains a NUL byte"));
        }
        Ok(Checks {
            stdout_matches: re("stdout_matches", &p.expect.stdout_matches)?,
            stdout_not: re("stdout_not_matches", &p.expect.stdout_not_matches)?,
            stderr_not: re("stderr_not_matches", &p.expect.stderr_not_matches)?,
        })
    }

    /// Whether a result is what `expect:` asks for.
    fn judge(&self, p: &Params, ran: &Ran) -> Result<(), Failure> {
        let fail = |short: &str, message: String| {
            Err(Failure {
                short: short.to_string(),
                message,
            })
        };
        let (stdout, stderr) = (&ran.stdout, &ran.stderr);
        let allowed = p.expect.exit_code.clone().unwrap_or(ExitCodes(vec![0]));
        match ran.code {
            None => {
                return fail(
                    "no exit code",
                    "the command ended without an exit code (killed by a signal, or the connection dropped)".into(),
                );
            }
            Some(c) if !allowed.0.contains(&i64::from(c)) => {
                let expected: Vec<String> = allowed.0.iter().map(i64::to_string).collect();
                return fail(
                    &format!("exit {c}"),
                    format!(
                        "the command exited with {c} (expected {})",
                        expected.join(" or ")
                    ),
                );
            }
            Some(_) => {}
        }
        if let Some(s) = &p.expect.stdout_contains
            && !stdout.contains(s.as_str())
        {
            return fail(
                "stdout_contains",
                format!("expect.stdout_contains: stdout does not contain `{s}`"),
            );
        }
        if let Some(r) = &self.stdout_matches
            && !r.is_match(stdout)
        {
            return fail(
                "stdout_matches",
                format!("expect.stdout_matches: stdout does not match `{r}`"),
            );
        }
        if let Some(r) = &self.stdout_not
            && let Some(m) = r.find(stdout)
        {
            return fail(
                "stdout_not_matches",
                format!(
                    "expect.stdout_not_matches: stdout matches `{r}` (at `{}`)",
                    line_of(stdout, m.start())
                ),
            );
        }
        if let Some(r) = &self.stderr_not
            && let Some(m) = r.find(stderr)
        {
            return fail(
                "stderr_not_matches",
                format!(
                    "expect.stderr_not_matches: stderr matches `{r}` (at `{}`)",
                    line_of(stderr, m.start())
                ),
            );
        }
        if !p.expect.json.is_empty() {
            let doc: serde_json::Value = match serde_json::from_str(stdout) {
                Ok(d) => d,
                Err(e) => return fail("json", format!("expect.json: stdout is not JSON ({e})")),
            };
            for a in &p.expect.json {
                let got = json_path(&doc, &a.path);
                if got != Some(&a.equals) {
                    let got = got.map_or("nothing".to_string(), |v| format!("`{v}`"));
                    return fail(
                        "json",
                        format!(
                            "expect.json: `{}` is {got}, expected `{}`",
                            a.path, a.equals
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// The variable every command gets: the host's name in the environment.
const HOST_VAR: &str = "RUNBOOK_HOST";

/// Run the command on `host` over the run's connection to it (opened on first use).
async fn exec(
    cx: &RunCx<'_>,
    host: &str,
    p: &Params,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Ran, StepError> {
    let conn = session(cx, host).await?;
    // `RUNBOOK_HOST` first, so that a value of the author's `env:` wins.
    let mut env = IndexMap::with_capacity(p.env.len() + 1);
    env.insert(HOST_VAR.to_string(), host.to_string());
    env.extend(p.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let (script, input) = remote_script(&p.command, &env, p.stdin.as_deref());
    let mut cmd = Session::arc_raw_command(conn.session.clone(), &script);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().await.map_err(|e| run_error(host, &e))?;
    let stdin = child.stdin().take();
    let stdout = child.stdout().take();
    let stderr = child.stderr().take();

    let feed = async move {
        if let (Some(mut w), Some(data)) = (stdin, input) {
            // A command that exits without reading its input closes the pipe: not an error.
            let _ = w.write_all(data.as_bytes()).await;
            let _ = w.shutdown().await;
        }
    };
    let (_, out, err) = tokio::join!(feed, collect(stdout, progress), collect(stderr, progress));
    let status = child.wait().await.map_err(|e| run_error(host, &e))?;
    Ok(Ran {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        code: status.code(),
    })
}

fn trim_newlines(s: &str) -> String {
    s.trim_end_matches(['\n', '\r']).to_string()
}

// ---------------------------------------------------------------------------------------------
// Fan-out: one command on many hosts
// ---------------------------------------------------------------------------------------------

/// How many lines of a failed host's output the step's detail shows (many hosts may fail).
const FAN_OUT_TAIL_LINES: usize = 5;

/// The shared bookkeeping of a fan-out, behind one lock.
struct Fan {
    /// The next host (index into the step's hosts) to start.
    next: usize,
    /// One past the last host of the current batch.
    end: usize,
    done: usize,
    /// Failed hosts in the order they failed, with the short reason.
    failed: Vec<(String, String)>,
    /// More than `max_failures` failed: start no more hosts.
    stop: bool,
    /// Per host, once finished: its result (absent when it could not run) and failure.
    results: Vec<Option<(Option<Ran>, Option<Failure>)>>,
}

impl Fan {
    /// "hosts 7/50 done, 1 failed (app13: exit 2)".
    fn summary(&self) -> String {
        super::hosts_summary(self.done, self.results.len(), "done", &self.failed)
    }
}

/// Run the command on every host: `parallel` at a time, batch after batch, stopping once more
/// than `max_failures` hosts failed. Connections are the run's pool, one master per host.
async fn fan_out(
    p: &Params,
    checks: &Checks,
    hosts: &[String],
    cx: &RunCx<'_>,
) -> Result<Outputs, StepError> {
    let parallel = p.parallel.unwrap_or(1).max(1) as usize;
    let max_failures = p.max_failures.unwrap_or(0) as usize;
    let batch = p.batch.map_or(hosts.len(), |b| b.max(1) as usize).max(1);
    let fan = Mutex::new(Fan {
        next: 0,
        end: 0,
        done: 0,
        failed: Vec::new(),
        stop: false,
        results: (0..hosts.len()).map(|_| None).collect(),
    });
    let status = super::Status::new(cx.progress);
    status.update(true, || lock(&fan).summary());

    // A fixed set of workers, each taking the next host of the batch, caps the concurrency
    // without spawning tasks (the step borrows the run's context, so it cannot be 'static).
    let worker = || async {
        loop {
            let i = {
                let mut f = lock(&fan);
                if f.stop || f.next >= f.end {
                    break;
                }
                f.next += 1;
                f.next - 1
            };
            let host = hosts[i].as_str();
            let progress = |line: &str| {
                status.update(false, || {
                    format!("{} · {host}: {line}", lock(&fan).summary())
                });
            };
            let (ran, failure) = match exec(cx, host, p, &progress).await {
                Ok(ran) => {
                    let failure = checks.judge(p, &ran).err();
                    (Some(ran), failure)
                }
                Err(e) => {
                    let short = e.message.clone();
                    let message = match &e.detail {
                        Some(d) => format!("{}\n{d}", e.message),
                        None => e.message,
                    };
                    (None, Some(Failure { short, message }))
                }
            };
            let (summary, force) = {
                let mut f = lock(&fan);
                f.done += 1;
                let failed = failure.is_some();
                if let Some(fl) = &failure {
                    f.failed.push((host.to_string(), fl.short.clone()));
                    if f.failed.len() > max_failures {
                        f.stop = true;
                    }
                }
                f.results[i] = Some((ran, failure));
                // The end of a batch is a moment a rolling change waits on: always shown.
                let batch_end = f.next >= f.end && f.done == f.end;
                (f.summary(), failed || batch_end || f.done == hosts.len())
            };
            status.update(force, || summary);
        }
    };

    let mut start = 0;
    while start < hosts.len() {
        let end = (start + batch).min(hosts.len());
        {
            let mut f = lock(&fan);
            if f.stop {
                break;
            }
            f.next = start;
            f.end = end;
        }
        join_all((0..parallel.min(end - start)).map(|_| worker()).collect()).await;
        start = end;
    }

    let fan = fan.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut per_host = serde_json::Map::new();
    let mut failed = Vec::new();
    let mut detail = Vec::new();
    let mut not_started = Vec::new();
    for (host, result) in hosts.iter().zip(fan.results) {
        let Some((ran, failure)) = result else {
            not_started.push(host.clone());
            continue;
        };
        if let Some(fl) = &failure {
            failed.push(host.clone());
            let mut d = format!("{host}: {}", fl.message);
            if let Some(ran) = &ran {
                // stderr says why; stdout only when stderr is silent.
                let (name, text) = if ran.stderr.trim().is_empty() {
                    ("stdout", &ran.stdout)
                } else {
                    ("stderr", &ran.stderr)
                };
                let lines: Vec<&str> = text.trim_end().lines().collect();
                if !lines.is_empty() {
                    let from = lines.len().saturating_sub(FAN_OUT_TAIL_LINES);
                    let _ = write!(d, "\n  {name}:");
                    for l in &lines[from..] {
                        let _ = write!(d, "\n    {l}");
                    }
                }
            }
            detail.push(d);
        }
        let (stdout, stderr, code) = ran.map_or((String::new(), String::new(), None), |r| {
            (trim_newlines(&r.stdout), trim_newlines(&r.stderr), r.code)
        });
        per_host.insert(
            host.clone(),
            serde_json::json!({
                "stdout": stdout,
                "stderr": stderr,
                "exit_code": code,
                "ok": failure.is_none(),
            }),
        );
    }

    let named: Vec<String> = fan
        .failed
        .iter()
        .map(|(h, why)| format!("{h} ({why})"))
        .collect();
    if failed.len() > max_failures {
        let mut message = if hosts.len() == 1 {
            format!("failed on {}", named.join(", "))
        } else {
            format!(
                "failed on {} of {} hosts: {}",
                failed.len(),
                hosts.len(),
                named.join(", ")
            )
        };
        if !not_started.is_empty() {
            let _ = write!(
                message,
                "; {} not started ({})",
                not_started.len(),
                compact_list(&not_started)
            );
        }
        if max_failures > 0 {
            let _ = write!(message, " (max_failures: {max_failures})");
        }
        return Err(StepError::new(message).with_detail(detail.join("\n")));
    }
    if !failed.is_empty() {
        // The step succeeds, but a host that failed must not hide behind its check mark.
        (cx.note)(&format!(
            "{} of {} hosts failed, within max_failures ({max_failures}): {}",
            failed.len(),
            hosts.len(),
            compact_list(&named)
        ));
    }
    Ok(vec![
        public("hosts", serde_json::Value::Object(per_host)),
        public("failed", failed.into()),
    ])
}

/// Up to five names, then how many more.
fn compact_list(names: &[String]) -> String {
    if names.len() <= 5 {
        names.join(", ")
    } else {
        format!("{}, and {} more", names[..5].join(", "), names.len() - 5)
    }
}

/// Drive futures to completion together on the current task.
pub(super) async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<Option<std::pin::Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut futures {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
}

fn public(name: &str, value: serde_json::Value) -> Output {
    Output {
        name: name.into(),
        value,
        secret: false,
    }
}

fn run_error(host: &str, e: &openssh::Error) -> StepError {
    match e {
        openssh::Error::Disconnected => {
            StepError::new(format!("the SSH connection to `{host}` was lost"))
        }
        e => StepError::new(format!("cannot run the command on `{host}`"))
            .with_detail(super::error_chain(e)),
    }
}

/// The text sent as the remote command, and the bytes for its standard input.
///
/// Without `env`, the command is sent as is. With `env`, a fixed prelude (no values in it)
/// first reads `NAME='value'` lines from standard input up to an empty line and exports them,
/// then the command runs in the same shell with the rest of the input. The shell's `read`
/// takes one byte at a time from a pipe, so it never consumes input meant for the command.
/// Values are single-quoted; a newline in a value is written as `"$__rb_nl"` so that each
/// assignment stays on one line. The prelude is POSIX sh: bash, dash, zsh and ksh run it.
fn remote_script(
    command: &str,
    env: &IndexMap<String, String>,
    stdin: Option<&str>,
) -> (String, Option<String>) {
    if env.is_empty() {
        return (command.to_string(), stdin.map(str::to_string));
    }
    let prelude = "__rb_nl='\n'\n\
        while IFS= read -r __rb_l && [ -n \"$__rb_l\" ]; do eval \"export $__rb_l\"; done\n\
        unset __rb_l __rb_nl\n";
    let mut input = String::new();
    for (name, value) in env {
        let _ = writeln!(input, "{name}={}", single_line_quote(value));
    }
    input.push('\n');
    input.push_str(stdin.unwrap_or(""));
    (format!("{prelude}{command}"), Some(input))
}

/// `'…'` quoting for POSIX sh, with newlines as `"$__rb_nl"` (see [`remote_script`]).
fn single_line_quote(value: &str) -> String {
    let mut s = String::from("'");
    for c in value.chars() {
        match c {
            '\'' => s.push_str("'\\''"),
            '\n' => s.push_str("'\"$__rb_nl\"'"),
            c => s.push(c),
        }
    }
    s.push('\'');
    s
}

/// Read a stream to its end, reporting each non-empty line as progress.
async fn collect<R: AsyncRead + Unpin>(
    stream: Option<R>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Vec<u8> {
    const MAX: usize = 16 << 20;
    let mut all = Vec::new();
    let Some(stream) = stream else {
        return all;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if all.len() < MAX {
            all.extend_from_slice(&line);
        }
        let text = String::from_utf8_lossy(&line);
        // A progress bar redraws with `\r`; the line goes out whole, so that masking sees all
        // of it (a secret may span the `\r`), and the terminal shows what a terminal would.
        let whole = text.trim_end();
        if !whole.rsplit('\r').next().unwrap_or("").trim().is_empty() {
            progress(whole);
        }
    }
    all
}

/// A failure shows what the command printed in full (the first error is often at the top);
/// only a runaway output is cut, to its last lines.
const TAIL_LINES: usize = 1000;

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..].join("\n")
}

/// Both streams, for a failure's detail (only a runaway one cut to its last lines).
fn tails(stdout: &str, stderr: &str) -> String {
    let mut d = String::new();
    for (name, s) in [("stdout", stdout), ("stderr", stderr)] {
        if s.trim().is_empty() {
            continue;
        }
        let n = s.trim_end().lines().count();
        let head = if n > TAIL_LINES {
            format!("{name} (last {TAIL_LINES} of {n} lines):")
        } else {
            format!("{name}:")
        };
        if !d.is_empty() {
            d.push('\n');
        }
        let _ = write!(d, "{head}\n{}", tail(s));
    }
    d
}

fn line_of(s: &str, at: usize) -> &str {
    let start = s[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = s[at..].find('\n').map_or(s.len(), |i| at + i);
    s[start..end].trim()
}

fn json_path<'a>(doc: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let path = path.trim().trim_start_matches('$').trim_start_matches('.');
    if path.is_empty() {
        return Some(doc);
    }
    path.split('.').try_fold(doc, |v, part| match v {
        serde_json::Value::Object(m) => m.get(part),
        serde_json::Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_each_assignment_on_one_line() {
        let q = single_line_quote("a'b\nc $(x) \"d\"");
        assert!(!q.contains('\n'));
        assert_eq!(q, "'a'\\''b'\"$__rb_nl\"'c $(x) \"d\"'");
    }

    #[test]
    fn env_goes_to_stdin_not_to_the_command() {
        let mut env = IndexMap::new();
        env.insert("TOKEN".to_string(), "s3cr3t".to_string());
        let (script, input) = remote_script("echo \"$TOKEN\"", &env, Some("body"));
        assert!(!script.contains("s3cr3t"));
        assert_eq!(input.as_deref(), Some("TOKEN='s3cr3t'\n\nbody"));
        let (script, input) = remote_script("true", &IndexMap::new(), None);
        assert_eq!((script.as_str(), input), ("true", None));
    }

    #[test]
    fn json_paths() {
        let doc = serde_json::json!({"a": {"b": [1, {"c": "x"}]}});
        assert_eq!(json_path(&doc, "a.b.1.c"), Some(&serde_json::json!("x")));
        assert_eq!(json_path(&doc, "$.a.b.0"), Some(&serde_json::json!(1)));
        assert_eq!(json_path(&doc, "a.z"), None);
        assert_eq!(json_path(&doc, ""), Some(&doc));
    }

    #[test]
    fn tails_keep_the_last_lines() {
        let out: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let t = tails(&out, "boom\n");
        assert!(t.starts_with("stdout:\nline 1\n"), "{t}");
        assert!(t.ends_with("line 30\nstderr:\nboom"));
        let runaway: String = (1..=1005).map(|i| format!("line {i}\n")).collect();
        let t = tails(&runaway, "");
        assert!(
            t.starts_with("stdout (last 1000 of 1005 lines):\nline 6\n"),
            "{t}"
        );
    }

    #[test]
    fn tilde_expands_to_home() {
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                crate::steps::expand_tilde("~/k"),
                PathBuf::from(home).join("k")
            );
        }
        assert_eq!(crate::steps::expand_tilde("/a/~b"), PathBuf::from("/a/~b"));
    }
}
