//! The size bounds of a dataset, which the experiment file's checks (`circuitry validate`) and
//! the data crate apply before anything is allocated, so that a mistyped size is a located error
//! instead of an allocation that aborts the process.
//!
//! Every prompt of a dataset is held in memory, with its metadata (about a kilobyte for an IOI
//! prompt), for the whole run, and every analysis runs the model over all of them. A million
//! prompts or a hundred million tokens (400 MB of token ids) is far beyond what a study on
//! one machine runs (a forward pass of a 135M-parameter model reads about a thousand tokens a
//! second on two CPU cores): larger studies split their prompts into several datasets or
//! sweep the generator's seed.

/// The most prompts one dataset may have: a generator's `n`, a file's rows read, a file's `limit`.
pub const MAX_PROMPTS: u64 = 1_000_000;

/// The most token ids one dataset's prompts may hold together (BOS tokens included; a
/// counterfactual's tokens are not counted, being as many as its prompt's).
pub const MAX_TOKENS: u64 = 100_000_000;

/// The longest line of a JSONL or CSV prompt file, in bytes (1 MiB): a prompt longer than this is
/// far longer than any model's context, and a file with no line ends is not read into memory
/// whole. A Parquet text cell is held to the same bound.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The most bytes read from one prompt file (1 GiB). With a `limit`, reading stops at the last
/// row wanted, so a larger file can still give its first rows.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
