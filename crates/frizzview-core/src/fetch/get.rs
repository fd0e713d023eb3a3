//! Getting one file: the mirror, else the cache, else a download.

use std::path::PathBuf;

use super::config::{Event, FetchConfig, Fetched, FileRequest, Origin, Progress};
use super::download::{self, check_fits};
use super::error::FetchError;

/// Get one SAS file: from the mirror, else the cache (no request made), else download it into
/// the cache.
pub fn get_file(
    request: &FileRequest,
    cfg: &FetchConfig,
    progress: Progress<'_>,
) -> Result<Fetched, FetchError> {
    let done = |path: PathBuf, origin: Origin, progress: Progress<'_>| {
        progress(Event::Done {
            path: &path,
            origin,
        });
        Ok(Fetched {
            request: request.clone(),
            path,
            origin,
        })
    };
    let rel = safe_relative(&request.rel)?;
    if let Some(m) = &cfg.mirror {
        let p = m.join(&rel);
        if p.is_file() {
            match check_fits(&p) {
                Ok(()) => return done(p, Origin::Mirror, progress),
                Err(why) => log::warn!(
                    "{} in the local mirror is not a valid FITS file ({why}); trying the cache",
                    p.display()
                ),
            }
        }
    }
    let target = cfg.cache_dir.join(&rel);
    if target.is_file() {
        match check_fits(&target) {
            Ok(()) => return done(target, Origin::Cache, progress),
            Err(why) => {
                log::warn!(
                    "{} in the cache is not a valid FITS file ({why}); fetching it again",
                    target.display()
                );
                std::fs::remove_file(&target).map_err(|e| FetchError::io(&target, e))?;
            }
        }
    }
    if cfg.offline {
        return Err(FetchError::NotLocal {
            rel: request.rel.clone(),
            mirror: cfg
                .mirror
                .as_ref()
                .map_or_else(|| "none".to_owned(), |m| m.display().to_string()),
            cache: cfg.cache_dir.display().to_string(),
        });
    }
    let url = cfg.url(&request.rel);
    let (bytes, resumed_from) = download::download(&url, &target, cfg, progress)?;
    done(
        target,
        Origin::Downloaded {
            bytes,
            resumed_from,
        },
        progress,
    )
}

/// `rel` as a relative path without `..`, absolute or empty components (a template or an
/// allVisit value must not reach outside the cache).
fn safe_relative(rel: &str) -> Result<PathBuf, FetchError> {
    let mut out = PathBuf::new();
    for part in rel.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if part == ".." || part.contains('\\') || part.contains('\0') {
            return Err(FetchError::Template(format!(
                "the path '{rel}' leaves the archive tree ('{part}')"
            )));
        }
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        return Err(FetchError::Template(format!("the path '{rel}' is empty")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_tree() {
        assert!(safe_relative("dr17/../../etc/passwd").is_err());
        assert!(safe_relative("").is_err());
        assert_eq!(
            safe_relative("/dr13//a/./b.fits").ok(),
            Some(PathBuf::from("dr13/a/b.fits"))
        );
    }

    #[test]
    fn urls_join_with_one_slash() {
        let c = FetchConfig {
            base_url: "http://127.0.0.1:9/sas/".into(),
            ..FetchConfig::default()
        };
        assert_eq!(c.url("/dr13/x.fits"), "http://127.0.0.1:9/sas/dr13/x.fits");
    }
}
