//! Lowering a `[datasets.NAME]` table to a [`DatasetSpec`]: which source it has, its keys, and the
//! checks beyond the types. The types themselves are in `dataset.rs`, which the checks of other
//! sections read.

use circuitry_vocab::limits::{MAX_PROMPTS, MAX_TOKENS};
use circuitry_vocab::{FileFormat, IoiCorruption};
use indexmap::IndexMap;

use crate::dataset::{
    COMMON_KEYS, CausalModelDataset, CounterfactualsDataset, DatasetCommon, DatasetSource,
    DatasetSpec, FileDataset, GENERATORS, InlinePrompts, InlinePromptsInput, InlineTokens,
    InlineTokensInput, Ioi, RepeatedTokensSpec, SOURCE_KEYS, TextDataset, derive_seed,
};
use crate::de::{from_entries, from_node};
use crate::diagnostic::{did_you_mean, list};
use crate::node::{Entry, Node, join_path};
use crate::validate::{Checker, Ctx};

/// Builds a dataset from its table, reporting problems to `ctx`. `experiment_seed` feeds the
/// default generator seed.
pub(crate) fn lower(
    name: &str,
    node: &Node,
    experiment_seed: u64,
    ctx: &mut Ctx<'_>,
) -> Option<DatasetSpec> {
    let path = join_path("datasets", name);
    let entries = ctx.section_entries(node, &path, format!("write it as a [{path}] section"))?;
    let sources: Vec<&Entry> = entries
        .iter()
        .filter(|e| SOURCE_KEYS.contains(&e.key.as_str()))
        .collect();
    if sources.len() > 1 {
        let names: Vec<&str> = sources.iter().map(|e| e.key.as_str()).collect();
        ctx.error(
            &sources[1].key_span,
            format!("dataset `{name}` has more than one source ({})", list(names.iter().map(|n| format!("`{n}`")))),
        )
        .hint = Some("a dataset has exactly one of `generator`, `prompts`, `tokens`, `file` or `text`; define one dataset per source".into());
        return None;
    }
    let Some(source_entry) = sources.first() else {
        let d = ctx.error(&node.span, format!("dataset `{name}` has no source"));
        d.hint = Some(
            "add one of: generator = \"repeated_tokens\" | \"ioi\", prompts = [\"...\"], tokens = [[...]], file = \"prompts.jsonl\", text = \"corpus.txt\""
                .into(),
        );
        let valid: Vec<&str> = SOURCE_KEYS.to_vec();
        for e in entries {
            if let Some(s) = did_you_mean(&e.key, &valid) {
                d.hint = Some(format!("did you mean `{s}` instead of `{}`?", e.key));
                break;
            }
        }
        return None;
    };

    let (common, rest): (Vec<Entry>, Vec<Entry>) = entries
        .iter()
        .filter(|e| e.key != "generator")
        .cloned()
        .partition(|e| COMMON_KEYS.contains(&e.key.as_str()));
    let common = match from_entries::<DatasetCommon>(common, &node.span, &path) {
        Ok(c) => Some(c),
        Err(e) => {
            ctx.de_error(e, &[]);
            None
        }
    };
    let rest = Node::table(rest, node.span.clone());
    let extra: Vec<&str> = COMMON_KEYS
        .iter()
        .chain(["generator"].iter())
        .copied()
        .collect();
    let derived_seed = || derive_seed(experiment_seed, "datasets", name);

    let source = match source_entry.key.as_str() {
        "generator" => {
            let Some(generator) = source_entry.node.as_str() else {
                ctx.error(
                    &source_entry.node.span,
                    format!(
                        "`{path}.generator` must be a string, found {}",
                        source_entry.node.value.a_type_name()
                    ),
                )
                .hint = Some(format!("generators: {}", list(GENERATORS)));
                return None;
            };
            match generator {
                "repeated_tokens" => from_node::<RepeatedTokensSpec>(&rest, &path).map(|mut r| {
                    r.seed.get_or_insert_with(derived_seed);
                    DatasetSource::RepeatedTokens(r)
                }),
                "causal_model" => from_node::<CausalModelDataset>(&rest, &path).map(|mut c| {
                    c.seed.get_or_insert_with(derived_seed);
                    DatasetSource::CausalModel(c)
                }),
                "ioi" => from_node::<Ioi>(&rest, &path).map(|mut i| {
                    i.seed.get_or_insert_with(derived_seed);
                    for words in [&mut i.names, &mut i.places, &mut i.objects]
                        .into_iter()
                        .flatten()
                    {
                        normalize_words(words);
                    }
                    DatasetSource::Ioi(i)
                }),
                other => {
                    let d = ctx.error(
                        &source_entry.node.span,
                        format!("unknown generator `{other}`"),
                    );
                    d.hint = Some(match did_you_mean(other, GENERATORS) {
                        Some(s) => format!("did you mean `{s}`? generators: {}", list(GENERATORS)),
                        None => format!("generators: {}", list(GENERATORS)),
                    });
                    return None;
                }
            }
        }
        "prompts" => from_node::<InlinePromptsInput>(&rest, &path).map(|p| {
            DatasetSource::Prompts(InlinePrompts {
                prompts: p.prompts.into_iter().map(|p| p.0).collect(),
                repeats: p.repeats,
            })
        }),
        "tokens" => from_node::<InlineTokensInput>(&rest, &path).map(|t| {
            DatasetSource::Tokens(InlineTokens {
                tokens: t.tokens.into_iter().map(|r| r.0).collect(),
                corrupt_tokens: t.corrupt_tokens,
                repeats: t.repeats,
            })
        }),
        "counterfactuals" => from_node::<CounterfactualsDataset>(&rest, &path).map(|mut c| {
            c.seed.get_or_insert_with(derived_seed);
            DatasetSource::Counterfactuals(c)
        }),
        "text" => from_node::<TextDataset>(&rest, &path).map(|mut t| {
            t.seed.get_or_insert_with(derived_seed);
            DatasetSource::Text(t)
        }),
        _ => from_node::<FileDataset>(&rest, &path).map(|mut f| {
            if f.format.is_none() {
                f.format = FileFormat::from_extension(&f.file);
            }
            DatasetSource::File(f)
        }),
    };
    let source = match source {
        Ok(s) => s,
        Err(e) => {
            ctx.de_error(e, &extra);
            return None;
        }
    };
    let common = common?;
    let generated = matches!(
        source,
        DatasetSource::RepeatedTokens(_)
            | DatasetSource::Ioi(_)
            | DatasetSource::Text(_)
            | DatasetSource::CausalModel(_)
    );
    if matches!(source, DatasetSource::Counterfactuals(_))
        && let Some(e) = entries.iter().find(|e| e.key == "prepend_bos")
    {
        ctx.error(
            &e.key_span,
            "`prepend_bos` does not apply to counterfactual pairs",
        )
        .hint =
            Some("pairs use the base dataset's prompts as they are: set prepend_bos there".into());
        return None;
    }
    let spec = DatasetSpec {
        prepend_bos: common.prepend_bos.unwrap_or(generated),
        source,
    };
    let errors_before = ctx.diags.len();
    validate(&spec, &mut ctx.checker(node, path));
    (ctx.diags.len() == errors_before).then_some(spec)
}

/// Trims the spaces users may write around IOI names, places and objects.
fn normalize_words(words: &mut [String]) {
    for w in words.iter_mut() {
        let trimmed = w.trim();
        if trimmed.len() != w.len() {
            *w = trimmed.to_string();
        }
    }
}

/// The checks of one dataset beyond its types (ranges, templates, consistent records).
fn validate(spec: &DatasetSpec, c: &mut Checker<'_, '_>) {
    if let Some(repeats) = spec.declared_repeats()
        && repeats < 2
    {
        c.error(
            "repeats",
            format!("`repeats = {repeats}` declares no repeat: it must be at least 2"),
        )
        .hint = Some("write repeats = 2 for prompts laid out as r r".into());
    }
    match &spec.source {
        DatasetSource::RepeatedTokens(r) => {
            c.positive("n", r.n);
            c.positive("length", r.length);
            c.positive("repeats", r.repeats);
            check_prompt_count(c, "n", r.n.into());
            check_repeated_tokens(c, r, spec.prepend_bos);
            if let Some([lo, hi]) = r.token_range
                && lo >= hi
            {
                c.error(
                    "token_range",
                    format!(
                        "`token_range` [{lo}, {hi}) is empty: the first id must be below the second"
                    ),
                );
            }
        }
        DatasetSource::Ioi(i) => validate_ioi(i, c),
        DatasetSource::CausalModel(g) => {
            c.positive("n", g.n);
            check_prompt_count(c, "n", g.n.into());
            if g.template.trim().is_empty() {
                c.error("template", "`template` cannot be empty").hint =
                    Some("write the prompt with {NAME} placeholders, e.g. \"{a} {b}\"".into());
            }
            if !g.balance.is_empty() {
                c.distinct("balance", &g.balance);
            }
        }
        DatasetSource::Counterfactuals(p) => {
            if p.intervene.is_empty() {
                c.error("intervene", "`intervene` names no variable").hint = Some(
                    "name the variables taken from the source, e.g. intervene = [\"left\"]".into(),
                );
            } else {
                c.distinct("intervene", &p.intervene);
            }
        }
        DatasetSource::Prompts(p) => validate_prompts(p, c),
        DatasetSource::Tokens(t) => validate_tokens(t, c),
        DatasetSource::Text(t) => {
            if t.text.trim().is_empty() {
                c.error("text", "`text` cannot be empty").hint =
                    Some("name a text file or a directory of text files".into());
            }
            c.positive("window", t.window);
            if let Some(stride) = t.stride {
                c.positive("stride", stride);
            }
            if let Some(min) = t.min_tokens {
                c.positive("min_tokens", min);
                if min > t.window {
                    c.error(
                        "min_tokens",
                        format!(
                            "`min_tokens` = {min} is more than `window` = {}: no window could be kept",
                            t.window
                        ),
                    )
                    .hint = Some("make `min_tokens` at most `window`".into());
                }
            }
            if let Some(n) = t.n {
                c.positive("n", n);
                check_prompt_count(c, "n", n.into());
            }
        }
        DatasetSource::File(f) => {
            if f.file.trim().is_empty() {
                c.error("file", "`file` cannot be empty");
            }
            if f.format.is_none() {
                c.error("file", format!("cannot tell the format of `{}` from its extension", f.file))
                        .hint = Some("use a .jsonl, .csv or .parquet file, or set format = \"jsonl\" | \"csv\" | \"parquet\"".into());
            }
            if f.text_column.is_empty() {
                c.error("text_column", "`text_column` cannot be empty");
            }
            if f.limit == Some(0) {
                c.error("limit", "`limit` must be greater than 0");
            }
            if let Some(limit) = f.limit {
                check_prompt_count(c, "limit", limit);
            }
            for (answer, column) in &f.answer_columns {
                if column.is_empty() {
                    c.error(
                        &format!("answer_columns.{answer}"),
                        format!("the column for answer `{answer}` is empty"),
                    );
                }
            }
            for (position, column) in &f.position_columns {
                if column.is_empty() {
                    c.error(
                        &format!("position_columns.{position}"),
                        format!("the column for position `{position}` is empty"),
                    );
                }
            }
            check_named_positions(c, "position_columns", f.position_columns.keys());
        }
    }
}

fn validate_tokens(t: &InlineTokens, c: &mut Checker<'_, '_>) {
    if t.tokens.is_empty() {
        c.error("tokens", "`tokens` needs at least one prompt");
    }
    for (i, row) in t.tokens.iter().enumerate() {
        if row.ids.is_empty() {
            c.error("tokens", format!("prompt {i} of `tokens` is empty"));
        }
        if let Some(corrupt) = &row.corrupt {
            if t.corrupt_tokens.is_some() {
                c.error(
                    &format!("tokens.{i}.corrupt"),
                    "this prompt's counterfactual is also given by `corrupt_tokens`",
                )
                .hint = Some(
                    "give counterfactuals one way: `corrupt_tokens` or each record's `corrupt`"
                        .into(),
                );
            } else if corrupt.len() != row.ids.len() {
                c.error(
                    &format!("tokens.{i}.corrupt"),
                    format!(
                        "corrupt prompt {i} has {} tokens but prompt {i} has {}",
                        corrupt.len(),
                        row.ids.len()
                    ),
                )
                .hint = Some("a counterfactual must line up token by token with its prompt".into());
            }
        }
        check_named_positions(c, &format!("tokens.{i}.positions"), row.positions.keys());
    }
    if t.corrupt_tokens.is_none()
        && let Some(with) = t.tokens.iter().position(|r| r.corrupt.is_some())
        && let Some(without) = t.tokens.iter().position(|r| r.corrupt.is_none())
    {
        c.error(
            &format!("tokens.{without}"),
            format!("prompt {without} has no counterfactual but prompt {with} has one"),
        )
        .hint = Some("give every record a `corrupt`, or none".into());
    }
    if let Some(corrupt) = &t.corrupt_tokens {
        if corrupt.len() != t.tokens.len() {
            c.error(
                "corrupt_tokens",
                format!(
                    "`corrupt_tokens` has {} prompts but `tokens` has {}",
                    corrupt.len(),
                    t.tokens.len()
                ),
            )
            .hint = Some("give one counterfactual per prompt, in the same order".into());
        }
        for (i, (a, b)) in t.tokens.iter().zip(corrupt).enumerate() {
            let a = &a.ids;
            if a.len() != b.len() {
                c.error(
                    "corrupt_tokens",
                    format!(
                        "corrupt prompt {i} has {} tokens but prompt {i} has {}",
                        b.len(),
                        a.len()
                    ),
                )
                .hint = Some("a counterfactual must line up token by token with its prompt".into());
            }
        }
    }
}

/// Position names a dataset's records or columns declare must not be the ones every prompt
/// has (`first`, `last`) or those `repeats` gives.
fn check_named_positions<'a>(
    c: &mut Checker<'_, '_>,
    key: &str,
    names: impl Iterator<Item = &'a String>,
) {
    for name in names {
        if name.is_empty() {
            c.error(key, "a named position needs a name");
        } else if ["first", "last"].contains(&name.as_str()) {
            c.error(
                &format!("{key}.{name}"),
                format!("`{name}` is a position every prompt has already"),
            )
            .hint = Some("name the position something else".into());
        }
    }
}

/// A dataset has at most [`MAX_PROMPTS`] prompts: checked here, before the runner allocates them.
fn check_prompt_count(c: &mut Checker<'_, '_>, key: &str, n: u64) {
    if n > MAX_PROMPTS {
        let full = c.full(key);
        c.error(
            key,
            format!("`{full}` = {n} prompts is more than the {MAX_PROMPTS} one dataset may have"),
        )
        .hint = Some(format!(
            "use at most {MAX_PROMPTS} (every prompt is held in memory for the whole run); split a larger study into several datasets, e.g. with a sweep over the seed"
        ));
    }
}

/// A `repeated_tokens` dataset holds at most [`MAX_TOKENS`] tokens: `n` prompts of
/// `length * repeats` tokens (plus BOS). Reported at `length` (or `repeats`) when one prompt alone
/// is over the bound, else at `n`.
fn check_repeated_tokens(c: &mut Checker<'_, '_>, r: &RepeatedTokensSpec, prepend_bos: bool) {
    let per_prompt = u64::from(r.length) * u64::from(r.repeats) + u64::from(prepend_bos);
    let total = per_prompt.saturating_mul(r.n.into());
    if total <= MAX_TOKENS || r.n as u64 > MAX_PROMPTS {
        return;
    }
    let key = if per_prompt <= MAX_TOKENS {
        "n"
    } else if r.length >= r.repeats {
        "length"
    } else {
        "repeats"
    };
    c.error(
        key,
        format!(
            "{} prompts of {per_prompt} tokens (repeats {} x length {}{}) would hold {total} tokens, more than the {MAX_TOKENS} one dataset may hold",
            r.n,
            r.repeats,
            r.length,
            if prepend_bos { " + BOS" } else { "" }
        ),
    )
    .hint = Some(format!(
        "lower n, length or repeats so that n x prompt length <= {MAX_TOKENS} (a prompt must fit the model's context anyway)"
    ));
}

fn validate_ioi(i: &Ioi, c: &mut Checker<'_, '_>) {
    c.positive("n", i.n);
    check_prompt_count(c, "n", i.n.into());
    for key in ["names", "places", "objects", "templates"] {
        let items = match key {
            "names" => &i.names,
            "places" => &i.places,
            "objects" => &i.objects,
            _ => &i.templates,
        };
        let Some(items) = items else {
            continue;
        };
        c.distinct(key, items);
        for (k, item) in items.iter().enumerate() {
            if item.is_empty() {
                c.error(&format!("{key}.{k}"), format!("`{key}` has an empty entry"));
            }
        }
    }
    let needed = match i.corrupt {
        IoiCorruption::Abc => 3,
        _ => 2,
    };
    if let Some(names) = &i.names
        && !names.is_empty()
        && names.len() < needed
    {
        c.error(
            "names",
            format!(
                "`names` has {} name(s); the ioi generator with corrupt = \"{}\" needs at least {needed}",
                names.len(),
                i.corrupt.name()
            ),
        );
    }
    for (k, template) in i.templates.iter().flatten().enumerate() {
        let key = format!("templates.{k}");
        if let Err(why) = check_template(template) {
            c.error(&key, format!("invalid ioi template: {why}"))
                .hint = Some("a template has {IO} once, {S} twice, optionally {PLACE} and {OBJECT}, and ends just before the answer, e.g. \"When {IO} and {S} went to the {PLACE}, {S} gave a {OBJECT} to\"".into());
        }
    }
}

/// Checks an IOI template's placeholders.
fn check_template(template: &str) -> Result<(), String> {
    let mut counts: IndexMap<&str, usize> = IndexMap::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err("a `{` is never closed".into());
        };
        let name = &rest[open + 1..open + close];
        if !["IO", "S", "PLACE", "OBJECT"].contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` (placeholders: {{IO}}, {{S}}, {{PLACE}}, {{OBJECT}})"
            ));
        }
        *counts.entry(name).or_default() += 1;
        rest = &rest[open + close + 1..];
    }
    let io = counts.get("IO").copied().unwrap_or(0);
    let s = counts.get("S").copied().unwrap_or(0);
    if io != 1 {
        return Err(format!("`{{IO}}` must occur exactly once, found {io}"));
    }
    if s != 2 {
        return Err(format!(
            "`{{S}}` must occur exactly twice (S1 and S2), found {s}"
        ));
    }
    if template.ends_with(char::is_whitespace) {
        return Err(
            "it ends with whitespace; the answer token carries its own leading space".into(),
        );
    }
    Ok(())
}

fn validate_prompts(p: &InlinePrompts, c: &mut Checker<'_, '_>) {
    if p.prompts.is_empty() {
        c.error("prompts", "`prompts` is empty");
        return;
    }
    let with_answers = p.prompts.iter().position(|p| !p.answers.is_empty());
    let reference: Vec<&String> = with_answers
        .map(|i| p.prompts[i].answers.keys().collect())
        .unwrap_or_default();
    let mut sorted_reference = reference.clone();
    sorted_reference.sort();
    for (k, prompt) in p.prompts.iter().enumerate() {
        let key = format!("prompts.{k}");
        if prompt.text.is_empty() {
            c.error(&key, format!("prompt {k} is empty"));
        }
        if prompt.corrupt.as_deref() == Some("") {
            c.error(
                &format!("{key}.corrupt"),
                format!("the corrupt prompt of prompt {k} is empty"),
            );
        }
        check_named_positions(c, &format!("{key}.positions"), prompt.positions.keys());
        let answers: Vec<&String> = prompt.answers.keys().collect();
        let mut sorted = answers.clone();
        sorted.sort();
        if !answers.is_empty() && sorted != sorted_reference {
            c.error(
                &format!("{key}.answers"),
                format!(
                    "prompt {k} has answers [{}] but prompt {} has [{}]",
                    list(&answers),
                    with_answers.unwrap_or(0),
                    list(&reference)
                ),
            )
            .hint = Some("prompts that have answers must all name the same ones".into());
        }
        for (name, text) in &prompt.answers {
            if text.is_empty() {
                c.error(
                    &format!("{key}.answers.{name}"),
                    format!("answer `{name}` of prompt {k} is empty"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        check_template("When {IO} and {S} went to the {PLACE}, {S} gave a {OBJECT} to").unwrap();
        check_template("{S} and {IO}: {S} gave it to").unwrap();
        assert!(check_template("{IO} {S}").unwrap_err().contains("twice"));
        assert!(
            check_template("{IO} {S} {S} {X}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            check_template("{IO} {S} {S")
                .unwrap_err()
                .contains("never closed")
        );
        assert!(
            check_template("{S} {S} to")
                .unwrap_err()
                .contains("exactly once")
        );
        assert!(
            check_template("{IO} {S} {S} to ")
                .unwrap_err()
                .contains("whitespace")
        );
    }
}
