//! Canonical hashing: a blake3 hash (hex) of the canonical JSON of a resolved configuration, so
//! that every output can record exactly what produced it.
//!
//! Canonical JSON has object keys sorted at every level, no whitespace, and numbers as serde_json
//! prints them (floats in shortest round-trip form). Because it is computed from the resolved
//! values (defaults filled in, short forms normalized), whitespace, comments, key order and
//! equivalent spellings (`positions = "last"` vs `["last"]`, `lr = 1` vs `1.0`) do not change a
//! hash, while any change of meaning does. Each hash is domain-separated by what it hashes
//! (`experiment`, `model`, `dataset`, `analysis`, `train`) and by [`HASH_VERSION`].

use indexmap::IndexMap;
use serde::Serialize;

/// Bumped whenever canonicalization changes, so that old and new hashes never collide.
pub const HASH_VERSION: &str = "circuitry-spec/hash/v1";

/// The hashes of an experiment and of each of its entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hashes {
    /// The whole experiment (sweep grid included, `description` excluded).
    pub experiment: String,
    /// Per model: its resolved configuration.
    pub models: IndexMap<String, String>,
    /// Per dataset: its resolved configuration (with its derived seed).
    pub datasets: IndexMap<String, String>,
    /// Per analysis: its configuration plus its model's and dataset's.
    pub analyses: IndexMap<String, String>,
    /// Per training run: its configuration plus its dataset's.
    pub train: IndexMap<String, String>,
}

/// `value` as canonical JSON: keys sorted at every level, compact.
pub fn canonical_json(value: &serde_json::Value) -> String {
    sorted(value).to_string()
}

fn sorted(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => items.iter().map(sorted).collect(),
        other => other.clone(),
    }
}

/// The hash (64 hex digits) of `value`'s canonical JSON in the given domain.
pub fn hash_value(domain: &str, value: &serde_json::Value) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(HASH_VERSION.as_bytes());
    hasher.update(b"\0");
    hasher.update(domain.as_bytes());
    hasher.update(b"\0");
    hasher.update(canonical_json(value).as_bytes());
    hasher.finalize().to_hex().to_string()
}

/// The hash of anything serializable (via its JSON form).
pub fn hash_of<T: Serialize + ?Sized>(domain: &str, value: &T) -> String {
    hash_value(
        domain,
        &serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": 0.001}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":0.001,"d":[1,{"y":2,"z":1}]},"b":1}"#
        );
        let b = json!({"a": {"c": 1e-3, "d": [1, {"y": 2, "z": 1}]}, "b": 1});
        assert_eq!(hash_value("x", &a), hash_value("x", &b));
        assert_ne!(hash_value("x", &a), hash_value("y", &a));
        assert_eq!(hash_value("x", &a).len(), 64);
    }
}
