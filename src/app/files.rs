//! Reading files into the window and the session file (settings + file list as JSON).
//!
//! The window calls these from background jobs (`jobs.rs`), never on the UI thread; a bad file
//! only produces a message naming it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;

use crate::model::Dataset;
use crate::settings::Settings;
use crate::vocab::OutputFormat;

pub use super::read::{load_paths, set_load_options};

/// What [`load_each`] read.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// The visits of every file that could be read (`None` if none could).
    pub data: Option<Dataset>,
    /// The paths that contributed.
    pub files: Vec<PathBuf>,
    /// One message per path that could not be read or belongs to another star.
    pub errors: Vec<String>,
}

/// Read each path once (a folder as a whole) and merge what could be read, so that one bad file
/// does not block the others; visits of another object than the first readable path's are
/// refused with a message. `done` counts the paths handled (progress).
pub fn load_each(paths: &[PathBuf], done: &AtomicUsize) -> LoadOutcome {
    let mut out = LoadOutcome::default();
    if paths.is_empty() {
        out.errors.push("no file given".into());
        return out;
    }
    // Files that describe each other are read together, as the command line reads them.
    if read_together(paths) {
        match load_paths(paths) {
            Ok(d) => {
                done.store(paths.len(), Ordering::Relaxed);
                out.data = Some(d);
                out.files = paths.to_vec();
                return out;
            }
            Err(e) => out
                .errors
                .push(format!("{e:#} (the files are read one by one instead)")),
        }
    }
    let object = |d: &Dataset| d.visits.iter().find_map(|v| v.meta.object.clone());
    for p in paths {
        let read = load_paths(std::slice::from_ref(p));
        done.fetch_add(1, Ordering::Relaxed);
        let d = match read {
            Ok(d) => d,
            Err(e) => {
                out.errors.push(format!("{e:#}"));
                continue;
            }
        };
        let clash = out
            .data
            .as_ref()
            .and_then(|prev| match (object(prev), object(&d)) {
                (Some(a), Some(b)) if a.trim() != b.trim() => Some((a, b)),
                _ => None,
            });
        if let Some((a, b)) = clash {
            out.errors.push(format!(
                "not added: {} is object {b}, the other files are {a}",
                p.display()
            ));
            continue;
        }
        out.data = Some(match out.data.take() {
            Some(mut prev) => {
                if prev.survey != d.survey {
                    prev.survey = crate::model::Survey::Generic;
                }
                if prev.truth.is_none() {
                    prev.truth = d.truth.clone();
                }
                if prev.pipeline_coadd.is_none() {
                    prev.pipeline_coadd = d.pipeline_coadd.clone();
                }
                merged(&prev, d)
            }
            None => d,
        });
        out.files.push(p.clone());
    }
    out
}

/// Whether `paths` must be read together by `io::load_paths`: an apStar or allVisit file beside
/// the visit files it describes (their velocities and the pipeline's coadd, not more visits), or
/// apCframe chips (grouped into exposures).
#[must_use]
pub fn read_together(paths: &[PathBuf]) -> bool {
    use crate::io::Format;
    paths.len() > 1
        && paths.iter().any(|p| {
            crate::io::apcframe::parse_name(p).is_some()
                || matches!(
                    crate::io::detect_format(p),
                    Ok(Format::ApStar | Format::AllVisit)
                )
        })
}

/// Append the visits of `more` to `data` (a new value; the old one is shared and immutable).
#[must_use]
pub fn merged(data: &Dataset, more: Dataset) -> Dataset {
    let mut out = data.clone();
    if out.visits.is_empty() {
        return more;
    }
    out.visits.extend(more.visits.iter().map(Arc::clone));
    out.load_warnings.extend(more.load_warnings);
    out
}

/// What a session file stores: enough to reopen the same view of the same data.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// Format version, for future changes.
    pub version: u32,
    /// The files that were open (empty when a demo was open).
    pub files: Vec<PathBuf>,
    /// The demo that was open, if any.
    pub demo: Option<super::demo::Demo>,
    /// The combination settings, including the per-visit ones.
    pub settings: Settings,
}

/// Write a session as JSON, atomically (a failed save leaves the old session file whole). The
/// session's own files are inputs: never replaced.
pub fn save_session(path: &Path, session: &Session) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(session).context("cannot serialise the session")?;
    crate::io::atomic::write_atomic(path, &session.files, |tmp| {
        std::fs::write(tmp, &text).map_err(|e| crate::io::error::SaveError::new(path, e))
    })
    .with_context(|| format!("cannot write the session file {}", path.display()))
}

/// Read a session written by [`save_session`]. Its settings are validated (limits included)
/// before the session is returned, so a bad session never replaces the open one.
pub fn load_session(path: &Path) -> anyhow::Result<Session> {
    let limit = crate::export::fits::SETTINGS_MAX_BYTES;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| {
            std::io::Read::read_to_string(&mut std::io::Read::take(f, limit + 1), &mut text)
        })
        .with_context(|| format!("cannot read the session file {}", path.display()))?;
    if text.len() as u64 > limit {
        anyhow::bail!(
            "the session file {} is larger than {limit} bytes, the limit for a session",
            path.display()
        );
    }
    let session: Session = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a frizzview session file", path.display()))?;
    session
        .settings
        .validate()
        .with_context(|| format!("the session file {} has invalid settings", path.display()))?;
    Ok(session)
}

/// Export a result: apStar-like FITS, CSV/TSV or `.npz`, chosen by the extension
/// ([`OutputFormat::from_path`], as the command line chooses: `.fits`, `.fit`, `.fts`, ...). Refuses to
/// overwrite an input file. A result whose leave-one-out scores are still pending (exported
/// before the engine's second stage arrived) gets them computed here first, so an export always
/// carries them.
pub fn export(
    path: &Path,
    result: &crate::combine::Combined,
    data: &Dataset,
    inputs: &[PathBuf],
) -> anyhow::Result<()> {
    let completed;
    let result = if result.loo_pending {
        let mut c = result.clone();
        crate::combine::complete_leave_one_out(
            data,
            &mut c,
            &crate::combine::Cancel::new(),
            &crate::combine::Caches::new(),
        )
        .with_context(|| format!("cannot export to {}", path.display()))?;
        completed = c;
        &completed
    } else {
        result
    };
    // The format follows the extension as on the command line (the core's vocabulary).
    match OutputFormat::from_path(path)? {
        OutputFormat::Fits => crate::export::fits::write_fits(path, data, result, inputs)?,
        OutputFormat::Csv => crate::export::write_csv(path, result, inputs)?,
        OutputFormat::Npz => crate::export::write_npz(path, result, inputs)?,
    }
    Ok(())
}
