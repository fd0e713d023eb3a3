//! Why a file could not be found or fetched.

use std::fmt;
use std::path::Path;

/// Why a file could not be found or fetched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchError {
    /// A bad argument (release, product, template pair...).
    #[error("{0}")]
    Usage(String),
    /// A template is malformed or missing.
    #[error("{0}")]
    Template(String),
    /// A template needs a value nobody gave.
    #[error("the {what} path needs {{{name}}}{}: set it with --param {name}=VALUE", if *known { format!(" ({})", placeholder_help(name)) } else { " (not a standard placeholder)".to_owned() })]
    Missing {
        /// Which template.
        what: String,
        /// The placeholder.
        name: String,
        /// Whether it is one of [`super::placeholders::PLACEHOLDERS`].
        known: bool,
    },
    /// The server has no such file.
    #[error("{url}: not found on the server (HTTP 404); check the release and the path template")]
    NotFound {
        /// The URL asked for.
        url: String,
    },
    /// Another HTTP status.
    #[error("{url}: the server answered HTTP {status}")]
    Status {
        /// The URL asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The server could not be reached (DNS, refused, connect timeout).
    #[error("{url}: cannot reach the server: {reason}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The transfer stopped before the end; the bytes so far are kept for a resume.
    #[error(
        "{url}: the transfer stopped after {got} of {} bytes ({reason}); run again to resume from {part}",
        total.map_or_else(|| "?".to_owned(), |t| t.to_string())
    )]
    Interrupted {
        /// The URL asked for.
        url: String,
        /// Bytes now in the partial file.
        got: u64,
        /// The full size, when the server said.
        total: Option<u64>,
        /// Why it stopped.
        reason: String,
        /// The partial file.
        part: String,
    },
    /// The downloaded (or mirrored) bytes are not a valid FITS file; nothing was cached.
    #[error(
        "{url}: the server sent something that is not a FITS file ({reason}); nothing was cached"
    )]
    NotFits {
        /// The URL (or file) concerned.
        url: String,
        /// What the FITS check said.
        reason: String,
    },
    /// The file is neither in the mirror nor in the cache, and downloads are off.
    #[error(
        "{rel}: not in the mirror ({mirror}) nor in the cache ({cache}), and downloads are off"
    )]
    NotLocal {
        /// The SAS-relative path.
        rel: String,
        /// The mirror folder, or "none".
        mirror: String,
        /// The cache folder.
        cache: String,
    },
    /// A local file operation failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}

fn placeholder_help(name: &str) -> &'static str {
    super::placeholders::PLACEHOLDERS
        .iter()
        .find(|(k, _)| *k == name)
        .map_or("", |(_, h)| h)
}

impl FetchError {
    pub(crate) fn io(path: &Path, e: impl fmt::Display) -> Self {
        Self::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}
