//! Reading visit files with the window's load options (`--exposures`, `--star`, `--fiber` of the
//! command line). Below `files.rs` (loading into the window, sessions) and `demo.rs` (the BOSS
//! demo is a file), which both read through it.

use std::path::PathBuf;

use crate::model::Dataset;

/// The window's load options (`--exposures`, `--star`, `--fiber` of the command line), set once
/// at start.
static LOAD_OPTIONS: std::sync::OnceLock<crate::io::LoadOptions> = std::sync::OnceLock::new();

/// Set the load options every later [`load_paths`] uses (first call wins).
pub fn set_load_options(opts: crate::io::LoadOptions) {
    let _ = LOAD_OPTIONS.set(opts);
}

/// Load files (or folders) into one dataset (the format is detected from each file's content).
pub fn load_paths(paths: &[PathBuf]) -> anyhow::Result<Dataset> {
    if paths.is_empty() {
        anyhow::bail!("no file given");
    }
    let default = crate::io::LoadOptions::default();
    Ok(crate::io::load_paths(
        paths,
        LOAD_OPTIONS.get().unwrap_or(&default),
    )?)
}
