//! The `ioi` generator: Indirect Object Identification sentences (Wang et al. 2022,
//! "Interpretability in the Wild", arXiv:2211.00593) with counterfactual pairs.
//!
//! A template holds two name placeholders: `[A]`, the indirect object (IO), once, and `[B]`,
//! the subject (S), twice: `"When [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]"`.
//! The final `[A]` is the answer and is dropped, so the prompt ends at "to" and the model should
//! predict " IO" over " S". BABA templates name S first, ABBA templates IO first. The default
//! templates, names, places and objects are those of the paper's public code (`ioi_dataset.py`):
//! fifteen BABA templates, the ABBA versions obtained by swapping the first `[B]` and `[A]`, 99
//! first names, 8 places and 8 objects.
//!
//! Each prompt gets named positions `IO`, `S1`, `S2` (the three name tokens) and `END` (the last
//! token, "to"), answers `IO` and `S` (the name tokens with their leading space, e.g. " Mary"),
//! and, unless disabled, a corrupt counterfactual of the same length (see [`IoiCorruption`]).
//!
//! Sampling (reproducible from the seed): for each prompt in order, a template, then two
//! distinct names (IO, S), a place and an object from `Rng::new(seed)`; the corruption's names
//! come from a second stream `Rng::new(derive_seed(seed, "ioi/corrupt"))`, so the clean prompts
//! are the same whatever the corruption kind.

use std::str::FromStr;

use circuitry_models::Tokenizer;
use circuitry_vocab::limits::MAX_PROMPTS;

use crate::dataset::Prompt;
use crate::error::{DataError, RowCheck, RowIssue};
use crate::record::{encode, encode_checked, pieces, unknown_pieces};
use crate::rng::{Rng, derive_seed};

/// Position of the indirect object's name in the first clause.
pub const POS_IO: &str = "IO";
/// Position of the subject's first mention.
pub const POS_S1: &str = "S1";
/// Position of the subject's second mention (the one that gives).
pub const POS_S2: &str = "S2";
/// Position of the last token ("to"), where the answer is predicted.
pub const POS_END: &str = "END";
/// Answer: the indirect object's name token (the correct completion).
pub const ANSWER_IO: &str = "IO";
/// Answer: the subject's name token (the wrong completion).
pub const ANSWER_S: &str = "S";

/// The paper's fifteen BABA templates (`[B]` = subject, `[A]` = indirect object).
pub const BABA_TEMPLATES: [&str; 15] = [
    "Then, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a lot of fun at the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] were working at the [PLACE]. [B] decided to give a [OBJECT] to [A]",
    "Then, [B] and [A] were thinking about going to the [PLACE]. [B] wanted to give a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument, and afterwards [B] said to [A]",
    "After [B] and [A] went to the [PLACE], [B] gave a [OBJECT] to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give it to [A]",
    "When [B] and [A] got a [OBJECT] at the [PLACE], [B] decided to give the [OBJECT] to [A]",
    "While [B] and [A] were working at the [PLACE], [B] gave a [OBJECT] to [A]",
    "While [B] and [A] were commuting to the [PLACE], [B] gave a [OBJECT] to [A]",
    "After the lunch, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Afterwards, [B] and [A] went to the [PLACE]. [B] gave a [OBJECT] to [A]",
    "Then, [B] and [A] had a long argument. Afterwards [B] said to [A]",
    "The [PLACE] [B] and [A] went to had a [OBJECT]. [B] gave it to [A]",
    "Friends [B] and [A] found a [OBJECT] at the [PLACE]. [B] gave it to [A]",
];

/// The paper's 99 names (all single tokens, with a leading space, under GPT-2's tokenizer).
pub const NAMES: [&str; 99] = [
    "Michael",
    "Christopher",
    "Jessica",
    "Matthew",
    "Ashley",
    "Jennifer",
    "Joshua",
    "Amanda",
    "Daniel",
    "David",
    "James",
    "Robert",
    "John",
    "Joseph",
    "Andrew",
    "Ryan",
    "Brandon",
    "Jason",
    "Justin",
    "Sarah",
    "William",
    "Jonathan",
    "Stephanie",
    "Brian",
    "Nicole",
    "Nicholas",
    "Anthony",
    "Heather",
    "Eric",
    "Elizabeth",
    "Adam",
    "Megan",
    "Melissa",
    "Kevin",
    "Steven",
    "Thomas",
    "Timothy",
    "Christina",
    "Kyle",
    "Rachel",
    "Laura",
    "Lauren",
    "Amber",
    "Brittany",
    "Danielle",
    "Richard",
    "Kimberly",
    "Jeffrey",
    "Amy",
    "Crystal",
    "Michelle",
    "Tiffany",
    "Jeremy",
    "Benjamin",
    "Mark",
    "Emily",
    "Aaron",
    "Charles",
    "Rebecca",
    "Jacob",
    "Stephen",
    "Patrick",
    "Sean",
    "Erin",
    "Jamie",
    "Kelly",
    "Samantha",
    "Nathan",
    "Sara",
    "Dustin",
    "Paul",
    "Angela",
    "Tyler",
    "Scott",
    "Katherine",
    "Andrea",
    "Gregory",
    "Erica",
    "Mary",
    "Travis",
    "Lisa",
    "Kenneth",
    "Bryan",
    "Lindsey",
    "Kristen",
    "Jose",
    "Alexander",
    "Jesse",
    "Katie",
    "Lindsay",
    "Shannon",
    "Vanessa",
    "Courtney",
    "Christine",
    "Alicia",
    "Cody",
    "Allison",
    "Bradley",
    "Samuel",
];

/// The paper's places.
pub const PLACES: [&str; 8] = [
    "store",
    "garden",
    "restaurant",
    "school",
    "hospital",
    "office",
    "house",
    "station",
];

/// The paper's objects.
pub const OBJECTS: [&str; 8] = [
    "ring",
    "kiss",
    "bone",
    "basketball",
    "computer",
    "necklace",
    "drink",
    "snack",
];

/// The ABBA version of a BABA template: its first `[B]` and first `[A]` swapped.
pub fn abba_from_baba(template: &str) -> String {
    match (template.find("[A]"), template.find("[B]")) {
        (Some(a), Some(b)) => {
            let mut s = template.to_string();
            s.replace_range(a..a + 3, "[B]");
            s.replace_range(b..b + 3, "[A]");
            s
        }
        _ => template.to_string(),
    }
}

/// Which templates to draw from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IoiTemplates {
    /// The BABA and ABBA templates together (30), as the paper's "mixed" dataset.
    #[default]
    Mixed,
    /// The 15 ABBA templates ("When Mary and John ..., John gave ... to").
    Abba,
    /// The 15 BABA templates ("When John and Mary ..., John gave ... to").
    Baba,
    /// Your own templates, in the same placeholder syntax.
    Custom(Vec<String>),
}

impl IoiTemplates {
    /// The template strings.
    pub fn list(&self) -> Vec<String> {
        let baba = || BABA_TEMPLATES.iter().map(|t| t.to_string());
        let abba = || BABA_TEMPLATES.iter().map(|t| abba_from_baba(t));
        match self {
            IoiTemplates::Mixed => baba().chain(abba()).collect(),
            IoiTemplates::Abba => abba().collect(),
            IoiTemplates::Baba => baba().collect(),
            IoiTemplates::Custom(list) => list.clone(),
        }
    }
}

impl FromStr for IoiTemplates {
    type Err = String;

    /// `mixed`, `abba` or `baba` (custom templates are a list, not a string).
    fn from_str(s: &str) -> Result<IoiTemplates, String> {
        match s.to_ascii_lowercase().as_str() {
            "mixed" => Ok(IoiTemplates::Mixed),
            "abba" => Ok(IoiTemplates::Abba),
            "baba" => Ok(IoiTemplates::Baba),
            _ => Err(format!(
                "unknown IOI template set `{s}`; expected mixed, abba or baba"
            )),
        }
    }
}

pub use circuitry_vocab::IoiCorruption;

/// Configuration of the `ioi` generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoiConfig {
    pub n: usize,
    /// The stream's seed; the runner passes `derive_seed(experiment_seed, dataset_name)` unless
    /// the dataset sets its own.
    pub seed: u64,
    pub templates: IoiTemplates,
    /// Names, with or without their leading space (`"Mary"` and `" Mary"` are the same);
    /// `None`: [`NAMES`]. Each must be one token with a leading space.
    pub names: Option<Vec<String>>,
    /// `None`: [`PLACES`]. Places and objects may span several tokens.
    pub places: Option<Vec<String>>,
    /// `None`: [`OBJECTS`].
    pub objects: Option<Vec<String>>,
    /// How the corrupt prompts are made (`NoCorruption`: none). Only the three name tokens
    /// change, so clean and corrupt prompts have equal length and the same positions; the answers
    /// stay those of the clean prompt.
    pub corruption: IoiCorruption,
    /// Drop names that are not single tokens instead of failing (useful with the default names
    /// on a tokenizer other than GPT-2's).
    pub skip_multi_token_names: bool,
}

impl IoiConfig {
    /// `n` prompts from the mixed default templates, names, places and objects, with the ABC
    /// corruption.
    pub fn new(n: usize, seed: u64) -> IoiConfig {
        IoiConfig {
            n,
            seed,
            templates: IoiTemplates::Mixed,
            names: None,
            places: None,
            objects: None,
            corruption: IoiCorruption::Abc,
            skip_multi_token_names: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    A,
    B,
    Place,
    Object,
}

/// A parsed template.
#[derive(Clone, Debug)]
struct Template {
    source: String,
    pieces: Vec<Piece>,
    /// "ABBA" when IO is named first, else "BABA".
    order: &'static str,
}

fn parse_template(source: &str) -> Result<Template, String> {
    let mut body = source.trim_end();
    if let Some(stripped) = body.strip_suffix(" [A]") {
        body = stripped;
    }
    let mut pieces = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let Some(open) = rest.find('[') else {
            pieces.push(Piece::Lit(rest.to_string()));
            break;
        };
        if open > 0 {
            pieces.push(Piece::Lit(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find(']') else {
            return Err(format!("{source:?}: unclosed `[`"));
        };
        let piece = match &rest[open..open + close + 1] {
            "[A]" => Piece::A,
            "[B]" => Piece::B,
            "[PLACE]" => Piece::Place,
            "[OBJECT]" => Piece::Object,
            other => return Err(format!("{source:?}: unknown placeholder `{other}`")),
        };
        pieces.push(piece);
        rest = &rest[open + close + 1..];
    }
    let count = |p: Piece| pieces.iter().filter(|q| **q == p).count();
    let (a, b) = (count(Piece::A), count(Piece::B));
    if a != 1 || b != 2 {
        return Err(format!(
            "{source:?}: has {a} [A] and {b} [B] before the final answer; needs exactly 1 and 2"
        ));
    }
    for (i, p) in pieces.iter().enumerate() {
        if matches!(p, Piece::A | Piece::B) {
            let spaced = i > 0 && matches!(&pieces[i - 1], Piece::Lit(l) if l.ends_with(' '));
            if !spaced {
                return Err(format!(
                    "{source:?}: every [A] and [B] must follow a space (names are tokens with a leading space)"
                ));
            }
        }
    }
    let first_a = pieces.iter().position(|p| *p == Piece::A);
    let first_b = pieces.iter().position(|p| *p == Piece::B);
    let order = if first_a < first_b { "ABBA" } else { "BABA" };
    Ok(Template {
        source: source.to_string(),
        pieces,
        order,
    })
}

/// The three name slots of a template, in text order of [A] / first [B] / second [B].
#[derive(Clone, Copy)]
struct SlotNames<'a> {
    io: &'a str,
    s1: &'a str,
    s2: &'a str,
}

/// Renders a template; returns the text and, for IO, S1, S2, the byte offset where the name's
/// leading space starts (the text before it is the name's prefix).
fn render(t: &Template, names: SlotNames, place: &str, object: &str) -> (String, [usize; 3]) {
    let mut text = String::new();
    let mut starts = [0usize; 3];
    let mut b_seen = 0;
    for p in &t.pieces {
        match p {
            Piece::Lit(l) => text.push_str(l),
            Piece::Place => text.push_str(place),
            Piece::Object => text.push_str(object),
            Piece::A => {
                starts[0] = text.len() - 1;
                text.push_str(names.io);
            }
            Piece::B => {
                starts[1 + b_seen] = text.len() - 1;
                b_seen += 1;
                text.push_str(if b_seen == 1 { names.s1 } else { names.s2 });
            }
        }
    }
    (text, starts)
}

/// A sentence's tokens and the indices of its IO, S1 and S2 name tokens, or why the names could
/// not be found.
type Located = Result<(Vec<u32>, [usize; 3]), String>;

/// Tokenizes a rendered sentence and finds the name tokens. `Err` holds a description of the
/// first name that is not its expected single token in context.
fn locate(
    dataset: &str,
    tokenizer: &Tokenizer,
    text: &str,
    starts: [usize; 3],
    expected: [(&str, u32); 3],
) -> Result<Located, DataError> {
    let full = encode(dataset, tokenizer, text, "generated")?;
    let mut pos = [0usize; 3];
    for (k, ((slot, (name, id)), start)) in ["IO", "S1", "S2"]
        .iter()
        .zip(expected)
        .zip(starts)
        .enumerate()
    {
        let prefix = encode(dataset, tokenizer, &text[..start], "generated")?;
        let p = prefix.len();
        if !full.starts_with(&prefix) || full.get(p) != Some(&id) {
            return Ok(Err(format!(
                "in {text:?}, the name {name:?} at {slot} is not the single token {:?} in context",
                tokenizer.token_text(id)
            )));
        }
        pos[k] = p;
    }
    Ok(Ok((full, pos)))
}

fn normalize(list: &[String]) -> Vec<String> {
    list.iter().map(|s| s.trim().to_string()).collect()
}

pub(crate) fn generate_ioi(
    dataset: &str,
    cfg: &IoiConfig,
    tokenizer: &Tokenizer,
    bos: &[u32],
) -> Result<Vec<Prompt>, DataError> {
    if cfg.n as u64 > MAX_PROMPTS {
        return Err(DataError::too_many_prompts(dataset, cfg.n));
    }
    // templates
    let mut bad = Vec::new();
    let mut templates = Vec::new();
    for t in cfg.templates.list() {
        match parse_template(&t) {
            Ok(t) => templates.push(t),
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        return Err(DataError::BadTemplates {
            dataset: dataset.to_string(),
            items: bad,
        });
    }
    if templates.is_empty() {
        return Err(DataError::config_at(
            dataset,
            "templates",
            "no IOI templates",
            "give at least one template",
        ));
    }

    // word lists
    let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let names = normalize(cfg.names.as_deref().unwrap_or(&owned(&NAMES)));
    let places = normalize(cfg.places.as_deref().unwrap_or(&owned(&PLACES)));
    let objects = normalize(cfg.objects.as_deref().unwrap_or(&owned(&OBJECTS)));
    for (what, list) in [
        ("names", &names),
        ("places", &places),
        ("objects", &objects),
    ] {
        if list.is_empty() || list.iter().any(String::is_empty) {
            return Err(DataError::config_at(
                dataset,
                what,
                format!("the IOI {what} list is empty or has an empty entry"),
                format!(
                    "give a non-empty list of non-empty {what}, or leave it out for the paper's defaults"
                ),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let dups: Vec<&String> = names.iter().filter(|n| !seen.insert(n.as_str())).collect();
    if !dups.is_empty() {
        return Err(DataError::config_at(
            dataset,
            "names",
            format!("the IOI names list repeats {dups:?}"),
            "list each name once",
        ));
    }

    // names must be single tokens (with their leading space)
    let mut kept: Vec<(String, u32)> = Vec::new();
    let mut offenders = Vec::new();
    for name in &names {
        let spaced = format!(" {name}");
        let encoded = encode_checked(dataset, tokenizer, &spaced, "the names list")?;
        let ids = encoded.ids;
        if !encoded.unknown.is_empty() {
            offenders.push(format!(
                "{spaced:?} is not in the vocabulary ({})",
                unknown_pieces(tokenizer, &encoded.unknown)
            ));
        } else if ids.len() == 1 {
            kept.push((name.clone(), ids[0]));
        } else {
            offenders.push(format!(
                "{spaced:?} -> {} tokens [{}]",
                ids.len(),
                pieces(tokenizer, &ids)
            ));
        }
    }
    if !offenders.is_empty() && !cfg.skip_multi_token_names {
        return Err(DataError::NotSingleTokens {
            dataset: dataset.to_string(),
            what: "name",
            key: "names",
            tokenizer: tokenizer.source.clone(),
            items: offenders,
            hint: "IOI names must be one token with their leading space; give other names, or set skip_multi_token_names = true to drop these",
        });
    }
    let needed = if cfg.corruption == IoiCorruption::Abc {
        5
    } else {
        2
    };
    if kept.len() < needed {
        return Err(DataError::config_at(
            dataset,
            "names",
            format!(
                "the IOI generator needs at least {needed} single-token names{}, has {}",
                if needed == 5 {
                    " for the abc corruption"
                } else {
                    ""
                },
                kept.len()
            ),
            "give more names",
        ));
    }

    // Words the vocabulary does not know would silently become its unknown token in every
    // sentence: each is an error at the list item that holds it.
    let custom = matches!(cfg.templates, IoiTemplates::Custom(_));
    let template_words: Vec<String> = templates
        .iter()
        .map(|t| {
            t.pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Lit(text) => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let uses = |piece: Piece| templates.iter().any(|t| t.pieces.contains(&piece));
    let unused = Vec::new();
    for (key, list, spaced) in [
        (
            "places",
            if uses(Piece::Place) { &places } else { &unused },
            true,
        ),
        (
            "objects",
            if uses(Piece::Object) {
                &objects
            } else {
                &unused
            },
            true,
        ),
        ("templates", &template_words, false),
    ] {
        for (k, item) in list.iter().enumerate() {
            let text = if spaced {
                format!(" {item}")
            } else {
                item.clone()
            };
            let encoded = encode_checked(dataset, tokenizer, &text, key)?;
            if encoded.unknown.is_empty() {
                continue;
            }
            let listed = match key {
                "places" => cfg.places.is_some(),
                "objects" => cfg.objects.is_some(),
                _ => custom,
            };
            let shown = if key == "templates" {
                format!("{k}")
            } else {
                format!("{item:?}")
            };
            return Err(DataError::config_at(
                dataset,
                if listed {
                    format!("{key}.{k}")
                } else {
                    key.to_string()
                },
                format!(
                    "{key} entry {shown} has words that are not in the vocabulary of `{}`: {}",
                    tokenizer.source.display(),
                    unknown_pieces(tokenizer, &encoded.unknown)
                ),
                format!("use {key} whose words the model's tokenizer knows"),
            ));
        }
    }

    let mut rng = Rng::new(cfg.seed);
    let mut crng = Rng::new(derive_seed(cfg.seed, "ioi/corrupt"));
    let mut prompts = Vec::with_capacity(cfg.n);
    let mut invalid = Vec::new();
    let mut bad_lengths = Vec::new();
    for i in 0..cfg.n {
        let id = i as u32;
        let generated = |detail: String| RowIssue {
            id,
            origin: "generated".to_string(),
            detail,
        };
        let t = &templates[rng.index(templates.len())];
        let pair = rng.distinct(kept.len(), 2);
        let (io, s) = (&kept[pair[0]], &kept[pair[1]]);
        let place = &places[rng.index(places.len())];
        let object = &objects[rng.index(objects.len())];

        let clean_names = SlotNames {
            io: &io.0,
            s1: &s.0,
            s2: &s.0,
        };
        let (text, starts) = render(t, clean_names, place, object);
        let (full, pos) = match locate(
            dataset,
            tokenizer,
            &text,
            starts,
            [
                (io.0.as_str(), io.1),
                (s.0.as_str(), s.1),
                (s.0.as_str(), s.1),
            ],
        )? {
            Ok(found) => found,
            Err(detail) => {
                invalid.push(generated(detail));
                continue;
            }
        };
        let tokens: Vec<u32> = bos.iter().copied().chain(full).collect();
        let mut p = Prompt::from_tokens(id, tokens);
        let last = p.len() - 1;
        for (name, k) in [(POS_IO, 0), (POS_S1, 1), (POS_S2, 2)] {
            p.positions.insert(name.to_string(), bos.len() + pos[k]);
        }
        p.positions.insert(POS_END.to_string(), last);
        p.answers.insert(ANSWER_IO.to_string(), io.1);
        p.answers.insert(ANSWER_S.to_string(), s.1);
        let f = &mut p.fields;
        f.insert("template".to_string(), t.source.clone());
        f.insert("order".to_string(), t.order.to_string());
        f.insert("IO".to_string(), io.0.clone());
        f.insert("S".to_string(), s.0.clone());
        f.insert("place".to_string(), place.clone());
        f.insert("object".to_string(), object.clone());
        p.text = Some(text);

        let kind = cfg.corruption;
        let slots: Option<[&(String, u32); 3]> = match kind {
            IoiCorruption::NoCorruption => None,
            IoiCorruption::Abc => {
                let others: Vec<usize> = (0..kept.len())
                    .filter(|&k| k != pair[0] && k != pair[1])
                    .collect();
                let d = crng.distinct(others.len(), 3);
                Some([
                    &kept[others[d[0]]],
                    &kept[others[d[1]]],
                    &kept[others[d[2]]],
                ])
            }
            IoiCorruption::S2Io => Some([io, s, io]),
            IoiCorruption::Swap => Some([s, io, io]),
        };
        if let Some(slots) = slots {
            let names = SlotNames {
                io: &slots[0].0,
                s1: &slots[1].0,
                s2: &slots[2].0,
            };
            let (ctext, cstarts) = render(t, names, place, object);
            let expected = [
                (slots[0].0.as_str(), slots[0].1),
                (slots[1].0.as_str(), slots[1].1),
                (slots[2].0.as_str(), slots[2].1),
            ];
            match locate(dataset, tokenizer, &ctext, cstarts, expected)? {
                Err(detail) => {
                    invalid.push(generated(detail));
                    continue;
                }
                Ok((cfull, cpos)) => {
                    if cfull.len() + bos.len() != p.len() || cpos != pos {
                        bad_lengths.push(generated(format!(
                                "clean {:?} has {} tokens (names at {pos:?}), corrupt {ctext:?} has {} (names at {cpos:?})",
                                p.text.as_deref().unwrap_or_default(),
                                p.len() - bos.len(),
                                cfull.len()
                            )));
                        continue;
                    }
                    p.corrupt_tokens = Some(bos.iter().copied().chain(cfull).collect());
                    p.corrupt_text = Some(ctext);
                    let f = &mut p.fields;
                    f.insert("corruption".to_string(), kind.as_str().to_string());
                    f.insert("corrupt_IO".to_string(), slots[0].0.clone());
                    f.insert("corrupt_S1".to_string(), slots[1].0.clone());
                    f.insert("corrupt_S2".to_string(), slots[2].0.clone());
                }
            }
        }
        prompts.push(p);
    }
    RowCheck::Invalid.result(dataset, invalid)?;
    RowCheck::CorruptLength.result(dataset, bad_lengths)?;
    Ok(prompts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_templates_parse_with_the_right_order() {
        for t in BABA_TEMPLATES {
            assert_eq!(parse_template(t).unwrap().order, "BABA", "{t}");
            let abba = abba_from_baba(t);
            assert_eq!(parse_template(&abba).unwrap().order, "ABBA", "{abba}");
        }
        assert_eq!(
            abba_from_baba(BABA_TEMPLATES[5]),
            "After [A] and [B] went to the [PLACE], [B] gave a [OBJECT] to [A]"
        );
        assert_eq!(IoiTemplates::Mixed.list().len(), 30);
    }

    #[test]
    fn render_marks_the_name_slots() {
        let t = parse_template("When [A] and [B] went to the [PLACE], [B] gave a [OBJECT] to [A]")
            .unwrap();
        let (text, starts) = render(
            &t,
            SlotNames {
                io: "Mary",
                s1: "John",
                s2: "John",
            },
            "store",
            "drink",
        );
        assert_eq!(
            text,
            "When Mary and John went to the store, John gave a drink to"
        );
        assert_eq!(&text[starts[0]..starts[0] + 5], " Mary");
        assert_eq!(&text[starts[1]..starts[1] + 5], " John");
        assert_eq!(&text[starts[2]..starts[2] + 5], " John");
        assert!(starts[1] < starts[2]);
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert!(parse_template("[B] and [A] went. [B] gave it to [A]").is_err()); // no space before first name
        assert!(parse_template("Then, [B] and [A] left. [A] gave it to").is_err()); // two [A]
        assert!(parse_template("Then, [B] and [C] left. [B] gave it to").is_err()); // unknown
        assert!(parse_template("Then, [B] and [A went").is_err());
    }
}
