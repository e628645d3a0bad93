//! How a command fails: what to show (diagnostics, then lines as they are) and which of the
//! documented outcomes it is. The CLI prints a [`Failure`] and turns its [`Kind`] into the exit
//! code, in one place; nothing below it knows exit codes.

use crate::diag::Problem;
use crate::engine::event::RunStatus;

/// The outcomes a command can fail with, one per documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A step failed (after its rollback, if any), or the run journal could not be written.
    StepFailed,
    /// An invalid runbook, environment or input; nothing ran.
    Invalid,
    /// Declined by the operator; nothing after it ran.
    Declined,
    /// Interrupted (Ctrl-C, or a prompt closed).
    Interrupted,
}

/// A command that did not end well: what to show, and how it ended.
#[derive(Debug)]
#[must_use]
pub struct Failure {
    pub kind: Kind,
    /// Diagnostics, shown first.
    pub problems: Vec<Problem>,
    /// Lines shown after them, as they are (on stderr).
    pub lines: Vec<String>,
}

impl Failure {
    /// Nothing more to show: what went wrong has been said already (or needs no words).
    pub fn quiet(kind: Kind) -> Failure {
        Failure {
            kind,
            problems: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// Invalid input: one diagnostic.
    pub fn invalid(problem: Problem) -> Failure {
        Failure::invalid_all(vec![problem])
    }

    /// Invalid input: several diagnostics.
    pub fn invalid_all(problems: Vec<Problem>) -> Failure {
        Failure {
            problems,
            ..Failure::quiet(Kind::Invalid)
        }
    }

    /// A line to show after the diagnostics.
    pub fn line(mut self, line: impl Into<String>) -> Failure {
        self.lines.push(line.into());
        self
    }

    /// How a run that ended with `status` ended; `Ok` when it is done.
    pub fn of_run(status: RunStatus) -> Result<(), Failure> {
        match status {
            RunStatus::Done => Ok(()),
            RunStatus::Failed | RunStatus::RolledBack => Err(Failure::quiet(Kind::StepFailed)),
            RunStatus::Declined => Err(Failure::quiet(Kind::Declined)),
            RunStatus::Interrupted => Err(Failure::quiet(Kind::Interrupted)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_fails_as_it_ended() {
        assert!(Failure::of_run(RunStatus::Done).is_ok());
        for (status, kind) in [
            (RunStatus::Failed, Kind::StepFailed),
            (RunStatus::RolledBack, Kind::StepFailed),
            (RunStatus::Declined, Kind::Declined),
            (RunStatus::Interrupted, Kind::Interrupted),
        ] {
            let f = Failure::of_run(status).unwrap_err();
            assert_eq!(f.kind, kind);
            // The run's own events said what happened.
            assert!(f.problems.is_empty() && f.lines.is_empty());
        }
    }
}
