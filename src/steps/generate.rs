//! `generate`: a new random secret from the operating system's randomness.

use base64::Engine;
use schemars::JsonSchema;

use crate::model::patterns::given;
use serde::Deserialize;

use super::kind::{CheckCx, Effect, Kind, Output, OutputSpec, Outputs, RunCx, StepError};
use crate::diag::{Code, Problem};

pub struct Generate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Lowercase hex, two characters per byte (`openssl rand -hex N`).
    Hex,
    /// Standard base64 with padding.
    Base64,
    /// URL-safe base64 without padding.
    Base64url,
    /// Letters and digits; `length` characters.
    Alphanumeric,
    /// A Fernet key: 32 random bytes, URL-safe base64 with padding (44 characters).
    Fernet,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// Which formats take `bytes` and which `length` (a Fernet key takes neither), as `check` says.
#[schemars(extend("allOf" = [
    { "if": { "properties": { "format": { "const": "fernet" } } },
      "then": { "not": { "anyOf": [given("bytes"), given("length")] } } },
    { "if": { "properties": { "format": { "const": "alphanumeric" } } },
      "then": { "not": given("bytes") } },
    { "if": { "properties": { "format": { "enum": ["hex", "base64", "base64url"] } } },
      "then": { "not": given("length") } }
]))]
pub struct Params {
    pub format: Format,
    /// Random bytes for hex/base64/base64url (default 32).
    #[serde(default)]
    #[schemars(range(min = MIN, max = MAX))]
    pub bytes: Option<u32>,
    /// Characters for alphanumeric (default 32).
    #[serde(default)]
    #[schemars(range(min = MIN, max = MAX))]
    pub length: Option<u32>,
}

const MIN: u32 = 16;
const MAX: u32 = 4096;

impl Kind for Generate {
    const NAME: &'static str = "generate";
    const SUMMARY: &'static str = "Generate a new random secret (output `value`, a secret).";
    type Params = Params;

    /// A secret made here needs nothing of an environment.
    fn needs_environment(_params: &Params) -> bool {
        false
    }

    fn example() -> &'static str {
        "{ format: hex }"
    }

    fn outputs(_: &Params, _: &[crate::model::Environment]) -> Vec<OutputSpec> {
        vec![OutputSpec::secret("value")]
    }

    fn check(p: &Params, cx: &mut CheckCx<'_>) {
        match p.format {
            Format::Fernet if p.bytes.is_some() || p.length.is_some() => cx.problem_at(
                "format",
                Problem::error(
                    Code::GenerateSize,
                    "a Fernet key is always 32 bytes; remove `bytes`/`length`",
                ),
            ),
            Format::Alphanumeric if p.bytes.is_some() => cx.problem_at(
                "bytes",
                Problem::error(
                    Code::GenerateSize,
                    "alphanumeric takes `length` (characters), not `bytes`",
                )
                .help("write `length: 32`"),
            ),
            Format::Hex | Format::Base64 | Format::Base64url if p.length.is_some() => cx
                .problem_at(
                    "length",
                    Problem::error(
                        Code::GenerateSize,
                        "this format takes `bytes`, not `length`",
                    )
                    .help("write `bytes: 24`"),
                ),
            _ => {}
        }
        let n = p.bytes.or(p.length).unwrap_or(32);
        if !(MIN..=MAX).contains(&n) {
            let field = if p.bytes.is_some() { "bytes" } else { "length" };
            cx.problem_at(
                field,
                Problem::error(
                    Code::GenerateSize,
                    format!("{n} is out of range: a secret needs {MIN} to {MAX}"),
                ),
            );
        }
    }

    fn describe(p: &Params) -> String {
        match p.format {
            Format::Fernet => "generate a Fernet key".into(),
            Format::Alphanumeric => format!(
                "generate {} random letters and digits",
                p.length.unwrap_or(32)
            ),
            f => format!(
                "generate {} random bytes as {}",
                p.bytes.unwrap_or(32),
                format!("{f:?}").to_lowercase()
            ),
        }
    }

    fn effect(_: &Params) -> Effect {
        Effect::Local
    }

    async fn run(p: Params, cx: &RunCx<'_>) -> Result<Outputs, StepError> {
        let value = generate(&p)?;
        (cx.add_secret)(&value)?;
        Ok(vec![Output {
            name: "value".into(),
            value: value.into(),
            secret: true,
        }])
    }

    fn by_hand(p: &Params, cx: &super::hand::HandCx<'_>) -> Option<String> {
        let n = p.bytes.or(p.length).unwrap_or(32);
        // Each writes the value without a trailing newline, as the tool's output has none.
        let make = match p.format {
            Format::Hex => format!("openssl rand -hex {n} | tr -d '\\n'"),
            Format::Base64 => format!("openssl rand -base64 {n} | tr -d '\\n'"),
            Format::Base64url => format!(
                "python3 -c 'import base64, secrets; print(base64.urlsafe_b64encode(secrets.token_bytes({n})).decode().rstrip(\"=\"), end=\"\")'"
            ),
            Format::Fernet => "python3 -c 'import base64, secrets; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(), end=\"\")'".to_string(),
            Format::Alphanumeric => format!(
                "python3 -c 'import secrets, string; a = string.ascii_letters + string.digits; print(\"\".join(secrets.choice(a) for _ in range({n})), end=\"\")'"
            ),
        };
        let file = cx.secret_file("value");
        Some(format!(
            "Generate it into the file `{file}` (`{}` below), readable only by you:\n\n\
             ```sh\n(umask 077 && {make} > {file})\n```",
            cx.secret_placeholder("value")
        ))
    }
}

pub fn random_bytes(n: usize) -> Result<Vec<u8>, StepError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)
        .map_err(|e| StepError::new(format!("the operating system's randomness failed: {e}")))?;
    Ok(buf)
}

fn generate(p: &Params) -> Result<String, StepError> {
    let n = p.bytes.or(p.length).unwrap_or(32).clamp(1, MAX) as usize;
    Ok(match p.format {
        Format::Hex => random_bytes(n)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        Format::Base64 => base64::engine::general_purpose::STANDARD.encode(random_bytes(n)?),
        Format::Base64url => {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(n)?)
        }
        Format::Fernet => base64::engine::general_purpose::URL_SAFE.encode(random_bytes(32)?),
        Format::Alphanumeric => {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            let mut out = String::with_capacity(n);
            // Rejection sampling: 62 does not divide 256, so bytes >= 248 would bias the result.
            while out.len() < n {
                for b in random_bytes(n)? {
                    if b < 248 && out.len() < n {
                        out.push(ALPHABET[(b % 62) as usize] as char);
                    }
                }
            }
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(format: Format, bytes: Option<u32>, length: Option<u32>) -> String {
        generate(&Params {
            format,
            bytes,
            length,
        })
        .unwrap()
    }

    #[test]
    fn formats_have_the_expected_shape() {
        let h = make(Format::Hex, Some(24), None);
        assert_eq!(h.len(), 48);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        let f = make(Format::Fernet, None, None);
        assert_eq!(f.len(), 44);
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE
                .decode(&f)
                .unwrap()
                .len(),
            32
        );
        let a = make(Format::Alphanumeric, None, Some(40));
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        let u = make(Format::Base64url, Some(30), None);
        assert!(!u.contains('=') && !u.contains('+') && !u.contains('/'));
        assert_ne!(make(Format::Hex, None, None), make(Format::Hex, None, None));
    }
}
