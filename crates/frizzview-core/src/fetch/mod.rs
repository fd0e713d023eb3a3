//! Find a star's SDSS files: build their paths on the Science Archive Server (SAS) from
//! [`templates`], then take each file from a local mirror (`SAS_BASE_DIR`, the variable the
//! sdss-access package uses), from frizzview's download cache, or download it over HTTPS into
//! that cache ([`download`]: resumable, checked as FITS before use, moved into place atomically).
//!
//! No egui, clap or indicatif here: progress goes through a callback ([`Event`]); the command
//! line draws bars from it and the window shows it in its status bar.

pub mod config;
pub mod download;
pub mod error;
pub mod get;
pub mod healpix;
pub mod placeholders;
pub mod star;
pub mod templates;

pub use config::{
    BASE_URL_ENV, CACHE_ENV, DEFAULT_BASE_URL, Event, FetchConfig, Fetched, FileRequest,
    MIRROR_ENV, Origin, Progress, default_cache_dir,
};
pub use download::check_fits;
pub use error::FetchError;
pub use get::get_file;
pub use star::{StarFiles, StarQuery, VisitRef};
pub use templates::{Product, Release, Templates, Values};
