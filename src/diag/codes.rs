//! Every problem code `runbook` reports, with a one-line meaning: the one list of them.
//!
//! A [`Problem`](super::Problem) takes a [`Code`], never a string, so a code cannot be
//! misspelt or invented at the place that reports it. The list is published as the table in
//! `docs/diagnostics.md` (a test keeps the two equal). This file imports nothing, so every
//! module can use it without an import circle.

use std::fmt;

/// Defines [`Code`] from one table: variant, code as printed, one-line meaning.
macro_rules! codes {
    ($($variant:ident = $code:literal: $meaning:literal,)*) => {
        /// A stable problem code, printed as `runbook::<name>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)*
        }

        impl Code {
            /// Every code, in the order of the table.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed, e.g. `runbook::unknown-key`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// What the code means, in one line.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)*
                }
            }
        }
    };
}

codes! {
    // Reading files
    NoRunbooksDir = "runbook::no-runbooks-dir": "The runbooks directory cannot be read.",
    LinkOutside = "runbook::link-outside": "A runbook or environments file is a link out of its directory.",
    NotAFile = "runbook::not-a-file": "A path where a runbook is read is not a regular file.",
    FileTooLarge = "runbook::file-too-large": "A runbook or environments file is over the size limit.",
    Unreadable = "runbook::unreadable": "A file cannot be read, or is not UTF-8.",
    Yaml = "runbook::yaml": "The file is not valid YAML (syntax, or a key given twice in a mapping).",
    TooDeep = "runbook::too-deep": "Lists and mappings nest deeper than the limit.",
    AliasBudget = "runbook::alias-budget": "Anchors and aliases expand to more than the limit.",
    NotAMapping = "runbook::not-a-mapping": "The top level of a file is not a mapping.",
    MissingVersion = "runbook::missing-version": "A file has no `version`.",
    UnsupportedVersion = "runbook::unsupported-version": "A file's `version` is not one this binary reads.",
    DuplicateRunbook = "runbook::duplicate-runbook": "Two runbooks of a directory have the same name.",
    NameMismatch = "runbook::name-mismatch": "A runbook's `name` differs from its file name.",
    // The file formats
    UnknownKey = "runbook::unknown-key": "A key the format does not have at that place.",
    UnknownValue = "runbook::unknown-value": "A value that is not one of the allowed names.",
    MissingKey = "runbook::missing-key": "A required key is absent.",
    WrongType = "runbook::wrong-type": "A value of the wrong type (a list where a string goes, …).",
    Invalid = "runbook::invalid": "A value the format refuses for another reason than its type.",
    BadDuration = "runbook::bad-duration": "A duration that cannot be read, or is longer than 7 days.",
    OutOfRange = "runbook::out-of-range": "A number or duration outside its range.",
    ControlCharacter = "runbook::control-character": "A value holds a character nobody can see (control, bidi, zero-width).",
    UnknownKind = "runbook::unknown-kind": "A step key that is neither a common field nor a step kind.",
    NoKind = "runbook::no-kind": "A step has no step kind.",
    TwoKinds = "runbook::two-kinds": "A step has more than one step kind.",
    // A runbook's steps and inputs
    NoSteps = "runbook::no-steps": "A runbook has no steps.",
    BadId = "runbook::bad-id": "A step id that templates cannot use (empty, or not a name).",
    DuplicateId = "runbook::duplicate-id": "Two steps have the same id.",
    UnknownRollback = "runbook::unknown-rollback": "`on_failure` names no rollback step.",
    BadRetry = "runbook::bad-retry": "`retry.attempts` is 0.",
    BadDefault = "runbook::bad-default": "An input's default is not one of its choices, or does not fit its type.",
    RetryRepeatsChange = "runbook::retry-repeats-change": "`retry:` on a step that changes something and is not safe to repeat (a POST): an attempt that failed after its effect is made again.",
    BadRotation = "runbook::bad-rotation": "A `rotation:` that is not a schedule: `every N days`, `on suspected compromise`, `after every production build` or `once per environment`.",
    NoSchedule = "runbook::no-schedule": "A runbook that writes SSM parameters (a rotation) has no `rotation:` schedule, so `runbook status` cannot say when it is due.",
    SecretDefault = "runbook::secret-default": "A secret input has a default written in the runbook.",
    GateAfterChange = "runbook::gate-after-change": "A gate (`confirm:`) after a step that changes something: the run would wait for a person in the middle of a change.",
    // Templates
    Template = "runbook::template": "A template that does not parse, or is over the size limit.",
    TemplateShadows = "runbook::template-shadows": "A template sets `inputs`, `env` or `steps`, hiding the run's values.",
    UnknownFilter = "runbook::unknown-filter": "A template uses a filter that does not exist.",
    UnknownTest = "runbook::unknown-test": "A template uses a test that does not exist.",
    UnknownFunction = "runbook::unknown-function": "A template calls a function that does not exist.",
    UndefinedReference = "runbook::undefined-reference": "A template reads an input, env var or step output that does not exist (yet).",
    UnquotedInShell = "runbook::unquoted-in-shell": "A value decided at run time goes into a shell command without `| shell_quote`.",
    SecretInCommand = "runbook::secret-in-command": "A secret is templated into a remote command line.",
    SecretInUrl = "runbook::secret-in-url": "A secret is templated into a URL, which the server's and every proxy's access logs keep.",
    SecretInSql = "runbook::secret-in-sql": "A secret is sent in a SQL statement or as its bind parameter, which the database logs with the statement.",
    // Nested runbooks
    UnknownRunbook = "runbook::unknown-runbook": "`runbook.run` names a runbook that does not exist.",
    DynamicRunbookName = "runbook::dynamic-runbook-name": "`runbook.run` names a runbook that is known only at run time.",
    NestedSelf = "runbook::nested-self": "A runbook runs itself.",
    NestedCycle = "runbook::nested-cycle": "Runbooks run each other in a cycle.",
    MissingInput = "runbook::missing-input": "A required input is not given (to a run, or to a nested runbook).",
    UnknownInput = "runbook::unknown-input": "An input the runbook does not have.",
    // Environments and targets
    UnknownEnv = "runbook::unknown-env": "An environment that environments.yaml does not define.",
    MissingEnv = "runbook::missing-env": "No environment given where one is needed.",
    DuplicateEnv = "runbook::duplicate-env": "An environment given twice to one command (`--env a --env a`).",
    SameParameter = "runbook::same-parameter": "Two environments of one run would write the same SSM parameter.",
    UnknownHost = "runbook::unknown-host": "A host the environment does not define.",
    UnknownGroup = "runbook::unknown-group": "A host group the environment does not define.",
    DuplicateHost = "runbook::duplicate-host": "A host listed twice in one step.",
    UnknownDatabase = "runbook::unknown-database": "A database the environment does not define.",
    NoAws = "runbook::no-aws": "An SSM step on an environment without `aws:` settings.",
    AmbiguousVia = "runbook::ambiguous-via": "`via` names a host group in one environment and a host in another.",
    // Step kinds
    GenerateSize = "runbook::generate-size": "A `generate` size its format does not take (`bytes` or `length`), or out of range.",
    BadReportName = "runbook::bad-report-name": "A `report.write` name that cannot be a file name in the run's directory.",
    BadPattern = "runbook::bad-pattern": "A regular expression that does not compile.",
    BadUrl = "runbook::bad-url": "A URL that cannot be read, or is not http or https.",
    BadMethod = "runbook::bad-method": "Not an HTTP method.",
    BadStatus = "runbook::bad-status": "Not an HTTP status code (100 to 599).",
    BadAttempts = "runbook::bad-attempts": "`http.check` `attempts` is 0.",
    InsecureTls = "runbook::insecure-tls": "`insecure: true` (TLS not verified) on a protected environment.",
    HostAndHosts = "runbook::host-and-hosts": "`ssh.exec` has both `host` and `hosts`.",
    NoHost = "runbook::no-host": "A step that needs a host names none (or an empty list).",
    BadFanOut = "runbook::bad-fan-out": "`parallel` or `batch` is 0.",
    FanOutNeedsHosts = "runbook::fan-out-needs-hosts": "A fan-out setting on a step with one host.",
    BadEnvName = "runbook::bad-env-name": "Not a valid environment variable name.",
    BadExitCode = "runbook::bad-exit-code": "An expected exit code outside 0 to 255, or an empty list.",
    PsqlAction = "runbook::psql-action": "A `psql` step without exactly one of `sql` and `set_password`.",
    CaFileUnused = "runbook::ca-file-unused": "A database's `ca_file` that its `sslmode` does not use.",
    SsmName = "runbook::ssm-name": "Not an SSM parameter name.",
    SsmKeyId = "runbook::ssm-key-id": "`key_id` on an SSM parameter that is not a SecureString.",
    SsmIfExists = "runbook::ssm-if-exists": "`overwrite` contradicts `if_exists`.",
    SsmSecretUnencrypted = "runbook::ssm-secret-unencrypted": "A secret stored as a plain SSM `String`.",
    NotReadOnly = "runbook::not-read-only": "`read_only: true` on a step whose kind writes by its nature.",
    SkipCollects = "runbook::skip-collects": "A manual step that collects values is `unattended: skip`.",
    SkipShowsSecret = "runbook::skip-shows-secret": "A manual step whose text shows a secret is `unattended: skip`.",
    // The command line and runs
    NoSuchRunbook = "runbook::no-such-runbook": "No runbook of that name in the directory.",
    NoSuchStep = "runbook::no-such-step": "`--from`, `--only` or a selection names no step of the runbook.",
    UnselectedOutput = "runbook::unselected-output": "A selected step reads an output of a step that will not run.",
    BadInput = "runbook::bad-input": "A `--input` that is not NAME=VALUE, or a value its input refuses.",
    SecretOnCommandLine = "runbook::secret-on-command-line": "A secret input given with `--input`.",
    ShortSecret = "runbook::short-secret": "A secret shorter than 8 characters, which could not be masked.",
    NeedsTerminal = "runbook::needs-terminal": "A run needs a person and there is no terminal (and no `--yes`).",
    NeedsPerson = "runbook::needs-person": "A run has manual steps only a person can do, and no terminal to ask on.",
    ProtectedEnv = "runbook::protected-env": "A protected environment approved without `--confirm-env`.",
    ConfirmEnvMismatch = "runbook::confirm-env-mismatch": "`--confirm-env` names another environment than the run's.",
    Locked = "runbook::locked": "Another run of the runbook on the environment holds the lock.",
    LockUnreadable = "runbook::lock-unreadable": "A lock whose holder cannot be read (never taken over).",
    SharedLock = "runbook::shared-lock": "The shared lock in SSM cannot be taken or read.",
    Journal = "runbook::journal": "The run journal cannot be written.",
    UnsafeState = "runbook::unsafe-state": "The state directory, or a file in it, is not ours alone.",
    BadRunId = "runbook::bad-run-id": "Not the form of a run id.",
    NoSuchRun = "runbook::no-such-run": "No run with that id.",
    NothingToResume = "runbook::nothing-to-resume": "No unfinished run to resume.",
    PreflightFailed = "runbook::preflight-failed": "A check a run makes before its first step failed; nothing ran, nothing changed.",
    UnfinishedRun = "runbook::unfinished-run": "A new run while one of the same runbook and environment, or one writing an SSM parameter it writes, is unfinished (resume it, or `--new`).",
    NotResumable = "runbook::not-resumable": "A run that finished, or cannot be resumed.",
    ChangedSinceRun = "runbook::changed-since-run": "The runbook changed since the run to resume began.",
    StatusUnavailable = "runbook::status-unavailable": "`runbook status` cannot read an environment's parameters from SSM (credentials, endpoint, access).",
    InFlight = "runbook::in-flight": "A step was running when the run stopped and is not safe to repeat blindly.",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Code {
    /// The code printed as `s`, if there is one.
    pub fn from_name(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The table of `docs/diagnostics.md`: one row per code.
    pub fn markdown_table() -> String {
        let mut out = String::from("| Code | Meaning |\n|---|---|\n");
        for c in Code::ALL {
            out.push_str(&format!("| `{}` | {} |\n", c.as_str(), c.meaning()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} is listed twice");
            let name = c.as_str().strip_prefix("runbook::").unwrap_or_default();
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'),
                "{c} is not `runbook::` and kebab-case"
            );
            assert!(
                c.meaning().ends_with('.') && !c.meaning().contains('\n'),
                "{c}"
            );
            assert_eq!(Code::from_name(c.as_str()), Some(*c));
        }
    }

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn the_docs_table_is_the_list() {
        let path = root().join("docs/diagnostics.md");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let want = Code::markdown_table();
        let start = text.find("| Code | Meaning |");
        let table: String = start
            .map(|s| {
                text[s..]
                    .lines()
                    .take_while(|l| l.starts_with('|'))
                    .map(|l| format!("{l}\n"))
                    .collect()
            })
            .unwrap_or_default();
        if std::env::var_os("UPDATE_DOCS").is_some() && table != want {
            let updated = match start {
                Some(s) => format!("{}{want}{}", &text[..s], &text[s + table.len()..]),
                None => format!("{text}\n{want}"),
            };
            std::fs::write(&path, updated).unwrap();
            return;
        }
        assert!(
            table == want,
            "the table in docs/diagnostics.md differs from `Code::ALL`: run `UPDATE_DOCS=1 cargo test --lib the_docs_table` and commit it"
        );
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// A code is emitted through `Code` only: no source file but this one spells one out.
    #[test]
    fn no_code_string_outside_the_list() {
        let mut files = Vec::new();
        rust_files(&root().join("src"), &mut files);
        let here = root().join("src/diag/codes.rs");
        let needle = concat!("\"runbook", "::");
        let mut found = Vec::new();
        for f in files.iter().filter(|f| **f != here) {
            let text = std::fs::read_to_string(f).unwrap();
            for (i, line) in text.lines().enumerate() {
                if line.contains(needle) {
                    found.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "use `Code` instead of a code string:\n{}",
            found.join("\n")
        );
    }
}
