//! YAML with places: `node.rs` parses a document into a [`Node`] tree where every node has its
//! byte span; `de.rs` is a serde deserializer over it whose errors carry the span and a
//! [`DeErrorKind`]. The rest of the crate names both through this module
//! (`crate::load::yaml::…`).

mod de;
mod node;

pub use de::{DeError, DeErrorKind, NodeDeserializer, names};
pub use node::{
    ByteSpan, Limit, MAX_ALIAS_BYTES, MAX_ALIAS_NODES, MAX_DEPTH, Node, NodeKind, SyntaxError,
    parse,
};
