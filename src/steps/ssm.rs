//! `ssm.get` and `ssm.put`: read and write AWS SSM Parameter Store parameters, with one SDK
//! client per environment per run, and errors that say what went wrong without the value.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::ParameterType;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{CheckCx, Effect, Kind, MASK, Output, OutputSpec, Outputs, RunCx, StepError};
use crate::diag::Problem;
use crate::template;

type HttpResponse = aws_sdk_ssm::config::http::HttpResponse;

/// Attempts of one call while SSM answers "slow down", the first included.
const ATTEMPTS: u32 = 5;
/// Wait before the second attempt; doubled after each throttled attempt, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(4);
/// Bounds of one call, so an unreachable endpoint fails with our message rather than only at
/// the step's `timeout:`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Get;
pub struct Put;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Full parameter name, e.g. `{{ env.ssm_prefix }}/DB_PASSWORD`.
    pub name: String,
    /// Decrypt a SecureString (default true); without it the value is the ciphertext.
    #[serde(default = "yes")]
    pub decrypt: bool,
}

fn yes() -> bool {
    true
}

/// The parameter types `ssm.put` writes (`StringList` is not offered: no secret fits it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum PutType {
    /// Plain text, readable by anyone who may read the parameter.
    String,
    /// Encrypted with KMS (the default).
    #[default]
    SecureString,
}

impl PutType {
    fn sdk(self) -> ParameterType {
        match self {
            PutType::String => ParameterType::String,
            PutType::SecureString => ParameterType::SecureString,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            PutType::String => "String",
            PutType::SecureString => "SecureString",
        }
    }
}

/// What `ssm.put` does when the parameter already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IfExists {
    /// Fail and change nothing.
    Fail,
    /// Leave it untouched; `version` is the existing version and `skipped` is true.
    Skip,
    /// Store the value as a new version.
    Overwrite,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// Full parameter name, e.g. `{{ env.ssm_prefix }}/DB_PASSWORD`.
    pub name: String,
    /// The value to store (usually a template naming a secret output).
    pub value: String,
    /// `SecureString` (default) or `String`.
    #[serde(default, rename = "type")]
    pub kind: PutType,
    /// KMS key id, ARN or alias for a SecureString (default: the account's `aws/ssm` key).
    #[serde(default)]
    pub key_id: Option<String>,
    /// The parameter's description in SSM.
    #[serde(default)]
    pub description: Option<String>,
    /// Replace an existing parameter (shorthand for `if_exists: overwrite`).
    #[serde(default)]
    pub overwrite: Option<bool>,
    /// When the parameter exists: `fail`, `skip` or `overwrite`.
    /// Default: `overwrite` with `overwrite: true`, else `fail`.
    #[serde(default)]
    pub if_exists: Option<IfExists>,
}

impl PutParams {
    /// The policy in effect. `if_exists` wins when both are given; check refuses that anyway.
    pub(crate) fn policy(&self) -> IfExists {
        self.if_exists.unwrap_or(if self.overwrite == Some(true) {
            IfExists::Overwrite
        } else {
            IfExists::Fail
        })
    }
}

impl Kind for Get {
    const NAME: &'static str = "ssm.get";
    const SUMMARY: &'static str = "Read an SSM parameter (outputs `value`, secret when it is a \
         SecureString; `version`; `type`).";
    type Params = GetParams;

    fn outputs(_: &GetParams, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        vec![
            OutputSpec::maybe("value"),
            OutputSpec::public("version"),
            OutputSpec::public("type"),
        ]
    }

    fn check(p: &GetParams, cx: &mut CheckCx<'_>) {
        check_name(&p.name, cx);
        check_aws(cx);
    }

    fn describe(p: &GetParams) -> String {
        if p.decrypt {
            format!("read SSM parameter {}", p.name)
        } else {
            format!("read SSM parameter {} without decrypting", p.name)
        }
    }

    fn effect(_: &GetParams) -> Effect {
        Effect::ReadOnly
    }

    async fn run(p: GetParams, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let ssm = client(cx).await?;
        let action = "ssm:GetParameter";
        let out = throttled(cx.progress, FIRST_DELAY, action, || {
            ssm.client
                .get_parameter()
                .name(&p.name)
                .with_decryption(p.decrypt)
                .send()
        })
        .await
        .map_err(|e| ssm.error(e, action, &p.name, None))?;
        let param = out
            .parameter()
            .ok_or_else(|| StepError::new(format!("SSM returned no parameter for `{}`", p.name)))?;
        let kind = param.r#type();
        // An unknown type is treated as secret: masking a public value costs nothing.
        let secret = !matches!(
            kind,
            Some(ParameterType::String | ParameterType::StringList)
        );
        let value = param
            .value()
            .ok_or_else(|| StepError::new(format!("SSM returned no value for `{}`", p.name)))?;
        if secret {
            (cx.add_secret)(value).map_err(|e| {
                StepError::new(format!("SecureString `{}`: {e}", p.name))
                    .with_detail("its value was not shown; store a longer secret")
            })?;
        }
        Ok(vec![
            Output {
                name: "value".into(),
                value: value.into(),
                secret,
            },
            Output {
                name: "version".into(),
                value: param.version().into(),
                secret: false,
            },
            Output {
                name: "type".into(),
                value: kind.map_or("unknown", ParameterType::as_str).into(),
                secret: false,
            },
        ])
    }

    fn by_hand(p: &GetParams, cx: &crate::docs::HandCx<'_>) -> Option<String> {
        let decrypt = if p.decrypt { " --with-decryption" } else { "" };
        let file = cx.secret_file("value");
        Some(format!(
            "Read it into the file `{file}` (`{}` below), readable only by you:\n\n```sh\n\
             (umask 077 && aws ssm get-parameter {} \\\n    --name {}{decrypt} \\\n    \
             --query Parameter.Value --output text | tr -d '\\n' > {file})\n```",
            cx.secret_placeholder("value"),
            cx.aws_options(),
            crate::docs::sh_word(&p.name),
        ))
    }
}

impl Kind for Put {
    const NAME: &'static str = "ssm.put";
    const SUMMARY: &'static str = "Write an SSM parameter, a SecureString by default (outputs \
         `version`, `skipped`).";
    type Params = PutParams;

    fn outputs(_: &PutParams, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        vec![OutputSpec::public("version"), OutputSpec::public("skipped")]
    }

    fn check(p: &PutParams, cx: &mut CheckCx<'_>) {
        check_name(&p.name, cx);
        check_aws(cx);
        match (p.overwrite, p.if_exists) {
            (Some(true), Some(w @ (IfExists::Fail | IfExists::Skip)))
            | (Some(false), Some(w @ IfExists::Overwrite)) => {
                let w = format!("{w:?}").to_lowercase();
                cx.problem_at(
                    "if_exists",
                    Problem::error(
                        "runbook::ssm-if-exists",
                        format!(
                            "`overwrite: {}` contradicts `if_exists: {w}`",
                            p.overwrite == Some(true)
                        ),
                    )
                    .label("contradicts `overwrite`")
                    .help(format!(
                        "keep only `if_exists: {w}`; `overwrite: true` is shorthand for \
                         `if_exists: overwrite`"
                    )),
                );
            }
            _ => {}
        }
        if p.kind == PutType::String && p.key_id.is_some() {
            cx.problem_at(
                "key_id",
                Problem::error(
                    "runbook::ssm-key-id",
                    "`key_id` only applies to `type: SecureString`",
                )
                .help("remove `key_id`, or store the value as a SecureString"),
            );
        }
        if p.kind == PutType::String
            && let Ok(refs) = template::references(&p.value)
            && let Some(secret) = refs.iter().find(|r| (cx.secret_refs)(r))
        {
            cx.problem_at(
                "value",
                Problem::warning(
                    "runbook::ssm-secret-unencrypted",
                    format!(
                        "`{secret}` is a secret, but `type: String` stores it unencrypted in `{}`",
                        p.name
                    ),
                )
                .label("a secret")
                .help("remove `type: String` to store it as a SecureString (the default)"),
            );
        }
    }

    fn describe(p: &PutParams) -> String {
        // Never the value: plans and progress show this line.
        let when = match p.policy() {
            IfExists::Fail => "must not exist yet",
            IfExists::Skip => "only if absent",
            IfExists::Overwrite => "new version",
        };
        let key = p
            .key_id
            .as_ref()
            .map(|k| format!(", KMS key {k}"))
            .unwrap_or_default();
        format!(
            "write SSM parameter {} as {} ({when}{key})",
            p.name,
            p.kind.as_str()
        )
    }

    fn effect(p: &PutParams) -> Effect {
        Effect::Changes(match p.policy() {
            IfExists::Skip => format!("SSM {}: created if absent", p.name),
            IfExists::Fail | IfExists::Overwrite => format!("SSM {}: new version", p.name),
        })
    }

    /// Putting the same value again is harmless, unless the put must fail on an existing one.
    fn idempotent(p: &PutParams) -> bool {
        p.policy() != IfExists::Fail
    }

    async fn run(p: PutParams, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        if p.kind == PutType::SecureString {
            // Before the call: an error or a trace must never show it.
            (cx.add_secret)(&p.value)?;
        }
        let ssm = client(cx).await?;
        let policy = p.policy();
        let action = "ssm:PutParameter";
        let put = throttled(cx.progress, FIRST_DELAY, action, || {
            ssm.client
                .put_parameter()
                .name(&p.name)
                .value(&p.value)
                .r#type(p.kind.sdk())
                .set_key_id(p.key_id.clone())
                .set_description(p.description.clone())
                .overwrite(policy == IfExists::Overwrite)
                .send()
        })
        .await;
        let (version, skipped) = match put {
            Ok(out) => (out.version(), false),
            // Put-if-absent: the refusal is the atomic test, so no other writer can slip in
            // between a look and the write.
            Err(e) if policy == IfExists::Skip && already_exists(&e) => {
                (cx.progress)(&format!("{} exists; left unchanged", p.name));
                let action = "ssm:GetParameter";
                let out = throttled(cx.progress, FIRST_DELAY, action, || {
                    ssm.client
                        .get_parameter()
                        .name(&p.name)
                        .with_decryption(false)
                        .send()
                })
                .await
                .map_err(|e| ssm.error(e, action, &p.name, None))?;
                let version = out.parameter().map_or(0, |p| p.version());
                (version, true)
            }
            Err(e) => return Err(ssm.error(e, action, &p.name, Some(&p.value))),
        };
        Ok(vec![
            Output {
                name: "version".into(),
                value: version.into(),
                secret: false,
            },
            Output {
                name: "skipped".into(),
                value: skipped.into(),
                secret: false,
            },
        ])
    }

    fn by_hand(p: &PutParams, cx: &crate::docs::HandCx<'_>) -> Option<String> {
        use crate::docs::{sh_quote, sh_word};
        let mut s = String::new();
        // `file://` makes the AWS CLI read the value from the file: never on a command line.
        let value = match cx.file_of(&p.value) {
            Some(file) => format!("file://{file}"),
            None if cx.mentions_secret(&p.value) => {
                s.push_str(&format!(
                    "Write the value `{}` into the file `value` (with `umask 077`, never on a \
                     command line), then:\n\n",
                    p.value
                ));
                "file://value".to_string()
            }
            None => sh_quote(&p.value),
        };
        let mut cmd = format!(
            "aws ssm put-parameter {} \\\n    --name {} \\\n    --type {}",
            cx.aws_options(),
            sh_word(&p.name),
            p.kind.as_str()
        );
        if let Some(k) = &p.key_id {
            cmd.push_str(&format!(" --key-id {}", sh_word(k)));
        }
        if p.policy() == IfExists::Overwrite {
            cmd.push_str(" --overwrite");
        }
        if let Some(d) = &p.description {
            cmd.push_str(&format!(" \\\n    --description {}", sh_quote(d)));
        }
        cmd.push_str(&format!(" \\\n    --value {value}"));
        let fence = crate::display::md_fence(&cmd);
        s.push_str(&format!("{fence}sh\n{cmd}\n{fence}"));
        if value.starts_with("file://") {
            s.push_str("\n\n`file://` makes the AWS CLI read the value from the file.");
        }
        match p.policy() {
            IfExists::Skip => s.push_str(
                "\n\nIf it answers `ParameterAlreadyExists`, the parameter is already set: leave \
                 it as it is and go on.",
            ),
            IfExists::Fail => s.push_str(
                "\n\nIf it answers `ParameterAlreadyExists`, stop: the parameter must not exist yet.",
            ),
            IfExists::Overwrite => {}
        }
        Some(s)
    }
}

/// A literal name must be a full path; SSM would accept `DB_PASSWORD` at the root, which is
/// never what a runbook of an environment means.
fn check_name(name: &str, cx: &mut CheckCx<'_>) {
    if template::is_template(name) {
        return;
    }
    if !name.starts_with('/') {
        cx.problem_at(
            "name",
            Problem::error(
                "runbook::ssm-name",
                format!("SSM parameter name `{name}` must start with `/`"),
            )
            .label("not a full path")
            .help(format!(
                "write the full name, e.g. `{{{{ env.ssm_prefix }}}}/{name}`"
            )),
        );
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_.-".contains(*c)))
    {
        cx.problem_at(
            "name",
            Problem::error(
                "runbook::ssm-name",
                format!("SSM parameter name `{name}` contains `{c}`"),
            )
            .help("names may contain only letters, digits, `/`, `_`, `.` and `-`"),
        );
    }
}

/// Every environment the runbook may run in needs an `aws:` section.
fn check_aws(cx: &mut CheckCx<'_>) {
    let missing: Vec<String> = cx
        .environments
        .iter()
        .filter(|e| e.doc.aws.is_none())
        .map(|e| e.name.clone())
        .collect();
    for env in missing {
        cx.problem_at(
            "name",
            Problem::error(
                "runbook::no-aws",
                format!("environment `{env}` has no `aws:` settings"),
            )
            .help(format!(
                "add `aws: {{ region: us-east-1 }}` under `environments.{env}` in environments.yaml"
            )),
        );
    }
}

/// Where and as whom the calls go, for messages.
#[derive(Clone)]
struct Target {
    env: String,
    region: String,
    profile: Option<String>,
    endpoint: String,
}

#[derive(Clone)]
struct Ssm {
    client: Client,
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

async fn client(cx: &RunCx<'_>) -> Result<Ssm, StepError> {
    client_in(cx.env, cx.resources).await
}

async fn client_in(
    env: &crate::model::Environment,
    resources: &super::Resources,
) -> Result<Ssm, StepError> {
    let aws = env.doc.aws.as_ref().ok_or_else(|| {
        StepError::new(format!("environment `{}` has no `aws:` settings", env.name)).with_detail(
            format!(
                "help: add `aws: {{ region: us-east-1 }}` under `environments.{}` in environments.yaml",
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
            .with_detail(format!("help: {}", credentials_help(t)))
    })?;
    provider.provide_credentials().await.map_err(|e| {
        StepError::new(format!(
            "no AWS credentials for environment `{}`: {}",
            t.env,
            super::error_chain(&e)
        ))
        .with_detail(format!("help: {}", credentials_help(t)))
    })?;
    Ok(format!("region {}, {}", t.region, t.endpoint))
}

/// `runbook preflight`: a parameter's metadata (never its value) through
/// `ssm:DescribeParameters`: its version, or None when it does not exist.
pub(crate) async fn describe(cx: &RunCx<'_>, name: &str) -> Result<Option<i64>, StepError> {
    use aws_sdk_ssm::types::ParameterStringFilter;
    let ssm = client(cx).await?;
    let action = "ssm:DescribeParameters";
    let filter = ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .values(name)
        .build()
        .map_err(|e| StepError::new(format!("cannot describe `{name}`: {e}")))?;
    let out = throttled(cx.progress, FIRST_DELAY, action, || {
        ssm.client
            .describe_parameters()
            .parameter_filters(filter.clone())
            .send()
    })
    .await
    .map_err(|e| ssm.error(e, action, name, None))?;
    Ok(out
        .parameters()
        .iter()
        .find(|p| p.name() == Some(name))
        .map(|p| p.version()))
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

fn already_exists<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.code() == Some("ParameterAlreadyExists")
}

/// Call again, with a growing jittered wait from `first_delay`, while SSM throttles; other
/// outcomes return at once. Each wait is reported through `progress`.
async fn throttled<T, Err, F, Fut>(
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
    fn error<E>(
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
        let context = scrub(&super::error_chain(&e));
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
                let detail = if help.is_empty() {
                    said
                } else {
                    format!("help: {help}\n{said}")
                };
                StepError::new(message).with_detail(detail)
            }
            SdkError::DispatchFailure(d) => {
                // Identity resolution fails before anything is sent and surfaces here as an
                // "other" dispatch failure whose causes name the credential providers.
                if d.is_other() && context.to_lowercase().contains("credential") {
                    StepError::new(format!("no AWS credentials for environment `{}`", t.env))
                        .with_detail(format!("help: {}\ncause: {context}", credentials_help(t)))
                } else {
                    StepError::new(format!("cannot reach SSM at {}", t.endpoint)).with_detail(
                        format!(
                            "help: check the network, the region ({}) and `aws.endpoint` or \
                             AWS_ENDPOINT_URL_SSM\ncause: {context}",
                            t.region
                        ),
                    )
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
pub async fn caller_identity(
    env: &crate::model::Environment,
    resources: &super::Resources,
) -> Option<String> {
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
    env: &crate::model::Environment,
    resources: &super::Resources,
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
            .map_err(|e| fail(super::error_chain(&e)))?;
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
            put(true).await.map_err(|e| fail(super::error_chain(&e)))?;
            let now_held = read().await?;
            if now_held != value {
                return Err(SharedLockError::Held(now_held));
            }
        }
        Err(e) => return Err(fail(super::error_chain(&e))),
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
                        super::error_chain(&e)
                    ))
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(overwrite: Option<bool>, if_exists: Option<IfExists>) -> PutParams {
        PutParams {
            name: "/a/b".into(),
            value: "v".into(),
            kind: PutType::SecureString,
            key_id: None,
            description: None,
            overwrite,
            if_exists,
        }
    }

    #[test]
    fn policy_defaults_follow_overwrite() {
        assert_eq!(put(None, None).policy(), IfExists::Fail);
        assert_eq!(put(Some(false), None).policy(), IfExists::Fail);
        assert_eq!(put(Some(true), None).policy(), IfExists::Overwrite);
        assert_eq!(put(None, Some(IfExists::Skip)).policy(), IfExists::Skip);
    }

    #[test]
    fn describe_and_effect_never_show_the_value() {
        let mut p = put(None, Some(IfExists::Skip));
        p.value = "hunter2-planted".into();
        assert!(!Put::describe(&p).contains("hunter2"));
        assert_eq!(
            Put::effect(&p),
            Effect::Changes("SSM /a/b: created if absent".into())
        );
        assert_eq!(
            Put::effect(&put(Some(true), None)),
            Effect::Changes("SSM /a/b: new version".into())
        );
    }

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
