//! The run's SSH connections: one multiplexed master per host, opened on first use (or early,
//! while a gate waits), the tunnels `psql` and `http.check` reach their targets through, the
//! preflight login check, and the stopping of masters left behind by killed runs.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssh::{ForwardType, KnownHosts, Session, SessionBuilder, Socket};

use crate::model::{Environment, HostKeyChecking, HostSpec};
use crate::steps::common::lock;
use crate::steps::kind::{Check, Need, ProbeCx, Resources, RunCx, Stage, StepError};

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

pub(super) struct Conn {
    pub(super) session: Arc<Session>,
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
        let suffix: String = crate::steps::generate::random_bytes(4)?
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
pub(crate) fn warm_up(resources: &Resources, env: &Environment, hosts: &[String]) {
    if hosts.is_empty() {
        return;
    }
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

/// `runbook preflight`: a host a step reaches (to run on, or to tunnel through) is logged in
/// to, for the steps that use it.
struct HostNeed {
    host: String,
    steps: Vec<String>,
}

/// What a step reaching `host` needs from preflight (also for `psql` and `http.check`).
pub(crate) fn host_need(host: String, step_id: &str) -> Box<dyn Need> {
    Box::new(HostNeed {
        host,
        steps: vec![step_id.to_string()],
    })
}

#[async_trait::async_trait]
impl Need for HostNeed {
    fn stage(&self) -> Stage {
        Stage::Host
    }
    fn key(&self) -> String {
        self.host.clone()
    }
    fn merge(&mut self, later: Box<dyn Need>) {
        let later: Box<dyn std::any::Any> = later;
        if let Ok(later) = later.downcast::<HostNeed>() {
            self.steps.extend(later.steps);
        }
    }
    async fn check(&self, cx: &ProbeCx<'_>) -> Check {
        let r = login(&cx.run, &self.host).await;
        if r.is_err() {
            cx.unreachable(&self.host);
        }
        Check::new("ssh", self.host.clone()).outcome(r.map(|t| {
            format!(
                "logged in to {t}, host key known (for {})",
                self.steps.join(", ")
            )
        }))
    }
}

/// The run's connection to `host` of the environment, opened on first use.
pub(super) async fn session(cx: &RunCx<'_>, host: &str) -> Result<Arc<Conn>, StepError> {
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
        b.keyfile(crate::steps::common::expand_tilde(key));
    }
    if let Some(kh) = &spec.known_hosts {
        b.user_known_hosts_file(crate::steps::common::expand_tilde(kh));
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
            "the lines above are what ssh reported".to_string(),
        )
    };
    StepError::new(message)
        .with_detail(log.trim())
        .with_help(help)
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
    .with_detail(
        last.map(|e| crate::steps::common::error_chain(&e))
            .unwrap_or_default(),
    )
    .with_help("the host's sshd must allow TCP forwarding (`AllowTcpForwarding yes`)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expands_to_home() {
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                crate::steps::common::expand_tilde("~/k"),
                PathBuf::from(home).join("k")
            );
        }
        assert_eq!(
            crate::steps::common::expand_tilde("/a/~b"),
            PathBuf::from("/a/~b")
        );
    }
}
