//! One command on one host: the script and standard input sent over the run's connection
//! (values of `env:` travel in the input, never in a command line), and its output read back.

use std::fmt::Write as _;

use indexmap::IndexMap;
use openssh::{Session, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

use super::expect::Ran;
use super::params::Params;
use super::pool::session;
use crate::steps::kind::{Output, RunCx, StepError};

pub(super) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Validate `env` before touching any host: its names go into a shell, its values through
/// the channel's input.
pub(super) fn check_env(env: &IndexMap<String, String>) -> Result<(), StepError> {
    for name in env.keys() {
        if !valid_env_name(name) {
            return Err(StepError::new(format!(
                "`{name}` is not a valid environment variable name"
            )));
        }
    }
    if env.values().any(|v| v.contains('\0')) {
        return Err(StepError::new("an `env` value contains a NUL byte"));
    }
    Ok(())
}
/// The variable every command gets: the host's name in the environment.
pub(super) const HOST_VAR: &str = "RUNBOOK_HOST";

/// Run the command on `host` over the run's connection to it (opened on first use).
pub(super) async fn exec(
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

pub(super) fn trim_newlines(s: &str) -> String {
    s.trim_end_matches(['\n', '\r']).to_string()
}
pub(super) fn public(name: &str, value: serde_json::Value) -> Output {
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
            .with_detail(crate::steps::common::error_chain(e)),
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
}
