//! `[sweep]`: a grid over any dotted keys of the experiment. Each combination of values is one
//! run (a [`crate::Variant`]); sweep values become table columns.
//!
//! ```toml
//! [sweep]
//! "datasets.rep.length" = [10, 20, 40]                             # column `length`
//! "analyses.heads.batch_size" = { values = [8, 16], column = "bs" } # explicit column name
//! ```
//!
//! Axes are taken in file order and the grid is enumerated like nested loops: the first axis
//! varies slowest, the last fastest. Unquoted dotted keys (`datasets.rep.length = [...]`) work too.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::diagnostic::{did_you_mean, list};
use crate::node::{Node, Value, display_path, is_bare_key};
use crate::span::Span;
use crate::validate::Ctx;

/// The most combinations a sweep may have.
pub const MAX_VARIANTS: usize = 10_000;

/// Column names every table may already have; sweep columns must not reuse them.
pub const RESERVED_COLUMNS: &[&str] = &[
    "model", "dataset", "prompt", "layer", "head", "position", "token",
];

/// The grid of an experiment's `[sweep]` section (empty when there is none).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sweep {
    /// The axes, in file order.
    pub axes: Vec<SweepAxis>,
}

/// One swept key and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepAxis {
    /// The dotted key it sets, e.g. `datasets.rep.length`.
    pub key: String,
    /// The table column its values go into: the key's last segment unless `column` is given.
    pub column: String,
    /// The values, in file order (JSON; all of one type, integers and floats mixed become floats).
    pub values: Vec<serde_json::Value>,
}

impl Sweep {
    /// Whether there is no sweep.
    pub fn is_empty(&self) -> bool {
        self.axes.is_empty()
    }

    /// The number of runs: the product of the axes' lengths (1 without a sweep).
    pub fn combinations(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }
}

impl Serialize for Sweep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Axis<'a> {
            values: &'a [serde_json::Value],
            column: &'a str,
        }
        let mut m = s.serialize_map(Some(self.axes.len()))?;
        for a in &self.axes {
            m.serialize_entry(
                &a.key,
                &Axis {
                    values: &a.values,
                    column: &a.column,
                },
            )?;
        }
        m.end()
    }
}

impl JsonSchema for Sweep {
    fn schema_name() -> Cow<'static, str> {
        "Sweep".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let values = json_schema!({
            "type": "array",
            "minItems": 1,
            "description": "The values the key takes, one run each."
        });
        json_schema!({
            "description": "A grid over dotted keys of this file: \"datasets.rep.length\" = [10, 20, 40]. Every combination is one run; the first key varies slowest. Each key's values become a table column named after its last segment, or after `column` in the form { values = [...], column = \"name\" }.",
            "type": "object",
            "additionalProperties": {
                "anyOf": [
                    values.clone(),
                    {
                        "type": "object",
                        "properties": {
                            "values": values,
                            "column": { "type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "The column name for these values (default: the key's last segment)." }
                        },
                        "required": ["values"],
                        "additionalProperties": false
                    },
                    { "$ref": "#/definitions/Sweep" }
                ]
            }
        })
    }
}

/// A parsed axis with the nodes to substitute into the tree.
#[derive(Clone, Debug)]
pub(crate) struct AxisNodes {
    pub path: Vec<String>,
    /// The sweep key as written: keys the sweep creates in the tree point here.
    pub key_span: Span,
    /// Where the column name comes from (the key, or an explicit `column`).
    pub column_span: Span,
    pub values: Vec<Node>,
    pub axis: SweepAxis,
}

/// Reads the `[sweep]` table; problems go to `ctx`.
pub(crate) fn parse(node: &Node, ctx: &mut Ctx<'_>) -> Vec<AxisNodes> {
    let mut axes = Vec::new();
    let hint = "write [sweep] followed by lines like \"datasets.rep.length\" = [10, 20]";
    if ctx.section_entries(node, "sweep", hint.into()).is_none() {
        return axes;
    }
    collect(node, &[], ctx, &mut axes);
    check_axes(&axes, ctx);
    axes
}

fn collect(node: &Node, prefix: &[String], ctx: &mut Ctx<'_>, axes: &mut Vec<AxisNodes>) {
    for entry in node.as_table().unwrap_or_default() {
        let mut path = prefix.to_vec();
        path.extend(entry.key.split('.').map(str::to_string));
        let shown = display_path(&path);
        let (values_node, column) = match &entry.node.value {
            Value::Array(_) => (&entry.node, None),
            Value::Table(t) if t.iter().any(|e| e.key == "values") => {
                let mut column = None;
                let mut ok = true;
                for e in t {
                    match e.key.as_str() {
                        "values" => {}
                        "column" => match e.node.as_str() {
                            Some(c) => column = Some((c.to_string(), e.node.span.clone())),
                            None => {
                                ctx.error(
                                    &e.node.span,
                                    format!(
                                        "`column` must be a string, found {}",
                                        e.node.value.a_type_name()
                                    ),
                                );
                                ok = false;
                            }
                        },
                        other => {
                            let d = ctx.error(
                                &e.key_span,
                                format!("unknown key `{other}` in the sweep of `{shown}`"),
                            );
                            d.hint = Some(match did_you_mean(other, ["values", "column"]) {
                                Some(s) => {
                                    format!("did you mean `{s}`? valid keys: values, column")
                                }
                                None => "valid keys: values, column".into(),
                            });
                            ok = false;
                        }
                    }
                }
                if !ok {
                    continue;
                }
                (entry.node.get("values").unwrap_or(&entry.node), column)
            }
            Value::Table(_) => {
                collect(&entry.node, &path, ctx, axes);
                continue;
            }
            other => {
                ctx.error(
                    &entry.node.span,
                    format!(
                        "the sweep of `{shown}` must be an array of values, found {}",
                        other.a_type_name()
                    ),
                )
                .hint = Some(format!(
                    "write \"{}\" = [value1, value2] (one run per value)",
                    path.join(".")
                ));
                continue;
            }
        };
        let Value::Array(items) = &values_node.value else {
            ctx.error(
                &values_node.span,
                format!(
                    "`values` of `{shown}` must be an array, found {}",
                    values_node.value.a_type_name()
                ),
            );
            continue;
        };
        if path.iter().any(String::is_empty) {
            ctx.error(
                &entry.key_span,
                format!("invalid sweep key `{}`: empty segment", entry.key),
            );
            continue;
        }
        match path[0].as_str() {
            "sweep" => {
                ctx.error(&entry.key_span, "the sweep cannot sweep itself");
                continue;
            }
            "name" => {
                ctx.error(&entry.key_span, "`name` cannot be swept: all runs of a sweep write to the same output directory")
                    .hint = Some("the sweep values become table columns that tell the runs apart".into());
                continue;
            }
            _ => {}
        }
        if items.is_empty() {
            ctx.error(
                &values_node.span,
                format!("the sweep of `{shown}` has no values"),
            );
            continue;
        }
        let Some(values) = column_values(items, &shown, ctx) else {
            continue;
        };
        let (column, column_span) = match column {
            Some((c, span)) => (c, span),
            None => (
                path.last().cloned().unwrap_or_default(),
                entry.key_span.clone(),
            ),
        };
        if !is_bare_key(&column) {
            ctx.error(
                &column_span,
                format!("invalid column name `{column}`: use letters, digits, `_` and `-`"),
            );
            continue;
        }
        axes.push(AxisNodes {
            path: path.clone(),
            key_span: entry.key_span.clone(),
            column_span,
            values: items.clone(),
            axis: SweepAxis {
                key: path.join("."),
                column,
                values,
            },
        });
    }
}

/// The values of one axis as JSON, checking they share one type and are distinct.
fn column_values(items: &[Node], shown: &str, ctx: &mut Ctx<'_>) -> Option<Vec<serde_json::Value>> {
    let numeric = |v: &Value| matches!(v, Value::Integer(_) | Value::Float(_));
    let first = &items[0].value;
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        if let Value::Datetime(_) = item.value {
            ctx.error(&item.span, "datetimes are not used in experiment files");
            ok = false;
            continue;
        }
        let same = std::mem::discriminant(&item.value) == std::mem::discriminant(first)
            || (numeric(&item.value) && numeric(first));
        if !same {
            ctx.error(
                &item.span,
                format!(
                    "the sweep of `{shown}` mixes {} and {} values",
                    first.type_name(),
                    item.value.type_name()
                ),
            )
            .hint = Some("a sweep's values form one table column and must share one type".into());
            ok = false;
            continue;
        }
        if items[..i]
            .iter()
            .any(|prev| prev.to_json() == item.to_json())
        {
            ctx.error(
                &item.span,
                format!("the sweep of `{shown}` lists this value twice"),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let any_float = items.iter().any(|n| matches!(n.value, Value::Float(_)));
    Some(
        items
            .iter()
            .map(|n| match (&n.value, any_float) {
                (Value::Integer(i), true) => serde_json::Number::from_f64(*i as f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                _ => n.to_json(),
            })
            .collect(),
    )
}

fn check_axes(axes: &[AxisNodes], ctx: &mut Ctx<'_>) {
    for (i, a) in axes.iter().enumerate() {
        let column = &a.axis.column;
        if RESERVED_COLUMNS.contains(&column.as_str()) {
            ctx.error(&a.column_span, format!("sweep column `{column}` (from `{}`) clashes with the `{column}` column every table may have", a.axis.key))
                .hint = Some(format!(
                    "name the column: \"{}\" = {{ values = [...], column = \"{column}_name\" }} (reserved: {})",
                    a.axis.key,
                    list(RESERVED_COLUMNS)
                ));
        }
        for b in &axes[..i] {
            let prefix = |x: &[String], y: &[String]| x.len() <= y.len() && y[..x.len()] == *x;
            if prefix(&a.path, &b.path) || prefix(&b.path, &a.path) {
                ctx.error(
                    &a.key_span,
                    format!(
                        "`{}` and `{}` sweep overlapping keys",
                        b.axis.key, a.axis.key
                    ),
                )
                .hint = Some("sweep each key once".into());
            } else if b.axis.column == *column {
                ctx.error(
                    &a.column_span,
                    format!(
                        "sweep keys `{}` and `{}` would both become the column `{column}`",
                        b.axis.key, a.axis.key
                    ),
                )
                .hint = Some(format!(
                    "give one an explicit column: \"{}\" = {{ values = [...], column = \"{}_{column}\" }}",
                    a.axis.key,
                    a.path
                        .get(a.path.len().saturating_sub(2))
                        .map_or("other", String::as_str)
                ));
            }
        }
    }
    let total = axes
        .iter()
        .try_fold(1usize, |acc, a| acc.checked_mul(a.values.len()))
        .unwrap_or(usize::MAX);
    if total > MAX_VARIANTS
        && let Some(a) = axes.first()
    {
        ctx.error(
            &a.key_span,
            format!("the sweep has {total} combinations; at most {MAX_VARIANTS} are allowed"),
        );
    }
}

/// Every combination of value indices, first axis slowest.
pub(crate) fn grid(axes: &[AxisNodes]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..a.values.len()).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_row_major() {
        let axis = |n: usize| AxisNodes {
            path: vec![],
            key_span: Span::file(0..0),
            column_span: Span::file(0..0),
            values: vec![
                Node {
                    value: Value::Integer(0),
                    span: Span::file(0..0)
                };
                n
            ],
            axis: SweepAxis {
                key: String::new(),
                column: String::new(),
                values: vec![],
            },
        };
        assert_eq!(
            grid(&[axis(2), axis(3)]),
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![0, 2],
                vec![1, 0],
                vec![1, 1],
                vec![1, 2]
            ]
        );
        assert_eq!(grid(&[]), vec![Vec::<usize>::new()]);
    }
}
