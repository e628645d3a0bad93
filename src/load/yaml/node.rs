//! A YAML tree that remembers where every value came from: every node carries its byte span
//! in the source, so any problem found later — a wrong type, an unknown key, a template
//! naming an undefined step — can point at the exact line and column. Built from
//! saphyr-parser events, within limits on depth and aliases. Scalars are resolved with the
//! YAML 1.2 core schema (`yes` is a string, not a boolean).

use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Byte range of a node in its source file.
pub type ByteSpan = Range<usize>;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: ByteSpan,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar and whether it was written plain (only plain scalars resolve to null/bool/number).
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node under `key` of a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// True for `~`, `null`, an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true } if is_null(value))
    }

    /// A short name of the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { value, plain } => match resolve_plain(value, *plain) {
                Resolved::Null => "null",
                Resolved::Bool(_) => "a boolean",
                Resolved::Int(_) | Resolved::Float(_) => "a number",
                Resolved::Str => "a string",
            },
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// Visit every scalar string in this subtree, with its span.
    pub fn walk_scalars<'a>(&'a self, f: &mut dyn FnMut(&'a Node, &'a str)) {
        match &self.kind {
            NodeKind::Scalar { value, .. } => f(self, value),
            NodeKind::Seq(items) => items.iter().for_each(|n| n.walk_scalars(f)),
            NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| v.walk_scalars(f)),
        }
    }

    /// A copy of this subtree with every scalar string replaced by `f(scalar)`.
    pub fn map_scalars<E>(
        &self,
        f: &mut dyn FnMut(&Node, &str) -> Result<String, E>,
    ) -> Result<Node, E> {
        let kind = match &self.kind {
            NodeKind::Scalar { value, plain } => {
                let new = f(self, value)?;
                // A rendered template is a string even when it looks like a number, unless it was
                // written as a plain scalar without any template in it.
                let plain = *plain && new == *value;
                NodeKind::Scalar { value: new, plain }
            }
            NodeKind::Seq(items) => NodeKind::Seq(
                items
                    .iter()
                    .map(|n| n.map_scalars(f))
                    .collect::<Result<_, _>>()?,
            ),
            NodeKind::Map(entries) => NodeKind::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.map_scalars(f)?)))
                    .collect::<Result<_, E>>()?,
            ),
        };
        Ok(Node {
            span: self.span.clone(),
            kind,
        })
    }

    /// The node as JSON (core-schema resolution), for display and for template contexts.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar { value, plain } => match resolve_plain(value, *plain) {
                Resolved::Null => Value::Null,
                Resolved::Bool(b) => Value::Bool(b),
                Resolved::Int(i) => Value::from(i),
                Resolved::Float(f) => {
                    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                }
                Resolved::Str => Value::String(value.clone()),
            },
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

pub(super) fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

pub(super) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

pub(super) fn resolve_plain(s: &str, plain: bool) -> Resolved {
    if !plain {
        return Resolved::Str;
    }
    if is_null(s) {
        return Resolved::Null;
    }
    match s {
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Resolved::Int(i);
    }
    let looks_numeric = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'+' || b == b'.');
    if looks_numeric && let Ok(f) = s.parse::<f64>() {
        return Resolved::Float(f);
    }
    Resolved::Str
}

/// A YAML syntax error, or input over one of the limits below.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub span: ByteSpan,
    pub message: String,
    /// Which limit was exceeded, when that is the problem (for its own code and help).
    pub limit: Option<Limit>,
}

/// The bounds that keep a hostile file from taking the machine's memory or stack. A tree is
/// never built past them: the file is refused at the node that crosses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Lists and mappings nested deeper than [`MAX_DEPTH`] (block or flow style alike).
    Depth,
    /// Aliases (`*name`) expanding to more than [`MAX_ALIAS_NODES`] nodes or
    /// [`MAX_ALIAS_BYTES`] bytes of scalars in all.
    Aliases,
}

/// How deep lists and mappings may nest. A runbook needs about 8; every later stage (drop,
/// clone, deserialize, render) walks the tree recursively, so depth is bounded here, once.
pub const MAX_DEPTH: usize = 64;
/// How many nodes all the aliases of a file may expand to, together.
pub const MAX_ALIAS_NODES: usize = 10_000;
/// How many bytes of scalar text all the aliases of a file may expand to, together.
pub const MAX_ALIAS_BYTES: usize = 1024 * 1024;

/// Parse one YAML document into a spanned tree. An empty document is an empty mapping.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let offsets = CharOffsets::new(src);
    let mut parser = Parser::new_from_str(src);
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        documents: 0,
        alias_nodes: 0,
        alias_bytes: 0,
    };
    loop {
        match parser.next_event() {
            None => break,
            Some(Err(e)) => {
                let at = offsets.byte(e.marker().index());
                return Err(SyntaxError {
                    span: at..at,
                    message: e.info().to_string(),
                    limit: None,
                });
            }
            Some(Ok((ev, span))) => {
                if let Some(err) = builder.event(ev, offsets.span(span)) {
                    return Err(err);
                }
            }
        }
    }
    Ok(builder.root.unwrap_or(Node {
        span: 0..0,
        kind: NodeKind::Map(Vec::new()),
    }))
}

/// saphyr reports positions in characters; miette wants bytes.
struct CharOffsets {
    /// Byte offset of each char, or empty when the source is ASCII (identity).
    bytes: Vec<usize>,
    len: usize,
}

impl CharOffsets {
    fn new(src: &str) -> Self {
        let bytes = if src.is_ascii() {
            Vec::new()
        } else {
            src.char_indices().map(|(b, _)| b).collect()
        };
        CharOffsets {
            bytes,
            len: src.len(),
        }
    }
    fn byte(&self, char_index: usize) -> usize {
        if self.bytes.is_empty() {
            char_index.min(self.len)
        } else {
            self.bytes.get(char_index).copied().unwrap_or(self.len)
        }
    }
    fn span(&self, s: Span) -> ByteSpan {
        self.byte(s.start.index())..self.byte(s.end.index())
    }
}

enum Frame {
    Seq {
        start: usize,
        items: Vec<Node>,
        anchor: usize,
        size: Size,
    },
    Map {
        start: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        anchor: usize,
        size: Size,
    },
}

impl Frame {
    fn size(&mut self) -> &mut Size {
        match self {
            Frame::Seq { size, .. } | Frame::Map { size, .. } => size,
        }
    }
}

/// The nodes and scalar bytes of a subtree: what an alias of it costs.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

struct Builder {
    stack: Vec<Frame>,
    anchors: Vec<(usize, Node, Size)>,
    root: Option<Node>,
    documents: usize,
    /// What the aliases met so far expanded to, against the budget.
    alias_nodes: usize,
    alias_bytes: usize,
}

impl Builder {
    fn event(&mut self, ev: Event<'_>, span: ByteSpan) -> Option<SyntaxError> {
        match ev {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Some(SyntaxError {
                        span,
                        message: "a runbook file holds one YAML document; remove the second `---`"
                            .into(),
                        limit: None,
                    });
                }
                None
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                let size = Size {
                    nodes: 1,
                    bytes: value.len(),
                };
                let node = Node {
                    span,
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        plain,
                    },
                };
                if anchor > 0
                    && let Some(e) = self.anchor(anchor, &node, size)
                {
                    return Some(e);
                }
                self.push(node, size)
            }
            Event::Alias(id) => {
                let Some(i) = self.anchors.iter().rposition(|(a, ..)| *a == id) else {
                    return Some(SyntaxError {
                        span,
                        message: "unknown alias".into(),
                        limit: None,
                    });
                };
                // Counted before the copy is made: a few hundred bytes of aliases of aliases
                // would otherwise expand to gigabytes.
                let size = self.anchors[i].2;
                if let Some(e) = self.copies(size, &span) {
                    return Some(e);
                }
                let node = Node {
                    span,
                    kind: self.anchors[i].1.kind.clone(),
                };
                self.push(node, size)
            }
            Event::SequenceStart(anchor, _) => {
                if let Some(e) = self.deeper(&span) {
                    return Some(e);
                }
                self.stack.push(Frame::Seq {
                    start: span.start,
                    items: Vec::new(),
                    anchor,
                    size: Size { nodes: 1, bytes: 0 },
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                if let Some(e) = self.deeper(&span) {
                    return Some(e);
                }
                self.stack.push(Frame::Map {
                    start: span.start,
                    entries: Vec::new(),
                    pending_key: None,
                    anchor,
                    size: Size { nodes: 1, bytes: 0 },
                });
                None
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq {
                    start,
                    items,
                    anchor,
                    size,
                }) => {
                    let node = Node {
                        span: start..span.end.max(start),
                        kind: NodeKind::Seq(items),
                    };
                    self.finish(node, anchor, size)
                }
                _ => Some(SyntaxError {
                    span,
                    message: "unbalanced sequence".into(),
                    limit: None,
                }),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map {
                    start,
                    entries,
                    anchor,
                    size,
                    ..
                }) => {
                    let end = entries
                        .last()
                        .map_or(span.end, |(_, v)| v.span.end.max(span.end));
                    let node = Node {
                        span: start..end.max(start),
                        kind: NodeKind::Map(entries),
                    };
                    self.finish(node, anchor, size)
                }
                _ => Some(SyntaxError {
                    span,
                    message: "unbalanced mapping".into(),
                    limit: None,
                }),
            },
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
        }
    }

    /// Refuse a list or mapping that would nest deeper than [`MAX_DEPTH`].
    fn deeper(&self, span: &ByteSpan) -> Option<SyntaxError> {
        (self.stack.len() >= MAX_DEPTH).then(|| SyntaxError {
            span: span.start..span.start,
            message: format!("lists and mappings nest deeper than {MAX_DEPTH} levels here"),
            limit: Some(Limit::Depth),
        })
    }

    /// Charge a copy of `size` (an alias expanded, or an anchored node kept for its aliases)
    /// to the file's budget; refuse it at `span` when the budget is spent.
    fn copies(&mut self, size: Size, span: &ByteSpan) -> Option<SyntaxError> {
        self.alias_nodes = self.alias_nodes.saturating_add(size.nodes);
        self.alias_bytes = self.alias_bytes.saturating_add(size.bytes);
        (self.alias_nodes > MAX_ALIAS_NODES || self.alias_bytes > MAX_ALIAS_BYTES).then(|| {
            SyntaxError {
                span: span.clone(),
                message: format!(
                    "the anchors and aliases of this file expand to more than {MAX_ALIAS_NODES} nodes or {} KiB of text",
                    MAX_ALIAS_BYTES / 1024
                ),
                limit: Some(Limit::Aliases),
            }
        })
    }

    /// Keep a copy of an anchored node for the aliases to come (charged to the budget too:
    /// anchors nested in anchors would otherwise copy the tree once per level).
    fn anchor(&mut self, anchor: usize, node: &Node, size: Size) -> Option<SyntaxError> {
        let span = node.span.start..node.span.start;
        if let Some(e) = self.copies(size, &span) {
            return Some(e);
        }
        self.anchors.push((anchor, node.clone(), size));
        None
    }

    fn finish(&mut self, node: Node, anchor: usize, size: Size) -> Option<SyntaxError> {
        if anchor > 0
            && let Some(e) = self.anchor(anchor, &node, size)
        {
            return Some(e);
        }
        self.push(node, size)
    }

    fn push(&mut self, node: Node, size: Size) -> Option<SyntaxError> {
        if let Some(frame) = self.stack.last_mut() {
            frame.size().add(size);
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                None
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                None
            }
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        return Some(SyntaxError {
                            span: node.span,
                            message: "a mapping key must be a plain string".into(),
                            limit: None,
                        });
                    }
                    if let Some((first, _)) =
                        entries.iter().find(|(k, _)| k.as_str() == node.as_str())
                    {
                        let line_hint = first.span.start;
                        let _ = line_hint;
                        return Some(SyntaxError {
                            span: node.span.clone(),
                            message: format!(
                                "duplicate key `{}`",
                                node.as_str().unwrap_or_default()
                            ),
                            limit: None,
                        });
                    }
                    *pending_key = Some(node);
                    None
                }
                Some(key) => {
                    entries.push((key, node));
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_values() {
        let src = "name: x\nbytes: 24\n";
        let n = parse(src).unwrap();
        let b = n.get("bytes").unwrap();
        assert_eq!(&src[b.span.clone()], "24");
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("duplicate key `a`"));
    }

    #[test]
    fn nesting_is_bounded_at_the_limit_in_every_style() {
        let ok = format!("{}x", "- ".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        for deep in [
            format!("{}x", "- ".repeat(MAX_DEPTH + 1)),
            format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1)),
            format!("- - {}{}", "{a: ".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH)),
        ] {
            let e = parse(&deep).unwrap_err();
            assert_eq!(e.limit, Some(Limit::Depth), "{}", e.message);
        }
    }

    #[test]
    fn aliases_work_within_their_budget_and_stop_past_it() {
        let n = parse("a: &r {attempts: 3}\nb: *r\nc: *r\n").unwrap();
        assert_eq!(
            n.get("c").unwrap().get("attempts").unwrap().as_str(),
            Some("3")
        );
        // One big anchor aliased a few times is refused before it is copied.
        let big = format!("a: &r [{}]\nb: [*r, *r, *r]\n", vec!["x"; 4000].join(","));
        let e = parse(&big).unwrap_err();
        assert_eq!(e.limit, Some(Limit::Aliases));
        assert_eq!(&big[e.span.start..e.span.start + 2], "*r");
    }

    #[test]
    fn non_ascii_spans_are_bytes() {
        let src = "name: \"héllo\"\nbytes: x\n";
        let n = parse(src).unwrap();
        let b = n.get("bytes").unwrap();
        assert_eq!(&src[b.span.clone()], "x");
    }
}
