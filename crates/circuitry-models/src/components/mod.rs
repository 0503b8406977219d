//! The building blocks of a block: normalisation, attention, MLP and rotary embeddings.

pub mod attention;
pub mod mlp;
pub mod norm;
pub mod rotary;
