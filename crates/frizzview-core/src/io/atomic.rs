//! Atomic writes: everything is written to a temporary file in the destination folder and renamed
//! into place at the end, so a crash or an error never leaves a half-written result, and an input
//! file is never overwritten.

use std::path::{Path, PathBuf};

use super::error::SaveError;

/// Refuse `out` if it is (canonically) one of `inputs`.
pub fn check_not_input(out: &Path, inputs: &[PathBuf]) -> Result<(), SaveError> {
    let Ok(out_c) = std::fs::canonicalize(out) else {
        // The output does not exist yet, so it cannot be an input.
        return Ok(());
    };
    for input in inputs {
        if std::fs::canonicalize(input).is_ok_and(|c| c == out_c) {
            return Err(SaveError::new(
                out,
                format!(
                    "it is an input file ({}); refusing to overwrite it",
                    input.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Write `out` atomically: `write` receives a temporary path in the same folder (that does not
/// exist yet), and the file it creates there is renamed to `out` when it returns `Ok`.
/// `inputs` are the files the result was computed from; `out` must not be one of them.
pub fn write_atomic<F>(out: &Path, inputs: &[PathBuf], write: F) -> Result<(), SaveError>
where
    F: FnOnce(&Path) -> Result<(), SaveError>,
{
    check_not_input(out, inputs)?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if out.is_dir() {
        return Err(SaveError::new(out, "it is a folder"));
    }
    // A private folder beside the destination: same file system (rename is atomic), and writers
    // that refuse to create over an existing file (cfitsio) get a fresh name.
    let tmp = tempfile::Builder::new()
        .prefix(".frizzview-tmp-")
        .tempdir_in(&dir)
        .map_err(|e| {
            SaveError::new(
                out,
                format!("cannot create a temporary folder in {}: {e}", dir.display()),
            )
        })?;
    let name = out
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_os_string());
    let tmp_path = tmp.path().join(name);
    write(&tmp_path)?;
    std::fs::rename(&tmp_path, out).map_err(|e| SaveError::new(out, e))?;
    Ok(())
}
