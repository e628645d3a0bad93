//! `aws_sigv4:` of `http.request`: a request signed with an AWS access key pair (Signature
//! Version 4, the `aws-sigv4` crate the AWS SDK signs with), so a runbook can prove that a key
//! pair works against its real consumer (S3, Cloudflare R2, any S3-compatible store) and that
//! a revoked one is refused.
//!
//! The secret key never leaves the process: only the signature made with it is sent, in the
//! `Authorization` header, which no output shows. The key id goes in that header in the clear,
//! as AWS wants; read from a secret, it is masked like any secret wherever else it shows.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::steps::kind::StepError;

/// Sign the request with an AWS access key pair (SigV4).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sigv4 {
    /// The access key id, e.g. `"{{ steps.create_token.key_id }}"`.
    pub access_key_id: String,
    /// The secret access key, e.g. `"{{ steps.create_token.secret_access_key }}"`. Never
    /// sent: only the signature made with it.
    pub secret_access_key: String,
    /// The signing region (default `auto`, what Cloudflare R2 expects; `us-east-1` for
    /// most S3-compatible stores).
    #[serde(default = "default_region")]
    pub region: String,
    /// The signing service name (default `s3`).
    #[serde(default = "default_service")]
    pub service: String,
}

fn default_region() -> String {
    "auto".into()
}

fn default_service() -> String {
    "s3".into()
}

impl Sigv4 {
    /// The headers that sign a request (`Authorization`, `X-Amz-Date`, and for S3
    /// `X-Amz-Content-Sha256`), for the method, URL (as written: its host is the one signed),
    /// headers and body that will be sent.
    pub fn headers(
        &self,
        method: &str,
        url: &reqwest::Url,
        headers: &IndexMap<String, String>,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, StepError> {
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(StepError::new(
                "`aws_sigv4` has an empty access key id or secret access key; nothing was sent",
            ));
        }
        let creds = aws_credential_types::Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            None,
            None,
            "runbook",
        );
        let identity = creds.into();
        let mut settings = SigningSettings::default();
        if self.service == "s3" {
            // S3's own rules: the payload's hash in a header, the path as sent.
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| StepError::new(format!("cannot sign the request: {e}")))?
            .into();
        let request = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        // The errors name the part of the request, never a key.
        .map_err(|e| StepError::new(format!("cannot sign the request: {e}")))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| StepError::new(format!("cannot sign the request: {e}")))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// The error code of an S3-style XML error body (`<Code>SignatureDoesNotMatch</Code>`), when
/// it is a plain word: what tells a mistyped secret from a revoked key, and safe to show
/// (the body itself may repeat the key id).
pub fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    let code = &body[start..start + len];
    (!code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigv4(region: &str) -> Sigv4 {
        Sigv4 {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: region.into(),
            service: "s3".into(),
        }
    }

    /// The signature is the one AWS computes: checked against AWS's own procedure written
    /// out with this crate's HMAC (the date is taken from the signed headers).
    #[test]
    fn an_s3_request_is_signed_as_aws_documents() {
        let url = reqwest::Url::parse("http://127.0.0.1:5001/bucket?list-type=2").unwrap();
        let h = sigv4("auto")
            .headers("GET", &url, &IndexMap::new(), b"")
            .unwrap();
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {n} in {h:?}"))
        };
        let date = get("x-amz-date");
        let empty = hex(&sha256(b""));
        assert_eq!(get("x-amz-content-sha256"), empty);
        let canonical = format!(
            "GET\n/bucket\nlist-type=2\nhost:127.0.0.1:5001\nx-amz-content-sha256:{empty}\nx-amz-date:{date}\n\nhost;x-amz-content-sha256;x-amz-date\n{empty}"
        );
        let day = &date[..8];
        let scope = format!("{day}/auto/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex(&sha256(canonical.as_bytes()))
        );
        let mac = crate::state::hmac_sha256;
        let key = mac(
            &mac(
                &mac(
                    &mac(
                        b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                        day.as_bytes(),
                    ),
                    b"auto",
                ),
                b"s3",
            ),
            b"aws4_request",
        );
        let signature = hex(&mac(&key, to_sign.as_bytes()));
        assert_eq!(
            get("authorization"),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
            )
        );
        // Another secret, another signature; the secret itself is in no header.
        let mut other = sigv4("auto");
        other.secret_access_key.push('x');
        let h2 = other.headers("GET", &url, &IndexMap::new(), b"").unwrap();
        assert!(h.iter().chain(&h2).all(|(_, v)| !v.contains("EXAMPLEKEY")));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sha256(b: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(b).into()
    }

    #[test]
    fn empty_keys_are_refused() {
        let url = reqwest::Url::parse("https://x.example/").unwrap();
        let mut s = sigv4("auto");
        s.secret_access_key.clear();
        let e = s.headers("GET", &url, &IndexMap::new(), b"").unwrap_err();
        assert!(e.message.contains("nothing was sent"), "{}", e.message);
    }

    #[test]
    fn only_a_plain_error_code_is_shown() {
        assert_eq!(
            error_code(
                "<Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>k</AWSAccessKeyId></Error>"
            ),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(error_code("<Code>a b</Code>"), None);
        assert_eq!(error_code("<Code></Code>"), None);
        assert_eq!(error_code("nothing"), None);
    }
}
