//! circuitry-train: trains small GPT-2-family transformers (such as the 2-layer attention-only
//! model in which an induction head forms) with burn autodiff, by a declared, seeded procedure.
//!
//! A [`TrainConfig`] states the architecture, the optimiser (AdamW with warm-up, linear or cosine
//! decay and clipping by global gradient norm), the synthetic data distribution, the evaluation
//! set and one seed. [`train()`] draws the initial weights ([`init`]) and the batches ([`data`])
//! from streams derived from that seed with circuitry-data's version-stable generator, so the
//! same configuration gives the same checkpoint bit for bit on one machine; [`train_with`] takes
//! batches from any [`BatchSource`] instead. Training reports progress through a callback and
//! records a learning curve (train loss, held-out loss on each copy of `[BOS] r r`, the
//! in-context-learning score) as plain [`CurveRow`]s. [`Trained::save`] writes a Hugging Face
//! GPT-2 directory that `circuitry_models::load_model` reads back, and [`Checkpoints`] the same
//! along the way.
//!
//! What it must not do: it trains from the token batches it is given or generates; it never reads
//! experiment files, never writes Parquet or other tables (the runner turns the curve rows into
//! a table), never draws from the `rand` crate or burn's global random generator, and never
//! touches the network.

pub mod config;
pub mod curve;
pub mod data;
pub mod error;
pub mod eval;
pub mod init;
pub mod optim;
pub mod output;
pub mod train;

pub use config::{
    ArchConfig, BOS_TOKEN, DataConfig, EvalConfig, LrDecay, OptimConfig, TrainConfig,
};
pub use curve::CurveRow;
pub use data::{BatchSource, RepeatedTokenBatches, eval_rows, repeated_rows};
pub use error::TrainError;
pub use eval::{HeadScores, RepeatLosses, head_scores, lm_loss, repeat_losses, token_nll};
pub use init::init_weights;
pub use output::{save_model_dir, word_level_tokenizer_json};
pub use train::{Checkpoints, TrainProgress, Trained, train, train_with};
