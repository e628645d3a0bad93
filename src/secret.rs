//! The redactor: every secret value known to a run, and the masking of any text that leaves it.
//!
//! Every event passes through one [`Redactor`] on its way to every sink (terminal, plain log,
//! JSON, journal), so a step cannot leak a secret by forgetting to mask it. Besides the raw
//! value, the common encodings a secret travels in (base64, URL-encoding) are masked too.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
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

/// The strings to mask, indexed by their first four bytes: masking a text costs at most one
/// lookup per byte of the text, however many secrets a run holds (a run of 1,000 generated
/// values would otherwise search every line for 4,000 strings). A bitmap of the first two
/// bytes of every string comes first: most positions of a text start no secret, and one bit
/// tells so without hashing.
#[derive(Default)]
struct Needles {
    all: HashSet<String>,
    /// By first four bytes (as a little-endian `u32`); longest first, so a secret that
    /// contains another is masked whole.
    by_prefix: HashMap<u32, Vec<String>, BuildHasherDefault<PrefixHasher>>,
    /// Bit `b0 | b1 << 8` is set when some string starts with the bytes `b0 b1`.
    first_two: FirstTwo,
}

/// A set of two-byte prefixes: 65,536 bits (8 KiB), allocated with the first secret.
#[derive(Default)]
struct FirstTwo(Option<Box<[u64; 1024]>>);

impl FirstTwo {
    fn insert(&mut self, b0: u8, b1: u8) {
        let bits = self.0.get_or_insert_with(|| Box::new([0; 1024]));
        let i = usize::from(b0) | (usize::from(b1) << 8);
        bits[i >> 6] |= 1 << (i & 63);
    }

    #[inline]
    fn contains(bits: &[u64; 1024], b0: u8, b1: u8) -> bool {
        let i = usize::from(b0) | (usize::from(b1) << 8);
        bits[i >> 6] & (1 << (i & 63)) != 0
    }
}

/// The hash of a four-byte prefix: one 64 × 64 → 128-bit multiplication, folded so that every
/// bit of the key reaches both the low bits (the bucket) and the high bits (the tag) of the
/// hash. The keys are the first bytes of the run's own secrets and their encodings, and the
/// hashes are never seen outside the process, so the default SipHash's protection against
/// flooding buys nothing here; it was most of the time masking took.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    #[inline]
    fn write_u32(&mut self, key: u32) {
        let m = u128::from(key).wrapping_mul(0xa076_1d64_78bd_642f);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys are hashed (one `write_u32`); this keeps it a hash for anything else.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0xa076_1d64_78bd_642f);
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

fn prefix(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
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
        let mut needles = self.needles.write().unwrap_or_else(|e| e.into_inner());
        for f in forms(secret) {
            if needles.all.contains(&f) {
                continue;
            }
            // At least MIN_SECRET_LEN characters, so at least four bytes.
            let b = f.as_bytes();
            needles.first_two.insert(b[0], b[1]);
            let list = needles.by_prefix.entry(prefix(b)).or_default();
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
        let Some(first_two) = needles.first_two.0.as_deref() else {
            // No secret yet.
            return Cow::Borrowed(text);
        };
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let (mut copied, mut i) = (0, 0);
        while i + MIN_SECRET_LEN <= bytes.len() {
            if !FirstTwo::contains(first_two, bytes[i], bytes[i + 1]) {
                i += 1;
                continue;
            }
            let found = needles
                .by_prefix
                .get(&prefix(&bytes[i..]))
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

/// A secret and the common encodings it travels in, each once.
fn forms(secret: &str) -> Vec<String> {
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
    forms
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
    fn adjacent_overlapping_and_trailing_secrets() {
        let r = Redactor::new();
        r.add("abcd");
        r.add("wxyz");
        r.add("defghi");
        // Side by side, and one at the very end of the text.
        assert_eq!(r.redact("abcdwxyz"), format!("{MASK}{MASK}"));
        assert_eq!(r.redact("x abcd"), format!("x {MASK}"));
        assert_eq!(r.redact("abcd"), MASK);
        assert_eq!(r.redact("x wxyzabcd"), format!("x {MASK}{MASK}"));
        // A secret cut short by the end of the text is not one.
        assert_eq!(r.redact("x abc"), "x abc");
        assert_eq!(r.redact("x wxy"), "x wxy");
        assert_eq!(r.redact("abc"), "abc");
        assert_eq!(r.redact(""), "");
        // Overlapping: the leftmost match is masked, scanning goes on after it.
        assert_eq!(r.redact("abcdefghi"), format!("{MASK}efghi"));
        assert_eq!(r.redact("xdefghiabcd"), format!("x{MASK}{MASK}"));
        // Same first two bytes as a secret, different after: left alone.
        assert_eq!(r.redact("abzz wxy0 defgh"), "abzz wxy0 defgh");
        // Multi-byte characters at the end.
        r.add("ключ-é");
        assert_eq!(r.redact("é ключ-é"), format!("é {MASK}"));
        assert_eq!(r.redact("é ключ-"), "é ключ-");
    }

    /// The indexed masking against the obvious one (at each position, the longest secret that
    /// starts there), on texts and secrets from a small alphabet so that they overlap a lot.
    #[test]
    fn masking_matches_a_naive_search() {
        fn naive(secrets: &[String], text: &str) -> String {
            let mut out = String::new();
            let mut i = 0;
            while i < text.len() {
                let found = secrets
                    .iter()
                    .filter(|s| text[i..].starts_with(s.as_str()))
                    .map(String::len)
                    .max();
                match found {
                    Some(n) => {
                        out.push_str(MASK);
                        i += n;
                    }
                    None => {
                        let c = text[i..].chars().next().expect("a char boundary");
                        out.push(c);
                        i += c.len_utf8();
                    }
                }
            }
            out
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let alphabet = ['a', 'b', 'c', 'é'];
        let mut word = |min: usize, max: usize| -> String {
            let len = min + next(max - min + 1);
            (0..len).map(|_| alphabet[next(alphabet.len())]).collect()
        };
        for _ in 0..100 {
            let r = Redactor::new();
            let mut all = Vec::new();
            for _ in 0..4 {
                let secret = word(MIN_SECRET_LEN, 8);
                r.add(&secret);
                all.extend(forms(&secret));
                for _ in 0..10 {
                    let text = word(0, 40);
                    assert_eq!(r.redact(&text), naive(&all, &text), "{text:?} with {all:?}");
                }
            }
        }
    }

    #[test]
    fn short_values_are_not_masked() {
        let r = Redactor::new();
        r.add("ab");
        assert_eq!(r.redact("abc"), "abc");
    }
}
