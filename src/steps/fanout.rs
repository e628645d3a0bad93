//! What every fan-out over hosts shares (`ssh.exec` and `http.check` with `hosts:`): running
//! the hosts' futures together, the running status and its summary, and a short list of names.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Up to five names, then how many more.
pub(crate) fn compact_list(names: &[String]) -> String {
    if names.len() <= 5 {
        names.join(", ")
    } else {
        format!("{}, and {} more", names[..5].join(", "), names.len() - 5)
    }
}

/// Drive futures to completion together on the current task.
pub(crate) async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<Option<std::pin::Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut futures {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
}

/// A step over many hosts, so far: "hosts 7/50 done, 1 failed (h13: exit 2)", naming the
/// first three failures (`failed`: host and short reason, in the order they failed).
pub(crate) fn hosts_summary(
    finished: usize,
    total: usize,
    verb: &str,
    failed: &[(String, String)],
) -> String {
    let mut s = format!("hosts {finished}/{total} {verb}");
    if !failed.is_empty() {
        let shown: Vec<String> = failed
            .iter()
            .take(3)
            .map(|(h, why)| format!("{h}: {why}"))
            .collect();
        let more = if failed.len() > 3 { ", …" } else { "" };
        s.push_str(&format!(
            ", {} failed ({}{more})",
            failed.len(),
            shown.join(", ")
        ));
    }
    s
}

/// How often a fan-out's status may be reported.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// The running status of a step over many hosts ("hosts 7/50 done …"). Each update replaces
/// the last one, but a sink that prints every progress line (plain logs, CI) would print one
/// per host and per line of output. Updates pass at most once a second; the first, every
/// failure and the last always pass (`force`).
pub(crate) struct Status<'a> {
    progress: &'a (dyn Fn(&str) + Send + Sync),
    last: Mutex<Option<Instant>>,
}

impl<'a> Status<'a> {
    pub(crate) fn new(progress: &'a (dyn Fn(&str) + Send + Sync)) -> Self {
        Status {
            progress,
            last: Mutex::new(None),
        }
    }

    /// Report `text()` if it is due (or forced); `text` is only built when it is.
    pub(crate) fn update(&self, force: bool, text: impl FnOnce() -> String) {
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if !force && last.is_some_and(|t| now.duration_since(t) < STATUS_EVERY) {
                return;
            }
            *last = Some(now);
        }
        (self.progress)(&text());
    }
}
