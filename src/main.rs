//! The `runbook` binary: everything lives in the library; this returns its exit code.

fn main() {
    // `runbook list | head` should end quietly like any Unix tool, not panic on a closed pipe.
    // A run keeps ignoring SIGPIPE: its sinks drop output they cannot write, and the run goes
    // on (being killed by a closed pipe would leave it half-done).
    let running = std::env::args().any(|a| a == "run" || a == "resume");
    if !running {
        // SAFETY: called first thing, before any thread exists; SIG_DFL is a valid handler.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    std::process::exit(runbook::cli::main());
}
