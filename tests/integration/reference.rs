//! The Fourier forward model against the Python reference (frizzle 0.2.8 in float64 and the
//! dense numpy equations), fixtures in tests/fixtures/reference (see its README).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use frizzview::combine::{Cancel, MethodResult, dense, fourier, prepare};
use frizzview::model::{Dataset, OutputGrid, Visit, VisitArrays, VisitMeta};
use frizzview::settings::{
    Basis, ForwardSettings, GridSpec, SelectionMode, Settings, ShiftSource, Weighting,
};
use ndarray::{Array1, Array2};
use ndarray_npy::NpzReader;

fn fixture(name: &str) -> NpzReader<File> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(name);
    NpzReader::new(File::open(&p).expect("fixture exists")).expect("fixture is a npz")
}

/// A dataset from a bundle in frizzle's layout: `lam` is rest-frame ln lambda per visit.
fn dataset(
    lam: &Array2<f64>,
    flux: &Array2<f64>,
    ivar: &Array2<f64>,
    mask: &Array2<bool>,
    flags: Option<&Array2<u64>>,
    lam_out: &Array1<f64>,
) -> Dataset {
    let visits = (0..lam.nrows())
        .map(|i| {
            let meta = VisitMeta {
                name: format!("visit {i}"),
                ..VisitMeta::default()
            };
            let a = VisitArrays {
                wavelength_aa: lam.row(i).iter().map(|x| x.exp()).collect(),
                flux: flux.row(i).to_vec(),
                ivar: ivar.row(i).to_vec(),
                flags: flags.map(|f| f.row(i).to_vec()).unwrap_or_default(),
                bad: mask.row(i).to_vec(),
                ..VisitArrays::default()
            };
            Arc::new(Visit::new(meta, a).expect("valid visit"))
        })
        .collect();
    Dataset {
        name: "reference".into(),
        visits,
        input_grid: Some(OutputGrid::from_ln(lam_out.to_vec()).expect("increasing grid")),
        ..Dataset::default()
    }
}

fn settings(compat: bool, lags: usize) -> Settings {
    Settings {
        grid: GridSpec::FromInput,
        shift: ShiftSource::None,
        weighting: Weighting::InverseVariance,
        bad_bits: 0,
        selection: SelectionMode::Ignore,
        forward: Some(ForwardSettings {
            basis: Basis::Fourier,
            compat,
            n_modes: None,
        }),
        standard: None,
        band_lags: lags,
        ..Settings::default()
    }
}

fn run(data: &Dataset, s: &Settings) -> MethodResult {
    let prep = prepare(data, s).expect("prepare");
    let fs = s.forward.clone().expect("forward settings");
    let mut w = Vec::new();
    fourier::fit(&prep, &fs, s.band_lags, &Cancel::new(), &mut w).expect("fourier fit")
}

fn bundle(name: &str) -> Dataset {
    let mut z = fixture(name);
    let lam: Array2<f64> = z.by_name("lam.npy").expect("lam");
    let flux: Array2<f64> = z.by_name("flux.npy").expect("flux");
    let ivar: Array2<f64> = z.by_name("ivar.npy").expect("ivar");
    let mask: Array2<bool> = z.by_name("mask.npy").expect("mask");
    let flags: Array2<u64> = z.by_name("flags.npy").expect("flags");
    let lam_out: Array1<f64> = z.by_name("lam_out.npy").expect("lam_out");
    dataset(&lam, &flux, &ivar, &mask, Some(&flags), &lam_out)
}

/// y* within `tol_sigma` sigma, diag C* and the band within `tol_rel`, flags and no-data equal.
fn compare_with_outputs(r: &MethodResult, out: &str, tol_sigma: f64, tol_rel: f64) {
    let mut z = fixture(out);
    let y: Array1<f64> = z.by_name("y_star.npy").expect("y");
    let var: Array1<f64> = z.by_name("C_star_diag.npy").expect("diag");
    let band: Array2<f64> = z.by_name("C_star_band.npy").expect("band");
    let flags: Array1<u64> = z.by_name("flags_star.npy").expect("flags");
    let nd: Array1<bool> = z.by_name("no_data_mask.npy").expect("no data");
    assert_eq!(r.no_data, nd.to_vec(), "no-data masks differ");
    assert_eq!(r.flags, flags.to_vec(), "flags differ");
    assert!(nd.iter().any(|&b| !b));
    let mut worst_y: f64 = 0.0;
    let mut worst_v: f64 = 0.0;
    let mut n_checked = 0;
    for l in 0..y.len() {
        if nd[l] {
            assert!(r.flux[l].is_nan() && r.var[l].is_nan());
            continue;
        }
        let s = var[l].sqrt();
        worst_y = worst_y.max((r.flux[l] - y[l]).abs() / s);
        worst_v = worst_v.max((r.var[l] - var[l]).abs() / var[l]);
        n_checked += 1;
    }
    assert!(n_checked > y.len() / 2);
    assert!(worst_y < tol_sigma, "max |dy*| = {worst_y:.3e} sigma");
    assert!(worst_v < tol_rel, "max relative d var = {worst_v:.3e}");
    let lags = band.nrows().min(r.band.len());
    assert!(lags >= 6);
    let mut worst_b: f64 = 0.0;
    for k in 1..lags {
        for l in 0..y.len() - k {
            let want = band[[k, l]];
            if !want.is_finite() || nd[l] || nd[l + k] {
                continue;
            }
            let norm = (var[l] * var[l + k]).sqrt();
            worst_b = worst_b.max((r.band[k][l] - want).abs() / norm);
        }
    }
    eprintln!(
        "{out}: max |dy*| = {worst_y:.2e} sigma, max rel d var = {worst_v:.2e}, max band err = {worst_b:.2e}"
    );
    assert!(
        worst_b < tol_rel,
        "max band error / sigma_l sigma_l+k = {worst_b:.3e}"
    );
}

#[test]
fn math_ref_f64_fast_and_dense_match_the_equations() {
    let mut z = fixture("math_ref_f64.npz");
    let lam: Array2<f64> = z.by_name("small_in_lam.npy").expect("lam");
    let flux: Array2<f64> = z.by_name("small_in_flux.npy").expect("flux");
    let ivar: Array2<f64> = z.by_name("small_in_ivar.npy").expect("ivar");
    let mask: Array2<bool> = z.by_name("small_in_mask.npy").expect("mask");
    let lam_out: Array1<f64> = z.by_name("small_lam_out.npy").expect("lam_out");
    let y_dense: Array1<f64> = z.by_name("small_y_dense.npy").expect("y");
    let y_frizzle: Array1<f64> = z.by_name("small_y_frizzle.npy").expect("y");
    let c_dense: Array2<f64> = z.by_name("small_C_dense.npy").expect("C");
    let data = dataset(&lam, &flux, &ivar, &mask, None, &lam_out);
    let s = settings(true, 8);
    let r = run(&data, &s);
    let n = lam_out.len();
    assert_eq!(r.flux.len(), n);
    // The reference ran without censoring; this grid lies inside the data, so nothing is censored.
    assert!(r.no_data.iter().all(|&b| !b));
    for l in 0..n {
        assert!((r.flux[l] - y_dense[l]).abs() < 1e-7, "y*[{l}]");
        assert!(
            (r.flux[l] - y_frizzle[l]).abs() < 2e-7,
            "y*[{l}] vs frizzle"
        );
        for k in 0..r.band.len() {
            if l + k < n {
                let want = c_dense[[l, l + k]];
                let norm = (c_dense[[l, l]] * c_dense[[l + k, l + k]]).sqrt();
                assert!(
                    (r.band[k][l] - want).abs() < 1e-6 * norm,
                    "C*[{l},{}] = {} vs {want}",
                    l + k,
                    r.band[k][l]
                );
            }
        }
    }
    // cond(X^T W X) of the reference problem is 17.64 (numpy); power iteration bounds it from below.
    let cond = r.condition.expect("condition estimate");
    eprintln!("math_ref condition estimate {cond:.3}");
    assert!(
        cond <= 17.64 * 1.001 && cond > 17.64 * 0.5,
        "condition {cond}"
    );
    // The dense oracle reproduces the full matrix.
    let prep = prepare(&data, &s).expect("prepare");
    let d = dense::fit(&prep, s.forward.as_ref().expect("fs")).expect("dense");
    for l in 0..n {
        assert!((d.flux[l] - y_dense[l]).abs() < 1e-7);
        for m in 0..n {
            let norm = (c_dense[[l, l]] * c_dense[[m, m]]).sqrt();
            assert!(
                (d.cov[l][m] - c_dense[[l, m]]).abs() < 1e-6 * norm,
                "dense C*[{l},{m}]"
            );
        }
    }
}

#[test]
fn case_a_f64_matches_frizzle() {
    let data = bundle("case_a_f64_input.npz");
    let r = run(&data, &settings(true, 5));
    compare_with_outputs(&r, "case_a_f64_out.npz", 1e-5, 1e-5);
    // The model reproduces y* at the output pixels.
    let model = r.model.as_ref().expect("model");
    let grid = data.input_grid.as_ref().expect("grid");
    let f = model.eval(&grid.ln_wave);
    for ((fl, y), &nd) in f.iter().zip(&r.flux).zip(&r.no_data) {
        if !nd {
            assert!((fl - y).abs() < 1e-9 * (1.0 + y.abs()));
        }
    }
}

#[test]
fn case_b_f32_matches_the_float64_reference() {
    let data = bundle("case_b_f32_input.npz");
    let r = run(&data, &settings(true, 5));
    compare_with_outputs(&r, "case_b_f32_fastref_out.npz", 1e-5, 1e-5);
}
