//! Where a piece of text came from: the experiment file or one `--set` override, and a byte
//! range in it. A leaf: the node tree and the diagnostics both point with it.

/// Which text a span points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    /// The experiment file.
    File,
    /// The n-th `--set` override.
    Override(usize),
}

/// A byte range in one of the experiment's texts (`diagnostic::Sources`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub origin: Origin,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn file(range: std::ops::Range<usize>) -> Self {
        Span {
            origin: Origin::File,
            start: range.start,
            end: range.end,
        }
    }

    /// Moves a span parsed from a substring that starts at `offset` of `origin`'s text.
    pub fn shifted(range: std::ops::Range<usize>, origin: Origin, offset: usize) -> Self {
        Span {
            origin,
            start: range.start + offset,
            end: range.end + offset,
        }
    }
}
