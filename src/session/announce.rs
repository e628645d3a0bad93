//! Announcements: with `notify: { announce: true }` in environments.yaml, a run that changes
//! something posts to the environment's notify target (a Slack-style incoming webhook) when it
//! starts and how it ended, whatever the end: succeeded, failed, rolled back, declined,
//! interrupted. This is the session's business, not a step's: it brackets the engine's run,
//! so no runbook can forget it, a failure or Ctrl-C cannot skip the end, and a read-only
//! runbook (an audit) never posts.
//!
//! A failed announcement is a warning, never a failed run: telling a channel is not the
//! rotation, and a chat outage must not stop one on suspected compromise. The webhook's URL
//! is a credential (read from SSM, decrypted, kept in memory only): no message, warning or
//! error shows it or a part of it, and the messages hold only names (runbook, environment,
//! run id, operator) and the outcome, never a value of the run.

use std::time::Duration;

use crate::engine::Interrupt;
use crate::engine::event::RunStatus;
use crate::model::{Environment, NotifySpec};
use crate::secret::Redactor;

/// How long one post may take; a run does not wait longer for a chat service.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a run announces, and where.
pub(super) struct Announcer {
    spec: NotifySpec,
    env: Environment,
    runbook: String,
    run_id: String,
    operator: String,
    resumed: bool,
    /// The webhook's URL, once read (the start and the end of a run post to the same one).
    url: tokio::sync::OnceCell<String>,
}

impl Announcer {
    /// The announcer of a run, when its environment asks for announcements and the run may
    /// change something elsewhere (`changes`: not every step is read-only or local).
    pub(super) fn of_run(
        env: &Environment,
        runbook: &str,
        run_id: &str,
        resumed: bool,
        changes: bool,
    ) -> Option<Announcer> {
        let spec = env.doc.notify.as_ref().filter(|n| n.announce)?;
        if !changes {
            return None;
        }
        Some(Announcer {
            spec: spec.clone(),
            env: env.clone(),
            runbook: runbook.to_string(),
            run_id: run_id.to_string(),
            operator: crate::engine::operator(),
            resumed,
            url: tokio::sync::OnceCell::new(),
        })
    }

    /// Who and what, in every message. Slack reads `<…>` as a link or a mention
    /// (`<!channel>`) and `&` as an entity: the three are escaped as its format asks.
    fn about(&self) -> String {
        // A backquote would end the code span a name is shown in.
        let esc = |s: &str| crate::template::slack_escaped(s).replace('`', "'");
        format!(
            "`{}` on `{}` (run {}, by {})",
            esc(&self.runbook),
            esc(&self.env.name),
            self.run_id,
            esc(&self.operator)
        )
    }

    /// The message before the run's first step.
    pub(super) fn start_text(&self) -> String {
        let verb = if self.resumed { "resuming" } else { "starting" };
        format!("runbook: {verb} {}", self.about())
    }

    /// The message when the run stopped, however it stopped.
    pub(super) fn end_text(&self, status: RunStatus) -> String {
        let (what, next) = match status {
            RunStatus::Done => ("succeeded", String::new()),
            RunStatus::RolledBack => (
                "failed and was rolled back",
                format!(" `runbook runs {}` tells what ran.", self.run_id),
            ),
            RunStatus::Failed => (
                "failed",
                format!(
                    " `runbook runs {}` tells what ran and what is left; `runbook resume {}` continues it.",
                    self.run_id, self.run_id
                ),
            ),
            RunStatus::Declined => (
                "was declined at a gate",
                " The steps after the gate did not run.".to_string(),
            ),
            RunStatus::Interrupted => (
                "was interrupted (Ctrl-C)",
                format!(" `runbook resume {}` continues it.", self.run_id),
            ),
        };
        format!("runbook: finished {}: {what}.{next}", self.about())
    }

    /// Post `text`; a warning line to show when that did not work (never the URL).
    pub(super) async fn post(&self, text: &str, when: &str) -> Option<String> {
        match self.send(text).await {
            Ok(()) => None,
            Err(why) => Some(format!(
                "warning: {when} of run {} could not be announced to the notify target of `{}`: {why}",
                self.run_id, self.env.name
            )),
        }
    }

    /// The warning when Ctrl-C gave up a post.
    pub(super) fn given_up(&self, when: &str) -> String {
        format!(
            "warning: {when} of run {} was not announced to the notify target of `{}`: given up at Ctrl-C",
            self.run_id, self.env.name
        )
    }

    async fn send(&self, text: &str) -> Result<(), String> {
        let url = self.url.get_or_try_init(|| self.read_url()).await?.clone();
        // Whatever goes wrong below is said without the URL or any piece of it.
        let masked = Redactor::new();
        masked.add(&url);
        let scrub = |s: String| masked.redact(&s).into_owned();

        // reqwest is built without a default crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .connect_timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = self.spec.ca_file.as_deref().filter(|c| !c.is_empty()) {
            let certs = crate::steps::read_ca(ca).map_err(|e| e.to_string())?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| {
            scrub(format!(
                "cannot set up the HTTP client: {}",
                crate::steps::error_chain(&e)
            ))
        })?;
        let body = serde_json::json!({ "text": text }).to_string();
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                scrub(format!(
                    "the post failed: {}",
                    crate::steps::error_chain(&e.without_url())
                ))
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // Slack says why in a word (`invalid_token`, `no_service`): show a short answer only,
        // made visible and with the URL masked in case the server repeats it.
        let said = resp.text().await.unwrap_or_default();
        let said = said.trim();
        let said = if !said.is_empty() && said.len() <= 80 && !said.contains('\n') {
            format!(
                " ({})",
                crate::display::visible_line(&scrub(said.to_string()))
            )
        } else {
            String::new()
        };
        let hint = match status.as_u16() {
            401 | 403 | 404 | 410 => {
                "; the webhook's URL was refused: check that the SSM parameter holds a live one"
            }
            _ => "",
        };
        Err(format!(
            "the target answered {}{said}{hint} (`{}`)",
            status.as_u16(),
            self.spec.url_parameter
        ))
    }

    /// The webhook's URL, read from SSM (decrypted).
    async fn read_url(&self) -> Result<String, String> {
        let name = &self.spec.url_parameter;
        let resources = crate::steps::Resources::default();
        let ssm = crate::aws::client_in(&self.env, &resources)
            .await
            .map_err(|e| e.message)?;
        let out = ssm
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| ssm.error(e, "ssm:GetParameter", name, None).message)?;
        let url = out
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or_default()
            .trim()
            .to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "SSM parameter `{name}` does not hold an http(s) URL"
            ));
        }
        Ok(url)
    }
}

/// Returns once Ctrl-C was pressed more than `level` times in all.
pub(super) async fn ctrl_c_beyond(interrupt: &Interrupt, level: u8) {
    while interrupt.level() <= level {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
