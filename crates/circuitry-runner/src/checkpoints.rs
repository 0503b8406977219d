//! Checkpoint series: a `[models.*]` entry with `checkpoints = DIR` stands for one model per
//! saved step. Planning expands each sweep variant into the variant without the analyses of
//! series models, plus one run per (series model, step) holding only that model's analyses,
//! with the model's entry pointed at the step's directory. Every checkpoint's analyses are then
//! ordinary nodes (cached, sharded, resumed one by one), and their tables gain a `step` column.
//!
//! A series that a `[train.*]` run of the same file writes (`<output>/checkpoints`) is planned
//! from the run's `save_every`/`save_steps` before it exists; any other series is the
//! `step<N>` subdirectories found on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use circuitry_spec::checkpoints::{CHECKPOINTS_DIR, parse_step_dir_name, step_dir_name};
use circuitry_spec::{Experiment, TrainSpec, Variant};
use serde::Serialize;

use crate::error::RunError;
use crate::publish::normalize;

/// The checkpoint a run of a series model analyses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// The `[models.*]` entry.
    pub model: String,
    /// Updates done.
    pub step: u32,
}

/// Where training run `spec` of `exp` saves its checkpoints: `<output>/checkpoints`, normalized.
fn train_checkpoints_dir(exp: &Experiment, spec: &TrainSpec) -> PathBuf {
    normalize(&exp.resolve_path(&spec.output).join(CHECKPOINTS_DIR))
}

/// The `step<N>` subdirectories of a checkpoint directory, by step (any order).
pub fn step_dirs(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let step = path
            .file_name()
            .and_then(|n| parse_step_dir_name(&n.to_string_lossy()));
        if let (Some(step), true) = (step, path.is_dir()) {
            out.push((step, path));
        }
    }
    Ok(out)
}

/// `<output>/checkpoints/step<N>` of every checkpoint the file's training runs save (normalized)
/// -> (training run, step).
pub fn trained_checkpoints(exp: &Experiment) -> BTreeMap<PathBuf, (String, u32)> {
    let mut out = BTreeMap::new();
    for (name, spec) in &exp.train {
        let dir = train_checkpoints_dir(exp, spec);
        for step in spec.checkpoint_steps() {
            out.insert(dir.join(step_dir_name(step.into())), (name.clone(), step));
        }
    }
    out
}

fn located(exp: &Experiment, key: &str, message: String, hint: Option<String>) -> RunError {
    let mut d = exp.diagnostic_at(key, message);
    d.hint = hint;
    RunError::Located(Box::new(d))
}

/// The steps of model `name`'s series, ascending: its training run's saved steps, or the
/// `step<N>` directories in `dir`; only the `steps` asked for, each of which must exist.
fn series_steps(exp: &Experiment, name: &str, dir: &Path) -> Result<Vec<u32>, RunError> {
    let key = format!("models.{name}.checkpoints");
    let trained = exp
        .train
        .iter()
        .find(|(_, t)| train_checkpoints_dir(exp, t) == normalize(dir));
    let available: Vec<u32> = match trained {
        Some((train, spec)) => {
            let steps = spec.checkpoint_steps();
            if steps.is_empty() {
                return Err(located(
                    exp,
                    &key,
                    format!(
                        "model `{name}` reads the checkpoints of train `{train}`, which saves none"
                    ),
                    Some(format!("set save_every (or save_steps) in [train.{train}]")),
                ));
            }
            steps
        }
        None => {
            let found = step_dirs(dir).map_err(|e| {
                located(
                    exp,
                    &key,
                    format!("model `{name}`: cannot read the checkpoint directory {}: {e}", dir.display()),
                    Some("give a directory whose subdirectories step<N> are model directories (Pythia's layout), or a [train.*] run's <output>/checkpoints".into()),
                )
            })?;
            let mut steps: Vec<u32> = Vec::new();
            for (step, path) in found {
                steps.push(u32::try_from(step).map_err(|_| {
                    located(
                        exp,
                        &key,
                        format!(
                            "model `{name}`: checkpoint {} is past step {}",
                            path.display(),
                            u32::MAX
                        ),
                        None,
                    )
                })?);
            }
            steps.sort_unstable();
            if steps.is_empty() {
                return Err(located(
                    exp,
                    &key,
                    format!("model `{name}`: {} holds no step<N> checkpoint directories", dir.display()),
                    Some("name each checkpoint's model directory step<N>, N the updates done (e.g. step1000)".into()),
                ));
            }
            steps
        }
    };
    let Some(wanted) = &exp.models[name].steps else {
        return Ok(available);
    };
    if let Some(missing) = wanted.iter().find(|s| !available.contains(s)) {
        let list: Vec<String> = available.iter().map(u32::to_string).collect();
        return Err(located(
            exp,
            &format!("models.{name}.steps"),
            format!("model `{name}` has no checkpoint at step {missing}"),
            Some(format!("its steps: {}", list.join(", "))),
        ));
    }
    let mut steps = wanted.clone();
    steps.sort_unstable();
    Ok(steps)
}

/// The runs of `variant`: the variant without the analyses of series models, then one run per
/// series model and step with only that model's analyses, its entry pointing at the step.
pub fn expand(variant: Variant) -> Result<Vec<(Variant, Option<Checkpoint>)>, RunError> {
    let exp = &variant.experiment;
    let base = exp.base_dir();
    let mut series: Vec<(String, Vec<u32>)> = Vec::new();
    for (name, spec) in &exp.models {
        let used = exp.analyses.values().any(|a| &a.model == name);
        if let (true, Some(dir)) = (used, spec.checkpoints_dir(&base)) {
            let steps = series_steps(exp, name, &dir)?;
            series.push((name.clone(), steps));
        }
    }
    if series.is_empty() {
        return Ok(vec![(variant, None)]);
    }
    let mut main = variant.clone();
    main.experiment
        .analyses
        .retain(|_, a| !series.iter().any(|(m, _)| m == &a.model));
    let mut runs = vec![(main, None)];
    for (model, steps) in &series {
        for &step in steps {
            let mut run = variant.clone();
            let exp = &mut run.experiment;
            exp.analyses.retain(|_, a| &a.model == model);
            let spec = exp.models.get_mut(model).expect("series model");
            // As written (relative paths stay relative to the experiment file); `checkpoints`
            // stays, so errors still point at the key the file has.
            let written = spec.checkpoints.as_deref().expect("a series");
            spec.path = Some(
                Path::new(written)
                    .join(step_dir_name(step.into()))
                    .to_string_lossy()
                    .into_owned(),
            );
            spec.steps = Some(vec![step]);
            runs.push((
                run,
                Some(Checkpoint {
                    model: model.clone(),
                    step,
                }),
            ));
        }
    }
    Ok(runs)
}
