//! gzip-compressed inputs (`.fits.gz`, or any FITS input gzipped).
//!
//! A file is taken to be gzip by its first two bytes (1f 8b, RFC 1952 §2.3.1), whatever its name.
//! Its content is decompressed into memory, at most [`GZIP_MAX_BYTES`], and checked and read from
//! there exactly as a plain file is: every FITS reader opens its file through `fits::open`, which
//! calls [`content`] here, so a new reader gets `.gz` support without doing anything.
//! Concatenated gzip members (what `cat a.gz b.gz` makes) are one stream, as for `gunzip`.

use std::io::Read;
use std::path::Path;

use crate::io::error::LoadError;

/// The most bytes a gzip-compressed input may inflate to. The largest survey files frizzview
/// reads are far smaller (an apStar or mwmVisit file of 1000 visits on the 8575-pixel grid holds
/// about 250 MB); an uncompressed file has no such limit.
pub const GZIP_MAX_BYTES: u64 = 512 << 20;

/// True when `head` starts with the gzip magic bytes.
#[must_use]
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// True when the file at `path` starts with the gzip magic bytes.
pub(crate) fn file_is_gzip(path: &Path) -> Result<bool, LoadError> {
    let mut f = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let mut head = [0u8; 2];
    let n = super::layout::read_full(&mut f, &mut head).map_err(|e| LoadError::io(path, e))?;
    Ok(is_gzip(&head[..n]))
}

/// Why a gzip stream could not be read, in words for the user.
fn stream_error(path: &Path, e: &std::io::Error) -> LoadError {
    let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "the gzip stream ends early (a truncated download?)".to_owned()
    } else {
        format!("the gzip stream is corrupt ({e})")
    };
    LoadError::invalid(path, "the gzip-compressed file", why)
}

/// Decompress up to `limit` bytes (and one more, to tell a longer stream) from the gzip file.
fn inflate(path: &Path, limit: u64, whole: bool) -> Result<Vec<u8>, LoadError> {
    let file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)).take(limit + 1);
    let mut out = Vec::new();
    if whole {
        dec.read_to_end(&mut out)
            .map_err(|e| stream_error(path, &e))?;
    } else {
        out.resize(usize::try_from(limit).unwrap_or(usize::MAX), 0);
        let n = super::layout::read_full(&mut dec, &mut out).map_err(|e| stream_error(path, &e))?;
        out.truncate(n);
    }
    Ok(out)
}

/// The first `n` bytes of the file's content: decompressed if it is gzip, as stored otherwise.
pub(crate) fn head(path: &Path, n: usize) -> Result<Vec<u8>, LoadError> {
    if file_is_gzip(path)? {
        return inflate(path, n as u64, false);
    }
    let mut f = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let mut head = vec![0u8; n];
    let got = super::layout::read_full(&mut f, &mut head).map_err(|e| LoadError::io(path, e))?;
    head.truncate(got);
    Ok(head)
}

/// The whole decompressed content of a gzip file, or `None` when the file is not gzip (read it
/// from disk). Refused, naming the file and the limit, past [`GZIP_MAX_BYTES`]; a truncated or
/// corrupt stream is refused too.
pub(crate) fn content(path: &Path) -> Result<Option<Vec<u8>>, LoadError> {
    content_limited(path, GZIP_MAX_BYTES)
}

/// [`content`] with another limit: the decompressed bytes of a gzip file, `None` for a file that
/// is not gzip.
pub fn content_limited(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, LoadError> {
    if !file_is_gzip(path)? {
        return Ok(None);
    }
    let out = inflate(path, limit, true)?;
    if out.len() as u64 > limit {
        return Err(LoadError::invalid(
            path,
            "the gzip-compressed file",
            format!(
                "inflates to more than {limit} bytes, the limit for compressed inputs \
                 (decompress it with gunzip and open the plain file)"
            ),
        ));
    }
    Ok(Some(out))
}

/// The file stem without a `.gz` suffix: "apVisit-...-128" for `apVisit-...-128.fits.gz`.
pub(crate) fn stem(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let name = match name.len().checked_sub(3) {
        Some(k) if name.is_char_boundary(k) && name[k..].eq_ignore_ascii_case(".gz") => {
            name[..k].to_owned()
        }
        _ => name,
    };
    let stem = Path::new(&name).file_stem()?.to_string_lossy().into_owned();
    Some(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_drop_the_gz_suffix() {
        assert_eq!(
            stem(Path::new("/a/apVisit-1.fits.gz")).as_deref(),
            Some("apVisit-1")
        );
        assert_eq!(stem(Path::new("spec-1.FITS.GZ")).as_deref(), Some("spec-1"));
        assert_eq!(stem(Path::new("b.fits")).as_deref(), Some("b"));
        assert!(is_gzip(&[0x1f, 0x8b, 8]) && !is_gzip(b"SIMPLE  ="));
    }
}
