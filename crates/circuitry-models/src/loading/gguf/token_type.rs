//! `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`), shared by the tokenizer
//! builders.

/// Ordinary pieces (`LLAMA_TOKEN_TYPE_NORMAL`).
pub(super) const NORMAL: i64 = 1;
/// Special tokens (`LLAMA_TOKEN_TYPE_CONTROL`).
pub(super) const CONTROL: i64 = 3;
/// Added tokens that are matched whole but are not special (`USER_DEFINED`).
pub(super) const USER_DEFINED: i64 = 4;
