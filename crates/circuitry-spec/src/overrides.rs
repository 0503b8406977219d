//! `--set KEY=VALUE` overrides: `KEY` is a dotted TOML key (`analyses.heads.layers`,
//! `sweep."datasets.rep.length"`), `VALUE` a TOML value (`[0, 1]`, `true`, `"text"`, `{ id = 5 }`).
//! A value that is not valid TOML and does not start like an array, table or quoted string is
//! taken as a bare string, so `--set models.toy.path=models/x` works. Overrides are applied to the
//! parsed file before anything is validated; errors point into the override's text.

use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Sources};
use crate::node::{Node, Value, parse_value};
use crate::span::{Origin, Span};

/// One parsed override.
#[derive(Debug)]
pub(crate) struct Override {
    pub path: Vec<String>,
    pub key_span: Span,
    pub value: Node,
}

/// Parses the `index`-th override, whose text is `sources.overrides[index]`.
pub(crate) fn parse(sources: &Sources, index: usize) -> Result<Override, Box<Diagnostic>> {
    let origin = Origin::Override(index);
    let text = sources
        .overrides
        .get(index)
        .map(String::as_str)
        .unwrap_or_default();
    let whole = Span {
        origin,
        start: 0,
        end: text.len(),
    };
    let Some(eq) = find_equals(text) else {
        return Err(Box::new(
            sources
                .error(
                    &whole,
                    format!("invalid override `{text}`: expected KEY=VALUE"),
                )
                .with_hint(
                    "e.g. --set analyses.heads.layers=[0,1] or --set models.toy.path=models/x",
                ),
        ));
    };
    let (lhs, rhs) = (&text[..eq], &text[eq + 1..]);
    let key_start = lhs.len() - lhs.trim_start().len();
    let key_span = Span {
        origin,
        start: key_start,
        end: key_start + lhs.trim().len(),
    };
    let path = parse_key(lhs.trim()).ok_or_else(|| {
        Box::new(sources
            .error(&key_span, format!("invalid key `{}` in override", lhs.trim()))
            .with_hint("write a dotted key like analyses.heads.layers; quote segments with dots: sweep.\"datasets.rep.length\""))
    })?;
    let value_start = eq + 1 + (rhs.len() - rhs.trim_start().len());
    let value_text = rhs.trim();
    let value_span = Span {
        origin,
        start: value_start,
        end: value_start + value_text.len(),
    };
    if value_text.is_empty() {
        return Err(Box::new(
            sources.error(&value_span, format!("override `{text}` has no value")),
        ));
    }
    let looks_structured = value_text.starts_with(['[', '{', '"', '\'']);
    let value = match parse_value(sources, value_text, origin, value_start) {
        Ok(node) if !matches!(node.value, Value::Datetime(_)) => node,
        Err(e) if looks_structured => return Err(e),
        _ => Node {
            value: Value::String(value_text.to_string()),
            span: value_span,
        },
    };
    Ok(Override {
        path,
        key_span,
        value,
    })
}

/// The first `=` outside quotes.
fn find_equals(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '=' => return Some(i),
            None => {}
        }
    }
    None
}

/// Splits a TOML dotted key into its segments, using the TOML parser for quoting rules.
fn parse_key(key: &str) -> Option<Vec<String>> {
    if key.is_empty() {
        return None;
    }
    let doc = format!("{key} = 0");
    let table = DeTable::parse(&doc).ok()?.into_inner();
    let mut path = Vec::new();
    let mut current = table;
    loop {
        if current.len() != 1 {
            return None;
        }
        let (k, v) = current.into_iter().next()?;
        path.push(k.into_inner().into_owned());
        match v.into_inner() {
            DeValue::Table(t) => current = t,
            DeValue::Integer(_) => return Some(path),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(text: &str) -> Result<Override, Box<Diagnostic>> {
        let sources = Sources {
            overrides: vec![text.to_string()],
            ..Sources::default()
        };
        parse(&sources, 0)
    }

    #[test]
    fn keys_and_values() {
        let o = parse_one("analyses.x.layers=[0, 1]").unwrap();
        assert_eq!(o.path, ["analyses", "x", "layers"]);
        assert!(matches!(o.value.value, Value::Array(ref a) if a.len() == 2));
        assert_eq!((o.value.span.start, o.value.span.end), (18, 24));

        let o = parse_one("models.toy.path=models/x").unwrap();
        assert!(matches!(o.value.value, Value::String(ref s) if s == "models/x"));

        let o = parse_one("sweep.\"datasets.rep.length\" = [1,2]").unwrap();
        assert_eq!(o.path, ["sweep", "datasets.rep.length"]);

        let o = parse_one("seed=3").unwrap();
        assert!(matches!(o.value.value, Value::Integer(3)));
        let o = parse_one("name=2024-01-01").unwrap();
        assert!(matches!(o.value.value, Value::String(ref s) if s == "2024-01-01"));
        let o = parse_one("description=a=b").unwrap();
        assert!(matches!(o.value.value, Value::String(ref s) if s == "a=b"));
    }

    #[test]
    fn malformed() {
        for (arg, expected) in [
            ("no-equals", "KEY=VALUE"),
            ("=5", "invalid key"),
            ("a..b=5", "invalid key"),
            ("a=", "no value"),
        ] {
            let message = parse_one(arg).unwrap_err().message;
            assert!(message.contains(expected), "{arg:?}: {message}");
        }
        let e = parse_one("a=[1, 2").unwrap_err();
        assert!(e.message.contains("invalid TOML"), "{}", e.message);
        assert_eq!(e.location.unwrap().source.to_string(), "--set a=[1, 2");
    }
}
