//! The learning curve's rows: what training measures along the way, shared by the loop that
//! records them and the model directories that keep the last one.

use serde::{Deserialize, Serialize};

/// One row of the learning curve. Every value at `step` is measured with the parameters after
/// `step` updates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveRow {
    pub step: usize,
    /// Loss on the training batch of this step (the batch update `step` then trains on; after
    /// the last update, the batch the source gives for `step == steps`).
    pub train_loss: f64,
    /// Mean loss of the held-out `[BOS] r r` set on the first copy of `r`
    /// (see [`crate::eval::RepeatLosses`]).
    pub eval_loss_first_repeat: f64,
    /// Same, on the second copy.
    pub eval_loss_second_repeat: f64,
    /// `eval_loss_second_repeat - eval_loss_first_repeat`; negative once the model learns in
    /// context.
    pub icl_score: f64,
    /// Learning rate of update `step` (the end-of-schedule value for the last row).
    pub lr: f64,
    /// Wall-clock seconds since training started (not reproducible, unlike everything else).
    pub elapsed_s: f64,
}
