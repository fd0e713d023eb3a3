//! Resumable HTTP(S) download of one file into the cache.
//!
//! The bytes go to `<target>.part`. When a partial file exists, the request asks for the rest
//! (`Range: bytes=N-`, RFC 9110 §14.2); a `206 Partial Content` answer whose `Content-Range`
//! starts at N is appended, a `200` answer (the server ignored the range) starts over. A transfer
//! that stops early keeps the partial file (so the next call resumes) and is resumed here up to
//! [`FetchConfig::retries`] times. The finished file must pass the structural FITS check before
//! it is renamed to `<target>` (an atomic rename in the same folder); anything else (an HTML
//! error page sent with status 200, a truncated body) is deleted, never cached.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::config::{Event, FetchConfig, Progress};
use super::error::FetchError;

/// The chunk size of reads from the server and of progress events.
const CHUNK: usize = 64 * 1024;

/// Download `url` into `target`; (bytes transferred now, bytes resumed from).
pub fn download(
    url: &str,
    target: &Path,
    cfg: &FetchConfig,
    progress: Progress<'_>,
) -> Result<(u64, u64), FetchError> {
    let dir = target
        .parent()
        .ok_or_else(|| FetchError::io(target, "has no parent folder"))?;
    std::fs::create_dir_all(dir).map_err(|e| FetchError::io(dir, e))?;
    let part = part_path(target);
    let agent = agent(cfg);
    let mut transferred = 0u64;
    let mut attempt = 0u32;
    loop {
        match transfer(&agent, url, &part, progress) {
            Ok(n) => {
                transferred += n;
                break;
            }
            Err(TransferError::Fatal(e)) => return Err(e),
            Err(TransferError::Stopped { got, total, reason }) => {
                transferred += got;
                if attempt >= cfg.retries {
                    return Err(FetchError::Interrupted {
                        url: url.to_owned(),
                        got: file_len(&part),
                        total,
                        reason,
                        part: part.display().to_string(),
                    });
                }
                attempt += 1;
                log::info!("{url}: transfer stopped ({reason}); resuming (attempt {attempt})");
            }
        }
    }
    if let Err(why) = check_fits(&part) {
        let _ = std::fs::remove_file(&part);
        return Err(FetchError::NotFits {
            url: url.to_owned(),
            reason: why,
        });
    }
    let len = file_len(&part);
    std::fs::rename(&part, target).map_err(|e| FetchError::io(target, e))?;
    // Bytes of the file that an earlier call had already fetched (0 when the server ignored the
    // Range request and the transfer started over).
    Ok((transferred, len.saturating_sub(transferred)))
}

/// `<target>.part`.
#[must_use]
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    target.with_file_name(name)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn agent(cfg: &FetchConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_resolve(Some(cfg.connect_timeout))
        .timeout_connect(Some(cfg.connect_timeout))
        .timeout_per_read(Some(cfg.read_timeout))
        .timeout_recv_response(Some(cfg.read_timeout))
        .http_status_as_error(false)
        .user_agent(concat!("frizzview/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

enum TransferError {
    /// Give up (404, not reachable...).
    Fatal(FetchError),
    /// The body stopped early: `got` bytes were appended now.
    Stopped {
        got: u64,
        total: Option<u64>,
        reason: String,
    },
}

/// One request: continue `part` from its current length. Bytes appended now.
fn transfer(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    progress: Progress<'_>,
) -> Result<u64, TransferError> {
    let fatal = TransferError::Fatal;
    let mut have = file_len(part);
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    let resp = req.call().map_err(|e| match e {
        ureq::Error::Timeout(_) | ureq::Error::Io(_) if have > 0 => TransferError::Stopped {
            got: 0,
            total: None,
            reason: e.to_string(),
        },
        other => fatal(FetchError::Unreachable {
            url: url.to_owned(),
            reason: other.to_string(),
        }),
    })?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let length: Option<u64> = header("content-length").and_then(|v| v.trim().parse().ok());
    let append = match status {
        200 => false,
        206 => {
            let range = header("content-range").unwrap_or_default();
            if range_start(&range) == Some(have) {
                true
            } else {
                log::warn!(
                    "{url}: unexpected Content-Range '{range}' for a resume at {have}; starting over"
                );
                // Re-ask without a range next time.
                std::fs::remove_file(part).map_err(|e| fatal(FetchError::io(part, e)))?;
                return Err(TransferError::Stopped {
                    got: 0,
                    total: None,
                    reason: format!("unexpected Content-Range '{range}'"),
                });
            }
        }
        416 if have > 0 => {
            // The partial file is already as long as the file (or longer): check it as it is;
            // the caller's FITS check decides.
            return Ok(0);
        }
        404 | 410 => {
            return Err(fatal(FetchError::NotFound {
                url: url.to_owned(),
            }));
        }
        s => {
            return Err(fatal(FetchError::Status {
                url: url.to_owned(),
                status: s,
            }));
        }
    };
    if !append {
        have = 0;
    }
    let total = length.map(|l| l + have);
    let mut file = if append {
        OpenOptions::new().append(true).open(part)
    } else {
        File::create(part)
    }
    .map_err(|e| fatal(FetchError::io(part, e)))?;
    progress(Event::Bytes { done: have, total });
    let mut reader = resp.into_body().into_reader();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    let stopped = |got: u64, reason: String| TransferError::Stopped { got, total, reason };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(|e| fatal(FetchError::io(part, e)))?;
                return Err(stopped(got, e.to_string()));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| fatal(FetchError::io(part, e)))?;
        got += n as u64;
        progress(Event::Bytes {
            done: have + got,
            total,
        });
    }
    file.sync_all()
        .map_err(|e| fatal(FetchError::io(part, e)))?;
    if let Some(t) = total
        && have + got < t
    {
        return Err(stopped(got, "the connection closed early".to_owned()));
    }
    Ok(got)
}

/// The first byte of a `Content-Range: bytes A-B/N` value.
fn range_start(v: &str) -> Option<u64> {
    let v = v.trim().strip_prefix("bytes")?.trim_start();
    v.split('-').next()?.trim().parse().ok()
}

/// Check that `path` is a structurally sound FITS file (every HDU's header and declared data lie
/// inside the file); the reason when it is not.
pub fn check_fits(path: &Path) -> Result<(), String> {
    crate::io::check_fits_structure(path).map_err(|e| e.kind.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes */200"), None);
        assert_eq!(range_start(""), None);
        assert_eq!(
            part_path(Path::new("/c/a.fits")),
            PathBuf::from("/c/a.fits.part")
        );
    }
}
