//! The redactor: every secret value known to a run, and the masking of any text that leaves it.
//!
//! Every event passes through one [`Redactor`] on its way to every sink (terminal, plain log,
//! JSON, journal), so a step cannot leak a secret by forgetting to mask it. Besides the raw
//! value, the common encodings a secret travels in (base64, URL-encoding) are masked too.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use base64::Engine;

use crate::steps::MASK;

/// Secrets shorter than this are not masked: masking `1` or `ab` would garble every line while
/// protecting nothing. The checker refuses secrets this short where it can see them.
pub const MIN_SECRET_LEN: usize = 4;

#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<RwLock<Needles>>,
}

/// The strings to mask, indexed by their first four bytes: masking a text costs one lookup per
/// byte of the text, however many secrets a run holds (a run of 1,000 generated values would
/// otherwise search every line for 4,000 strings).
#[derive(Default)]
struct Needles {
    all: HashSet<String>,
    /// By first four bytes; longest first, so a secret that contains another is masked whole.
    by_prefix: HashMap<[u8; 4], Vec<String>>,
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Add a secret value (and its common encodings) to mask from now on.
    pub fn add(&self, secret: &str) {
        let secret = secret.trim_end_matches(['\n', '\r']);
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        let mut forms = vec![secret.to_string()];
        let b = secret.as_bytes();
        for e in [
            base64::engine::general_purpose::STANDARD.encode(b),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(b),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
            url_encode(secret),
        ] {
            if e.len() >= MIN_SECRET_LEN && !forms.contains(&e) {
                forms.push(e);
            }
        }
        let mut needles = self.needles.write().unwrap_or_else(|e| e.into_inner());
        for f in forms {
            if needles.all.contains(&f) {
                continue;
            }
            let key: [u8; 4] = f.as_bytes()[..4]
                .try_into()
                .expect("at least MIN_SECRET_LEN bytes");
            let list = needles.by_prefix.entry(key).or_default();
            let at = list
                .iter()
                .position(|n| n.len() < f.len())
                .unwrap_or(list.len());
            list.insert(at, f.clone());
            needles.all.insert(f);
        }
    }

    /// Add every string found in a JSON value.
    pub fn add_json(&self, v: &serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.add(s),
            serde_json::Value::Array(a) => a.iter().for_each(|v| self.add_json(v)),
            serde_json::Value::Object(o) => o.values().for_each(|v| self.add_json(v)),
            other => self.add(&other.to_string()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles
            .read()
            .map(|n| n.all.is_empty())
            .unwrap_or(true)
    }

    /// The text with every known secret replaced by a mask.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let needles = self.needles.read().unwrap_or_else(|e| e.into_inner());
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let (mut copied, mut i) = (0, 0);
        while i + MIN_SECRET_LEN <= bytes.len() {
            let found = needles
                .by_prefix
                .get(&bytes[i..i + 4])
                .and_then(|list| list.iter().find(|n| bytes[i..].starts_with(n.as_bytes())));
            match found {
                // A match starts with a whole character, so `i` is a char boundary.
                Some(n) => {
                    let o = out.get_or_insert_with(String::new);
                    o.push_str(&text[copied..i]);
                    o.push_str(MASK);
                    i += n.len();
                    copied = i;
                }
                None => i += 1,
            }
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.push_str(&text[copied..]);
                Cow::Owned(o)
            }
        }
    }

    pub fn redact_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }
}

/// Percent-encoding of everything but unreserved characters (RFC 3986).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_raw_and_encoded_forms() {
        let r = Redactor::new();
        r.add("s3cr/t+value");
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr/t+value");
        let text = format!("a s3cr/t+value b {b64} c s3cr%2Ft%2Bvalue");
        let out = r.redact(&text);
        assert!(!out.contains("s3cr"), "{out}");
        assert_eq!(out.matches(MASK).count(), 3);
    }

    #[test]
    fn the_longest_secret_wins_and_text_around_stays_intact() {
        let r = Redactor::new();
        r.add("abcd");
        r.add("abcdefgh");
        r.add("ünïcödé");
        assert_eq!(
            r.redact("x abcdefgh y abcd z"),
            format!("x {MASK} y {MASK} z")
        );
        assert_eq!(r.redact("é ünïcödé é"), format!("é {MASK} é"));
        for i in 0..2000 {
            r.add(&format!("secret-{i:05}"));
        }
        assert_eq!(r.redact("a secret-01999 b"), format!("a {MASK} b"));
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn short_values_are_not_masked() {
        let r = Redactor::new();
        r.add("ab");
        assert_eq!(r.redact("abc"), "abc");
    }
}
