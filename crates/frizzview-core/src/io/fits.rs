//! Small, defensive helpers over `fitsio` for the readers. `FitsFile` is `!Send`: these take
//! `&mut FitsFile` and never store it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use fitsio::FitsFile;
use fitsio::hdu::{FitsHdu, HduInfo};
use fitsio::tables::ColumnDataType;

use super::error::LoadError;

pub(crate) use super::fits_disk::OpenFits;

/// Open a FITS file for reading: the one entry point of every FITS reader.
///
/// A gzip-compressed file (by its magic bytes, whatever its name) is decompressed into memory,
/// at most [`super::gz::GZIP_MAX_BYTES`], and opened from there. Either way the HDUs are first
/// checked to be sized consistently and to lie inside the content (a corrupt sizing card can
/// make cfitsio loop forever; see `fits_layout`). Errors name `path`.
pub(crate) fn open(path: &Path) -> Result<OpenFits, LoadError> {
    sandboxed(path)?;
    open_here(path)
}

/// [`open`] without the sandbox: what the sandbox's own check runs.
fn open_here(path: &Path) -> Result<OpenFits, LoadError> {
    let fe = |e| LoadError::invalid(path, "the FITS file", e);
    match super::gz::content(path)? {
        Some(bytes) => {
            super::fits_layout::check_bytes(path, &bytes)?;
            super::fits_disk::open_memory(bytes).map_err(fe)
        }
        None => {
            super::fits_layout::check(path)?;
            super::fits_disk::open_disk(path).map_err(fe)
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
                            super::fits_disk::read_str_col(&mut f, &d.hdu, name, 0, None)
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

/// A label for HDU `i` with its EXTNAME, e.g. "HDU 4 (WAVELENGTH)".
pub(crate) fn label(i: usize, name: &str) -> String {
    if name.is_empty() {
        format!("HDU {i}")
    } else {
        format!("HDU {i} ({name})")
    }
}

/// A table column: name, type, repeat count.
pub(crate) type Column = (String, ColumnDataType, usize);

/// One HDU's number, EXTNAME and info.
pub(crate) struct HduDesc {
    pub index: usize,
    pub name: String,
    pub hdu: FitsHdu,
}

impl HduDesc {
    pub(crate) fn label(&self) -> String {
        label(self.index, &self.name)
    }

    /// Image shape (C order), if an image.
    pub(crate) fn image_shape(&self) -> Option<&[usize]> {
        match &self.hdu.info {
            HduInfo::ImageInfo { shape, .. } => Some(shape),
            _ => None,
        }
    }

    /// Columns (name, type, repeat) and the number of rows, if a table.
    pub(crate) fn table(&self) -> Option<(Vec<Column>, usize)> {
        match &self.hdu.info {
            HduInfo::TableInfo {
                column_descriptions,
                num_rows,
            } => Some((
                column_descriptions
                    .iter()
                    .map(|c| (c.name.clone(), c.data_type.typ, c.data_type.repeat))
                    .collect(),
                *num_rows,
            )),
            _ => None,
        }
    }
}

/// Every HDU of the file.
pub(crate) fn hdus(f: &mut FitsFile, path: &Path) -> Result<Vec<HduDesc>, LoadError> {
    let n = f
        .num_hdus()
        .map_err(|e| LoadError::invalid(path, "the FITS file", e))?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let hdu = f
            .hdu(i)
            .map_err(|e| LoadError::invalid(path, label(i, ""), e))?;
        let name = hdu.name(f).unwrap_or_default().trim().to_owned();
        out.push(HduDesc {
            index: i,
            name,
            hdu,
        });
    }
    Ok(out)
}

/// A header value as f64 (numbers, or strings holding numbers), if present.
pub(crate) fn key_f64(f: &mut FitsFile, hdu: &FitsHdu, key: &str) -> Option<f64> {
    if let Ok(v) = hdu.read_key::<f64>(f, key) {
        return Some(v);
    }
    hdu.read_key::<String>(f, key)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// A header value as text, if present.
pub(crate) fn key_string(f: &mut FitsFile, hdu: &FitsHdu, key: &str) -> Option<String> {
    if let Ok(s) = hdu.read_key::<String>(f, key) {
        return Some(s.trim().to_owned());
    }
    if let Ok(v) = hdu.read_key::<i64>(f, key) {
        return Some(v.to_string());
    }
    hdu.read_key::<f64>(f, key).ok().map(|v| v.to_string())
}

/// A whole image as f64 with its shape.
pub(crate) fn image_f64(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
) -> Result<(Vec<usize>, Vec<f64>), LoadError> {
    let Some(shape) = d.image_shape() else {
        return Err(LoadError::invalid(
            path,
            d.label(),
            "is a table, expected an image",
        ));
    };
    let shape = shape.to_vec();
    if shape.is_empty() || shape.contains(&0) {
        return Err(LoadError::invalid(path, d.label(), "is an empty image"));
    }
    // A corrupt NAXISn must not make us allocate more than the file could hold.
    let n_claimed = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .unwrap_or(usize::MAX);
    if n_claimed > file_len(f, path) {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("declares {shape:?} pixels, more than the file can hold"),
        ));
    }
    let v: Vec<f64> = d
        .hdu
        .read_image(f)
        .map_err(|e| LoadError::invalid(path, d.label(), e))?;
    let n: usize = shape.iter().product();
    if v.len() != n {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("holds {} values for shape {shape:?}", v.len()),
        ));
    }
    Ok((shape, v))
}

/// Bytes of FITS content: the decompressed size of an in-memory file, else the file size (0 if
/// unknown).
fn file_len(f: &mut FitsFile, path: &Path) -> usize {
    let len = super::fits_disk::memory_len(f)
        .unwrap_or_else(|| std::fs::metadata(path).map_or(0, |m| m.len()));
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Refuse tables that claim more rows than the file could hold (a corrupt NAXIS2).
pub(crate) fn check_rows(f: &mut FitsFile, path: &Path, d: &HduDesc) -> Result<(), LoadError> {
    if let Some((_, rows)) = d.table()
        && rows > file_len(f, path)
    {
        return Err(LoadError::invalid(
            path,
            d.label(),
            format!("declares {rows} rows, more than the file can hold"),
        ));
    }
    Ok(())
}

/// A numeric table column as f64 (scalar columns only).
pub(crate) fn column_f64(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
    col: &str,
) -> Result<Vec<f64>, LoadError> {
    let what = || format!("column '{col}' of {}", d.label());
    check_rows(f, path, d)?;
    if d.table().is_none() {
        return Err(LoadError::invalid(
            path,
            what(),
            "cannot be read: the HDU is an image, not a table",
        ));
    }
    if let Some((cols, _)) = d.table()
        && let Some((_, typ, repeat)) = cols.iter().find(|c| c.0 == col)
    {
        if *repeat != 1 {
            return Err(LoadError::invalid(
                path,
                what(),
                format!("is a vector column (repeat {repeat}); only one value per row is read"),
            ));
        }
        if matches!(typ, ColumnDataType::Text | ColumnDataType::String) {
            return Err(LoadError::invalid(
                path,
                what(),
                "holds text, expected numbers",
            ));
        }
    }
    d.hdu
        .read_col::<f64>(f, col)
        .map_err(|e| LoadError::invalid(path, what(), e))
}

/// An integer (mask) column as u64; negative 32-bit values keep their bit pattern.
pub(crate) fn column_bits(
    f: &mut FitsFile,
    path: &Path,
    d: &HduDesc,
    col: &str,
) -> Result<Vec<u64>, LoadError> {
    let what = || format!("column '{col}' of {}", d.label());
    check_rows(f, path, d)?;
    if d.table().is_none() {
        return Err(LoadError::invalid(
            path,
            what(),
            "cannot be read: the HDU is an image, not a table",
        ));
    }
    let typ = d
        .table()
        .and_then(|(cols, _)| cols.into_iter().find(|c| c.0 == col).map(|c| c.1));
    match typ {
        Some(ColumnDataType::LongLong | ColumnDataType::UnsignedLongLong) => {
            // fitsio has no 64-bit column reader; masks above 2^53 are not expected.
            let v = column_f64(f, path, d, col)?;
            Ok(v.iter()
                .map(|&x| if x >= 0.0 { x as u64 } else { 0 })
                .collect())
        }
        Some(ColumnDataType::Float | ColumnDataType::Double) => Err(LoadError::invalid(
            path,
            what(),
            "is floating point, expected an integer bitmask",
        )),
        _ => {
            let v: Vec<i32> = d
                .hdu
                .read_col(f, col)
                .map_err(|e| LoadError::invalid(path, what(), e))?;
            Ok(v.iter().map(|&x| u64::from(x as u32)).collect())
        }
    }
}

/// Run a reader, turning an unexpected panic inside it (or inside the FITS library) into a
/// [`LoadErrorKind::ReaderBug`](super::LoadErrorKind::ReaderBug) error that names the file: a
/// safety net for users. Readers return errors for every case they know, so a panic reaching
/// this guard is a bug, and the fuzz tests count it as a failure. The panic is also counted
/// process-wide ([`super::guarded_panics`]).
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
                super::LoadErrorKind::ReaderBug {
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
