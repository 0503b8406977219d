//! The GGUF reader against `tests/fixtures/gguf/quants.gguf`, written by
//! `scripts/make_gguf_fixtures.py` with the Python `gguf` package: metadata of every value type,
//! shapes in row-major order, and dequantized values equal to what `gguf.quants.dequantize` gives.

use std::path::PathBuf;

use circuitry_models::loading::TensorSource;
use circuitry_models::loading::gguf::{GgufFile, GgufValue};
use circuitry_models::{LoadError, ModelSource, load_weights};
use circuitry_testkit::fixture_dir;
use safetensors::SafeTensors;

fn fixture(name: &str) -> PathBuf {
    fixture_dir("gguf").join(name)
}

fn open_quants() -> GgufFile {
    GgufFile::open(&fixture("quants.gguf")).expect("quants.gguf opens")
}

#[test]
fn metadata_of_every_value_type() {
    let file = open_quants();
    assert_eq!(file.version(), 3);
    let meta = file.metadata();
    let get = |k: &str| meta.get(k).unwrap_or_else(|| panic!("missing {k}")).clone();
    assert_eq!(
        get("general.architecture"),
        GgufValue::String("circuitry-test".into())
    );
    assert_eq!(get("general.alignment"), GgufValue::U32(64));
    assert_eq!(get("test.u8"), GgufValue::U8(200));
    assert_eq!(get("test.i8"), GgufValue::I8(-5));
    assert_eq!(get("test.u16"), GgufValue::U16(60000));
    assert_eq!(get("test.i16"), GgufValue::I16(-30000));
    assert_eq!(get("test.u32"), GgufValue::U32(4_000_000_000));
    assert_eq!(get("test.i32"), GgufValue::I32(-2_000_000_000));
    assert_eq!(get("test.f32"), GgufValue::F32(1.5));
    assert_eq!(get("test.bool"), GgufValue::Bool(true));
    assert_eq!(get("test.string"), GgufValue::String("naïve 🙂".into()));
    assert_eq!(get("test.u64"), GgufValue::U64((1 << 63) + 5));
    assert_eq!(get("test.i64"), GgufValue::I64(-(1 << 62)));
    assert_eq!(get("test.f64"), GgufValue::F64(0.1));
    assert_eq!(
        meta.opt_ints("test.array_i32").unwrap(),
        Some(vec![1, -2, 3])
    );
    assert_eq!(
        meta.opt_strings("test.array_str").unwrap(),
        Some(vec!["a", "", "ü 東京"])
    );
    assert_eq!(
        get("test.array_nested"),
        GgufValue::Array(vec![
            GgufValue::Array(vec![GgufValue::I32(1), GgufValue::I32(2)]),
            GgufValue::Array(vec![GgufValue::I32(3)]),
        ])
    );
    // Typed access converts between integer widths, and names the key when the type is wrong.
    assert_eq!(meta.opt_u64("test.u8").unwrap(), Some(200));
    assert_eq!(meta.opt_u64("test.i8").ok(), None, "negative is not a u64");
    let err = meta.str("test.u32").unwrap_err().to_string();
    assert!(
        err.contains("quants.gguf") && err.contains("test.u32") && err.contains("string"),
        "{err}"
    );
    let err = meta.str("no.such.key").unwrap_err().to_string();
    assert!(
        err.contains("no.such.key") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn dequantized_values_match_gguf_py() {
    let file = open_quants();
    let expected_bytes = std::fs::read(fixture("quants.expected.safetensors")).unwrap();
    let expected = SafeTensors::deserialize(&expected_bytes).unwrap();
    let shapes = file.shapes();
    let mut checked = Vec::new();
    for (name, view) in expected.tensors() {
        assert_eq!(
            shapes.get(&name),
            Some(&view.shape().to_vec()),
            "shape of {name}"
        );
        let want: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let got = file.read(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.shape, view.shape(), "{name}");
        for (i, (g, w)) in got.data().iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{name}[{i}]: got {g}, gguf-py gives {w}"
            );
        }
        // The kernels follow ggml's arithmetic exactly, so agreement is in fact bit for bit.
        assert_eq!(*got.data(), want, "{name} is not bit-identical");
        checked.push(name.trim_start_matches("dequant.").to_string());
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "bf16", "f16", "f32", "f32_3d", "q2_k", "q3_k", "q4_0", "q4_1", "q4_k", "q5_0", "q5_1",
            "q5_k", "q6_k", "q8_0"
        ]
    );
}

#[test]
fn unsupported_type_is_an_error_naming_tensor_type_and_supported_list() {
    let file = open_quants();
    let err = file.read("unsupported.iq2_xxs").unwrap_err();
    assert!(matches!(err, LoadError::UnsupportedDtype { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [
        "quants.gguf",
        "unsupported.iq2_xxs",
        "IQ2_XXS",
        "Q4_K",
        "Q8_0",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
}

#[test]
fn missing_tensor_is_an_error() {
    let err = open_quants()
        .read("no.such.tensor")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no.such.tensor") && err.contains("quants.gguf"),
        "{err}"
    );
}

#[test]
fn unsupported_architecture_names_the_file() {
    let err = load_weights(&ModelSource::Gguf(fixture("quants.gguf"))).unwrap_err();
    assert!(
        matches!(err, LoadError::UnsupportedGgufArchitecture { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("quants.gguf") && msg.contains("circuitry-test") && msg.contains("llama"),
        "{msg}"
    );
}
