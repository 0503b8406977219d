//! A quick property test: mutated experiment files and overrides never make the crate panic, and
//! every error it returns has a sensible location and renders.

use std::path::Path;

use circuitry_spec::{Experiment, ExperimentFile};

/// xorshift64*: a tiny deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "=",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    ",",
    ".",
    "\n",
    "\t",
    " ",
    "#",
    "-1",
    "0",
    "1e400",
    "nan",
    "inf",
    "true",
    "é",
    "☃",
    "[[",
    "]]",
    "kind",
    "model",
    "dataset",
    "\"tyo\"",
    "1979-05-27",
    "9999999999999999999999",
    "\"all\"",
    "\"last\"",
    "\"END\"",
    "{ id = 5 }",
    "{ text = \"\" }",
    "[sweep]\n\"datasets.rep.length\" = [1, 2]\n",
    "[analyses.x]\nkind = \"logit_lens\"\n",
    "generator = \"ioi\"\n",
    "prompts = []\n",
    "\"a.b\" = [1]",
    "..",
    "~",
    "\\",
    "\"\"\"",
];

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(2) {
        let at = rng.below(chars.len() + 1);
        match rng.below(6) {
            0 => {
                let end = (at + rng.below(12)).min(chars.len());
                chars.drain(at..end);
            }
            1 | 2 => {
                let f = FRAGMENTS[rng.below(FRAGMENTS.len())];
                chars.splice(at..at, f.chars());
            }
            3 => {
                // Duplicate a line.
                let s: String = chars.iter().collect();
                let lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let l = lines[rng.below(lines.len())].to_string() + "\n";
                    chars.splice(at..at, l.chars());
                }
            }
            4 => {
                // Swap two lines.
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                    chars = lines.join("\n").chars().collect();
                }
            }
            _ => chars.truncate(at),
        }
    }
    chars.into_iter().collect()
}

/// Checks one outcome; returns whether it loaded.
fn check(result: Result<Experiment, circuitry_spec::SpecError>) -> bool {
    match result {
        Ok(e) => {
            let _ = e.hashes();
            for v in e.expand() {
                let _ = v.experiment.resolved_toml();
            }
            true
        }
        Err(err) => {
            let rendered = err.to_string();
            assert!(rendered.starts_with("error: "), "{rendered}");
            for d in err.diagnostics() {
                if let Some(loc) = &d.location {
                    assert!(
                        loc.line >= 1 && loc.column >= 1 && loc.underline >= 1,
                        "{d}"
                    );
                }
            }
            false
        }
    }
}

fn files(sub: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(sub);
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn mutated_files_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let good = files("good");
    let mut loaded = 0;
    for round in 0..3000 {
        let text = mutate(&good[round % good.len()], &mut rng);
        loaded += usize::from(check(Experiment::from_str(&text, "fuzz/case.toml")));
    }
    // Both outcomes must be common, or the mutations exercise too little.
    assert!(
        (150..2850).contains(&loaded),
        "{loaded} of 3000 mutated files loaded"
    );
    let bad = files("bad");
    for round in 0..2000 {
        let text = mutate(&bad[round % bad.len()], &mut rng);
        check(Experiment::from_str(&text, "fuzz/case.toml"));
    }
}

#[test]
fn mutated_overrides_never_panic() {
    let mut rng = Rng(42);
    let base = files("good").remove(0);
    let keys = [
        "seed",
        "name",
        "device",
        "models.toy.path",
        "models.toy.processing",
        "datasets.rep.n",
        "datasets.rep.token_range",
        "analyses.heads.layers",
        "analyses.heads.kind",
        "sweep",
        "sweep.\"datasets.rep.n\"",
        "analyses",
        "models.toy.processing.fold_ln",
        "a.b.c",
        "\"q.x\"",
    ];
    let values = [
        "1",
        "-1",
        "[0, 1]",
        "[",
        "true",
        "x/y",
        "{ a = 1 }",
        "\"s\"",
        "[]",
        "{}",
        "1.5",
        "'x'",
        "nan",
    ];
    let mut loaded = 0;
    for _ in 0..1500 {
        let mut file = match ExperimentFile::parse(&base, "fuzz.toml") {
            Ok(f) => f,
            Err(_) => continue,
        };
        for _ in 0..=rng.below(3) {
            let raw = format!(
                "{}={}",
                keys[rng.below(keys.len())],
                values[rng.below(values.len())]
            );
            let assignment = if rng.below(3) == 0 {
                mutate(&raw, &mut rng)
            } else {
                raw
            };
            let _ = file.apply_override(&assignment).map_err(|e| e.to_string());
        }
        loaded += usize::from(check(file.resolve()));
    }
    assert!((100..1400).contains(&loaded), "{loaded} of 1500 loaded");
}
