//! Standard practice: interpolation exactness, exact variance propagation (Monte Carlo and a
//! dense interpolation matrix), masks, selection and coverage.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use frizzview::combine::standard::{NaturalSpline, interpolation_rows};
use frizzview::combine::{Cancel, MethodResult, combine};
use frizzview::model::{
    Dataset, OutputGrid, VelocityKind, Visit, VisitArrays, VisitMeta, velocity_from_shift,
};
use frizzview::settings::{
    GridSpec, Interpolator, SelectionMode, Settings, StandardMask, StandardSettings, Weighting,
};
use frizzview::synth::SynthRng;

/// One visit observed on `x_obs` (ln lambda) with shift `dx`.
fn visit(
    x_obs: &[f64],
    dx: f64,
    flux: Vec<f64>,
    ivar: Vec<f64>,
    flags: Vec<u64>,
    sel: Option<Vec<f64>>,
) -> Arc<Visit> {
    let meta = VisitMeta {
        name: "v".into(),
        velocities: vec![(VelocityKind::True, velocity_from_shift(dx))],
        ..VisitMeta::default()
    };
    Arc::new(
        Visit::new(
            meta,
            VisitArrays {
                wavelength_aa: x_obs.iter().map(|x| x.exp()).collect(),
                flux,
                ivar,
                flags,
                selection: sel,
                ..VisitArrays::default()
            },
        )
        .unwrap(),
    )
}

fn settings(ss: StandardSettings, lags: usize) -> Settings {
    Settings {
        grid: GridSpec::FromInput,
        shift: frizzview::settings::ShiftSource::True,
        bad_bits: 1,
        selection: SelectionMode::Multiply,
        forward: None,
        standard: Some(ss),
        band_lags: lags,
        ..Settings::default()
    }
}

fn run(data: &Dataset, ss: StandardSettings, lags: usize) -> MethodResult {
    combine(data, &settings(ss, lags), &Cancel::new())
        .unwrap()
        .standard
        .unwrap()
}

fn ss(interpolator: Interpolator, weighting: Weighting, mask: StandardMask) -> StandardSettings {
    StandardSettings {
        interpolator,
        weighting,
        mask,
    }
}

const X0: f64 = 8.7;
const STEP: f64 = 1e-5;

fn pixels(n: usize, offset: f64) -> Vec<f64> {
    (0..n).map(|k| X0 + (k as f64 + offset) * STEP).collect()
}

fn grid(n: usize, offset: f64, step: f64) -> OutputGrid {
    OutputGrid::from_ln(
        (0..n)
            .map(|k| X0 + offset * STEP + k as f64 * step)
            .collect(),
    )
    .unwrap()
}

#[test]
fn linear_and_spline_reproduce_straight_lines_exactly() {
    let x = pixels(60, 0.0);
    let shifts = [0.0, 0.37 * STEP, -0.81 * STEP];
    let line = |x: f64| 2.0 + 3.0e4 * (x - X0);
    let visits = shifts
        .iter()
        .map(|&dx| {
            let flux = x.iter().map(|&xo| line(xo - dx)).collect();
            visit(&x, dx, flux, vec![1.0; 60], vec![], None)
        })
        .collect();
    let data = Dataset {
        visits,
        input_grid: Some(grid(80, 2.0, 0.7 * STEP)),
        ..Dataset::default()
    };
    for interp in [Interpolator::Linear, Interpolator::CubicSpline] {
        for w in [Weighting::Uniform, Weighting::InverseVariance] {
            let r = run(&data, ss(interp, w, StandardMask::Drop), 2);
            let g = &data.input_grid.as_ref().unwrap().ln_wave;
            for (l, &xg) in g.iter().enumerate() {
                assert!(!r.no_data[l]);
                assert!((r.flux[l] - line(xg)).abs() < 1e-10, "{interp:?} at {l}");
            }
        }
    }
}

#[test]
fn natural_spline_reproduces_cubics_away_from_the_ends() {
    let x: Vec<f64> = (0..80).map(|k| f64::from(k) * 0.5).collect();
    let cubic = |x: f64| 1.0 - 0.3 * x + 0.05 * x * x - 0.002 * x * x * x;
    let y: Vec<f64> = x.iter().map(|&v| cubic(v)).collect();
    let xq: Vec<f64> = (0..300).map(|k| 10.0 + f64::from(k) * 0.0617).collect();
    let rows = interpolation_rows(&x, &xq, Interpolator::CubicSpline);
    let sp = NaturalSpline::new(x.clone(), y.clone()).unwrap();
    for (q, row) in xq.iter().zip(&rows) {
        // The natural end condition's error decays by ~0.27 per knot: 20 knots in, < 1e-9.
        assert!((row.dot(&y) - cubic(*q)).abs() < 1e-9);
        assert!((sp.eval(*q) - cubic(*q)).abs() < 1e-9);
        let d = -0.3 + 0.1 * q - 0.006 * q * q;
        assert!((sp.deriv(*q) - d).abs() < 1e-8);
    }
    // Linear interpolation is not exact for the cubic (the test can fail).
    let lin = interpolation_rows(&x, &xq, Interpolator::Linear);
    let worst = xq
        .iter()
        .zip(&lin)
        .map(|(q, r)| (r.dot(&y) - cubic(*q)).abs())
        .fold(0.0, f64::max);
    assert!(worst > 1e-4);
}

/// Data for the statistical tests: 5 visits, heteroskedastic noise, one bad pixel.
struct Noisy {
    x: Vec<f64>,
    shifts: Vec<f64>,
    ivar: Vec<Vec<f64>>,
    grid: OutputGrid,
}

impl Noisy {
    fn new() -> Self {
        let x = pixels(50, 0.0);
        let shifts = vec![0.0, 0.31 * STEP, -0.62 * STEP, 1.17 * STEP, -1.45 * STEP];
        let ivar = (0..shifts.len())
            .map(|j| {
                (0..50)
                    .map(|k| 100.0 * (1.0 + 0.5 * ((k + 7 * j) as f64 * 0.3).sin()))
                    .collect()
            })
            .collect();
        Self {
            x,
            shifts,
            ivar,
            grid: grid(70, 3.0, 0.6 * STEP),
        }
    }

    fn data(&self, rng: &mut SynthRng, impulse: Option<(usize, usize)>) -> Dataset {
        let visits = self
            .shifts
            .iter()
            .enumerate()
            .map(|(j, &dx)| {
                let flux = (0..self.x.len())
                    .map(|k| match impulse {
                        Some((jj, kk)) => f64::from(u8::from(jj == j && kk == k)),
                        None => 1.0 + rng.normal() / self.ivar[j][k].sqrt(),
                    })
                    .collect();
                let mut flags = vec![0u64; self.x.len()];
                flags[20 + j] = 1;
                visit(&self.x, dx, flux, self.ivar[j].clone(), flags, None)
            })
            .collect();
        Dataset {
            visits,
            input_grid: Some(self.grid.clone()),
            ..Dataset::default()
        }
    }
}

#[test]
fn propagated_variance_and_lag1_covariance_match_monte_carlo() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(11);
    for s in [
        ss(
            Interpolator::CubicSpline,
            Weighting::InverseVariance,
            StandardMask::Drop,
        ),
        ss(
            Interpolator::CubicSpline,
            Weighting::Uniform,
            StandardMask::Conservative,
        ),
        ss(
            Interpolator::DampedSinc,
            Weighting::Uniform,
            StandardMask::Drop,
        ),
    ] {
        let predicted = run(&setup.data(&mut rng, Some((0, 0))), s.clone(), 2);
        let trials = 600;
        let m = setup.grid.len();
        let mut mean = vec![0.0; m];
        let mut sq = vec![vec![0.0; m]; 2];
        let mut runs = Vec::new();
        for _ in 0..trials {
            let r = run(&setup.data(&mut rng, None), s.clone(), 2);
            runs.push(r.flux);
        }
        for f in &runs {
            for l in 0..m {
                mean[l] += f[l] / f64::from(trials);
            }
        }
        for f in &runs {
            for l in 0..m {
                for k in 0..2 {
                    if l + k < m {
                        sq[k][l] +=
                            (f[l] - mean[l]) * (f[l + k] - mean[l + k]) / f64::from(trials - 1);
                    }
                }
            }
        }
        // Compare pixel-averaged empirical and predicted (co)variances over valid pixels.
        for k in 0..2 {
            let (mut e, mut p, mut n) = (0.0, 0.0, 0);
            for l in 0..m - k {
                if predicted.band[k][l].is_finite() && sq[k][l].is_finite() {
                    e += sq[k][l];
                    p += predicted.band[k][l];
                    n += 1;
                }
            }
            assert!(n > 40, "{n}");
            let p0: f64 = predicted.var.iter().filter(|v| v.is_finite()).sum::<f64>() / n as f64;
            let rel = (e - p) / n as f64 / p0;
            assert!(
                rel.abs() < 0.05,
                "{s:?} lag {k}: empirical {e} predicted {p}"
            );
        }
    }
}

#[test]
fn band_matches_a_dense_interpolation_matrix() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(1);
    let n_vis = setup.shifts.len();
    let n_pix = setup.x.len();
    let m = setup.grid.len();
    for s in [
        ss(
            Interpolator::CubicSpline,
            Weighting::InverseVariance,
            StandardMask::Drop,
        ),
        ss(
            Interpolator::Linear,
            Weighting::Uniform,
            StandardMask::Conservative,
        ),
        ss(
            Interpolator::DampedSinc,
            Weighting::InverseVariance,
            StandardMask::Drop,
        ),
    ] {
        let lags = 4;
        let r = run(&setup.data(&mut rng, Some((0, 0))), s.clone(), lags);
        // Column (j, k) of A = the output for an impulse at input pixel k of visit j; the
        // weights do not depend on the data, only on ivar and masks.
        let mut a = vec![vec![0.0; n_vis * n_pix]; m];
        for j in 0..n_vis {
            for k in 0..n_pix {
                let col = run(&setup.data(&mut rng, Some((j, k))), s.clone(), 0);
                for l in 0..m {
                    a[l][j * n_pix + k] = if col.flux[l].is_finite() {
                        col.flux[l]
                    } else {
                        0.0
                    };
                }
            }
        }
        let mut checked = 0;
        for k in 0..=lags {
            for l in 0..m - k {
                let mut c = 0.0;
                for j in 0..n_vis {
                    for p in 0..n_pix {
                        // Bad pixels (bit 0) are dropped in Drop mode; in Conservative mode
                        // they count with the median variance. Only compare where they do
                        // not contribute.
                        let col = j * n_pix + p;
                        c += a[l][col] * a[l + k][col] / setup.ivar[j][p];
                    }
                }
                let touches_bad = (0..n_vis).any(|j| {
                    let col = j * n_pix + 20 + j;
                    a[l][col] != 0.0 || a[l + k][col] != 0.0
                });
                if r.band[k][l].is_finite() && !touches_bad {
                    assert!(
                        (r.band[k][l] - c).abs() < 1e-9 * r.band[0][l],
                        "{s:?} lag {k} pixel {l}: band {} dense {c}",
                        r.band[k][l]
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}

#[test]
fn coverage_flags_and_bad_pixels() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(3);
    let data = setup.data(&mut rng, None);
    // A grid that runs past the data on both sides.
    let wide = Dataset {
        input_grid: Some(grid(120, -20.0, 0.6 * STEP)),
        ..data.clone()
    };
    let r = run(
        &wide,
        ss(
            Interpolator::CubicSpline,
            Weighting::InverseVariance,
            StandardMask::Drop,
        ),
        3,
    );
    let g = &wide.input_grid.as_ref().unwrap().ln_wave;
    for l in 0..g.len() {
        let inside = g[l] >= X0 + 1.45 * STEP && g[l] <= X0 + 49.0 * STEP - 1.17 * STEP;
        if inside {
            assert!(!r.no_data[l] && r.flux[l].is_finite() && r.var[l] > 0.0);
        }
        if g[l] < X0 - 1.2 * STEP || g[l] > X0 + 50.5 * STEP {
            assert!(r.no_data[l] && r.flux[l].is_nan() && r.var[l].is_nan());
        }
    }
    // Each visit's bad pixel (k = 20 + j) carries bit 0 to the output near it.
    for j in 0..setup.shifts.len() {
        let xr = setup.x[20 + j] - setup.shifts[j];
        let l = g.partition_point(|&v| v < xr);
        assert!(r.flags[l] & 1 == 1 || r.flags[l - 1] & 1 == 1, "visit {j}");
    }
    assert!(r.flags[..10].iter().all(|&f| f == 0));
    // Conservative masking removes output pixels around bad pixels of a single visit.
    let one = Dataset {
        visits: vec![data.visits[0].clone()],
        ..wide.clone()
    };
    let rc = run(
        &one,
        ss(
            Interpolator::CubicSpline,
            Weighting::Uniform,
            StandardMask::Conservative,
        ),
        1,
    );
    let rd = run(
        &one,
        ss(
            Interpolator::CubicSpline,
            Weighting::Uniform,
            StandardMask::Drop,
        ),
        1,
    );
    let nc = rc.no_data.iter().filter(|&&b| !b).count();
    let nd = rd.no_data.iter().filter(|&&b| !b).count();
    assert!(nc + 2 < nd, "conservative {nc} drop {nd}");
}

#[test]
fn multiply_mode_divides_the_data_by_the_selection_and_predicts_times_s() {
    let x = pixels(60, 0.0);
    let sel: Vec<f64> = (0..60)
        .map(|k| 0.5 + 0.4 * (k as f64 * 0.7).cos())
        .collect();
    let flux: Vec<f64> = sel.iter().map(|s| 2.0 * s).collect();
    let v = visit(&x, 0.0, flux, vec![1e4; 60], vec![], Some(sel.clone()));
    let data = Dataset {
        visits: vec![v],
        input_grid: Some(grid(50, 3.0, STEP)),
        ..Dataset::default()
    };
    let r = run(
        &data,
        ss(
            Interpolator::CubicSpline,
            Weighting::InverseVariance,
            StandardMask::Drop,
        ),
        1,
    );
    assert!(r.flux.iter().all(|f| (f - 2.0).abs() < 1e-10));
    let pred = &r.visits[0].prediction;
    for k in 5..50 {
        assert!((pred[k] - 2.0 * sel[k]).abs() < 1e-9, "{k}");
    }
    assert!(r.visits[0].chi2 < 1e-12);
    assert!(r.model.is_some());
}
