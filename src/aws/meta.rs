//! Parameters' metadata for `runbook status`: when each was last changed, its version and by
//! whom (`ssm:DescribeParameters`), and the dates of its earlier versions
//! (`ssm:GetParameterHistory`). Never a value: the history call asks for none decrypted, and
//! what it returns of a value is dropped unread.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_ssm::types::ParameterStringFilter;

use super::{FIRST_DELAY, client_in, throttled};
use crate::model::Environment;
use crate::steps::kind::{Resources, StepError};

/// One version of a parameter, as SSM describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: i64,
    pub modified: Option<SystemTime>,
    /// The ARN of who stored it (`LastModifiedUser`), when SSM says.
    pub user: Option<String>,
}

/// `DescribeParameters` takes at most 50 names in one filter.
const NAMES_PER_CALL: usize = 50;
/// Pages of one listing read at most (SSM keeps 100 versions of a parameter).
const MAX_PAGES: usize = 40;

fn time(t: Option<&aws_sdk_ssm::primitives::DateTime>) -> Option<SystemTime> {
    SystemTime::try_from(*t?).ok()
}

/// The latest version of each of `names` on `env` that exists (a name missing from the map
/// does not exist).
pub async fn describe_many(
    env: &Environment,
    resources: &Resources,
    names: &[String],
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<HashMap<String, Version>, StepError> {
    let ssm = client_in(env, resources).await?;
    let action = "ssm:DescribeParameters";
    let mut found = HashMap::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let what = match chunk.len() {
            1 => chunk[0].clone(),
            n => format!("{} (and {} more)", chunk[0], n - 1),
        };
        let filter = ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .set_values(Some(chunk.to_vec()))
            .build()
            .map_err(|e| StepError::new(format!("cannot describe `{what}`: {e}")))?;
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = throttled(progress, FIRST_DELAY, action, || {
                ssm.client
                    .describe_parameters()
                    .parameter_filters(filter.clone())
                    .max_results(NAMES_PER_CALL as i32)
                    .set_next_token(token.clone())
                    .send()
            })
            .await
            .map_err(|e| ssm.error(e, action, &what, None))?;
            for p in out.parameters() {
                let Some(name) = p.name().filter(|n| chunk.iter().any(|c| c == n)) else {
                    continue;
                };
                found.insert(
                    name.to_string(),
                    Version {
                        version: p.version(),
                        modified: time(p.last_modified_date()),
                        user: p.last_modified_user().map(str::to_string),
                    },
                );
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        // Names left unread would show as never set: a wrong answer, not a partial one.
        if token.is_some() {
            return Err(unfinished(action, &what));
        }
    }
    Ok(found)
}

/// SSM still had pages after [`MAX_PAGES`] of them.
fn unfinished(action: &str, what: &str) -> StepError {
    StepError::new(format!(
        "{action} of `{what}` still had more pages after {MAX_PAGES}: the answer would be incomplete"
    ))
    .with_help("try again; if it persists, SSM is answering with empty pages (report it)")
}

/// Every version of `name` SSM keeps, oldest first, without values.
pub async fn history(
    env: &Environment,
    resources: &Resources,
    name: &str,
) -> Result<Vec<Version>, StepError> {
    let ssm = client_in(env, resources).await?;
    let action = "ssm:GetParameterHistory";
    let mut versions = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let out = throttled(&|_| {}, FIRST_DELAY, action, || {
            ssm.client
                .get_parameter_history()
                .name(name)
                .max_results(50)
                .with_decryption(false)
                .set_next_token(token.clone())
                .send()
        })
        .await
        .map_err(|e| ssm.error(e, action, name, None))?;
        for p in out.parameters() {
            versions.push(Version {
                version: p.version(),
                modified: time(p.last_modified_date()),
                user: p.last_modified_user().map(str::to_string),
            });
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    if token.is_some() {
        return Err(unfinished(action, name));
    }
    versions.sort_by_key(|v| v.version);
    Ok(versions)
}
