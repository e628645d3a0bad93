//! The redactor: every secret value known to a run, and the masking of any text that leaves it.
//!
//! Every event passes through one [`Redactor`] on its way to every sink (terminal, plain log,
//! JSON, event log), so a step cannot leak a secret by forgetting to mask it. What is masked:
//!
//! - the secret and the encodings it commonly travels in: base64 (standard at every byte
//!   alignment, URL-safe), hex, URL-encoding, JSON string escaping;
//! - in any letter case (an upper-cased hex key *is* the key);
//! - across line breaks (`base64` at 76 columns, `fold`, a PEM key printed line by line);
//! - any run of at least [`WINDOW`] characters of one of those forms (a long prefix, a cut).
//!
//! What cannot be promised is in ARCHITECTURE.md: a program that re-encodes a secret its own
//! way (encrypts it, hashes it, spaces it out) produces text no redactor can recognise.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::{Arc, RwLock};

use base64::Engine;

/// What a secret is replaced with, wherever it would appear.
pub const MASK: &str = "••••••";

/// A secret shorter than this cannot be masked without garbling every line (and a short one
/// is guessable anyway): it is refused, not registered.
pub const MIN_SECRET_LEN: usize = 8;

/// Any run of this many characters of a secret's form is masked, wherever it starts.
pub const WINDOW: usize = 16;

/// How much of a step's earlier output lines is kept to mask a secret split across lines.
const CARRY: usize = 4096;

/// A secret that cannot be masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooShort {
    pub chars: usize,
}

impl std::fmt::Display for TooShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.chars == 0 {
            write!(
                f,
                "a secret value is empty; a secret needs at least {MIN_SECRET_LEN} characters to be masked"
            )
        } else {
            write!(
                f,
                "a secret value is {} character{} long; a secret needs at least {MIN_SECRET_LEN} to be masked",
                self.chars,
                if self.chars == 1 { "" } else { "s" }
            )
        }
    }
}

/// Whether a value is long enough to be a secret.
pub fn check_len(secret: &str) -> Result<(), TooShort> {
    let chars = secret.trim_end_matches(['\n', '\r']).chars().count();
    if chars < MIN_SECRET_LEN {
        Err(TooShort { chars })
    } else {
        Ok(())
    }
}

#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<RwLock<Needles>>,
}

/// The forms to mask and an index of every place a match can start. Every form is stored
/// lower-cased and without line breaks; text is compared the same way. A match can start at
/// the beginning of a form (and must then cover the whole form, or [`WINDOW`] characters of
/// it), or at any character of it from which [`WINDOW`] characters remain. The index is by the
/// first four bytes (as a little-endian `u32`): masking a text costs one lookup per byte of
/// the text however many secrets a run holds. A bitmap of the first two bytes comes first:
/// most positions of a text start no secret, and one bit tells so without hashing.
#[derive(Default)]
struct Needles {
    forms: Vec<Box<[u8]>>,
    seen: HashSet<Box<[u8]>>,
    /// Where a match may start: (form, byte offset in it).
    by_prefix: HashMap<u32, Vec<(u32, u32)>, BuildHasherDefault<PrefixHasher>>,
    /// Bit `b0 | b1 << 8` is set when some start has the bytes `b0 b1`.
    first_two: FirstTwo,
    /// The same for a 16-bit hash of the first four bytes: a second cheap refusal before the
    /// index is asked (digits and letters make many two-byte prefixes common).
    first_four: FirstTwo,
}

/// The 16-bit hash of a four-byte key, as the two bytes [`FirstTwo`] takes.
#[inline]
fn four(key: u32) -> (u8, u8) {
    let h = key.wrapping_mul(0x9e37_79b1) >> 16;
    (h as u8, (h >> 8) as u8)
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

fn is_break(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// The first `n` bytes of `t` from `i` that are not line breaks, lower-cased.
#[inline]
fn folded<const N: usize>(t: &[u8], mut i: usize) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut got = 0;
    while got < N {
        let b = *t.get(i)?;
        i += 1;
        if is_break(b) {
            continue;
        }
        out[got] = b.to_ascii_lowercase();
        got += 1;
    }
    Some(out)
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Add a secret value (and its encodings) to mask from now on. A value too short to be
    /// masked is refused: the caller must not let it reach any output (see [`check_len`]).
    pub fn try_add(&self, secret: &str) -> Result<(), TooShort> {
        let secret = secret.trim_end_matches(['\n', '\r']);
        check_len(secret)?;
        let mut needles = self.needles.write().unwrap_or_else(|e| e.into_inner());
        for f in forms(secret) {
            needles.insert(f);
        }
        Ok(())
    }

    /// Add a secret value that is already known to be long enough, or an incidental one (a
    /// string inside a secret JSON output): a value too short to mask is left out.
    pub fn add(&self, secret: &str) {
        let _ = self.try_add(secret);
    }

    /// Add every string found in a JSON value, and the value's JSON text.
    pub fn add_json(&self, v: &serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.add(s),
            serde_json::Value::Array(a) => a.iter().for_each(|v| self.add_json(v)),
            serde_json::Value::Object(o) => o.values().for_each(|v| self.add_json(v)),
            other => self.add(&other.to_string()),
        }
    }

    /// Check that a secret JSON value can be masked: a string must be long enough.
    pub fn try_add_json(&self, v: &serde_json::Value) -> Result<(), TooShort> {
        match v {
            serde_json::Value::String(s) => self.try_add(s),
            other => {
                self.add_json(other);
                Ok(())
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles
            .read()
            .map(|n| n.forms.is_empty())
            .unwrap_or(true)
    }

    /// The byte ranges of `text` that hold a secret, in order, not overlapping.
    pub fn spans(&self, text: &str) -> Vec<Range<usize>> {
        let needles = self.needles.read().unwrap_or_else(|e| e.into_inner());
        let Some(first_two) = needles.first_two.0.as_deref() else {
            // No secret yet.
            return Vec::new();
        };
        let t = text.as_bytes();
        let mut spans = Vec::new();
        let mut i = 0;
        while i + 4 <= t.len() {
            let b0 = t[i];
            // A match starts at a character that is not a line break; `i` is a char boundary
            // because every start in the index is one and a UTF-8 lead byte never follows
            // inside a character.
            if is_break(b0) || !text.is_char_boundary(i) {
                i += 1;
                continue;
            }
            let b1 = match t[i + 1] {
                b if is_break(b) => match folded::<1>(t, i + 1) {
                    Some([b]) => b,
                    None => break,
                },
                b => b.to_ascii_lowercase(),
            };
            if !FirstTwo::contains(first_two, b0.to_ascii_lowercase(), b1) {
                i += 1;
                continue;
            }
            let Some(key) = folded::<4>(t, i) else {
                break;
            };
            let key = u32::from_le_bytes(key);
            let (h0, h1) = four(key);
            if !FirstTwo::contains(needles.first_four.0.as_deref().unwrap_or(first_two), h0, h1) {
                i += 1;
                continue;
            }
            let end = needles
                .by_prefix
                .get(&key)
                .and_then(|starts| needles.longest(t, i, starts))
                .map(|mut end| {
                    // A form compared byte by byte may stop inside a character.
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    end
                })
                .filter(|end| *end > i);
            match end {
                Some(end) => {
                    spans.push(i..end);
                    i = end;
                }
                None => i += 1,
            }
        }
        spans
    }

    /// The text with every known secret replaced by a mask.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(apply(text, &spans, 0))
    }

    /// A line of a stream (a step's output, line by line), masked knowing the lines before it
    /// (`carry`, updated here), so that a secret split over several lines is masked in each.
    pub fn redact_line(&self, carry: &mut String, line: &str) -> String {
        let masked = if carry.is_empty() {
            self.redact(line).into_owned()
        } else {
            let joined = format!("{carry}\n{line}");
            let from = carry.len() + 1;
            let spans: Vec<Range<usize>> = self
                .spans(&joined)
                .into_iter()
                .filter(|s| s.end > from)
                .map(|s| s.start.max(from)..s.end)
                .collect();
            apply(&joined, &spans, from)
        };
        if !carry.is_empty() {
            carry.push('\n');
        }
        carry.push_str(line);
        if carry.len() > CARRY {
            let mut cut = carry.len() - CARRY;
            while !carry.is_char_boundary(cut) {
                cut += 1;
            }
            carry.drain(..cut);
        }
        masked
    }

    pub fn redact_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.redact_in_place(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(o) => {
                // Keys too: outputs keyed by host or by a value a command printed.
                if o.keys().any(|k| !self.spans(k).is_empty()) {
                    let old = std::mem::take(o);
                    for (k, mut v) in old {
                        self.redact_json(&mut v);
                        o.insert(self.redact(&k).into_owned(), v);
                    }
                } else {
                    o.values_mut().for_each(|v| self.redact_json(v));
                }
            }
            _ => {}
        }
    }

    /// Mask a string where it is.
    pub fn redact_in_place(&self, s: &mut String) {
        if let Cow::Owned(r) = self.redact(s) {
            *s = r;
        }
    }
}

/// `text[from..]` with every span replaced by a mask; line breaks inside a span are kept, so
/// a masked multi-line value keeps its shape.
fn apply(text: &str, spans: &[Range<usize>], from: usize) -> String {
    let mut out = String::with_capacity(text.len() - from);
    let mut copied = from;
    for s in spans {
        out.push_str(&text[copied..s.start]);
        let mut in_mask = false;
        for b in text[s.clone()].bytes() {
            if is_break(b) {
                out.push(b as char);
                in_mask = false;
            } else if !in_mask {
                out.push_str(MASK);
                in_mask = true;
            }
        }
        copied = s.end;
    }
    out.push_str(&text[copied..]);
    out
}

impl Needles {
    fn insert(&mut self, form: Vec<u8>) {
        if form.len() < MIN_SECRET_LEN || self.seen.contains(form.as_slice()) {
            return;
        }
        let f = u32::try_from(self.forms.len()).unwrap_or(u32::MAX);
        let text = String::from_utf8_lossy(&form).into_owned();
        for (k, _) in text.char_indices() {
            if k > 0 && k + WINDOW > form.len() {
                break;
            }
            let b = &form[k..];
            self.first_two.insert(b[0], b[1]);
            let key = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let (h0, h1) = four(key);
            self.first_four.insert(h0, h1);
            self.by_prefix
                .entry(key)
                .or_default()
                .push((f, u32::try_from(k).unwrap_or(u32::MAX)));
        }
        let form: Box<[u8]> = form.into();
        self.seen.insert(form.clone());
        self.forms.push(form);
    }

    /// The end of the longest match in `t` starting at `i`, from the given starts.
    fn longest(&self, t: &[u8], i: usize, starts: &[(u32, u32)]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for &(f, k) in starts {
            let form = &self.forms[f as usize];
            let k = k as usize;
            let (mut j, mut m, mut end) = (i, k, i);
            while m < form.len() && j < t.len() {
                let b = t[j];
                if is_break(b) && j > i {
                    j += 1;
                    continue;
                }
                if b.to_ascii_lowercase() != form[m] {
                    break;
                }
                j += 1;
                m += 1;
                end = j;
            }
            let whole = k == 0 && m == form.len();
            if (whole || m - k >= WINDOW) && best.is_none_or(|b| end > b) {
                best = Some(end);
            }
        }
        best
    }
}

/// A secret and the forms it travels in, lower-cased and without line breaks, each once.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let b = secret.as_bytes();
    let fold = |s: &str| -> Vec<u8> {
        s.bytes()
            .filter(|b| !is_break(*b))
            .map(|b| b.to_ascii_lowercase())
            .collect()
    };
    let mut out: Vec<Vec<u8>> = vec![fold(secret)];
    let mut push = |f: Vec<u8>| {
        if !out.contains(&f) {
            out.push(f);
        }
    };
    // Base64 at each alignment: the secret may follow 0, 1 or 2 other bytes in what was
    // encoded (`PASSWORD=…` piped to `base64`). Only the characters that depend on the
    // secret's bytes alone are kept.
    push(fold(&STANDARD_NO_PAD.encode(b)));
    push(fold(&URL_SAFE_NO_PAD.encode(b)));
    for shift in 1..3usize {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(b);
        let full_groups = padded.len() / 3;
        if full_groups > 1 {
            let e = STANDARD_NO_PAD.encode(&padded[..full_groups * 3]);
            push(fold(&e[4..]));
            let e = URL_SAFE_NO_PAD.encode(&padded[..full_groups * 3]);
            push(fold(&e[4..]));
        }
    }
    // Hex (either case matches: the text is compared lower-cased).
    push(
        b.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    );
    push(fold(&url_encode(secret)));
    if let Ok(json) = serde_json::to_string(secret) {
        push(fold(&json[1..json.len() - 1]));
    }
    out
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

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn hex(s: &[u8]) -> String {
        s.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn masks_raw_and_encoded_forms() {
        let r = Redactor::new();
        r.add("s3cr/t+value");
        let text = format!(
            "a s3cr/t+value b {} c s3cr%2Ft%2Bvalue d s3cr%2ft%2bvalue e {} f {}",
            b64(b"s3cr/t+value"),
            hex(b"s3cr/t+value"),
            hex(b"s3cr/t+value").to_uppercase()
        );
        let out = r.redact(&text);
        assert!(!out.contains("s3cr"), "{out}");
        assert_eq!(out.matches(MASK).count(), 6, "{out}");
    }

    #[test]
    fn any_letter_case() {
        let r = Redactor::new();
        r.add("0a1b2c3d4e5f6a7b");
        assert_eq!(r.redact("k=0A1B2C3D4E5F6A7B."), format!("k={MASK}."));
        assert_eq!(r.redact("k=0a1B2c3D4e5F6a7B"), format!("k={MASK}"));
    }

    #[test]
    fn base64_at_every_alignment() {
        let secret = "correct-horse-battery-staple";
        let r = Redactor::new();
        r.add(secret);
        for prefix in ["", "P", "PW", "PW=", "PASSWORD="] {
            let enc = b64(format!("{prefix}{secret}\n").as_bytes());
            let out = r.redact(&enc);
            // At most the characters of one group on each side stay (they mix in other bytes).
            let left = out.replace(MASK, "");
            assert!(
                out.contains(MASK) && left.len() <= b64(prefix.as_bytes()).len() + 8,
                "{prefix:?}: {enc} -> {out}"
            );
        }
    }

    #[test]
    fn a_long_run_of_a_secret_is_masked_wherever_it_starts() {
        let secret = "Zq8xK2mW9pL4vN7rT1yB6cF3hJ5gD0sA";
        let r = Redactor::new();
        r.add(secret);
        // A prefix, a middle part and a suffix of 16 characters or more.
        for part in [&secret[..16], &secret[5..27], &secret[10..]] {
            let out = r.redact(&format!("x {part} y")).into_owned();
            assert_eq!(out, format!("x {MASK} y"), "{part}");
        }
        // Shorter runs are not masked (they would mask ordinary text too).
        assert_eq!(r.redact(&secret[3..15]), &secret[3..15]);
    }

    #[test]
    fn across_line_breaks() {
        let secret = "Zq8xK2mW9pL4vN7rT1yB6cF3hJ5gD0sA";
        let r = Redactor::new();
        r.add(secret);
        for width in [1, 3, 7, 10, 16, 20] {
            let folded: Vec<String> = secret
                .as_bytes()
                .chunks(width)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            for sep in ["\n", "\r\n"] {
                let text = format!("begin\n{}\nend", folded.join(sep));
                let out = r.redact(&text);
                assert_eq!(
                    out.replace(MASK, "").replace(['\r', '\n'], ""),
                    "beginend",
                    "{width}: {out}"
                );
            }
        }
        // Base64 wrapped at 76 columns, as `base64` prints it.
        let long = "k".repeat(40) + secret + &"q".repeat(40);
        r.add(&long);
        let enc = b64(long.as_bytes());
        let wrapped: Vec<&str> = enc
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let out = r.redact(&wrapped.join("\n")).into_owned();
        assert!(
            out.replace(MASK, "").trim().trim_matches('=').is_empty(),
            "{out}"
        );
    }

    #[test]
    fn a_secret_split_over_stream_lines_is_masked_in_each_line() {
        let secret = "Zq8xK2mW9pL4vN7rT1yB6cF3hJ5gD0sA";
        let r = Redactor::new();
        r.add(secret);
        // The first piece alone is too short to be known as a secret; every later piece is
        // masked knowing the lines before it.
        let mut carry = String::new();
        let lines: Vec<String> = secret
            .as_bytes()
            .chunks(10)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let out: Vec<String> = lines.iter().map(|l| r.redact_line(&mut carry, l)).collect();
        assert_eq!(out[0], lines[0]);
        for o in &out[1..] {
            assert_eq!(o, MASK, "{out:?}");
        }
        // A PEM-like multi-line secret printed line by line: every long line is masked alone.
        let pem = format!(
            "-----BEGIN KEY-----\n{}\n{}\n-----END KEY-----\n",
            "A1b2C3d4".repeat(8),
            "Z9y8X7w6".repeat(5)
        );
        r.add(&pem);
        let mut carry = String::new();
        for line in pem.lines().skip(1).take(2) {
            assert_eq!(r.redact_line(&mut carry, line), MASK, "{line}");
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        let r = Redactor::new();
        assert_eq!(r.try_add(""), Err(TooShort { chars: 0 }));
        assert_eq!(r.try_add("1234567"), Err(TooShort { chars: 7 }));
        assert_eq!(r.try_add("ünïcödé"), Err(TooShort { chars: 7 }));
        assert!(r.is_empty());
        assert!(r.try_add("12345678").is_ok());
        assert_eq!(r.redact("a 12345678 b"), format!("a {MASK} b"));
        assert!(TooShort { chars: 3 }.to_string().contains("at least 8"));
    }

    #[test]
    fn the_longest_secret_wins_and_text_around_stays_intact() {
        let r = Redactor::new();
        r.add("abcdefgh");
        r.add("abcdefghijkl");
        r.add("ünïcödé!");
        assert_eq!(
            r.redact("x abcdefghijkl y abcdefgh z"),
            format!("x {MASK} y {MASK} z")
        );
        assert_eq!(r.redact("é ünïcödé! é"), format!("é {MASK} é"));
        for i in 0..2000 {
            r.add(&format!("secret-{i:05}"));
        }
        assert_eq!(r.redact("a secret-01999 b"), format!("a {MASK} b"));
        assert_eq!(r.redact("nothing here"), "nothing here");
        // Multi-byte characters at the end, and a secret cut short by the end of the text.
        r.add("ключ-ключ-é");
        assert_eq!(r.redact("é ключ-ключ-é"), format!("é {MASK}"));
        assert_eq!(r.redact("é ключ-к"), "é ключ-к");
        assert_eq!(r.redact("x abcdefg"), "x abcdefg");
        assert_eq!(r.redact(""), "");
        assert_eq!(r.redact("abcdefghabcdefgh"), format!("{MASK}{MASK}"));
    }

    #[test]
    fn json_object_keys_are_masked_too() {
        let r = Redactor::new();
        r.add("hunter2hunter2");
        let mut v = serde_json::json!({"hunter2hunter2": ["x hunter2hunter2"], "ok": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({MASK: [format!("x {MASK}")], "ok": 1}));
    }

    /// The indexed masking against the obvious one: at each position, every form from every
    /// allowed start, compared ignoring case and line breaks, the longest accepted match.
    #[test]
    fn masking_matches_a_naive_search() {
        fn naive(forms: &[Vec<u8>], text: &str) -> String {
            let t = text.as_bytes();
            let mut spans = Vec::new();
            let mut i = 0;
            while i < t.len() {
                if is_break(t[i]) || !text.is_char_boundary(i) {
                    i += 1;
                    continue;
                }
                let mut best: Option<usize> = None;
                for f in forms {
                    let fs = std::str::from_utf8(f).unwrap();
                    for (k, _) in fs.char_indices() {
                        if k > 0 && k + WINDOW > f.len() {
                            break;
                        }
                        let (mut j, mut m, mut end) = (i, k, i);
                        while m < f.len() && j < t.len() {
                            if is_break(t[j]) && j > i {
                                j += 1;
                                continue;
                            }
                            if t[j].to_ascii_lowercase() != f[m] {
                                break;
                            }
                            j += 1;
                            m += 1;
                            end = j;
                        }
                        if (k == 0 && m == f.len() || m - k >= WINDOW)
                            && best.is_none_or(|b| end > b)
                        {
                            best = Some(end);
                        }
                    }
                }
                match best.map(|mut e| {
                    while !text.is_char_boundary(e) {
                        e -= 1;
                    }
                    e
                }) {
                    Some(e) if e > i => {
                        spans.push(i..e);
                        i = e;
                    }
                    _ => i += 1,
                }
            }
            apply(text, &spans, 0)
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let alphabet = ['a', 'B', 'c', 'é', '\n', 'A', 'b'];
        let mut word = |min: usize, max: usize| -> String {
            let len = min + next(max - min + 1);
            (0..len).map(|_| alphabet[next(alphabet.len())]).collect()
        };
        for _ in 0..200 {
            let r = Redactor::new();
            let mut all = Vec::new();
            for _ in 0..3 {
                let secret = word(MIN_SECRET_LEN, 24);
                if r.try_add(&secret).is_err() {
                    continue;
                }
                for f in forms(secret.trim_end_matches(['\n', '\r'])) {
                    if f.len() >= MIN_SECRET_LEN && !all.contains(&f) {
                        all.push(f);
                    }
                }
                for _ in 0..10 {
                    let text = word(0, 60);
                    assert_eq!(r.redact(&text), naive(&all, &text), "{text:?} with {all:?}");
                }
            }
        }
    }
}
