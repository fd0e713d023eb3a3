//! Built-in demos: an APOGEE-like synthetic star (default) and the real BOSS star.
//!
//! TODO(D): replace `apogee_placeholder` by `crate::synth::apogee` once it lands on main.

use std::path::PathBuf;
use std::sync::Arc;

use crate::model::{
    Dataset, OutputGrid, Spectrum, Survey, VelocityKind, Visit, VisitArrays, VisitMeta,
};

/// Which demo to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Demo {
    /// Synthetic APOGEE-like star, 12 visits, deep tellurics, a few outliers.
    Apogee,
    /// The real SDSS BOSS star with 7 exposures (assets/demo).
    Boss,
}

impl Demo {
    /// Parse the `--demo` value.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "apogee" | "synthetic" => Ok(Self::Apogee),
            "boss" => Ok(Self::Boss),
            other => anyhow::bail!("unknown demo '{other}': use 'apogee' or 'boss'"),
        }
    }

    /// The `--demo` value.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Apogee => "apogee",
            Self::Boss => "boss",
        }
    }

    /// Build the demo dataset.
    pub fn load(self) -> anyhow::Result<Dataset> {
        match self {
            Self::Apogee => Ok(apogee_placeholder(12, 7)),
            Self::Boss => super::files::load_paths(&[boss_demo_path()]),
        }
    }
}

/// Where the BOSS demo file lives (next to the crate's sources; the file is in the repository).
#[must_use]
pub fn boss_demo_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/demo/spec-3586-55181-0500.fits")
}

/// SplitMix64: a tiny documented generator, enough for a placeholder demo.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Absorption lines: (centre in ln lambda, depth, sigma in ln lambda).
fn line_profile(x: f64, lines: &[(f64, f64, f64)]) -> f64 {
    let mut f = 1.0;
    // Lines are sorted by centre: only those within 6 sigma matter.
    let start = lines.partition_point(|l| l.0 < x - 6.0 * 1e-4);
    for &(c, d, s) in &lines[start..] {
        if c > x + 6.0 * s {
            break;
        }
        let t = (x - c) / s;
        f *= 1.0 - d * (-0.5 * t * t).exp();
    }
    f
}

/// An APOGEE-like synthetic star: 3 chips x 4096 px with decreasing wavelengths, a telluric
/// selection factor fixed in the observed frame, flagged cosmic rays and sky lines, and one visit
/// with unflagged outliers.
#[must_use]
pub fn apogee_placeholder(n_visits: usize, seed: u64) -> Dataset {
    let mut rng = Rng(seed);
    let chips = [
        (16470.0_f64, 16960.0_f64),
        (15860.0, 16430.0),
        (15140.0, 15810.0),
    ];
    let r_sigma = 1.0 / 22_500.0 / 2.355;
    let mut star_lines: Vec<(f64, f64, f64)> = (0..900)
        .map(|_| {
            let lam = 15100.0 + rng.uniform() * 1900.0;
            let depth = 0.6 * rng.uniform().powi(3);
            (lam.ln(), depth, r_sigma * (1.0 + rng.uniform()))
        })
        .collect();
    star_lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut tell_lines: Vec<(f64, f64, f64)> = (0..70)
        .map(|_| {
            let lam = 15100.0 + rng.uniform() * 1900.0;
            let depth = 0.95 * rng.uniform().powi(2);
            (lam.ln(), depth, r_sigma * 1.2)
        })
        .collect();
    tell_lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let sky: Vec<f64> = (0..40)
        .map(|_| (15100.0 + rng.uniform() * 1900.0_f64).ln())
        .collect();
    let v_sys = 27.0;
    let visits = (0..n_visits)
        .map(|j| {
            let bc = 30.0 * (j as f64 * 1.7).sin();
            let v_true = v_sys - bc;
            let dx = crate::model::shift_from_velocity(v_true);
            let snr = 30.0 + 120.0 * rng.uniform();
            let mut a = VisitArrays {
                flux_divided_by_selection: false,
                ..VisitArrays::default()
            };
            let mut sel = Vec::new();
            for &(lo, hi) in &chips {
                let start = a.wavelength_aa.len();
                let n = 4096;
                for i in 0..n {
                    // Decreasing within a chip, like apVisit.
                    let lam = (hi.ln() - (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp();
                    let x = lam.ln();
                    let s = line_profile(x, &tell_lines);
                    let f = s * line_profile(x - dx, &star_lines);
                    let mut sigma = 1.0 / snr;
                    let mut flags = 0u64;
                    if sky.iter().any(|k| (k - x).abs() < 3e-5) {
                        sigma *= 4.0;
                        flags |= 1 << 12;
                    }
                    let mut y = f + sigma * rng.normal();
                    let u = rng.uniform();
                    if u < 4e-4 {
                        y += 0.5 + rng.uniform();
                        flags |= 1 << 1;
                    } else if u < 6e-4 {
                        flags |= 1;
                    } else if j == 3 && u < 3e-3 {
                        // Unflagged outliers in one visit: what robust fitting is for.
                        y += (5.0 + 15.0 * rng.uniform()) * sigma;
                    }
                    a.wavelength_aa.push(lam);
                    a.flux.push(y);
                    a.ivar.push(1.0 / (sigma * sigma));
                    a.flags.push(flags);
                    sel.push(s);
                }
                a.segments.push(start..start + n);
            }
            a.selection = Some(sel);
            let meta = VisitMeta {
                name: format!("visit-{:02}", j + 1),
                object: Some("demo-apogee".into()),
                jd: Some(2_459_000.5 + 17.0 * j as f64),
                snr: Some(snr),
                velocities: vec![
                    (VelocityKind::True, v_true),
                    (VelocityKind::Vrel, v_true),
                    (VelocityKind::Bc, bc),
                    (VelocityKind::Vhelio, v_true + bc),
                ],
                ..VisitMeta::default()
            };
            Arc::new(Visit::new(meta, a).expect("the demo generator makes valid visits"))
        })
        .collect();
    let grid = OutputGrid::apogee();
    let truth = Spectrum {
        label: "truth".into(),
        flux: grid
            .ln_wave
            .iter()
            .map(|&x| line_profile(x, &star_lines))
            .collect(),
        ln_wave: grid.ln_wave.clone(),
        ivar: Vec::new(),
    };
    Dataset {
        name: "synthetic APOGEE-like star (demo)".into(),
        visits,
        input_grid: Some(grid),
        truth: Some(truth),
        pipeline_coadd: None,
        survey: Survey::Apogee,
    }
}
