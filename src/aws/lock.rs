//! The shared run lock (`shared_lock:` of an environment), held in SSM so that operators on
//! different machines are kept apart too. Not a step: a run takes it after its local lock.

use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;

use super::{Ssm, already_exists, client_in};
use crate::model::Environment;
use crate::steps::common::error_chain;
use crate::steps::kind::{Resources, StepError};

/// A run lock held in SSM (`shared_lock:` of an environment): a create-only parameter naming
/// its holder and when it expires, so operators on different machines are kept apart too.
pub struct SharedLock {
    ssm: Ssm,
    name: String,
    value: String,
}

pub enum SharedLockError {
    /// Someone holds it: the holder's own description.
    Held(String),
    Failed(StepError),
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Take the shared lock `name`, or say who holds it. An expired lock is taken over.
pub async fn take_shared_lock(
    env: &Environment,
    resources: &Resources,
    name: &str,
    holder: serde_json::Value,
    ttl: Duration,
) -> Result<SharedLock, SharedLockError> {
    let ssm = client_in(env, resources)
        .await
        .map_err(SharedLockError::Failed)?;
    let mut holder = holder;
    holder["expires"] = (now_secs() + ttl.as_secs()).into();
    let value = holder.to_string();
    let put = |overwrite: bool| {
        ssm.client
            .put_parameter()
            .name(name)
            .value(&value)
            .r#type(ParameterType::String)
            .overwrite(overwrite)
            .description("runbook run lock")
            .send()
    };
    let fail = |e: String| {
        SharedLockError::Failed(StepError::new(format!(
            "cannot take the shared lock {name}: {e}"
        )))
    };
    // The lock's value as it is now.
    let read = || async {
        let out = ssm
            .client
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        Ok::<_, SharedLockError>(
            out.parameter()
                .and_then(|p| p.value())
                .unwrap_or_default()
                .to_string(),
        )
    };
    match put(false).await {
        Ok(_) => {}
        Err(e) if already_exists(&e) => {
            let text = read().await?;
            let expires = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["expires"].as_u64())
                .unwrap_or(0);
            if expires > now_secs() {
                return Err(SharedLockError::Held(text));
            }
            // Stale: its holder died. Take it over, then read back: if two operators took it
            // over at once, the last write wins and the other one sees it is not theirs.
            put(true).await.map_err(|e| fail(error_chain(&e)))?;
            let now_held = read().await?;
            if now_held != value {
                return Err(SharedLockError::Held(now_held));
            }
        }
        Err(e) => return Err(fail(error_chain(&e))),
    }
    Ok(SharedLock {
        ssm,
        name: name.to_string(),
        value,
    })
}

impl SharedLock {
    /// Release the lock if it is still ours.
    pub async fn release(self) -> Result<(), StepError> {
        let current = self
            .ssm
            .client
            .get_parameter()
            .name(&self.name)
            .send()
            .await;
        let ours = current
            .ok()
            .and_then(|c| c.parameter().and_then(|p| p.value().map(str::to_string)))
            == Some(self.value);
        if ours {
            self.ssm
                .client
                .delete_parameter()
                .name(&self.name)
                .send()
                .await
                .map_err(|e| {
                    StepError::new(format!(
                        "cannot release the shared lock {}: {}",
                        self.name,
                        error_chain(&e)
                    ))
                })?;
        }
        Ok(())
    }
}
