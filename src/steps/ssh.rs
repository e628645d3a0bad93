//! `ssh.exec` and the per-run SSH connections (one multiplexed master per host), which `psql`
//! and `http.check` also use for tunnels. (Being written.)

use super::{RunCx, StepError};

/// A local address that reaches `remote_host:remote_port` as seen from `host` of the
/// environment, through the run's SSH connection to `host` (opened on first use).
pub async fn tunnel(
    cx: &RunCx<'_>,
    host: &str,
    remote_host: &str,
    remote_port: u16,
) -> Result<std::net::SocketAddr, StepError> {
    let _ = (cx, remote_host, remote_port);
    Err(StepError::new(format!(
        "SSH tunnels through `{host}` are not available yet"
    )))
}
