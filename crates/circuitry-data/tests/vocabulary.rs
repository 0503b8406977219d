//! Text the vocabulary does not know is an error naming the text, never silently the unknown
//! token: prompts, counterfactuals and answers, and the IOI generator's names, places, objects and
//! templates (a word-level vocabulary, as toy models ship, reads every unknown word as `t0`).

use crate::common;

use circuitry_data::{
    DataError, DatasetOptions, IoiConfig, IoiTemplates, Record, Source, build_dataset,
};
use common::word_level;

fn opts() -> DatasetOptions {
    DatasetOptions {
        prepend_bos: false,
        n_ctx: None,
        repeats: None,
    }
}

#[test]
fn prompts_with_unknown_words_are_errors_naming_the_words() {
    let tok = word_level(10);
    let ok = build_dataset("d", &Source::Texts(vec!["t1 t2 t0".into()]), &tok, &opts()).unwrap();
    assert_eq!(ok.prompts[0].tokens, [1, 2, 0]);

    let texts = vec!["t1 t2".into(), "t1 Mary went".into(), "t3".into()];
    let err = build_dataset("d", &Source::Texts(texts), &tok, &opts()).unwrap_err();
    let DataError::InvalidPrompts { rows, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(rows.len(), 1, "{err}");
    assert_eq!(rows[0].id, 1);
    assert!(
        rows[0]
            .detail
            .contains("\"Mary\" \"went\" would silently become the unknown token \"t0\""),
        "{}",
        rows[0].detail
    );

    let records = vec![Record::new("t1 t2").with_corrupt("t1 Bob")];
    let err = build_dataset("d", &Source::Records(records), &tok, &opts()).unwrap_err();
    assert!(err.to_string().contains("corrupt text \"t1 Bob\""), "{err}");
}

#[test]
fn answers_outside_the_vocabulary_are_errors_not_the_unknown_token() {
    let tok = word_level(10);
    let records = vec![
        Record::new("t1 t2").with_answer("IO", " t3"),
        Record::new("t1 t2").with_answer("IO", " Mary"),
    ];
    let err = build_dataset("d", &Source::Records(records), &tok, &opts()).unwrap_err();
    let DataError::AnswerTokens { rows, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(rows.len(), 1, "{err}");
    assert_eq!(rows[0].id, 1);
    assert!(
        rows[0]
            .detail
            .contains("answer `IO` = \" Mary\" is not in the vocabulary"),
        "{}",
        rows[0].detail
    );
}

fn ioi(cfg: IoiConfig) -> Result<circuitry_data::Dataset, DataError> {
    build_dataset("ioi", &Source::Ioi(cfg), &word_level(20), &opts())
}

/// IOI settings in words of the word-level vocabulary.
fn known_ioi() -> IoiConfig {
    let mut cfg = IoiConfig::new(4, 0);
    cfg.templates =
        IoiTemplates::Custom(vec!["t10 [B] t11 [A] t12 [PLACE] [B] t13 [OBJECT]".into()]);
    cfg.names = Some((1..7).map(|i| format!("t{i}")).collect());
    cfg.places = Some(vec!["t14".into()]);
    cfg.objects = Some(vec!["t15".into()]);
    cfg
}

#[test]
fn ioi_words_outside_the_vocabulary_are_errors_at_their_setting() {
    let ds = ioi(known_ioi()).unwrap();
    assert_eq!(ds.len(), 4);

    // A name the vocabulary lacks is not a single token, whatever its encoding's length.
    let mut cfg = known_ioi();
    cfg.names.as_mut().unwrap().push("Mary".into());
    let err = ioi(cfg).unwrap_err();
    assert!(matches!(err, DataError::NotSingleTokens { .. }), "{err}");
    assert_eq!(err.key(), Some("names"));
    assert!(
        err.to_string()
            .contains("\" Mary\" is not in the vocabulary"),
        "{err}"
    );

    // Places, objects and template words: at the list item.
    let mut cfg = known_ioi();
    cfg.places = Some(vec!["t14".into(), "store".into()]);
    let err = ioi(cfg).unwrap_err();
    assert_eq!(err.key(), Some("places.1"), "{err}");
    assert!(err.to_string().contains("\"store\""), "{err}");

    let mut cfg = known_ioi();
    cfg.templates = IoiTemplates::Custom(vec![
        "t10 [B] t11 [A] t12 [PLACE] [B] t13 [OBJECT]".into(),
        "When [B] t11 [A] t12 [B] t13".into(),
    ]);
    let err = ioi(cfg).unwrap_err();
    assert_eq!(err.key(), Some("templates.1"), "{err}");
    assert!(err.to_string().contains("\"When\""), "{err}");

    // The default places are English words: the setting at fault is the (absent) list.
    let mut cfg = known_ioi();
    cfg.places = None;
    let err = ioi(cfg).unwrap_err();
    assert_eq!(err.key(), Some("places"), "{err}");
}
