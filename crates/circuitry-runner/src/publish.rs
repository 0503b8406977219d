//! Publishing a run's tables: readers of `<out root>/<experiment>` see the complete old set or
//! the complete new set with its manifest, never a mix.
//!
//! `<out root>/<experiment>` is a symbolic link to a complete run directory under
//! `<out root>/.circuitry/runs/<experiment>/`. A run writes its tables into a fresh directory
//! there and publishes it by renaming a new link over the old one (one atomic `rename`). A lock
//! file held for the whole run makes a second concurrent run fail at once (or wait). Holding the
//! lock, a run removes every other directory under its runs directory: leftovers of killed runs
//! and the previous, now unpublished, set.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::cache::host_name;
use crate::error::RunError;
use crate::failpoint;

/// The held lock on one experiment's outputs; released when dropped (or when the process dies).
pub struct OutputLock {
    _file: File,
}

/// Where one experiment's runs and lock live.
#[derive(Clone, Debug)]
pub struct Outputs {
    /// `<out root>/<experiment>`: the published link.
    pub link: PathBuf,
    /// `<out root>/.circuitry/runs/<experiment>`.
    pub runs: PathBuf,
    lock_path: PathBuf,
}

impl Outputs {
    pub fn new(out_root: &Path, experiment: &str) -> Outputs {
        let state = out_root.join(".circuitry");
        Outputs {
            link: out_root.join(experiment),
            runs: state.join("runs").join(experiment),
            lock_path: state.join("locks").join(format!("{experiment}.lock")),
        }
    }

    /// Takes the lock on these outputs. Held elsewhere, fails naming the holder, or with `wait`
    /// blocks until it is free (calling `on_wait` once with the holder first).
    pub fn lock(
        &self,
        wait: bool,
        what: &str,
        on_wait: impl FnOnce(&str),
    ) -> Result<OutputLock, RunError> {
        let dir = self.lock_path.parent().expect("lock has a parent");
        std::fs::create_dir_all(dir).map_err(|e| RunError::io(dir, e))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(|e| RunError::io(&self.lock_path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&mut file);
                if !wait {
                    return Err(RunError::Busy {
                        outputs: self.link.clone(),
                        holder,
                    });
                }
                on_wait(&holder);
                file.lock().map_err(|e| RunError::io(&self.lock_path, e))?;
            }
            Err(TryLockError::Error(e)) => return Err(RunError::io(&self.lock_path, e)),
        }
        // Who holds it, for the message of a run that finds it taken.
        let me = format!("process {} on {} ({what})", std::process::id(), host_name());
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(me.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(|e| RunError::io(&self.lock_path, e))?;
        Ok(OutputLock { _file: file })
    }

    /// The run directory the link points at now, if any.
    pub fn published(&self) -> Option<PathBuf> {
        let target = std::fs::read_link(&self.link).ok()?;
        let parent = self.link.parent()?;
        Some(normalize(&parent.join(target)))
    }

    /// Removes every directory under the runs directory except the published one: staging
    /// directories of killed runs and superseded sets. Needs the lock.
    pub fn clean(&self, _lock: &OutputLock) -> Result<usize, RunError> {
        let Ok(entries) = std::fs::read_dir(&self.runs) else {
            return Ok(0);
        };
        let keep = self.published();
        let mut removed = 0;
        for e in entries.flatten() {
            let path = normalize(&e.path());
            if Some(&path) == keep.as_ref() {
                continue;
            }
            let result = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            result.map_err(|e| RunError::io(&path, e))?;
            removed += 1;
        }
        // Temporary links of a publication killed before its rename.
        if let Some(parent) = self.link.parent()
            && let Ok(entries) = std::fs::read_dir(parent)
        {
            let prefix = format!(".{}.", self.link_name());
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let pid = name
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".link"));
                if pid.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(removed)
    }

    fn link_name(&self) -> String {
        self.link
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    }

    /// A fresh directory for a new set of tables. Needs the lock.
    pub fn stage(&self, _lock: &OutputLock) -> Result<PathBuf, RunError> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = self
            .runs
            .join(format!("run-{stamp:x}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| RunError::io(&dir, e))?;
        Ok(dir)
    }

    /// Publishes the complete run directory `dir` (made by [`Outputs::stage`]) by one rename of
    /// a link over the old one, then removes the superseded set.
    pub fn publish(&self, dir: &Path, lock: &OutputLock) -> Result<(), RunError> {
        crate::cache::sync_dir_files(dir)?;
        failpoint::hit("before-publish")?;
        let parent = self.link.parent().expect("outputs have a parent");
        let target = dir
            .strip_prefix(parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| dir.to_path_buf());
        let temp = parent.join(format!(".{}.{}.link", self.link_name(), std::process::id()));
        let _ = std::fs::remove_file(&temp);
        std::os::unix::fs::symlink(&target, &temp).map_err(|e| RunError::io(&temp, e))?;
        if self.link.is_dir() && !self.link.is_symlink() {
            // A real directory from a version of circuitry before linked runs: move it under
            // the runs directory (removed below) so the link can take its place.
            let legacy = self.runs.join(format!("legacy-{}", std::process::id()));
            std::fs::rename(&self.link, &legacy).map_err(|e| RunError::io(&self.link, e))?;
        }
        std::fs::rename(&temp, &self.link).map_err(|e| RunError::io(&self.link, e))?;
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
        failpoint::hit("after-publish")?;
        self.clean(lock)?;
        Ok(())
    }
}

fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "another process".to_string()
    } else {
        s.to_string()
    }
}

/// A path with `.` and `..` folded (links are not resolved).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_set(dir: &Path, tag: &str) {
        std::fs::write(dir.join("t.parquet"), tag).unwrap();
        std::fs::write(dir.join("manifest.json"), tag).unwrap();
    }

    #[test]
    fn publication_swaps_complete_sets_and_cleans_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let outputs = Outputs::new(root.path(), "e");
        let lock = outputs.lock(false, "test", |_| {}).unwrap();
        // A real directory from before linked runs is replaced too.
        std::fs::create_dir_all(&outputs.link).unwrap();
        std::fs::write(outputs.link.join("old.parquet"), "legacy").unwrap();
        let first = outputs.stage(&lock).unwrap();
        write_set(&first, "one");
        outputs.publish(&first, &lock).unwrap();
        assert_eq!(
            std::fs::read_to_string(outputs.link.join("t.parquet")).unwrap(),
            "one"
        );
        assert!(!outputs.link.join("old.parquet").exists());
        let killed = outputs.stage(&lock).unwrap();
        write_set(&killed, "half");
        let second = outputs.stage(&lock).unwrap();
        write_set(&second, "two");
        outputs.publish(&second, &lock).unwrap();
        assert_eq!(
            std::fs::read_to_string(outputs.link.join("manifest.json")).unwrap(),
            "two"
        );
        let left: Vec<_> = std::fs::read_dir(&outputs.runs)
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(left.len(), 1, "only the published set remains");
        assert!(!first.exists() && !killed.exists());
    }

    #[test]
    fn a_second_holder_is_refused_naming_the_first() {
        let root = tempfile::tempdir().unwrap();
        let outputs = Outputs::new(root.path(), "e");
        let _held = outputs.lock(false, "first run", |_| {}).unwrap();
        // flock locks belong to the open file description: a second open conflicts even in
        // one process.
        match outputs.lock(false, "second run", |_| {}) {
            Err(RunError::Busy { holder, .. }) => {
                assert!(holder.contains("first run"), "{holder}");
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a second lock was granted"),
        }
    }
}
