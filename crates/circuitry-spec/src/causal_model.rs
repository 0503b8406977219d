//! `[causal_models.NAME]`: a causal model of a task — its input variables (fields of a dataset's
//! prompts), intermediate variables computed from them, and the output (the answer token). Datasets
//! draw prompts from it (`generator = "causal_model"`) and pair prompts into counterfactuals
//! (`counterfactuals = ...`); probes read its variables as labels. The data crate evaluates it.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use circuitry_vocab::expr::Expr;

use crate::dataset::{DatasetSource, DatasetSpec};
use crate::diagnostic::{did_you_mean, list};
use crate::spec_struct::spec_struct;
use crate::validate::Checker;

/// The name under which a causal model's output is a variable (in templates, `intervene` and
/// probe labels).
pub const OUTPUT_VARIABLE: &str = "output";

spec_struct! {
    /// A causal model: inputs, intermediate variables computed from them by expressions, and an
    /// output expression whose value, as text, is the answer token.
    ///
    /// Expressions: numbers, 'text' or "text", `true`, `false`, names of inputs and variables,
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`, `+` (numbers, or texts joined), `-`, `*`, `/`, `%`,
    /// `and`, `or`, `not`, parentheses, and the functions `if(c, a, b)`, `int(x)` (text to number)
    /// and `str(x)`. Inputs are texts (a prompt's fields); `true` and `false` print as `true` and
    /// `false`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CausalModelSpec {
        /// The input variables: fields every prompt of the datasets it reads must have (IOI prompts
        /// have `IO`, `S`, `place`, `object`, `template`, `order`; a `causal_model` generator writes
        /// every input).
        pub inputs: Vec<String>,
        /// The values each input takes, drawn uniformly by `generator = "causal_model"` (which
        /// needs every input listed here): input -> texts.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        pub values: IndexMap<String, Vec<String>>,
        /// Intermediate variables: name -> expression over the inputs and other variables (no
        /// cycles), e.g. `{ left = "a == b", right = "c == d" }`.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        pub variables: IndexMap<String, String>,
        /// The output: an expression over the inputs and variables whose value, as text, must be
        /// one token, e.g. `"if(left == right, 't1', 't2')"` or `"' ' + IO"`. It is also the
        /// variable `output`.
        pub output: String,
    }
}

impl CausalModelSpec {
    /// Every variable name: inputs, intermediates, `output`.
    pub fn variable_names(&self) -> Vec<&str> {
        self.inputs
            .iter()
            .map(String::as_str)
            .chain(self.variables.keys().map(String::as_str))
            .chain([OUTPUT_VARIABLE])
            .collect()
    }

    /// The intermediate variables in an order where each comes after those it reads, then the
    /// output: `(name, expression)`. `None` when an expression does not parse or the variables
    /// form a cycle (the checks report those).
    pub fn evaluation_order(&self) -> Option<Vec<(String, Expr)>> {
        let mut parsed: Vec<(String, Expr)> = Vec::new();
        for (name, text) in &self.variables {
            parsed.push((name.clone(), Expr::parse(text).ok()?));
        }
        let mut order: Vec<(String, Expr)> = Vec::new();
        let mut done: Vec<String> = self.inputs.clone();
        while !parsed.is_empty() {
            let ready = parsed
                .iter()
                .position(|(_, e)| e.names().iter().all(|n| done.iter().any(|d| d == n)))?;
            let (name, e) = parsed.remove(ready);
            done.push(name.clone());
            order.push((name, e));
        }
        order.push((OUTPUT_VARIABLE.to_string(), Expr::parse(&self.output).ok()?));
        Some(order)
    }

    pub(crate) fn validate(&self, c: &mut Checker<'_, '_>) {
        if self.inputs.is_empty() {
            c.error("inputs", "a causal model needs at least one input")
                .hint =
                Some("name the prompt fields it reads, e.g. inputs = [\"a\", \"b\"]".into());
        } else {
            c.distinct("inputs", &self.inputs);
        }
        for (i, name) in self.inputs.iter().enumerate() {
            if name == OUTPUT_VARIABLE {
                c.error(
                    &format!("inputs.{i}"),
                    format!("`{OUTPUT_VARIABLE}` names the output"),
                )
                .hint = Some("rename the input".into());
            }
        }
        for name in self.variables.keys() {
            let clash = if self.inputs.contains(name) {
                Some("an input")
            } else if name == OUTPUT_VARIABLE {
                Some("the output")
            } else {
                None
            };
            if let Some(what) = clash {
                c.error(
                    &format!("variables.{name}"),
                    format!("variable `{name}` has the name of {what}"),
                )
                .hint = Some("give each variable its own name".into());
            }
        }
        for (input, values) in &self.values {
            let key = format!("values.{input}");
            if !self.inputs.contains(input) {
                let inputs: Vec<&str> = self.inputs.iter().map(String::as_str).collect();
                c.error(&key, format!("`{input}` is not an input")).hint =
                    Some(match did_you_mean(input, &inputs) {
                        Some(s) => format!("did you mean `{s}`? inputs: {}", list(&inputs)),
                        None => format!("inputs: {}", list(&inputs)),
                    });
            } else if values.is_empty() {
                c.error(&key, format!("input `{input}` has no values"));
            } else {
                c.distinct(&key, values);
            }
        }
        let known: Vec<&str> = self.variable_names();
        let mut clean = true;
        let exprs = self
            .variables
            .iter()
            .map(|(n, t)| (format!("variables.{n}"), Some(n.as_str()), t))
            .chain([("output".to_string(), None, &self.output)]);
        for (key, name, text) in exprs {
            match Expr::parse(text) {
                Ok(e) => {
                    for used in e.names() {
                        let defined = known.contains(&used) && used != OUTPUT_VARIABLE;
                        if !defined || Some(used) == name {
                            clean = false;
                            let offset = text.find(used).unwrap_or(0);
                            let candidates: Vec<&str> = known
                                .iter()
                                .copied()
                                .filter(|k| *k != OUTPUT_VARIABLE && Some(*k) != name)
                                .collect();
                            let message = if Some(used) == name {
                                format!("variable `{used}` reads itself")
                            } else {
                                format!("unknown variable `{used}`")
                            };
                            c.error_in_string(&key, text, offset, used.len(), message)
                                .hint = Some(match did_you_mean(used, &candidates) {
                                Some(s) => {
                                    format!("did you mean `{s}`? variables: {}", list(&candidates))
                                }
                                None => format!("inputs and variables: {}", list(&candidates)),
                            });
                        }
                    }
                }
                Err(e) => {
                    clean = false;
                    c.error_in_string(&key, text, e.offset, 1, format!("invalid expression: {}", e.message))
                        .hint = Some("expressions use ==, !=, <, >, +, -, *, /, %, and, or, not, parentheses, 'text', numbers and if(c, a, b), int(x), str(x)".into());
                }
            }
        }
        if clean && self.evaluation_order().is_none() {
            let names: Vec<&str> = self.variables.keys().map(String::as_str).collect();
            c.error(
                "variables",
                format!(
                    "the variables {} depend on each other in a cycle",
                    list(&names)
                ),
            )
            .hint =
                Some("each variable may read only inputs and variables that do not read it".into());
        }
    }
}

/// The checks of a dataset against the other sections: the causal model it names exists and
/// knows the variables it uses, and a counterfactual dataset's base exists and is not itself
/// pairs. Fills in a counterfactual dataset's resolved base.
pub(crate) fn check_causal_references(
    name: &str,
    datasets: &mut IndexMap<String, DatasetSpec>,
    causal_models: &IndexMap<String, CausalModelSpec>,
    causal_names: &[&str],
    c: &mut Checker<'_, '_>,
) {
    let Some(spec) = datasets.get(name) else {
        return;
    };
    let (model_name, used): (&str, Vec<(String, &str)>) = match &spec.source {
        DatasetSource::CausalModel(g) => (
            &g.causal_model,
            g.balance
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("balance.{i}"), v.as_str()))
                .collect(),
        ),
        DatasetSource::Counterfactuals(p) => (
            &p.causal_model,
            p.intervene
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("intervene.{i}"), v.as_str()))
                .collect(),
        ),
        _ => return,
    };
    let Some(model) = causal_models.get(model_name) else {
        if !causal_names.contains(&model_name) {
            let hint = match did_you_mean(model_name, causal_names) {
                Some(s) => format!("did you mean `{s}`? causal models: {}", list(causal_names)),
                None if causal_names.is_empty() => {
                    format!("define it in a [causal_models.{model_name}] section")
                }
                None => format!("causal models: {}", list(causal_names)),
            };
            c.error("causal_model", format!("no causal model `{model_name}`"))
                .hint = Some(hint);
        }
        return;
    };
    let variables = model.variable_names();
    for (key, v) in used {
        if !variables.contains(&v) {
            let hint = match did_you_mean(v, &variables) {
                Some(s) => format!("did you mean `{s}`? variables: {}", list(&variables)),
                None => format!("variables: {}", list(&variables)),
            };
            c.error(
                &key,
                format!("causal model `{model_name}` has no variable `{v}`"),
            )
            .hint = Some(hint);
        } else if v == OUTPUT_VARIABLE && key.starts_with("intervene") {
            c.error(&key, "intervening on the output leaves nothing to test")
                .hint = Some("intervene on inputs or intermediate variables".into());
        }
    }
    match &spec.source {
        DatasetSource::CausalModel(g) => {
            let missing: Vec<&str> = model
                .inputs
                .iter()
                .filter(|i| !model.values.contains_key(*i))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                c.error(
                    "causal_model",
                    format!(
                        "causal model `{model_name}` gives no values for {}, so prompts cannot be drawn",
                        list(&missing)
                    ),
                )
                .hint = Some(format!(
                    "add values = {{ {} = [...] }} to [causal_models.{model_name}]",
                    missing[0]
                ));
            }
            check_placeholders(c, &g.template, &variables);
        }
        DatasetSource::Counterfactuals(p) => {
            let base_name = p.counterfactuals.clone();
            match datasets.get(&base_name) {
                None => {
                    let names: Vec<&str> = datasets.keys().map(String::as_str).collect();
                    let hint = match did_you_mean(&base_name, &names) {
                        Some(s) => format!("did you mean `{s}`? datasets: {}", list(&names)),
                        None => format!("datasets: {}", list(&names)),
                    };
                    c.error("counterfactuals", format!("no dataset `{base_name}`"))
                        .hint = Some(hint);
                }
                Some(base) if matches!(base.source, DatasetSource::Counterfactuals(_)) => {
                    c.error(
                        "counterfactuals",
                        format!("dataset `{base_name}` is itself counterfactual pairs"),
                    )
                    .hint = Some("pair the prompts of a dataset of single prompts".into());
                }
                Some(base) => {
                    let base = Box::new(base.clone());
                    if let Some(DatasetSource::Counterfactuals(p)) =
                        datasets.get_mut(name).map(|d| &mut d.source)
                    {
                        p.base = Some(base);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Every `{NAME}` of a causal model dataset's template is a variable, and every `{` closes.
fn check_placeholders(c: &mut Checker<'_, '_>, template: &str, variables: &[&str]) {
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            c.error_in_string(
                "template",
                template,
                offset + open,
                1,
                "`{` without its `}`",
            );
            return;
        };
        let name = &rest[open + 1..open + close];
        if !variables.contains(&name) {
            let hint = match did_you_mean(name, variables) {
                Some(s) => format!("did you mean `{s}`? variables: {}", list(variables)),
                None => format!(
                    "placeholders name inputs, variables or output: {}",
                    list(variables)
                ),
            };
            c.error_in_string(
                "template",
                template,
                offset + open,
                close + 1,
                format!("unknown placeholder `{{{name}}}`"),
            )
            .hint = Some(hint);
        }
        offset += open + close + 1;
        rest = &rest[open + close + 1..];
    }
}
