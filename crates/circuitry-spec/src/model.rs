//! `[models.NAME]`: where a model's weights are, how they are processed and held, how batches are
//! padded.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize};

use circuitry_vocab::{PaddingSide, Processing, WeightDtype};

use crate::paths::resolve_path;
use crate::spec_struct::spec_struct;
use crate::validate::Checker;

spec_struct! {
    /// A model to analyse: a local Hugging Face directory or GGUF file, a hub id resolved offline,
    /// or a series of training checkpoints (every analysis of it runs once per checkpoint).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ModelSpec {
        /// A local model: a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)
        /// or a `.gguf` file. Relative paths are relative to the experiment file's directory; a
        /// leading `~` is the home directory. Give exactly one of `path`, `hub` and `checkpoints`.
        pub path: Option<String>,
        /// A Hugging Face hub id, `ORG/NAME` or `ORG/NAME@REVISION`, resolved offline from the local
        /// Hugging Face cache (nothing is downloaded). Give exactly one of `path`, `hub` and
        /// `checkpoints`.
        pub hub: Option<String>,
        /// A series of checkpoints: a directory whose subdirectories `step<N>` (Pythia's revision
        /// names) are model directories, such as the `<output>/checkpoints` a `[train.*]` run with
        /// `save_every` writes (then planned from that run, before it exists). Every analysis of
        /// this model runs once per checkpoint, each a cached node, and its tables gain a `step`
        /// column (the updates done). Give exactly one of `path`, `hub` and `checkpoints`.
        pub checkpoints: Option<String>,
        /// With `checkpoints`: only these steps. Default: every checkpoint of the series.
        pub steps: Option<Vec<u32>>,
        /// Weight processing as in TransformerLens's HookedTransformer: `true` (default) applies every
        /// step, `false` none, and a table switches single steps off, e.g. `{ fold_ln = false }`.
        #[serde(default, deserialize_with = "processing_bool_or_table")]
        #[schemars(schema_with = "processing_schema")]
        pub processing: Processing,
        /// Which side batches of prompts of different lengths are padded on.
        #[serde(default)]
        pub padding_side: PaddingSide,
        /// The precision the weight matrices are held in: `f32` (default), or `bf16`/`f16` for
        /// half the memory (a multi-billion-parameter model that does not fit in f32).
        /// Computation, hooks and tables stay f32; results differ from f32 by the rounding of the
        /// weights.
        // Left out of the canonical form when f32, so that hashes from before the key existed hold.
        #[serde(default, skip_serializing_if = "WeightDtype::is_f32")]
        pub dtype: WeightDtype,
        /// A `tokenizer.json` to use instead of the model's own (relative to the experiment file).
        pub tokenizer: Option<String>,
    }
}

fn processing_bool_or_table<'de, D: Deserializer<'de>>(d: D) -> Result<Processing, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Processing;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean or a table of processing steps")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Processing, E> {
            Ok(if v { Processing::ALL } else { Processing::NONE })
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Processing, A::Error> {
            Processing::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V)
}

fn processing_schema(g: &mut SchemaGenerator) -> Schema {
    let table = g.subschema_for::<Processing>();
    json_schema!({
        "description": "Weight processing as in TransformerLens's HookedTransformer: true (default) applies every step, false none, and a table switches single steps off, e.g. { fold_ln = false }.",
        "anyOf": [ { "type": "boolean" }, table ]
    })
}

/// Where a model's files are, after resolving the experiment's paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelLocation {
    /// A local Hugging Face directory or `.gguf` file.
    Local(PathBuf),
    /// A hub id to find in the local Hugging Face cache.
    Hub {
        /// `ORG/NAME`.
        repo_id: String,
        /// The `@REVISION` part, if given.
        revision: Option<String>,
    },
}

impl ModelSpec {
    /// Where the weights are; relative paths are resolved against `base_dir` (the experiment
    /// file's directory, see [`crate::Experiment::base_dir`]).
    pub fn location(&self, base_dir: &Path) -> ModelLocation {
        match (&self.path, &self.hub) {
            (_, Some(hub)) => {
                let (repo_id, revision) = match hub.split_once('@') {
                    Some((id, rev)) => (id.to_string(), Some(rev.to_string())),
                    None => (hub.clone(), None),
                };
                ModelLocation::Hub { repo_id, revision }
            }
            (Some(path), None) => ModelLocation::Local(resolve_path(base_dir, path)),
            (None, None) => ModelLocation::Local(base_dir.to_path_buf()),
        }
    }

    /// The tokenizer override, resolved against `base_dir`.
    pub fn tokenizer_path(&self, base_dir: &Path) -> Option<PathBuf> {
        self.tokenizer.as_deref().map(|t| resolve_path(base_dir, t))
    }

    /// The checkpoint series directory, resolved against `base_dir`.
    pub fn checkpoints_dir(&self, base_dir: &Path) -> Option<PathBuf> {
        self.checkpoints
            .as_deref()
            .map(|c| resolve_path(base_dir, c))
    }

    pub(crate) fn validate(&self, c: &mut Checker<'_, '_>) {
        if let Some(checkpoints) = &self.checkpoints {
            for (key, given) in [("path", self.path.is_some()), ("hub", self.hub.is_some())] {
                if given {
                    c.error(
                        key,
                        format!("give either `{key}` or `checkpoints`, not both"),
                    );
                }
            }
            if checkpoints.trim().is_empty() {
                c.error("checkpoints", "`checkpoints` cannot be empty");
            }
            if let Some(steps) = &self.steps {
                c.distinct("steps", steps);
            }
        } else if self.steps.is_some() {
            c.error(
                "steps",
                "`steps` selects checkpoints of a series: it needs `checkpoints`",
            )
            .hint = Some(
                "e.g. checkpoints = \"models/phase-2l/checkpoints\", steps = [0, 1000]".into(),
            );
        }
        if self.checkpoints.is_none() && c.exactly_one_of(
            ("path", self.path.is_some()),
            ("hub", self.hub.is_some()),
            "a model needs `path` (a local directory or .gguf file), `hub` (ORG/NAME[@REV]) or `checkpoints` (a directory of step<N> model directories)",
            "e.g. path = \"models/attn-only-2l\" or hub = \"HuggingFaceTB/SmolLM2-135M\"",
        ) {
            if let Some(path) = &self.path
                && path.trim().is_empty()
            {
                c.error("path", "`path` cannot be empty");
            }
            if let Some(hub) = &self.hub
                && let Err(why) = check_hub_id(hub)
            {
                c.error("hub", format!("invalid hub id `{hub}`: {why}"))
                    .hint = Some(
                    "write ORG/NAME or ORG/NAME@REVISION, e.g. \"HuggingFaceTB/SmolLM2-135M@main\""
                        .into(),
                );
            }
        }
        if self
            .tokenizer
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            c.error("tokenizer", "`tokenizer` cannot be empty");
        }
    }
}

fn check_hub_id(hub: &str) -> Result<(), &'static str> {
    let (id, revision) = match hub.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (hub, None),
    };
    if revision.is_some_and(|r| r.is_empty() || r.contains('@')) {
        return Err("the revision after `@` is empty or has another `@`");
    }
    let parts: Vec<&str> = id.split('/').collect();
    if parts.len() > 2 {
        return Err("a hub id has at most one `/`");
    }
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !parts.iter().all(|p| ok(p)) {
        return Err("names may use letters, digits, `-`, `_` and `.`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids() {
        for (id, valid) in [
            ("HuggingFaceTB/SmolLM2-135M", true),
            ("gpt2", true),
            ("org/name@v1.0", true),
            ("org/name@", false),
            ("a/b/c", false),
            ("org/", false),
            ("org/na me", false),
        ] {
            assert_eq!(check_hub_id(id).is_ok(), valid, "{id:?}");
        }
    }

    #[test]
    fn locations() {
        let base = Path::new("/exp");
        let m = ModelSpec {
            path: Some("models/x".into()),
            hub: None,
            processing: Processing::ALL,
            padding_side: PaddingSide::Right,
            dtype: WeightDtype::F32,
            tokenizer: None,
            checkpoints: None,
            steps: None,
        };
        assert_eq!(
            m.location(base),
            ModelLocation::Local("/exp/models/x".into())
        );
        let h = ModelSpec {
            path: None,
            hub: Some("org/name@rev".into()),
            ..m
        };
        assert_eq!(
            h.location(base),
            ModelLocation::Hub {
                repo_id: "org/name".into(),
                revision: Some("rev".into())
            }
        );
    }
}
