//! Offline resolution of Hugging Face hub ids in the local hub cache
//! (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
//! Layout: `models--ORG--NAME/refs/REF` holds a commit hash; `snapshots/HASH/` holds the files.

use std::path::PathBuf;

use crate::error::LoadError;

/// `ORG/NAME` or `ORG/NAME@REV`, with no path-like parts.
pub fn looks_like_hub_id(s: &str) -> bool {
    let id = s.split('@').next().unwrap_or(s);
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// The hub cache directory.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("HF_HOME") {
        return PathBuf::from(d).join("hub");
    }
    super::expand_home("~/.cache/huggingface/hub")
}

/// The snapshot directory of `ORG/NAME[@REV]` (REV: a branch/tag under `refs/`, or a commit).
pub fn resolve_cached(id: &str) -> Result<PathBuf, LoadError> {
    let (repo, rev) = match id.split_once('@') {
        Some((r, v)) => (r, v),
        None => (id, "main"),
    };
    let root = cache_dir().join(format!("models--{}", repo.replace('/', "--")));
    if !root.is_dir() {
        return Err(LoadError::NotFound {
            path: root,
            message: format!(
                "hub model `{repo}` is not in the local cache; circuitry never downloads at run time: fetch it first (e.g. `huggingface-cli download {repo}`) or give a local path"
            ),
        });
    }
    let ref_file = root.join("refs").join(rev);
    let commit = match std::fs::read_to_string(&ref_file) {
        Ok(s) => s.trim().to_string(),
        Err(_) => rev.to_string(),
    };
    let snapshot = root.join("snapshots").join(&commit);
    if !snapshot.join("config.json").is_file() {
        return Err(LoadError::NotFound {
            path: snapshot,
            message: format!(
                "revision `{rev}` of `{repo}` is not in the local cache (no config.json in its snapshot)"
            ),
        });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids() {
        assert!(looks_like_hub_id("HuggingFaceTB/SmolLM2-135M"));
        assert!(looks_like_hub_id("openai-community/gpt2@main"));
        assert!(!looks_like_hub_id("gpt2"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("../a"));
        assert!(!looks_like_hub_id("a/b/c"));
    }
}
