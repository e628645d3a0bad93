//! `ssh.exec` and the per-run SSH connections (one multiplexed master per host), which `psql`
//! and `http.check` also use for tunnels.
//!
//! Commands travel over the master's control socket (openssh's native mux), so no local
//! process ever has a command, its environment or its input in its argument list. Values from
//! `env:` reach the remote shell through its standard input, never through any argv.
//!
//! `pool.rs`: the connections; `params.rs`: the parameters and their hosts; `exec.rs`: the
//! kind; `remote.rs`: one command on one host; `expect.rs`: its result judged; `fan.rs`: many
//! hosts. This file is the module list and what the other kinds use.

mod exec;
mod expect;
mod fan;
mod params;
mod pool;
mod remote;

pub use exec::SshExec;
pub use expect::{ExitCodes, Expect, JsonAssert};
pub use params::{Params, Targets};
pub use pool::{Pool, close_all, reap_orphans, tunnel};
pub(crate) use pool::{host_need, warm_up};

/// Until every fan-out imports it from `steps::fanout`.
pub(crate) use super::fanout::join_all;
