//! AWS as this program uses it: one SSM client per environment per run (kept in the run's
//! [`Resources`]), calls retried while SSM throttles, errors that say what went wrong without
//! the value, and whose credentials a run uses. The `ssm.*` step kinds and the shared lock
//! ([`lock`]) are built on it.

pub mod lock;
pub mod meta;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

use crate::model::Environment;
use crate::secret::MASK;
use crate::steps::common::error_chain;
use crate::steps::kind::{Resources, RunCx, StepError};

type HttpResponse = aws_sdk_ssm::config::http::HttpResponse;

/// Attempts of one call while SSM answers "slow down", the first included.
const ATTEMPTS: u32 = 5;
/// Wait before the second attempt; doubled after each throttled attempt, up to [`MAX_DELAY`].
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(4);
/// Bounds of one call, so an unreachable endpoint fails with our message rather than only at
/// the step's `timeout:`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and as whom the calls go, for messages.
#[derive(Clone)]
pub(crate) struct Target {
    env: String,
    region: String,
    profile: Option<String>,
    endpoint: String,
}

#[derive(Clone)]
pub(crate) struct Ssm {
    pub(crate) client: Client,
    /// The loaded AWS configuration, for the STS caller-identity call of the audit log.
    config: aws_config::SdkConfig,
    target: Target,
    /// The SDK client does not expose its provider; `runbook preflight` asks it directly.
    credentials: Option<aws_sdk_ssm::config::SharedCredentialsProvider>,
}

/// The run's SSM clients, one per environment.
#[derive(Default)]
pub struct SsmClients {
    // An async lock: building a client awaits (profile files), and two steps must not build two.
    by_env: tokio::sync::Mutex<HashMap<String, Ssm>>,
}

pub(crate) async fn client(cx: &RunCx<'_>) -> Result<Ssm, StepError> {
    client_in(cx.env, cx.resources).await
}

pub(crate) async fn client_in(env: &Environment, resources: &Resources) -> Result<Ssm, StepError> {
    let aws = env.doc.aws.as_ref().ok_or_else(|| {
        StepError::new(format!("environment `{}` has no `aws:` settings", env.name)).with_help(
            format!(
                "add `aws: {{ region: us-east-1 }}` under `environments.{}` in environments.yaml",
                env.name
            ),
        )
    })?;
    let pool = resources.get::<SsmClients>();
    let mut by_env = pool.by_env.lock().await;
    if let Some(ssm) = by_env.get(&env.name) {
        return Ok(ssm.clone());
    }
    // ring only: no second TLS stack and no C build (aws-lc).
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    // The SDK's own retries are off: throttling is retried by `throttled` (which reports it),
    // and anything else fails at once with a clear message; `retry:` on the step is the
    // operator's choice.
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new(aws.region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(profile) = &aws.profile {
        loader = loader.profile_name(profile);
    }
    // Without `endpoint:`, aws-config reads AWS_ENDPOINT_URL_SSM / AWS_ENDPOINT_URL itself.
    if let Some(endpoint) = &aws.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let conf = loader.load().await;
    let endpoint = aws
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_SSM").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| format!("https://ssm.{}.amazonaws.com", aws.region));
    let ssm = Ssm {
        client: Client::new(&conf),
        config: conf.clone(),
        credentials: conf.credentials_provider(),
        target: Target {
            env: env.name.clone(),
            region: aws.region.clone(),
            profile: aws.profile.clone(),
            endpoint,
        },
    };
    by_env.insert(env.name.clone(), ssm.clone());
    Ok(ssm)
}

/// `runbook preflight`: the environment's AWS credentials resolve (without calling SSM).
pub(crate) async fn check_credentials(cx: &RunCx<'_>) -> Result<String, StepError> {
    use aws_sdk_ssm::config::ProvideCredentials;
    let ssm = client(cx).await?;
    let t = &ssm.target;
    let provider = ssm.credentials.as_ref().ok_or_else(|| {
        StepError::new(format!("no AWS credentials for environment `{}`", t.env))
            .with_help(credentials_help(t))
    })?;
    provider.provide_credentials().await.map_err(|e| {
        StepError::new(format!(
            "no AWS credentials for environment `{}`: {}",
            t.env,
            error_chain(&e)
        ))
        .with_help(credentials_help(t))
    })?;
    Ok(format!("region {}, {}", t.region, t.endpoint))
}

/// `runbook preflight`: a parameter's metadata (never its value) through
/// `ssm:DescribeParameters`: its version, or None when it does not exist.
pub(crate) async fn describe(cx: &RunCx<'_>, name: &str) -> Result<Option<i64>, StepError> {
    // One name through the paging of many: an empty page with a next token is not "missing".
    let found = meta::describe_many(cx.env, cx.resources, &[name.to_string()], cx.progress).await?;
    Ok(found.get(name).map(|v| v.version))
}

/// Error codes that mean "slow down": safe to send again, nothing was changed.
fn is_throttling(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "TooManyUpdates"
        )
    )
}

pub(crate) fn already_exists<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.code() == Some("ParameterAlreadyExists")
}

/// Call again, with a growing jittered wait from `first_delay`, while SSM throttles; other
/// outcomes return at once. Each wait is reported through `progress`.
pub(crate) async fn throttled<T, Err, F, Fut>(
    progress: &(dyn Fn(&str) + Send + Sync),
    first_delay: Duration,
    action: &str,
    mut call: F,
) -> Result<T, Err>
where
    Err: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Err>>,
{
    let mut delay = first_delay;
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < ATTEMPTS && is_throttling(e.code()) => {
                progress(&format!(
                    "SSM is throttling {action}; attempt {}/{ATTEMPTS} in {}ms",
                    attempt + 1,
                    delay.as_millis()
                ));
                // Jitter (50–100% of the wait) so parallel runs do not retry in step.
                let mut b = [0u8; 1];
                let _ = getrandom::fill(&mut b);
                tokio::time::sleep(delay.mul_f64(0.5 + f64::from(b[0]) / 510.0)).await;
                delay = (delay * 2).min(MAX_DELAY);
                attempt += 1;
            }
            r => return r,
        }
    }
}

impl Ssm {
    /// A short message for a failed call, naming the action and the parameter, with a help
    /// line and the service's words as detail. `value` (a put's value) is scrubbed from
    /// everything the service said, in case a validation message quotes it.
    pub(crate) fn error<E>(
        &self,
        e: SdkError<E, HttpResponse>,
        action: &str,
        name: &str,
        value: Option<&str>,
    ) -> StepError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let t = &self.target;
        let scrub = |s: &str| scrub(s, value);
        let context = scrub(&error_chain(&e));
        match &e {
            SdkError::ServiceError(_) => {
                let code = e.code().unwrap_or("unknown error");
                let said = scrub(&format!(
                    "{code}: {}",
                    e.message().unwrap_or("(no message)")
                ));
                let (message, help) = match code {
                    "ParameterNotFound" | "ParameterVersionNotFound" => (
                        format!("SSM parameter `{name}` not found"),
                        format!(
                            "check the name and its prefix, and that it is in region {} \
                             (environment `{}`)",
                            t.region, t.env
                        ),
                    ),
                    "AccessDeniedException" | "AccessDenied" => (
                        format!("access denied: {action} on `{name}`"),
                        format!(
                            "the AWS identity of environment `{}` needs {action} on this \
                             parameter (and kms:Decrypt/kms:Encrypt for a SecureString)",
                            t.env
                        ),
                    ),
                    "ParameterAlreadyExists" => (
                        format!("SSM parameter `{name}` already exists"),
                        "write `overwrite: true` to store a new version, or `if_exists: skip` \
                         to keep the current one"
                            .into(),
                    ),
                    c if is_throttling(Some(c)) => (
                        format!(
                            "SSM kept throttling {action} on `{name}`; gave up after {ATTEMPTS} \
                             attempts"
                        ),
                        "wait a little and run again, or give the step a `retry:`".into(),
                    ),
                    "UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "ExpiredTokenException"
                    | "ExpiredToken"
                    | "InvalidSignatureException"
                    | "SignatureDoesNotMatch" => (
                        format!("AWS rejected the credentials of environment `{}`", t.env),
                        credentials_help(t),
                    ),
                    _ => (
                        format!("{action} on `{name}` failed: {code}"),
                        String::new(),
                    ),
                };
                StepError::new(message).with_detail(said).with_help(help)
            }
            SdkError::DispatchFailure(d) => {
                // Identity resolution fails before anything is sent and surfaces here as an
                // "other" dispatch failure whose causes name the credential providers.
                if d.is_other() && context.to_lowercase().contains("credential") {
                    StepError::new(format!("no AWS credentials for environment `{}`", t.env))
                        .with_detail(format!("cause: {context}"))
                        .with_help(credentials_help(t))
                } else {
                    StepError::new(format!("cannot reach SSM at {}", t.endpoint))
                        .with_detail(format!("cause: {context}"))
                        .with_help(format!(
                            "check the network, the region ({}) and `aws.endpoint` or \
                             AWS_ENDPOINT_URL_SSM",
                            t.region
                        ))
                }
            }
            SdkError::TimeoutError(_) => StepError::new(format!(
                "SSM at {} did not answer {action} within {}s",
                t.endpoint,
                ATTEMPT_TIMEOUT.as_secs()
            ))
            .with_detail(format!("cause: {context}")),
            SdkError::ResponseError(_) => StepError::new(format!(
                "unreadable answer from SSM at {} to {action}",
                t.endpoint
            ))
            .with_detail(format!("cause: {context}")),
            _ => StepError::new(format!("could not send {action} for `{name}`"))
                .with_detail(format!("cause: {context}")),
        }
    }
}

fn credentials_help(t: &Target) -> String {
    match &t.profile {
        Some(p) => format!(
            "check the profile `{p}` in ~/.aws/config, and run `aws sso login --profile {p}` \
             if it uses SSO"
        ),
        None => "set AWS_PROFILE (then `aws sso login` if it uses SSO), set `aws.profile` for \
                 the environment, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            .into(),
    }
}

/// The service's text without the value being written: AWS validation messages quote the
/// offending field (`Value '…' at 'value' failed to satisfy constraint`).
fn scrub(text: &str, value: Option<&str>) -> String {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return text.to_string();
    };
    let text = text.replace(value, MASK);
    let quoted = regex::Regex::new(r"(?s)Value '.*?' at 'value'").expect("valid pattern");
    quoted
        .replace_all(&text, format!("Value '{MASK}' at 'value'").as_str())
        .into_owned()
}

/// Who the environment's AWS credentials belong to (STS GetCallerIdentity), for the audit
/// log. Best effort: `None` when there are no credentials or STS does not answer quickly.
pub async fn caller_identity(env: &Environment, resources: &Resources) -> Option<String> {
    let ssm = client_in(env, resources).await.ok()?;
    let mut sts = aws_sdk_sts::config::Builder::from(&ssm.config);
    // The SSM endpoint override of a local test server serves STS too; real AWS needs none.
    if let Some(endpoint) = env.doc.aws.as_ref().and_then(|a| a.endpoint.clone()) {
        sts = sts.endpoint_url(endpoint);
    }
    let client = aws_sdk_sts::Client::from_conf(sts.build());
    let call = client.get_caller_identity().send();
    let out = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .ok()?
        .ok()?;
    out.arn().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_value_and_quoted_fields() {
        let s = scrub(
            "1 validation error detected: Value 's3cr3t-xyz' at 'value' failed; s3cr3t-xyz",
            Some("s3cr3t-xyz"),
        );
        assert!(!s.contains("s3cr3t"), "{s}");
        let s = scrub("Value 'abc…' at 'value' failed", Some("abcdef"));
        assert!(!s.contains("abc"), "{s}");
    }

    #[tokio::test]
    async fn throttling_is_retried_then_given_up_and_other_errors_are_not() {
        use aws_sdk_ssm::error::ErrorMetadata;
        use std::sync::Mutex;
        let err = |code: &str| ErrorMetadata::builder().code(code).build();
        let lines = Mutex::new(Vec::<String>::new());
        let progress = |l: &str| lines.lock().unwrap().push(l.to_string());
        let tiny = Duration::from_millis(1);

        let mut calls = 0;
        let r: Result<(), _> = throttled(&progress, tiny, "ssm:PutParameter", || {
            calls += 1;
            std::future::ready(Err(err("ThrottlingException")))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Some("ThrottlingException"));
        assert_eq!(calls, ATTEMPTS);
        assert_eq!(lines.lock().unwrap().len(), ATTEMPTS as usize - 1);

        let mut calls = 0;
        let r = throttled(&progress, tiny, "ssm:GetParameter", || {
            calls += 1;
            std::future::ready(if calls < 3 {
                Err(err("TooManyUpdates"))
            } else {
                Ok(7)
            })
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls, 3);

        let mut calls = 0;
        let r: Result<(), _> = throttled(&progress, tiny, "ssm:GetParameter", || {
            calls += 1;
            std::future::ready(Err(err("ParameterNotFound")))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn throttling_codes() {
        assert!(is_throttling(Some("ThrottlingException")));
        assert!(is_throttling(Some("TooManyUpdates")));
        assert!(!is_throttling(Some("ParameterNotFound")));
        assert!(!is_throttling(None));
    }
}
