//! Where files come from and go to, what is asked for, and the progress events.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::templates::Product;

/// The public SAS root (no authentication needed for public data releases).
pub const DEFAULT_BASE_URL: &str = "https://data.sdss.org/sas";
/// Environment variable overriding the download root URL.
pub const BASE_URL_ENV: &str = "FRIZZVIEW_SAS_URL";
/// Environment variable of a local SAS mirror (sdss-access's variable).
pub const MIRROR_ENV: &str = "SAS_BASE_DIR";
/// Environment variable of the download cache folder.
pub const CACHE_ENV: &str = "FRIZZVIEW_CACHE";

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

/// Progress of [`super::get_file`] and [`super::star::fetch_star`].
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
