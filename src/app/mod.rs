//! The eframe window (feature `gui`). The only module that imports egui.

pub mod teaching;

use std::path::PathBuf;

/// Open the window on `files` (or a demo) and run until it closes.
pub fn run(
    _files: Vec<PathBuf>,
    _demo: Option<String>,
    _screenshot: Option<PathBuf>,
) -> anyhow::Result<()> {
    anyhow::bail!("the window is not implemented yet")
}
