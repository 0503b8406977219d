//! The integration tests of `circuitry-models`, one module per file, linked into one test binary
//! (one link step instead of one per file).

mod common;

mod config_and_vocabulary;
mod fixtures_forward;
mod gguf_architectures;
mod gguf_corrupt;
mod gguf_llama;
mod gguf_reader;
mod gguf_tokenizer;
mod half_precision;
mod hf_layouts;
mod long_context;
mod processing_and_padding;
mod smollm2_reference;
