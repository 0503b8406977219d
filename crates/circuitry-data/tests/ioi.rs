use crate::common;

use std::collections::BTreeSet;

use circuitry_data::{
    DataError, Dataset, DatasetOptions, IoiConfig, IoiCorruption, IoiTemplates, Source,
    build_dataset,
};
use common::bpe;

fn bos() -> DatasetOptions {
    DatasetOptions {
        prepend_bos: true,
        n_ctx: None,
        repeats: None,
    }
}

fn ioi(cfg: IoiConfig, options: &DatasetOptions) -> Result<Dataset, DataError> {
    build_dataset("ioi", &Source::Ioi(cfg), &bpe(), options)
}

fn differing(a: &[u32], b: &[u32]) -> BTreeSet<usize> {
    assert_eq!(a.len(), b.len());
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

#[test]
fn named_positions_and_answers_point_at_the_right_tokens() {
    let tok = bpe();
    let ds = ioi(IoiConfig::new(40, 0), &bos()).unwrap();
    assert_eq!(ds.len(), 40);
    assert_eq!(ds.name, "ioi");
    let mut orders = BTreeSet::new();
    for (i, p) in ds.iter().enumerate() {
        assert_eq!(p.id as usize, i);
        assert_eq!(p.tokens[0], 0, "BOS first");
        let text = p.text.as_deref().unwrap();
        assert_eq!(tok.decode(&p.tokens[1..]), text);
        assert!(text.ends_with(" to"), "{text}");
        let (io, s) = (&p.fields["IO"], &p.fields["S"]);
        assert_ne!(io, s);
        let at = |name: &str| tok.token_text(p.tokens[p.position(name).unwrap()]);
        assert_eq!(at("IO"), format!(" {io}"), "{text}");
        assert_eq!(at("S1"), format!(" {s}"), "{text}");
        assert_eq!(at("S2"), format!(" {s}"), "{text}");
        assert_eq!(at("END"), " to");
        assert_eq!(p.position("END"), Some(p.len() - 1));
        assert_eq!(p.position("last"), Some(p.len() - 1));
        assert_eq!(p.position("first"), Some(0));
        assert!(p.position("S1") < p.position("S2"));
        assert_eq!(tok.token_text(p.answer("IO").unwrap()), format!(" {io}"));
        assert_eq!(tok.token_text(p.answer("S").unwrap()), format!(" {s}"));
        assert_eq!(p.answer("IO"), Some(p.tokens[p.position("IO").unwrap()]));
        let order = &p.fields["order"];
        assert_eq!(
            order == "ABBA",
            p.position("IO") < p.position("S1"),
            "{text}"
        );
        orders.insert(order.clone());
        // the sentence is the template with the names, place and object filled in
        let template = p.fields["template"]
            .replace("[PLACE]", &p.fields["place"])
            .replace("[OBJECT]", &p.fields["object"]);
        let template = template.strip_suffix(" [A]").unwrap();
        assert_eq!(template.replace("[A]", io).replace("[B]", s), text);
    }
    assert_eq!(orders.len(), 2, "mixed templates give both orders");
    assert_eq!(
        ds.position_names(),
        ["END", "IO", "S1", "S2", "first", "last"]
    );
    assert_eq!(ds.answer_names(), ["IO", "S"]);
    assert!(ds.has_corrupt());
}

#[test]
fn abc_corruption_replaces_the_three_names_with_three_other_names() {
    let tok = bpe();
    let ds = ioi(IoiConfig::new(40, 1), &bos()).unwrap();
    for p in ds.iter() {
        let c = p.corrupt_tokens.as_ref().unwrap();
        assert_eq!(c.len(), p.len());
        let name_positions: BTreeSet<usize> = ["IO", "S1", "S2"]
            .iter()
            .map(|n| p.position(n).unwrap())
            .collect();
        assert_eq!(differing(&p.tokens, c), name_positions);
        let new: BTreeSet<u32> = name_positions.iter().map(|&i| c[i]).collect();
        assert_eq!(new.len(), 3, "three distinct names");
        assert!(!new.contains(&p.answer("IO").unwrap()));
        assert!(!new.contains(&p.answer("S").unwrap()));
        assert_eq!(tok.decode(&c[1..]), p.corrupt_text.as_deref().unwrap());
        assert_eq!(p.fields["corruption"], "abc");
        assert_eq!(
            tok.token_text(c[p.position("S2").unwrap()]),
            format!(" {}", p.fields["corrupt_S2"])
        );
    }
}

#[test]
fn s2_io_and_swap_corruptions() {
    let mut cfg = IoiConfig::new(30, 2);
    cfg.corruption = IoiCorruption::S2Io;
    let s2io = ioi(cfg.clone(), &bos()).unwrap();
    for p in s2io.iter() {
        let c = p.corrupt_tokens.as_ref().unwrap();
        let s2 = p.position("S2").unwrap();
        assert_eq!(differing(&p.tokens, c), BTreeSet::from([s2]));
        assert_eq!(c[s2], p.answer("IO").unwrap());
    }
    cfg.corruption = IoiCorruption::Swap;
    let swap = ioi(cfg.clone(), &bos()).unwrap();
    for p in swap.iter() {
        let c = p.corrupt_tokens.as_ref().unwrap();
        let (io, s1, s2) = (
            p.position("IO").unwrap(),
            p.position("S1").unwrap(),
            p.position("S2").unwrap(),
        );
        assert_eq!(differing(&p.tokens, c), BTreeSet::from([io, s1, s2]));
        assert_eq!(c[io], p.answer("S").unwrap());
        assert_eq!(c[s1], p.answer("IO").unwrap());
        assert_eq!(c[s2], p.answer("IO").unwrap());
    }
    cfg.corruption = IoiCorruption::NoCorruption;
    let none = ioi(cfg, &bos()).unwrap();
    assert!(
        none.iter()
            .all(|p| p.corrupt_tokens.is_none() && p.corrupt_text.is_none())
    );
    assert!(!none.has_corrupt());
    // the clean prompts do not depend on the corruption kind
    let abc = ioi(IoiConfig::new(30, 2), &bos()).unwrap();
    for (((a, b), c), d) in abc
        .iter()
        .zip(s2io.iter())
        .zip(swap.iter())
        .zip(none.iter())
    {
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(a.tokens, c.tokens);
        assert_eq!(a.tokens, d.tokens);
        assert_eq!(a.positions, d.positions);
        assert_eq!(a.answers, d.answers);
    }
}

#[test]
fn the_paper_example() {
    let tok = bpe();
    let mut cfg = IoiConfig::new(8, 0);
    cfg.templates = IoiTemplates::Custom(vec![
        "When [A] and [B] went to the [PLACE], [B] gave a [OBJECT] to [A]".into(),
    ]);
    cfg.names = Some(vec![" Mary".into(), "John".into()]);
    cfg.places = Some(vec!["store".into()]);
    cfg.objects = Some(vec!["drink".into()]);
    cfg.corruption = IoiCorruption::S2Io;
    let ds = ioi(cfg, &DatasetOptions::default()).unwrap();
    let mut seen = BTreeSet::new();
    for p in ds.iter() {
        let text = p.text.clone().unwrap();
        seen.insert(text.clone());
        if p.fields["IO"] == "Mary" {
            assert_eq!(
                text,
                "When Mary and John went to the store, John gave a drink to"
            );
            assert_eq!(
                p.corrupt_text.as_deref(),
                Some("When Mary and John went to the store, Mary gave a drink to")
            );
            assert_eq!(tok.token_text(p.answer("IO").unwrap()), " Mary");
            assert_eq!(tok.token_text(p.answer("S").unwrap()), " John");
            assert_eq!(p.position("IO"), Some(1), "no BOS: 'When' is token 0");
            assert_eq!(p.fields["order"], "ABBA");
        } else {
            assert_eq!(
                text,
                "When John and Mary went to the store, Mary gave a drink to"
            );
            assert_eq!(tok.token_text(p.answer("IO").unwrap()), " John");
        }
        assert_eq!(p.tokens, tok.encode(&text).unwrap());
    }
    assert_eq!(seen.len(), 2, "both name orders drawn in 8 prompts");
}

#[test]
fn multi_token_names_are_all_listed_in_one_error() {
    let mut cfg = IoiConfig::new(4, 0);
    cfg.names = Some(
        [
            "Mary", "Zyxwvut", "John", "Alice", "Sarah", "Bob", "David", "Kevin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    );
    let err = ioi(cfg.clone(), &bos()).unwrap_err();
    let DataError::NotSingleTokens {
        dataset,
        what,
        items,
        ..
    } = &err
    else {
        panic!("unexpected error {err}");
    };
    assert_eq!(dataset, "ioi");
    assert_eq!(*what, "name");
    assert_eq!(items.len(), 3, "{items:?}");
    for (item, name) in items.iter().zip(["Zyxwvut", "Alice", "Bob"]) {
        assert!(item.starts_with(&format!("\" {name}\"")), "{item}");
    }
    let msg = err.to_string();
    assert!(
        msg.contains("Zyxwvut") && msg.contains("Alice") && msg.contains("Bob"),
        "{msg}"
    );
    assert!(msg.contains("hint:"), "{msg}");

    // dropping them works, and none of the dropped names appears
    cfg.skip_multi_token_names = true;
    let ds = ioi(cfg, &bos()).unwrap();
    for p in ds.iter() {
        for key in ["IO", "S", "corrupt_IO", "corrupt_S1", "corrupt_S2"] {
            assert!(!["Zyxwvut", "Alice", "Bob"].contains(&p.fields[key].as_str()));
        }
    }
}

#[test]
fn too_few_names_and_bad_templates_are_config_errors() {
    let mut cfg = IoiConfig::new(4, 0);
    cfg.names = Some(vec![
        "Mary".into(),
        "John".into(),
        "Sarah".into(),
        "David".into(),
    ]);
    let err = ioi(cfg.clone(), &bos()).unwrap_err();
    assert!(matches!(err, DataError::Config { .. }), "{err}");
    assert!(err.to_string().contains("at least 5"), "{err}");
    cfg.corruption = IoiCorruption::Swap;
    assert!(
        ioi(cfg.clone(), &bos()).is_ok(),
        "two names suffice without abc"
    );

    cfg.templates = IoiTemplates::Custom(vec![
        "Then, [B] and [A] left. [B] gave it to [A]".into(),
        "[B] and [A] left. [B] gave it to [A]".into(),
        "Then, [B] and [C] left. [B] gave it to".into(),
    ]);
    let err = ioi(cfg, &bos()).unwrap_err();
    let DataError::BadTemplates { items, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(items.len(), 2, "{items:?}");
}

#[test]
fn seeded_generation_is_reproducible_and_differs_across_seeds() {
    let a = ioi(IoiConfig::new(16, 7), &bos()).unwrap();
    let b = ioi(IoiConfig::new(16, 7), &bos()).unwrap();
    let c = ioi(IoiConfig::new(16, 8), &bos()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.hash, b.hash);
    assert_ne!(a.hash, c.hash);
    let texts = |d: &Dataset| {
        d.iter()
            .map(|p| p.text.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_ne!(texts(&a), texts(&c));
    // a longer dataset starts with the shorter one
    let long = ioi(IoiConfig::new(20, 7), &bos()).unwrap();
    assert_eq!(a.prompts[..], long.prompts[..16]);
}

#[test]
fn golden_first_prompts() {
    // Pins the generator (PRNG, draw order, default lists); update only on a deliberate change.
    let ds = ioi(IoiConfig::new(3, 0), &DatasetOptions::default()).unwrap();
    let got: Vec<(String, String)> = ds
        .iter()
        .map(|p| (p.text.clone().unwrap(), p.corrupt_text.clone().unwrap()))
        .collect();
    let expected: Vec<(String, String)> = GOLDEN
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, expected);
}

const GOLDEN: [(&str, &str); 3] = [
    (
        "Then, Katherine and James were thinking about going to the school. James wanted to give a necklace to",
        "Then, Laura and Kristen were thinking about going to the school. Sean wanted to give a necklace to",
    ),
    (
        "Friends Lauren and Benjamin found a snack at the house. Benjamin gave it to",
        "Friends Cody and Rachel found a snack at the house. Lindsey gave it to",
    ),
    (
        "Then, Robert and Joshua were thinking about going to the office. Robert wanted to give a basketball to",
        "Then, Travis and Matthew were thinking about going to the office. Jamie wanted to give a basketball to",
    ),
];

#[test]
fn too_long_prompts_are_all_listed() {
    let options = DatasetOptions {
        prepend_bos: true,
        n_ctx: Some(16),
        repeats: None,
    };
    let all = ioi(IoiConfig::new(20, 3), &bos()).unwrap();
    let long: Vec<(u32, usize)> = all
        .iter()
        .filter(|p| p.len() > 16)
        .map(|p| (p.id, p.len()))
        .collect();
    assert!(long.len() >= 2 && long.len() < 20, "{long:?}");
    let err = ioi(IoiConfig::new(20, 3), &options).unwrap_err();
    let DataError::TooLong { n_ctx, rows, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*n_ctx, 16);
    let got: Vec<(u32, String)> = rows.iter().map(|r| (r.id, r.detail.clone())).collect();
    let expected: Vec<(u32, String)> = long
        .iter()
        .map(|&(id, len)| (id, format!("length {len}")))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn default_word_lists_fit_the_bpe_fixture() {
    let tok = bpe();
    for name in circuitry_data::ioi::NAMES {
        assert_eq!(tok.encode(&format!(" {name}")).unwrap().len(), 1, "{name}");
    }
    assert_eq!(circuitry_data::ioi::NAMES.len(), 99);
    assert_eq!("s2_io".parse::<IoiCorruption>(), Ok(IoiCorruption::S2Io));
    assert_eq!("ABBA".parse::<IoiTemplates>(), Ok(IoiTemplates::Abba));
    assert!("abca".parse::<IoiCorruption>().is_err());
}
