//! The one entry point of every FITS reader ([`open`]): the read sandbox, the structural check,
//! gzip, and the panic guard ([`guard`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use fitsio::tables::ColumnDataType;

use super::hdu::{check_rows, hdus, image_f64};
use crate::io::error::{LoadError, LoadErrorKind};

use super::disk::OpenFits;

/// Open a FITS file for reading: the one entry point of every FITS reader.
///
/// A gzip-compressed file (by its magic bytes, whatever its name) is decompressed into memory,
/// at most [`super::gz::GZIP_MAX_BYTES`], and opened from there. Either way the HDUs are first
/// checked to be sized consistently and to lie inside the content (a corrupt sizing card can
/// make cfitsio loop forever; see `layout`). Errors name `path`.
pub(crate) fn open(path: &Path) -> Result<OpenFits, LoadError> {
    sandboxed(path)?;
    open_here(path)
}

/// [`open`] without the sandbox: what the sandbox's own check runs.
fn open_here(path: &Path) -> Result<OpenFits, LoadError> {
    let fe = |e| LoadError::invalid(path, "the FITS file", e);
    match super::gz::content(path)? {
        Some(bytes) => {
            super::layout::check_bytes(path, &bytes)?;
            super::disk::open_memory(bytes).map_err(fe)
        }
        None => {
            super::layout::check(path)?;
            super::disk::open_disk(path).map_err(fe)
        }
    }
}

/// A check run on a FITS file before this process lets cfitsio read it: `Ok` when the file may
/// be read here, `Err` (naming the file) when it may not. See [`set_read_sandbox`].
pub type ReadSandbox = Arc<dyn Fn(&Path) -> Result<(), LoadError> + Send + Sync>;

/// The sandbox installed, and the files it vouched for (path, length, modification time).
struct Sandbox {
    check: Option<ReadSandbox>,
    vouched: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

static SANDBOX: Mutex<Sandbox> = Mutex::new(Sandbox {
    check: None,
    vouched: Vec::new(),
});

/// How many vouched files are remembered (a folder of visits is read twice: detection, then
/// the reader).
const VOUCHED_MAX: usize = 4096;

fn sandbox_lock() -> std::sync::MutexGuard<'static, Sandbox> {
    SANDBOX
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Install (or with `None` remove) the process-wide read sandbox: every FITS file is passed to
/// it before this process opens it with cfitsio, once per (path, length, modification time).
///
/// cfitsio is C: an integer division by zero (SIGFPE), a wild read (SIGSEGV) or an abort inside
/// it ends the whole process, which no panic guard can catch. The core cannot contain that
/// itself (it cannot spawn the application); the application installs a sandbox that reads the
/// file in a child process first ([`preflight`] is what the child runs) and turns a child ended
/// by a signal into an error naming the file and the signal, so that the window survives.
pub fn set_read_sandbox(check: Option<ReadSandbox>) {
    let mut s = sandbox_lock();
    s.check = check;
    s.vouched.clear();
}

/// Run the installed sandbox on `path` unless it already vouched for this version of the file.
fn sandboxed(path: &Path) -> Result<(), LoadError> {
    let meta = std::fs::metadata(path).ok();
    let key = (
        path.to_path_buf(),
        meta.as_ref().map_or(0, std::fs::Metadata::len),
        meta.and_then(|m| m.modified().ok()),
    );
    let check = {
        let s = sandbox_lock();
        match &s.check {
            None => return Ok(()),
            Some(_) if s.vouched.contains(&key) => return Ok(()),
            Some(c) => Arc::clone(c),
        }
    };
    // The lock is not held while the check runs: files are checked in parallel.
    check(path)?;
    let mut s = sandbox_lock();
    if s.vouched.len() >= VOUCHED_MAX {
        s.vouched.clear();
    }
    s.vouched.push(key);
    Ok(())
}

/// Read everything of a FITS file the readers could ask cfitsio for: every HDU's description,
/// every image and every table column (as numbers, text columns as text). Errors are returned as
/// usual; what this is for is what it does *not* return: a read sandbox runs it in a child
/// process, and if cfitsio ends that process (a division by zero, an abort) the file is refused
/// before the window's own process reads it. Runs no sandbox itself.
pub fn preflight(path: &Path) -> Result<(), LoadError> {
    guard(path, || {
        let mut f = open_here(path)?;
        let hdus = hdus(&mut f, path)?;
        let mut first_error = None;
        for d in &hdus {
            let r = if d
                .image_shape()
                .is_some_and(|s| !s.is_empty() && !s.contains(&0))
            {
                image_f64(&mut f, path, d).map(|_| ())
            } else if let Some((cols, _)) = d.table() {
                cols.iter()
                    .map(|(name, typ, _)| match typ {
                        ColumnDataType::Text | ColumnDataType::String => {
                            super::disk::read_str_col(&mut f, &d.hdu, name, 0, None)
                                .map(|_| ())
                                .map_err(|e| LoadError::invalid(path, d.label(), e))
                        }
                        ColumnDataType::Logical => d
                            .hdu
                            .read_col::<bool>(&mut f, name)
                            .map(|_| ())
                            .map_err(|e| LoadError::invalid(path, d.label(), e)),
                        ColumnDataType::Bit => Ok(()),
                        _ => check_rows(&mut f, path, d).and_then(|()| {
                            d.hdu
                                .read_col::<f64>(&mut f, name)
                                .map(|_| ())
                                .map_err(|e| LoadError::invalid(path, d.label(), e))
                        }),
                    })
                    .find_map(Result::err)
                    .map_or(Ok(()), Err)
            } else {
                Ok(())
            };
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// Run a reader, turning an unexpected panic inside it (or inside the FITS library) into a
/// [`LoadErrorKind::ReaderBug`] error that names the file: a
/// safety net for users. Readers return errors for every case they know, so a panic reaching
/// this guard is a bug, and the fuzz tests count it as a failure. The panic is also counted
/// process-wide ([`guarded_panics`]).
pub(crate) fn guard<T>(
    path: &Path,
    read: impl FnOnce() -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
        Ok(r) => r,
        Err(payload) => {
            GUARDED_PANICS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let panic = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(LoadError::new(
                path,
                LoadErrorKind::ReaderBug {
                    what: "the FITS file".into(),
                    panic,
                },
            ))
        }
    }
}

/// Panics caught by [`guard`] since the process started.
pub(crate) static GUARDED_PANICS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// How many reader panics the FITS guard has caught in this process: each one is a bug (see
/// [`LoadErrorKind::ReaderBug`]). The fuzz tests check it stays 0.
#[must_use]
pub fn guarded_panics() -> usize {
    GUARDED_PANICS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Run `read` behind the readers' panic guard, as every FITS reader runs: a panic inside becomes
/// a [`LoadErrorKind::ReaderBug`] error naming `path` (and is counted by [`guarded_panics`]).
/// Public so that tests can show a panic behind the guard is seen.
pub fn run_guarded<T>(
    path: &Path,
    read: impl FnOnce() -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    guard(path, read)
}
