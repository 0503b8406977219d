//! Checks beyond what the types enforce: ranges, duplicates, and references from analyses to the
//! named positions and answer tokens of their dataset. Every check reports at the key it is about.

use std::fmt::Display;

use crate::dataset::{DatasetSource, DatasetSpec};
use crate::de::DeError;
use crate::diagnostic::{Diagnostic, Sources, did_you_mean, list};
use crate::node::{Entry, Node};
use crate::refs::{
    Measure, MetricSpec, PositionSpec, PositionsSpec, Target, TokenSelection, TokenSpec,
};
use crate::span::Span;

/// Collects diagnostics while an experiment is lowered from its node tree.
pub(crate) struct Ctx<'a> {
    pub sources: &'a Sources,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub fn new(sources: &'a Sources) -> Self {
        Ctx {
            sources,
            diags: Vec::new(),
        }
    }

    pub fn push(&mut self, d: Diagnostic) -> &mut Diagnostic {
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    pub fn error(&mut self, span: &Span, message: impl Into<String>) -> &mut Diagnostic {
        let d = self.sources.error(span, message);
        self.push(d)
    }

    /// Reports a deserialization error; `extra_keys` are further valid keys for did-you-mean.
    pub fn de_error(&mut self, e: DeError, extra_keys: &[&str]) {
        let d = e.into_diagnostic(self.sources, extra_keys);
        self.push(d);
    }

    /// The entries of the section `[path]` at `node`, or `None` with an error (and `hint`) when
    /// it is not a table.
    pub fn section_entries<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        hint: String,
    ) -> Option<&'n [Entry]> {
        let entries = node.as_table();
        if entries.is_none() {
            self.error(
                &node.span,
                format!(
                    "`{path}` must be a table, found {}",
                    node.value.a_type_name()
                ),
            )
            .hint = Some(hint);
        }
        entries
    }

    /// A checker for the entry at `node`, whose dotted path is `path` (e.g. `analyses.heads`).
    pub fn checker<'c>(&'c mut self, node: &'c Node, path: String) -> Checker<'a, 'c> {
        Checker {
            ctx: self,
            node,
            path,
            dataset: None,
            dataset_names: Vec::new(),
        }
    }
}

/// Checks one entry (a model, dataset, analysis or training run); keys are relative to its table.
pub(crate) struct Checker<'a, 'c> {
    ctx: &'c mut Ctx<'a>,
    node: &'c Node,
    /// Dotted path of the entry, e.g. `analyses.heads`.
    path: String,
    /// For analyses and training runs: the dataset they read, when it is defined and valid.
    pub dataset: Option<(&'c str, &'c DatasetSpec)>,
    /// For analyses: the names of every `[datasets.*]` entry, for parameters that name another
    /// dataset (see [`Checker::dataset_reference`]).
    pub dataset_names: Vec<String>,
}

impl Checker<'_, '_> {
    /// Reports `message` at `key` (a dotted path below the entry; `""` is the entry itself). A key
    /// that is absent from the text (a default) is reported at its nearest written ancestor.
    pub fn error(&mut self, key: &str, message: impl Into<String>) -> &mut Diagnostic {
        let span = self.node.span_at(key).clone();
        self.ctx.error(&span, message)
    }

    /// Reports `message` at `len` bytes from byte `offset` of the string `text` written at `key`:
    /// inside the quotes when the file spells the string plainly (no escapes, one line), else at
    /// the whole value.
    pub fn error_in_string(
        &mut self,
        key: &str,
        text: &str,
        offset: usize,
        len: usize,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let mut span = self.node.span_at(key).clone();
        if span.end - span.start == text.len() + 2 && !text.contains('\\') && !text.contains('\n') {
            span.start += 1 + offset.min(text.len());
            span.end = (span.start + len.max(1)).min(span.end - 1).max(span.start);
        }
        self.ctx.error(&span, message)
    }

    /// `key` as a full dotted path, for messages.
    pub fn full(&self, key: &str) -> String {
        if key.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// `key` must be > 0.
    pub fn positive(&mut self, key: &str, value: impl Into<f64> + Copy + Display) {
        if value.into() <= 0.0 {
            let full = self.full(key);
            self.error(
                key,
                format!("`{full}` must be greater than 0, found {value}"),
            );
        }
    }

    /// `key` must be ≥ 0.
    pub fn non_negative(&mut self, key: &str, value: f64) {
        if value < 0.0 {
            let full = self.full(key);
            self.error(key, format!("`{full}` must not be negative, found {value}"));
        }
    }

    /// A list must not be empty nor repeat an element.
    pub fn distinct<T: PartialEq + Display>(&mut self, key: &str, items: &[T]) {
        if items.is_empty() {
            let full = self.full(key);
            self.error(key, format!("`{full}` is an empty list")).hint =
                Some(format!("remove `{key}` to use its default"));
            return;
        }
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                let full = self.full(key);
                self.error(
                    &format!("{key}.{i}"),
                    format!("`{full}` lists `{item}` twice"),
                );
            }
        }
    }

    /// An optional layer/head/prompt filter: absent means all; present must be non-empty and
    /// free of duplicates.
    pub fn filter(&mut self, key: &str, items: Option<&[u32]>) {
        if let Some(items) = items {
            self.distinct(key, items);
        }
    }

    /// Two keys of which exactly one must be given (`first`, `second`: each key and whether it is
    /// given): reports neither (`missing`, with `hint`, at the entry) or both (at `second`).
    /// Whether exactly one is given.
    pub fn exactly_one_of(
        &mut self,
        (first, has_first): (&str, bool),
        (second, has_second): (&str, bool),
        missing: &str,
        hint: &str,
    ) -> bool {
        match (has_first, has_second) {
            (false, false) => self.error("", missing).hint = Some(hint.into()),
            (true, true) => {
                self.error(
                    second,
                    format!("give either `{first}` or `{second}`, not both"),
                );
            }
            _ => return true,
        }
        false
    }

    /// Prompt indices must exist when the dataset's size is known.
    pub fn prompt_indices(&mut self, key: &str, items: Option<&[u32]>) {
        self.filter(key, items);
        let (Some(items), Some((name, dataset))) = (items, self.dataset) else {
            return;
        };
        let Some(len) = dataset.prompt_count() else {
            return;
        };
        for (i, &p) in items.iter().enumerate() {
            if u64::from(p) >= len {
                self.error(
                    &format!("{key}.{i}"),
                    format!("prompt {p} does not exist: dataset `{name}` has {len} prompts (indices 0 to {})", len.saturating_sub(1)),
                );
            }
        }
    }

    pub fn position(&mut self, key: &str, position: &PositionSpec) {
        let (PositionSpec::Named(name), Some((dataset_name, dataset))) = (position, self.dataset)
        else {
            return;
        };
        let named = dataset.named_positions();
        if named.iter().any(|n| n == name) {
            return;
        }
        let kind = dataset.source_name();
        let d = self.error(
            key,
            format!("dataset `{dataset_name}` ({kind}) has no named position `{name}`"),
        );
        d.hint = Some(if named.is_empty() {
            "this dataset names no positions (the ioi generator names IO, S1, S2 and END); use \"first\", \"last\" or an integer index (negative counts from the end)".to_string()
        } else {
            match did_you_mean(name, &named) {
                Some(s) => format!("did you mean `{s}`? named positions: {}", list(named)),
                None => format!(
                    "named positions: {}; or use \"first\", \"last\" or an integer index",
                    list(named)
                ),
            }
        });
    }

    pub fn positions(&mut self, key: &str, positions: &PositionsSpec) {
        if let PositionsSpec::List(items) = positions {
            for (i, p) in items.iter().enumerate() {
                self.position(&format!("{key}.{i}"), p);
            }
            self.distinct(key, items);
        }
    }

    pub fn token(&mut self, key: &str, token: &TokenSpec) {
        let (TokenSpec::Answer(name), Some((dataset_name, dataset))) = (token, self.dataset) else {
            return;
        };
        let answers = dataset.answer_names();
        if answers.iter().any(|a| a == name) {
            if let DatasetSource::Prompts(p) = &dataset.source
                && let Some(i) = p.prompts.iter().position(|p| p.answers.is_empty())
            {
                self.error(
                    key,
                    format!(
                        "answer `{name}` is missing from prompt {i} of dataset `{dataset_name}`"
                    ),
                )
                .hint = Some("give every prompt of the dataset its answers = { ... }".into());
            }
            return;
        }
        let kind = dataset.source_name();
        let literal = serde_json::Value::String(name.clone());
        let d = self.error(
            key,
            format!("dataset `{dataset_name}` ({kind}) has no answer `{name}`"),
        );
        d.hint = Some(if answers.is_empty() {
            format!(
                "this dataset defines no answers; for literal text write {{ text = {literal} }}, for a token id {{ id = N }}"
            )
        } else {
            match did_you_mean(name, &answers) {
                Some(s) => format!("did you mean `{s}`? answers: {}", list(&answers)),
                None => format!(
                    "answers: {}; for literal text write {{ text = {literal} }}",
                    list(&answers)
                ),
            }
        });
    }

    pub fn tokens(&mut self, key: &str, tokens: &TokenSelection) {
        if let TokenSelection::Tokens(items) = tokens {
            for (i, t) in items.iter().enumerate() {
                self.token(&format!("{key}.{i}"), t);
            }
            self.distinct(key, items);
        }
    }

    fn token_pair(&mut self, key: &str, a: &TokenSpec, b: &TokenSpec) {
        self.token(&format!("{key}.0"), a);
        self.token(&format!("{key}.1"), b);
        if a == b {
            self.error(
                key,
                format!("both tokens of `{key}` are `{a}`: the difference is always 0"),
            );
        }
    }

    pub fn target(&mut self, key: &str, target: &Target) {
        match target {
            Target::Next => {}
            Target::Token(t) => self.token(&format!("{key}.token"), t),
            Target::Diff(a, b) => self.token_pair(&format!("{key}.diff"), a, b),
        }
    }

    /// `key` names a `[datasets.*]` entry (of [`Checker::dataset_names`]).
    pub fn dataset_reference(&mut self, key: &str, name: &str) {
        if self.dataset_names.iter().any(|n| n == name) {
            return;
        }
        let defined: Vec<&str> = self.dataset_names.iter().map(String::as_str).collect();
        let hint = match did_you_mean(name, &defined) {
            Some(s) => format!("did you mean `{s}`? defined datasets: {}", list(&defined)),
            None if defined.is_empty() => format!("define it in a [datasets.{name}] section"),
            None => format!("defined datasets: {}", list(&defined)),
        };
        self.error(key, format!("no dataset `{name}`")).hint = Some(hint);
    }

    /// The two tokens of an ICL score (`(key, token index)` each): `1 <= early < late`.
    pub fn icl_tokens(&mut self, (early_key, early): (&str, u32), (late_key, late): (&str, u32)) {
        if early == 0 {
            self.error(
                early_key,
                "the early token of `icl_score` must be 1 or later (token 0 has no prediction)",
            )
            .hint = Some(
                "e.g. 50 and 500 (Olsson et al.), or 10 and 30 on [BOS] r r with |r| = 20".into(),
            );
        } else if late <= early {
            self.error(
                late_key,
                format!("`late = {late}` must come after `early = {early}`"),
            )
            .hint = Some(
                "the ICL score is the loss on the late token minus the loss on the early one, e.g. 50 and 500"
                    .into(),
            );
        }
    }

    pub fn metric(&mut self, key: &str, metric: &MetricSpec) {
        match &metric.measure {
            Measure::LogitDiff(a, b) => self.token_pair(&format!("{key}.logit_diff"), a, b),
            Measure::Logprob(t) => self.token(&format!("{key}.logprob"), t),
            Measure::Prob(t) => self.token(&format!("{key}.prob"), t),
            Measure::Top1(t) => self.token(&format!("{key}.top1"), t),
            Measure::IclScore { early, late } => {
                let key = format!("{key}.icl_score");
                self.icl_tokens((&key, *early), (&key, *late));
            }
            Measure::Loss | Measure::Kl => {}
        }
    }
}
