//! The integration tests of `circuitry-spec`, one module per file, linked into one test binary
//! (one link step instead of one per file).

mod common;

mod bad_inputs;
mod circuit_kinds;
mod fuzz;
mod good_inputs;
mod hashing;
mod intervention_kinds;
mod overrides;
mod parsing;
mod schema_file;
mod sweeps;
