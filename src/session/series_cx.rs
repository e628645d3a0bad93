//! What the runs of a series share with it: the series id, and a Ctrl-C pressed between two
//! runs (when no engine listens for it), which stops the series before its next environment.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Failure, Frontend, Kind};
use crate::display::visible_line;

/// What a run of a series shares with the series: its id, and the Ctrl-C seen between runs.
pub(super) struct SeriesCx {
    pub(super) id: String,
    /// A Ctrl-C was pressed: no environment starts after it.
    stop: Arc<AtomicBool>,
    /// A run is under way (its engine, not the series, answers a Ctrl-C).
    running: Arc<AtomicBool>,
}

/// While alive, a run of the series is under way.
pub(super) struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl SeriesCx {
    pub(super) fn new(id: String, front: Arc<dyn Frontend>) -> SeriesCx {
        let cx = SeriesCx {
            id,
            stop: Arc::new(AtomicBool::new(false)),
            running: Arc::new(AtomicBool::new(false)),
        };
        cx.listen(front);
        cx
    }

    /// Listen for Ctrl-C for the whole series, beside each run's own listener: the process
    /// no longer dies of SIGINT once a run has listened for it, so a press between two runs
    /// (the next one's preflight) must still stop the series. The first press stops it before
    /// the next environment; a second one outside any run (a preflight that hangs) ends the
    /// process: no journal of that environment exists yet, so nothing is left half done.
    fn listen(&self, front: Arc<dyn Frontend>) {
        let stop = self.stop.clone();
        let running = self.running.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    let again = stop.swap(true, Ordering::SeqCst);
                    if running.load(Ordering::SeqCst) {
                        // The run's own listener says what this press does to it.
                        continue;
                    }
                    if again {
                        front.status(None);
                        front.interrupted("stopped before the environment's run began; nothing changed there");
                        std::process::exit(130);
                    }
                    front.interrupted(
                        "the series stops before the next environment's run begins (press again to stop at once)",
                    );
                }
            });
        });
    }

    /// The run on `env` begins now, unless a Ctrl-C stopped the series.
    pub(super) fn start_run(&self, env: &str) -> Result<Running, Failure> {
        self.running.store(true, Ordering::SeqCst);
        let running = Running(self.running.clone());
        if self.stop.load(Ordering::SeqCst) {
            return Err(Failure::quiet(Kind::Interrupted).line(format!(
                "Ctrl-C: the run on {} did not begin; nothing changed there",
                visible_line(env)
            )));
        }
        Ok(running)
    }

    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
