//! The integration tests of `circuitry-data`, one module per file, linked into one test binary
//! (one link step instead of one per file).

mod common;

mod files;
mod inline;
mod ioi;
mod limits;
mod repeated;
mod text;
mod vocabulary;
