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

/// The memory behind a FITS file opened with [`open_memory`]. cfitsio keeps the *addresses* of
/// `ptr` and `size` (its memory driver may reallocate through them), so they live in a box that
/// does not move, and the bytes are never touched while the file is open.
struct MemoryBuffer {
    ptr: *mut std::ffi::c_void,
    size: usize,
    _bytes: Vec<u8>,
}

/// A FITS file open for reading: from disk, or from bytes in memory (a decompressed `.gz`).
/// Dereferences to `fitsio`'s `FitsFile`; the file is closed before its memory is freed.
pub(crate) struct OpenFits {
    // Field order matters: `file` is dropped (closed) before `memory`.
    file: FitsFile,
    memory: Option<Box<MemoryBuffer>>,
}

thread_local! {
    /// (cfitsio file pointer, content length) of the in-memory files open on this thread, so that
    /// helpers holding only a `&mut FitsFile` can bound what the content may hold (`FitsFile` is
    /// not `Send`: a file never leaves its thread).
    static MEMORY_FILES: std::cell::RefCell<Vec<(usize, u64)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The content length of `f` if it is an in-memory file opened by [`open_memory`] on this thread.
pub(crate) fn memory_len(f: &mut FitsFile) -> Option<u64> {
    // SAFETY: `as_raw` only returns the pointer `f` owns; it is compared, never dereferenced.
    let key = unsafe { f.as_raw() } as usize;
    MEMORY_FILES.with(|m| m.borrow().iter().find(|e| e.0 == key).map(|e| e.1))
}

impl Drop for OpenFits {
    fn drop(&mut self) {
        if self.memory.is_some() {
            // SAFETY: as in `memory_len`.
            let key = unsafe { self.file.as_raw() } as usize;
            MEMORY_FILES.with(|m| m.borrow_mut().retain(|e| e.0 != key));
        }
    }
}

impl std::ops::Deref for OpenFits {
    type Target = FitsFile;
    fn deref(&self) -> &FitsFile {
        &self.file
    }
}

impl std::ops::DerefMut for OpenFits {
    fn deref_mut(&mut self) -> &mut FitsFile {
        &mut self.file
    }
}

/// Open an existing FITS file read-only by its literal path (see [`open_readonly`]).
pub(crate) fn open_disk(path: &Path) -> Result<OpenFits, Error> {
    Ok(OpenFits {
        file: open_readonly(path)?,
        memory: None,
    })
}

/// Open FITS content held in memory read-only (cfitsio's `fits_open_memfile`).
pub(crate) fn open_memory(bytes: Vec<u8>) -> Result<OpenFits, Error> {
    let len = bytes.len() as u64;
    let mut memory = Box::new(MemoryBuffer {
        ptr: std::ptr::null_mut(),
        size: bytes.len(),
        _bytes: bytes,
    });
    memory.ptr = memory._bytes.as_mut_ptr().cast();
    let name = CString::new("memory.fits")?;
    let mut fptr = std::ptr::null_mut();
    let mut status = 0;
    // SAFETY: `name` is NUL-terminated and outlives the call. `memory.ptr` and `memory.size`
    // point into a heap box that outlives the returned file (`OpenFits` drops the file first)
    // and describe `memory._bytes`, which is not touched while the file is open. With no
    // realloc function and READONLY mode cfitsio never writes or resizes the buffer; its
    // `memkeep` driver does not free it on close.
    unsafe {
        fitsio::sys::ffomem(
            &mut fptr,
            name.as_ptr(),
            0,
            &mut memory.ptr,
            &mut memory.size,
            0,
            None,
            &mut status,
        );
    }
    check_status(status)?;
    let mut file = adopt(fptr, FileOpenMode::READONLY)?;
    // SAFETY: as in `memory_len`.
    let key = unsafe { file.as_raw() } as usize;
    MEMORY_FILES.with(|m| m.borrow_mut().push((key, len)));
    Ok(OpenFits {
        file,
        memory: Some(memory),
    })
}

/// Read rows `first..first + n` (all rows from `first` when `n` is `None`) of the string column
/// `name` of `hdu`, trailing blanks removed as cfitsio does.
///
/// `fitsio`'s own `read_col::<String>` (0.21) gives cfitsio one buffer per row of exactly the
/// column's display width, and cfitsio writes that many characters *and* a terminating NUL: one
/// byte past every buffer. Where the allocator has no slack (a width of 24, `STARFLAGS` of a real
/// DR13 apVisit's visit table) that byte lands on the heap's bookkeeping and the process aborts
/// later ("malloc(): invalid size"), or silently corrupts memory. Here each buffer holds the
/// column's repeat count or its display width, whichever is larger, plus the NUL and one spare.
pub(crate) fn read_str_col(
    f: &mut FitsFile,
    hdu: &fitsio::hdu::FitsHdu,
    name: &str,
    first: usize,
    n: Option<usize>,
) -> Result<Vec<String>, Error> {
    use std::os::raw::{c_char, c_int};
    let cname = CString::new(name)?;
    let hdunum = c_int::try_from(hdu.number + 1)
        .map_err(|_| Error::Message(format!("HDU number {} is out of range", hdu.number)))?;
    let mut status = 0;
    let (mut exttype, mut colnum, mut typecode, mut dispw) = (0, 0, 0, 0);
    let (mut repeat, mut width, mut nrows) = (0_i64, 0_i64, 0_i64);
    // SAFETY: `f` is an open cfitsio file that `FitsFile` owns; every out-pointer is a valid local;
    // `cname` is NUL-terminated and outlives the calls. Each call returns at once on status != 0.
    unsafe {
        let fptr = f.as_raw();
        fitsio::sys::ffmahd(fptr, hdunum, &mut exttype, &mut status);
        fitsio::sys::ffgcno(fptr, 0, cname.as_ptr().cast_mut(), &mut colnum, &mut status);
        fitsio::sys::ffgtclll(
            fptr,
            colnum,
            &mut typecode,
            &mut repeat,
            &mut width,
            &mut status,
        );
        fitsio::sys::ffgcdw(fptr, colnum, &mut dispw, &mut status);
        fitsio::sys::ffgnrwll(fptr, &mut nrows, &mut status);
    }
    check_status(status)?;
    let nrows = usize::try_from(nrows).unwrap_or(0);
    let n = n.unwrap_or_else(|| nrows.saturating_sub(first));
    if first.saturating_add(n) > nrows {
        return Err(Error::Message(format!(
            "rows {first}..{} of column '{name}' asked for, the table has {nrows}",
            first.saturating_add(n)
        )));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let len = usize::try_from(repeat.max(width).max(i64::from(dispw)).max(1))
        .unwrap_or(1)
        .saturating_add(2);
    if len.saturating_mul(n) > 1 << 30 {
        return Err(Error::Message(format!(
            "column '{name}': {n} strings of {len} bytes is more than this reader allows"
        )));
    }
    let mut bufs: Vec<Vec<c_char>> = vec![vec![0; len]; n];
    let mut ptrs: Vec<*mut c_char> = bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
    let mut nulval: [c_char; 1] = [0];
    let mut anynul = 0;
    let first_row = i64::try_from(first + 1)
        .map_err(|_| Error::Message(format!("row {first} is out of range")))?;
    let count = i64::try_from(n).map_err(|_| Error::Message(format!("{n} rows is too many")))?;
    // SAFETY: `ptrs` holds `n` pointers to buffers of `len` bytes, each larger than any string
    // cfitsio writes for this column (its repeat count, or display width, plus the NUL); the
    // buffers outlive the call and nothing else aliases them.
    unsafe {
        fitsio::sys::ffgcvs(
            f.as_raw(),
            colnum,
            first_row,
            1,
            count,
            nulval.as_mut_ptr(),
            ptrs.as_mut_ptr(),
            &mut anynul,
            &mut status,
        );
    }
    check_status(status)?;
    Ok(bufs
        .iter()
        .map(|b| {
            let bytes: Vec<u8> = b
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).trim_end().to_owned()
        })
        .collect())
}

/// Append an image HDU `name` of `data_type` and `dims` (slowest first) holding `data`: the one
/// image-HDU writer of the exports and the test fixtures (each maps the error its own way).
///
/// # Errors
/// The FITS library's, creating the HDU or writing its data.
pub(crate) fn write_image_hdu<T: fitsio::images::WriteImage>(
    f: &mut fitsio::FitsFile,
    name: &str,
    data_type: fitsio::images::ImageType,
    dims: &[usize],
    data: &[T],
) -> Result<fitsio::hdu::FitsHdu, fitsio::errors::Error> {
    let h = f.create_image(
        name,
        &fitsio::images::ImageDescription {
            data_type,
            dimensions: dims,
        },
    )?;
    h.write_image(f, data)?;
    Ok(h)
}
