//! The integration tests of `circuitry`, one module per file, linked into one test binary
//! (one link step instead of one per file).

mod common;

mod architectures;
mod bad_runs;
mod causal_abstraction;
mod default_and_training;
mod fixture_tables;
mod intervention_experiments;
mod phase_change;
mod plan_and_sweeps;
mod smollm2_experiments;
mod trust;
