//! `ssm.get` and `ssm.put`: read and write AWS SSM Parameter Store parameters, through the
//! run's client of the environment (`crate::aws`), with errors that say what went wrong
//! without the value.

use aws_sdk_ssm::types::ParameterType;
use schemars::JsonSchema;
use serde::Deserialize;

use super::kind::{
    Check, CheckCx, Effect, Kind, Need, NeedCx, Needs, Output, OutputSpec, Outputs, ProbeCx, RunCx,
    Stage, Status, StepError,
};
use crate::aws::{FIRST_DELAY, already_exists, client, throttled};
use crate::diag::{Code, Problem};
use crate::template;

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
    /// The value is not a secret, whatever the parameter's type (an access key id kept as a
    /// SecureString beside its secret key): shown in clear. Default: a secret unless the
    /// parameter is a `String` or `StringList`. A value the run knows as a secret from
    /// elsewhere stays masked.
    #[serde(default)]
    pub public: bool,
    /// The value is a secret whatever the parameter's type: masked like a SecureString even
    /// when someone stored it as a plain String (a webhook URL that is its own credential).
    #[serde(default)]
    pub secret: bool,
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

    const USES_AWS: bool = true;

    fn example() -> &'static str {
        "{ name: /app/db/password }"
    }

    fn preflight(p: Option<GetParams>, cx: &NeedCx<'_>, needs: &mut Needs) {
        needs.add(Box::new(Credentials));
        if let Some(p) = p
            && needs.known("ssm read", cx.step_id, &p.name)
        {
            // An earlier step writes it: what the read will find is not there yet.
            if needs.has(Stage::Write, &p.name) {
                needs.skip(
                    Check::new("ssm read", p.name.clone())
                        .with(Status::Skip, "skipped: an earlier step writes it"),
                );
                return;
            }
            needs
                .readable
                .insert(cx.step_id.to_string(), p.name.clone());
            needs.add(Box::new(Read(p)));
        }
    }

    fn outputs(p: &GetParams, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        let value = if p.secret {
            OutputSpec::secret
        } else if p.public {
            OutputSpec::public
        } else {
            OutputSpec::maybe
        };
        vec![
            value("value"),
            OutputSpec::public("version"),
            OutputSpec::public("type"),
        ]
    }

    fn check(p: &GetParams, cx: &mut CheckCx<'_>) {
        check_name(&p.name, cx);
        check_aws(cx);
        if p.public && p.secret {
            cx.problem_at(
                "public",
                Problem::error(
                    Code::Invalid,
                    "a value cannot be both `public: true` and `secret: true`",
                )
                .help(
                    "keep `secret: true` for a credential, `public: true` for an id shown in clear",
                ),
            );
        }
    }

    fn describe(p: &GetParams) -> String {
        let public = if p.public { " (a public value)" } else { "" };
        if p.decrypt {
            format!("read SSM parameter {}{public}", p.name)
        } else {
            format!("read SSM parameter {} without decrypting{public}", p.name)
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
        let secret = p.secret
            || !p.public
                && !matches!(
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

    fn by_hand(p: &GetParams, cx: &super::hand::HandCx<'_>) -> Option<String> {
        let decrypt = if p.decrypt { " --with-decryption" } else { "" };
        if p.public {
            return Some(format!(
                "Read it (not a secret) and note it (`<steps.{}.value>` below):\n\n```sh\n\
                 aws ssm get-parameter {} \\\n    --name {}{decrypt} \\\n    \
                 --query Parameter.Value --output text\n```",
                cx.step_id,
                cx.aws_options(),
                super::hand::sh_word(&p.name),
            ));
        }
        let file = cx.secret_file("value");
        Some(format!(
            "Read it into the file `{file}` (`{}` below), readable only by you:\n\n```sh\n\
             (umask 077 && aws ssm get-parameter {} \\\n    --name {}{decrypt} \\\n    \
             --query Parameter.Value --output text | tr -d '\\n' > {file})\n```",
            cx.secret_placeholder("value"),
            cx.aws_options(),
            super::hand::sh_word(&p.name),
        ))
    }
}

impl Kind for Put {
    const NAME: &'static str = "ssm.put";
    const SUMMARY: &'static str = "Write an SSM parameter, a SecureString by default (outputs \
         `version`, `skipped`).";
    type Params = PutParams;

    const USES_AWS: bool = true;
    const WRITES_NAMED_BY: Option<&'static str> = Some("name");

    fn example() -> &'static str {
        "{ name: /app/db/password, value: x }"
    }

    fn preflight(p: Option<PutParams>, cx: &NeedCx<'_>, needs: &mut Needs) {
        needs.add(Box::new(Credentials));
        if let Some(p) = p
            && needs.known("ssm write", cx.step_id, &p.name)
        {
            let policy = p.policy();
            needs.add(Box::new(Write(p.name, policy)));
        }
    }

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
                        Code::SsmIfExists,
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
                    Code::SsmKeyId,
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
                    Code::SsmSecretUnencrypted,
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

    fn by_hand(p: &PutParams, cx: &super::hand::HandCx<'_>) -> Option<String> {
        use super::hand::{sh_quote, sh_word};
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
                Code::SsmName,
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
                Code::SsmName,
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
                Code::NoAws,
                format!("environment `{env}` has no `aws:` settings"),
            )
            .help(format!(
                "add `aws: {{ region: us-east-1 }}` under `environments.{env}` in environments.yaml"
            )),
        );
    }
}

/// `runbook preflight`: the environment's AWS credentials resolve.
struct Credentials;

/// What [`Credentials`] marks as failed for the checks after it.
const NO_CREDENTIALS: &str = "aws credentials";
const SKIPPED: &str = "skipped: the AWS credentials check failed";

#[async_trait::async_trait]
impl Need for Credentials {
    fn stage(&self) -> Stage {
        Stage::Credentials
    }
    fn key(&self) -> String {
        String::new()
    }
    async fn check(&self, cx: &ProbeCx<'_>) -> Check {
        let c = Check::new("aws", format!("credentials of `{}`", cx.run.env.name));
        let r = crate::aws::check_credentials(&cx.run).await;
        if r.is_err() {
            cx.failed(NO_CREDENTIALS);
        }
        c.outcome(r)
    }
}

/// `runbook preflight`: a parameter a step reads is readable (its value is kept, never shown,
/// for a later login whose password it is).
struct Read(GetParams);

#[async_trait::async_trait]
impl Need for Read {
    fn stage(&self) -> Stage {
        Stage::Read
    }
    fn key(&self) -> String {
        self.0.name.clone()
    }
    async fn check(&self, cx: &ProbeCx<'_>) -> Check {
        let name = &self.0.name;
        let p = GetParams {
            name: name.clone(),
            decrypt: self.0.decrypt,
            public: self.0.public,
            secret: self.0.secret,
        };
        let c = Check::new("ssm read", name.clone());
        if cx.has_failed(NO_CREDENTIALS) {
            return c.with(Status::Skip, SKIPPED);
        }
        let r = <Get as Kind>::run(p, &cx.run).await;
        c.outcome(r.map(|outputs| {
            let get = |n: &str| outputs.iter().find(|o| o.name == n).map(|o| &o.value);
            if let Some(v) = get("value").and_then(|v| v.as_str()) {
                cx.remember(name, v);
            }
            format!(
                "readable ({}, version {})",
                get("type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("unknown type"),
                get("version").map(|v| v.to_string()).unwrap_or_default()
            )
        }))
    }
}

/// `runbook preflight`: what a write will meet (the parameter's metadata, never its value).
struct Write(String, IfExists);

#[async_trait::async_trait]
impl Need for Write {
    fn stage(&self) -> Stage {
        Stage::Write
    }
    fn key(&self) -> String {
        self.0.clone()
    }
    async fn check(&self, cx: &ProbeCx<'_>) -> Check {
        let (name, policy) = (&self.0, self.1);
        let c = Check::new("ssm write", name.clone());
        if cx.has_failed(NO_CREDENTIALS) {
            return c.with(Status::Skip, SKIPPED);
        }
        match crate::aws::describe(&cx.run, name).await {
            Ok(Some(version)) if policy == IfExists::Fail => c.with(
                Status::Fail,
                format!("exists (version {version}) and the step does not overwrite it"),
            ),
            Ok(Some(version)) if policy == IfExists::Skip => c.with(
                Status::Pass,
                format!("exists (version {version}); the run leaves it as it is"),
            ),
            Ok(Some(version)) => c.with(
                Status::Pass,
                format!("exists (version {version}); the run writes a new version"),
            ),
            Ok(None) => c.with(Status::Pass, "absent; the run creates it"),
            Err(e) => c.outcome(Err(e)),
        }
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
}
