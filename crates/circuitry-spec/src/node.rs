//! A spanned tree of TOML values: what the file (and each `--set` override or sweep value) said,
//! and where. Overrides and sweeps edit this tree before it is turned into typed values, so every
//! error can still point at the text that caused it.

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Sources};
use crate::span::{Origin, Span};

/// A value with the span of its text.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub(crate) enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// A key of a table, its span and its value.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Span,
    pub node: Node,
}

impl Value {
    /// `a string`, `an integer`, ...
    pub fn a_type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }

    /// The TOML name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }
}

impl Node {
    pub fn table(entries: Vec<Entry>, span: Span) -> Self {
        Node {
            value: Value::Table(entries),
            span,
        }
    }

    pub fn as_table(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The entry for `key`, if this is a table that has it.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_table()?.iter().find(|e| e.key == key)
    }

    /// The value at `key`, if this is a table that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.node)
    }

    /// The span of the value at a dotted path below this node (`"layers.1"` is the second element
    /// of `layers`); if the path does not exist, the span of its deepest existing ancestor.
    pub fn span_at(&self, path: &str) -> &Span {
        let mut node = self;
        if path.is_empty() {
            return &node.span;
        }
        for segment in path.split('.') {
            let next = match &node.value {
                Value::Table(entries) => entries.iter().find(|e| e.key == segment).map(|e| &e.node),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        &node.span
    }

    /// Sets the value at `path` (creating intermediate tables, whose key spans are `key_span`);
    /// an existing value is replaced in place, keeping its key's position in the table.
    /// Fails, naming the offending prefix, when an intermediate value is not a table.
    pub fn set_path(
        &mut self,
        path: &[String],
        value: Node,
        key_span: &Span,
    ) -> Result<(), String> {
        let Some((last, parents)) = path.split_last() else {
            return Err("empty key".to_string());
        };
        let mut node = self;
        for (depth, segment) in parents.iter().enumerate() {
            let Value::Table(entries) = &mut node.value else {
                return Err("the root is not a table".to_string());
            };
            let index = match entries.iter().position(|e| &e.key == segment) {
                Some(i) => i,
                None => {
                    entries.push(Entry {
                        key: segment.clone(),
                        key_span: key_span.clone(),
                        node: Node::table(Vec::new(), key_span.clone()),
                    });
                    entries.len() - 1
                }
            };
            node = &mut entries[index].node;
            if !matches!(node.value, Value::Table(_)) {
                return Err(format!(
                    "`{}` is {}, not a table",
                    display_path(&path[..=depth]),
                    node.value.a_type_name()
                ));
            }
        }
        let Value::Table(entries) = &mut node.value else {
            return Err("the root is not a table".to_string());
        };
        match entries.iter_mut().find(|e| &e.key == last) {
            Some(entry) => entry.node = value,
            None => entries.push(Entry {
                key: last.clone(),
                key_span: key_span.clone(),
                node: value,
            }),
        }
        Ok(())
    }

    /// Removes and returns the entry for `key` of a table.
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        let Value::Table(entries) = &mut self.value else {
            return None;
        };
        let i = entries.iter().position(|e| e.key == key)?;
        Some(entries.remove(i))
    }

    /// The value as JSON (datetimes become strings).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::String(s) | Value::Datetime(s) => serde_json::Value::String(s.clone()),
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Array(items) => items.iter().map(Node::to_json).collect(),
            Value::Table(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.node.to_json()))
                    .collect(),
            ),
        }
    }
}

/// `a.b."c d"`: a dotted key, quoting segments that are not bare TOML keys.
pub(crate) fn display_path<S: AsRef<str>>(segments: &[S]) -> String {
    segments
        .iter()
        .map(|s| quote_key(s.as_ref()))
        .collect::<Vec<_>>()
        .join(".")
}

/// A key as TOML would need it written.
pub(crate) fn quote_key(key: &str) -> String {
    if is_bare_key(key) {
        key.to_string()
    } else {
        serde_json::Value::String(key.to_string()).to_string()
    }
}

pub(crate) fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Joins a parent path and a key for messages.
pub(crate) fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        quote_key(key)
    } else {
        format!("{parent}.{}", quote_key(key))
    }
}

/// Parses a TOML document into a [`Node`] tree (tables in file order).
pub(crate) fn parse_document(sources: &Sources) -> Result<Node, Box<Diagnostic>> {
    let text = &sources.file_text;
    let table = DeTable::parse(text).map_err(|e| toml_error(sources, &e, Origin::File, 0))?;
    let span = table.span();
    let table = table.into_inner();
    convert_table(table, Span::file(span), Origin::File, 0)
        .map_err(|(span, message)| Box::new(sources.error(&span, message)))
}

/// Parses a single TOML value taken from `origin`'s text at `offset`.
pub(crate) fn parse_value(
    sources: &Sources,
    text: &str,
    origin: Origin,
    offset: usize,
) -> Result<Node, Box<Diagnostic>> {
    let value = DeValue::parse(text).map_err(|e| toml_error(sources, &e, origin, offset))?;
    convert(value, origin, offset)
        .map_err(|(span, message)| Box::new(sources.error(&span, message)))
}

fn toml_error(
    sources: &Sources,
    e: &toml::de::Error,
    origin: Origin,
    offset: usize,
) -> Box<Diagnostic> {
    let message = e.message().trim().replace('\n', "; ");
    let message = format!("invalid TOML: {message}");
    Box::new(match e.span() {
        Some(range) => sources.error(&Span::shifted(range, origin, offset), message),
        None => Diagnostic::new(message),
    })
}

type ConvertError = (Span, String);

fn convert(
    value: Spanned<DeValue<'_>>,
    origin: Origin,
    offset: usize,
) -> Result<Node, ConvertError> {
    let span = Span::shifted(value.span(), origin, offset);
    let value = match value.into_inner() {
        DeValue::String(s) => Value::String(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(v) => Value::Integer(v),
            Err(_) => {
                return Err((
                    span,
                    "integer out of range (TOML integers are 64-bit)".into(),
                ));
            }
        },
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(v) if v.is_finite() => Value::Float(v),
            _ => {
                return Err((
                    span,
                    "non-finite numbers (inf, nan) are not allowed in experiment files".into(),
                ));
            }
        },
        DeValue::Boolean(b) => Value::Boolean(b),
        DeValue::Datetime(d) => Value::Datetime(d.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .cloned()
                .map(|item| convert(item, origin, offset))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => return convert_table(t, span, origin, offset),
    };
    Ok(Node { value, span })
}

fn convert_table(
    table: DeTable<'_>,
    span: Span,
    origin: Origin,
    offset: usize,
) -> Result<Node, ConvertError> {
    let mut entries = Vec::new();
    for (key, value) in table {
        let key_span = Span::shifted(key.span(), origin, offset);
        entries.push(Entry {
            key: key.into_inner().into_owned(),
            key_span,
            node: convert(value, origin, offset)?,
        });
    }
    // The parser's map is ordered by key; file order reads better in every listing and error.
    entries.sort_by_key(|e| e.key_span.start);
    Ok(Node::table(entries, span))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(text: &str) -> Sources {
        Sources {
            file_path: "t.toml".into(),
            file_text: text.into(),
            overrides: vec![],
        }
    }

    #[test]
    fn tables_keep_file_order_and_spans() {
        let s = sources("b = 1\na = 0x10\n[z]\nq = 1.5\n");
        let root = parse_document(&s).unwrap();
        let keys: Vec<_> = root
            .as_table()
            .unwrap()
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["b", "a", "z"]);
        assert!(matches!(root.get("a").unwrap().value, Value::Integer(16)));
        let span = root.span_at("z.q");
        assert_eq!(&s.file_text[span.start..span.end], "1.5");
        // Missing paths fall back to the deepest existing ancestor.
        assert_eq!(root.span_at("z.nope.deeper"), &root.get("z").unwrap().span);
    }

    #[test]
    fn rejects_non_finite_and_huge_numbers() {
        assert!(parse_document(&sources("a = nan")).is_err());
        assert!(parse_document(&sources("a = -inf")).is_err());
        assert!(parse_document(&sources("a = 0xffffffffffffffff")).is_err());
    }

    #[test]
    fn set_path_creates_and_replaces() {
        let s = sources("[a]\nb = 1\n");
        let mut root = parse_document(&s).unwrap();
        let value = Node {
            value: Value::Integer(5),
            span: Span::file(0..1),
        };
        let path = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
        root.set_path(&path("a.b"), value.clone(), &Span::file(0..1))
            .unwrap();
        root.set_path(&path("x.y.z"), value.clone(), &Span::file(0..1))
            .unwrap();
        assert!(matches!(
            root.get("a").unwrap().get("b").unwrap().value,
            Value::Integer(5)
        ));
        assert!(root.get("x").unwrap().get("y").unwrap().get("z").is_some());
        let err = root
            .set_path(&path("a.b.c"), value, &Span::file(0..1))
            .unwrap_err();
        assert!(err.contains("`a.b` is an integer"), "{err}");
    }
}
