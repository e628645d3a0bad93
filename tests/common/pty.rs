//! The real binary in a pseudo-terminal, driven like a person at a keyboard.

use std::io::Write;
use std::time::Duration;

use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::{Eof, Expect, Session};

use super::Test;

/// A PTY session of `runbook` with the test's arguments, and everything it printed so far.
pub struct Pty {
    pub session: OsSession,
    seen: Vec<u8>,
}

impl Pty {
    pub fn spawn(t: &Test) -> Pty {
        let mut cmd = t.command();
        cmd.env("TERM", "xterm-256color");
        let mut session = Session::spawn(cmd).expect("spawn runbook in a pty");
        // Without a size, the terminal reports 0 columns and prompts wrap at every character.
        let _ = session.get_process_mut().set_window_size(120, 40);
        // Generous: a slow machine must not fail the test; a hang still ends it.
        session.set_expect_timeout(Some(Duration::from_secs(60)));
        Pty {
            session,
            seen: Vec::new(),
        }
    }

    pub fn expect(&mut self, text: &str) {
        match self.session.expect(text) {
            Ok(c) => {
                self.seen.extend_from_slice(c.before());
                for m in c.matches() {
                    self.seen.extend_from_slice(m);
                }
            }
            Err(e) => panic!(
                "waiting for {text:?}: {e}\n--- output so far\n{}",
                String::from_utf8_lossy(&self.seen)
            ),
        }
    }

    /// Type `text` and Enter into a hidden prompt (a secret), once the program reads it.
    /// Keys sent before a line-mode hidden read can be lost (it turns echo off with
    /// `TCSAFLUSH`, which discards input not yet read); waiting costs nothing otherwise. (A pty spawned here starts with echo off, so the echo flag
    /// cannot tell; a thread of the program blocked reading the terminal can.)
    pub fn type_hidden(&mut self, text: &str) {
        let pid = self.session.get_process().pid().as_raw();
        let reading = || {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|t| {
                    std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| {
                        // A line read (`n_tty_read`), or a key read in raw mode, which
                        // polls the terminal first.
                        let w = w.trim();
                        matches!(w, "wait_woken" | "n_tty_read")
                            || w.starts_with("poll_schedule_timeout")
                    })
                })
        };
        let start = std::time::Instant::now();
        while !reading() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the hidden prompt never read the terminal\n--- output so far\n{}",
                String::from_utf8_lossy(&self.seen)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.send(text);
        self.send("\r");
    }

    pub fn send(&mut self, keys: &str) {
        self.session.send(keys).expect("write to the pty");
        self.session.flush().expect("flush the pty");
    }

    /// Read to the end and return the exit code.
    pub fn finish(&mut self) -> i32 {
        match self.session.expect(Eof) {
            Ok(c) => {
                self.seen.extend_from_slice(c.before());
                for m in c.matches() {
                    self.seen.extend_from_slice(m);
                }
            }
            // Still running after the timeout (waiting for an answer nobody gives): stop it,
            // so the test fails with what it showed instead of hanging.
            Err(e) => {
                let _ = self
                    .session
                    .get_process_mut()
                    .kill(expectrl::process::unix::Signal::SIGKILL);
                panic!(
                    "runbook did not end: {e}\n--- output so far\n{}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
        }
        match self.session.get_process().wait().expect("wait for runbook") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("runbook did not exit normally: {other:?}"),
        }
    }

    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}
