//! From an experiment file's `[datasets.NAME]` to tokenized prompts (the data crate's API).

use std::collections::BTreeMap;
use std::path::Path;

use circuitry_data::{
    AnswerToken, CausalModel, CausalSampleConfig, DataError, DatasetOptions, FileSource, IoiConfig,
    IoiTemplates, PairingConfig, Record, Source, TextConfig, TokenRecord, build_dataset,
};
use circuitry_models::Tokenizer;
use circuitry_spec::{DatasetSource, DatasetSpec, Experiment};

use crate::error::RunError;

/// The data crate's description of a dataset of single prompts. Relative file paths are resolved
/// against `base_dir` (the experiment file's directory). `None` for the sources that need the
/// rest of the experiment: causal model draws and counterfactual pairs ([`build`] makes them).
fn source(spec: &DatasetSpec, base_dir: &Path) -> Option<Source> {
    Some(match &spec.source {
        DatasetSource::RepeatedTokens(r) => {
            let mut g = circuitry_data::RepeatedTokensConfig::new(
                r.n as usize,
                r.length as usize,
                r.seed.unwrap_or(0),
            );
            g.repeats = r.repeats as usize;
            g.token_range = r.token_range.map(|[lo, hi]| (lo, hi));
            Source::RepeatedTokens(g)
        }
        DatasetSource::Ioi(i) => {
            let mut g = IoiConfig::new(i.n as usize, i.seed.unwrap_or(0));
            if let Some(templates) = &i.templates {
                g.templates =
                    IoiTemplates::Custom(templates.iter().map(|t| data_template(t)).collect());
            }
            g.names = i.names.clone();
            g.skip_multi_token_names = i.skip_multi_token_names;
            g.places = i.places.clone();
            g.objects = i.objects.clone();
            g.corruption = i.corrupt;
            Source::Ioi(g)
        }
        DatasetSource::Prompts(p) => {
            if p.prompts
                .iter()
                .all(|r| r.corrupt.is_none() && r.answers.is_empty() && r.positions.is_empty())
            {
                Source::Texts(p.prompts.iter().map(|r| r.text.clone()).collect())
            } else {
                Source::Records(
                    p.prompts
                        .iter()
                        .map(|r| Record {
                            text: r.text.clone(),
                            corrupt: r.corrupt.clone(),
                            answers: r
                                .answers
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                            fields: BTreeMap::new(),
                            positions: r.positions.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                        })
                        .collect(),
                )
            }
        }
        DatasetSource::Tokens(t) => Source::TokenIds(
            t.tokens
                .iter()
                .enumerate()
                .map(|(i, row)| TokenRecord {
                    tokens: row.ids.clone(),
                    corrupt: row
                        .corrupt
                        .clone()
                        .or_else(|| t.corrupt_tokens.as_ref().and_then(|c| c.get(i).cloned())),
                    answers: row
                        .answers
                        .iter()
                        .map(|(k, v)| {
                            let v = match v {
                                circuitry_spec::AnswerToken::Id(id) => AnswerToken::Id(*id),
                                circuitry_spec::AnswerToken::Text(t) => {
                                    AnswerToken::Text(t.clone())
                                }
                            };
                            (k.clone(), v)
                        })
                        .collect(),
                    positions: row.positions.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                })
                .collect(),
        ),
        DatasetSource::File(f) => {
            let mut s = FileSource::new(circuitry_spec::resolve_path(base_dir, &f.file));
            s.format = f.format;
            s.text_column = f.text_column.clone();
            s.corrupt_column = f.corrupt_column.clone();
            s.answer_columns = f
                .answer_columns
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            s.position_columns = f
                .position_columns
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            s.limit = f.limit.map(|l| l as usize);
            Source::File(s)
        }
        DatasetSource::Text(t) => {
            let mut c = TextConfig::new(
                circuitry_spec::resolve_path(base_dir, &t.text),
                t.window as usize,
            );
            c.separator = t.separator.clone();
            c.stride = t.stride.map_or(c.window, |s| s as usize);
            c.min_tokens = t.min_tokens.map_or(c.window, |m| m as usize);
            c.n = t.n.map(|n| n as usize);
            c.seed = t.seed.unwrap_or(0);
            Source::Text(c)
        }
        DatasetSource::CausalModel(_) | DatasetSource::Counterfactuals(_) => return None,
    })
}

/// The data crate's form of `[causal_models.NAME]` (which the spec has checked).
fn causal_model(exp: &Experiment, name: &str) -> CausalModel {
    let spec = &exp.causal_models[name];
    CausalModel {
        name: name.to_string(),
        inputs: spec.inputs.clone(),
        values: spec
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        order: spec
            .evaluation_order()
            .expect("a checked causal model has an evaluation order"),
    }
}

/// An experiment-file IOI template (`{IO}`, `{S}`, `{PLACE}`, `{OBJECT}`) in the data crate's
/// spelling (`[A]` for the indirect object, `[B]` for the subject).
fn data_template(template: &str) -> String {
    template
        .replace("{IO}", "[A]")
        .replace("{S}", "[B]")
        .replace("{PLACE}", "[PLACE]")
        .replace("{OBJECT}", "[OBJECT]")
}

/// Builds and tokenizes dataset `name` of `exp` for a model with context length `n_ctx`.
pub fn build(
    exp: &Experiment,
    name: &str,
    tokenizer: &Tokenizer,
    n_ctx: usize,
) -> Result<circuitry_data::Dataset, RunError> {
    let spec = &exp.datasets[name];
    let located = |e: DataError| RunError::DatasetAt {
        dataset: name.to_string(),
        key: spec_key(spec, &e),
        message: e.to_string(),
    };
    let options = DatasetOptions {
        prepend_bos: spec.prepend_bos,
        n_ctx: Some(n_ctx),
        repeats: spec.declared_repeats().map(|r| r as usize),
    };
    let source = match &spec.source {
        DatasetSource::CausalModel(g) => {
            let model = causal_model(exp, &g.causal_model);
            let cfg = CausalSampleConfig {
                n: g.n as usize,
                template: g.template.clone(),
                balance: g.balance.clone(),
                seed: g.seed.unwrap_or(0),
            };
            let records = circuitry_data::sample_records(name, &model, &cfg).map_err(located)?;
            Source::Records(records)
        }
        DatasetSource::Counterfactuals(c) => {
            let base = build(exp, &c.counterfactuals, tokenizer, n_ctx)?;
            let cfg = PairingConfig {
                intervene: c.intervene.clone(),
                changing_only: c.changing_only,
                seed: c.seed.unwrap_or(0),
            };
            let model = causal_model(exp, &c.causal_model);
            return circuitry_data::counterfactual_pairs(name, &base, &model, &cfg, tokenizer)
                .map_err(located);
        }
        _ => source(spec, &exp.base_dir()).expect("a dataset of single prompts"),
    };
    build_dataset(name, &source, tokenizer, &options).map_err(located)
}

/// The key of `[datasets.NAME]` (relative to the entry) a data error is about: the data crate's
/// setting in the file's spelling, else, for errors that list prompts, the first listed prompt
/// of inline data, the file, or the generator setting that makes such prompts.
fn spec_key(spec: &DatasetSpec, e: &DataError) -> String {
    let first_row = e.rows().first().map(|r| r.id);
    match (e.key(), &spec.source) {
        (Some("path"), DatasetSource::File(f)) => match e {
            DataError::MissingColumn { column, .. } => file_column_key(f, column),
            _ => "file".to_string(),
        },
        (Some("path"), DatasetSource::Text(_)) => "text".to_string(),
        (Some("corruption"), _) => "corrupt".to_string(),
        (Some(key), _) => key.to_string(),
        (None, DatasetSource::Prompts(_)) => match (e, first_row) {
            (DataError::AnswerTokens { .. }, Some(id)) => format!("prompts.{id}.answers"),
            (DataError::CorruptLength { .. }, Some(id)) => format!("prompts.{id}.corrupt"),
            (_, Some(id)) => format!("prompts.{id}"),
            (_, None) => "prompts".to_string(),
        },
        (None, DatasetSource::Tokens(_)) => match first_row {
            Some(id) => format!("tokens.{id}"),
            None => "tokens".to_string(),
        },
        (None, DatasetSource::File(_)) => "file".to_string(),
        (None, DatasetSource::Text(_)) => "window".to_string(),
        (None, DatasetSource::RepeatedTokens(_)) => "length".to_string(),
        // Generated sentences too long for the context come from the templates; the other
        // prompt errors of the generator are about a name in context.
        (None, DatasetSource::Ioi(_)) => match e {
            DataError::TooLong { .. } => "templates".to_string(),
            _ => "names".to_string(),
        },
        (None, DatasetSource::CausalModel(_)) => "template".to_string(),
        (None, DatasetSource::Counterfactuals(_)) => "counterfactuals".to_string(),
    }
}

/// The key that names `column` of a file dataset: the corrupt or an answer column, else the
/// file (the text column, often left at its default `text`, is then not written).
fn file_column_key(f: &circuitry_spec::FileDataset, column: &str) -> String {
    if f.corrupt_column.as_deref() == Some(column) {
        return "corrupt_column".to_string();
    }
    if let Some(answer) = f
        .answer_columns
        .iter()
        .find_map(|(answer, c)| (c == column).then_some(answer))
    {
        return format!("answer_columns.{answer}");
    }
    if let Some(position) = f
        .position_columns
        .iter()
        .find_map(|(position, c)| (c == column).then_some(position))
    {
        return format!("position_columns.{position}");
    }
    "file".to_string()
}
