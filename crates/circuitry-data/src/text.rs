//! Natural text cut into windows of tokens: the corpus form of a dataset.
//!
//! A corpus is a UTF-8 file or a directory of them (every regular, non-hidden file, in name
//! order). A file is one document, or several separated by a separator line (fortune files
//! separate entries with `%`). Each document is tokenized whole, then cut into windows of
//! `window` tokens that start every `stride` tokens; windows never cross a document boundary, so
//! a document's context is its own. Every prompt keeps where it came from as fields: `document`
//! (the document's index in corpus order), `offset` (the token index in the document where the
//! window starts) and `file` (the file, relative to the corpus directory, or the file's name).

use std::path::{Path, PathBuf};

use circuitry_models::Tokenizer;
use circuitry_vocab::limits::{MAX_FILE_BYTES, MAX_PROMPTS, MAX_TOKENS};

use crate::dataset::Prompt;
use crate::error::{DataError, RowLocation};
use crate::record::{encode_checked, unknown_pieces};
use crate::rng::Rng;

/// How a corpus is read and cut into prompts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextConfig {
    /// A UTF-8 text file, or a directory of them.
    pub path: PathBuf,
    /// A line (compared after trimming trailing whitespace) that separates documents; `""`
    /// makes blank lines separate them. `None`: each file is one document.
    pub separator: Option<String>,
    /// Tokens per window (BOS not counted).
    pub window: usize,
    /// Tokens between the starts of consecutive windows of a document.
    pub stride: usize,
    /// A document's last window, shorter than `window`, is kept when it has at least this many
    /// tokens (a document shorter than this gives no prompt).
    pub min_tokens: usize,
    /// Keep this many windows, drawn without replacement and kept in corpus order; `None`: all.
    pub n: Option<usize>,
    /// Seed of the draw.
    pub seed: u64,
}

impl TextConfig {
    /// Non-overlapping full windows of `window` tokens of every document of `path`.
    pub fn new(path: impl Into<PathBuf>, window: usize) -> TextConfig {
        TextConfig {
            path: path.into(),
            separator: None,
            window,
            stride: window,
            min_tokens: window,
            n: None,
            seed: 0,
        }
    }
}

/// One document: its text and the file it is in.
struct Document {
    file: String,
    text: String,
}

/// The prompts of a corpus, each with `bos` in front (BOS tokens are not counted in windows).
pub(crate) fn generate_text(
    dataset: &str,
    cfg: &TextConfig,
    tokenizer: &Tokenizer,
    bos: &[u32],
) -> Result<Vec<Prompt>, DataError> {
    check_config(dataset, cfg)?;
    let documents = read_documents(dataset, cfg)?;
    // (document, offset, tokens) of every window, in corpus order.
    let mut windows: Vec<(usize, usize, Vec<u32>)> = Vec::new();
    let mut total = 0u64;
    for (d, doc) in documents.iter().enumerate() {
        let origin = format!("document {d} ({})", doc.file);
        let encoded = encode_checked(dataset, tokenizer, &doc.text, &origin)?;
        if !encoded.unknown.is_empty() {
            return Err(DataError::config_at(
                dataset,
                "path",
                format!(
                    "{origin} has text that is not in the vocabulary: {}",
                    unknown_pieces(tokenizer, &encoded.unknown)
                ),
                "use a tokenizer that covers the corpus (byte-level BPE covers any text), or remove that text",
            ));
        }
        let ids = encoded.ids;
        let mut start = 0;
        while start < ids.len() {
            let end = (start + cfg.window).min(ids.len());
            if end - start >= cfg.min_tokens {
                total += (bos.len() + end - start) as u64;
                if total > MAX_TOKENS || windows.len() as u64 >= MAX_PROMPTS {
                    return Err(DataError::config_at(
                        dataset,
                        "path",
                        format!(
                            "the corpus up to {origin} gives more than {MAX_PROMPTS} windows or {MAX_TOKENS} tokens, the most one dataset may hold"
                        ),
                        "take a sample of the windows with `n`, or use a larger `stride`",
                    ));
                }
                windows.push((d, start, ids[start..end].to_vec()));
            }
            if end == ids.len() {
                break;
            }
            start += cfg.stride;
        }
    }
    if let Some(n) = cfg.n {
        if n > windows.len() {
            return Err(DataError::config_at(
                dataset,
                "n",
                format!(
                    "`n` = {n} windows asked for, but the corpus gives {}",
                    windows.len()
                ),
                "lower `n`, a smaller `window` or `stride`, or leave `n` out to take every window",
            ));
        }
        let mut picked = Rng::new(cfg.seed).distinct(windows.len(), n);
        picked.sort_unstable();
        let mut all: Vec<Option<(usize, usize, Vec<u32>)>> =
            windows.into_iter().map(Some).collect();
        windows = picked.into_iter().filter_map(|i| all[i].take()).collect();
    }
    Ok(windows
        .into_iter()
        .enumerate()
        .map(|(i, (d, offset, ids))| {
            let text = tokenizer.decode(&ids);
            let tokens = bos.iter().copied().chain(ids).collect();
            let mut prompt = Prompt::from_tokens(i as u32, tokens);
            prompt.text = Some(text);
            prompt.fields.insert("document".into(), d.to_string());
            prompt.fields.insert("offset".into(), offset.to_string());
            prompt
                .fields
                .insert("file".into(), documents[d].file.clone());
            prompt
        })
        .collect())
}

fn check_config(dataset: &str, cfg: &TextConfig) -> Result<(), DataError> {
    for (key, value) in [
        ("window", cfg.window),
        ("stride", cfg.stride),
        ("min_tokens", cfg.min_tokens),
    ] {
        if value == 0 {
            return Err(DataError::config_at(
                dataset,
                key,
                format!("`{key}` must be greater than 0"),
                "give a positive number of tokens",
            ));
        }
    }
    if cfg.min_tokens > cfg.window {
        return Err(DataError::config_at(
            dataset,
            "min_tokens",
            format!(
                "`min_tokens` = {} is more than `window` = {}: no window could be kept",
                cfg.min_tokens, cfg.window
            ),
            "make `min_tokens` at most `window`",
        ));
    }
    if cfg.n == Some(0) {
        return Err(DataError::config_at(
            dataset,
            "n",
            "`n` must be greater than 0",
            "leave `n` out to take every window",
        ));
    }
    Ok(())
}

/// The corpus's documents, in order, read within [`MAX_FILE_BYTES`] in all.
fn read_documents(dataset: &str, cfg: &TextConfig) -> Result<Vec<Document>, DataError> {
    let io = |path: &Path, source: std::io::Error| DataError::Io {
        dataset: dataset.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let files = corpus_files(&cfg.path).map_err(|e| io(&cfg.path, e))?;
    let mut read = 0u64;
    let mut documents = Vec::new();
    for path in files {
        let name = path
            .strip_prefix(&cfg.path)
            .ok()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| path.file_name().map(Path::new))
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let size = std::fs::metadata(&path).map_err(|e| io(&path, e))?.len();
        read += size;
        if read > MAX_FILE_BYTES {
            return Err(DataError::config_at(
                dataset,
                "path",
                format!(
                    "the corpus is larger than {MAX_FILE_BYTES} bytes, the most one dataset reads (at `{}`)",
                    path.display()
                ),
                "use a smaller corpus, or split it into several datasets",
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            DataError::Malformed {
                dataset: dataset.to_string(),
                path: path.clone(),
                location: RowLocation::Line(line),
                message: "the file is not UTF-8 text".to_string(),
                hint: "a corpus holds UTF-8 text files; move other files out of its directory",
            }
        })?;
        documents.extend(
            split_documents(&text, cfg.separator.as_deref()).map(|text| Document {
                file: name.clone(),
                text,
            }),
        );
    }
    if documents.is_empty() {
        return Err(DataError::config_at(
            dataset,
            "path",
            format!("`{}` holds no text", cfg.path.display()),
            "point `corpus` at a text file, or a directory of them",
        ));
    }
    Ok(documents)
}

/// The files of a corpus, in reading order: the file itself, or every regular file of the
/// directory whose name does not start with `.`, sorted by name. Their bytes are the dataset's
/// content (the runner hashes them).
pub fn corpus_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The documents of one file's text: the whole text, or the pieces between separator lines,
/// each without the line end before the separator; empty (or whitespace-only) pieces dropped.
fn split_documents(text: &str, separator: Option<&str>) -> impl Iterator<Item = String> {
    let pieces: Vec<String> = match separator {
        None => vec![text.to_string()],
        Some(sep) => {
            let mut pieces = Vec::new();
            let mut current = String::new();
            for line in text.split_inclusive('\n') {
                if line.trim_end() == sep && (sep.is_empty() || !line.trim().is_empty()) {
                    pieces.push(std::mem::take(&mut current));
                } else {
                    current.push_str(line);
                }
            }
            pieces.push(current);
            pieces
        }
    };
    pieces.into_iter().filter_map(|p| {
        let p = p.strip_suffix('\n').unwrap_or(&p).to_string();
        (!p.trim().is_empty()).then_some(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_separator_lines() {
        let text = "one\ntwo\n%\nthree\n%\n%\nfour";
        let docs: Vec<String> = split_documents(text, Some("%")).collect();
        assert_eq!(docs, ["one\ntwo", "three", "four"]);
        let blank: Vec<String> = split_documents("a\nb\n\n  \nc\n", Some("")).collect();
        assert_eq!(blank, ["a\nb", "c"]);
        let whole: Vec<String> = split_documents("a\n%\nb\n", None).collect();
        assert_eq!(whole, ["a\n%\nb"]);
        // A separator must fill its line: "100%" is text.
        let inline: Vec<String> = split_documents("100%\n%\nx", Some("%")).collect();
        assert_eq!(inline, ["100%", "x"]);
    }
}
