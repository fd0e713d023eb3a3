//! Readers and writers. Nothing here imports egui.
//!
//! - [`load_file`] / [`load_paths`]: read any supported input into a [`Dataset`](crate::model::Dataset),
//!   the format chosen from the content by the one list of readers ([`registry`]): `.npz` bundles,
//!   APOGEE apVisit, apStar (alone, its resampled visits; beside apVisit files, their velocities
//!   and reference curve) and apCframe files, allVisit summaries beside apVisit files, BOSS spec,
//!   astra mwmVisit, LAMOST MRS, generic FITS tables/images and CSV/TSV ([`readers`]).
//! - [`fits`]: the FITS layer under every FITS reader (cfitsio behind a structural check, gzip,
//!   a read sandbox and a panic guard).
//! - [`survey`]: survey tables that describe visits (allVisit, apStar velocities, file names).
//! - Writers: the frizzview dataset bundle ([`npz::write_dataset`]), results as `.npz` / `.csv`
//!   (`crate::export`) and as an apStar-like FITS file (`crate::export::fits`). Every write is atomic and
//!   refuses to overwrite an input file ([`atomic`]).
//!
//! This file only declares modules and re-exports; the code is in them.

pub mod atomic;
pub mod error;
pub(crate) mod fits;
pub mod load;
pub mod reader;
pub mod readers;
pub mod registry;
pub mod survey;

pub use error::{LoadError, LoadErrorKind, SaveError};
pub(crate) use fits::disk as fits_disk;
pub use fits::gz;
pub use fits::layout::check_fits_structure;
pub use fits::{ReadSandbox, guarded_panics, preflight, run_guarded, set_read_sandbox};
pub use load::{LoadOptions, load_paths};
pub use reader::{CompanionTable, Confidence, Format, Probe, Reader};
pub use readers::{apcframe, apstar, apvisit, boss, lamost, mwm, npz, table};
pub use registry::{Registry, detect_format, load_file};
pub use survey::{allvisit, apogee_names, survey_rv};
