//! The integration tests of `circuitry-train`, one module per file, linked into one test binary
//! (one link step instead of one per file).

mod induction;
mod training;
