//! How paths written in an experiment file are resolved. Nothing here touches the file system.

use std::path::{Component, Path, PathBuf};

/// Resolves a path written in an experiment file: a leading `~` (alone or followed by `/`) is the
/// home directory (`$HOME`), absolute paths stay as they are, and relative paths are relative to
/// `base_dir`, the directory of the experiment file.
pub fn resolve_path(base_dir: &Path, raw: &str) -> PathBuf {
    if (raw == "~" || raw.starts_with("~/"))
        && let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
    {
        let rest = raw.trim_start_matches('~').trim_start_matches('/');
        let home = PathBuf::from(home);
        return if rest.is_empty() {
            home
        } else {
            home.join(rest)
        };
    }
    let path = Path::new(raw);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// The directory an experiment file's relative paths are resolved against.
pub(crate) fn base_dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Why a training output path is unsafe to write to, if it is: empty, the file system root, or
/// (lexically) the experiment's own directory or one of its ancestors.
pub(crate) fn unsafe_output_dir(raw: &str) -> Option<&'static str> {
    if raw.trim().is_empty() {
        return Some("it is empty");
    }
    if raw == "~" || raw == "~/" {
        return Some("it is the home directory");
    }
    let path = Path::new(raw);
    if path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
    {
        return Some("it is the file system root");
    }
    if path.is_absolute() || raw.starts_with("~/") {
        return None;
    }
    // Lexical normalization of a relative path: does it end up at `.` or above it?
    let mut depth: i64 = 0;
    for c in path.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => depth -= 1,
            _ => {}
        }
    }
    if depth <= 0 {
        return Some("it is the experiment's directory or one of its parents");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_and_absolute() {
        let base = Path::new("experiments");
        assert_eq!(
            resolve_path(base, "models/x"),
            PathBuf::from("experiments/models/x")
        );
        assert_eq!(resolve_path(base, "/abs/x"), PathBuf::from("/abs/x"));
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(resolve_path(base, "~/m"), PathBuf::from(home).join("m"));
        }
        assert_eq!(base_dir_of(Path::new("x.toml")), PathBuf::from("."));
        assert_eq!(base_dir_of(Path::new("a/x.toml")), PathBuf::from("a"));
    }

    #[test]
    fn output_dirs() {
        for good in ["models/x", "../models/x", "~/models/x", "/tmp/x"] {
            assert!(unsafe_output_dir(good).is_none(), "{good:?}");
        }
        for bad in [
            "", " ", ".", "./", "..", "../..", "a/..", "a/../..", "/", "~",
        ] {
            assert!(unsafe_output_dir(bad).is_some(), "{bad:?}");
        }
    }
}
