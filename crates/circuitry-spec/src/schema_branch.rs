//! One branch of a tagged union in the JSON Schema (a dataset source, an analysis kind). A leaf, so
//! that the sections can build their own schemas without depending on the schema's assembly.

use schemars::Schema;
use serde_json::{Map, Value, json};

/// Builds one branch of a tagged union: `extra` properties first (e.g. the `kind` constant, all
/// required), then the `common` keys, then the `base` struct's own.
pub(crate) fn merge_branch(
    base: Schema,
    extra: &[(&str, Schema)],
    common: &Schema,
    title: &str,
) -> Schema {
    let base = base.to_value();
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    for (key, schema) in extra {
        properties.insert((*key).to_string(), schema.clone().to_value());
        required.push((*key).into());
    }
    for source in [common.as_value(), &base] {
        if let Some(props) = source.get("properties").and_then(Value::as_object) {
            properties.extend(props.clone());
        }
        if let Some(req) = source.get("required").and_then(Value::as_array) {
            required.extend(req.iter().cloned());
        }
    }
    let mut branch = json!({
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    });
    if let Some(description) = base.get("description") {
        branch["description"] = description.clone();
    }
    Schema::try_from(branch).unwrap_or_default()
}
