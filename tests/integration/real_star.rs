//! Where the real 3-visit APOGEE star lives: `../shared/data/apogee_2M00005143+5615568/` beside
//! the repository. Its bytes are never committed: tests copy or rewrite them into temporary
//! folders at run time.

use std::path::PathBuf;

/// The star's folder name.
pub const STAR_DIR: &str = "apogee_2M00005143+5615568";
/// Its three visits and the pipeline's apStar.
pub const VISITS: [&str; 3] = [
    "apVisit-r6-5094-55874-088.fits",
    "apVisit-r6-5094-56643-088.fits",
    "apVisit-r6-5094-56651-082.fits",
];
/// The pipeline's combination of the three visits.
pub const APSTAR: &str = "apStar-r6-2M00005143+5615568.fits";

/// The folder of the real star, or `None` (with a message) when it is absent. Under `CI=true`
/// its absence fails the test, so CI cannot pass without running the real-data tests.
pub fn real_star_dir(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("data")
        .join(STAR_DIR);
    if dir.join(APSTAR).is_file() && VISITS.iter().all(|v| dir.join(v).is_file()) {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: the real star is missing at {} (CI=true requires it)",
        dir.display()
    );
    eprintln!(
        "{test}: skipped, the real star is not at {} (../shared/data beside the repository)",
        dir.display()
    );
    None
}
