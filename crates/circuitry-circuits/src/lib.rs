//! circuitry's analyses: pure functions of a model's weights and activations that emit tidy
//! tables. Each analysis is one module that declares what it needs (hook points, extra forward
//! passes) and the columns it writes.
//!
//! Analyses never parse experiment files, never read or write files, and never schedule work:
//! the runner feeds them batches and sinks their tables.

pub mod acts;
pub mod analyses;
pub mod analysis;
pub mod dimension;
pub mod factored;
pub mod interventions;
pub mod matrix;
pub mod neurons;
pub mod probes;
pub mod refs;
pub mod table;
pub mod weight_circuits;
