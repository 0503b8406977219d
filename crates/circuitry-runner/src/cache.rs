//! The content-addressed node cache: one directory per computed node, named by the node's hash
//! (its resolved configuration, its inputs' content hashes, the tool build and the device).
//!
//! A node is written into a private staging directory and published by one `rename`, so a
//! reader (another run, another shard, another user on the same filesystem) sees a node
//! complete or not at all. Two writers of one node compute the same bytes; the first rename
//! wins and the second discards its copy.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::RunError;

/// Environment variable that moves the cache (default: `<out root>/.circuitry/cache`).
pub const CACHE_ENV: &str = "CIRCUITRY_CACHE";

/// The file every committed node carries: what it is and what it recorded when computed.
pub const NODE_FILE: &str = "node.json";

/// The directory of a training node's entry that holds the model it wrote.
pub const TRAINED_MODEL_DIR: &str = "model";

/// The file (stem) of a table part inside a node's entry.
pub fn cache_file(part: Option<&str>) -> String {
    match part {
        Some(p) => format!("table.{p}"),
        None => "table".to_string(),
    }
}

/// What a cache entry records about its node.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeRecord {
    /// `train` or `analysis`.
    pub kind: String,
    /// The entry's name in the experiment that computed it first.
    pub name: String,
    pub experiment: String,
    /// The node hash (the directory name).
    pub hash: String,
    /// Everything the hash covers, as hashed.
    pub key: serde_json::Value,
    /// Facts learnt while computing: content hashes of the model and dataset, prompt counts.
    pub facts: serde_json::Value,
    /// Rows per table part (`""` for the main table).
    pub rows: std::collections::BTreeMap<String, usize>,
    /// Wall-clock seconds the computation took.
    pub seconds: f64,
}

/// The cache root.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

static STAGING_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A node being written. Dropped without [`Cache::commit`], it removes itself.
pub struct Staging {
    pub dir: PathBuf,
    committed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One entry as `circuitry cache ls` shows it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: PathBuf,
    pub record: NodeRecord,
    pub bytes: u64,
}

impl Cache {
    /// The cache for outputs under `out_root`: `CIRCUITRY_CACHE` if set, else
    /// `<out_root>/.circuitry/cache`.
    pub fn for_outputs(out_root: &Path, explicit: Option<&Path>) -> Cache {
        let root = match (explicit, std::env::var_os(CACHE_ENV)) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
            _ => out_root.join(".circuitry").join("cache"),
        };
        Cache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn nodes_dir(&self) -> PathBuf {
        self.root.join("nodes")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where node `hash` lives once committed.
    pub fn node_dir(&self, hash: &str) -> PathBuf {
        self.nodes_dir().join(&hash[..2.min(hash.len())]).join(hash)
    }

    /// The committed entry of `hash`, if any.
    pub fn get(&self, hash: &str) -> Option<PathBuf> {
        let dir = self.node_dir(hash);
        dir.join(NODE_FILE).is_file().then_some(dir)
    }

    /// What committed node `hash` recorded.
    pub fn record(&self, hash: &str) -> Result<NodeRecord, RunError> {
        let path = self.node_dir(hash).join(NODE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| RunError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            RunError::output(
                &path,
                format!("unreadable cache record ({e}); remove the entry or run with --force"),
            )
        })
    }

    /// A fresh private directory to write a node into.
    pub fn stage(&self) -> Result<Staging, RunError> {
        let tmp = self.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(|e| RunError::io(&tmp, e))?;
        let dir = tmp.join(format!(
            "{}-{}-{}",
            host_name(),
            std::process::id(),
            STAGING_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| RunError::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| RunError::io(&dir, e))?;
        Ok(Staging {
            dir,
            committed: false,
        })
    }

    /// Writes `record` into `staging` and publishes it as node `record.hash` by one rename.
    /// With `replace`, an existing entry is replaced (`--force`); otherwise an existing entry
    /// (another writer was first) is kept and this copy discarded.
    pub fn commit(
        &self,
        mut staging: Staging,
        record: &NodeRecord,
        replace: bool,
    ) -> Result<PathBuf, RunError> {
        let json = serde_json::to_string_pretty(record).expect("record serializes");
        let record_path = staging.dir.join(NODE_FILE);
        std::fs::write(&record_path, json).map_err(|e| RunError::io(&record_path, e))?;
        sync_dir_files(&staging.dir)?;
        let dest = self.node_dir(&record.hash);
        let parent = dest.parent().expect("node dirs have a parent");
        std::fs::create_dir_all(parent).map_err(|e| RunError::io(parent, e))?;
        if replace && dest.exists() {
            // Move the old entry aside first: the rename below must not find a directory there.
            let aside = self.stage()?;
            std::fs::remove_dir(&aside.dir).map_err(|e| RunError::io(&aside.dir, e))?;
            let _ = std::fs::rename(&dest, &aside.dir);
        }
        match std::fs::rename(&staging.dir, &dest) {
            Ok(()) => {
                staging.committed = true;
                Ok(dest)
            }
            // Another writer committed the same node first: its bytes are ours.
            Err(_) if dest.join(NODE_FILE).is_file() => Ok(dest),
            Err(e) => Err(RunError::io(&dest, e)),
        }
    }

    /// Removes staging directories of dead processes on this host (killed runs), and those of
    /// other hosts older than a day. Returns how many were removed.
    pub fn clean_stale_staging(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(self.tmp_dir()) else {
            return 0;
        };
        let host = host_name();
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if staging_is_stale(&name, &host, &e.path())
                && std::fs::remove_dir_all(e.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Every committed entry.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        let Ok(shards) = std::fs::read_dir(self.nodes_dir()) else {
            return out;
        };
        for shard in shards.flatten() {
            let Ok(nodes) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for node in nodes.flatten() {
                let hash = node.file_name().to_string_lossy().to_string();
                if let Ok(record) = self.record(&hash) {
                    out.push(Entry {
                        bytes: dir_bytes(&node.path()),
                        path: node.path(),
                        record,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.record.experiment, &a.record.name, &a.record.hash).cmp(&(
                &b.record.experiment,
                &b.record.name,
                &b.record.hash,
            ))
        });
        out
    }

    /// Removes every entry whose hash is not in `keep`, and stale staging directories. Returns
    /// the entries removed and the bytes freed.
    pub fn gc(&self, keep: &std::collections::BTreeSet<String>) -> Result<(usize, u64), RunError> {
        self.clean_stale_staging();
        let mut removed = (0, 0);
        for entry in self.entries() {
            if keep.contains(&entry.record.hash) {
                continue;
            }
            std::fs::remove_dir_all(&entry.path).map_err(|e| RunError::io(&entry.path, e))?;
            removed.0 += 1;
            removed.1 += entry.bytes;
        }
        Ok(removed)
    }
}

/// `<host>-<pid>-<n>`: stale when the pid is gone on this host, or (other hosts) after a day.
fn staging_is_stale(name: &str, host: &str, path: &Path) -> bool {
    let mut parts = name.rsplitn(3, '-');
    let (_, pid, owner) = (parts.next(), parts.next(), parts.next());
    match (owner, pid.and_then(|p| p.parse::<u32>().ok())) {
        (Some(owner), Some(pid)) if owner == host => !process_alive(pid),
        _ => path
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 24 * 3600),
    }
}

/// Whether process `pid` runs on this machine (Linux: `/proc/<pid>` exists).
pub fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

/// This machine's name, for naming the owners of staging directories and locks.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().replace(['/', '-'], "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Flushes every file under `dir` to disk, so that a rename publishes complete bytes.
pub fn sync_dir_files(dir: &Path) -> Result<(), RunError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RunError::io(dir, e))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            sync_dir_files(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| RunError::io(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str) -> NodeRecord {
        NodeRecord {
            kind: "analysis".into(),
            name: "a".into(),
            experiment: "e".into(),
            hash: hash.into(),
            ..NodeRecord::default()
        }
    }

    #[test]
    fn a_node_is_visible_only_once_committed_and_the_first_writer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::for_outputs(dir.path(), Some(&dir.path().join("c")));
        let hash = "ab".repeat(32);
        let first = cache.stage().unwrap();
        std::fs::write(first.dir.join("t.parquet"), b"first").unwrap();
        assert!(cache.get(&hash).is_none());
        let second = cache.stage().unwrap();
        std::fs::write(second.dir.join("t.parquet"), b"second").unwrap();
        let second_dir = second.dir.clone();
        cache.commit(first, &record(&hash), false).unwrap();
        let at = cache.get(&hash).expect("committed");
        cache.commit(second, &record(&hash), false).unwrap();
        assert_eq!(std::fs::read(at.join("t.parquet")).unwrap(), b"first");
        assert!(!second_dir.exists(), "the losing copy is discarded");
        assert_eq!(cache.record(&hash).unwrap(), record(&hash));
        // --force replaces.
        let third = cache.stage().unwrap();
        std::fs::write(third.dir.join("t.parquet"), b"third").unwrap();
        cache.commit(third, &record(&hash), true).unwrap();
        assert_eq!(std::fs::read(at.join("t.parquet")).unwrap(), b"third");
        assert_eq!(cache.entries().len(), 1);
        assert_eq!(cache.gc(&Default::default()).unwrap().0, 1);
        assert!(cache.get(&hash).is_none());
    }

    #[test]
    fn staging_of_dead_processes_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_name();
        let path = dir.path();
        let me = std::process::id();
        assert!(!staging_is_stale(&format!("{host}-{me}-0"), &host, path));
        // pid_max on Linux is at most 2^22: this pid cannot exist.
        assert!(staging_is_stale(&format!("{host}-99999999-0"), &host, path));
        // Another host's fresh directory is left alone.
        assert!(!staging_is_stale("otherhost-1-0", &host, path));
        let cache = Cache::for_outputs(path, Some(&path.join("c")));
        let abandoned = cache.tmp_dir().join(format!("{host}-99999999-3"));
        std::fs::create_dir_all(&abandoned).unwrap();
        let live = cache.stage().unwrap();
        assert_eq!(cache.clean_stale_staging(), 1);
        assert!(!abandoned.exists() && live.dir.exists());
    }
}
