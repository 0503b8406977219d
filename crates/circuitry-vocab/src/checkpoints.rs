//! How a series of training checkpoints is laid out on disk: a directory whose subdirectories
//! `step<N>` (Pythia's revision names, no zero padding) are model directories, `N` the updates
//! done. A `[train.*]` run with `save_every` or `save_steps` writes `<output>/checkpoints/`; a
//! `[models.*]` entry with `checkpoints = DIR` reads such a directory, wherever it came from.

/// The subdirectory of a training run's `output` that holds its checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// The directory name of the checkpoint after `step` updates: `step1000`.
pub fn step_dir_name(step: u64) -> String {
    format!("step{step}")
}

/// The step a checkpoint directory's name says (`step1000` -> 1000), `None` for other names.
pub fn parse_step_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for step in [0, 7, 1000, u64::MAX] {
            assert_eq!(parse_step_dir_name(&step_dir_name(step)), Some(step));
        }
        for bad in ["step", "step-1", "steps10", "10", "step1a", "Step1"] {
            assert_eq!(parse_step_dir_name(bad), None, "{bad}");
        }
    }
}
