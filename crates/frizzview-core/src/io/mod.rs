//! Readers and writers. Nothing here imports egui.
//!
//! - [`load_file`] / [`load_paths`]: read any supported input into a [`Dataset`], detecting the
//!   format from the content ([`detect`]): `.npz` bundles ([`npz`]), APOGEE apVisit ([`apvisit`]),
//!   BOSS spec files ([`boss`]), generic FITS tables/images and CSV/TSV ([`table`]).
//! - Writers: the frizzview dataset bundle ([`npz::write_dataset`]), results as `.npz` / `.csv`
//!   (`crate::export`) and as an apStar-like FITS file (`crate::export::fits`). Every write is atomic and
//!   refuses to overwrite an input file ([`atomic`]).
//!
//! `fitsio::FitsFile` is not `Send`: it never leaves the function that opened it.

pub mod apvisit;
pub mod atomic;
pub mod boss;
pub mod detect;
pub mod error;
pub(crate) mod fits;
pub(crate) mod fits_disk;
mod fits_layout;
pub mod npz;
pub mod table;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use detect::{Format, detect_format};
pub use error::{LoadError, LoadErrorKind, SaveError};

use crate::model::{Dataset, Survey};

/// Options of [`load_paths`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Combine visits of different objects (OBJID) anyway.
    pub force: bool,
}

/// Read one file (any supported format).
pub fn load_file(path: &Path) -> Result<Dataset, LoadError> {
    match detect_format(path)? {
        Format::Npz => npz::read_bundle(path),
        Format::ApVisit => apvisit::read(path),
        Format::BossSpec => boss::read(path),
        Format::FitsTable => table::read_fits(path),
        Format::Text => table::read_text(path),
    }
}

/// Files of a folder that look like inputs (by extension), sorted by name.
fn folder_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let rd = std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| LoadError::io(dir, e))?.path();
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if p.is_file() && matches!(ext.as_str(), "fits" | "fit" | "fts" | "npz" | "csv" | "tsv") {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(LoadError::new(
            dir,
            LoadErrorKind::Unrecognised("the folder has no .fits, .npz, .csv or .tsv file".into()),
        ));
    }
    Ok(out)
}

/// Read many files and folders into one dataset (visits concatenated in the given order).
///
/// Visits that name different objects are refused unless `opts.force`. A folder contributes its
/// `.fits`/`.npz`/`.csv`/`.tsv` files in name order.
pub fn load_paths(paths: &[PathBuf], opts: &LoadOptions) -> Result<Dataset, LoadError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(folder_files(p)?);
        } else {
            files.push(p.clone());
        }
    }
    let Some(first) = files.first() else {
        return Err(LoadError::new(
            Path::new(""),
            LoadErrorKind::Unrecognised("no input file given".into()),
        ));
    };
    if files.len() == 1 {
        return load_file(first);
    }
    let mut out: Option<Dataset> = None;
    for f in &files {
        let d = load_file(f)?;
        out = Some(match out {
            None => d,
            Some(mut acc) => {
                if acc.survey != d.survey {
                    acc.survey = Survey::Generic;
                }
                acc.visits.extend(d.visits.iter().map(Arc::clone));
                if acc.input_grid.is_none() {
                    acc.input_grid = d.input_grid;
                }
                if acc.truth.is_none() {
                    acc.truth = d.truth;
                }
                if acc.pipeline_coadd.is_none() {
                    acc.pipeline_coadd = d.pipeline_coadd;
                }
                acc
            }
        });
    }
    let data = out.ok_or_else(|| LoadError::missing(first, "data"))?;
    check_objects(&data, first, opts)?;
    Ok(data)
}

/// Refuse visits of different objects unless forced.
fn check_objects(data: &Dataset, first: &Path, opts: &LoadOptions) -> Result<(), LoadError> {
    if opts.force {
        return Ok(());
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    for v in &data.visits {
        if let Some(o) = &v.meta.object {
            let o = o.trim().to_owned();
            if !seen.iter().any(|(s, _)| *s == o) {
                let src = v
                    .meta
                    .source
                    .as_ref()
                    .map_or_else(|| v.meta.name.clone(), |p| p.display().to_string());
                seen.push((o, src));
            }
        }
    }
    if seen.len() > 1 {
        let list = seen
            .iter()
            .map(|(o, s)| format!("{o} ({s})"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(LoadError::new(first, LoadErrorKind::MixedObjects(list)));
    }
    Ok(())
}
