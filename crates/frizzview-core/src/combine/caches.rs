//! The memos the methods keep between combinations ([`Caches`]).

use super::{local, standard};

/// The memos the methods re-use between combinations: the local basis' kernel evaluations and
/// normal-equation sums, and standard practice's stencils and pieces. The engine owns one (so
/// the window's live recomputations re-use earlier work, and the teaching panel's engine does not
/// evict the main window's entries); [`crate::combine::combine`] makes a fresh one for one-shot use.
#[derive(Debug, Default)]
pub struct Caches {
    /// Local-basis kernel evaluations and sums.
    pub basis: local::BasisCache,
    /// Standard-practice stencils and pieces.
    pub standard: standard::StandardCache,
}

impl Caches {
    /// Empty caches with the default budgets.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held by all of them.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.basis.bytes() + self.standard.bytes()
    }

    /// Drop everything.
    pub fn clear(&self) {
        self.basis.clear();
        self.standard.clear();
    }
}
