//! What `circuitry analyses` prints: every analysis kind with its one-line description and its
//! parameters (name, type, default, description). Derived from the JSON Schema, which is derived
//! from the parameter structs and their doc comments, so nothing is written twice.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::schema::json_schema;

/// One analysis kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KindInfo {
    /// The `kind` value, e.g. `head_detector`.
    pub name: String,
    /// One line: the first paragraph of the kind's documentation.
    pub summary: String,
    /// The full documentation (paragraphs separated by blank lines).
    pub description: String,
    /// The keys it accepts: the common ones (model, dataset, batch_size) first.
    pub params: Vec<ParamInfo>,
}

/// One key of an analysis table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParamInfo {
    /// The key.
    pub name: String,
    /// Its type, e.g. `list of integer`, `positions`, `"mul" | "abs"`.
    pub type_name: String,
    /// Whether it must be given.
    pub required: bool,
    /// Its default as TOML, when it has a fixed one (optional keys without a default are
    /// explained by their description).
    pub default: Option<String>,
    /// What it means.
    pub description: String,
    /// Whether every kind has it (model, dataset, batch_size).
    pub common: bool,
    /// The keys of the record the value (or each item of it) may be written as, e.g. a `tokens`
    /// record's `ids`, `corrupt`, `answers`, `positions` (listed for dataset sources).
    pub fields: Vec<ParamInfo>,
}

const COMMON: &[&str] = &["model", "dataset", "batch_size"];

/// Every analysis kind, in registration order.
pub fn analysis_kinds() -> Vec<KindInfo> {
    let schema = json_schema();
    let defs = &schema["definitions"];
    let Some(branches) = defs["Analysis"]["oneOf"].as_array() else {
        return Vec::new();
    };
    branches.iter().map(|b| kind_info(b, defs)).collect()
}

/// Every source a `[datasets.NAME]` table may have (one branch of the schema each: the
/// generators, inline prompts and tokens, files, corpora, counterfactual pairs), named by its
/// title, with its keys and the keys of the records its values may be.
pub fn dataset_sources() -> Vec<KindInfo> {
    let schema = json_schema();
    let defs = &schema["definitions"];
    let Some(branches) = defs["Dataset"]["oneOf"].as_array() else {
        return Vec::new();
    };
    branches
        .iter()
        .map(|b| {
            let mut info = kind_info(b, defs);
            info.name = b["title"].as_str().unwrap_or_default().to_string();
            for p in &mut info.params {
                p.fields = record_fields(&b["properties"][&p.name], defs);
            }
            info
        })
        .collect()
}

/// The keys of the record a value may be (itself, its items, or one of its alternatives).
fn record_fields(schema: &Value, defs: &Value) -> Vec<ParamInfo> {
    let candidates = [schema, &schema["items"], &schema["additionalProperties"]];
    for candidate in candidates {
        let resolved = resolve(candidate, defs).map_or(candidate, |(_, d)| d);
        let alternatives: Vec<&Value> = match resolved["anyOf"].as_array() {
            Some(items) => items.iter().collect(),
            None => vec![resolved],
        };
        for alternative in alternatives {
            let record = resolve(alternative, defs).map_or(alternative, |(_, d)| d);
            if record["properties"].is_object() {
                return params_of(record, defs);
            }
        }
    }
    Vec::new()
}

/// One analysis kind by name.
pub fn analysis_kind(name: &str) -> Option<KindInfo> {
    analysis_kinds().into_iter().find(|k| k.name == name)
}

fn kind_info(branch: &Value, defs: &Value) -> KindInfo {
    let name = branch["properties"]["kind"]["const"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let description = branch["description"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let summary = description
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .to_string();
    let mut params = params_of(branch, defs);
    params.sort_by_key(|p| !p.common);
    KindInfo {
        name,
        summary,
        description,
        params,
    }
}

/// The keys of an object schema (an analysis branch, a dataset source, a record), except
/// `kind`, in schema order.
fn params_of(object: &Value, defs: &Value) -> Vec<ParamInfo> {
    let required: Vec<&str> = object["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    object["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .filter(|(k, _)| k.as_str() != "kind")
                .map(|(k, p)| ParamInfo {
                    name: k.clone(),
                    type_name: type_name(p, defs, 0),
                    required: required.contains(&k.as_str()),
                    default: p.get("default").map(toml_inline),
                    description: describe(p, defs),
                    common: COMMON.contains(&k.as_str()),
                    fields: Vec::new(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn resolve<'a>(schema: &'a Value, defs: &'a Value) -> Option<(&'a str, &'a Value)> {
    let r = schema.get("$ref")?.as_str()?;
    let name = r.rsplit('/').next()?;
    defs.get(name).map(|d| (name, d))
}

fn describe(p: &Value, defs: &Value) -> String {
    if let Some(d) = p["description"].as_str() {
        return d.to_string();
    }
    let inner = p["allOf"].get(0).unwrap_or(p);
    resolve(inner, defs)
        .and_then(|(_, d)| d["description"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A readable type for a schema.
fn type_name(schema: &Value, defs: &Value, depth: usize) -> String {
    if depth > 4 {
        return "any".into();
    }
    if let Some(all) = schema["allOf"].as_array()
        && all.len() == 1
    {
        return type_name(&all[0], defs, depth + 1);
    }
    if let Some((name, def)) = resolve(schema, defs) {
        if let Some(alternatives) = constants(def) {
            return alternatives;
        }
        return def["title"].as_str().unwrap_or(name).to_string();
    }
    if let Some(alternatives) = constants(schema) {
        return alternatives;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(items) = schema[key].as_array() {
            return items
                .iter()
                .map(|s| type_name(s, defs, depth + 1))
                .collect::<Vec<_>>()
                .join(" | ");
        }
    }
    match &schema["type"] {
        Value::String(t) if t == "array" => {
            format!("list of {}", type_name(&schema["items"], defs, depth + 1))
        }
        Value::String(t) if t == "object" => "table".into(),
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    }
}

/// `"a" | "b"` for enum-like schemas.
fn constants(schema: &Value) -> Option<String> {
    if let Some(c) = schema.get("const") {
        return Some(c.to_string());
    }
    if let Some(e) = schema["enum"].as_array() {
        return Some(
            e.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
        );
    }
    let items = schema["oneOf"]
        .as_array()
        .or_else(|| schema["anyOf"].as_array())?;
    let consts: Option<Vec<String>> = items.iter().map(constants).collect();
    consts.map(|c| c.join(" | "))
}

/// A JSON value written as an inline TOML value.
pub(crate) fn toml_inline(value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            if map.is_empty() {
                return "{}".into();
            }
            let inner = map
                .iter()
                .map(|(k, v)| format!("{} = {}", crate::node::quote_key(k), toml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{{ {inner} }}")
        }
        other => other.to_string(),
    }
}

impl fmt::Display for KindInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.name, self.summary)?;
        for p in &self.params {
            let default = match (&p.default, p.required) {
                (_, true) => "required".to_string(),
                (Some(d), false) => format!("default {d}"),
                (None, false) => "optional".to_string(),
            };
            writeln!(f, "  {} ({}; {default})", p.name, p.type_name)?;
            writeln!(f, "      {}", p.description.replace("\n\n", "\n      "))?;
            if !p.fields.is_empty() {
                writeln!(f, "      as a record:")?;
            }
            for field in &p.fields {
                let need = if field.required {
                    "required"
                } else {
                    "optional"
                };
                writeln!(f, "        {} ({}; {need})", field.name, field.type_name)?;
                writeln!(
                    f,
                    "            {}",
                    field.description.replace("\n\n", "\n            ")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_kind_with_documented_params() {
        let kinds = analysis_kinds();
        let names: Vec<&str> = kinds.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, crate::analysis::kind_names());
        for k in &kinds {
            assert!(!k.summary.is_empty(), "{} has no summary", k.name);
            assert!(!k.summary.contains('\n'), "{}: {}", k.name, k.summary);
            assert_eq!(&k.params[0].name, "model");
            assert!(k.params[0].required && k.params[0].common);
            for p in &k.params {
                assert!(
                    !p.description.is_empty(),
                    "{}.{} undocumented",
                    k.name,
                    p.name
                );
                assert_ne!(p.type_name, "any", "{}.{}", k.name, p.name);
            }
        }
    }

    #[test]
    fn lists_every_dataset_source_with_its_keys_and_records() {
        let sources = dataset_sources();
        let find = |title: &str| {
            sources
                .iter()
                .find(|s| s.name.contains(title))
                .unwrap_or_else(|| panic!("no source titled {title}"))
        };
        for s in &sources {
            assert!(!s.summary.is_empty(), "{} has no summary", s.name);
            for p in &s.params {
                assert!(
                    !p.description.is_empty(),
                    "{}.{} undocumented",
                    s.name,
                    p.name
                );
            }
        }
        let tokens = find("token ids");
        let key = |info: &KindInfo, name: &str| {
            info.params
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("{} has no key {name}", info.name))
                .clone()
        };
        let record: Vec<String> = key(tokens, "tokens")
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(record, ["ids", "corrupt", "answers", "positions"]);
        assert!(key(tokens, "repeats").description.contains("seq_start"));
        let prompts = find("inline prompts");
        let record: Vec<String> = key(prompts, "prompts")
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert!(record.contains(&"positions".to_string()), "{record:?}");
        assert!(
            key(find("file"), "position_columns")
                .description
                .contains("integer")
        );
        let text = tokens.to_string();
        assert!(
            text.contains("as a record:") && text.contains("positions ("),
            "{text}"
        );
    }

    #[test]
    fn head_detector_listing() {
        let k = analysis_kind("head_detector").unwrap();
        let p = |n: &str| k.params.iter().find(|p| p.name == n).unwrap().clone();
        assert_eq!(p("batch_size").default.as_deref(), Some("8"));
        assert_eq!(
            p("detectors").default.as_deref(),
            Some("[\"previous_token\", \"duplicate_token\", \"induction\"]")
        );
        assert_eq!(p("error_measure").type_name, "\"mul\" | \"abs\"");
        assert_eq!(p("layers").type_name, "list of integer");
        assert_eq!(p("per_prompt").default.as_deref(), Some("false"));
        let text = k.to_string();
        assert!(
            text.starts_with("head_detector: Scores every head"),
            "{text}"
        );
    }

    #[test]
    fn reference_types_use_their_titles() {
        let k = analysis_kind("direct_logit_attribution").unwrap();
        let p = |n: &str| k.params.iter().find(|p| p.name == n).unwrap().clone();
        assert_eq!(p("target").type_name, "target");
        assert!(p("target").required);
        assert_eq!(p("position").type_name, "position");
        assert_eq!(p("position").default.as_deref(), Some("\"last\""));
        assert!(p("components").type_name.starts_with("list of \"heads\""));
    }
}
