//! Find a star's SDSS files: build their paths on the Science Archive Server (SAS) from
//! [`templates`], then take each file from a local mirror (`SAS_BASE_DIR`, the variable the
//! sdss-access package uses), from frizzview's download cache, or download it over HTTPS into
//! that cache ([`download`]: resumable, checked as FITS before use, moved into place atomically).
//!
//! No egui, clap or indicatif here: progress goes through a callback ([`Event`]); the command
//! line draws bars from it and the window shows it in its status bar.

pub mod download;
pub mod healpix;
pub mod star;
pub mod templates;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use star::{StarFiles, StarQuery, VisitRef};
pub use templates::{Product, Release, Templates, Values};

/// The public SAS root (no authentication needed for public data releases).
pub const DEFAULT_BASE_URL: &str = "https://data.sdss.org/sas";
/// Environment variable overriding the download root URL.
pub const BASE_URL_ENV: &str = "FRIZZVIEW_SAS_URL";
/// Environment variable of a local SAS mirror (sdss-access's variable).
pub const MIRROR_ENV: &str = "SAS_BASE_DIR";
/// Environment variable of the download cache folder.
pub const CACHE_ENV: &str = "FRIZZVIEW_CACHE";

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
        /// Whether it is one of [`templates::PLACEHOLDERS`].
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
    templates::PLACEHOLDERS
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

/// Where files come from and go to.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchConfig {
    /// Download root, e.g. `https://data.sdss.org/sas` (no trailing slash needed).
    pub base_url: String,
    /// A local SAS mirror searched first (never written to).
    pub mirror: Option<PathBuf>,
    /// The download cache (laid out like the SAS, so it can serve as a mirror itself).
    pub cache_dir: PathBuf,
    /// Time allowed to connect (and to resolve the host).
    pub connect_timeout: Duration,
    /// Time allowed for any one read from the server (a stalled transfer ends after this).
    pub read_timeout: Duration,
    /// How many times an interrupted transfer is resumed automatically.
    pub retries: u32,
    /// Use the mirror and the cache only; never open a connection.
    pub offline: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            mirror: None,
            cache_dir: default_cache_dir(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            retries: 2,
            offline: false,
        }
    }
}

impl FetchConfig {
    /// The defaults with `FRIZZVIEW_SAS_URL`, `SAS_BASE_DIR` and `FRIZZVIEW_CACHE` applied.
    #[must_use]
    pub fn from_env() -> Self {
        let mut c = Self::default();
        if let Ok(u) = std::env::var(BASE_URL_ENV)
            && !u.trim().is_empty()
        {
            c.base_url = u.trim().to_owned();
        }
        c.mirror = std::env::var_os(MIRROR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        c
    }

    /// The URL of a SAS-relative path.
    #[must_use]
    pub fn url(&self, rel: &str) -> String {
        format!(
            "{}/{}",
            self.base_url.trim_end_matches('/'),
            rel.trim_start_matches('/')
        )
    }
}

/// `$FRIZZVIEW_CACHE`, else `$XDG_CACHE_HOME/frizzview/sas`, else `~/.cache/frizzview/sas`,
/// else a folder in the system temporary directory.
#[must_use]
pub fn default_cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(c);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("frizzview").join("sas");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h)
            .join(".cache")
            .join("frizzview")
            .join("sas");
    }
    std::env::temp_dir().join("frizzview-cache").join("sas")
}

/// Where a file was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// In the local mirror (`SAS_BASE_DIR`).
    Mirror,
    /// Already in the download cache: no request was made.
    Cache,
    /// Downloaded now (`resumed_from` > 0 when a partial file was continued).
    Downloaded {
        /// Bytes transferred now.
        bytes: u64,
        /// Bytes that were already in the partial file.
        resumed_from: u64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mirror => f.write_str("local mirror"),
            Self::Cache => f.write_str("cache"),
            Self::Downloaded {
                bytes,
                resumed_from: 0,
            } => write!(f, "downloaded {bytes} B"),
            Self::Downloaded {
                bytes,
                resumed_from,
            } => write!(f, "downloaded {bytes} B, resumed at {resumed_from} B"),
        }
    }
}

/// One file to get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRequest {
    /// The product.
    pub product: Product,
    /// Its path relative to the SAS root.
    pub rel: String,
}

/// One file got.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched {
    /// What was asked for.
    pub request: FileRequest,
    /// The local file (in the mirror or the cache).
    pub path: PathBuf,
    /// Where it came from.
    pub origin: Origin,
}

/// Progress of [`get_file`] and [`star::fetch_star`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event<'a> {
    /// Looking for one file (`index` of `count` planned so far).
    Start {
        /// The SAS-relative path.
        rel: &'a str,
        /// 0-based position.
        index: usize,
        /// Files planned so far.
        count: usize,
    },
    /// Bytes of the current download: `done` so far (including a resumed part), of `total`.
    Bytes {
        /// Bytes in the partial file.
        done: u64,
        /// The full size, when known.
        total: Option<u64>,
    },
    /// The current file is ready.
    Done {
        /// The local file.
        path: &'a Path,
        /// Where it came from.
        origin: Origin,
    },
}

/// A progress callback.
pub type Progress<'a> = &'a mut dyn FnMut(Event<'_>);

/// Check that `path` is a structurally sound FITS file (every HDU's header and declared data lie
/// inside the file); the reason when it is not.
pub fn check_fits(path: &Path) -> Result<(), String> {
    crate::io::check_fits_structure(path).map_err(|e| e.kind.to_string())
}

/// Get one SAS file: from the mirror, else the cache (no request made), else download it into
/// the cache.
pub fn get_file(
    request: &FileRequest,
    cfg: &FetchConfig,
    progress: Progress<'_>,
) -> Result<Fetched, FetchError> {
    let done = |path: PathBuf, origin: Origin, progress: Progress<'_>| {
        progress(Event::Done {
            path: &path,
            origin,
        });
        Ok(Fetched {
            request: request.clone(),
            path,
            origin,
        })
    };
    let rel = safe_relative(&request.rel)?;
    if let Some(m) = &cfg.mirror {
        let p = m.join(&rel);
        if p.is_file() {
            match check_fits(&p) {
                Ok(()) => return done(p, Origin::Mirror, progress),
                Err(why) => log::warn!(
                    "{} in the local mirror is not a valid FITS file ({why}); trying the cache",
                    p.display()
                ),
            }
        }
    }
    let target = cfg.cache_dir.join(&rel);
    if target.is_file() {
        match check_fits(&target) {
            Ok(()) => return done(target, Origin::Cache, progress),
            Err(why) => {
                log::warn!(
                    "{} in the cache is not a valid FITS file ({why}); fetching it again",
                    target.display()
                );
                std::fs::remove_file(&target).map_err(|e| FetchError::io(&target, e))?;
            }
        }
    }
    if cfg.offline {
        return Err(FetchError::NotLocal {
            rel: request.rel.clone(),
            mirror: cfg
                .mirror
                .as_ref()
                .map_or_else(|| "none".to_owned(), |m| m.display().to_string()),
            cache: cfg.cache_dir.display().to_string(),
        });
    }
    let url = cfg.url(&request.rel);
    let (bytes, resumed_from) = download::download(&url, &target, cfg, progress)?;
    done(
        target,
        Origin::Downloaded {
            bytes,
            resumed_from,
        },
        progress,
    )
}

/// `rel` as a relative path without `..`, absolute or empty components (a template or an
/// allVisit value must not reach outside the cache).
fn safe_relative(rel: &str) -> Result<PathBuf, FetchError> {
    let mut out = PathBuf::new();
    for part in rel.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if part == ".." || part.contains('\\') || part.contains('\0') {
            return Err(FetchError::Template(format!(
                "the path '{rel}' leaves the archive tree ('{part}')"
            )));
        }
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        return Err(FetchError::Template(format!("the path '{rel}' is empty")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_tree() {
        assert!(safe_relative("dr17/../../etc/passwd").is_err());
        assert!(safe_relative("").is_err());
        assert_eq!(
            safe_relative("/dr13//a/./b.fits").ok(),
            Some(PathBuf::from("dr13/a/b.fits"))
        );
    }

    #[test]
    fn urls_join_with_one_slash() {
        let c = FetchConfig {
            base_url: "http://127.0.0.1:9/sas/".into(),
            ..FetchConfig::default()
        };
        assert_eq!(c.url("/dr13/x.fits"), "http://127.0.0.1:9/sas/dr13/x.fits");
    }
}
