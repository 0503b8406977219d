//! Text corpora cut into windows of tokens (`Source::Text`), on the shipped fortune sample and
//! small corpora written here, with the byte-level BPE fixture tokenizer.
use crate::common;

use circuitry_data::{DataError, DatasetOptions, Source, TextConfig, build_dataset};
use common::bpe;

fn sample() -> std::path::PathBuf {
    common::fixture("../../data/corpus/fortunes-sample.txt")
}

fn opts(prepend_bos: bool) -> DatasetOptions {
    DatasetOptions {
        prepend_bos,
        n_ctx: Some(64),
        repeats: None,
    }
}

#[test]
fn windows_cut_each_document_and_remember_where_they_came_from() {
    let tok = bpe();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.txt");
    let docs = [
        "the cat sat on the mat and the dog sat on the log",
        "Mary went to the store",
        "x",
    ];
    std::fs::write(&path, docs.join("\n%\n")).unwrap();
    let mut cfg = TextConfig::new(&path, 4);
    cfg.separator = Some("%".into());
    cfg.min_tokens = 2;
    let ds = build_dataset("c", &Source::Text(cfg.clone()), &tok, &opts(true)).unwrap();
    let ids: Vec<Vec<u32>> = docs.iter().map(|d| tok.encode(d).unwrap()).collect();
    // Expected: every document's windows of 4 (the last one kept if >= 2 tokens), in order.
    let mut expected = Vec::new();
    for (d, doc) in ids.iter().enumerate() {
        for (w, chunk) in doc.chunks(4).enumerate() {
            if chunk.len() >= 2 {
                expected.push((d, w * 4, chunk.to_vec()));
            }
        }
    }
    assert_eq!(ds.len(), expected.len());
    for (p, (d, offset, chunk)) in ds.iter().zip(&expected) {
        assert_eq!(p.tokens[0], 0, "BOS first");
        assert_eq!(&p.tokens[1..], &chunk[..]);
        assert_eq!(p.fields["document"], d.to_string());
        assert_eq!(p.fields["offset"], offset.to_string());
        assert_eq!(p.fields["file"], "c.txt");
        assert_eq!(p.text.as_deref(), Some(tok.decode(chunk).as_str()));
    }
    // Overlapping windows with a stride of 2, full windows only.
    cfg.stride = 2;
    cfg.min_tokens = 4;
    let ds = build_dataset("c", &Source::Text(cfg.clone()), &tok, &opts(false)).unwrap();
    let first = &ids[0];
    let starts: Vec<usize> = ds
        .iter()
        .filter(|p| p.fields["document"] == "0")
        .map(|p| p.fields["offset"].parse().unwrap())
        .collect();
    assert_eq!(starts, (0..=first.len() - 4).step_by(2).collect::<Vec<_>>());
    for p in ds.iter().filter(|p| p.fields["document"] == "0") {
        let o: usize = p.fields["offset"].parse().unwrap();
        assert_eq!(p.tokens, first[o..o + 4]);
    }
}

#[test]
fn a_seeded_sample_keeps_corpus_order_and_is_reproducible() {
    let tok = bpe();
    let mut cfg = TextConfig::new(sample(), 32);
    cfg.separator = Some("%".into());
    cfg.min_tokens = 8;
    let all = build_dataset("s", &Source::Text(cfg.clone()), &tok, &opts(true)).unwrap();
    assert!(all.len() > 1000, "{}", all.len());
    cfg.n = Some(100);
    cfg.seed = 5;
    let a = build_dataset("s", &Source::Text(cfg.clone()), &tok, &opts(true)).unwrap();
    let b = build_dataset("s", &Source::Text(cfg.clone()), &tok, &opts(true)).unwrap();
    assert_eq!(a.len(), 100);
    assert_eq!(a.hash, b.hash);
    // A subset of every window, in corpus order.
    let key = |p: &circuitry_data::Prompt| {
        (
            p.fields["document"].parse::<usize>().unwrap(),
            p.fields["offset"].parse::<usize>().unwrap(),
        )
    };
    let keys: Vec<_> = a.iter().map(key).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    for p in a.iter() {
        let same = all.iter().find(|q| key(q) == key(p)).unwrap();
        assert_eq!(same.tokens, p.tokens);
    }
    cfg.seed = 6;
    let c = build_dataset("s", &Source::Text(cfg), &tok, &opts(true)).unwrap();
    assert_ne!(a.hash, c.hash);
}

#[test]
fn a_directory_is_read_in_name_order_without_hidden_files() {
    let tok = bpe();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.txt"), "the dog sat").unwrap();
    std::fs::write(dir.path().join("a.txt"), "the cat sat").unwrap();
    std::fs::write(dir.path().join(".hidden"), [0xff, 0xfe]).unwrap();
    let mut cfg = TextConfig::new(dir.path(), 16);
    cfg.min_tokens = 1;
    let ds = build_dataset("d", &Source::Text(cfg.clone()), &tok, &opts(false)).unwrap();
    let files: Vec<&str> = ds.iter().map(|p| p.fields["file"].as_str()).collect();
    assert_eq!(files, ["a.txt", "b.txt"]);
    assert_eq!(
        circuitry_data::text::corpus_files(dir.path())
            .unwrap()
            .len(),
        2
    );

    // A file that is not UTF-8 is an error naming it and its line.
    std::fs::write(dir.path().join("c.bin"), b"ok\nline \xff two").unwrap();
    let e = build_dataset("d", &Source::Text(cfg), &tok, &opts(false)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("c.bin") && msg.contains("line 2") && msg.contains("not UTF-8"),
        "{msg}"
    );
    assert_eq!(e.key(), Some("path"));
}

#[test]
fn bad_settings_are_errors_at_their_key() {
    let tok = bpe();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.txt");
    std::fs::write(&path, "the cat sat on the mat").unwrap();
    let check = |cfg: TextConfig, key: &str, needle: &str| {
        let e = build_dataset("c", &Source::Text(cfg), &tok, &opts(false)).unwrap_err();
        assert_eq!(e.key(), Some(key), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    };
    let base = TextConfig::new(&path, 4);
    check(
        TextConfig {
            n: Some(100),
            ..base.clone()
        },
        "n",
        "the corpus gives",
    );
    check(
        TextConfig {
            min_tokens: 5,
            ..base.clone()
        },
        "min_tokens",
        "more than `window`",
    );
    check(
        TextConfig {
            stride: 0,
            ..base.clone()
        },
        "stride",
        "greater than 0",
    );
    check(
        TextConfig::new(dir.path().join("missing.txt"), 4),
        "path",
        "missing.txt",
    );
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n%\n").unwrap();
    check(
        TextConfig {
            separator: Some("%".into()),
            ..TextConfig::new(&empty, 4)
        },
        "path",
        "holds no text",
    );
    // Windows longer than the context are reported like any prompt.
    let long = TextConfig::new(sample(), 200);
    let e = build_dataset("c", &Source::Text(long), &tok, &opts(false)).unwrap_err();
    assert!(matches!(e, DataError::TooLong { .. }), "{e}");
}
