//! Extensions beyond the paper (arXiv:2403.11011 §5 names them future work): shift fitting, robust combination, per-visit
//! normalization, per-visit LSF.
//!
//! The extensions wrap any plain solver: the robust and normalization tests drive them with a
//! small private solver (cubic B-splines on the output grid, banded normal equations) written
//! here independently of the crate's bases; the shift, LSF and end-to-end tests use the crate's
//! Fourier and local bases through `combine`. The checks are against the synthetic truth and
//! statistics, never against numbers of our own code.

use std::sync::Arc;

use frizzview::combine::extensions::{self, Solver};
use frizzview::combine::{
    Cancel, CombineError, MethodResult, Prepared, SpectrumModel, Warning, combine, prepare,
    visit_fits,
};
use frizzview::model::{
    Dataset, OutputGrid, VelocityKind, Visit, VisitArrays, VisitMeta, shift_from_velocity,
};
use frizzview::settings::{
    Basis, Extensions, ForwardSettings, GridSpec, LsfMode, Robust, SelectionMode, Settings,
    ShiftSource,
};
use frizzview::synth::apogee::ApogeeParams;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

// ---------------------------------------------------------------------------------------------
// A private plain solver: f(x) = sum_j theta_j B3((x - x_0)/h - j) on the output grid.

fn b3(u: f64) -> f64 {
    let a = u.abs();
    if a < 1.0 {
        2.0 / 3.0 - a * a + 0.5 * a * a * a
    } else if a < 2.0 {
        (2.0 - a).powi(3) / 6.0
    } else {
        0.0
    }
}

fn b3_deriv(u: f64) -> f64 {
    let a = u.abs();
    let d = if a < 1.0 {
        -2.0 * a + 1.5 * a * a
    } else if a < 2.0 {
        -0.5 * (2.0 - a).powi(2)
    } else {
        0.0
    };
    d * u.signum()
}

#[derive(Debug)]
struct Spline {
    x0: f64,
    h: f64,
    theta: Vec<f64>,
}

impl Spline {
    /// Index of the first basis function touching `x` and the position in knot units, or None
    /// outside the grid.
    fn locate(&self, x: f64) -> Option<(i64, f64)> {
        let u = (x - self.x0) / self.h;
        let last = (self.theta.len() - 1) as f64;
        if !(0.0..=last).contains(&u) {
            return None;
        }
        Some((u.floor() as i64 - 1, u))
    }

    fn sum(&self, x: f64, g: fn(f64) -> f64) -> f64 {
        let Some((j0, u)) = self.locate(x) else {
            return f64::NAN;
        };
        (j0..j0 + 4)
            .filter(|&j| j >= 0 && (j as usize) < self.theta.len())
            .map(|j| self.theta[j as usize] * g(u - j as f64))
            .sum()
    }
}

impl SpectrumModel for Spline {
    fn eval(&self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|&x| self.sum(x, b3)).collect()
    }
    fn eval_deriv(&self, x: &[f64]) -> Vec<f64> {
        x.iter().map(|&x| self.sum(x, b3_deriv) / self.h).collect()
    }
}

/// Banded (half-bandwidth 3) Cholesky solve of A z = b, A stored as a[i][d] = A[i, i - d].
fn band_cholesky(a: &[[f64; 4]]) -> Vec<[f64; 4]> {
    let n = a.len();
    let mut l = vec![[0.0; 4]; n];
    for i in 0..n {
        for d in (0..4).rev() {
            if d > i {
                continue;
            }
            let j = i - d;
            let mut s = a[i][d];
            for k in 1..4 {
                if d + k < 4 && k <= j {
                    s -= l[i][d + k] * l[j][k];
                }
            }
            if d == 0 {
                assert!(s > 0.0, "normal matrix not positive definite at {i}");
                l[i][0] = s.sqrt();
            } else {
                l[i][d] = s / l[j][0];
            }
        }
    }
    l
}

fn band_solve(l: &[[f64; 4]], b: &[f64]) -> Vec<f64> {
    let n = l.len();
    let mut z = b.to_vec();
    for i in 0..n {
        let mut s = z[i];
        for d in 1..4 {
            if d <= i {
                s -= l[i][d] * z[i - d];
            }
        }
        z[i] = s / l[i][0];
    }
    for i in (0..n).rev() {
        let mut s = z[i];
        for d in 1..4 {
            if i + d < n {
                s -= l[i + d][d] * z[i + d];
            }
        }
        z[i] = s / l[i][0];
    }
    z
}

/// The plain forward model in the spline basis: theta = (X^T W X)^-1 X^T W y with X rows
/// S g(x_rest), y* = X* theta, var = diag(X* A^-1 X*^T).
fn spline_solve(
    prep: &Prepared,
    _cancel: &Cancel,
    _warnings: &mut Vec<Warning>,
) -> Result<MethodResult, CombineError> {
    let x0 = prep.grid.ln_wave[0];
    let h = prep.grid.mean_step();
    let p = prep.grid.len();
    let mut a = vec![[0.0; 4]; p];
    let mut b = vec![0.0; p];
    let probe = Spline {
        x0,
        h,
        theta: vec![0.0; p],
    };
    for v in prep.visits.iter().filter(|v| v.included) {
        for k in 0..v.y.len() {
            if v.w[k] <= 0.0 {
                continue;
            }
            let Some((j0, u)) = probe.locate(v.x_rest[k]) else {
                continue;
            };
            let rows: Vec<(usize, f64)> = (j0..j0 + 4)
                .filter(|&j| j >= 0 && (j as usize) < p)
                .map(|j| (j as usize, v.s[k] * b3(u - j as f64)))
                .collect();
            for &(i, gi) in &rows {
                b[i] += v.w[k] * gi * v.y[k];
                for &(j, gj) in &rows {
                    if j <= i {
                        a[i][i - j] += v.w[k] * gi * gj;
                    }
                }
            }
        }
    }
    let diag_max = a.iter().map(|r| r[0]).fold(0.0, f64::max);
    for r in &mut a {
        r[0] += 1e-10 * diag_max;
    }
    let l = band_cholesky(&a);
    let theta = band_solve(&l, &b);
    // A^-1 near the diagonal (|i - j| <= LAGS + 2), enough for C*[l, l + k], k <= LAGS, with X*
    // rows (1/6, 2/3, 1/6) at j = l-1, l, l+1.
    const LAGS: usize = 5;
    const W: usize = LAGS + 2;
    let mut inv_band = vec![[0.0; 2 * W + 1]; p];
    for j in 0..p {
        let mut e = vec![0.0; p];
        e[j] = 1.0;
        let col = band_solve(&l, &e);
        for (d, slot) in inv_band[j].iter_mut().enumerate() {
            if j + d >= W && j + d - W < p {
                *slot = col[j + d - W];
            }
        }
    }
    let inv = |i: usize, j: usize| -> f64 {
        let d = j as i64 - i as i64 + W as i64;
        if (0..=2 * W as i64).contains(&d) {
            inv_band[i][d as usize]
        } else {
            0.0
        }
    };
    let model = Spline { x0, h, theta };
    let flux = model.eval(&prep.grid.ln_wave);
    let row = |l: usize| -> Vec<(usize, f64)> {
        [
            (l.wrapping_sub(1), 1.0 / 6.0),
            (l, 2.0 / 3.0),
            (l + 1, 1.0 / 6.0),
        ]
        .into_iter()
        .filter(|(j, _)| *j < p)
        .collect()
    };
    let cov = |a: usize, b: usize| -> f64 {
        let mut s = 0.0;
        for &(i, gi) in &row(a) {
            for &(j, gj) in &row(b) {
                s += gi * gj * inv(i, j);
            }
        }
        s
    };
    let band: Vec<Vec<f64>> = (0..=LAGS)
        .map(|k| {
            (0..p)
                .map(|l| if l + k < p { cov(l, l + k) } else { f64::NAN })
                .collect()
        })
        .collect();
    let var = band[0].clone();
    let model: Arc<dyn SpectrumModel> = Arc::new(model);
    let visits = visit_fits(prep, model.as_ref());
    Ok(MethodResult {
        flux,
        var,
        band,
        no_data: vec![false; p],
        visits,
        model: Some(model),
        ..MethodResult::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Synthetic APOGEE-like data.

/// Output grid spacing in ln(lambda) (APOGEE: 6e-6 dex).
const STEP: f64 = 6e-6 * std::f64::consts::LN_10;

fn grid(n: usize) -> OutputGrid {
    OutputGrid::log_linear(15200f64.log10(), 6e-6, n)
}

/// A continuum at 1 with absorption lines (Gaussian in ln lambda, widths 1.2-2.5 pixels, the
/// sharpest visit's LSF included), and a way to broaden it.
struct Truth {
    lines: Vec<(f64, f64, f64)>,
}

impl Truth {
    fn new(rng: &mut StdRng, g: &OutputGrid) -> Self {
        let lo = g.ln_wave[0];
        let hi = g.ln_wave[g.len() - 1];
        let n_lines = (g.len() / 18).max(4);
        let lines = (0..n_lines)
            .map(|_| {
                let c = rng.random_range(lo..hi);
                let depth = rng.random_range(0.1..0.6);
                let width = rng.random_range(1.2..2.5) * STEP;
                (c, depth, width)
            })
            .collect();
        Self { lines }
    }

    /// The spectrum at rest-frame `x`, convolved with an extra Gaussian of `extra_sigma`.
    fn at(&self, x: f64, extra_sigma: f64) -> f64 {
        let mut f = 1.0;
        for &(c, depth, width) in &self.lines {
            let w2 = width * width + extra_sigma * extra_sigma;
            // Convolving a Gaussian line keeps its area: depth scales by width / sqrt(w2).
            f -= depth * width / w2.sqrt() * (-0.5 * (x - c) * (x - c) / w2).exp();
        }
        f
    }
}

#[derive(Clone)]
struct VisitSpec {
    v_true_kms: f64,
    v_header_kms: f64,
    snr: f64,
    /// Multiplicative tilt: n(x) = sum c_d L_d(t) over the visit's observed span.
    tilt: Vec<f64>,
    /// Extra LSF sigma (ln lambda) beyond the model's resolution.
    extra_sigma: f64,
    /// Fraction of pixels replaced by 5-20 sigma outliers.
    outlier_fraction: f64,
}

impl VisitSpec {
    fn plain(rng: &mut StdRng, snr: f64) -> Self {
        let v = rng.random_range(-25.0..25.0);
        Self {
            v_true_kms: v,
            v_header_kms: v,
            snr,
            tilt: vec![1.0],
            extra_sigma: 0.0,
            outlier_fraction: 0.0,
        }
    }
}

/// One visit observed on its own pixels (spacing 1.003 output pixels, random phase), covering the
/// grid with a margin so every rest-frame grid pixel has data.
fn observe(rng: &mut StdRng, truth: &Truth, g: &OutputGrid, spec: &VisitSpec, name: &str) -> Visit {
    let noise = Normal::new(0.0, 1.0).expect("unit normal");
    let dx = shift_from_velocity(spec.v_true_kms);
    let margin = 12.0 * STEP;
    let lo = g.ln_wave[0] - margin + dx + rng.random_range(0.0..STEP);
    let hi = g.ln_wave[g.len() - 1] + margin + dx;
    let step_in = 1.003 * STEP;
    let n = ((hi - lo) / step_in) as usize;
    let x_obs: Vec<f64> = (0..n).map(|k| lo + k as f64 * step_in).collect();
    let centre = 0.5 * (x_obs[0] + x_obs[n - 1]);
    let half = 0.5 * (x_obs[n - 1] - x_obs[0]);
    let sigma = 1.0 / spec.snr;
    let mut flux = Vec::with_capacity(n);
    for &x in &x_obs {
        let t = (x - centre) / half;
        let tilt: f64 = extensions::legendre(spec.tilt.len() - 1, t)
            .iter()
            .zip(&spec.tilt)
            .map(|(l, c)| l * c)
            .sum();
        let clean = tilt * truth.at(x - dx, spec.extra_sigma);
        let mut y = clean + sigma * noise.sample(rng);
        if rng.random::<f64>() < spec.outlier_fraction {
            let size = rng.random_range(5.0..20.0) * if rng.random::<bool>() { 1.0 } else { -1.0 };
            y = clean + size * sigma;
        }
        flux.push(y);
    }
    let mut meta = VisitMeta {
        name: name.to_owned(),
        ..VisitMeta::default()
    };
    meta.set_velocity(VelocityKind::Vrel, spec.v_header_kms);
    meta.set_velocity(VelocityKind::True, spec.v_true_kms);
    let base_sigma = 1.2 * STEP;
    meta.lsf_sigma_ln =
        Some((base_sigma * base_sigma + spec.extra_sigma * spec.extra_sigma).sqrt());
    Visit::new(
        meta,
        VisitArrays {
            wavelength_aa: x_obs.iter().map(|x| x.exp()).collect(),
            flux,
            ivar: vec![1.0 / (sigma * sigma); n],
            ..VisitArrays::default()
        },
    )
    .expect("valid synthetic visit")
}

fn dataset(rng: &mut StdRng, truth: &Truth, g: &OutputGrid, specs: &[VisitSpec]) -> Dataset {
    let visits = specs
        .iter()
        .enumerate()
        .map(|(i, s)| Arc::new(observe(rng, truth, g, s, &format!("visit{i}"))))
        .collect();
    Dataset {
        name: "synthetic".into(),
        visits,
        input_grid: Some(g.clone()),
        truth: None,
        pipeline_coadd: None,
        survey: Default::default(),
        load_warnings: Vec::new(),
    }
}

fn settings(ext: Extensions) -> Settings {
    Settings {
        grid: GridSpec::FromInput,
        shift: ShiftSource::Vrel,
        selection: SelectionMode::Ignore,
        standard: None,
        extensions: ext,
        ..Settings::default()
    }
}

fn run(data: &Dataset, ext: Extensions) -> (MethodResult, Vec<Warning>) {
    let s = settings(ext);
    let prep = prepare(data, &s).expect("prepared");
    let mut warnings = Vec::new();
    let solver: &Solver<'_> = &spline_solve;
    let res = extensions::fit_with(&prep, &s.extensions, solver, &Cancel::new(), &mut warnings)
        .expect("combined");
    (res, warnings)
}

/// std of (y* - truth) / sigma over the grid pixels away from the edges.
fn chi_vs_truth(res: &MethodResult, truth: &Truth, g: &OutputGrid) -> f64 {
    let edge = 4;
    let z: Vec<f64> = (edge..g.len() - edge)
        .map(|l| (res.flux[l] - truth.at(g.ln_wave[l], 0.0)) / res.var[l].sqrt())
        .collect();
    let mean = z.iter().sum::<f64>() / z.len() as f64;
    (z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / z.len() as f64).sqrt()
}

fn std(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn private_spline_solver_recovers_the_truth_with_calibrated_errors() {
    // Guard for the tests below: the oracle solver itself must be right.
    let mut rng = StdRng::seed_from_u64(1);
    let g = grid(240);
    let truth = Truth::new(&mut rng, &g);
    let specs: Vec<VisitSpec> = (0..8).map(|_| VisitSpec::plain(&mut rng, 50.0)).collect();
    let data = dataset(&mut rng, &truth, &g, &specs);
    let (res, _) = run(&data, Extensions::default());
    let chi = chi_vs_truth(&res, &truth, &g);
    assert!((chi - 1.0).abs() < 0.15, "chi against the truth {chi}");
}

/// Shift-fit pulls over many small synthetic trials with the given basis: returns
/// (pull std, rms of fitted velocity errors, rms of header errors), all after removing each
/// trial's common zero point.
fn shift_pulls(seed: u64, trials: usize, basis: Basis) -> (f64, f64, f64) {
    // Header velocities are off by N(0, 1 km/s). The fit measures shifts relative to the mean
    // header shift (the data fix shifts only up to a common offset), so the pulls are taken after
    // removing each trial's mean (fit - true) over its visits, which is exactly the zero point.
    let mut rng = StdRng::seed_from_u64(seed);
    let header_error = Normal::new(0.0, 1.0).expect("normal");
    let mut pulls = Vec::new();
    let mut header_resid_kms = Vec::new();
    let mut fit_resid_kms = Vec::new();
    let n_visits = 8;
    let ext = Extensions {
        fit_shifts: true,
        ..Extensions::default()
    };
    for _ in 0..trials {
        let g = grid(160);
        let truth = Truth::new(&mut rng, &g);
        let specs: Vec<VisitSpec> = (0..n_visits)
            .map(|_| {
                let snr = rng.random_range(30.0..80.0);
                let mut s = VisitSpec::plain(&mut rng, snr);
                s.v_header_kms = s.v_true_kms + header_error.sample(&mut rng);
                s
            })
            .collect();
        let data = dataset(&mut rng, &truth, &g, &specs);
        let s = Settings {
            forward: Some(ForwardSettings {
                basis,
                ..ForwardSettings::default()
            }),
            ..settings(ext.clone())
        };
        let c = combine(&data, &s, &Cancel::new()).expect("combined");
        let (res, warnings) = (c.forward.expect("forward"), c.warnings);
        assert!(
            !warnings.iter().any(|w| w.to_string().contains("converge")),
            "{warnings:?}"
        );
        let fitted = res.fitted_velocity.expect("fitted velocities");
        let diff: Vec<f64> = fitted
            .iter()
            .zip(&specs)
            .map(|((v, _), s)| v - s.v_true_kms)
            .collect();
        let offset = diff.iter().sum::<f64>() / n_visits as f64;
        for ((d, (_, err)), s) in diff.iter().zip(&fitted).zip(&specs) {
            assert!(err.is_finite() && *err > 0.0);
            pulls.push((d - offset) / err);
            fit_resid_kms.push(d - offset);
            header_resid_kms.push(s.v_header_kms - s.v_true_kms);
        }
    }
    let out = (std(&pulls), std(&fit_resid_kms), std(&header_resid_kms));
    println!(
        "shift pulls ({:?}): n = {}, std = {:.3}; velocity error rms {:.3} km/s (headers {:.3} km/s)",
        basis,
        pulls.len(),
        out.0,
        out.1,
        out.2
    );
    out
}

#[test]
fn fitted_shifts_with_the_local_basis_have_calibrated_errors() {
    let (pull_std, fit_rms, header_rms) = shift_pulls(8, 60, Basis::Local);
    assert!((pull_std - 1.0).abs() < 0.1, "pull std {pull_std}");
    assert!(
        fit_rms < 0.3 * header_rms,
        "fit {fit_rms} vs header {header_rms} km/s"
    );
}

#[test]
fn fitted_shifts_with_the_fourier_basis_have_calibrated_errors() {
    let (pull_std, fit_rms, header_rms) = shift_pulls(9, 40, Basis::Fourier);
    assert!((pull_std - 1.0).abs() < 0.1, "pull std {pull_std}");
    assert!(
        fit_rms < 0.3 * header_rms,
        "fit {fit_rms} vs header {header_rms} km/s"
    );
}

/// A copy of `data` with `fraction` of the pixels of every visit replaced by 5-20 sigma outliers
/// (either sign, not flagged); returns the outlier positions per visit.
fn contaminate(rng: &mut StdRng, data: &Dataset, fraction: f64) -> (Dataset, Vec<Vec<bool>>) {
    let mut where_out = Vec::new();
    let visits = data
        .visits
        .iter()
        .map(|v| {
            let mut flux = v.flux().to_vec();
            let mut hit = vec![false; flux.len()];
            for k in 0..flux.len() {
                if rng.random::<f64>() < fraction {
                    let sigma = 1.0 / v.ivar()[k].sqrt();
                    let size = rng.random_range(5.0..20.0);
                    flux[k] += if rng.random::<bool>() { size } else { -size } * sigma;
                    hit[k] = true;
                }
            }
            where_out.push(hit);
            Arc::new(
                Visit::new(
                    v.meta.clone(),
                    VisitArrays {
                        wavelength_aa: v.wavelength_aa().to_vec(),
                        flux,
                        ivar: v.ivar().to_vec(),
                        ..VisitArrays::default()
                    },
                )
                .expect("valid visit"),
            )
        })
        .collect();
    (
        Dataset {
            visits,
            ..data.clone()
        },
        where_out,
    )
}

#[test]
fn robust_combination_resists_outliers_that_spoil_the_plain_fit() {
    let mut rng = StdRng::seed_from_u64(11);
    let g = grid(400);
    let truth = Truth::new(&mut rng, &g);
    let specs: Vec<VisitSpec> = (0..8).map(|_| VisitSpec::plain(&mut rng, 50.0)).collect();
    let clean = dataset(&mut rng, &truth, &g, &specs);
    let (dirty, hits) = contaminate(&mut rng, &clean, 0.01);
    let chi_clean = chi_vs_truth(&run(&clean, Extensions::default()).0, &truth, &g);
    let chi_plain = chi_vs_truth(&run(&dirty, Extensions::default()).0, &truth, &g);
    println!("robust: chi clean {chi_clean:.3}, plain on outliers {chi_plain:.3}");
    assert!(
        chi_plain > 1.1 * chi_clean,
        "the outliers must matter: {chi_plain} vs {chi_clean}"
    );
    for kind in [
        Robust::Huber(1.345),
        Robust::Cauchy(2.385),
        Robust::SigmaClip(4.0),
    ] {
        let ext = Extensions {
            robust: Some(kind),
            ..Extensions::default()
        };
        let (res, warnings) = run(&dirty, ext);
        assert!(
            !warnings.iter().any(|w| w.to_string().contains("converge")),
            "{kind:?}: {warnings:?}"
        );
        let chi = chi_vs_truth(&res, &truth, &g);
        // Injected outliers are found, clean pixels are left alone.
        let (mut out_low, mut n_out, mut clean_low, mut n_clean) = (0, 0, 0, 0);
        for (fit, hit) in res.visits.iter().zip(&hits) {
            assert_eq!(fit.robust_weight.len(), hit.len());
            // Pixels outside the grid have no model and keep weight 1.
            for ((w, h), p) in fit.robust_weight.iter().zip(hit).zip(&fit.prediction) {
                if !p.is_finite() {
                    continue;
                }
                if *h {
                    n_out += 1;
                    out_low += usize::from(*w < 0.5);
                } else {
                    n_clean += 1;
                    clean_low += usize::from(*w < 0.5);
                }
            }
            assert!(
                fit.outlier_score > 0.0 && fit.outlier_score < 0.05,
                "{}",
                fit.outlier_score
            );
        }
        let found = out_low as f64 / n_out as f64;
        let false_alarm = clean_low as f64 / n_clean as f64;
        println!(
            "robust {kind:?}: chi {chi:.3} (ratio to clean {:.3}), outliers found {found:.3}, clean pixels down-weighted {false_alarm:.4}",
            chi / chi_clean
        );
        assert!(
            chi < 1.1 * chi_clean,
            "{kind:?}: chi {chi} vs clean {chi_clean}"
        );
        assert!(found > 0.95, "{kind:?}: found {found}");
        assert!(false_alarm < 0.05, "{kind:?}: false alarms {false_alarm}");
    }
}

/// RMS (not std: a bias counts) of (y* - truth) / sigma over the grid away from the edges.
fn rms_vs_truth(res: &MethodResult, truth: &Truth, g: &OutputGrid) -> f64 {
    let edge = 4;
    let z2: Vec<f64> = (edge..g.len() - edge)
        .map(|l| (res.flux[l] - truth.at(g.ln_wave[l], 0.0)).powi(2) / res.var[l])
        .collect();
    (z2.iter().sum::<f64>() / z2.len() as f64).sqrt()
}

#[test]
fn per_visit_normalization_recovers_the_truth_under_throughput_tilts() {
    let mut rng = StdRng::seed_from_u64(5);
    let g = grid(300);
    let truth = Truth::new(&mut rng, &g);
    let n_visits = 8;
    let degree = 2;
    let mut specs: Vec<VisitSpec> = (0..n_visits)
        .map(|_| {
            // Unequal S/N: an inverse-variance average of tilted visits is then off the truth.
            let snr = rng.random_range(20.0..100.0);
            let mut s = VisitSpec::plain(&mut rng, snr);
            s.tilt = vec![
                rng.random_range(0.7..1.3),
                rng.random_range(-0.15..0.15),
                rng.random_range(-0.08..0.08),
            ];
            s
        })
        .collect();
    // The data fix the split between spectrum and normalizations only up to a common smooth
    // factor; the convention is mean polynomial = 1, so make the true tilts obey it.
    for d in 0..=degree {
        let mean = specs.iter().map(|s| s.tilt[d]).sum::<f64>() / n_visits as f64;
        let target = if d == 0 { 1.0 } else { 0.0 };
        for s in &mut specs {
            s.tilt[d] += target - mean;
        }
    }
    let data = dataset(&mut rng, &truth, &g, &specs);
    let (plain, _) = run(&data, Extensions::default());
    let ext = Extensions {
        normalization_degree: Some(degree),
        ..Extensions::default()
    };
    let (res, warnings) = run(&data, ext);
    assert!(
        !warnings.iter().any(|w| w.to_string().contains("converge")),
        "{warnings:?}"
    );
    let rms_plain = rms_vs_truth(&plain, &truth, &g);
    let rms = rms_vs_truth(&res, &truth, &g);
    // Each visit's prediction n_i S f matches its noiseless tilted data.
    let mut worst_pred = 0.0_f64;
    for ((fit, v), s) in res.visits.iter().zip(&data.visits).zip(&specs) {
        let dx = shift_from_velocity(s.v_true_kms);
        let x = v.ln_wave();
        let (c, h) = extensions::legendre_domain(x);
        let mut sum = 0.0;
        let mut n = 0;
        for k in 0..x.len() {
            if !fit.prediction[k].is_finite() {
                continue;
            }
            let tilt: f64 = extensions::legendre(degree, (x[k] - c) / h)
                .iter()
                .zip(&s.tilt)
                .map(|(l, c)| l * c)
                .sum();
            let noiseless = tilt * truth.at(x[k] - dx, 0.0);
            sum += (fit.prediction[k] - noiseless).powi(2) * v.ivar()[k];
            n += 1;
        }
        worst_pred = worst_pred.max((sum / n as f64).sqrt());
    }
    let max_chi2_nu = |r: &MethodResult| r.visits.iter().map(|v| v.chi2_nu).fold(0.0, f64::max);
    println!(
        "normalization: rms (y*-truth)/sigma {rms:.3} (without normalization {rms_plain:.3}); worst visit prediction rms {worst_pred:.3} sigma; max visit chi2/nu {:.3} (without {:.3})",
        max_chi2_nu(&res),
        max_chi2_nu(&plain)
    );
    assert!(max_chi2_nu(&res) < 1.2);
    assert!(rms_plain > 3.0, "the tilts must matter: {rms_plain}");
    assert!(rms < 1.15, "rms against the truth {rms}");
    // A wrong normalization misses by several sigma (10% tilts at S/N 50 are 5 sigma); a right one
    // is off by the model's own noise, about sqrt(leverage) of the brightest visit (~0.5).
    assert!(worst_pred < 0.75, "prediction error {worst_pred} sigma");
}

fn local_settings(ext: Extensions) -> Settings {
    Settings {
        forward: Some(ForwardSettings {
            basis: Basis::Local,
            ..ForwardSettings::default()
        }),
        ..settings(ext)
    }
}

#[test]
fn lsf_convolution_fits_broad_visits_and_sharpens_the_combination() {
    // Visits of different resolution (extra Gaussian sigma 0 to 2.4 output pixels beyond the
    // sharpest, like APOGEE's R ~ 27000 vs 18000 fibers), combined with the crate's local basis.
    let mut rng = StdRng::seed_from_u64(3);
    let g = grid(300);
    let truth = Truth::new(&mut rng, &g);
    let extra_px = [0.0, 0.0, 0.0, 0.5, 0.8, 1.0, 1.2, 1.3];
    let specs: Vec<VisitSpec> = extra_px
        .iter()
        .map(|&e| {
            let mut s = VisitSpec::plain(&mut rng, 50.0);
            s.extra_sigma = e * STEP;
            s
        })
        .collect();
    let data = dataset(&mut rng, &truth, &g, &specs);
    let combine = |lsf: LsfMode| {
        let s = local_settings(Extensions {
            lsf,
            ..Extensions::default()
        });
        combine(&data, &s, &Cancel::new())
            .expect("combined")
            .forward
            .expect("forward result")
    };
    let off = combine(LsfMode::Off);
    let on = combine(LsfMode::FromVisits);
    let broad_chi2_nu = |r: &MethodResult| -> Vec<f64> {
        r.visits
            .iter()
            .zip(&extra_px)
            .filter(|(_, e)| **e >= 1.2)
            .map(|(v, _)| v.chi2_nu)
            .collect()
    };
    let rms_off = rms_vs_truth(&off, &truth, &g);
    let rms_on = rms_vs_truth(&on, &truth, &g);
    println!(
        "lsf: broad visits chi2/nu off {:?} on {:?}; rms (y* - sharp truth)/sigma off {rms_off:.3} on {rms_on:.3}",
        broad_chi2_nu(&off),
        broad_chi2_nu(&on)
    );
    for (c_on, c_off) in broad_chi2_nu(&on).iter().zip(broad_chi2_nu(&off)) {
        assert!(*c_on < 1.2, "chi2/nu with the LSF {c_on}");
        assert!(
            c_off > 1.3,
            "the resolution difference must matter: {c_off}"
        );
    }
    assert!(
        rms_on < 1.2,
        "rms against the sharp truth with the LSF {rms_on}"
    );
    assert!(rms_on < 0.7 * rms_off, "{rms_on} vs {rms_off}");
}

#[test]
fn lsf_with_the_fourier_basis_is_a_clear_error() {
    let mut rng = StdRng::seed_from_u64(4);
    let g = grid(60);
    let truth = Truth::new(&mut rng, &g);
    let specs: Vec<VisitSpec> = (0..3).map(|_| VisitSpec::plain(&mut rng, 50.0)).collect();
    let data = dataset(&mut rng, &truth, &g, &specs);
    let s = Settings {
        forward: Some(ForwardSettings {
            basis: Basis::Fourier,
            ..ForwardSettings::default()
        }),
        ..settings(Extensions {
            lsf: LsfMode::FromVisits,
            ..Extensions::default()
        })
    };
    let err = combine(&data, &s, &Cancel::new()).expect_err("refused");
    assert!(
        err.to_string()
            .contains("LSF convolution needs the local basis"),
        "{err}"
    );
}

#[test]
fn apogee_like_visits_with_every_flaw_end_to_end() {
    // The crate's own APOGEE-like generator (3 chips x 4096 pixels, apStar grid) with header
    // velocity errors, unflagged outliers and throughput tilts, through `combine` with the local
    // basis and shift fitting, Huber reweighting and normalization switched on together.
    let params = ApogeeParams {
        n_visits: 4,
        velocity_error_kms: 1.0,
        outlier_fraction: 0.005,
        tilt_amplitude: 0.1,
        snr_range: (60.0, 120.0),
        ..ApogeeParams::clean()
    };
    let data = frizzview::synth::apogee::generate(&params).expect("synthetic visits");
    let base = Settings {
        grid: GridSpec::Apogee,
        ..local_settings(Extensions::default())
    };
    let plain = combine(&data, &base, &Cancel::new())
        .expect("plain")
        .forward
        .expect("forward");
    let all = Settings {
        extensions: Extensions {
            fit_shifts: true,
            robust: Some(Robust::Huber(1.345)),
            normalization_degree: Some(2),
            lsf: LsfMode::Off,
        },
        ..base.clone()
    };
    let combined = combine(&data, &all, &Cancel::new()).expect("extensions");
    assert!(
        !combined
            .warnings
            .iter()
            .any(|w| w.to_string().contains("converge")),
        "{:?}",
        combined.warnings
    );
    let res = combined.forward.expect("forward");
    let fitted = res.fitted_velocity.clone().expect("fitted velocities");
    let truth_v: Vec<f64> = data
        .visits
        .iter()
        .map(|v| v.meta.velocity(VelocityKind::True).expect("true velocity"))
        .collect();
    let header_v: Vec<f64> = data
        .visits
        .iter()
        .map(|v| {
            v.meta
                .velocity(VelocityKind::Vrel)
                .expect("header velocity")
        })
        .collect();
    let diff: Vec<f64> = fitted
        .iter()
        .zip(&truth_v)
        .map(|((v, _), t)| v - t)
        .collect();
    let offset = diff.iter().sum::<f64>() / diff.len() as f64;
    let header_offset = header_v
        .iter()
        .zip(&truth_v)
        .map(|(h, t)| h - t)
        .sum::<f64>()
        / diff.len() as f64;
    let mut worst_pull: f64 = 0.0;
    let mut worst_header: f64 = 0.0;
    for (((d, (_, err)), h), t) in diff.iter().zip(&fitted).zip(&header_v).zip(&truth_v) {
        worst_pull = worst_pull.max(((d - offset) / err).abs());
        worst_header = worst_header.max((h - t - header_offset).abs());
    }
    // Robust scatter (1.4826 MAD of the normalised residuals) per visit, worst visit: the
    // outliers themselves would dominate a plain chi^2/nu.
    let scatter = |r: &MethodResult| {
        let mut worst: f64 = 0.0;
        for (fit, v) in r.visits.iter().zip(&data.visits) {
            let mut z: Vec<f64> = (0..v.len())
                .filter(|&k| v.ivar()[k] > 0.0 && fit.prediction[k].is_finite())
                .map(|k| ((v.flux()[k] - fit.prediction[k]) * v.ivar()[k].sqrt()).abs())
                .collect();
            z.sort_by(f64::total_cmp);
            worst = worst.max(1.4826 * z[z.len() / 2]);
        }
        worst
    };
    let max_score = res
        .visits
        .iter()
        .map(|v| v.outlier_score)
        .fold(0.0, f64::max);
    println!(
        "apogee end to end: worst velocity pull {worst_pull:.2} (worst header error {worst_header:.2} km/s, fitted errors ~{:.3} km/s); worst visit robust residual scatter {:.3} sigma (plain {:.3}); max outlier score {max_score:.4}",
        fitted[0].1,
        scatter(&res),
        scatter(&plain)
    );
    assert!(worst_pull < 4.0, "worst pull {worst_pull}");
    assert!(scatter(&res) < 1.1 && scatter(&plain) > 1.5);
    assert!(max_score > 0.0 && max_score < 0.05);
}

#[test]
fn excluded_visits_are_fitted_but_shape_nothing_and_empty_visits_do_not_break_anything() {
    let mut rng = StdRng::seed_from_u64(21);
    let g = grid(160);
    let truth = Truth::new(&mut rng, &g);
    let header_error = Normal::new(0.0, 1.0).expect("normal");
    let specs: Vec<VisitSpec> = (0..6)
        .map(|_| {
            let mut s = VisitSpec::plain(&mut rng, 60.0);
            s.v_header_kms = s.v_true_kms + header_error.sample(&mut rng);
            s.tilt = vec![1.0, rng.random_range(-0.05..0.05)];
            s
        })
        .collect();
    let full = dataset(&mut rng, &truth, &g, &specs);
    let ext = Extensions {
        fit_shifts: true,
        robust: Some(Robust::Huber(1.345)),
        normalization_degree: Some(1),
        lsf: LsfMode::Off,
    };
    // Visit 5 excluded by the settings vs. absent from the data.
    let mut with_excluded = local_settings(ext.clone());
    with_excluded.visits = vec![Default::default(); 6];
    with_excluded.visits[5].include = false;
    let a = combine(&full, &with_excluded, &Cancel::new()).expect("combined");
    let five = Dataset {
        visits: full.visits[..5].to_vec(),
        ..full.clone()
    };
    let b = combine(&five, &local_settings(ext.clone()), &Cancel::new()).expect("combined");
    let (fa, fb) = (a.forward.expect("forward"), b.forward.expect("forward"));
    for (x, y) in fa.flux.iter().zip(&fb.flux) {
        assert!((x - y).abs() <= 1e-9 * y.abs().max(1.0) || (x.is_nan() && y.is_nan()));
    }
    let (va, vb) = (
        fa.fitted_velocity.expect("fitted"),
        fb.fitted_velocity.expect("fitted"),
    );
    for (x, y) in va.iter().zip(&vb) {
        assert!((x.0 - y.0).abs() < 1e-9 && (x.1 - y.1).abs() < 1e-9);
    }
    // The excluded visit is measured against the others' model.
    let (v5, e5) = va[5];
    let offset = (0..5).map(|i| va[i].0 - specs[i].v_true_kms).sum::<f64>() / 5.0;
    assert!(
        ((v5 - specs[5].v_true_kms - offset) / e5).abs() < 4.0,
        "{v5} {e5}"
    );

    // A visit with no usable pixel at all, and a normalization degree no short visit can carry.
    let dead = full.visits[0].as_ref();
    let dead = Visit::new(
        VisitMeta {
            name: "dead".into(),
            ..dead.meta.clone()
        },
        VisitArrays {
            wavelength_aa: dead.wavelength_aa().to_vec(),
            flux: dead.flux().to_vec(),
            ivar: vec![0.0; dead.len()],
            ..VisitArrays::default()
        },
    )
    .expect("valid visit");
    let mut visits = full.visits.clone();
    visits.push(Arc::new(dead));
    let with_dead = Dataset {
        visits,
        ..full.clone()
    };
    let s = local_settings(Extensions {
        normalization_degree: Some(40),
        ..ext
    });
    let c = combine(&with_dead, &s, &Cancel::new()).expect("combined despite the dead visit");
    let fitted = c.forward.expect("forward").fitted_velocity.expect("fitted");
    assert!(
        fitted[6].1.is_nan(),
        "no error without data: {:?}",
        fitted[6]
    );
    assert!(
        fitted[..6]
            .iter()
            .all(|(v, e)| v.is_finite() && e.is_finite())
    );

    // Cancellation is honoured.
    let cancel = Cancel::new();
    cancel.cancel();
    assert_eq!(
        combine(&full, &with_excluded, &cancel).expect_err("cancelled"),
        CombineError::Cancelled
    );
}

/// A visit the data say does not fit (another star's spectrum, stated S/N 60) among 8 good ones,
/// `--fit-shifts`: by default (`ShiftFitModel::WithoutOutliers`) a warning names it as left out of
/// the model the shifts are fitted against, and every visit's fitted velocity is the one of the
/// fit with it excluded by the settings; the good visits' velocities match the truth (pulls after
/// the common zero point). The former joint fit (`AllVisits`) keeps it in the model and in the
/// shifts' anchor: its meaningless shift moves the zero point of every velocity (measured: by
/// 3.5 km/s, 49 stated errors; the relative velocities move little here, unlike on the real
/// 16-visit star of `velocity.rs`, where the bad visit's residuals pull its neighbours).
#[test]
fn a_visit_that_does_not_fit_is_left_out_of_the_shift_fit_model() {
    use frizzview::settings::ShiftFitModel;
    let mut rng = StdRng::seed_from_u64(31);
    let g = grid(240);
    let truth = Truth::new(&mut rng, &g);
    let other_star = Truth::new(&mut rng, &g);
    let header_error = Normal::new(0.0, 1.0).expect("normal");
    let n_good = 8;
    let mut specs: Vec<VisitSpec> = (0..=n_good)
        .map(|_| {
            let mut s = VisitSpec::plain(&mut rng, 60.0);
            s.v_header_kms = s.v_true_kms + header_error.sample(&mut rng);
            s
        })
        .collect();
    let mut data = dataset(&mut rng, &truth, &g, &specs[..n_good]);
    specs[n_good].v_header_kms = specs[n_good].v_true_kms;
    let bad = observe(&mut rng, &other_star, &g, &specs[n_good], "bad");
    data.visits.push(Arc::new(bad));
    let ext = Extensions {
        fit_shifts: true,
        ..Extensions::default()
    };
    let run = |how: ShiftFitModel, exclude_bad: bool| {
        let mut s = local_settings(ext.clone());
        s.velocity.shift_fit_model = how;
        s.visits = vec![Default::default(); n_good + 1];
        s.visits[n_good].include = !exclude_bad;
        let c = combine(&data, &s, &Cancel::new()).expect("combined");
        let named: Vec<String> = c
            .warnings
            .iter()
            .map(ToString::to_string)
            .filter(|w| w.contains("left out of the model the shifts are fitted against"))
            .collect();
        let v = c.forward.expect("forward").fitted_velocity.expect("fitted");
        (v, named)
    };
    let (default, named) = run(ShiftFitModel::WithoutOutliers, false);
    let (excluded, _) = run(ShiftFitModel::WithoutOutliers, true);
    let (joint, named_joint) = run(ShiftFitModel::AllVisits, false);
    println!("named: {named:?}");
    assert_eq!(named.len(), 1, "{named:?}");
    assert!(named[0].starts_with("visit bad:"), "{named:?}");
    assert!(named_joint.is_empty(), "{named_joint:?}");
    // Pulls of the good visits against the truth after the common zero point.
    let pulls = |v: &[(f64, f64)]| -> Vec<f64> {
        let offset = (0..n_good)
            .map(|i| v[i].0 - specs[i].v_true_kms)
            .sum::<f64>()
            / n_good as f64;
        (0..n_good)
            .map(|i| (v[i].0 - specs[i].v_true_kms - offset) / v[i].1)
            .collect()
    };
    let rms = |p: &[f64]| (p.iter().map(|x| x * x).sum::<f64>() / p.len() as f64).sqrt();
    let (p_default, p_joint) = (pulls(&default), pulls(&joint));
    let mut largest_vs_excluded: f64 = 0.0;
    // The joint fit's common move of the good visits, in stated errors.
    let joint_moved = (0..n_good)
        .map(|i| (joint[i].0 - excluded[i].0) / excluded[i].1)
        .sum::<f64>()
        .abs()
        / n_good as f64;
    for i in 0..n_good {
        largest_vs_excluded = largest_vs_excluded.max((default[i].0 - excluded[i].0).abs());
        println!(
            "  visit {i}: true {:>8.3}  default {:>8.3} +- {:.3}  excluded {:>8.3}  joint {:>8.3} km/s",
            specs[i].v_true_kms, default[i].0, default[i].1, excluded[i].0, joint[i].0
        );
    }
    println!(
        "pull RMS (good visits): default {:.2}, joint {:.2}; largest |default - excluded| {largest_vs_excluded:.2e} km/s; the joint fit moved the good visits by {joint_moved:.2} stated errors on average",
        rms(&p_default),
        rms(&p_joint)
    );
    assert!(largest_vs_excluded < 1e-9, "{largest_vs_excluded}");
    assert!(rms(&p_default) < 2.0, "{p_default:?}");
    assert!(
        joint_moved > 3.0,
        "the joint fit is not moved: {joint_moved}"
    );
}
