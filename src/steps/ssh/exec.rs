//! The `ssh.exec` kind: its check-time validation, plan text, by-hand text, preflight needs
//! and run (one host here; several in `fan.rs`).

use std::fmt::Write as _;

use super::expect::{Checks, ExitCodes, report, tails};
use super::fan::fan_out;
use super::params::{BOTH_HOST_AND_HOSTS, NEITHER_HOST_NOR_HOSTS, Params, Targets, unknown_group};
use super::pool::{close_all, host_need, reap_orphans, warm_up};
use super::remote::{HOST_VAR, check_env, exec, public, trim_newlines, valid_env_name};
use crate::diag::{Code, Problem};
use crate::model::Environment;
use crate::steps::kind::{
    CheckCx, Effect, Kind, NeedCx, Needs, OutputSpec, Outputs, Resources, RunCx, StepError,
};

pub struct SshExec;

impl Kind for SshExec {
    const NAME: &'static str = "ssh.exec";
    const SHELL_FIELDS: &'static [&'static str] = &["command"];
    const SUMMARY: &'static str = "Run a command on a host over SSH (outputs `stdout`, `stderr`, `exit_code`, `json`), \
         or on several hosts with `hosts:` (outputs `hosts`, `failed`).";
    type Params = Params;

    fn example() -> &'static str {
        "{ host: app, command: uptime }"
    }

    fn warm_up(p: &Params, env: &Environment, resources: &Resources) {
        warm_up(resources, env, &Self::ssh_hosts(p, env));
    }

    /// The pool is this module's (`psql` and `http.check` tunnel through it): its orphans are
    /// stopped once per run, when the environment has hosts at all.
    async fn before_run(env: &Environment) {
        if !env.doc.hosts.is_empty() {
            reap_orphans().await;
        }
    }

    async fn close(resources: &Resources) {
        close_all(resources).await;
    }

    fn preflight(p: Option<Params>, cx: &NeedCx<'_>, needs: &mut Needs) {
        if let Some(p) = p
            && let Ok(hosts) = p.targets(cx.env)
        {
            for host in hosts {
                if needs.known("ssh", cx.step_id, &host) {
                    needs.add(host_need(host, cx.step_id));
                }
            }
        }
    }

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
                        Code::SecretInCommand,
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
                        Code::BadEnvName,
                        format!("`{name}` is not a valid environment variable name"),
                    )
                    .help("use letters, digits and `_`, not starting with a digit"),
                );
            }
        }
        if let Some(pat) = &p.report
            && !pat.contains("{{")
            && let Err(err) = regex::Regex::new(pat)
        {
            // The regex error is several lines with a caret; its last line says what is wrong.
            let why = err.to_string();
            let why = why.lines().last().unwrap_or("invalid").trim().to_string();
            cx.problem_at(
                "report",
                Problem::error(
                    Code::BadPattern,
                    format!("invalid regular expression in `report`: {why}"),
                ),
            );
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
                        Code::BadPattern,
                        format!("invalid regular expression in `expect.{field}`: {err}"),
                    ),
                );
            }
        }
        if let Some(codes) = &e.exit_code
            && (codes.as_slice().is_empty()
                || codes.as_slice().iter().any(|c| !(0..=255).contains(c)))
        {
            cx.problem_at(
                "expect",
                Problem::error(
                    Code::BadExitCode,
                    "`expect.exit_code` takes codes from 0 to 255",
                ),
            );
        }
    }

    /// The whole command, every line of it: what a reviewer approves is what runs. (Places
    /// with room for one line cut it and say so.)
    fn describe(p: &Params) -> String {
        let command = crate::steps::common::whole_text(&p.command);
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
            given.push_str(&format!(
                "\n  with env {k}={}",
                crate::steps::common::whole_text(v)
            ));
        }
        if let Some(stdin) = &p.stdin {
            given.push_str(&format!(
                "\n  with stdin:\n{}",
                crate::steps::common::whole_text(stdin)
            ));
        }
        format!("on {}{how}: {command}{given}", p.target_text())
    }

    fn ssh_hosts(p: &Params, env: &Environment) -> Vec<String> {
        p.targets(env).unwrap_or_default()
    }

    /// What a command does, only its author knows.
    fn may_be_read_only(_: &Params) -> Result<(), String> {
        Ok(())
    }

    fn effect(p: &Params) -> Effect {
        Effect::Changes(match (&p.host, &p.hosts) {
            (_, Some(Targets::One(g))) => format!("runs a command on every host of group `{g}`"),
            (_, Some(Targets::List(l))) => {
                let l: Vec<String> = l.iter().map(|h| format!("`{h}`")).collect();
                format!("runs a command on {}", l.join(", "))
            }
            (h, None) => format!("runs a command on `{}`", h.as_deref().unwrap_or("?")),
        })
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        check_env(&p.env)?;
        let checks = Checks::compile(&p.expect)?;
        report(p.report.as_deref(), cx, "", "")?;
        let hosts = p.targets(cx.env)?;
        if p.hosts.is_none() {
            let host = &hosts[0];
            let ran = exec(cx, host, &p, cx.progress).await?;
            report(p.report.as_deref(), cx, "", &ran.stdout)?;
            if let Err(f) = checks.judge(&p.expect, &ran) {
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

    fn by_hand(p: &Params, cx: &crate::steps::hand::HandCx<'_>) -> Option<String> {
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
                (None, Some(Targets::One(g))) => format!("every host of group `{g}`"),
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
        let codes = e.exit_code.as_ref().map_or(vec![0], ExitCodes::to_vec);
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
        if let Some(r) = &p.report {
            s.push_str(&format!(
                " Keep the lines of its output that match the regular expression `{r}`: they \
                 are what the step found, the record of the check."
            ));
        }
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
                            Code::FanOutNeedsHosts,
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
            Problem::error(Code::HostAndHosts, BOTH_HOST_AND_HOSTS)
                .help("`host:` names one host; `hosts:` a list or a group"),
        ),
        (None, None) => cx.problem_at(
            "command",
            Problem::error(Code::NoHost, NEITHER_HOST_NOR_HOSTS)
                .help("add `host: NAME`, `hosts: [A, B]` or `hosts: GROUP`"),
        ),
        (None, Some(Targets::List(list))) => {
            if list.is_empty() {
                cx.problem_at(
                    "hosts",
                    Problem::error(Code::NoHost, "`hosts` is an empty list"),
                );
            }
            let mut seen = std::collections::HashSet::new();
            for h in list {
                cx.require_host("hosts", h);
                if !seen.insert(h) {
                    cx.problem_at(
                        "hosts",
                        Problem::warning(
                            Code::DuplicateHost,
                            format!("host `{h}` is listed twice: it runs once"),
                        ),
                    );
                }
            }
        }
        (None, Some(Targets::One(g))) => {
            if !g.contains("{{") {
                for env in cx.environments {
                    if !env.doc.groups.contains_key(g) {
                        let err = unknown_group(env, g);
                        let help = err.help.unwrap_or_default();
                        let problems = Problem::error(Code::UnknownGroup, err.message)
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
                Problem::error(Code::BadFanOut, format!("`{field}` must be at least 1")),
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
    for code in p.expect.exit_code.iter().flat_map(|c| c.as_slice()) {
        if let Some(help) = outside(*code, ranges::EXIT_CODE, |n| n.to_string()) {
            cx.problem_at(
                "expect",
                ranges::problem("expect.exit_code", &code.to_string(), help),
            );
        }
    }
}
