//! A serde `Deserializer` over the spanned [`Node`] tree. Every error it produces carries the span
//! of the innermost value (or key) involved and the dotted path to it, and unknown keys/variants
//! keep the list of valid names so that a did-you-mean can be offered.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Error as _, IntoDeserializer, Unexpected, Visitor,
};

use crate::diagnostic::{Diagnostic, Sources, did_you_mean, list};
use crate::node::{Entry, Node, Value, join_path};
use crate::span::Span;

/// A deserialization error with the span and path of the value it is about.
#[derive(Debug)]
pub(crate) struct DeError {
    pub kind: DeErrorKind,
    pub span: Option<Span>,
    /// Dotted path of the value (for unknown keys: of the table that has the key).
    pub path: Option<String>,
}

#[derive(Debug)]
pub(crate) enum DeErrorKind {
    Message(String),
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
}

impl DeError {
    fn at(mut self, span: &Span, path: &str) -> Self {
        if self.span.is_none() {
            self.span = Some(span.clone());
            self.path = Some(path.to_string());
        }
        self
    }

    /// Turns the error into a diagnostic; `extra_keys` are further valid keys of the table (keys
    /// that the caller handled itself) offered in did-you-mean suggestions for unknown keys.
    pub fn into_diagnostic(self, sources: &Sources, extra_keys: &[&str]) -> Diagnostic {
        let path = self.path.unwrap_or_default();
        let within = if path.is_empty() {
            String::new()
        } else {
            format!(" in `{path}`")
        };
        let (message, hint) = match self.kind {
            DeErrorKind::Message(m) => {
                if path.is_empty() {
                    (m, None)
                } else {
                    (format!("`{path}`: {m}"), None)
                }
            }
            DeErrorKind::UnknownField { field, expected } => {
                let mut valid: Vec<&str> = expected.to_vec();
                valid.extend(extra_keys.iter().copied());
                let hint = match did_you_mean(&field, &valid) {
                    Some(s) => format!("did you mean `{s}`? valid keys: {}", list(&valid)),
                    None => format!("valid keys: {}", list(&valid)),
                };
                (format!("unknown key `{field}`{within}"), Some(hint))
            }
            DeErrorKind::UnknownVariant { variant, expected } => {
                let hint = match did_you_mean(&variant, expected) {
                    Some(s) => format!("did you mean `{s}`? expected one of: {}", list(expected)),
                    None => format!("expected one of: {}", list(expected)),
                };
                let message = if path.is_empty() {
                    format!("unknown value `{variant}`")
                } else {
                    format!("unknown value `{variant}` for `{path}`")
                };
                (message, Some(hint))
            }
            DeErrorKind::MissingField(field) => {
                (format!("missing required key `{field}`{within}"), None)
            }
        };
        let mut d = match &self.span {
            Some(span) => sources.error(span, message),
            None => Diagnostic::new(message),
        };
        d.hint = hint;
        d
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DeErrorKind::Message(m) => f.write_str(m),
            DeErrorKind::UnknownField { field, .. } => write!(f, "unknown key `{field}`"),
            DeErrorKind::UnknownVariant { variant, .. } => write!(f, "unknown value `{variant}`"),
            DeErrorKind::MissingField(field) => write!(f, "missing required key `{field}`"),
        }
    }
}

impl std::error::Error for DeError {}

/// Readable names for what serde's primitive visitors expect.
fn expected_name(exp: &str) -> String {
    match exp {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "a borrowed string" => "a string".into(),
        other if other.starts_with("struct ") || other.starts_with("map") => "a table".into(),
        other if other.starts_with("a sequence") => "an array".into(),
        other => other.into(),
    }
}

fn unexpected_name(unexp: &Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Str(s) => format!("string {}", serde_json::Value::String(s.to_string())),
        Unexpected::Signed(i) => format!("integer `{i}`"),
        Unexpected::Unsigned(i) => format!("integer `{i}`"),
        Unexpected::Float(f) => format!("float `{f}`"),
        Unexpected::Bool(b) => format!("boolean `{b}`"),
        Unexpected::Seq => "an array".into(),
        Unexpected::Map => "a table".into(),
        other => other.to_string(),
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            kind: DeErrorKind::Message(msg.to_string()),
            span: None,
            path: None,
        }
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "expected {}, found {}",
            expected_name(&exp.to_string()),
            unexpected_name(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "expected {}, found {}",
            expected_name(&exp.to_string()),
            unexpected_name(&unexp)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            kind: DeErrorKind::UnknownField {
                field: field.to_string(),
                expected,
            },
            span: None,
            path: None,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            kind: DeErrorKind::UnknownVariant {
                variant: variant.to_string(),
                expected,
            },
            span: None,
            path: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            kind: DeErrorKind::MissingField(field),
            span: None,
            path: None,
        }
    }
}

/// Deserializes `T` from `node`; `path` names the node in messages.
pub(crate) fn from_node<T: DeserializeOwned>(node: &Node, path: &str) -> Result<T, DeError> {
    T::deserialize(NodeDeserializer {
        node,
        path: path.to_string(),
    })
}

/// Deserializes `T` from a table made of `entries` (a subset of some table's keys).
pub(crate) fn from_entries<T: DeserializeOwned>(
    entries: Vec<Entry>,
    span: &Span,
    path: &str,
) -> Result<T, DeError> {
    from_node(&Node::table(entries, span.clone()), path)
}

pub(crate) struct NodeDeserializer<'a> {
    node: &'a Node,
    path: String,
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.node;
        let result = match &node.value {
            Value::String(s) => visitor.visit_str(s),
            Value::Integer(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Datetime(_) => Err(DeError::custom(format_args!(
                "expected {}, found a datetime (quote it to make it a string)",
                expected_name(&ExpectedOf(&visitor).to_string())
            ))),
            Value::Array(items) => {
                let mut remaining = items.len();
                let seq = SeqAccess {
                    items: items.iter().enumerate(),
                    path: &self.path,
                    remaining: &mut remaining,
                };
                let value = visitor.visit_seq(seq);
                match value {
                    Ok(_) if remaining > 0 => Err(DeError::custom(format_args!(
                        "expected an array of {} element(s), found {}",
                        items.len() - remaining,
                        items.len()
                    ))),
                    other => other,
                }
            }
            Value::Table(entries) => visitor.visit_map(MapAccess {
                entries: entries.iter(),
                current: None,
                path: &self.path,
            }),
        };
        result.map_err(|e| e.at(&node.span, &self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (span, path) = (self.node.span.clone(), self.path.clone());
        visitor.visit_some(self).map_err(|e| e.at(&span, &path))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (span, path) = (self.node.span.clone(), self.path.clone());
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.at(&span, &path))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(DeError::custom(format_args!(
                "expected a string, found {}",
                other.a_type_name()
            ))),
        };
        result.map_err(|e| e.at(&self.node.span, &self.path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// Lets `Display` show what a visitor expects.
struct ExpectedOf<'a, V>(&'a V);

impl<'de, V: Visitor<'de>> fmt::Display for ExpectedOf<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

struct SeqAccess<'a, I> {
    items: I,
    path: &'a str,
    remaining: &'a mut usize,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'de> for SeqAccess<'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, node)) = self.items.next() else {
            return Ok(None);
        };
        *self.remaining -= 1;
        let path = format!("{}.{i}", self.path);
        seed.deserialize(NodeDeserializer { node, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(*self.remaining)
    }
}

struct MapAccess<'a, I> {
    entries: I,
    current: Option<&'a Entry>,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = &'a Entry>> de::MapAccess<'de> for MapAccess<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        seed.deserialize(KeyDeserializer(&entry.key))
            .map(Some)
            .map_err(|e| e.at(&entry.key_span, self.path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.current.take() else {
            return Err(DeError::custom("value requested before key"));
        };
        seed.deserialize(NodeDeserializer {
            node: &entry.node,
            path: join_path(self.path, &entry.key),
        })
    }
}

struct KeyDeserializer<'a>(&'a str);

impl<'de> de::Deserializer<'de> for KeyDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse_document;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        length: u32,
        #[serde(default)]
        side: Option<Side>,
        pair: Option<[u32; 2]>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Side {
        Left,
        Right,
    }

    fn parse(text: &str) -> Result<Inner, Box<Diagnostic>> {
        let sources = Sources {
            file_path: "t.toml".into(),
            file_text: text.into(),
            overrides: vec![],
        };
        let root = parse_document(&sources)?;
        from_node::<Inner>(root.get("x").unwrap(), "x")
            .map_err(|e| Box::new(e.into_diagnostic(&sources, &[])))
    }

    /// The error `text` fails with, whose message must contain `expected`.
    fn error_containing(text: &str, expected: &str) -> Box<Diagnostic> {
        let d = parse(text).unwrap_err();
        assert!(d.message.contains(expected), "{text:?}: {}", d.message);
        d
    }

    #[test]
    fn errors_point_at_the_value() {
        let d = error_containing("[x]\nlength = \"a\"\n", "expected a non-negative integer");
        assert_eq!(d.line_column(), Some((2, 10)));
        error_containing("[x]\nlength = -1\n", "`x.length`");
    }

    #[test]
    fn unknown_keys_suggest() {
        let d = parse("[x]\nlenght = 1\n").unwrap_err();
        assert_eq!(d.line_column(), Some((2, 1)));
        assert_eq!(d.message, "unknown key `lenght` in `x`");
        assert!(d.hint.unwrap().contains("did you mean `length`?"));
    }

    #[test]
    fn unknown_variants_suggest() {
        let d = parse("[x]\nlength = 1\nside = \"lft\"\n").unwrap_err();
        assert_eq!(d.line_column(), Some((3, 8)));
        assert!(d.hint.unwrap().contains("did you mean `left`?"));
    }

    #[test]
    fn missing_keys_point_at_the_table() {
        let d = parse("a = 1\n[x]\n").unwrap_err();
        assert_eq!(d.line_column(), Some((2, 1)));
        assert_eq!(d.message, "missing required key `length` in `x`");
    }

    #[test]
    fn arrays_are_length_checked() {
        error_containing(
            "[x]\nlength = 1\npair = [1, 2, 3]\n",
            "expected an array of 2",
        );
        error_containing("[x]\nlength = 1\npair = [1]\n", "array");
        assert_eq!(
            parse("[x]\nlength = 1\npair = [1, 2]\n").unwrap().pair,
            Some([1, 2])
        );
    }

    #[test]
    fn datetimes_are_rejected() {
        error_containing("[x]\nlength = 1979-05-27\n", "datetime");
    }
}
