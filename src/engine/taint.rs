//! Secrecy that survives templates: a rendered value that read a secret is itself a secret.
//!
//! The redactor only knows the bytes it was given, so `{{ token | upper }}`, `{{ key[:12] }}`
//! or `{{ pw | reverse }}` would print a secret it cannot recognise. Every template of a step
//! whose context holds a secret is therefore rendered twice: with the real values and with a
//! *shadow* context where each secret is replaced by a value of the same shape that differs
//! in every character. Where the two renderings differ, the text came from a secret, whatever
//! filters, slices, loops or macros made it: that part is registered as a secret before the
//! rendered value can reach any output. Derived text too short to be masked fails the step.
//!
//! Text that depends on a secret but is equal in both renderings (a length, a comparison, a
//! branch) is not masked: it is not the secret, though it may tell something about it.

use minijinja::Value;

use crate::secret::Redactor;
use crate::template::{self, TemplateError};

/// A step's template context, and its shadow when the context holds a secret.
pub struct Contexts {
    pub real: Value,
    pub shadow: Option<Value>,
}

impl Contexts {
    pub fn undefined() -> Contexts {
        Contexts {
            real: Value::UNDEFINED,
            shadow: None,
        }
    }
}

/// A secret's shadow: the same length and character classes, every character different.
/// Letters, digits and ASCII punctuation go through a random derangement of their class,
/// drawn once per process, so no template can be written to give the same text for a secret
/// and its shadow (`sort` of the pair, a table that maps both to one symbol); anything else
/// goes to the next code point.
pub fn shadow_str(s: &str) -> String {
    let t = table();
    s.chars()
        .map(|c| match c {
            c if c.is_ascii_graphic() => char::from(t[c as usize]),
            c if c.is_ascii() => c,
            c => char::from_u32(c as u32 + 1)
                .or_else(|| char::from_u32(c as u32 - 1))
                .unwrap_or(c),
        })
        .collect()
}

/// For each printable ASCII byte, its shadow: a derangement within lower-case letters,
/// upper-case letters, digits and punctuation.
fn table() -> &'static [u8; 128] {
    static T: std::sync::OnceLock<[u8; 128]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0u8; 128];
        for (i, b) in t.iter_mut().enumerate() {
            *b = i as u8;
        }
        let punct: Vec<u8> = (0x21u8..0x7f).filter(u8::is_ascii_punctuation).collect();
        let classes: [Vec<u8>; 4] = [
            (b'a'..=b'z').collect(),
            (b'A'..=b'Z').collect(),
            (b'0'..=b'9').collect(),
            punct,
        ];
        for class in classes {
            // A random cyclic order of the class: each member goes to the next, so none
            // stays and applying it twice is not the identity (classes have 10+ members).
            let mut order = class.clone();
            for k in (1..order.len()).rev() {
                let mut r = [0u8; 4];
                let _ = getrandom::fill(&mut r);
                let j = (u32::from_le_bytes(r) as usize) % (k + 1);
                order.swap(k, j);
            }
            for (k, &c) in order.iter().enumerate() {
                t[c as usize] = order[(k + 1) % order.len()];
            }
        }
        t
    })
}

/// A string that is not a secret itself but holds one (a command's output that printed it):
/// the shadow of every part the redactor knows.
fn shadow_within(s: &str, redactor: &Redactor) -> Option<String> {
    let spans = redactor.spans(s);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for r in spans {
        out.push_str(&s[at..r.start]);
        out.push_str(&shadow_str(&s[r.clone()]));
        at = r.end;
    }
    out.push_str(&s[at..]);
    Some(out)
}

/// A context value's shadow: wholly when it is a secret, else where it holds known secrets.
pub fn shadow(v: &serde_json::Value, secret: bool, redactor: &Redactor) -> serde_json::Value {
    if secret {
        shadow_json(v)
    } else {
        shadow_json_within(v, redactor).unwrap_or_else(|| v.clone())
    }
}

/// A JSON value's shadow where it holds known secrets (see [`shadow_within`]).
fn shadow_json_within(v: &serde_json::Value, redactor: &Redactor) -> Option<serde_json::Value> {
    match v {
        serde_json::Value::String(s) => shadow_within(s, redactor).map(Into::into),
        serde_json::Value::Array(a) => {
            let parts: Vec<Option<serde_json::Value>> =
                a.iter().map(|v| shadow_json_within(v, redactor)).collect();
            parts.iter().any(Option::is_some).then(|| {
                parts
                    .into_iter()
                    .zip(a)
                    .map(|(s, v)| s.unwrap_or_else(|| v.clone()))
                    .collect()
            })
        }
        serde_json::Value::Object(o) => {
            let parts: Vec<(String, Option<serde_json::Value>)> = o
                .iter()
                .map(|(k, v)| (k.clone(), shadow_json_within(v, redactor)))
                .collect();
            parts.iter().any(|(_, p)| p.is_some()).then(|| {
                parts
                    .into_iter()
                    .map(|(k, p)| {
                        let v = p.unwrap_or_else(|| o[&k].clone());
                        (k, v)
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
        }
        _ => None,
    }
}

/// A secret JSON value's shadow: every string (and every scalar's text) shadowed.
fn shadow_json(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => shadow_str(s).into(),
        serde_json::Value::Array(a) => a.iter().map(shadow_json).collect(),
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| (k.clone(), shadow_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_json::Value::Number(n) => shadow_str(&n.to_string()).into(),
        other => other.clone(),
    }
}

/// Render a template; any part of the result that came from a secret is registered as one.
pub fn render(text: &str, cx: &Contexts, redactor: &Redactor) -> Result<String, TemplateError> {
    let real = template::render(text, &cx.real)?;
    let Some(shadow) = &cx.shadow else {
        return Ok(real);
    };
    if !template::is_template(text) {
        return Ok(real);
    }
    for part in derived(text, &cx.real, shadow, &real) {
        redactor.try_add(&part).map_err(|e| TemplateError {
            message: format!(
                "this template computes text from a secret that is too short to be masked ({e}); use the secret whole"
            ),
            range: None,
        })?;
    }
    Ok(real)
}

/// The parts of `real` (the template rendered with `ctx`) that came from a secret.
///
/// Both contexts are rendered with every expression's output marked; the pieces between marks
/// are compared one by one, so the text between two secrets (`Paste {{ a }} and {{ b }}`)
/// stays readable. Pieces too short to be masked alone (a loop printing one character at a
/// time) are masked as one, with what lies between them. When the two renderings do not have
/// the same shape (the secret changed the control flow) the whole differing stretch counts.
fn derived(text: &str, ctx: &Value, shadow: &Value, real: &str) -> Vec<String> {
    let whole = || match template::render(text, shadow) {
        Ok(other) => differing(real, &other)
            .map(str::to_string)
            .into_iter()
            .collect(),
        // A rendering that fails only with other values depends on them all the way.
        Err(_) => vec![real.to_string()],
    };
    let marks: &[char] = &[template::MARK_OPEN, template::MARK_CLOSE];
    let (Ok(a), Ok(b)) = (
        template::render_marked(text, ctx),
        template::render_marked(text, shadow),
    ) else {
        return whole();
    };
    let pa: Vec<&str> = a.split(marks).collect();
    let pb: Vec<&str> = b.split(marks).collect();
    if pa.len() != pb.len() || pa.concat() != real {
        return whole();
    }
    let mut parts = Vec::new();
    // The pieces from the first short derived one to the last, so far.
    let mut short: Option<(usize, usize)> = None;
    for (i, (x, y)) in pa.iter().zip(&pb).enumerate() {
        if x == y {
            continue;
        }
        if crate::secret::check_len(x).is_ok() {
            parts.push(x.to_string());
        } else {
            short = Some(short.map_or((i, i), |(s, _)| (s, i)));
        }
    }
    if let Some((s, e)) = short {
        parts.push(pa[s..=e].concat());
    }
    parts
}

/// The part of `a` that differs from `b`: from the first differing character to the last.
fn differing<'a>(a: &'a str, b: &str) -> Option<&'a str> {
    if a == b {
        return None;
    }
    let mut start = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !a.is_char_boundary(start) {
        start -= 1;
    }
    let max_suffix = a.len().min(b.len()) - start;
    let suffix = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    let mut end = a.len() - suffix;
    while !a.is_char_boundary(end) {
        end += 1;
    }
    // `a` is a prefix-and-suffix of `b` with something inserted in `b`: what `a` holds around
    // the insertion point is still computed from the secret; keep a whole character.
    if end <= start {
        end = a[start..]
            .chars()
            .next()
            .map_or(start, |c| start + c.len_utf8());
        if end == start {
            return Some(a);
        }
    }
    Some(&a[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::MASK;

    fn cx(secret: &str) -> Contexts {
        let real = serde_json::json!({"inputs": {"token": secret, "name": "web"}});
        let shadow = serde_json::json!({"inputs": {"token": shadow_str(secret), "name": "web"}});
        Contexts {
            real: template::value(real),
            shadow: Some(template::value(shadow)),
        }
    }

    #[test]
    fn shadows_differ_in_every_character() {
        for s in ["abcXYZ019", "!@#~", "ключ", "a b\tc"] {
            let sh = shadow_str(s);
            assert_eq!(sh.chars().count(), s.chars().count());
            for (a, b) in s.chars().zip(sh.chars()) {
                assert!(a != b || a.is_whitespace(), "{s} -> {sh}");
            }
            // Not an involution: a template cannot pair a secret with its shadow's shadow.
            let all: String = ('a'..='z').chain('0'..='9').collect();
            assert_ne!(shadow_str(&shadow_str(&all)), all);
        }
    }

    /// Every filter, slice and loop that reads a secret gives text that is masked.
    #[test]
    fn text_computed_from_a_secret_is_masked() {
        let secret = "f00dfeed2badc0de5eed1e55";
        for t in [
            "{{ inputs.token | upper }}",
            "{{ inputs.token[:10] }}",
            "{{ inputs.token | reverse }}",
            "{{ inputs.token | list | join(',') }}",
            "{{ inputs.token | tojson }}",
            "{{ inputs.token | replace('f', 'F') }}",
            "{{ inputs.token | title }}",
            "{% for c in inputs.token %}{{ c }}-{% endfor %}",
            "{% set x = inputs.token ~ 'zz' %}x={{ x | upper }}",
            "curl -H 'X-Key: {{ inputs.token | upper }}' https://{{ inputs.name }}/",
        ] {
            let r = Redactor::new();
            r.add(secret);
            let out = render(t, &cx(secret), &r).unwrap();
            let masked = r.redact(&out);
            assert!(masked.contains(MASK), "{t}: {out} -> {masked}");
            for piece in [&secret[..8], &secret[8..16], &secret[16..]] {
                assert!(!masked.to_lowercase().contains(piece), "{t}: {masked}");
            }
        }
    }

    #[test]
    fn public_text_stays_and_short_derived_text_is_refused() {
        let secret = "f00dfeed2badc0de5eed1e55";
        let r = Redactor::new();
        r.add(secret);
        let out = render(
            "{{ inputs.token | length }} for {{ inputs.name }}",
            &cx(secret),
            &r,
        )
        .unwrap();
        assert_eq!(r.redact(&out), "24 for web");
        let e = render("{{ inputs.token[:3] }}", &cx(secret), &r).unwrap_err();
        assert!(e.message.contains("too short"), "{}", e.message);
        assert!(!e.message.contains("f00"), "{}", e.message);
    }

    #[test]
    fn the_text_between_two_secrets_stays_readable() {
        let a = "f00dfeed2badc0de5eed1e55";
        let real = serde_json::json!({"inputs": {"a": a, "b": "0123456789abcdef"}});
        let shadow = serde_json::json!({"inputs": {"a": shadow_str(a), "b": shadow_str("0123456789abcdef")}});
        let cx = Contexts {
            real: template::value(real),
            shadow: Some(template::value(shadow)),
        };
        let r = Redactor::new();
        let out = render(
            "Paste {{ inputs.a }} and {{ inputs.b | upper }} now",
            &cx,
            &r,
        )
        .unwrap();
        assert_eq!(r.redact(&out), format!("Paste {MASK} and {MASK} now"));
    }

    #[test]
    fn differing_part() {
        assert_eq!(differing("abc", "abc"), None);
        assert_eq!(differing("x SECRET y", "x FRPERG y"), Some("SECRET"));
        assert_eq!(differing("ab", "aXb"), Some("b"));
        assert_eq!(differing("é1é", "é2é"), Some("1"));
    }
}
