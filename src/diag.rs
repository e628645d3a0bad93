//! Problems found in runbooks and inputs, each with its place in the source file.
//!
//! A [`Problem`] is a miette diagnostic that carries its own source snippet, so the CLI can
//! print it with file:line:col without knowing where it came from. Validation collects every
//! problem it can find and returns them together.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

use crate::load::yaml::{ByteSpan, Node, NodeKind};

pub mod codes;

pub use codes::Code;

/// One loaded source file: its display name and text.
#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub named: NamedSource<Arc<str>>,
    pub text: Arc<str>,
    /// Byte ranges no snippet shows (see [`hidden_sections`]).
    pub hidden: Vec<ByteSpan>,
}

impl Source {
    pub fn new(path: &Path, text: String) -> Arc<Source> {
        let text: Arc<str> = Arc::from(text);
        let name = display_path(path);
        Arc::new(Source {
            path: path.to_path_buf(),
            // A snippet never shows a control character of the file as itself.
            named: NamedSource::new(
                name,
                match crate::display::masked_same_length(&text) {
                    std::borrow::Cow::Borrowed(_) => text.clone(),
                    std::borrow::Cow::Owned(masked) => Arc::from(masked),
                },
            )
            .with_language("yaml"),
            hidden: hidden_sections(&text),
            text,
        })
    }

    /// The place of `range` (within a scalar's value) in this file: exact when the scalar is
    /// written on one line without escapes, the whole scalar otherwise. A template's error
    /// points at the same place at run time as at check time.
    pub fn locate(&self, node: &Node, range: std::ops::Range<usize>) -> ByteSpan {
        let NodeKind::Scalar { value, .. } = &node.kind else {
            return node.span.clone();
        };
        let raw = self.text.get(node.span.clone()).unwrap_or_default();
        for skip in [0usize, 1] {
            if raw
                .get(skip..)
                .is_some_and(|r| r.starts_with(value.as_str()))
            {
                let start = node.span.start + skip + range.start;
                return start..start + range.len();
            }
        }
        // Block scalars: find the referenced text in the raw source of the scalar.
        if let Some(needle) = value.get(range.clone())
            && let Some(i) = raw.find(needle)
        {
            let start = node.span.start + i;
            return start..start + needle.len();
        }
        node.span.clone()
    }

    /// 1-based line and column (in characters) of a byte offset. An offset inside a character
    /// (or past the end) counts as that character's start: a span computed by arithmetic on
    /// a scalar must never make a report panic.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..floor_char(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

/// The largest char boundary of `text` at or before `i` (`text.len()` when past the end).
pub fn floor_char(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary of `text` at or after `i` (`text.len()` when past the end).
pub fn ceil_char(text: &str, i: usize) -> usize {
    let mut i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// A path as the operator typed it, relative to the working directory when possible.
pub fn display_path(path: &Path) -> String {
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    rel.unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with a runbook, an environment file or the operator's input.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Stable code, e.g. `runbook::unknown-key`; every one is in [`codes`].
    pub code: Code,
    pub message: String,
    pub severity: Severity,
    pub source: Option<Arc<Source>>,
    pub span: Option<ByteSpan>,
    pub label: Option<String>,
    /// Other places of the same file the problem is about (a duplicate's first use), each
    /// with its label: shown in the snippet next to the main place.
    pub secondary: Vec<(ByteSpan, String)>,
    pub help: Option<String>,
}

impl Problem {
    pub fn error(code: Code, message: impl Into<String>) -> Problem {
        Problem {
            code,
            message: message.into(),
            severity: Severity::Error,
            source: None,
            span: None,
            label: None,
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, message)
        }
    }

    /// Place the problem at `span` of `source`. The span is widened to whole characters and
    /// kept inside the text, so every renderer (miette's snippets, `line_col`) can slice it.
    pub fn at(mut self, source: &Arc<Source>, span: ByteSpan) -> Problem {
        let text = &source.text;
        let start = floor_char(text, span.start);
        let end = ceil_char(text, span.end.max(start));
        self.source = Some(source.clone());
        self.span = Some(start..end);
        self
    }

    pub fn in_file(mut self, source: &Arc<Source>) -> Problem {
        self.source = Some(source.clone());
        self
    }

    /// Also point at `span` of the problem's file, with `label`. Set after [`Problem::at`].
    pub fn also_at(mut self, span: ByteSpan, label: impl Into<String>) -> Problem {
        self.secondary.push((span, label.into()));
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Problem {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `path`, 1-based line and column of the problem, when it has a place.
    pub fn location(&self) -> Option<(String, usize, usize)> {
        let source = self.source.as_ref()?;
        let (line, col) = self
            .span
            .as_ref()
            .map_or((1, 1), |s| source.line_col(s.start));
        Some((display_path(&source.path), line, col))
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages name the user's values, which may hold control characters.
        f.write_str(&crate::display::visible_line(&self.message))
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| {
            Box::new(crate::display::visible_line(h).into_owned()) as Box<dyn fmt::Display>
        })
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| &s.named as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        // Also for a span set without `at`: miette slices the text by it.
        let whole = |span: &ByteSpan| match &self.source {
            Some(s) => {
                let start = floor_char(&s.text, span.start);
                start..ceil_char(&s.text, span.end.max(start))
            }
            None => span.clone(),
        };
        let span = whole(self.span.as_ref()?);
        let label = self.label.as_deref().map_or_else(
            || "here".to_string(),
            |l| crate::display::visible_line(l).into_owned(),
        );
        let secondary = self.secondary.iter().map(move |(span, label)| {
            LabeledSpan::new_with_span(
                Some(crate::display::visible_line(label).into_owned()),
                whole(span),
            )
        });
        Some(Box::new(
            std::iter::once(LabeledSpan::new_primary_with_span(Some(label), span)).chain(secondary),
        ))
    }
}

/// A "did you mean" for `name` among `known`, when one is close enough.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("did you mean `{k}`?"))
}

/// The `notify:` sections of a file, found in its text (so also when it is not valid YAML):
/// the key's line and every line under it indented deeper. Such a section names where a
/// webhook's URL is kept, and a URL written there by mistake is the webhook's credential: a
/// problem in it is placed in words, never shown as a snippet.
fn hidden_sections(text: &str) -> Vec<ByteSpan> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    let mut open: Option<(usize, usize)> = None; // (start byte, key's indent)
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let blank = body.trim().is_empty() || body.trim_start().starts_with('#');
        if let Some((start, key)) = open
            && !blank
            && indent(body) <= key
        {
            out.push(start..at);
            open = None;
        }
        let t = body.trim_start().trim_start_matches("- ");
        if open.is_none() && (t.starts_with("notify:") || t.starts_with("\"notify\":")) {
            open = Some((at, indent(body)));
        }
        at += line.len();
    }
    if let Some((start, _)) = open {
        out.push(start..at);
    }
    out
}

/// Render problems as text, one miette report each, for a terminal or a log.
pub fn render(problems: &[Problem], color: bool, width: usize) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_context_lines(1);
    let mut out = String::new();
    for p in problems {
        match too_long_to_show(p).or_else(|| hidden_from_view(p)) {
            Some(plain) => {
                let _ = handler.render_report(&mut out, &plain);
            }
            None => {
                let _ = handler.render_report(&mut out, p);
            }
        }
    }
    out
}

/// Longest source line shown as a snippet. A hostile or generated file can hold a line of
/// megabytes, and a diagnostic must stay one screen.
const MAX_SNIPPET_LINE: usize = 400;

/// The problem without its snippet, its place in the message, when a line it would show is
/// longer than [`MAX_SNIPPET_LINE`].
fn too_long_to_show(p: &Problem) -> Option<Problem> {
    let source = p.source.as_ref()?;
    let span = p.span.as_ref()?;
    let long = std::iter::once(span)
        .chain(p.secondary.iter().map(|(s, _)| s))
        .any(|s| shows_a_long_line(&source.text, s));
    if !long {
        return None;
    }
    let (file, line, col) = p.location()?;
    Some(Problem {
        message: format!(
            "{} (at {file}:{line}:{col}; the line is too long to show)",
            p.message
        ),
        source: None,
        span: None,
        secondary: Vec::new(),
        ..p.clone()
    })
}

/// The problem without its snippet, its place in the message, when the snippet would show a
/// line of a hidden section (`notify:`, see [`hidden_sections`]).
fn hidden_from_view(p: &Problem) -> Option<Problem> {
    let source = p.source.as_ref()?;
    let span = p.span.as_ref()?;
    let shown = |s: &ByteSpan| snippet_lines(&source.text, s);
    let hidden = std::iter::once(span)
        .chain(p.secondary.iter().map(|(s, _)| s))
        .any(|s| {
            let lines = shown(s);
            source
                .hidden
                .iter()
                .any(|h| h.start < lines.end && lines.start < h.end)
        });
    if !hidden {
        return None;
    }
    let (file, line, col) = p.location()?;
    Some(Problem {
        message: format!(
            "{} (at {file}:{line}:{col}; the lines are not shown: a `notify:` section may hold a webhook's URL, which is its credential)",
            p.message
        ),
        source: None,
        span: None,
        secondary: Vec::new(),
        ..p.clone()
    })
}

/// The bytes of the lines a snippet of `span` shows (one line of context each side).
fn snippet_lines(text: &str, span: &ByteSpan) -> ByteSpan {
    let start = floor_char(text, span.start);
    let end = ceil_char(text, span.end.max(start));
    let from = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let from = text[..from.saturating_sub(1)]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let to = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let to = text[(to + 1).min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| to + 1 + i);
    from..to
}

/// Whether the snippet of `span` would show a line longer than [`MAX_SNIPPET_LINE`].
fn shows_a_long_line(text: &str, span: &ByteSpan) -> bool {
    text[snippet_lines(text, span)]
        .split('\n')
        .any(|l| l.len() > MAX_SNIPPET_LINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A problem in or next to a `notify:` section is placed in words: the snippet that would
    /// show a webhook URL written there by mistake is not rendered. Found in the text, so a
    /// file that is not valid YAML (a duplicate key) is covered too.
    #[test]
    fn a_notify_section_is_never_shown_in_a_snippet() {
        let url = "https://hooks.example.com/services/T0/B0/SECRETXYZabc123";
        let text = format!(
            "version: 1\nenvironments:\n  prod:\n    description: x\n    notify:\n      url: {url}\n      url: {url}\n    vars:\n      a: b\n\n\n\n  other:\n    bad: 1\n"
        );
        let source = Source::new(Path::new("environments.yaml"), text.clone());
        let at = text.find("url:").unwrap();
        let p = Problem::error(Code::UnknownKey, "unknown key `url`").at(&source, at..at + 3);
        let shown = render(&[p], false, 100);
        assert!(!shown.contains("SECRETXYZ"), "{shown}");
        assert!(shown.contains("environments.yaml:6:7"), "{shown}");
        // Far from it, the snippet is shown as usual.
        let at = text.find("bad").unwrap();
        let p = Problem::error(Code::UnknownKey, "unknown key `bad`").at(&source, at..at + 3);
        let shown = render(&[p], false, 100);
        assert!(shown.contains("bad: 1"), "{shown}");
        assert!(!shown.contains("SECRETXYZ"), "{shown}");
        // Flow style, on one line.
        let text = format!("environments:\n  prod:\n    notify: {{ url_parameter: {url} }}\n");
        let source = Source::new(Path::new("environments.yaml"), text.clone());
        let at = text.find("url_parameter").unwrap();
        let p = Problem::error(Code::Invalid, "m").at(&source, at..at + 3);
        assert!(!render(&[p], false, 100).contains("SECRETXYZ"));
    }

    #[test]
    fn a_second_place_is_a_second_label_and_counts_for_long_lines() {
        let text = format!(
            "a: 1\nb: 2\nc: 3\nd: 4\ne: {}\n",
            "x".repeat(MAX_SNIPPET_LINE)
        );
        let source = Source::new(Path::new("x.yaml"), text);
        let p = Problem::error(Code::DuplicateId, "m")
            .at(&source, 5..6)
            .label("again")
            .also_at(0..1, "first");
        let labels: Vec<(Option<String>, usize, bool)> = p
            .labels()
            .unwrap()
            .map(|l| (l.label().map(str::to_string), l.offset(), l.primary()))
            .collect();
        assert_eq!(
            labels,
            [
                (Some("again".into()), 5, true),
                (Some("first".into()), 0, false)
            ]
        );
        assert!(too_long_to_show(&p).is_none());
        // A second place next to a line too long to show: no snippet, the place in the message.
        let p = p.also_at(15..16, "third");
        let plain = too_long_to_show(&p).unwrap();
        assert!(plain.source.is_none() && plain.secondary.is_empty());
        assert!(plain.message.contains("x.yaml:2:1"), "{}", plain.message);
    }

    #[test]
    fn a_span_inside_a_character_neither_panics_nor_splits_it() {
        let source = Source::new(Path::new("x.yaml"), "a: é\nb: ü\n".into());
        // Every byte offset, including those inside `é` and `ü` and past the end.
        for start in 0..source.text.len() + 3 {
            for end in start..source.text.len() + 3 {
                let p = Problem::error(Code::Invalid, "m").at(&source, start..end);
                let span = p.span.clone().unwrap();
                assert!(source.text.get(span.clone()).is_some(), "{span:?}");
                let _ = p.location();
                let _ = render(&[p], false, 80);
                let _ = source.line_col(start);
            }
        }
        assert_eq!(source.line_col(4), (1, 4));
        assert_eq!(source.line_col(10), (2, 4));
    }
}
