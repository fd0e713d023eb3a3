//! Built-in demos: an APOGEE-like synthetic star (default), the real BOSS star, and a real
//! APOGEE star whose files are fetched (never shipped: see `fetch_ui`).

use crate::model::Dataset;
use crate::synth::apogee::{ApogeeParams, generate};
use std::path::PathBuf;

/// Which demo to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Demo {
    /// Synthetic APOGEE-like star, 12 visits, deep tellurics, a few outliers.
    Apogee,
    /// The real SDSS BOSS star with 7 exposures (assets/demo).
    Boss,
    /// The real APOGEE star 2M00005143+5615568 (SDSS DR13, 3 visits and the pipeline's apStar),
    /// from a local SDSS mirror, the fetch cache, or the SDSS archive.
    ApogeeReal,
}

impl Demo {
    /// Parse the `--demo` value.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "apogee" | "synthetic" => Ok(Self::Apogee),
            "boss" => Ok(Self::Boss),
            "apogee-real" | "real-apogee" | "apogee_real" => Ok(Self::ApogeeReal),
            other => {
                anyhow::bail!("unknown demo '{other}': use 'apogee', 'boss' or 'apogee-real'")
            }
        }
    }

    /// The `--demo` value.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Apogee => "apogee",
            Self::Boss => "boss",
            Self::ApogeeReal => "apogee-real",
        }
    }

    /// Build the demo dataset (the real APOGEE star: found or downloaded now, blocking; the
    /// window does that in the background instead).
    pub fn load(self) -> anyhow::Result<Dataset> {
        match self {
            Self::Apogee => apogee_demo(12),
            Self::Boss => super::read::load_paths(&[boss_demo_path()?]),
            Self::ApogeeReal => {
                let cfg = demo_config(&crate::fetch::FetchConfig::from_env());
                let q = crate::fetch::star::real_demo_query();
                let t = crate::fetch::Templates::from_env()?;
                let files = crate::fetch::star::fetch_star(&q, &t, &cfg, &mut |_| {})?;
                let (mut data, _, _) = crate::fetch::star::load_star(&files)?;
                data.name = format!(
                    "{} (real SDSS DR13, {} visits)",
                    crate::fetch::star::REAL_DEMO_ID,
                    data.visits.len()
                );
                Ok(data)
            }
        }
    }
}

/// The BOSS demo file, relative to the repository or to an installed binary.
const BOSS_DEMO: &str = "assets/demo/spec-3586-55181-0500.fits";

/// Where the BOSS demo file is: in the source tree this binary was built from, or in an
/// `assets/demo` folder next to the executable (or one level up, for `target/<profile>/`).
pub fn boss_demo_path() -> anyhow::Result<PathBuf> {
    let mut tried = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(BOSS_DEMO)];
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            tried.push(dir.join(BOSS_DEMO));
        }
    }
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "the BOSS demo file is missing; looked for {}",
        list.join(", ")
    )
}

/// The synthetic APOGEE-like demo star: `n_visits` visits with deep tellurics, sky lines, cosmic
/// rays, persistence and a few unflagged outliers.
pub fn apogee_demo(n_visits: usize) -> anyhow::Result<Dataset> {
    let params = ApogeeParams {
        n_visits,
        outlier_fraction: 5e-4,
        velocity_error_kms: 0.3,
        ..ApogeeParams::default()
    };
    let mut data =
        generate(&params).map_err(|e| anyhow::anyhow!("cannot generate the demo star: {e}"))?;
    data.name = format!("synthetic APOGEE-like star, {n_visits} visits (demo)");
    Ok(data)
}

/// The settings of the real demo's fetch: short timeouts, so that without a network the
/// synthetic star appears within seconds.
#[must_use]
pub fn demo_config(base: &crate::fetch::FetchConfig) -> crate::fetch::FetchConfig {
    crate::fetch::FetchConfig {
        connect_timeout: base.connect_timeout.min(std::time::Duration::from_secs(3)),
        read_timeout: base.read_timeout.min(std::time::Duration::from_secs(20)),
        retries: base.retries.min(1),
        ..base.clone()
    }
}
