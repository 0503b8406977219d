//! `probe`: linear probes for a prompt field at each (layer, position) of a site, scored on
//! held-out prompts, with Hewitt and Liang's control task. The fitting is [`crate::probes`].

use std::collections::BTreeMap;

use circuitry_data::{Rng, derive_seed};
use circuitry_models::{HookKind, HookPoint};
use circuitry_spec::{ProbeMethod, ProbeParams};

use super::prelude::*;
use crate::acts;
use crate::probes::{Features, LinearFit, logistic, predict_class, r_squared, ridge};
use crate::refs;

crate::table_row! {
    pub struct ProbeRow {
        site: String = "The hook probed (resid_post, mlp_out, ...).",
        layer = "Layer of the hook.",
        position: Option<i32> = "Token index probed, when it is the same in every prompt (null for positions like \"last\" in prompts of different lengths).",
        position_name: String = "The position as written (\"last\", \"IO\", an index).",
        method: String = "\"logistic\" (score: accuracy) or \"ridge\" (score: R^2).",
        n_train: u32 = "Training prompts.",
        n_test: u32 = "Held-out prompts.",
        n_classes: Option<u32> = "Distinct labels (logistic); null for ridge.",
        train_score: f64 = "Score on the training prompts.",
        test_score: f64 = "Score on the held-out prompts.",
        control_score: Option<f64> = "Held-out score of the same probe fitted to the control task (each token type at the position labelled at random from the labels' distribution); null without control.",
        selectivity: Option<f64> = "test_score - control_score (Hewitt and Liang, 2019).",
        majority: Option<f64> = "Held-out accuracy of always predicting the most frequent training label (logistic); null for ridge.",
    }
}

/// What one prompt contributes: its label, and per site its features and the token there.
struct Sample {
    label: String,
    /// Per position: the token index and token id there.
    at: Vec<(usize, u32)>,
}

pub struct Probe {
    params: ProbeParams,
    kind: HookKind,
    layers: Vec<usize>,
    samples: Vec<Sample>,
    /// `[layer][position]`: one row per sample.
    features: Vec<Vec<Features>>,
}

impl Kind for Probe {
    type Params = ProbeParams;
    const TABLES: &'static [TableDecl] = &[TableDecl::main::<ProbeRow>()];

    fn build(params: Self::Params, cx: BuildContext) -> Result<Self, AnalysisError> {
        super::check_site(
            cx.config,
            params.site.name(),
            circuitry_models::HookKind::from(params.site),
            "site",
        )?;
        let kind = HookKind::from(params.site);
        let layers = super::causal::layers(cx.config, params.layers.as_deref())?;
        Ok(Probe {
            params,
            kind,
            layers,
            samples: Vec::new(),
            features: Vec::new(),
        })
    }
}

impl Analysis for Probe {
    fn requirements(&self) -> Requirements {
        Requirements::at_layers(&self.layers, self.kind)
    }

    fn process(
        &mut self,
        _model: &ModelContext,
        batch: &BatchContext,
        _sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let hooks: Vec<_> = self
            .layers
            .iter()
            .map(|&l| acts::host(batch.clean_output, HookPoint::layer(l, self.kind)))
            .collect::<Result<_, _>>()?;
        if self.features.is_empty() {
            let d = hooks
                .first()
                .and_then(|h| h.shape.last().copied())
                .unwrap_or(0);
            let positions = self.params.positions.len();
            self.features = hooks
                .iter()
                .map(|_| (0..positions).map(|_| Features::new(d)).collect())
                .collect();
        }
        for (r, prompt) in batch.prompts.iter().enumerate() {
            let label = prompt.fields.get(&self.params.label).ok_or_else(|| {
                let fields: Vec<&str> = prompt.fields.keys().map(String::as_str).collect();
                AnalysisError::at(
                    "label",
                    format!(
                        "prompt {} has no field `{}`; its fields: {}",
                        prompt.id,
                        self.params.label,
                        if fields.is_empty() {
                            "none".to_string()
                        } else {
                            fields.join(", ")
                        }
                    ),
                )
            })?;
            let mut at = Vec::with_capacity(self.params.positions.len());
            for p in &self.params.positions {
                let i = refs::position(p, prompt)?;
                at.push((i, prompt.tokens[i]));
            }
            for (li, hook) in hooks.iter().enumerate() {
                for (pi, &(i, _)) in at.iter().enumerate() {
                    let v = acts::vector(hook, &[r, batch.slot(r, i)]);
                    self.features[li][pi].push(v.iter().map(|&x| f64::from(x)));
                }
            }
            self.samples.push(Sample {
                label: label.clone(),
                at,
            });
        }
        Ok(())
    }

    fn finish(
        &mut self,
        model: &ModelContext,
        sink: &mut dyn TableSink,
    ) -> Result<(), AnalysisError> {
        let p = &self.params;
        let seed = p.seed.unwrap_or(0);
        let n = self.samples.len();
        let sites = (self.layers.len() * p.positions.len()) as u64;
        let (train, test) = split(n, p.test_fraction, seed, "prompts")?;
        let labels: Vec<&str> = self.samples.iter().map(|s| s.label.as_str()).collect();
        let targets = Targets::new(p.method, &labels)?;
        if targets.classes() == Some(1) {
            return Err(AnalysisError::at(
                "label",
                format!(
                    "every prompt has the label {:?}: a probe needs at least two classes",
                    labels[0]
                ),
            ));
        }
        let mut rows = Rows::<ProbeRow>::new();
        for (li, &layer) in self.layers.iter().enumerate() {
            for (pi, position) in p.positions.iter().enumerate() {
                let x = &self.features[li][pi];
                let (train_score, test_score) = targets.fit_score(x, &train, &test, p.alpha);
                let control = p.control.then(|| {
                    // Each token type at this position gets one prompt's label, drawn by a
                    // generator seeded with the token id: the labels' distribution, no signal.
                    let control: Vec<&str> = self
                        .samples
                        .iter()
                        .map(|s| {
                            let token = s.at[pi].1;
                            let mut rng = Rng::new(derive_seed(seed, &format!("control/{token}")));
                            labels[rng.index(n)]
                        })
                        .collect();
                    Targets::new(p.method, &control)
                        .map(|t| t.fit_score(x, &train, &test, p.alpha).1)
                });
                let control = control.transpose()?;
                let indices: Vec<usize> = self.samples.iter().map(|s| s.at[pi].0).collect();
                rows.push(ProbeRow {
                    site: p.site.name().to_string(),
                    layer: layer as i32,
                    position: common_position(&indices),
                    position_name: position.to_string(),
                    method: p.method.name().to_string(),
                    n_train: train.len() as u32,
                    n_test: test.len() as u32,
                    n_classes: targets.classes().map(|c| c as u32),
                    train_score,
                    test_score,
                    control_score: control,
                    selectivity: control.map(|c| test_score - c),
                    majority: targets.majority(&train, &test),
                });
                model.progress.advance(rows.len() as u64, sites);
            }
        }
        emit(sink, None, rows)
    }
}

/// A seeded split of `0..n` (`what`: prompts, pairs): the first `ceil(n * fraction)` of a
/// shuffle are the test set; both sets in increasing order, and an error at `test_fraction`
/// when either is empty.
pub(crate) fn split(
    n: usize,
    fraction: f64,
    seed: u64,
    what: &str,
) -> Result<(Vec<usize>, Vec<usize>), AnalysisError> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(derive_seed(seed, "split")).shuffle(&mut order);
    let n_test = (((n as f64) * fraction).ceil() as usize).min(n);
    let mut test = order[..n_test].to_vec();
    let mut train = order[n_test..].to_vec();
    if train.is_empty() || test.is_empty() {
        return Err(AnalysisError::at(
            "test_fraction",
            format!(
                "{n} {what} split into {} for training and {} for testing; both need at least one",
                train.len(),
                test.len()
            ),
        ));
    }
    test.sort_unstable();
    train.sort_unstable();
    Ok((train, test))
}

/// The token index every prompt has at a position, if they all agree (`position` columns).
pub(crate) fn common_position(indices: &[usize]) -> Option<i32> {
    let first = *indices.first()?;
    indices.iter().all(|&i| i == first).then_some(first as i32)
}

/// Probe targets: class indices (logistic) or numbers (ridge).
enum Targets {
    Classes { labels: Vec<usize>, classes: usize },
    Numbers(Vec<f64>),
}

impl Targets {
    fn new(method: ProbeMethod, labels: &[&str]) -> Result<Targets, AnalysisError> {
        match method {
            ProbeMethod::Logistic => {
                let mut index: BTreeMap<&str, usize> = BTreeMap::new();
                for &l in labels {
                    index.insert(l, 0);
                }
                for (i, v) in index.values_mut().enumerate() {
                    *v = i;
                }
                Ok(Targets::Classes {
                    labels: labels.iter().map(|l| index[l]).collect(),
                    classes: index.len(),
                })
            }
            ProbeMethod::Ridge => labels
                .iter()
                .map(|l| {
                    l.trim().parse::<f64>().map_err(|_| {
                        AnalysisError::at(
                            "method",
                            format!("ridge probes need numeric labels, found {l:?}"),
                        )
                    })
                })
                .collect::<Result<_, _>>()
                .map(Targets::Numbers),
        }
    }

    fn classes(&self) -> Option<usize> {
        match self {
            Targets::Classes { classes, .. } => Some(*classes),
            Targets::Numbers(_) => None,
        }
    }

    /// Fits on `train` and scores on `train` and `test`.
    fn fit_score(&self, x: &Features, train: &[usize], test: &[usize], alpha: f64) -> (f64, f64) {
        let xt = x.select(train);
        match self {
            // One class (a control task at a position whose token never changes): the constant
            // prediction is always right.
            Targets::Classes { classes: 1, .. } => (1.0, 1.0),
            Targets::Classes { labels, classes } => {
                let y: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
                let fit = logistic(&xt, &y, *classes, alpha);
                let accuracy = |set: &[usize]| {
                    let right = set
                        .iter()
                        .filter(|&&i| predict_class(&fit, x.row(i)) == labels[i])
                        .count();
                    right as f64 / set.len() as f64
                };
                (accuracy(train), accuracy(test))
            }
            Targets::Numbers(values) => {
                let y: Vec<f64> = train.iter().map(|&i| values[i]).collect();
                let fit = ridge(&xt, &y, alpha);
                let r2 = |set: &[usize]| score_ridge(&fit, x, values, set);
                (r2(train), r2(test))
            }
        }
    }

    fn majority(&self, train: &[usize], test: &[usize]) -> Option<f64> {
        let Targets::Classes { labels, classes } = self else {
            return None;
        };
        let mut counts = vec![0usize; *classes];
        for &i in train {
            counts[labels[i]] += 1;
        }
        let top = (0..*classes).max_by_key(|&c| (counts[c], usize::MAX - c))?;
        Some(test.iter().filter(|&&i| labels[i] == top).count() as f64 / test.len() as f64)
    }
}

fn score_ridge(fit: &LinearFit, x: &Features, values: &[f64], set: &[usize]) -> f64 {
    let predicted: Vec<f64> = set.iter().map(|&i| fit.scores(x.row(i))[0]).collect();
    let truth: Vec<f64> = set.iter().map(|&i| values[i]).collect();
    r_squared(&predicted, &truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_and_complete() {
        let (train, test) = split(10, 0.25, 4, "prompts").unwrap();
        assert_eq!(test.len(), 3);
        assert_eq!(train.len(), 7);
        let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(split(10, 0.25, 4, "prompts").unwrap(), (train, test));
        assert_ne!(
            split(10, 0.25, 5, "prompts").unwrap().1,
            split(10, 0.25, 4, "prompts").unwrap().1
        );
        let e = split(1, 0.5, 4, "pairs").unwrap_err().to_string();
        assert!(e.contains("1 pairs split into 0 for training and 1"), "{e}");
        assert_eq!(common_position(&[3, 3]), Some(3));
    }

    #[test]
    fn one_class_is_always_predicted_right() {
        // A control task at a position whose token never changes labels every prompt alike.
        let x = Features::from_rows(&[vec![1.0], vec![2.0], vec![3.0]]);
        let t = Targets::new(ProbeMethod::Logistic, &["a", "a", "a"]).unwrap();
        assert_eq!(t.classes(), Some(1));
        assert_eq!(t.fit_score(&x, &[0, 1], &[2], 1.0), (1.0, 1.0));
        assert_eq!(common_position(&[3, 4]), None);
    }
}
