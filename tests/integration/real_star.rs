//! The real 3-visit APOGEE star (2M00005143+5615568, three DR13 apVisit files and the pipeline's
//! apStar) for the tests that must hold on real data. It is read from
//! `../shared/data/apogee_2M00005143+5615568/` beside the repository and never copied into it.
//! Where the folder is absent the tests say so and skip, except under `CI=true`, where its
//! absence is a failure (so CI can never pass without running them).

use std::path::PathBuf;

/// The star's folder name under `../shared/data/`.
pub const STAR: &str = "apogee_2M00005143+5615568";

/// The star's folder, or `None` (with a message) when it is absent outside CI.
///
/// # Panics
/// Under `CI=true` when the folder is absent.
pub fn dir() -> Option<PathBuf> {
    super::shared::data(STAR, "the real APOGEE star")
}

/// The star's three apVisit files, in name order (the apStar beside them is not an input).
pub fn visit_files() -> Option<Vec<PathBuf>> {
    let d = dir()?;
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .expect("read the star's folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("apVisit-") && n.ends_with(".fits"))
        })
        .collect();
    v.sort();
    assert_eq!(v.len(), 3, "expected 3 apVisit files in {}", d.display());
    Some(v)
}

/// The star's visits as one dataset, as `frizzview combine apVisit-*.fits` reads them.
pub fn dataset() -> Option<frizzview::model::Dataset> {
    let files = visit_files()?;
    Some(
        frizzview::io::load_paths(&files, &frizzview::io::LoadOptions::default())
            .expect("load the real star"),
    )
}

/// The star's three visit files' names and the pipeline's apStar of them.
pub const VISITS: [&str; 3] = [
    "apVisit-r6-5094-55874-088.fits",
    "apVisit-r6-5094-56643-088.fits",
    "apVisit-r6-5094-56651-082.fits",
];
/// The pipeline's combination of the three visits.
pub const APSTAR: &str = "apStar-r6-2M00005143+5615568.fits";

/// [`dir`], naming the test in the skip message, and checking that every file is there.
pub fn real_star_dir(test: &str) -> Option<PathBuf> {
    let d = dir()?;
    let complete = d.join(APSTAR).is_file() && VISITS.iter().all(|v| d.join(v).is_file());
    assert!(complete, "{test}: {} lacks some of its files", d.display());
    Some(d)
}

/// The files of the real star.
pub struct RealStar {
    /// The three apVisit files, in MJD order.
    pub visits: Vec<PathBuf>,
    /// The pipeline's apStar of them.
    pub apstar: PathBuf,
}

/// The star's files (every one checked), or `None` (with a message) when absent outside CI.
///
/// # Panics
/// Under `CI=true` when the folder is absent, and anywhere when it lacks some of its files.
pub fn star(test: &str) -> Option<RealStar> {
    let d = real_star_dir(test)?;
    Some(RealStar {
        visits: VISITS.iter().map(|v| d.join(v)).collect(),
        apstar: d.join(APSTAR),
    })
}
