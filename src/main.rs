//! The `runbook` binary: everything lives in the library; this returns its exit code.

fn main() {
    std::process::exit(runbook::cli::main());
}
