//! Markdown for a terminal: a runbook's instructions as a person reads them. A template fills
//! a line in the middle of a YAML paragraph, so the file's line breaks no longer fall where
//! the text needs them: paragraphs are reflowed to the width. What a line break means is kept:
//! code blocks (fenced or indented) are never touched, so a command can be copied as written;
//! list items, headings, quotes and tables keep their lines (a line wider than the width
//! wraps under its own text).

/// `md` (control characters already made visible) for a terminal `width` columns wide:
/// paragraphs reflowed, headings underlined, emphasis markers and backticks dropped outside
/// code.
pub fn render(md: &str, width: usize) -> String {
    let width = width.max(20);
    let mut out: Vec<String> = Vec::new();
    let mut paragraph: Vec<&str> = Vec::new();
    // The fence that opened the code block we are in (```, ~~~ or longer).
    let mut fence: Option<String> = None;
    // Inside a list: an indented line continues its item rather than starting code.
    let mut in_list = false;
    // The line before was blank (or there was none): where an indented code block can start.
    let mut after_blank = true;
    let flush = |paragraph: &mut Vec<&str>, out: &mut Vec<String>| {
        if paragraph.is_empty() {
            return;
        }
        let words: Vec<&str> = paragraph
            .iter()
            .flat_map(|l| l.split_whitespace())
            .collect();
        out.extend(fill(&clean(&words.join(" ")), width, "", ""));
        paragraph.clear();
    };
    for line in md.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if let Some(f) = &fence {
            out.push(line.to_string());
            let t = t.trim_end();
            if t.starts_with(f.as_str()) && t.chars().all(|c| f.starts_with(c)) {
                fence = None;
            }
            continue;
        }
        if indent < 4 && (t.starts_with("```") || t.starts_with("~~~")) {
            flush(&mut paragraph, &mut out);
            let c = t.as_bytes()[0] as char;
            fence = Some(t.chars().take_while(|x| *x == c).collect());
            out.push(line.to_string());
            (in_list, after_blank) = (false, false);
            continue;
        }
        if t.is_empty() {
            flush(&mut paragraph, &mut out);
            out.push(String::new());
            // After a blank line an indented line is code, even under a list item: shown as
            // written rather than risk breaking a command.
            (in_list, after_blank) = (false, true);
            continue;
        }
        let was_blank = std::mem::replace(&mut after_blank, false);
        if (indent >= 4 || line.starts_with('\t')) && !in_list && paragraph.is_empty() && was_blank
        {
            // An indented code block: as written.
            out.push(line.to_string());
            // The next indented line continues the block.
            after_blank = true;
            continue;
        }
        if let Some(h) = heading(t) {
            flush(&mut paragraph, &mut out);
            in_list = false;
            let h = clean(h);
            out.push(h.clone());
            out.push("─".repeat(h.chars().count()));
            continue;
        }
        if let Some(marker) = list_marker(t) {
            flush(&mut paragraph, &mut out);
            in_list = true;
            let hang = " ".repeat(indent + marker);
            out.extend(fill(&clean(line), width, "", &hang));
            continue;
        }
        if in_list && indent > 0 {
            // A continuation of the item above, kept on its own line.
            let hang = " ".repeat(indent);
            out.extend(fill(&clean(line), width, "", &hang));
            continue;
        }
        if t.starts_with('>') || t.starts_with('|') {
            flush(&mut paragraph, &mut out);
            in_list = false;
            out.extend(fill(&clean(line), width, "", &" ".repeat(indent + 2)));
            continue;
        }
        in_list = false;
        paragraph.push(line);
        // A hard line break (two trailing spaces, or a backslash) ends the line here.
        if line.ends_with("  ") || line.ends_with('\\') {
            if let Some(last) = paragraph.last_mut() {
                *last = last.trim_end().trim_end_matches('\\');
            }
            flush(&mut paragraph, &mut out);
        }
    }
    flush(&mut paragraph, &mut out);
    let mut s = out.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// The text of an ATX heading (`# Title`, `## Title` …).
fn heading(t: &str) -> Option<&str> {
    let hashes = t.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &t[hashes..];
    if rest.is_empty() {
        return Some("");
    }
    rest.starts_with(' ').then(|| rest.trim())
}

/// The width of a list item's marker and the space after it (`- `, `* `, `12. `, `3) `).
fn list_marker(t: &str) -> Option<usize> {
    let b = t.as_bytes();
    if b.len() >= 2 && matches!(b[0], b'-' | b'*' | b'+') && b[1] == b' ' {
        return Some(2);
    }
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    if (1..=9).contains(&digits)
        && b.len() > digits + 1
        && matches!(b[digits], b'.' | b')')
        && b[digits + 1] == b' '
    {
        return Some(digits + 2);
    }
    None
}

/// Emphasis markers and backticks dropped (outside code only).
fn clean(line: &str) -> String {
    line.replace("**", "").replace('`', "")
}

/// `text` in lines of at most `width` columns, broken at spaces (a word longer than a line
/// gets one of its own), the first line starting with `first`, the others with `hang`. A line that fits is
/// returned as it is, its own spacing kept.
fn fill(text: &str, width: usize, first: &str, hang: &str) -> Vec<String> {
    let cols = |s: &str| s.chars().count();
    if cols(first) + cols(text) <= width {
        return vec![format!("{first}{text}")];
    }
    let lead = text.len() - text.trim_start().len();
    let mut lines = Vec::new();
    let mut cur = format!("{first}{}", &text[..lead]);
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && cols(&cur) + 1 + cols(word) > width {
            lines.push(std::mem::replace(&mut cur, hang.to_string()));
            empty = true;
        }
        if !empty {
            cur.push(' ');
        }
        // A word longer than a whole line (a URL) stays whole on a line of its own: cut, it
        // could no longer be copied in one piece.
        cur.push_str(word);
        empty = false;
    }
    if !empty || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn a_paragraph_broken_by_the_yaml_is_reflowed_to_the_width() {
        let md = "The app now runs with the new token. In the Cloudflare dashboard → R2 → Manage R2 API\n\
                  Tokens, delete the previous MuseHub token of production (the one that is not\n\
                  today's).\n";
        assert_eq!(
            render(md, 40),
            "The app now runs with the new token. In\n\
             the Cloudflare dashboard → R2 → Manage\n\
             R2 API Tokens, delete the previous\n\
             MuseHub token of production (the one\n\
             that is not today's).\n"
        );
        // Wide enough: one line.
        assert_eq!(render("a\nb c\nd\n", 80), "a b c d\n");
    }

    #[test]
    fn code_blocks_lists_and_headings_keep_their_lines() {
        let md = "## Create a token for production\n\
                  1. Open the dashboard.\n\
                  2. Name it `musehub-production`, permission **Object Read & Write**,\n   \
                  limited to the bucket.\n\
                  Do **not** revoke the old token\n\
                  yet.\n\
                  \n\
                  ```sh\n\
                  aws s3 ls   --profile `x`   # **kept**\n\
                  ```\n\
                  \n\
                  \x20   indented   code **stays**\n\
                  \x20   second line\n\
                  \n\
                  - one\n\
                  - two\n";
        assert_eq!(
            render(md, 80),
            "Create a token for production\n\
             ─────────────────────────────\n\
             1. Open the dashboard.\n\
             2. Name it musehub-production, permission Object Read & Write,\n   \
             limited to the bucket.\n\
             Do not revoke the old token yet.\n\
             \n\
             ```sh\n\
             aws s3 ls   --profile `x`   # **kept**\n\
             ```\n\
             \n\
             \x20   indented   code **stays**\n\
             \x20   second line\n\
             \n\
             - one\n\
             - two\n"
        );
    }

    #[test]
    fn a_list_item_wider_than_the_width_wraps_under_its_text_and_code_never_does() {
        let md = "- a list item that is much longer than the width\n\n    a code line that is much longer than the width\n";
        assert_eq!(
            render(md, 24),
            "- a list item that is\n  much longer than the\n  width\n\n    a code line that is much longer than the width\n"
        );
    }

    #[test]
    fn a_hard_line_break_is_kept_and_a_long_word_is_never_cut() {
        assert_eq!(render("one  \ntwo\nthree\n", 80), "one\ntwo three\n");
        assert_eq!(render("x\\\ny\n", 80), "x\ny\n");
        assert_eq!(
            render(
                "Open https://dash.example.com/r2/api-tokens/create now\n",
                20
            ),
            "Open\nhttps://dash.example.com/r2/api-tokens/create\nnow\n"
        );
    }
}
