//! A serde deserializer over a [`Node`] whose errors carry the span of the offending node
//! (unknown key → the key, wrong type → the value, missing key → the mapping) and a
//! [`DeErrorKind`] set by the serde method that made the error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::node::{ByteSpan, Node, NodeKind, Resolved, is_null, resolve_plain};

impl Node {
    /// Deserialize a typed value from this node; errors carry the span of the offending node.
    pub fn deserialize<T: de::DeserializeOwned>(&self) -> Result<T, DeError> {
        T::deserialize(NodeDeserializer { node: self })
    }
}

/// What went wrong in deserializing, as the serde error method that made it says: this, not
/// the message, decides the problem's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeErrorKind {
    /// A key the type does not have (`unknown_field`).
    UnknownField,
    /// A name that is not one of the allowed values (`unknown_variant`).
    UnknownVariant,
    /// A required key is absent (`missing_field`).
    MissingField,
    /// A value of another type than the one wanted (`invalid_type`).
    InvalidType,
    /// A value of the right type that the type refuses (`invalid_value`).
    InvalidValue,
    /// A list of the wrong length (`invalid_length`).
    InvalidLength,
    /// A key given twice (`duplicate_field`).
    DuplicateField,
    /// A duration that cannot be read or is too long (a [`names::DURATION`] type's own error).
    Duration,
    /// Neither one value nor a list of them (a [`names::ONE_OR_MANY`] type's wrong type).
    OneOrMany,
    /// Any other error a type reports (`custom`).
    Custom,
}

/// The names a type passes to `deserialize_newtype_struct` so that this deserializer tells
/// its errors apart, serde's way for a format to know a type (as serde_json's `RawValue` and
/// toml's datetime do). Other deserializers read such a type as its inner value.
pub mod names {
    /// A duration (`model::Dur`): its own errors are [`super::DeErrorKind::Duration`].
    pub const DURATION: &str = "$runbook::Duration";
    /// One value or a list of them (`one_or_many::OneOrMany`): a value that is neither is
    /// [`super::DeErrorKind::OneOrMany`].
    pub const ONE_OR_MANY: &str = "$runbook::OneOrMany";
}

/// A deserialization error with the span of the node it is about, when known.
#[derive(Debug, Clone)]
pub struct DeError {
    pub kind: DeErrorKind,
    pub message: String,
    pub span: Option<ByteSpan>,
    /// For unknown keys and variants: the name that was written and the names that are allowed.
    pub unknown: Option<(String, Vec<&'static str>)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

// Each method sets its kind; the messages are serde's defaults except where noted.
impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(DeErrorKind::Custom, msg.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            unknown: Some((field.to_string(), expected.to_vec())),
            ..DeError::new(DeErrorKind::UnknownField, format!("unknown key `{field}`"))
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            unknown: Some((variant.to_string(), expected.to_vec())),
            ..DeError::new(
                DeErrorKind::UnknownVariant,
                format!(
                    "unknown value `{variant}`, expected one of {}",
                    list(expected)
                ),
            )
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(
            DeErrorKind::MissingField,
            format!("missing required key `{field}`"),
        )
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let got = match unexp {
            de::Unexpected::Map => "a mapping".to_string(),
            de::Unexpected::Seq => "a list".to_string(),
            de::Unexpected::Str(s) => format!("the string `{s}`"),
            de::Unexpected::Unit => "null".to_string(),
            other => other.to_string(),
        };
        DeError::new(
            DeErrorKind::InvalidType,
            format!("expected {exp}, found {got}"),
        )
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(
            DeErrorKind::InvalidValue,
            format!("invalid value: {unexp}, expected {exp}"),
        )
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        DeError::new(
            DeErrorKind::InvalidLength,
            format!("invalid length {len}, expected {exp}"),
        )
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::new(
            DeErrorKind::DuplicateField,
            format!("duplicate field `{field}`"),
        )
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl DeError {
    pub fn new(kind: DeErrorKind, message: impl Into<String>) -> DeError {
        DeError {
            kind,
            message: message.into(),
            span: None,
            unknown: None,
        }
    }

    fn at(mut self, span: &ByteSpan) -> Self {
        if self.span.is_none() {
            self.span = Some(span.clone());
        }
        self
    }
}

/// A serde deserializer reading from a [`Node`].
pub struct NodeDeserializer<'a> {
    pub node: &'a Node,
}

impl<'de, 'a> de::Deserializer<'de> for NodeDeserializer<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let span = &self.node.span;
        let r = match &self.node.kind {
            NodeKind::Scalar { value, plain } => match resolve_plain(value, *plain) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str => visitor.visit_str(value),
            },
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe { iter: items.iter() }),
            NodeKind::Map(entries) => visitor.visit_map(MapDe {
                iter: entries.iter(),
                value: None,
                map_span: span,
            }),
        };
        r.map_err(|e| e.at(span))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Any scalar reads as a string where a string is wanted: `bytes: 24` is a number but
        // `title: 2024 rotation` or `choices: [1, 2]` should not surprise the author.
        match &self.node.kind {
            NodeKind::Scalar { value, plain } if !(*plain && is_null(value)) => visitor
                .visit_str(value)
                .map_err(|e: DeError| e.at(&self.node.span)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = &self.node.span;
        match &self.node.kind {
            NodeKind::Scalar { value, .. } => visitor
                .visit_enum(value.as_str().into_deserializer())
                .map_err(|e: DeError| e.at(span)),
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                visitor
                    .visit_enum(EnumDe { key: k, value: v })
                    .map_err(|e| e.at(span))
            }
            _ => Err(DeError::new(
                DeErrorKind::InvalidType,
                format!(
                    "expected one of the allowed values, found {}",
                    self.node.type_name()
                ),
            )
            .at(span)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = &self.node.span;
        visitor.visit_newtype_struct(self).map_err(|mut e| {
            // Only an error about this node: one inside it (a list's item) keeps its kind.
            let here = e.span.as_ref().is_none_or(|s| s == span);
            e.kind = match (name, e.kind) {
                (names::DURATION, DeErrorKind::Custom) if here => DeErrorKind::Duration,
                (names::ONE_OR_MANY, DeErrorKind::InvalidType) if here => DeErrorKind::OneOrMany,
                (_, kind) => kind,
            };
            e.at(span)
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct SeqDe<'a> {
    iter: std::slice::Iter<'a, Node>,
}

impl<'de, 'a> SeqAccess<'de> for SeqDe<'a> {
    type Error = DeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            None => Ok(None),
            Some(node) => seed
                .deserialize(NodeDeserializer { node })
                .map(Some)
                .map_err(|e| e.at(&node.span)),
        }
    }
}

struct MapDe<'a> {
    iter: std::slice::Iter<'a, (Node, Node)>,
    value: Option<&'a Node>,
    map_span: &'a ByteSpan,
}

impl<'de, 'a> MapAccess<'de> for MapDe<'a> {
    type Error = DeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            None => Ok(None),
            Some((k, v)) => {
                self.value = Some(v);
                let key: Cow<'_, str> = Cow::Borrowed(k.as_str().unwrap_or_default());
                seed.deserialize(key.as_ref().into_deserializer())
                    .map(Some)
                    .map_err(|e: DeError| e.at(&k.span))
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value without key").at(self.map_span))?;
        seed.deserialize(NodeDeserializer { node })
            .map_err(|e| e.at(&node.span))
    }
}

struct EnumDe<'a> {
    key: &'a Node,
    value: &'a Node,
}

impl<'de, 'a> de::EnumAccess<'de> for EnumDe<'a> {
    type Error = DeError;
    type Variant = NodeDeserializer<'a>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let name = self.key.as_str().unwrap_or_default();
        let v = seed
            .deserialize(name.into_deserializer())
            .map_err(|e: DeError| e.at(&self.key.span))?;
        Ok((v, NodeDeserializer { node: self.value }))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for NodeDeserializer<'a> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        Err(DeError::new(DeErrorKind::InvalidType, "expected a plain value").at(&self.node.span))
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct S {
        #[expect(dead_code)]
        name: String,
        #[expect(dead_code)]
        bytes: u32,
    }

    #[test]
    fn unknown_key_has_key_span() {
        let src = "name: x\nbytes: 2\nbites: 3\n";
        let e = parse(src).unwrap().deserialize::<S>().unwrap_err();
        assert_eq!(&src[e.span.unwrap()], "bites");
        assert_eq!(e.unknown.unwrap().0, "bites");
    }

    #[test]
    fn wrong_type_has_value_span() {
        let src = "name: x\nbytes: many\n";
        let e = parse(src).unwrap().deserialize::<S>().unwrap_err();
        assert_eq!(&src[e.span.unwrap()], "many");
    }

    #[test]
    fn the_serde_method_decides_the_kind_not_the_message() {
        let kind = |src: &str| parse(src).unwrap().deserialize::<S>().unwrap_err().kind;
        assert_eq!(
            kind("name: x\nbytes: 2\nbites: 3\n"),
            DeErrorKind::UnknownField
        );
        assert_eq!(kind("name: x\n"), DeErrorKind::MissingField);
        assert_eq!(kind("name: x\nbytes: many\n"), DeErrorKind::InvalidType);
        assert_eq!(kind("name: x\nbytes: -1\n"), DeErrorKind::InvalidValue);
        // A type's own error worded like another kind's is still its own.
        #[derive(Debug)]
        struct Looks;
        impl<'de> Deserialize<'de> for Looks {
            fn deserialize<D: de::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
                Err(de::Error::custom(
                    "expected a list, missing required key `x`",
                ))
            }
        }
        let e = parse("a: 1\n").unwrap().deserialize::<Looks>().unwrap_err();
        assert_eq!(e.kind, DeErrorKind::Custom);
        // A duration's own error, and only its own (a wrong type stays a wrong type).
        let dur = |src: &str| {
            parse(src)
                .unwrap()
                .get("d")
                .unwrap()
                .deserialize::<crate::model::Dur>()
        };
        assert_eq!(dur("d: soon\n").unwrap_err().kind, DeErrorKind::Duration);
        assert_eq!(dur("d: 1y\n").unwrap_err().kind, DeErrorKind::Duration);
        assert_eq!(dur("d: [1s]\n").unwrap_err().kind, DeErrorKind::InvalidType);
        assert_eq!(dur("d: 90s\n").unwrap().0.as_secs(), 90);
    }
}
