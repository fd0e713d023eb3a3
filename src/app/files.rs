//! Reading files into the window and the session file (settings + file list as JSON).
//!
//! The window never reads files on the UI thread for long: loading is quick for a few visits, and
//! a bad file only produces a message naming it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::model::Dataset;
use crate::settings::Settings;

/// Load files (or folders) into one dataset (the format is detected from each file's content).
pub fn load_paths(paths: &[PathBuf]) -> anyhow::Result<Dataset> {
    if paths.is_empty() {
        anyhow::bail!("no file given");
    }
    Ok(crate::io::load_paths(
        paths,
        &crate::io::LoadOptions::default(),
    )?)
}

/// Append the visits of `more` to `data` (a new value; the old one is shared and immutable).
#[must_use]
pub fn merged(data: &Dataset, more: Dataset) -> Dataset {
    let mut out = data.clone();
    if out.visits.is_empty() {
        return more;
    }
    out.visits.extend(more.visits.iter().map(Arc::clone));
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

/// Write a session as JSON.
pub fn save_session(path: &Path, session: &Session) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(session).context("cannot serialise the session")?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the session file {}", path.display()))
}

/// Read a session written by [`save_session`].
pub fn load_session(path: &Path) -> anyhow::Result<Session> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the session file {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a frizzview session file", path.display()))
}

/// Export a result: apStar-like FITS, CSV/TSV or `.npz`, chosen by the extension. Refuses to
/// overwrite an input file.
pub fn export(
    path: &Path,
    result: &crate::combine::Combined,
    data: &Dataset,
    inputs: &[PathBuf],
) -> anyhow::Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "fits" | "fit" => crate::export::fits::write_fits(path, data, result, inputs)?,
        "csv" | "tsv" => crate::export::write_csv(path, result, inputs)?,
        "npz" => crate::export::write_npz(path, result, inputs)?,
        _ => anyhow::bail!(
            "cannot export to {}: use a .fits, .csv, .tsv or .npz file name",
            path.display()
        ),
    }
    Ok(())
}
