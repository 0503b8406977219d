//! The vocabulary that circuitry's experiment file and its engines share.
//!
//! Each type here is one idea that both the file format (`circuitry-spec`, which parses, checks
//! and documents it) and an engine (`circuitry-models`, `circuitry-data`, `circuitry-circuits`,
//! which act on it) name. It lives once, here, with the serde and schemars derives that make its
//! spelling in experiment files and its JSON Schema, so no crate translates one copy into
//! another. This crate depends on no other circuitry crate; the spec re-exports every type.
//!
//! Types that only look alike stay apart: where the file holds unresolved input (position names,
//! negative indices, literal texts, optional seeds) and an engine needs the resolved value, the
//! spec's type ends in `Spec` (`PositionSpec`, `TokenSpec`, `MetricSpec`, ...) and the engine's
//! does not.
//!
//! [`checkpoints`](mod@checkpoints) names the directories of a checkpoint series, which
//! training writes and the runner reads.
//!
//! [`expr`] is the expression language of causal models: the spec parses and checks it, the
//! data crate evaluates it.
//!
//! [`limits`] holds the size bounds of a dataset, which the file's checks and the data crate
//! both apply.
//!
//! [`keyword_or_list`](mod@keyword_or_list) is the one serde and schema form ("a keyword, one
//! item or a non-empty list") that keys here and in the spec share.

pub mod checkpoints;
mod dataset;
pub mod expr;
mod feature;
mod intervention;
pub mod keyword_or_list;
pub mod limits;
mod model;

pub use dataset::{FileFormat, IoiCorruption};
pub use feature::FeatureSite;
pub use intervention::{Direction, HeadInput, HeadSweep, MeanOver, Site};
pub use model::{PaddingSide, Processing, WeightDtype};
