//! Standard practice: interpolation exactness, exact variance propagation (Monte Carlo and a
//! dense interpolation matrix), masks, selection and coverage.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use frizzview::combine::standard::{
    NaturalSpline, StandardCache, combine_standard_with_cache, interpolation_rows,
};
use frizzview::combine::{Cancel, MethodResult, combine, prepare};
use frizzview::model::{
    Dataset, OutputGrid, VelocityKind, Visit, VisitArrays, VisitMeta, velocity_from_shift,
};
use frizzview::settings::{
    GridSpec, Interpolator, SelectionMode, Settings, StandardMask, StandardSettings, VisitSetting,
    Weighting,
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

/// Checks `r.band` (lags 0..=`lags`) against A V A^T, where column (j, k) of A is the output
/// for an impulse at input pixel k of visit j (combined with `weights`; the weights depend on
/// ivar and masks only, so the estimator is linear) and V the input variances. Entries touched
/// by the bad pixels are skipped: in Drop mode they are dropped, in Conservative mode they
/// count with the median variance. Returns the number of entries compared.
fn check_band_against_dense(
    setup: &Noisy,
    rng: &mut SynthRng,
    s: &StandardSettings,
    r: &MethodResult,
    lags: usize,
    weights: &[Option<f64>],
) -> usize {
    let n_vis = setup.shifts.len();
    let n_pix = setup.x.len();
    let m = setup.grid.len();
    let mut a = vec![vec![0.0; n_vis * n_pix]; m];
    for j in 0..n_vis {
        for k in 0..n_pix {
            let col = run_weighted(&setup.data(rng, Some((j, k))), s.clone(), 0, weights);
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
    checked
}

#[test]
fn band_matches_a_dense_interpolation_matrix() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(1);
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
        let checked = check_band_against_dense(&setup, &mut rng, &s, &r, lags, &[]);
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

/// Every combination of standard-practice options.
fn all_options() -> Vec<StandardSettings> {
    let mut out = Vec::new();
    for interp in [
        Interpolator::CubicSpline,
        Interpolator::Linear,
        Interpolator::DampedSinc,
    ] {
        for w in [Weighting::Uniform, Weighting::InverseVariance] {
            for mask in [StandardMask::Drop, StandardMask::Conservative] {
                out.push(ss(interp, w, mask));
            }
        }
    }
    out
}

/// `settings` with per-visit weight multipliers (`None` = excluded).
fn weighted_settings(s: StandardSettings, lags: usize, weights: &[Option<f64>]) -> Settings {
    Settings {
        visits: weights
            .iter()
            .map(|w| VisitSetting {
                include: w.is_some(),
                weight: w.unwrap_or(1.0),
                shift_kms: None,
            })
            .collect(),
        ..settings(s, lags)
    }
}

fn run_weighted(
    data: &Dataset,
    s: StandardSettings,
    lags: usize,
    weights: &[Option<f64>],
) -> MethodResult {
    combine(data, &weighted_settings(s, lags, weights), &Cancel::new())
        .unwrap()
        .standard
        .unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300)
}

/// A run with integer visit weights (`w`) against the same visits loaded that many times (`d`):
/// the same no-data pixels, and every flux within `tol`. Returns the pixels compared and how many
/// of them moved (by more than 1e-9) from the unweighted run `plain`.
fn weighted_equals_duplicated(
    w: &MethodResult,
    d: &MethodResult,
    plain: &MethodResult,
    tol: f64,
    what: &str,
) -> (usize, usize) {
    assert_eq!(w.no_data, d.no_data, "{what}");
    let (mut n, mut moved) = (0, 0);
    for l in 0..w.flux.len() {
        if w.no_data[l] {
            continue;
        }
        assert!(
            close(w.flux[l], d.flux[l], tol),
            "{what} pixel {l}: weighted {} duplicated {}",
            w.flux[l],
            d.flux[l]
        );
        n += 1;
        moved += usize::from(!close(w.flux[l], plain.flux[l], 1e-9));
    }
    (n, moved)
}

#[test]
fn integer_visit_weight_equals_duplicating_the_visit() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(21);
    let data = setup.data(&mut rng, None);
    // Visit 1 three times and visit 3 twice, as separate (deep-copied) visits.
    let mut dup = data.clone();
    for (j, copies) in [(1, 2), (3, 1)] {
        for _ in 0..copies {
            let copy = Arc::new((*data.visits[j]).clone());
            dup.visits.push(copy);
        }
    }
    let weights = [Some(1.0), Some(3.0), Some(1.0), Some(2.0), Some(1.0)];
    for s in all_options() {
        let w = run_weighted(&data, s.clone(), 2, &weights);
        let d = run(&dup, s.clone(), 2);
        let plain = run(&data, s.clone(), 2);
        assert_eq!(w.flags, d.flags, "{s:?}");
        let (_, differs) = weighted_equals_duplicated(&w, &d, &plain, 1e-12, &format!("{s:?}"));
        // The weights matter (the test can fail): most pixels move.
        assert!(differs > w.flux.len() / 2, "{s:?}: {differs}");
    }
}

#[test]
fn visit_weight_towards_zero_equals_excluding_the_visit() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(22);
    let data = setup.data(&mut rng, None);
    for s in all_options() {
        let tiny = run_weighted(
            &data,
            s.clone(),
            3,
            &[Some(1.0), Some(1e-12), Some(1.0), Some(1.0), Some(1.0)],
        );
        let out = run_weighted(
            &data,
            s.clone(),
            3,
            &[Some(1.0), None, Some(1.0), Some(1.0), Some(1.0)],
        );
        let mut checked = 0;
        for l in 0..tiny.flux.len() {
            if out.no_data[l] {
                continue;
            }
            assert!(close(tiny.flux[l], out.flux[l], 1e-9), "{s:?} pixel {l}");
            for k in 0..=3 {
                let (a, b) = (tiny.band[k][l], out.band[k][l]);
                if b.is_finite() {
                    assert!(
                        (a - b).abs() <= 1e-9 * out.band[0][l],
                        "{s:?} lag {k} pixel {l}: {a} vs {b}"
                    );
                }
            }
            checked += 1;
        }
        assert!(checked > 50, "{s:?}: {checked}");
    }
}

/// The weighted average and its covariance band, computed from each visit's own standard
/// practice result (a single included visit gives its interpolated values and band as is).
#[test]
fn weighted_average_and_band_follow_the_weighted_mean_formula() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(23);
    let data = setup.data(&mut rng, None);
    let n_vis = data.visits.len();
    let k_w = [0.5, 2.0, 1.0, 3.0, 0.25];
    let lags = 3;
    for s in all_options() {
        let r = run_weighted(&data, s.clone(), lags, &k_w.map(Some));
        let single: Vec<MethodResult> = (0..n_vis)
            .map(|j| {
                let only: Vec<Option<f64>> = (0..n_vis).map(|i| (i == j).then_some(1.0)).collect();
                run_weighted(&data, s.clone(), lags, &only)
            })
            .collect();
        let u = |j: usize, l: usize| -> f64 {
            if single[j].no_data[l] {
                return 0.0;
            }
            match s.weighting {
                Weighting::Uniform => k_w[j],
                Weighting::InverseVariance => k_w[j] / single[j].var[l],
                // Not among `all_options` (its weights depend on the other visits' continua).
                Weighting::ApogeePipeline => panic!("{s:?}: not a per-visit weighting"),
            }
        };
        let m = r.flux.len();
        let mut checked = 0;
        for l in 0..m {
            let su: f64 = (0..n_vis).map(|j| u(j, l)).sum();
            assert_eq!(r.no_data[l], su == 0.0, "{s:?} pixel {l}");
            if su == 0.0 {
                continue;
            }
            let mean: f64 = (0..n_vis)
                .filter(|&j| u(j, l) > 0.0)
                .map(|j| u(j, l) * single[j].flux[l])
                .sum::<f64>()
                / su;
            assert!(close(r.flux[l], mean, 1e-12), "{s:?} pixel {l}");
            for k in 0..=lags.min(m - 1 - l) {
                let sk: f64 = (0..n_vis).map(|j| u(j, l + k)).sum();
                if sk == 0.0 {
                    continue;
                }
                let c: f64 = (0..n_vis)
                    .filter(|&j| u(j, l) > 0.0 && u(j, l + k) > 0.0)
                    .map(|j| u(j, l) * u(j, l + k) * single[j].band[k][l])
                    .sum::<f64>()
                    / (su * sk);
                assert!(
                    (r.band[k][l] - c).abs() <= 1e-10 * r.band[0][l],
                    "{s:?} lag {k} pixel {l}: band {} formula {c}",
                    r.band[k][l]
                );
                checked += 1;
            }
        }
        assert!(checked > 200, "{s:?}: {checked}");
    }
}

/// The propagated band of a weighted average equals A V A^T with A built column by column
/// from impulse responses (the weights depend on ivar only, so the estimator is linear).
#[test]
fn weighted_band_matches_a_dense_interpolation_matrix() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(24);
    let weights = [Some(0.5), Some(2.0), Some(1.0), Some(3.0), Some(0.25)];
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
    ] {
        let lags = 3;
        let r = run_weighted(&setup.data(&mut rng, None), s.clone(), lags, &weights);
        let checked = check_band_against_dense(&setup, &mut rng, &s, &r, lags, &weights);
        assert!(checked > 100, "{checked}");
    }
}

#[test]
fn cache_reuses_work_without_changing_results() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(25);
    let data = setup.data(&mut rng, None);
    let s = ss(
        Interpolator::CubicSpline,
        Weighting::InverseVariance,
        StandardMask::Drop,
    );
    let fresh = |st: &Settings| {
        let prep = prepare(&data, st).unwrap();
        combine_standard_with_cache(
            &prep,
            &s,
            st.band_lags,
            &Cancel::new(),
            &StandardCache::new(),
        )
        .unwrap()
    };
    let cache = StandardCache::new();
    let cached = |st: &Settings| {
        let prep = prepare(&data, st).unwrap();
        combine_standard_with_cache(&prep, &s, st.band_lags, &Cancel::new(), &cache).unwrap()
    };
    let same = |a: &MethodResult, b: &MethodResult| {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.flux), bits(&b.flux));
        for (x, y) in a.band.iter().zip(&b.band) {
            assert_eq!(bits(x), bits(y));
        }
        assert_eq!(a.flags, b.flags);
        assert_eq!(a.no_data, b.no_data);
    };
    let mut st = weighted_settings(s.clone(), 3, &[Some(1.0); 5]);
    same(&cached(&st), &fresh(&st));
    let (p0, s0) = (cache.piece_misses(), cache.stencil_misses());
    assert_eq!((p0, s0), (5, 5));
    // Weight and inclusion changes only re-average; an excluded visit stays cached for longer
    // than unused entries live.
    for round in 0..6 {
        st.visits[0].weight = 1.0 + f64::from(round);
        st.visits[2].include = round >= 5;
        same(&cached(&st), &fresh(&st));
        assert_eq!(
            (cache.piece_misses(), cache.stencil_misses()),
            (p0, s0),
            "round {round}"
        );
    }
    assert!(cache.piece_hits() >= 5 * 4 + 5);
    // More lags: new pieces from the same stencils.
    st.band_lags = 5;
    same(&cached(&st), &fresh(&st));
    assert_eq!(cache.stencil_misses(), s0);
    assert!(cache.piece_misses() >= p0 + 5);
    // Another bad-pixel rule changes the masks: new stencils, results still right.
    st.bad_bits = 0;
    same(&cached(&st), &fresh(&st));
    assert!(cache.stencil_misses() > s0);
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let setup = Noisy::new();
    let mut rng = SynthRng::new(26);
    let data = setup.data(&mut rng, None);
    let st = weighted_settings(
        ss(
            Interpolator::DampedSinc,
            Weighting::InverseVariance,
            StandardMask::Drop,
        ),
        4,
        &[Some(1.0), Some(0.3), Some(2.0), Some(1.0), Some(0.7)],
    );
    let run_on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let prep = prepare(&data, &st).unwrap();
            let s = st.standard.clone().unwrap();
            combine_standard_with_cache(&prep, &s, 4, &Cancel::new(), &StandardCache::new())
                .unwrap()
        })
    };
    let (one, three) = (run_on(1), run_on(3));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one.flux), bits(&three.flux));
    for (a, b) in one.band.iter().zip(&three.band) {
        assert_eq!(bits(a), bits(b));
    }
}

/// Multi-chip visits with real masks, selection and LSF: a weight applies to every chip.
#[test]
fn apogee_visit_weight_equals_duplicating_the_visit() {
    let data = frizzview::synth::apogee::generate(&frizzview::synth::apogee::ApogeeParams {
        n_visits: 3,
        ..frizzview::synth::apogee::ApogeeParams::default()
    })
    .unwrap();
    let mut dup = data.clone();
    dup.visits.push(Arc::new((*data.visits[2]).clone()));
    for interp in [Interpolator::CubicSpline, Interpolator::DampedSinc] {
        let s = ss(interp, Weighting::InverseVariance, StandardMask::Drop);
        let with = |d: &Dataset, weights: &[f64]| {
            let mut st = weighted_settings(s.clone(), 2, &[]);
            st.grid = GridSpec::Apogee;
            st.bad_bits = frizzview::model::mask::APOGEE_BAD_BITS;
            st.shift = frizzview::settings::ShiftSource::Vrel;
            st.visits = weights
                .iter()
                .map(|&w| VisitSetting {
                    weight: w,
                    ..VisitSetting::default()
                })
                .collect();
            combine(d, &st, &Cancel::new()).unwrap().standard.unwrap()
        };
        let w = with(&data, &[1.0, 1.0, 2.0]);
        let d = with(&dup, &[1.0; 4]);
        let plain = with(&data, &[1.0; 3]);
        let (n, moved) = weighted_equals_duplicated(&w, &d, &plain, 1e-11, &format!("{interp:?}"));
        assert!(
            n > 7000 && moved > n / 2,
            "{interp:?}: {n} pixels, {moved} moved"
        );
    }
}
