//! The JSON Schema (draft-07) of experiment files, generated from the same types that parse them.
//! It is checked in at `schemas/experiment.schema.json`; editors that understand
//! `#:schema ../schemas/experiment.schema.json` (taplo / Even Better TOML) use it for completion,
//! hover docs and validation. Regenerate it with `CIRCUITRY_BLESS=1 cargo test -p circuitry-spec`.

use schemars::generate::SchemaSettings;
use schemars::transform::{
    RemoveRefSiblings, ReplacePrefixItems, ReplaceUnevaluatedProperties, Transform,
};
use schemars::{JsonSchema, Schema};
use serde_json::{Value, json};

use crate::analysis::analysis_schema;
use crate::causal_model::CausalModelSpec;
use crate::dataset::dataset_schema;
use crate::experiment::ExperimentHeader;
use crate::model::ModelSpec;
use crate::refs::MetricSpec;
use crate::sweep::Sweep;
use crate::train::TrainSpec;

/// The pattern entry names (models, datasets, analyses, training runs) must match.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_][A-Za-z0-9_-]*$";

/// The JSON Schema of experiment files (draft-07, with a title or description on every field).
pub fn json_schema() -> Value {
    let mut g = SchemaSettings::draft07().into_generator();
    let header = ExperimentHeader::json_schema(&mut g).to_value();
    let model = g.subschema_for::<ModelSpec>().to_value();
    let dataset = dataset_schema(&mut g).to_value();
    g.definitions_mut().insert("Dataset".into(), dataset);
    let analysis = analysis_schema(&mut g).to_value();
    g.definitions_mut().insert("Analysis".into(), analysis);
    let train = g.subschema_for::<TrainSpec>().to_value();
    let causal_model = g.subschema_for::<CausalModelSpec>().to_value();
    let sweep = g.subschema_for::<Sweep>().to_value();
    // Not used by any kind yet; defined so that editors and later kinds share one definition.
    let _ = g.subschema_for::<MetricSpec>();

    let named = |description: &str, item: Value| {
        json!({
            "type": "object",
            "description": description,
            "propertyNames": { "pattern": NAME_PATTERN },
            "additionalProperties": item
        })
    };
    let mut properties = header
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    properties.insert(
        "models".into(),
        named("Models to analyse, by name: [models.NAME] with `path` (a local Hugging Face directory or .gguf file) or `hub` (ORG/NAME[@REV]).", model),
    );
    properties.insert(
        "causal_models".into(),
        named("Causal models of tasks, by name: [causal_models.NAME] with `inputs` (prompt fields), `variables` (expressions) and an `output` expression. Datasets draw prompts from them and pair prompts into counterfactuals; probes read their variables.", causal_model),
    );
    properties.insert(
        "datasets".into(),
        named("Prompt datasets, by name: [datasets.NAME] with exactly one source (`generator`, `prompts` or `file`).", json!({ "$ref": "#/definitions/Dataset" })),
    );
    properties.insert(
        "analyses".into(),
        named("Analyses, by name: [analyses.NAME] with a `kind`, a `model` and a `dataset`. Each writes <out>/<experiment>/<NAME>.parquet.", json!({ "$ref": "#/definitions/Analysis" })),
    );
    properties.insert(
        "train".into(),
        named("Training runs, by name: [train.NAME] trains a small transformer on a dataset and writes it to `output`.", train),
    );
    let mut sweep = sweep;
    if let Some(obj) = sweep.as_object_mut() {
        obj.insert("description".into(), "A grid over dotted keys of this file, e.g. \"datasets.rep.length\" = [10, 20, 40]: every combination is one run, and each key's values become a table column.".into());
    }
    properties.insert("sweep".into(), sweep);

    let mut root = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "circuitry experiment",
        "description": "A circuitry experiment file: models, prompt datasets, analyses, optional training runs and an optional parameter sweep. Run it with `circuitry run FILE`.",
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
        "definitions": Value::Object(g.take_definitions(true)),
    });
    tidy(&mut root);
    let mut schema = Schema::try_from(root).unwrap_or_default();
    ReplaceUnevaluatedProperties::default().transform(&mut schema);
    RemoveRefSiblings::default().transform(&mut schema);
    ReplacePrefixItems::default().transform(&mut schema);
    schema.to_value()
}

/// Integer/float `format`s schemars adds; they are not draft-07 formats.
const NUMERIC_FORMATS: &[&str] = &[
    "uint", "uint8", "uint16", "uint32", "uint64", "int", "int8", "int16", "int32", "int64",
    "float", "double",
];

/// Adapts schemars' output to TOML files: TOML has no null (so `Option`s are just optional),
/// drops non-standard numeric formats, and reflows doc-comment line breaks into paragraphs.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            if obj.get("default") == Some(&Value::Null) {
                obj.remove("default");
            }
            if let Some(Value::String(f)) = obj.get("format")
                && NUMERIC_FORMATS.contains(&f.as_str())
            {
                obj.remove("format");
            }
            if let Some(Value::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types[0].clone();
                    obj.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                let Some(Value::Array(items)) = obj.get_mut(key) else {
                    continue;
                };
                items.retain(|s| s != &json!({ "type": "null" }));
                if items.len() == 1
                    && let Some(Value::Object(only)) = items.pop()
                {
                    obj.remove(key);
                    for (k, v) in only {
                        obj.entry(k).or_insert(v);
                    }
                }
            }
            if let Some(Value::String(d)) = obj.get_mut("description") {
                *d = reflow(d);
            }
            for v in obj.values_mut() {
                tidy(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

/// Joins the lines of each paragraph (doc comments wrap at ~100 columns).
pub(crate) fn reflow(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
        match v {
            Value::Object(o) => {
                out.push((path.clone(), v));
                for (k, c) in o {
                    walk(c, format!("{path}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    walk(c, format!("{path}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn schema_has_no_nulls_and_documents_every_property() {
        let schema = json_schema();
        let text = schema.to_string();
        assert!(!text.contains("\"null\""), "null types left in the schema");
        assert!(!text.contains("uint32"));
        let mut nodes = Vec::new();
        walk(&schema, String::new(), &mut nodes);
        for (path, node) in nodes {
            let Some(props) = node.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for (name, prop) in props {
                let documented = |p: &Value| {
                    p.get("description").is_some()
                        || p.get("title").is_some()
                        || p.get("allOf").is_some()
                        || p.get("$ref").is_some()
                };
                assert!(
                    documented(prop),
                    "{path}/properties/{name} has no description"
                );
            }
        }
    }

    #[test]
    fn schema_is_draft07_and_closed() {
        let schema = json_schema();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(schema["additionalProperties"], false);
        let defs = schema["definitions"].as_object().unwrap();
        for name in [
            "Dataset",
            "Analysis",
            "ModelSpec",
            "TrainSpec",
            "Positions",
            "TokenRef",
            "Target",
            "Metric",
            "Sweep",
        ] {
            assert!(defs.contains_key(name), "missing definition {name}");
        }
        assert_eq!(
            defs["Analysis"]["oneOf"].as_array().unwrap().len(),
            crate::analysis::kind_names().len()
        );
        assert!(!schema.to_string().contains("$defs"));
    }

    #[test]
    fn reflow_joins_lines() {
        assert_eq!(reflow("a\nb\n\nc\nd"), "a b\n\nc d");
    }
}
