//! Damaged GGUF files (truncated anywhere, bad magic, absurd counts and sizes, unknown versions)
//! give errors that name the file, never panics or huge allocations.

use std::path::Path;

use circuitry_models::loading::TensorSource;
use circuitry_models::loading::gguf::GgufFile;
use circuitry_models::{LoadError, ModelSource, load_weights};
use circuitry_testkit::fixture_dir;

fn fixture_bytes() -> Vec<u8> {
    let path = fixture_dir("gguf").join("quants.gguf");
    std::fs::read(path).unwrap()
}

/// Writes `bytes` to `dir/name` and opens it, reading every tensor of a supported type if it
/// opens (the fixture's `unsupported.*` tensor always fails to read, so it is left out).
fn open_and_read(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let file = GgufFile::open(&path)?;
    for tensor in file
        .shapes()
        .keys()
        .filter(|n| !n.starts_with("unsupported."))
    {
        file.read(tensor)?;
    }
    Ok(())
}

fn assert_error_names_file(result: Result<(), LoadError>, name: &str, what: &str) -> String {
    let err = result.expect_err(what).to_string();
    assert!(
        err.contains(name),
        "{what}: error does not name the file: {err}"
    );
    err
}

#[test]
fn truncated_files_are_errors() {
    let bytes = fixture_bytes();
    let dir = tempfile::tempdir().unwrap();
    // The file may end with alignment padding after the last tensor; cutting that is harmless.
    let full = dir.path().join("full.gguf");
    std::fs::write(&full, &bytes).unwrap();
    let infos = GgufFile::open(&full).unwrap().tensor_infos().clone();
    let data_end = infos
        .values()
        .map(|t| t.start + t.len.unwrap())
        .max()
        .unwrap();
    let first_data = infos.values().map(|t| t.start).min().unwrap();
    // Every length through the header (where each field can be cut), then a stride through data.
    let lengths = (0..first_data).chain((first_data..data_end).step_by(37));
    for len in lengths {
        let result = open_and_read(dir.path(), "cut.gguf", &bytes[..len]);
        assert_error_names_file(
            result,
            "cut.gguf",
            &format!("truncated to {len} of {} bytes", bytes.len()),
        );
    }
    // Cutting the last byte of the last tensor (the unsupported IQ2_XXS one, whose extent is
    // still checked).
    let err = assert_error_names_file(
        open_and_read(dir.path(), "cut.gguf", &bytes[..data_end - 1]),
        "cut.gguf",
        "last data byte cut",
    );
    assert!(err.contains("past the end of the file"), "{err}");
    open_and_read(dir.path(), "cut.gguf", &bytes[..data_end])
        .expect("a file cut after its last tensor is whole");
}

#[test]
fn bad_magic_is_an_error() {
    let mut bytes = fixture_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    let dir = tempfile::tempdir().unwrap();
    let err = assert_error_names_file(
        open_and_read(dir.path(), "magic.gguf", &bytes),
        "magic.gguf",
        "bad magic",
    );
    assert!(err.contains("magic"), "{err}");
    // Through the public loader too.
    let path = dir.path().join("magic.gguf");
    let err = load_weights(&ModelSource::Gguf(path)).unwrap_err();
    assert!(matches!(err, LoadError::Format { .. }), "{err:?}");
}

#[test]
fn unknown_and_old_versions_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (version, expect) in [
        (1u32, "version 1"),
        (7, "unknown GGUF version 7"),
        (3u32.swap_bytes(), "big-endian"),
    ] {
        let mut bytes = fixture_bytes();
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        let err = assert_error_names_file(
            open_and_read(dir.path(), "version.gguf", &bytes),
            "version.gguf",
            expect,
        );
        assert!(err.contains(expect), "{err}");
    }
}

#[test]
fn absurd_counts_and_lengths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Header: magic(4) version(4) n_tensors(8) n_kv(8), then the first key's length(8).
    for (offset, what) in [
        (8, "tensor count"),
        (16, "metadata count"),
        (24, "first key length"),
    ] {
        for value in [u64::MAX, 1 << 40] {
            let mut bytes = fixture_bytes();
            bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
            assert_error_names_file(
                open_and_read(dir.path(), "absurd.gguf", &bytes),
                "absurd.gguf",
                what,
            );
        }
    }
}

#[test]
fn empty_and_garbage_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert_error_names_file(
        open_and_read(dir.path(), "empty.gguf", &[]),
        "empty.gguf",
        "empty file",
    );
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert_error_names_file(
        open_and_read(dir.path(), "garbage.gguf", &garbage),
        "garbage.gguf",
        "garbage",
    );
    // GGUF magic and version followed by garbage.
    let mut bytes = b"GGUF\x03\x00\x00\x00".to_vec();
    bytes.extend(&garbage);
    assert_error_names_file(
        open_and_read(dir.path(), "garbage2.gguf", &bytes),
        "garbage2.gguf",
        "garbage after header",
    );
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = GgufFile::open(Path::new("/nonexistent/model.gguf")).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/model.gguf"));
}
