//! Errors of the readers and writers. Every message names the file and the part of it (key, HDU,
//! column) that is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A file could not be read as a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// The file (or folder) concerned.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: LoadErrorKind,
}

/// What is wrong with an input file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadErrorKind {
    /// The operating system refused (missing file, permissions...).
    #[error("cannot read: {0}")]
    Io(String),
    /// The content is not a format frizzview reads.
    #[error("not a recognised spectrum file: {0}")]
    Unrecognised(String),
    /// A required part is missing (`what` names the key, HDU or column).
    #[error("{what} is missing")]
    Missing {
        /// The missing part, e.g. "key 'flux'" or "HDU 4 (WAVELENGTH)".
        what: String,
    },
    /// A part is present but unusable.
    #[error("{what}: {reason}")]
    Invalid {
        /// The part, e.g. "key 'lam'" or "column 'flux' of HDU 1".
        what: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Visits of different objects were given together without `force`.
    #[error("visits of different objects: {0} (use --allow-mixed to combine them anyway)")]
    MixedObjects(String),
}

impl LoadError {
    /// An error about `path`.
    #[must_use]
    pub fn new(path: &Path, kind: LoadErrorKind) -> Self {
        Self {
            path: path.to_path_buf(),
            kind,
        }
    }

    /// `what` is missing in `path`.
    #[must_use]
    pub fn missing(path: &Path, what: impl Into<String>) -> Self {
        Self::new(path, LoadErrorKind::Missing { what: what.into() })
    }

    /// `what` in `path` is unusable because of `reason`.
    #[must_use]
    pub fn invalid(path: &Path, what: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::new(
            path,
            LoadErrorKind::Invalid {
                what: what.into(),
                reason: reason.to_string(),
            },
        )
    }

    /// The OS refused to read `path`.
    #[must_use]
    pub fn io(path: &Path, err: impl fmt::Display) -> Self {
        Self::new(path, LoadErrorKind::Io(err.to_string()))
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for LoadError {}

/// A result could not be written.
#[derive(Debug, Clone, PartialEq)]
pub struct SaveError {
    /// The output file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

impl SaveError {
    /// An error writing `path`.
    #[must_use]
    pub fn new(path: &Path, reason: impl fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for SaveError {}
