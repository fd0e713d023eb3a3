//! The bench's inputs, drawn with the core's seeded generator ([`frizzview_core::synth::SynthRng`]):
//! reference-sized sets of line spectra (cases a and b) and APOGEE-like visits (the live path).

use std::sync::Arc;

use frizzview_core::model::{
    C_KMS, Dataset, OutputGrid, Survey, VelocityKind, Visit, VisitArrays, VisitMeta,
};
use frizzview_core::synth::SynthRng;

/// A smooth spectrum with Gaussian absorption lines, tabulated finely and interpolated linearly.
struct Lines {
    x0: f64,
    dx: f64,
    f: Vec<f64>,
}

impl Lines {
    /// Lines of width `sigma_ln` (ln lambda), one per ~`spacing_px` pixels of size `px_ln`.
    fn new(lo: f64, hi: f64, px_ln: f64, sigma_ln: f64, rng: &mut SynthRng) -> Self {
        let dx = px_ln / 8.0;
        let n = ((hi - lo) / dx).ceil() as usize + 2;
        let mut f = vec![0.0; n];
        let n_lines = ((hi - lo) / (12.0 * px_ln)).ceil() as usize;
        for _ in 0..n_lines {
            let c = rng.uniform_in(lo, hi);
            let depth = rng.uniform_in(0.1, 0.7);
            let tau = -(1.0 - depth).ln();
            let i0 = ((c - 6.0 * sigma_ln - lo) / dx).floor().max(0.0) as usize;
            let i1 = (((c + 6.0 * sigma_ln - lo) / dx).ceil() as usize).min(n - 1);
            for (i, fi) in f.iter_mut().enumerate().take(i1 + 1).skip(i0) {
                let z = (lo + i as f64 * dx - c) / sigma_ln;
                *fi += tau * (-0.5 * z * z).exp();
            }
        }
        for v in &mut f {
            *v = (-*v).exp();
        }
        Self { x0: lo, dx, f }
    }

    fn at(&self, x: f64) -> f64 {
        let t = (x - self.x0) / self.dx;
        let i = (t.floor().max(0.0) as usize).min(self.f.len() - 2);
        let a = (t - i as f64).clamp(0.0, 1.0);
        self.f[i] * (1.0 - a) + self.f[i + 1] * a
    }
}

fn visit_from(
    name: String,
    v_kms: f64,
    ln_wave: &[f64],
    truth: &Lines,
    snr: f64,
    rng: &mut SynthRng,
    segments: Vec<std::ops::Range<usize>>,
) -> anyhow::Result<Arc<Visit>> {
    let dx = (v_kms / C_KMS).ln_1p();
    let n = ln_wave.len();
    let mut flux = Vec::with_capacity(n);
    let mut bad = vec![false; n];
    let mut flags = vec![0_u64; n];
    for &x in ln_wave {
        let f = truth.at(x - dx);
        flux.push(f + rng.normal() / snr);
    }
    for k in 0..n {
        if rng.uniform() < 0.01 {
            bad[k] = true;
            flags[k] = 1 << rng.below(4);
            flux[k] += 2.0 * rng.uniform();
        }
    }
    let mut meta = VisitMeta {
        name,
        ..VisitMeta::default()
    };
    meta.set_velocity(VelocityKind::True, v_kms);
    meta.set_velocity(VelocityKind::Vrel, v_kms);
    let arrays = VisitArrays {
        wavelength_aa: ln_wave.iter().map(|x| x.exp()).collect(),
        flux,
        ivar: vec![snr * snr; n],
        flags,
        bad,
        segments,
        ..VisitArrays::default()
    };
    Ok(Arc::new(Visit::new(meta, arrays)?))
}

/// The reference synthetic setup: `n_visits` x `px` pixels at spacing 1.3816e-5, v in +-30 km/s, SNR 20, 1% bad,
/// lines of sigma 1.5 px and depth 0.1-0.7; output grid of `m_out` pixels over the detector range.
#[must_use]
pub fn lines_dataset(n_visits: usize, px: usize, m_out: usize, seed: u64) -> Dataset {
    let mut rng = SynthRng::new(seed);
    let step = 1.3816e-5;
    let x_lo = 15_100.0_f64.ln();
    let x_hi = x_lo + step * (px as f64 - 1.0);
    let margin = 40.0 / C_KMS;
    let truth = Lines::new(x_lo - margin, x_hi + margin, step, 1.5 * step, &mut rng);
    let ln_wave: Vec<f64> = (0..px).map(|i| x_lo + step * i as f64).collect();
    let visits = (0..n_visits)
        .filter_map(|i| {
            let v = rng.uniform_in(-30.0, 30.0);
            visit_from(
                format!("v{i}"),
                v,
                &ln_wave,
                &truth,
                20.0,
                &mut rng,
                Vec::new(),
            )
            .ok()
        })
        .collect();
    let out_step = (x_hi - x_lo) / (m_out as f64 - 1.0);
    let out: Vec<f64> = (0..m_out).map(|i| x_lo + out_step * i as f64).collect();
    Dataset {
        name: format!("lines {n_visits}x{px}"),
        visits,
        input_grid: OutputGrid::from_ln(out),
        ..Dataset::default()
    }
}

/// APOGEE-like visits: 3 chips of `chip` pixels each over the three detector ranges, v within
/// +-30 km/s plus a barycentric-like spread, SNR 60, 1% bad pixels with flags.
#[must_use]
pub fn apogee_dataset(n_visits: usize, chip: usize, seed: u64) -> Dataset {
    let mut rng = SynthRng::new(seed);
    let ranges_aa = [
        (15_140.0, 15_810.0),
        (15_860.0, 16_430.0),
        (16_470.0, 16_960.0),
    ];
    let grid = OutputGrid::apogee();
    let step_out = grid.mean_step();
    let lo = grid.ln_wave[0] - 100.0 / C_KMS;
    let hi = grid.ln_wave[grid.len() - 1] + 100.0 / C_KMS;
    let truth = Lines::new(lo, hi, step_out, 1.2 * step_out, &mut rng);
    let mut ln_wave = Vec::with_capacity(3 * chip);
    let mut segments = Vec::new();
    for (a, b) in ranges_aa {
        let (xa, xb) = (f64::ln(a), f64::ln(b));
        let s = (xb - xa) / (chip as f64 - 1.0);
        let start = ln_wave.len();
        ln_wave.extend((0..chip).map(|i| xa + s * i as f64));
        segments.push(start..ln_wave.len());
    }
    let visits = (0..n_visits)
        .filter_map(|i| {
            let v = rng.uniform_in(-30.0, 30.0) + rng.uniform_in(-25.0, 25.0);
            visit_from(
                format!("apVisit-{i:04}"),
                v,
                &ln_wave,
                &truth,
                60.0,
                &mut rng,
                segments.clone(),
            )
            .ok()
        })
        .collect();
    Dataset {
        name: format!("apogee-like {n_visits} visits"),
        visits,
        survey: Survey::Apogee,
        ..Dataset::default()
    }
}
