//! Errors with a location: [`Diagnostic`] (one problem) and [`SpecError`] (everything that went
//! wrong while loading an experiment), rendered in a rustc-like style by `Display`.
//!
//! ```text
//! error: no model `tyo`
//!   --> experiments/demo.toml:14:9
//!    |
//! 14 | model = "tyo"
//!    |         ^^^^^
//!    |
//!    = help: did you mean `toy`? defined models: toy
//! ```

use std::fmt;
use std::path::PathBuf;

use crate::span::{Origin, Span};

/// Where a diagnostic points: a file position (1-based line and column) and the text of that line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The experiment file, or the `--set` override the problem comes from.
    pub source: SourceName,
    /// 1-based line number within the source.
    pub line: usize,
    /// 1-based column (in characters) within the line.
    pub column: usize,
    /// The full text of the offending line (tabs shown as single spaces).
    pub source_line: String,
    /// How many characters to underline, starting at `column` (at least 1).
    pub underline: usize,
}

/// The text a [`Location`] refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceName {
    /// The experiment file (as given by the caller, not canonicalized).
    File(PathBuf),
    /// A `--set KEY=VALUE` override; the string is the assignment as given.
    Override(String),
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceName::File(path) => write!(f, "{}", path.display()),
            SourceName::Override(text) => write!(f, "--set {text}"),
        }
    }
}

/// One problem found in an experiment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, in one line (e.g. "no model `tyo`").
    pub message: String,
    /// Where; `None` for problems without a place in the text (e.g. an unreadable file).
    pub location: Option<Location>,
    /// How to fix it (e.g. "did you mean `toy`? defined models: toy").
    pub hint: Option<String>,
    /// Extra context (e.g. which sweep combination failed).
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic without a location.
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            location: None,
            hint: None,
            notes: Vec::new(),
        }
    }

    /// Adds (or replaces) the hint.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// `(line, column)` of the location, if any: handy in tests.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        self.location.as_ref().map(|l| (l.line, l.column))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let gutter = self
            .location
            .as_ref()
            .map_or(1, |l| l.line.to_string().len());
        let pad = " ".repeat(gutter);
        if let Some(loc) = &self.location {
            writeln!(f, "{pad}--> {}:{}:{}", loc.source, loc.line, loc.column)?;
            writeln!(f, "{pad} |")?;
            let (shown, caret_at, underline) = excerpt(loc);
            writeln!(f, "{} | {shown}", loc.line)?;
            writeln!(
                f,
                "{pad} | {}{}",
                " ".repeat(caret_at),
                "^".repeat(underline)
            )?;
        }
        if self.hint.is_some() || !self.notes.is_empty() {
            writeln!(f, "{pad} |")?;
        }
        for note in &self.notes {
            writeln!(f, "{pad} = note: {note}")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "{pad} = help: {hint}")?;
        }
        Ok(())
    }
}

/// The longest source line shown whole; longer lines are cut around the column.
const MAX_SHOWN: usize = 120;

/// The part of the source line to show, where the caret starts in it, and how many carets.
fn excerpt(loc: &Location) -> (String, usize, usize) {
    let chars: Vec<char> = loc.source_line.chars().collect();
    let column = loc.column.saturating_sub(1).min(chars.len());
    let underline = loc.underline.max(1);
    if chars.len() <= MAX_SHOWN {
        return (loc.source_line.clone(), column, underline);
    }
    let start = column.saturating_sub(MAX_SHOWN / 3);
    let end = (start + MAX_SHOWN).min(chars.len());
    let mut shown = String::new();
    let mut caret_at = column - start;
    if start > 0 {
        shown.push_str("...");
        caret_at += 3;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push_str("...");
    }
    (
        shown,
        caret_at,
        underline.min(end.saturating_sub(column)).max(1),
    )
}

/// Everything that went wrong while reading, overriding, validating or expanding an experiment.
/// Never empty. `Display` renders every diagnostic, rustc style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    diagnostics: Vec<Diagnostic>,
}

impl SpecError {
    /// Wraps diagnostics; an empty list becomes a generic error so that the type is never empty.
    pub fn new(mut diagnostics: Vec<Diagnostic>) -> Self {
        if diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new("invalid experiment"));
        }
        SpecError { diagnostics }
    }

    /// All diagnostics, in file order where possible.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The first diagnostic.
    pub fn first(&self) -> &Diagnostic {
        &self.diagnostics[0]
    }
}

impl From<Box<Diagnostic>> for SpecError {
    fn from(d: Box<Diagnostic>) -> Self {
        SpecError::new(vec![*d])
    }
}

impl From<Diagnostic> for SpecError {
    fn from(d: Diagnostic) -> Self {
        SpecError::new(vec![d])
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.diagnostics.len() > 1 {
            write!(
                f,
                "\nerror: the experiment has {} errors",
                self.diagnostics.len()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// The texts spans point into: the experiment file and each `--set` override.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sources {
    pub file_path: PathBuf,
    pub file_text: String,
    pub overrides: Vec<String>,
}

impl Sources {
    fn text(&self, origin: Origin) -> Option<(&str, SourceName)> {
        match origin {
            Origin::File => Some((&self.file_text, SourceName::File(self.file_path.clone()))),
            Origin::Override(i) => self
                .overrides
                .get(i)
                .map(|t| (t.as_str(), SourceName::Override(t.clone()))),
        }
    }

    /// Resolves a span to a [`Location`]; never panics, whatever the span.
    pub fn locate(&self, span: &Span) -> Option<Location> {
        let (text, source) = self.text(span.origin)?;
        let start = floor_boundary(text, span.start.min(text.len()));
        let end = floor_boundary(text, span.end.clamp(start, text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let source_line: String = text[line_start..line_end]
            .trim_end_matches('\r')
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        let underline = text[start..end.min(line_end).max(start)]
            .trim_end_matches('\r')
            .chars()
            .count()
            .max(1);
        Some(Location {
            source,
            line,
            column,
            source_line,
            underline,
        })
    }

    /// A diagnostic at `span`.
    pub fn error(&self, span: &Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            location: self.locate(span),
            ..Diagnostic::new(message)
        }
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The closest candidate to `word` if it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator,
    I::Item: AsRef<str> + 'a,
{
    let lower = word.to_lowercase();
    let mut best: Option<(usize, String)> = None;
    for c in candidates {
        let c = c.as_ref();
        if c == word {
            continue;
        }
        let d = if c.to_lowercase() == lower {
            0
        } else {
            strsim::osa_distance(&lower, &c.to_lowercase())
        };
        let limit = (word.chars().count().max(c.chars().count()) / 3).max(1);
        let close = d <= limit || strsim::jaro_winkler(&lower, &c.to_lowercase()) >= 0.9;
        if close && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
            best = Some((d, c.to_string()));
        }
    }
    best.map(|(_, c)| c)
}

/// `a, b, c` (or `(none)`).
pub(crate) fn list<I>(items: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos() {
        assert_eq!(did_you_mean("tyo", ["toy", "gpt2"]).as_deref(), Some("toy"));
        assert_eq!(
            did_you_mean("head_detecter", ["head_detector", "logit_lens"]).as_deref(),
            Some("head_detector")
        );
        assert_eq!(did_you_mean("zzzzzz", ["toy", "gpt2"]), None);
        assert_eq!(did_you_mean("Toy", ["toy"]).as_deref(), Some("toy"));
    }

    #[test]
    fn locate_never_panics() {
        let s = Sources {
            file_path: "x.toml".into(),
            file_text: "a = \"é\"\n\tb = 1\r\n".into(),
            overrides: vec![],
        };
        for start in 0..30 {
            for end in 0..30 {
                let _ = s.locate(&Span {
                    origin: Origin::File,
                    start,
                    end,
                });
            }
        }
        let l = s
            .locate(&Span {
                origin: Origin::File,
                start: 10,
                end: 11,
            })
            .unwrap();
        assert_eq!((l.line, l.column, l.source_line.as_str()), (2, 2, " b = 1"));
        assert!(
            s.locate(&Span {
                origin: Origin::Override(3),
                start: 0,
                end: 1
            })
            .is_none()
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let text = format!("x = [{}1]\n", "[".repeat(300));
        let s = Sources {
            file_path: "t.toml".into(),
            file_text: text,
            overrides: vec![],
        };
        let d = s.error(
            &Span {
                origin: Origin::File,
                start: 250,
                end: 251,
            },
            "deep",
        );
        let rendered = d.to_string();
        let lines: Vec<&str> = rendered.lines().collect();
        assert!(lines[3].len() < 140, "{}", lines[3]);
        assert!(lines[3].contains("1 | ...[[["));
        // The caret still sits under column 251.
        let caret = lines[4].find('^').unwrap();
        assert_eq!(&lines[3][caret..caret + 1], "[");
        assert_eq!(d.line_column(), Some((1, 251)));
    }

    #[test]
    fn renders_like_rustc() {
        let s = Sources {
            file_path: "demo.toml".into(),
            file_text: "[analyses.a]\nmodel = \"tyo\"\n".into(),
            overrides: vec![],
        };
        let d = s
            .error(
                &Span {
                    origin: Origin::File,
                    start: 21,
                    end: 26,
                },
                "no model `tyo`",
            )
            .with_hint("did you mean `toy`?");
        let text = d.to_string();
        assert_eq!(
            text,
            "error: no model `tyo`\n --> demo.toml:2:9\n  |\n2 | model = \"tyo\"\n  |         ^^^^^\n  |\n  = help: did you mean `toy`?\n"
        );
    }
}
