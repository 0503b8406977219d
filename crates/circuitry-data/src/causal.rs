//! Causal models of tasks: evaluating their variables on a prompt's fields, drawing prompts from
//! their inputs, and pairing prompts into counterfactuals for interchange interventions.
//!
//! A causal model's expressions are parsed by `circuitry_vocab::expr`; this module evaluates
//! them. Its results are data (records, prompts with counterfactuals and answers); it runs no
//! model.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use circuitry_models::Tokenizer;
use circuitry_vocab::expr::{BinaryOp, Expr, Function, UnaryOp};

use crate::dataset::{Dataset, Prompt};
use crate::error::DataError;
use crate::record::{Record, encode, pieces};
use crate::rng::Rng;

/// The answer names a counterfactual pair carries: the causal model's output on the base, and
/// under the interchange.
pub const BASE_ANSWER: &str = "base";
pub const COUNTERFACTUAL_ANSWER: &str = "counterfactual";
/// The name of the output variable and of a drawn prompt's answer.
pub const OUTPUT: &str = "output";
/// Most input combinations enumerated to balance draws.
const MAX_ENUMERATED: usize = 1_000_000;

/// A variable's value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Text(_) => "text",
        }
    }
}

/// A causal model: inputs (texts) and, in evaluation order, the intermediate variables and last
/// the output.
#[derive(Clone, Debug, PartialEq)]
pub struct CausalModel {
    pub name: String,
    pub inputs: Vec<String>,
    /// The values each input takes, for drawing prompts.
    pub values: BTreeMap<String, Vec<String>>,
    /// `(variable, expression)`, each after those it reads; the last is [`OUTPUT`].
    pub order: Vec<(String, Expr)>,
}

/// Every variable's value on one input assignment.
pub type Assignment = BTreeMap<String, Value>;

impl CausalModel {
    /// Evaluates every variable from the inputs `fields`, with the variables in `fixed` taking
    /// the given values instead of being computed (an interchange).
    pub fn run(
        &self,
        fields: &BTreeMap<String, String>,
        fixed: &Assignment,
    ) -> Result<Assignment, String> {
        let mut values = Assignment::new();
        for input in &self.inputs {
            let v = match fixed.get(input) {
                Some(v) => v.clone(),
                None => Value::Text(
                    fields
                        .get(input)
                        .ok_or_else(|| format!("the prompt has no field `{input}`"))?
                        .clone(),
                ),
            };
            values.insert(input.clone(), v);
        }
        for (name, expr) in &self.order {
            let v = match fixed.get(name) {
                Some(v) => v.clone(),
                None => eval(expr, &values).map_err(|e| format!("computing `{name}`: {e}"))?,
            };
            values.insert(name.clone(), v);
        }
        Ok(values)
    }
}

fn eval(e: &Expr, env: &Assignment) -> Result<Value, String> {
    Ok(match e {
        Expr::Int(i) => Value::Int(*i),
        Expr::Text(t) => Value::Text(t.clone()),
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Name(n) => env
            .get(n)
            .cloned()
            .ok_or_else(|| format!("`{n}` has no value"))?,
        Expr::Unary(UnaryOp::Not, x) => Value::Bool(!boolean(&eval(x, env)?, "not")?),
        Expr::Unary(UnaryOp::Neg, x) => Value::Int(
            number(&eval(x, env)?, "-")?
                .checked_neg()
                .ok_or("overflow")?,
        ),
        Expr::Binary(op, a, b) => binary(*op, eval(a, env)?, || eval(b, env))?,
        Expr::Call(Function::If, args) => {
            if boolean(&eval(&args[0], env)?, "if")? {
                eval(&args[1], env)?
            } else {
                eval(&args[2], env)?
            }
        }
        Expr::Call(Function::Int, args) => match eval(&args[0], env)? {
            Value::Text(t) => Value::Int(
                t.trim()
                    .parse()
                    .map_err(|_| format!("int({t:?}): not a number"))?,
            ),
            Value::Int(i) => Value::Int(i),
            Value::Bool(b) => Value::Int(b as i64),
        },
        Expr::Call(Function::Str, args) => Value::Text(eval(&args[0], env)?.to_string()),
    })
}

fn boolean(v: &Value, op: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(format!(
            "`{op}` needs a boolean, found {} ({other})",
            other.type_name()
        )),
    }
}

fn number(v: &Value, op: &str) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!(
            "`{op}` needs a number, found {} ({other}); convert text with int(...)",
            other.type_name()
        )),
    }
}

fn binary(
    op: BinaryOp,
    a: Value,
    b: impl FnOnce() -> Result<Value, String>,
) -> Result<Value, String> {
    let sym = op.symbol();
    // `and` and `or` short-circuit.
    match op {
        BinaryOp::And => return Ok(Value::Bool(boolean(&a, sym)? && boolean(&b()?, sym)?)),
        BinaryOp::Or => return Ok(Value::Bool(boolean(&a, sym)? || boolean(&b()?, sym)?)),
        _ => {}
    }
    let b = b()?;
    let same_type = std::mem::discriminant(&a) == std::mem::discriminant(&b);
    Ok(match op {
        BinaryOp::Eq | BinaryOp::Ne if !same_type => {
            return Err(format!(
                "`{sym}` compares {} ({a}) with {} ({b}); convert with int(...) or str(...)",
                a.type_name(),
                b.type_name()
            ));
        }
        BinaryOp::Eq => Value::Bool(a == b),
        BinaryOp::Ne => Value::Bool(a != b),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let (x, y) = (number(&a, sym)?, number(&b, sym)?);
            Value::Bool(match op {
                BinaryOp::Lt => x < y,
                BinaryOp::Le => x <= y,
                BinaryOp::Gt => x > y,
                _ => x >= y,
            })
        }
        BinaryOp::Add if matches!(a, Value::Text(_)) || matches!(b, Value::Text(_)) => {
            Value::Text(format!("{a}{b}"))
        }
        _ => {
            let (x, y) = (number(&a, sym)?, number(&b, sym)?);
            Value::Int(
                match op {
                    BinaryOp::Add => x.checked_add(y),
                    BinaryOp::Sub => x.checked_sub(y),
                    BinaryOp::Mul => x.checked_mul(y),
                    BinaryOp::Div => x.checked_div_euclid(y),
                    _ => x.checked_rem_euclid(y),
                }
                .ok_or_else(|| format!("{x} {sym} {y}: division by zero or overflow"))?,
            )
        }
    })
}

/// How prompts are drawn from a causal model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CausalSampleConfig {
    pub n: usize,
    /// `{NAME}` is replaced by the value of variable NAME.
    pub template: String,
    /// Variables whose value combinations are drawn equally often.
    pub balance: Vec<String>,
    pub seed: u64,
}

/// Draws `cfg.n` records from `model` (see the spec's `CausalModelDataset` for the procedure):
/// text from the template, every variable as a field, and the answer [`OUTPUT`].
pub fn sample_records(
    dataset: &str,
    model: &CausalModel,
    cfg: &CausalSampleConfig,
) -> Result<Vec<Record>, DataError> {
    let domains: Vec<&Vec<String>> = model
        .inputs
        .iter()
        .map(|i| {
            model.values.get(i).ok_or_else(|| {
                DataError::config_at(
                    dataset,
                    "causal_model",
                    format!("causal model `{}` gives no values for `{i}`", model.name),
                    "list the values every input takes",
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let run = |choice: &[usize]| -> Result<Assignment, DataError> {
        let fields = model
            .inputs
            .iter()
            .zip(choice)
            .zip(&domains)
            .map(|((i, &c), d)| (i.clone(), d[c].clone()))
            .collect();
        model
            .run(&fields, &Assignment::new())
            .map_err(|e| eval_error(dataset, model, &e))
    };
    let mut rng = Rng::new(cfg.seed);
    let mut draws: Vec<Assignment> = Vec::with_capacity(cfg.n);
    if cfg.balance.is_empty() {
        for _ in 0..cfg.n {
            let choice: Vec<usize> = domains.iter().map(|d| rng.index(d.len())).collect();
            draws.push(run(&choice)?);
        }
    } else {
        let total = domains
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(d.len()))
            .filter(|&t| t <= MAX_ENUMERATED)
            .ok_or_else(|| {
                DataError::config_at(
                    dataset,
                    "balance",
                    format!(
                        "balancing enumerates every input combination, and the inputs of `{}` have more than {MAX_ENUMERATED}",
                        model.name
                    ),
                    "balance fewer values, or draw without `balance`",
                )
            })?;
        // Every assignment, grouped by the balanced variables' values (groups in value order).
        let mut groups: BTreeMap<Vec<Value>, Vec<Vec<usize>>> = BTreeMap::new();
        for index in 0..total {
            let mut rest = index;
            let choice: Vec<usize> = domains
                .iter()
                .rev()
                .map(|d| {
                    let c = rest % d.len();
                    rest /= d.len();
                    c
                })
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let values = run(&choice)?;
            let key = cfg.balance.iter().map(|b| values[b].clone()).collect();
            groups.entry(key).or_default().push(choice);
        }
        let groups: Vec<&Vec<Vec<usize>>> = groups.values().collect();
        for i in 0..cfg.n {
            let group = groups[i % groups.len()];
            draws.push(run(&group[rng.index(group.len())])?);
        }
    }
    draws
        .into_iter()
        .map(|values| {
            let output = values[OUTPUT].to_string();
            Ok(Record {
                text: render(&cfg.template, &values),
                corrupt: None,
                answers: [(OUTPUT.to_string(), output)].into(),
                fields: values
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
                positions: BTreeMap::new(),
            })
        })
        .collect()
}

/// `template` with every `{NAME}` replaced by the value of NAME (unknown names are kept).
fn render(template: &str, values: &Assignment) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                let name = &rest[open + 1..open + close];
                match values.get(name) {
                    Some(v) => out.push_str(&v.to_string()),
                    None => out.push_str(&rest[open..open + close + 1]),
                }
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn eval_error(dataset: &str, model: &CausalModel, e: &str) -> DataError {
    DataError::config_at(
        dataset,
        "causal_model",
        format!("causal model `{}`: {e}", model.name),
        "check the expressions of the causal model against the values its inputs take",
    )
}

/// How a base dataset is paired into counterfactuals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingConfig {
    /// Variables taken from the source.
    pub intervene: Vec<String>,
    /// Draw sources among those that change the output; drop bases without one.
    pub changing_only: bool,
    pub seed: u64,
}

/// Pairs each prompt of `base` with a source prompt (see the spec's `CounterfactualsDataset`):
/// the source is drawn uniformly, with `Rng::new(cfg.seed)`, among the other prompts with the
/// same length and named positions (and, with `changing_only`, a different counterfactual
/// output). The pair's answers add [`BASE_ANSWER`] and [`COUNTERFACTUAL_ANSWER`], tokenized with
/// `tokenizer` (each must be one token).
pub fn counterfactual_pairs(
    name: &str,
    base: &Dataset,
    model: &CausalModel,
    cfg: &PairingConfig,
    tokenizer: &Tokenizer,
) -> Result<Dataset, DataError> {
    let runs: Vec<Assignment> = base
        .iter()
        .map(|p| {
            model.run(&p.fields, &Assignment::new()).map_err(|e| {
                DataError::config_at(
                    name,
                    "causal_model",
                    format!(
                        "prompt {} of dataset `{}`: causal model `{}`: {e}",
                        p.id, base.name, model.name
                    ),
                    format!("the prompts need the fields {}", model.inputs.join(", ")),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    // Prompts that line up: same length and named positions.
    let mut shapes: BTreeMap<Shape, Vec<usize>> = BTreeMap::new();
    for (i, p) in base.iter().enumerate() {
        shapes.entry(shape(p)).or_default().push(i);
    }
    let mut token_cache: BTreeMap<String, u32> = BTreeMap::new();
    let mut token = |text: &str, prompt: u32| -> Result<u32, DataError> {
        if let Some(&t) = token_cache.get(text) {
            return Ok(t);
        }
        let ids = encode(name, tokenizer, text, &format!("prompt {prompt}"))?;
        if ids.len() != 1 {
            return Err(DataError::config_at(
                name,
                "causal_model",
                format!(
                    "the output {text:?} of causal model `{}` is {} tokens ({}), not one",
                    model.name,
                    ids.len(),
                    pieces(tokenizer, &ids)
                ),
                "make the output expression give one token (often with a leading space, e.g. \"' ' + IO\")",
            ));
        }
        token_cache.insert(text.to_string(), ids[0]);
        Ok(ids[0])
    };
    let mut rng = Rng::new(cfg.seed);
    let mut prompts = Vec::with_capacity(base.len());
    let mut unpaired = BTreeSet::new();
    for (i, p) in base.iter().enumerate() {
        let key = shape(p);
        let fixed_from = |s: usize| -> Assignment {
            cfg.intervene
                .iter()
                .map(|v| (v.clone(), runs[s][v].clone()))
                .collect()
        };
        let counterfactual = |s: usize| {
            model
                .run(&p.fields, &fixed_from(s))
                .map(|a| a[OUTPUT].clone())
                .map_err(|e| eval_error(name, model, &e))
        };
        let mut candidates: Vec<usize> = shapes[&key].iter().copied().filter(|&s| s != i).collect();
        if cfg.changing_only {
            let mut kept = Vec::new();
            for s in candidates {
                if counterfactual(s)? != runs[i][OUTPUT] {
                    kept.push(s);
                }
            }
            candidates = kept;
        }
        if candidates.is_empty() {
            unpaired.insert(p.id);
            continue;
        }
        let s = candidates[rng.index(candidates.len())];
        let source = &base.prompts[s];
        let cf = counterfactual(s)?.to_string();
        let mut pair = p.clone();
        pair.corrupt_tokens = Some(source.tokens.clone());
        pair.corrupt_text = source.text.clone();
        pair.answers.insert(
            BASE_ANSWER.into(),
            token(&runs[i][OUTPUT].to_string(), p.id)?,
        );
        pair.answers
            .insert(COUNTERFACTUAL_ANSWER.into(), token(&cf, p.id)?);
        pair.fields.insert("source".into(), source.id.to_string());
        pair.fields.insert("counterfactual_output".into(), cf);
        prompts.push(pair);
    }
    if prompts.is_empty() {
        return Err(DataError::config_at(
            name,
            "counterfactuals",
            format!(
                "no prompt of dataset `{}` has a source to pair with ({} prompts)",
                base.name,
                base.len()
            ),
            if cfg.changing_only {
                "no source changes the output: check `intervene`, or set changing_only = false"
            } else {
                "sources must have the base's length and named positions"
            },
        ));
    }
    if !unpaired.is_empty() && !cfg.changing_only {
        return Err(DataError::config_at(
            name,
            "counterfactuals",
            format!(
                "{} prompts of dataset `{}` have no other prompt of their length and named positions to pair with (first: prompt {})",
                unpaired.len(),
                base.name,
                unpaired.first().copied().unwrap_or(0)
            ),
            "use a base dataset with more prompts of each shape",
        ));
    }
    Ok(Dataset::new(name, prompts))
}

/// A prompt's length and named positions: prompts of one shape line up for interchanges.
type Shape = (usize, Vec<(String, usize)>);

fn shape(p: &Prompt) -> Shape {
    (
        p.len(),
        p.positions.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn equality() -> CausalModel {
        let domain: Vec<String> = ["x", "y", "z"].iter().map(|s| s.to_string()).collect();
        CausalModel {
            name: "eq".into(),
            inputs: ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect(),
            values: ["a", "b", "c", "d"]
                .iter()
                .map(|i| (i.to_string(), domain.clone()))
                .collect(),
            order: [
                ("left", "a == b"),
                ("right", "c == d"),
                (OUTPUT, "if(left == right, 'T', 'F')"),
            ]
            .iter()
            .map(|(n, e)| (n.to_string(), Expr::parse(e).unwrap()))
            .collect(),
        }
    }

    fn fields(values: [&str; 4]) -> BTreeMap<String, String> {
        ["a", "b", "c", "d"]
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn evaluates_and_interchanges() {
        let m = equality();
        let run = m
            .run(&fields(["x", "x", "y", "z"]), &Assignment::new())
            .unwrap();
        assert_eq!(run["left"], Value::Bool(true));
        assert_eq!(run["right"], Value::Bool(false));
        assert_eq!(run[OUTPUT], Value::Text("F".into()));
        // left taken from a source where a != b: (false == false) -> T
        let fixed = [("left".to_string(), Value::Bool(false))].into();
        let cf = m.run(&fields(["x", "x", "y", "z"]), &fixed).unwrap();
        assert_eq!(cf[OUTPUT], Value::Text("T".into()));
        assert_eq!(cf["a"], Value::Text("x".into()), "inputs stay the base's");
        // an input taken from the source recomputes what depends on it
        let fixed = [("b".to_string(), Value::Text("y".into()))].into();
        let cf = m.run(&fields(["x", "x", "y", "z"]), &fixed).unwrap();
        assert_eq!(
            (cf["left"].clone(), cf[OUTPUT].clone()),
            (Value::Bool(false), Value::Text("T".into()))
        );
    }

    #[test]
    fn arithmetic_text_and_type_errors() {
        let env: Assignment = [
            ("n".to_string(), Value::Text("7".into())),
            ("name".to_string(), Value::Text("Mary".into())),
        ]
        .into();
        let e = |s: &str| eval(&Expr::parse(s).unwrap(), &env);
        assert_eq!(e("int(n) * 2 + 1").unwrap(), Value::Int(15));
        assert_eq!(e("-7 % 3").unwrap(), Value::Int(2));
        assert_eq!(
            e("int(n) / 2 >= 3 and not false").unwrap(),
            Value::Bool(true)
        );
        assert_eq!(e("' ' + name").unwrap(), Value::Text(" Mary".into()));
        assert_eq!(e("str(1 < 2)").unwrap(), Value::Text("true".into()));
        assert!(e("n == 7").unwrap_err().contains("convert with int"));
        assert!(e("n + 1 > 2").unwrap_err().contains("needs a number"));
        assert!(e("1 / 0").unwrap_err().contains("division by zero"));
        assert!(e("if(1, 2, 3)").unwrap_err().contains("needs a boolean"));
    }

    #[test]
    fn balanced_draws_cover_every_combination_equally() {
        let m = equality();
        let cfg = CausalSampleConfig {
            n: 400,
            template: "{a} {b} {c} {d} -> {output}".into(),
            balance: vec!["left".into(), "right".into()],
            seed: 3,
        };
        let records = sample_records("d", &m, &cfg).unwrap();
        assert_eq!(records, sample_records("d", &m, &cfg).unwrap());
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for r in &records {
            *counts
                .entry((r.fields["left"].clone(), r.fields["right"].clone()))
                .or_default() += 1;
            let f = &r.fields;
            assert_eq!(
                r.text,
                format!(
                    "{} {} {} {} -> {}",
                    f["a"], f["b"], f["c"], f["d"], f[OUTPUT]
                )
            );
            assert_eq!(f["left"] == "true", f["a"] == f["b"]);
            assert_eq!(r.answers[OUTPUT], f[OUTPUT]);
        }
        assert_eq!(counts.len(), 4);
        assert!(counts.values().all(|&c| c == 100), "{counts:?}");
        // without balance, a == b only about a third of the time
        let plain = sample_records(
            "d",
            &m,
            &CausalSampleConfig {
                balance: vec![],
                ..cfg
            },
        )
        .unwrap();
        let equal = plain.iter().filter(|r| r.fields["left"] == "true").count();
        assert!((100..170).contains(&equal), "{equal}");
    }
}
