//! `ssh.exec` on several hosts: `parallel` at a time, in batches, stopping once more than
//! `max_failures` failed, with a running status and one result per host.

use std::fmt::Write as _;
use std::sync::Mutex;

use super::expect::{Checks, Failure, Ran};
use super::params::Params;
use super::remote::{exec, public, trim_newlines};
use crate::steps::common::lock;
use crate::steps::fanout::{Status, compact_list, hosts_summary, join_all};
use crate::steps::kind::{Outputs, RunCx, StepError};

/// How many lines of a failed host's output the step's detail shows (many hosts may fail).
const FAN_OUT_TAIL_LINES: usize = 5;

/// The shared bookkeeping of a fan-out, behind one lock.
struct Fan {
    /// The next host (index into the step's hosts) to start.
    next: usize,
    /// One past the last host of the current batch.
    end: usize,
    done: usize,
    /// Failed hosts in the order they failed, with the short reason.
    failed: Vec<(String, String)>,
    /// More than `max_failures` failed: start no more hosts.
    stop: bool,
    /// Per host, once finished: its result (absent when it could not run) and failure.
    results: Vec<Option<(Option<Ran>, Option<Failure>)>>,
}

impl Fan {
    /// "hosts 7/50 done, 1 failed (app13: exit 2)".
    fn summary(&self) -> String {
        hosts_summary(self.done, self.results.len(), "done", &self.failed)
    }
}

/// Run the command on every host: `parallel` at a time, batch after batch, stopping once more
/// than `max_failures` hosts failed. Connections are the run's pool, one master per host.
pub(super) async fn fan_out(
    p: &Params,
    checks: &Checks,
    hosts: &[String],
    cx: &RunCx<'_>,
) -> Result<Outputs, StepError> {
    let parallel = p.parallel.unwrap_or(1).max(1) as usize;
    let max_failures = p.max_failures.unwrap_or(0) as usize;
    let batch = p.batch.map_or(hosts.len(), |b| b.max(1) as usize).max(1);
    let fan = Mutex::new(Fan {
        next: 0,
        end: 0,
        done: 0,
        failed: Vec::new(),
        stop: false,
        results: (0..hosts.len()).map(|_| None).collect(),
    });
    let status = Status::new(cx.progress);
    status.update(true, || lock(&fan).summary());

    // A fixed set of workers, each taking the next host of the batch, caps the concurrency
    // without spawning tasks (the step borrows the run's context, so it cannot be 'static).
    let worker = || async {
        loop {
            let i = {
                let mut f = lock(&fan);
                if f.stop || f.next >= f.end {
                    break;
                }
                f.next += 1;
                f.next - 1
            };
            let host = hosts[i].as_str();
            let progress = |line: &str| {
                status.update(false, || {
                    format!("{} · {host}: {line}", lock(&fan).summary())
                });
            };
            let (ran, failure) = match exec(cx, host, p, &progress).await {
                Ok(ran) => {
                    // Checked at the step's start: a bad pattern fails it before any host.
                    let _ = super::expect::report(
                        p.report.as_deref(),
                        cx,
                        &format!("{host}: "),
                        &ran.stdout,
                    );
                    let failure = checks.judge(&p.expect, &ran).err();
                    (Some(ran), failure)
                }
                Err(e) => {
                    let short = e.message.clone();
                    let message = match e.detail_and_help() {
                        Some(d) => format!("{}\n{d}", e.message),
                        None => e.message,
                    };
                    (None, Some(Failure { short, message }))
                }
            };
            let (summary, force) = {
                let mut f = lock(&fan);
                f.done += 1;
                let failed = failure.is_some();
                if let Some(fl) = &failure {
                    f.failed.push((host.to_string(), fl.short.clone()));
                    if f.failed.len() > max_failures {
                        f.stop = true;
                    }
                }
                f.results[i] = Some((ran, failure));
                // The end of a batch is a moment a rolling change waits on: always shown.
                let batch_end = f.next >= f.end && f.done == f.end;
                (f.summary(), failed || batch_end || f.done == hosts.len())
            };
            status.update(force, || summary);
        }
    };

    let mut start = 0;
    while start < hosts.len() {
        let end = (start + batch).min(hosts.len());
        {
            let mut f = lock(&fan);
            if f.stop {
                break;
            }
            f.next = start;
            f.end = end;
        }
        join_all((0..parallel.min(end - start)).map(|_| worker()).collect()).await;
        start = end;
    }

    let fan = fan.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut per_host = serde_json::Map::new();
    let mut failed = Vec::new();
    let mut detail = Vec::new();
    let mut not_started = Vec::new();
    for (host, result) in hosts.iter().zip(fan.results) {
        let Some((ran, failure)) = result else {
            not_started.push(host.clone());
            continue;
        };
        if let Some(fl) = &failure {
            failed.push(host.clone());
            let mut d = format!("{host}: {}", fl.message);
            if let Some(ran) = &ran {
                // stderr says why; stdout only when stderr is silent.
                let (name, text) = if ran.stderr.trim().is_empty() {
                    ("stdout", &ran.stdout)
                } else {
                    ("stderr", &ran.stderr)
                };
                let lines: Vec<&str> = text.trim_end().lines().collect();
                if !lines.is_empty() {
                    let from = lines.len().saturating_sub(FAN_OUT_TAIL_LINES);
                    let _ = write!(d, "\n  {name}:");
                    for l in &lines[from..] {
                        let _ = write!(d, "\n    {l}");
                    }
                }
            }
            detail.push(d);
        }
        let (stdout, stderr, code) = ran.map_or((String::new(), String::new(), None), |r| {
            (trim_newlines(&r.stdout), trim_newlines(&r.stderr), r.code)
        });
        per_host.insert(
            host.clone(),
            serde_json::json!({
                "stdout": stdout,
                "stderr": stderr,
                "exit_code": code,
                "ok": failure.is_none(),
            }),
        );
    }

    let named: Vec<String> = fan
        .failed
        .iter()
        .map(|(h, why)| format!("{h} ({why})"))
        .collect();
    if failed.len() > max_failures {
        let mut message = if hosts.len() == 1 {
            format!("failed on {}", named.join(", "))
        } else {
            format!(
                "failed on {} of {} hosts: {}",
                failed.len(),
                hosts.len(),
                named.join(", ")
            )
        };
        if !not_started.is_empty() {
            let _ = write!(
                message,
                "; {} not started ({})",
                not_started.len(),
                compact_list(&not_started)
            );
        }
        if max_failures > 0 {
            let _ = write!(message, " (max_failures: {max_failures})");
        }
        return Err(StepError::new(message).with_detail(detail.join("\n")));
    }
    if !failed.is_empty() {
        // The step succeeds, but a host that failed must not hide behind its check mark.
        (cx.note)(&format!(
            "{} of {} hosts failed, within max_failures ({max_failures}): {}",
            failed.len(),
            hosts.len(),
            compact_list(&named)
        ));
    }
    Ok(vec![
        public("hosts", serde_json::Value::Object(per_host)),
        public("failed", failed.into()),
    ])
}
