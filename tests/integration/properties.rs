//! Properties of the exact Fourier forward model: fast path == dense oracle, invariances,
//! mask hygiene, selection modes, and the fixed mode's edge behaviour (frizzle 0.2.8's period is
//! barely longer than the span, so the first and last output pixels are one point on the circle).

use std::sync::Arc;

use frizzview::combine::{Cancel, CombineError, MethodResult, dense, fourier, prepare};
use frizzview::model::{Dataset, OutputGrid, VelocityKind, Visit, VisitArrays, VisitMeta};
use frizzview::settings::{
    Basis, ForwardSettings, GridSpec, SelectionMode, Settings, ShiftSource, Weighting,
};

/// A small deterministic generator (SplitMix64), so tests need no RNG crate API.
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

const C_KMS: f64 = 299_792.458;
const DX_IN: f64 = 1.3816e-5;
const X_START: f64 = 9.65;

/// Problem description for [`synth`].
#[derive(Clone)]
struct Spec {
    seed: u64,
    n_visits: usize,
    n_pix: usize,
    snr: f64,
    bad_frac: f64,
    /// Relative continuum change across the detector.
    slope: f64,
    /// Input pixels `gap.0..gap.1` of every visit are bad (a chip gap).
    gap: Option<(usize, usize)>,
}

impl Spec {
    fn small(seed: u64) -> Self {
        Self {
            seed,
            n_visits: 4,
            n_pix: 70,
            snr: 30.0,
            bad_frac: 0.03,
            slope: 0.0,
            gap: None,
        }
    }
}

fn truth(spec: &Spec, x: f64) -> f64 {
    let span = DX_IN * spec.n_pix as f64;
    let cont = 1.0 + spec.slope * (x - X_START) / span;
    let mut f = 1.0;
    for j in 0..(spec.n_pix / 12).max(1) {
        let xl = X_START + span * (0.05 + 0.9 * ((j as f64 * 0.618_034) % 1.0));
        let depth = 0.2 + 0.5 * ((j as f64 * 0.414_21) % 1.0);
        let s = 1.5 * DX_IN;
        f -= depth * (-(x - xl).powi(2) / (2.0 * s * s)).exp();
    }
    cont * f
}

/// Visits observed at random velocities (stored as the true velocity) on a common detector grid.
fn synth(spec: &Spec) -> Dataset {
    let mut rng = Rng(spec.seed);
    let visits = (0..spec.n_visits)
        .map(|i| {
            let v = 60.0 * rng.uniform() - 30.0;
            let dx = (1.0 + v / C_KMS).ln();
            let mut a = VisitArrays::default();
            for p in 0..spec.n_pix {
                let x_obs = X_START + DX_IN * p as f64;
                let f = truth(spec, x_obs - dx);
                let sigma = f.abs().sqrt() / spec.snr;
                a.wavelength_aa.push(x_obs.exp());
                a.flux.push(f + sigma * rng.normal());
                a.ivar.push(1.0 / (sigma * sigma));
                let in_gap = spec.gap.is_some_and(|(g0, g1)| (g0..g1).contains(&p));
                a.bad.push(in_gap || rng.uniform() < spec.bad_frac);
                a.flags.push(if rng.uniform() < 0.05 { 1 << 3 } else { 0 });
            }
            let mut meta = VisitMeta {
                name: format!("v{i}"),
                ..VisitMeta::default()
            };
            meta.set_velocity(VelocityKind::True, v);
            Arc::new(Visit::new(meta, a).expect("valid synthetic visit"))
        })
        .collect();
    Dataset {
        name: "synthetic".into(),
        visits,
        input_grid: Some(grid(spec, 0)),
        ..Dataset::default()
    }
}

/// Output grid inside the detector range (margin of 3 input pixels), step = input step,
/// shifted by `d` output pixels.
fn grid(spec: &Spec, d: i64) -> OutputGrid {
    let ln10 = std::f64::consts::LN_10;
    let n = spec.n_pix - 6;
    let start = X_START + 3.0 * DX_IN + d as f64 * DX_IN;
    OutputGrid::log_linear(start / ln10, DX_IN / ln10, n)
}

fn settings(compat: bool) -> Settings {
    Settings {
        grid: GridSpec::FromInput,
        shift: ShiftSource::True,
        weighting: Weighting::InverseVariance,
        bad_bits: 0,
        selection: SelectionMode::Ignore,
        forward: Some(ForwardSettings {
            basis: Basis::Fourier,
            compat,
            n_modes: None,
        }),
        standard: None,
        band_lags: 5,
        ..Settings::default()
    }
}

fn run(data: &Dataset, s: &Settings) -> Result<MethodResult, CombineError> {
    let prep = prepare(data, s)?;
    let fs = s.forward.clone().expect("forward settings");
    fourier::fit(&prep, &fs, s.band_lags, &Cancel::new(), &mut Vec::new())
}

/// Same no-data pixels, y* within `tol` sigma, band within `tol` of sigma_l sigma_l+k.
fn assert_same(a: &MethodResult, b: &MethodResult, tol: f64, what: &str) {
    assert_eq!(a.no_data, b.no_data, "{what}: no-data");
    assert_eq!(a.flags, b.flags, "{what}: flags");
    let n = a.flux.len();
    let mut n_finite = 0;
    for l in 0..n {
        if a.no_data[l] {
            assert!(
                a.flux[l].is_nan() && b.flux[l].is_nan(),
                "{what}: pixel {l}"
            );
            continue;
        }
        n_finite += 1;
        let s = a.var[l].sqrt();
        assert!(s.is_finite() && s > 0.0, "{what}: sigma[{l}] = {s}");
        assert!(
            (a.flux[l] - b.flux[l]).abs() <= tol * s,
            "{what}: y*[{l}] {} vs {}",
            a.flux[l],
            b.flux[l]
        );
        for k in 0..a.band.len().min(b.band.len()) {
            if l + k < n && !a.no_data[l + k] {
                let norm = (a.var[l] * a.var[l + k]).sqrt();
                assert!(
                    (a.band[k][l] - b.band[k][l]).abs() <= tol * norm,
                    "{what}: C*[{l},{}] {} vs {}",
                    l + k,
                    a.band[k][l],
                    b.band[k][l]
                );
            }
        }
    }
    assert!(n_finite > n / 2, "{what}: too few pixels with data");
}

#[test]
fn fast_matches_dense_on_random_problems() {
    for seed in 1..=6u64 {
        for compat in [true, false] {
            let mut spec = Spec::small(seed);
            spec.n_visits = 2 + seed as usize % 4;
            spec.n_pix = 50 + 13 * seed as usize;
            // A chip gap: fixed mode splits there; frizzle's single period across it is singular.
            if seed % 2 == 0 && !compat {
                spec.gap = Some((spec.n_pix / 3, spec.n_pix / 3 + 15));
            }
            // A segment of only a few output pixels before the gap.
            if seed == 5 && !compat {
                spec.gap = Some((9, 25));
            }
            let data = synth(&spec);
            let s = settings(compat);
            let fast = run(&data, &s).expect("fast");
            let prep = prepare(&data, &s).expect("prepare");
            let d = dense::fit(&prep, s.forward.as_ref().expect("fs")).expect("dense");
            let what = format!("seed {seed} compat {compat}");
            assert_eq!(fast.no_data, d.no_data, "{what}");
            let n = fast.flux.len();
            for l in 0..n {
                if fast.no_data[l] {
                    assert!(fast.flux[l].is_nan() && d.flux[l].is_nan());
                    continue;
                }
                let s = d.cov[l][l].sqrt();
                assert!(
                    (fast.flux[l] - d.flux[l]).abs() < 1e-7 * s,
                    "{what}: y*[{l}]"
                );
                for k in 0..fast.band.len() {
                    if l + k >= n || fast.no_data[l + k] {
                        continue;
                    }
                    let norm = (d.cov[l][l] * d.cov[l + k][l + k]).sqrt();
                    assert!(
                        (fast.band[k][l] - d.cov[l][l + k]).abs() < 1e-7 * norm,
                        "{what}: C*[{l},{}] {} vs {}",
                        l + k,
                        fast.band[k][l],
                        d.cov[l][l + k]
                    );
                }
            }
            if !compat && spec.gap.is_some() {
                // The gap splits the fixed-mode fit: its output pixels have no data.
                assert!(fast.no_data.iter().filter(|&&b| b).count() >= 8, "{what}");
            }
        }
    }
}

#[test]
fn scaling_all_weights_changes_only_the_variance_scale() {
    for compat in [true, false] {
        let spec = Spec::small(11);
        let a = synth(&spec);
        let mut b = a.clone();
        let f = 37.5;
        b.visits = a
            .visits
            .iter()
            .map(|v| {
                let arr = VisitArrays {
                    wavelength_aa: v.wavelength_aa().to_vec(),
                    flux: v.flux().to_vec(),
                    ivar: v.ivar().iter().map(|x| x * f).collect(),
                    flags: v.flags().to_vec(),
                    bad: v.bad().to_vec(),
                    ..VisitArrays::default()
                };
                Arc::new(Visit::new(v.meta.clone(), arr).expect("valid"))
            })
            .collect();
        let s = settings(compat);
        let ra = run(&a, &s).expect("a");
        let mut rb = run(&b, &s).expect("b");
        for row in &mut rb.band {
            row.iter_mut().for_each(|c| *c *= f);
        }
        rb.var.iter_mut().for_each(|c| *c *= f);
        assert_same(&ra, &rb, 1e-8, &format!("weights x {f}, compat {compat}"));
    }
}

#[test]
fn visit_order_changes_nothing() {
    for compat in [true, false] {
        let mut spec = Spec::small(5);
        spec.n_visits = 5;
        let a = synth(&spec);
        let mut b = a.clone();
        b.visits.reverse();
        let s = settings(compat);
        assert_same(
            &run(&a, &s).expect("a"),
            &run(&b, &s).expect("b"),
            1e-8,
            &format!("reversed visits, compat {compat}"),
        );
    }
}

#[test]
fn shifting_data_and_grid_by_whole_pixels_shifts_the_result() {
    for compat in [true, false] {
        for d in [1i64, 7] {
            let spec = Spec::small(21 + d as u64);
            let a = synth(&spec);
            let mut b = a.clone();
            let factor = (d as f64 * DX_IN).exp();
            b.visits = a
                .visits
                .iter()
                .map(|v| {
                    let arr = VisitArrays {
                        wavelength_aa: v.wavelength_aa().iter().map(|w| w * factor).collect(),
                        flux: v.flux().to_vec(),
                        ivar: v.ivar().to_vec(),
                        flags: v.flags().to_vec(),
                        bad: v.bad().to_vec(),
                        ..VisitArrays::default()
                    };
                    Arc::new(Visit::new(v.meta.clone(), arr).expect("valid"))
                })
                .collect();
            b.input_grid = Some(grid(&spec, d));
            let s = settings(compat);
            assert_same(
                &run(&a, &s).expect("a"),
                &run(&b, &s).expect("b"),
                1e-6,
                &format!("shift {d} px, compat {compat}"),
            );
        }
    }
}

#[test]
fn nan_flux_in_masked_pixels_does_not_leak() {
    for compat in [true, false] {
        let mut spec = Spec::small(8);
        spec.bad_frac = 0.08;
        let a = synth(&spec);
        let with = |bad_value: f64| -> Dataset {
            let mut d = a.clone();
            d.visits = a
                .visits
                .iter()
                .map(|v| {
                    let flux = v
                        .flux()
                        .iter()
                        .zip(v.bad())
                        .map(|(&f, &b)| if b { bad_value } else { f })
                        .collect();
                    let arr = VisitArrays {
                        wavelength_aa: v.wavelength_aa().to_vec(),
                        flux,
                        ivar: v.ivar().to_vec(),
                        flags: v.flags().to_vec(),
                        bad: v.bad().to_vec(),
                        ..VisitArrays::default()
                    };
                    Arc::new(Visit::new(v.meta.clone(), arr).expect("valid"))
                })
                .collect();
            d
        };
        let s = settings(compat);
        let r_nan = run(&with(f64::NAN), &s).expect("nan");
        let r_big = run(&with(1e30), &s).expect("huge");
        assert_same(
            &r_nan,
            &r_big,
            0.0,
            &format!("masked NaN vs 1e30, compat {compat}"),
        );
        assert_same(&r_nan, &run(&a, &s).expect("a"), 0.0, "masked NaN vs data");
        for v in &r_nan.visits {
            assert!(v.chi2.is_finite());
        }
    }
}

#[test]
fn unit_selection_gives_the_same_answer_in_every_mode() {
    let spec = Spec::small(3);
    let a = synth(&spec);
    let with_s = |divided: bool| -> Dataset {
        let mut d = a.clone();
        d.visits = a
            .visits
            .iter()
            .map(|v| {
                let arr = VisitArrays {
                    wavelength_aa: v.wavelength_aa().to_vec(),
                    flux: v.flux().to_vec(),
                    ivar: v.ivar().to_vec(),
                    flags: v.flags().to_vec(),
                    bad: v.bad().to_vec(),
                    selection: Some(vec![1.0; v.len()]),
                    flux_divided_by_selection: divided,
                    ..VisitArrays::default()
                };
                Arc::new(Visit::new(v.meta.clone(), arr).expect("valid"))
            })
            .collect();
        d
    };
    for compat in [true, false] {
        let base = run(&a, &settings(compat)).expect("ignore");
        for divided in [false, true] {
            for mode in [
                SelectionMode::Ignore,
                SelectionMode::Multiply,
                SelectionMode::Divide,
            ] {
                let mut s = settings(compat);
                s.selection = mode;
                let r = run(&with_s(divided), &s).expect("selection");
                assert_same(&base, &r, 1e-12, &format!("{mode:?} divided {divided}"));
            }
        }
    }
}

#[test]
fn fixed_mode_keeps_edges_as_good_as_the_interior_on_a_sloped_continuum() {
    let spec = Spec {
        seed: 99,
        n_visits: 10,
        n_pix: 160,
        snr: 200.0,
        bad_frac: 0.0,
        slope: 0.5,
        gap: None,
    };
    let data = synth(&spec);
    let g = grid(&spec, 0);
    let truth_out: Vec<f64> = g.ln_wave.iter().map(|&x| truth(&spec, x)).collect();
    let errors = |compat: bool| -> (f64, f64) {
        let r = run(&data, &settings(compat)).expect("fit");
        let n = r.flux.len();
        let err = |l: usize| (r.flux[l] - truth_out[l]).abs();
        let edge = (0..3).chain(n - 3..n).map(err).fold(0.0, f64::max);
        let interior = (10..n - 10).map(err).fold(0.0, f64::max);
        (edge, interior)
    };
    // frizzle's period exceeds the span by ~0.003 output pixels: y*[0] ~ y*[last] is forced
    // although the truth differs by ~50% there.
    let rc = run(&data, &settings(true)).expect("compat");
    let n = rc.flux.len();
    let truth_jump = (truth_out[n - 1] - truth_out[0]).abs();
    assert!(truth_jump > 0.3);
    assert!((rc.flux[n - 1] - rc.flux[0]).abs() < 0.05 * truth_jump);
    let (edge_c, int_c) = errors(true);
    let (edge_f, int_f) = errors(false);
    eprintln!(
        "sloped continuum: compat edge {edge_c:.4} interior {int_c:.4}; fixed edge {edge_f:.4} interior {int_f:.4}"
    );
    // frizzle's period ~ span forces y*[0] ~ y*[-1], so a 50% slope breaks its edges.
    assert!(edge_c > 0.1, "compat edge error {edge_c}");
    assert!(
        edge_f < 3.0 * int_f.max(0.01),
        "fixed edge error {edge_f} vs interior {int_f}"
    );
    assert!(edge_f < edge_c / 5.0);
}

#[test]
fn even_n_modes_is_refused_in_compat_mode_and_accepted_in_fixed_mode() {
    let data = synth(&Spec::small(4));
    let mut s = settings(true);
    if let Some(f) = s.forward.as_mut() {
        f.n_modes = Some(40);
    }
    match run(&data, &s) {
        Err(CombineError::Other(msg)) => assert!(msg.contains("even"), "{msg}"),
        other => panic!("expected an error, got {:?}", other.map(|r| r.flux.len())),
    }
    s.forward = Some(ForwardSettings {
        basis: Basis::Fourier,
        compat: false,
        n_modes: Some(40),
    });
    let r = run(&data, &s).expect("fixed mode accepts even P");
    assert!(
        r.flux
            .iter()
            .zip(&r.no_data)
            .all(|(f, &nd)| nd || f.is_finite())
    );
}

#[test]
fn model_derivative_matches_finite_differences_and_is_nan_outside() {
    let spec = Spec::small(6);
    let data = synth(&spec);
    for compat in [true, false] {
        let r = run(&data, &settings(compat)).expect("fit");
        let model = r.model.as_ref().expect("model");
        let g = grid(&spec, 0);
        let xs: Vec<f64> = g.ln_wave[5..g.len() - 5]
            .iter()
            .map(|x| x + 0.3 * DX_IN)
            .collect();
        let h = 1e-3 * DX_IN;
        let plus: Vec<f64> = xs.iter().map(|x| x + h).collect();
        let minus: Vec<f64> = xs.iter().map(|x| x - h).collect();
        let (fp, fm) = (model.eval(&plus), model.eval(&minus));
        let d = model.eval_deriv(&xs);
        let scale = d.iter().map(|v| v.abs()).fold(0.0, f64::max);
        for i in 0..xs.len() {
            let fd = (fp[i] - fm[i]) / (2.0 * h);
            assert!(
                (fd - d[i]).abs() < 1e-4 * scale,
                "x {}: {fd} vs {}",
                xs[i],
                d[i]
            );
        }
        let outside = model.eval(&[g.ln_wave[0] - 50.0 * DX_IN]);
        assert!(outside[0].is_nan());
    }
}

#[test]
fn compat_across_a_gap_is_regularised_with_a_warning() {
    let mut spec = Spec::small(2);
    spec.gap = Some((25, 45));
    let data = synth(&spec);
    let s = settings(true);
    let prep = prepare(&data, &s).expect("prepare");
    let mut w = Vec::new();
    let r = fourier::fit(
        &prep,
        s.forward.as_ref().expect("fs"),
        5,
        &Cancel::new(),
        &mut w,
    )
    .expect("regularised fit");
    assert!(
        w.iter()
            .any(|w| matches!(w, frizzview::combine::Warning::IllConditioned { .. })),
        "{w:?}"
    );
    // frizzle counts masked pixels as data, so its censoring leaves a masked gap uncensored.
    assert!(r.no_data.iter().all(|&b| !b));
    assert!(r.flux.iter().all(|f| f.is_finite()));
    // The fixed mode censors it.
    let rf = run(&data, &settings(false)).expect("fixed");
    assert!(rf.no_data.iter().filter(|&&b| b).count() >= 10);
}

#[test]
fn cancel_stops_the_fit() {
    let data = synth(&Spec::small(2));
    let s = settings(false);
    let prep = prepare(&data, &s).expect("prepare");
    let c = Cancel::new();
    c.cancel();
    let r = fourier::fit(
        &prep,
        s.forward.as_ref().expect("fs"),
        5,
        &c,
        &mut Vec::new(),
    );
    assert!(matches!(r, Err(CombineError::Cancelled)));
}
