//! Opening and creating FITS files by their literal path.
//!
//! `fitsio`'s `FitsFile::open` and `FitsFile::create` hand the name to cfitsio's extended file-name
//! parser, which reads `(`, `[`, `+`, `!` and `-` as syntax: a browser download named
//! `spec (1).fits` fails with "parse error in input file URL", and an output folder named `run[2]`
//! cannot be written. cfitsio's disk-file entry points (`fits_open_diskfile`,
//! `fits_create_diskfile`) take the name as it is. They are not wrapped by `fitsio`, so this is the
//! one module of the crate with `unsafe` code: two FFI calls and the hand-over of the pointer they
//! return to `fitsio`'s owning `FitsFile`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::path::Path;

use fitsio::errors::{Error, check_status};
use fitsio::{FileOpenMode, FitsFile};

/// The path as a C string; fails on a path holding NUL (impossible on disk) or, off Unix, on a
/// path that is not Unicode.
fn c_path(path: &Path) -> Result<CString, Error> {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path
        .to_str()
        .ok_or_else(|| Error::Message(format!("{} is not a Unicode path", path.display())))?
        .as_bytes()
        .to_vec();
    Ok(CString::new(bytes)?)
}

/// Wrap a pointer returned by cfitsio with status 0.
fn adopt(fptr: *mut fitsio::sys::fitsfile, mode: FileOpenMode) -> Result<FitsFile, Error> {
    if fptr.is_null() {
        return Err(Error::NullPointer);
    }
    // SAFETY: `fptr` was just returned by cfitsio's own open/create call with status 0, so it is a
    // valid, open `fitsfile` that nothing else owns; `FitsFile` closes it exactly once on drop.
    unsafe { FitsFile::from_raw(fptr, mode) }
}

/// Open an existing FITS file read-only, taking its name literally.
pub(crate) fn open_readonly(path: &Path) -> Result<FitsFile, Error> {
    let name = c_path(path)?;
    let mut fptr = std::ptr::null_mut();
    let mut status = 0;
    // SAFETY: `name` is a NUL-terminated string that outlives the call; `fptr` and `status` are
    // valid out-pointers to locals. cfitsio reads the name and writes only the two out-pointers.
    unsafe {
        fitsio::sys::ffdkopn(&mut fptr, name.as_ptr(), 0, &mut status);
    }
    check_status(status)?;
    adopt(fptr, FileOpenMode::READONLY)
}

/// Create a new FITS file (which must not exist) with an empty primary HDU, taking its name
/// literally.
pub(crate) fn create(path: &Path) -> Result<FitsFile, Error> {
    let name = c_path(path)?;
    let mut fptr = std::ptr::null_mut();
    let mut status = 0;
    // SAFETY: as in `open_readonly`; `ffdkinit` creates the file and writes the two out-pointers.
    unsafe {
        fitsio::sys::ffdkinit(&mut fptr, name.as_ptr(), &mut status);
    }
    check_status(status)?;
    let mut f = adopt(fptr, FileOpenMode::READWRITE)?;
    // The same empty primary HDU as `fitsio`'s `NewFitsFile::open` writes (BITPIX 8, NAXIS 0).
    let mut status = 0;
    // SAFETY: `as_raw` lends the open file owned by `f` for this call only; a null axis array is
    // allowed with NAXIS 0.
    unsafe {
        fitsio::sys::ffphps(f.as_raw(), 8, 0, std::ptr::null_mut(), &mut status);
    }
    check_status(status)?;
    Ok(f)
}
