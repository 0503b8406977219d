use crate::common;

use std::collections::BTreeMap;

use circuitry_data::{
    DataError, Dataset, DatasetOptions, Prompt, Record, Source, build_dataset, content_hash,
    derive_seed, pad_id,
};
use circuitry_models::Tokenizer;
use common::{bpe, bpe_plain, tiny};

fn opts(prepend_bos: bool, n_ctx: Option<usize>) -> DatasetOptions {
    DatasetOptions {
        prepend_bos,
        n_ctx,
        repeats: None,
    }
}

#[test]
fn texts_are_tokenized_with_the_model_tokenizer() {
    let tok = bpe();
    let texts = vec![
        "The cat sat on the mat.".to_string(),
        "When Mary and John went to the store".to_string(),
    ];
    let ds = build_dataset("t", &Source::Texts(texts.clone()), &tok, &opts(false, None)).unwrap();
    assert_eq!(ds.len(), 2);
    for (p, text) in ds.iter().zip(&texts) {
        assert_eq!(p.tokens, tok.encode(text).unwrap());
        assert_eq!(p.text.as_deref(), Some(text.as_str()));
        assert_eq!(p.position("first"), Some(0));
        assert_eq!(p.position("last"), Some(p.len() - 1));
        assert!(p.answers.is_empty() && p.corrupt_tokens.is_none());
    }
    let with_bos =
        build_dataset("t", &Source::Texts(texts.clone()), &tok, &opts(true, None)).unwrap();
    assert_eq!(with_bos.prompts[0].tokens[0], 0);
    assert_eq!(with_bos.prompts[0].tokens[1..], ds.prompts[0].tokens[..]);
    assert_eq!(
        with_bos.prompts[0].position("last"),
        Some(ds.prompts[0].len())
    );
    assert_ne!(with_bos.hash, ds.hash);

    // prepend_bos without a BOS token
    let err =
        build_dataset("t", &Source::Texts(texts), &bpe_plain(), &opts(true, None)).unwrap_err();
    assert!(matches!(err, DataError::NoBos { .. }), "{err}");
    assert!(err.to_string().contains("hint:"));
}

#[test]
fn records_carry_corrupt_prompts_and_answers() {
    let tok = bpe();
    let records = vec![
        Record::new("When Mary and John went to the store, John gave a drink to")
            .with_corrupt("When Amy and Paul went to the store, Lisa gave a drink to")
            .with_answer("IO", " Mary")
            .with_answer("S", " John"),
        Record::new("The cat sat on the mat.").with_corrupt("The mat sat on the cat."),
    ];
    let ds = build_dataset("r", &Source::Records(records), &tok, &opts(true, None)).unwrap();
    let p = &ds.prompts[0];
    assert_eq!(tok.token_text(p.answer("IO").unwrap()), " Mary");
    assert_eq!(tok.token_text(p.answer("S").unwrap()), " John");
    let c = p.corrupt_tokens.as_ref().unwrap();
    assert_eq!(c.len(), p.len());
    assert_eq!(c[0], 0, "BOS on the corrupt prompt too");
    let diff: Vec<usize> = (0..c.len()).filter(|&i| c[i] != p.tokens[i]).collect();
    assert_eq!(diff, [2, 4, 10]);
    assert!(ds.has_corrupt());
    assert_eq!(
        ds.answer_names(),
        Vec::<String>::new(),
        "only prompt 0 has answers"
    );
    assert_eq!(ds.position_names(), ["first", "last"]);
}

#[test]
fn every_bad_answer_and_length_mismatch_is_listed() {
    let tok = bpe();
    let records = vec![
        Record::new("The cat sat on the mat.").with_answer("A", " cat"),
        Record::new("The cat sat on the mat.")
            .with_answer("A", " Zyxwvut")
            .with_answer("B", "Alice"),
        Record::new("The cat sat on the mat.").with_answer("A", ""),
    ];
    let err = build_dataset("r", &Source::Records(records), &tok, &opts(false, None)).unwrap_err();
    let DataError::AnswerTokens { rows, .. } = &err else {
        panic!("{err}")
    };
    let ids: Vec<(u32, &str)> = rows.iter().map(|r| (r.id, &r.detail[..12])).collect();
    assert_eq!(
        ids,
        [
            (1, "answer `A` ="),
            (1, "answer `B` ="),
            (2, "answer `A` =")
        ]
    );
    assert!(
        rows[1].detail.contains("\"Alice\" is 3 tokens"),
        "{}",
        rows[1].detail
    );
    assert!(
        err.to_string().contains("prompt 1 (inline): answer `A`"),
        "{err}"
    );

    let records = vec![
        Record::new("The cat sat on the mat.").with_corrupt("The dog sat on the mat."),
        Record::new("The cat sat on the mat.").with_corrupt("The cat sat on the mat."),
        Record::new("The cat sat.").with_corrupt("The cat sat on it."),
    ];
    let err = build_dataset("r", &Source::Records(records), &tok, &opts(false, None)).unwrap_err();
    let DataError::CorruptLength { rows, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 2]);

    // one record with a corrupt text means all need one; empty texts are invalid
    let records = vec![
        Record::new("The cat sat.").with_corrupt("The mat sat."),
        Record::new("The cat sat."),
        Record::new(""),
    ];
    let err = build_dataset("r", &Source::Records(records), &tok, &opts(false, None)).unwrap_err();
    let DataError::InvalidPrompts { rows, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn too_long_error_lists_every_row_with_its_length() {
    let tok = bpe();
    let texts: Vec<String> = [
        "The cat",
        "The cat sat on the mat.",
        "The",
        "The cat sat on the mat. The cat",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let lens: Vec<usize> = texts
        .iter()
        .map(|t| tok.encode(t).unwrap().len() + 1)
        .collect();
    let n_ctx = 4;
    let err = build_dataset(
        "long",
        &Source::Texts(texts),
        &tok,
        &opts(true, Some(n_ctx)),
    )
    .unwrap_err();
    let DataError::TooLong {
        dataset,
        n_ctx: got_ctx,
        rows,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(dataset, "long");
    assert_eq!(*got_ctx, 4);
    let expected: Vec<(u32, String)> = lens
        .iter()
        .enumerate()
        .filter(|(_, l)| **l > n_ctx)
        .map(|(i, l)| (i as u32, format!("length {l}")))
        .collect();
    assert_eq!(expected.len(), 2);
    assert_eq!(
        rows.iter()
            .map(|r| (r.id, r.detail.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(err.rows().len(), 2);
    let msg = err.to_string();
    assert!(
        msg.contains("prompt 1 (inline): length") && msg.contains("prompt 3 (inline): length"),
        "{msg}"
    );
}

#[test]
fn token_id_lists_are_checked_against_the_vocabulary() {
    let rows = vec![vec![1, 2, 3], vec![4, 200, 5, 300], vec![], vec![127]];
    let err =
        build_dataset("ids", &Source::token_ids(rows), &tiny(), &opts(false, None)).unwrap_err();
    let DataError::InvalidPrompts { rows, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, 1);
    assert!(rows[0].detail.contains("[200, 300]"), "{}", rows[0].detail);
    assert_eq!(rows[1].id, 2);

    let ds = build_dataset(
        "ids",
        &Source::token_ids(vec![vec![5, 6], vec![7]]),
        &tiny(),
        &opts(true, None),
    )
    .unwrap();
    assert_eq!(ds.prompts[0].tokens, [0, 5, 6]);
    assert_eq!(ds.prompts[1].tokens, [0, 7]);
    assert_eq!(ds.prompts[1].position("last"), Some(1));
    assert!(ds.prompts[0].text.is_none());
}

#[test]
fn empty_datasets_are_rejected() {
    let err = build_dataset("e", &Source::Texts(vec![]), &bpe(), &opts(false, None)).unwrap_err();
    assert!(matches!(err, DataError::Config { .. }), "{err}");
    assert_eq!(err.dataset(), "e");
}

#[test]
fn hashes_are_stable_and_follow_the_content() {
    let tok = tiny();
    let build = |rows: Vec<Vec<u32>>, name: &str| {
        build_dataset(name, &Source::token_ids(rows), &tok, &opts(false, None)).unwrap()
    };
    let a = build(vec![vec![1, 2, 3], vec![4, 5]], "a");
    // Pinned: the hash encoding is part of the reproducibility contract.
    assert_eq!(a.hash, GOLDEN_HASH);
    assert_eq!(a.hash, build(vec![vec![1, 2, 3], vec![4, 5]], "a").hash);
    assert_eq!(
        a.hash,
        build(vec![vec![1, 2, 3], vec![4, 5]], "other name").hash,
        "name not hashed"
    );
    assert_ne!(a.hash, build(vec![vec![1, 2, 3], vec![4, 6]], "a").hash);
    assert_ne!(
        a.hash,
        build(vec![vec![1, 2], vec![3, 4, 5]], "a").hash,
        "boundaries count"
    );
    assert_ne!(a.hash, build(vec![vec![4, 5], vec![1, 2, 3]], "a").hash);
    assert_eq!(a.hash, content_hash(&a.prompts));

    let mut prompts = a.prompts.clone();
    prompts[0].answers.insert("X".into(), 9);
    assert_ne!(content_hash(&prompts), a.hash);
    let mut prompts = a.prompts.clone();
    prompts[1].fields.insert("k".into(), "v".into());
    assert_ne!(content_hash(&prompts), a.hash);
    let mut prompts = a.prompts.clone();
    prompts[1].positions.insert("mid".into(), 0);
    assert_ne!(content_hash(&prompts), a.hash);
    let mut prompts = a.prompts.clone();
    prompts[1].corrupt_tokens = Some(vec![4, 5]);
    assert_ne!(content_hash(&prompts), a.hash);
    let mut prompts = a.prompts.clone();
    prompts[1].text = Some(String::new());
    assert_ne!(content_hash(&prompts), a.hash);
}

const GOLDEN_HASH: &str = "f28659c6d93b77d55031492d7f31725dcb1fe477baf1d4be2ca63cebacbeefc8";

#[test]
fn batches_group_prompts_in_id_order() {
    let rows: Vec<Vec<u32>> = (1..=5).map(|i| vec![i; i as usize]).collect();
    let ds = build_dataset("b", &Source::token_ids(rows), &tiny(), &opts(false, None)).unwrap();
    let batches = ds.batches(2).unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(
        batches.iter().map(|b| b.ids()).collect::<Vec<_>>(),
        [vec![0, 1], vec![2, 3], vec![4]]
    );
    assert_eq!(
        batches.iter().map(|b| b.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(batches[1].rows(), [vec![3, 3, 3], vec![4, 4, 4, 4]]);
    assert!(batches[0].corrupt_rows().is_none());
    assert_eq!(ds.batches(10).unwrap().len(), 1);
    assert!(ds.batches(0).is_err());
    assert_eq!(ds.max_len(), 5);

    let with_corrupt = Dataset::new(
        "c",
        vec![
            Prompt {
                corrupt_tokens: Some(vec![9, 9]),
                ..Prompt::from_tokens(7, vec![1, 2])
            },
            Prompt {
                corrupt_tokens: Some(vec![8]),
                ..Prompt::from_tokens(7, vec![3])
            },
        ],
    );
    assert_eq!(with_corrupt.prompts[1].id, 1, "renumbered");
    assert_eq!(
        with_corrupt.batches(5).unwrap()[0].corrupt_rows(),
        Some(vec![vec![9, 9], vec![8]])
    );
}

#[test]
fn pad_id_prefers_pad_then_eos_then_zero() {
    let plain = bpe_plain();
    assert_eq!(pad_id(&plain), 0);
    let t: Tokenizer = plain.clone().with_special_tokens(Some(1), Some(2), None);
    assert_eq!(pad_id(&t), 2);
    let t: Tokenizer = plain.with_special_tokens(Some(1), Some(2), Some(3));
    assert_eq!(pad_id(&t), 3);
}

#[test]
fn derive_seed_is_pinned_and_separates_labels() {
    assert_eq!(derive_seed(0, "ioi"), GOLDEN_SEED);
    assert_eq!(derive_seed(0, "ioi"), derive_seed(0, "ioi"));
    assert_ne!(derive_seed(0, "ioi"), derive_seed(1, "ioi"));
    assert_ne!(derive_seed(0, "ioi"), derive_seed(0, "ioi2"));
    assert_ne!(derive_seed(0, ""), 0);
}

const GOLDEN_SEED: u64 = 13_412_019_840_982_328_343;

#[test]
fn records_deserialize_from_json() {
    let r: Record =
        serde_json::from_str(r#"{"text": "a", "answers": {"IO": " Mary"}, "fields": {"k": "v"}}"#)
            .unwrap();
    assert_eq!(r.text, "a");
    assert_eq!(r.corrupt, None);
    assert_eq!(
        r.answers,
        BTreeMap::from([("IO".to_string(), " Mary".to_string())])
    );
}

#[test]
fn token_id_prompts_carry_their_counterfactuals() {
    use circuitry_data::TokenRecord;
    let rows = vec![TokenRecord {
        tokens: vec![5, 6, 7],
        corrupt: Some(vec![5, 9, 7]),
        ..TokenRecord::default()
    }];
    let ds = build_dataset("pairs", &Source::TokenIds(rows), &tiny(), &opts(true, None)).unwrap();
    assert_eq!(ds.prompts[0].tokens, vec![0, 5, 6, 7]);
    assert_eq!(ds.prompts[0].corrupt_tokens, Some(vec![0, 5, 9, 7]));
    assert!(ds.has_corrupt());
    let bad = vec![TokenRecord {
        tokens: vec![5, 6, 7],
        corrupt: Some(vec![5, 9]),
        ..TokenRecord::default()
    }];
    let err =
        build_dataset("pairs", &Source::TokenIds(bad), &tiny(), &opts(false, None)).unwrap_err();
    assert!(err.to_string().contains("corrupt has 2 token ids"), "{err}");
}

/// A dataset that declares `repeats` gets the generator's repeat positions, after the BOS;
/// prompts that are not copies of one sequence are all reported.
#[test]
fn declared_repeats_name_the_repeat_positions() {
    let rows = vec![vec![5, 6, 7, 5, 6, 7], vec![9, 9], vec![4, 8, 4, 8, 4, 8]];
    let with = |prepend_bos, repeats| DatasetOptions {
        prepend_bos,
        n_ctx: None,
        repeats: Some(repeats),
    };
    let ds = build_dataset(
        "r",
        &Source::token_ids(rows.clone()),
        &tiny(),
        &with(true, 2),
    );
    let err = ds.unwrap_err().to_string();
    assert!(
        err.contains("prompt 2") && err.contains("its 6 tokens after the BOS are not 2 copies"),
        "{err}"
    );
    assert!(
        !err.contains("prompt 0") && !err.contains("prompt 1"),
        "{err}"
    );

    let ds = build_dataset(
        "r",
        &Source::token_ids(rows[..2].to_vec()),
        &tiny(),
        &with(true, 2),
    )
    .unwrap();
    let at = |i: usize, name: &str| ds.prompts[i].position(name);
    assert_eq!(
        (at(0, "seq_start"), at(0, "repeat_start")),
        (Some(1), Some(4))
    );
    assert_eq!(
        (at(1, "seq_start"), at(1, "repeat_start")),
        (Some(1), Some(2))
    );
    let plain = build_dataset(
        "r",
        &Source::token_ids(rows[..2].to_vec()),
        &tiny(),
        &with(false, 2),
    )
    .unwrap();
    assert_eq!(plain.prompts[0].position("repeat_start"), Some(3));
    let three = build_dataset(
        "r",
        &Source::token_ids(vec![rows[2].clone()]),
        &tiny(),
        &with(false, 3),
    )
    .unwrap();
    assert_eq!(three.prompts[0].position("repeat_start"), Some(2));
    let err = build_dataset(
        "r",
        &Source::token_ids(vec![vec![1, 2, 1]]),
        &tiny(),
        &with(false, 2),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("its 3 tokens after the BOS are not 2 copies"),
        "{err}"
    );
}

/// Token-id records and text records carry named positions (indices as written, moved along by
/// a prepended BOS; negative from the end) and token-id records answers (ids or one-token
/// texts); every bad one is reported.
#[test]
fn user_records_name_their_positions_and_answers() {
    use circuitry_data::{AnswerToken, TokenRecord};
    let tok = bpe();
    let word = tok.encode(" Mary").unwrap();
    assert_eq!(word.len(), 1);
    let record =
        |tokens: Vec<u32>, answers: Vec<(&str, AnswerToken)>, positions: Vec<(&str, i64)>| {
            TokenRecord {
                tokens,
                corrupt: None,
                answers: answers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                positions: positions
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            }
        };
    let rows = vec![
        record(
            vec![5, 6, 7, 8],
            vec![
                ("A", AnswerToken::Id(9)),
                ("B", AnswerToken::Text(" Mary".into())),
            ],
            vec![("END", -1), ("S", 1)],
        ),
        record(
            vec![5, 6],
            vec![("A", AnswerToken::Id(3))],
            vec![("END", -2)],
        ),
    ];
    for (bos, shift) in [(false, 0), (true, 1)] {
        let ds =
            build_dataset("r", &Source::TokenIds(rows.clone()), &tok, &opts(bos, None)).unwrap();
        let (p, q) = (&ds.prompts[0], &ds.prompts[1]);
        assert_eq!(
            (p.position("END"), p.position("S")),
            (Some(3 + shift), Some(1 + shift))
        );
        assert_eq!(p.tokens[p.position("S").unwrap()], 6);
        assert_eq!(q.position("END"), Some(shift));
        assert_eq!(
            (p.answers["A"], p.answers["B"], q.answers["A"]),
            (9, word[0], 3)
        );
    }
    let bad = [
        record(vec![5, 6], vec![], vec![("END", 2)]),
        record(vec![5, 6], vec![], vec![("END", -3)]),
        record(
            vec![5, 6],
            vec![("A", AnswerToken::Text(" Mary Mary".into()))],
            vec![],
        ),
    ];
    let err = build_dataset(
        "r",
        &Source::TokenIds(bad[..2].to_vec()),
        &tok,
        &opts(true, None),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("prompt 0") && err.contains("position `END` = 2 is outside its 2 tokens"),
        "{err}"
    );
    assert!(
        err.contains("prompt 1") && err.contains("position `END` = -3 is outside"),
        "{err}"
    );
    let err = build_dataset(
        "r",
        &Source::TokenIds(bad[2..].to_vec()),
        &tok,
        &opts(true, None),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("answer `A` = \" Mary Mary\" is not one token"),
        "{err}"
    );

    // Text records: indices into the text's tokens.
    let text = "When Mary and John went to the store";
    let ids = tok.encode(text).unwrap();
    let mut r = Record::new(text);
    r.positions.insert("last_word".into(), -1);
    r.positions.insert("second".into(), 1);
    let ds = build_dataset(
        "t",
        &Source::Records(vec![r.clone()]),
        &tok,
        &opts(true, None),
    )
    .unwrap();
    let p = &ds.prompts[0];
    assert_eq!(p.position("last_word"), Some(ids.len()));
    assert_eq!(p.tokens[p.position("second").unwrap()], ids[1]);
    r.positions.insert("beyond".into(), ids.len() as i64);
    let err = build_dataset("t", &Source::Records(vec![r]), &tok, &opts(false, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("position `beyond`"), "{err}");
}
