//! Problems found in runbooks and inputs, each with its place in the source file.
//!
//! A [`Problem`] is a miette diagnostic that carries its own source snippet, so the CLI can
//! print it with file:line:col without knowing where it came from. Validation collects every
//! problem it can find and returns them together.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

use crate::load::yaml::ByteSpan;

/// One loaded source file: its display name and text.
#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub named: NamedSource<Arc<str>>,
    pub text: Arc<str>,
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
            text,
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
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
    /// Stable code, e.g. `runbook::unknown-key`.
    pub code: &'static str,
    pub message: String,
    pub severity: Severity,
    pub source: Option<Arc<Source>>,
    pub span: Option<ByteSpan>,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Problem {
    pub fn error(code: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            code,
            message: message.into(),
            severity: Severity::Error,
            source: None,
            span: None,
            label: None,
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, message)
        }
    }

    pub fn at(mut self, source: &Arc<Source>, span: ByteSpan) -> Problem {
        self.source = Some(source.clone());
        self.span = Some(span);
        self
    }

    pub fn in_file(mut self, source: &Arc<Source>) -> Problem {
        self.source = Some(source.clone());
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
        let span = self.span.clone()?;
        let label = self.label.as_deref().map_or_else(
            || "here".to_string(),
            |l| crate::display::visible_line(l).into_owned(),
        );
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(label), span),
        )))
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
        let _ = handler.render_report(&mut out, p);
    }
    out
}
