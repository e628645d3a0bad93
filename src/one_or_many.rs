//! `OneOrMany<T>`: a field that takes one value or a list of them (`via: app` or
//! `via: [app, app2]`), with one error for a value that is neither and one JSON Schema.
//!
//! It keeps which of the two was written: for some fields one name means something else than
//! a list of one (a host group's name against a list of hosts).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Unexpected, Visitor};

use crate::load::yaml::names;

/// The help of the error for a value that is neither one value nor a list of them.
pub const HELP: &str = "write one value, or several as a list: `[a, b]`";

/// One value or a list of them, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMany<T> {
    One(T),
    List(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values, one or many.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::List(l) => l,
        }
    }

    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.as_slice().to_vec()
    }
}

/// What one value is, for "expected an integer or a list of integers": the JSON Schema type of
/// `T`, the same words for every field of that type.
fn noun<T: JsonSchema>() -> (&'static str, &'static str) {
    let schema = T::json_schema(&mut SchemaGenerator::default());
    match schema.get("type").and_then(|t| t.as_str()) {
        Some("string") => ("a string", "strings"),
        Some("integer") => ("an integer", "integers"),
        Some("number") => ("a number", "numbers"),
        Some("boolean") => ("a boolean", "booleans"),
        Some("object") => ("a mapping", "mappings"),
        _ => ("a value", "values"),
    }
}

/// The JSON Schema type of a value as written, to tell "not this type" from "this type, but
/// refused by `T`" (whose own error says more).
fn json_type(u: &Unexpected<'_>) -> &'static str {
    match u {
        Unexpected::Str(_) => "string",
        Unexpected::Signed(_) | Unexpected::Unsigned(_) => "integer",
        Unexpected::Float(_) => "number",
        Unexpected::Bool(_) => "boolean",
        Unexpected::Map => "object",
        _ => "null",
    }
}

struct OneOrManyVisitor<T>(PhantomData<T>);

impl<T: JsonSchema> OneOrManyVisitor<T> {
    /// `T` read from one value `d`; when `T` refuses it and it is not even of `T`'s type, the
    /// error names both forms the field takes.
    fn one<'de, E, D>(&self, d: D, unexp: Unexpected<'_>) -> Result<OneOrMany<T>, E>
    where
        T: Deserialize<'de>,
        E: de::Error,
        D: Deserializer<'de, Error = E>,
    {
        T::deserialize(d).map(OneOrMany::One).map_err(|e| {
            let schema = T::json_schema(&mut SchemaGenerator::default());
            let want = schema.get("type").and_then(|t| t.as_str());
            let of_type = json_type(&unexp);
            if want.is_some_and(|w| w == of_type || (w == "number" && of_type == "integer")) {
                e
            } else {
                E::invalid_type(unexp, self)
            }
        })
    }
}

impl<'de, T: Deserialize<'de> + JsonSchema> Visitor<'de> for OneOrManyVisitor<T> {
    type Value = OneOrMany<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (one, many) = noun::<T>();
        write!(f, "{one} or a list of {many}")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = Vec::new();
        while let Some(v) = seq.next_element()? {
            list.push(v);
        }
        Ok(OneOrMany::List(list))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.one(v.into_deserializer(), Unexpected::Str(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.one(v.into_deserializer(), Unexpected::Signed(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.one(v.into_deserializer(), Unexpected::Unsigned(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.one(v.into_deserializer(), Unexpected::Float(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.one(v.into_deserializer(), Unexpected::Bool(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.one(().into_deserializer(), Unexpected::Unit)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.one(de::value::MapAccessDeserializer::new(map), Unexpected::Map)
    }
}

impl<'de, T: Deserialize<'de> + JsonSchema> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Named, so that the loader gives a value that is neither its own help.
        d.deserialize_newtype_struct(names::ONE_OR_MANY, OneOrManyVisitor(PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn schema_id() -> Cow<'static, str> {
        format!("{}::OneOrMany<{}>", module_path!(), T::schema_id()).into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let one = g.subschema_for::<T>();
        // An empty list is never what a field of one or many means (`check` refuses it).
        json_schema!({
            "anyOf": [one, { "type": "array", "items": one, "minItems": 1 }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::{DeErrorKind, parse};

    fn read<T: de::DeserializeOwned>(src: &str) -> Result<T, crate::load::yaml::DeError> {
        parse(src).unwrap().get("v").unwrap().deserialize::<T>()
    }

    #[test]
    fn one_and_a_list_are_told_apart() {
        assert_eq!(
            read::<OneOrMany<String>>("v: app\n").unwrap(),
            OneOrMany::One("app".into())
        );
        assert_eq!(
            read::<OneOrMany<String>>("v: [app]\n").unwrap(),
            OneOrMany::List(vec!["app".into()])
        );
        assert_eq!(
            read::<OneOrMany<u16>>("v: [200, 204]\n").unwrap().to_vec(),
            [200, 204]
        );
        assert_eq!(read::<OneOrMany<i64>>("v: 3\n").unwrap().as_slice(), [3]);
    }

    #[test]
    fn neither_one_nor_a_list_says_both_with_help() {
        let src = "v: {a: 1}\n";
        let e = read::<OneOrMany<String>>(src).unwrap_err();
        assert_eq!(e.kind, DeErrorKind::OneOrMany);
        assert_eq!(
            e.message,
            "expected a string or a list of strings, found a mapping"
        );
        assert_eq!(&src[e.span.unwrap()], "{a: 1}");
        let e = read::<OneOrMany<u16>>("v: ok\n").unwrap_err();
        assert_eq!(e.kind, DeErrorKind::OneOrMany);
        assert_eq!(
            e.message,
            "expected an integer or a list of integers, found the string `ok`"
        );
    }

    #[test]
    fn a_wrong_item_of_a_list_or_a_refused_value_keeps_its_own_error() {
        let src = "v: [200, ok]\n";
        let e = read::<OneOrMany<u16>>(src).unwrap_err();
        assert_eq!(e.kind, DeErrorKind::InvalidType);
        assert_eq!(&src[e.span.unwrap()], "ok");
        // The right type, out of `u16`'s range: `u16` says so.
        let e = read::<OneOrMany<u16>>("v: 70000\n").unwrap_err();
        assert_eq!(e.kind, DeErrorKind::InvalidValue, "{}", e.message);
    }

    #[test]
    fn the_schema_is_one_or_a_non_empty_list() {
        let mut g = SchemaGenerator::default();
        let s = OneOrMany::<String>::json_schema(&mut g);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({
                "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" }, "minItems": 1 }]
            })
        );
    }
}
