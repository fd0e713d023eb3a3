//! Where the tests find the real SDSS files that may not be committed (see ../shared/data/README).
//!
//! The real 3-visit APOGEE star lives in `../shared/data/apogee_2M00005143+5615568/` relative to
//! the repository root (CI has `../shared` beside its clone). Tests that need it call
//! [`real_apogee_star`]: where the folder is absent it prints a message and returns `None` (the
//! test then returns early), except under `CI=true`, where the absence is a failure so that CI can
//! never pass without running them.

use std::path::PathBuf;

/// The folder of the real APOGEE star.
pub const REAL_STAR: &str = "apogee_2M00005143+5615568";

/// The real APOGEE star's folder and files, or `None` (with a message) when absent outside CI.
///
/// # Panics
/// Under `CI=true` when the folder or one of its files is missing.
pub fn real_apogee_star() -> Option<RealStar> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("data")
        .join(REAL_STAR);
    let visits: Vec<PathBuf> = [
        "apVisit-r6-5094-55874-088.fits",
        "apVisit-r6-5094-56643-088.fits",
        "apVisit-r6-5094-56651-082.fits",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    let apstar = dir.join("apStar-r6-2M00005143+5615568.fits");
    let present = visits.iter().all(|p| p.is_file()) && apstar.is_file();
    if !present {
        let msg = format!(
            "the real APOGEE star is not at {} (CI has ../shared beside its clone)",
            dir.display()
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{msg}: under CI=true this is a failure"
        );
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    Some(RealStar { visits, apstar })
}

/// The files of the real star.
pub struct RealStar {
    /// The three apVisit files, in MJD order.
    pub visits: Vec<PathBuf>,
    /// The pipeline's apStar of them.
    pub apstar: PathBuf,
}
