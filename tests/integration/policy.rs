//! The pixel policy, the robust shift fit and APOGEE standard practice on the real 3-visit
//! APOGEE star (against the pipeline's own apStar of the same visits), and the shift fit's stated
//! errors and zero point on synthetic data.
//!
//! Real-star figures are read from `../shared/data/apogee_2M00005143+5615568/` (see
//! `real_star`); the apStar is copied into a tempdir before fitsio opens it.

use std::path::Path;

use frizzview::combine::{self, Cancel, Combined};
use frizzview::model::VelocityKind;
use frizzview::model::{Dataset, mask, pixel_policy};
use frizzview::settings::{Interpolator, Settings, Weighting};

use super::real_star::{self, RealStar};

/// apStar VRADn of the three visits (header cards VRAD1-3): the pipeline's own refits.
const APSTAR_VRAD: [f64; 3] = [-55.161, -44.637, -43.029];

/// Per-visit chi^2/nu the forward model must reach with default settings.
const MAX_CHI2_NU: f64 = 1.5;

/// Velocities relative to visit 1 must match the apStar's within this (km/s).
const MAX_DV_KMS: f64 = 0.3;

/// Standard practice must match apStar row 0 within this median |d| / sigma, per chip.
const MAX_STD_MEDIAN_SIGMA: f64 = 0.15;

/// Half-width of the running median that normalises both spectra (101 pixels).
const RUNNING_MEDIAN_HALF: usize = 50;

/// The apStar pixel ranges of the three chips (ASPCAP windows, sdss/apogee_drp `utils/norm.py`
/// `gridPix`: log10 lambda starts 4.180476, 4.200510, 4.217064 with 3028, 2495, 1991 px on the
/// grid 4.179 + 6e-6 i), labelled by chip.
const CHIPS: [(&str, usize, usize); 3] = [("c", 246, 3274), ("b", 3585, 6080), ("a", 6344, 8335)];

fn load(star: &RealStar) -> Dataset {
    frizzview::io::load_paths(&star.visits, &frizzview::io::LoadOptions::default())
        .expect("the real apVisit files load")
}

fn run(data: &Dataset, s: &Settings) -> Combined {
    combine::combine(data, s, &Cancel::new()).expect("combination")
}

fn defaults(data: &Dataset) -> Settings {
    frizzview::cli::combine::survey_defaults(data)
}

/// Row 0 of the apStar (FLUX, ERROR, MASK) and its VRADn.
struct ApStar {
    flux: Vec<f64>,
    err: Vec<f64>,
    mask: Vec<i64>,
}

fn read_apstar(path: &Path) -> ApStar {
    let ap = read_other_apstar(path);
    let mut f = fitsio::FitsFile::open(path).expect("open apStar");
    let h0 = f.hdu(0).expect("primary");
    for (i, want) in APSTAR_VRAD.iter().enumerate() {
        let v: f64 = h0
            .read_key(&mut f, &format!("VRAD{}", i + 1))
            .expect("VRADn card");
        assert!((v - want).abs() < 1e-3, "apStar VRAD{} = {v}", i + 1);
    }
    ap
}

/// Row 0 of an apStar (flux, error, mask), without checking its velocities.
fn read_other_apstar(path: &Path) -> ApStar {
    let mut f = fitsio::FitsFile::open(path).expect("open apStar");
    let row0 = |f: &mut fitsio::FitsFile, hdu: usize| -> Vec<f64> {
        let h = f.hdu(hdu).expect("apStar HDU");
        let all: Vec<f64> = h.read_image(f).expect("apStar image");
        all[..8575].to_vec()
    };
    let flux = row0(&mut f, 1);
    let err = row0(&mut f, 2);
    let mask = row0(&mut f, 3).iter().map(|&m| m as i64).collect();
    ApStar { flux, err, mask }
}

/// Running median over +-`RUNNING_MEDIAN_HALF` pixels of the finite values (NaN if none).
fn running_median(y: &[f64]) -> Vec<f64> {
    super::io::running_median(y, RUNNING_MEDIAN_HALF)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Per chip, the median |ours/rm(ours) - apStar/rm(apStar)| / (apStar err / rm(apStar)) over the
/// pixels the pipeline calls good (mask row 0 without the 16639 bits, finite positive error) where
/// both are finite.
fn std_vs_apstar(flux: &[f64], ap: &ApStar) -> Vec<(String, f64, usize)> {
    let good_ap: Vec<bool> = (0..8575)
        .map(|l| {
            ap.mask[l] & mask::APOGEE_BAD_BITS as i64 == 0
                && ap.err[l].is_finite()
                && ap.err[l] > 0.0
                && ap.err[l] < 1e9
                && ap.flux[l] > 0.0
        })
        .collect();
    let theirs: Vec<f64> = (0..8575)
        .map(|l| if good_ap[l] { ap.flux[l] } else { f64::NAN })
        .collect();
    let ours: Vec<f64> = flux.to_vec();
    let rm_t = running_median(&theirs);
    let rm_o = running_median(&ours);
    CHIPS
        .iter()
        .map(|&(name, lo, hi)| {
            let z: Vec<f64> = (lo..hi)
                .filter(|&l| good_ap[l] && ours[l].is_finite() && rm_o[l] > 0.0 && rm_t[l] > 0.0)
                .map(|l| {
                    let d = ours[l] / rm_o[l] - theirs[l] / rm_t[l];
                    (d / (ap.err[l] / rm_t[l])).abs()
                })
                .collect();
            let n = z.len();
            (name.to_owned(), median(z), n)
        })
        .collect()
}

fn fitted_relative(c: &Combined) -> (f64, f64) {
    let fv = c
        .forward
        .as_ref()
        .and_then(|f| f.fitted_velocity.clone())
        .expect("fitted velocities");
    (fv[1].0 - fv[0].0, fv[2].0 - fv[0].0)
}

#[test]
fn real_star_default_chi2_per_visit() {
    let Some(star) = real_star::star("policy::real_star_default_chi2_per_visit") else {
        return;
    };
    let data = load(&star);
    let s = defaults(&data);
    assert_eq!(
        pixel_policy::matching_preset(s.bad_bits, &s.inflate_bits),
        Some(pixel_policy::Preset::ApogeePipeline),
        "APOGEE data default to the pipeline's policy"
    );
    let c = run(&data, &s);
    let chi: Vec<f64> = c
        .forward
        .as_ref()
        .expect("forward")
        .visits
        .iter()
        .map(|v| v.chi2_nu)
        .collect();
    // The old behaviour (16639 bad, nothing inflated) is far from it: the comparison shows that
    // the test can fail.
    let mut old = s.clone();
    old.apply_policy_preset(pixel_policy::Preset::ApogeeBadBits);
    let c_old = run(&data, &old);
    let chi_old: Vec<f64> = c_old
        .forward
        .as_ref()
        .expect("forward")
        .visits
        .iter()
        .map(|v| v.chi2_nu)
        .collect();
    eprintln!("per-visit chi2/nu, APOGEE pipeline policy: {chi:.3?}; bad bits only: {chi_old:.3?}");
    for (i, x) in chi.iter().enumerate() {
        assert!(
            *x <= MAX_CHI2_NU,
            "visit {}: chi2/nu {x:.3} > {MAX_CHI2_NU}",
            i + 1
        );
    }
    assert!(
        chi_old.iter().all(|x| *x > 3.0),
        "bad bits only: {chi_old:?}"
    );
}

#[test]
fn real_star_fitted_velocities_match_the_apstar() {
    let Some(star) = real_star::star("policy::real_star_fitted_velocities_match_the_apstar") else {
        return;
    };
    let data = load(&star);
    let mut s = defaults(&data);
    s.extensions.fit_shifts = true;
    let c = run(&data, &s);
    let (d2, d3) = fitted_relative(&c);
    let want = (
        APSTAR_VRAD[1] - APSTAR_VRAD[0],
        APSTAR_VRAD[2] - APSTAR_VRAD[0],
    );
    let f = c.forward.as_ref().expect("forward");
    let fv = f.fitted_velocity.clone().expect("fitted");
    let zp = f.velocity_zero_point.clone().expect("zero point stated");
    eprintln!(
        "fit shifts: v2-v1 {d2:.3} (apStar {:.3}), v3-v1 {d3:.3} (apStar {:.3}); v_fit {:?}; zero point {} = {:.3} +- {:.3} km/s",
        want.0, want.1, fv, zp.name, zp.v_kms, zp.err_kms
    );
    assert!(
        (d2 - want.0).abs() < MAX_DV_KMS,
        "v2 - v1 = {d2:.3}, apStar {:.3}",
        want.0
    );
    assert!(
        (d3 - want.1).abs() < MAX_DV_KMS,
        "v3 - v1 = {d3:.3}, apStar {:.3}",
        want.1
    );
    for (v, e) in &fv {
        assert!(v.is_finite() && e.is_finite() && *e > 0.0, "{v} +- {e}");
    }
    assert!(zp.err_kms.is_finite() && zp.err_kms > 0.0);
}

#[test]
fn real_star_standard_practice_matches_the_apstar() {
    let Some(star) = real_star::star("policy::real_star_standard_practice_matches_the_apstar")
    else {
        return;
    };
    let data = load(&star);
    let ap = read_apstar(&star.apstar);
    let s = defaults(&data);
    assert_eq!(
        s.standard.as_ref().map(|st| st.interpolator),
        Some(Interpolator::DampedSinc),
        "APOGEE standard practice defaults to the pipeline's damped sinc"
    );
    let c = run(&data, &s);
    let per_chip = std_vs_apstar(&c.standard.as_ref().expect("standard").flux, &ap);
    let mut cubic = s.clone();
    if let Some(st) = cubic.standard.as_mut() {
        st.interpolator = Interpolator::CubicSpline;
    }
    let c_cubic = run(&data, &cubic);
    let per_chip_cubic = std_vs_apstar(&c_cubic.standard.as_ref().expect("standard").flux, &ap);
    eprintln!(
        "standard practice vs apStar row 0, median |d|/sigma per chip: sinc {per_chip:.3?}; cubic {per_chip_cubic:.3?}"
    );
    for (chip, m, n) in &per_chip {
        assert!(*n > 1000, "chip {chip}: only {n} pixels compared");
        assert!(
            *m <= MAX_STD_MEDIAN_SIGMA,
            "chip {chip}: median {m:.3} sigma"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The CLI with defaults on the real files.

fn cli_combine(star: &RealStar, extra: &[&str], out: &Path) {
    let mut cmd = super::shared::frizzview();
    cmd.arg("combine");
    for v in &star.visits {
        cmd.arg(v);
    }
    cmd.arg("-o").arg(out).args(extra);
    let o = cmd.output().expect("spawn frizzview");
    assert!(
        o.status.success(),
        "frizzview combine failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn npz_vec(path: &Path, key: &str) -> Vec<f64> {
    let mut z = ndarray_npy::NpzReader::new(std::fs::File::open(path).expect("open")).expect("npz");
    let a: ndarray::Array1<f64> = z.by_name(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    a.to_vec()
}

#[test]
fn real_star_cli_defaults() {
    let Some(star) = real_star::star("policy::real_star_cli_defaults") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("s.npz");
    cli_combine(&star, &[], &plain);
    let chi = npz_vec(&plain, "visit_chi2_nu");
    let ap = read_apstar(&star.apstar);
    let per_chip = std_vs_apstar(&npz_vec(&plain, "standard_y_star"), &ap);
    let fitted = dir.path().join("f.npz");
    cli_combine(&star, &["--fit-shifts"], &fitted);
    let v = npz_vec(&fitted, "v_fit_kms");
    let zerr = npz_vec(&fitted, "v_zero_err_kms");
    eprintln!(
        "CLI defaults: chi2/nu {chi:.3?}; standard vs apStar {per_chip:.3?}; --fit-shifts v2-v1 {:.3}, v3-v1 {:.3}, v_zero_err {zerr:.3?}",
        v[1] - v[0],
        v[2] - v[0]
    );
    assert!(chi.iter().all(|x| *x <= MAX_CHI2_NU), "{chi:?}");
    for (chip, m, _) in &per_chip {
        assert!(*m <= MAX_STD_MEDIAN_SIGMA, "chip {chip}: {m}");
    }
    let want = (
        APSTAR_VRAD[1] - APSTAR_VRAD[0],
        APSTAR_VRAD[2] - APSTAR_VRAD[0],
    );
    assert!((v[1] - v[0] - want.0).abs() < MAX_DV_KMS, "{v:?}");
    assert!((v[2] - v[0] - want.1).abs() < MAX_DV_KMS, "{v:?}");
    assert!(
        zerr.len() == 1 && zerr[0].is_finite() && zerr[0] > 0.0,
        "{zerr:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Synthetic: the stated errors and zero point of fitted velocities.

/// One realization of `frizzview synth apogee --visits 16 --seed SEED --velocity-error 1.0`,
/// combined with `--fit-shifts` and defaults: the pulls (v_fit - v_true - offset) / v_fit_err,
/// with the offset = stated zero point - mean true velocity, and that offset in units of the
/// stated zero-point error.
fn synthetic_pulls(seed: u64) -> (Vec<f64>, f64) {
    use frizzview::model::VelocityKind;
    let p = frizzview::synth::apogee::ApogeeParams {
        n_visits: 16,
        seed,
        velocity_error_kms: 1.0,
        ..frizzview::synth::apogee::ApogeeParams::default()
    };
    let data = frizzview::synth::apogee::generate(&p).expect("synthetic visits");
    let mut s = defaults(&data);
    s.extensions.fit_shifts = true;
    s.standard = None;
    // Synthetic data carry no instrument floor (the APOGEE default adds one in quadrature).
    s.velocity.floor_kms = 0.0;
    let c = run(&data, &s);
    let f = c.forward.as_ref().expect("forward");
    let fv = f.fitted_velocity.clone().expect("fitted");
    let zp = f.velocity_zero_point.clone().expect("zero point");
    let truth: Vec<f64> = data
        .visits
        .iter()
        .map(|v| v.meta.velocity(VelocityKind::True).expect("true velocity"))
        .collect();
    let n = truth.len() as f64;
    let r: Vec<f64> = fv.iter().zip(&truth).map(|((v, _), t)| v - t).collect();
    let offset = zp.v_kms - truth.iter().sum::<f64>() / n;
    // The stated zero point is the one the fitted velocities carry (the gauge fixes the mean
    // shift ln(1 + v/c), so the mean velocity agrees to second order in v/c).
    let mean_r = r.iter().sum::<f64>() / n;
    assert!((mean_r - offset).abs() < 1e-4, "{mean_r} vs {offset}");
    let pulls = r
        .iter()
        .zip(&fv)
        .map(|(ri, (_, e))| (ri - offset) / e)
        .collect();
    (pulls, offset / zp.err_kms)
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

/// Seeds 1-8 of the 16-visit synthetic star with 1 km/s header errors: the pulls of the fitted
/// velocities after removing the stated zero point's offset have RMS within [0.8, 1.2] (pooled
/// over the 128 visits), and every seed's offset is within 3 of its stated uncertainty.
///
/// Pooled, because one 16-visit realization cannot be held to +-0.2: the visits' errors share the
/// template's noise, so the pulls of one realization are correlated and their RMS scatters from
/// seed to seed by more than 1/sqrt(32) (measured: 0.71-1.34 over these seeds; seed 7, the
/// issue's example, gives 1.34 on the clean generator too, i.e. from photon noise alone).
#[test]
fn synthetic_fitted_velocity_pulls_and_zero_point() {
    let mut all = Vec::new();
    let mut lines = Vec::new();
    for seed in 1..=8u64 {
        let (pulls, zp_pull) = synthetic_pulls(seed);
        lines.push(format!(
            "seed {seed}: pull RMS {:.3}, zero-point offset / stated error {zp_pull:.2}",
            rms(&pulls)
        ));
        assert!(zp_pull.abs() <= 3.0, "seed {seed}: offset {zp_pull} sigma");
        all.extend(pulls);
    }
    let pooled = rms(&all);
    eprintln!(
        "{}\npooled pull RMS over {} visits: {pooled:.3}",
        lines.join("\n"),
        all.len()
    );
    assert!((0.8..=1.2).contains(&pooled), "pooled pull RMS {pooled}");
}

// ---------------------------------------------------------------------------------------------
// The policy as a setting and a flag.

fn small_apogee() -> Dataset {
    frizzview::synth::apogee::generate(&frizzview::synth::apogee::ApogeeParams {
        n_visits: 2,
        ..frizzview::synth::apogee::ApogeeParams::default()
    })
    .expect("synthetic visits")
}

/// The arguments of `frizzview combine` with clap's defaults (`Default` leaves them empty).
fn cli_args() -> frizzview::cli::combine::CombineArgs {
    frizzview::cli::combine::CombineArgs {
        method: "both".into(),
        basis: "fourier".into(),
        std_mask: "drop".into(),
        lags: 5,
        format: "fits".into(),
        ..Default::default()
    }
}

#[test]
fn policy_flags_presets_and_overrides() {
    use frizzview::cli::combine::{CombineArgs, settings_from_args};
    use pixel_policy::BitAction;
    let data = small_apogee();
    let s = settings_from_args(&cli_args(), &data).expect("defaults");
    assert_eq!(s.bit_action(12), BitAction::Inflate(10.0));
    assert_eq!(s.bit_action(9), BitAction::Inflate(5f64.sqrt()));
    assert_eq!(s.bit_action(13), BitAction::Ignore);
    assert_eq!(s.bit_action(0), BitAction::Bad);
    let a = CombineArgs {
        pixel_policy: Some("bad-bits".into()),
        bits: vec![
            "12=inflate:3".into(),
            "SIG_TELLURIC=bad".into(),
            "9=ignore".into(),
        ],
        ..cli_args()
    };
    let s = settings_from_args(&a, &data).expect("flags");
    assert_eq!(s.bad_bits, mask::APOGEE_BAD_BITS | (1 << 13));
    assert_eq!(s.bit_action(12), BitAction::Inflate(3.0));
    assert_eq!(s.bit_action(9), BitAction::Ignore);
    assert_eq!(s.bit_action(10), BitAction::Ignore);
    for bad in ["12=inflate:-2", "NOPE=bad", "12=sometimes", "70=bad"] {
        let a = CombineArgs {
            bits: vec![bad.into()],
            ..cli_args()
        };
        let e = settings_from_args(&a, &data).expect_err(bad);
        assert!(format!("{e:#}").contains("--bit"), "{bad}: {e:#}");
    }
}

#[test]
fn policy_inflates_sigma_and_old_settings_keep_the_old_behaviour() {
    let data = small_apogee();
    let s = defaults(&data);
    let prep = combine::prepare(&data, &s).expect("prepare");
    let mut old = s.clone();
    old.apply_policy_preset(pixel_policy::Preset::ApogeeBadBits);
    let prep_old = combine::prepare(&data, &old).expect("prepare");
    // Every sky-line pixel (and no other good pixel) has its ivar divided by 100.
    let mut n_sky = 0;
    for (v, vo) in prep.visits.iter().zip(&prep_old.visits) {
        for k in 0..v.ivar.len() {
            let f = v.visit.flags()[k];
            if vo.ivar[k] > 0.0 {
                let want = pixel_policy::sigma_factor(f, &s.inflate_bits);
                let got = (vo.ivar[k] / v.ivar[k]).sqrt();
                assert!((got - want).abs() < 1e-9 * want, "{k}: {got} vs {want}");
                if f & (1 << 12) != 0 && f & 0xe00 == 0 {
                    assert!((got - 10.0).abs() < 1e-9);
                    n_sky += 1;
                }
            }
        }
    }
    assert!(n_sky > 100, "{n_sky} sky-line pixels");
    // A settings JSON written before the policy existed (no `inflate_bits`) reads back with
    // nothing inflated: the old result.
    let mut json: serde_json::Value = serde_json::to_value(&s).expect("json");
    json.as_object_mut().expect("object").remove("inflate_bits");
    let back: Settings = serde_json::from_value(json).expect("old settings read");
    assert!(back.inflate_bits.is_empty());
    assert_eq!(back.bad_bits, s.bad_bits);
    // And the policy round-trips through JSON.
    let again: Settings =
        serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("read");
    assert_eq!(again, s);
}

/// The window's mask-bit inspector shows and edits the policy: APOGEE data open with the
/// pipeline preset, the "bad bits (16639)" preset removes the inflation, and the result follows.
#[cfg(feature = "gui")]
#[test]
fn window_mask_inspector_edits_the_policy() {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    use frizzview::app::{FrizzApp, demo};
    let app = FrizzApp::inline(demo::apogee_demo(3).expect("demo data"));
    assert_eq!(
        pixel_policy::matching_preset(app.settings.bad_bits, &app.settings.inflate_bits),
        Some(pixel_policy::Preset::ApogeePipeline)
    );
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(3);
    h.get_by_label("Mask bits").click();
    h.run_steps(2);
    h.get_by_label("current: APOGEE pipeline (bad bits value 16639)");
    h.get_by_label("SIG_SKYLINE (12)");
    let chi_pipeline = h
        .state()
        .result
        .clone()
        .expect("result")
        .forward
        .clone()
        .expect("forward");
    h.get_by_label("bad bits (16639)").click();
    h.run_steps(3);
    let app = h.state();
    assert!(app.settings.inflate_bits.is_empty());
    assert_eq!(app.settings.bad_bits, mask::APOGEE_BAD_BITS);
    let r = app.result.clone().expect("result");
    assert_eq!(r.settings, app.settings, "recomputed for the new policy");
    let f = r.forward.clone().expect("forward");
    // Without inflation the sky-line residuals count fully: chi^2/nu rises for every visit.
    for (a, b) in chi_pipeline.visits.iter().zip(&f.visits) {
        assert!(b.chi2_nu > a.chi2_nu, "{} vs {}", b.chi2_nu, a.chi2_nu);
    }
    h.get_by_label("current: bad bits (16639) (bad bits value 16639)");
}

/// Standard practice inflates after resampling: output pixels that inherit no inflating flag keep
/// exactly the variance they have without the policy; the others get a larger one.
#[test]
fn standard_practice_inflates_only_pixels_that_inherit_the_flags() {
    let data = small_apogee();
    let mut s = defaults(&data);
    s.forward = None;
    // The policy's inflation is that of the inverse-variance flavour; APOGEE's default
    // (`Weighting::ApogeePipeline`, the DR13 row 0) applies the pipeline's own rules instead.
    if let Some(st) = s.standard.as_mut() {
        st.weighting = Weighting::InverseVariance;
    }
    let mut old = s.clone();
    old.apply_policy_preset(pixel_policy::Preset::ApogeeBadBits);
    let a = run(&data, &s).standard.expect("standard");
    let b = run(&data, &old).standard.expect("standard");
    let inflating: u64 = s.inflate_bits.iter().map(|x| 1u64 << x.bit).sum();
    let (mut same, mut larger) = (0, 0);
    for l in 0..a.var.len() {
        if !(a.var[l].is_finite() && b.var[l].is_finite()) {
            continue;
        }
        if a.flags[l] & inflating == 0 {
            // (Equal to rounding: the raw variance is recovered from the inflated ivar.)
            assert!((a.var[l] / b.var[l] - 1.0).abs() < 1e-12, "pixel {l}");
            assert!(
                (a.flux[l] - b.flux[l]).abs() <= 1e-12 * b.flux[l].abs(),
                "pixel {l}"
            );
            same += 1;
        } else {
            assert!(
                a.var[l] > b.var[l],
                "pixel {l}: {} vs {}",
                a.var[l],
                b.var[l]
            );
            larger += 1;
        }
    }
    assert!(
        same > 1000 && larger > 100,
        "{same} unchanged, {larger} inflated"
    );
}

/// The exposure view's residuals are in the sigma the fit used: squared and summed over a visit
/// they give its reported chi^2, on the real star with the pipeline policy (sky-line and
/// persistence pixels inflated). With the file's sigma alone the sum is far larger.
#[test]
fn real_star_exposure_residuals_are_in_the_fits_sigma() {
    let Some(star) = real_star::star("policy::real_star_exposure_residuals_are_in_the_fits_sigma")
    else {
        return;
    };
    let data = load(&star);
    let s = defaults(&data);
    let c = run(&data, &s);
    let f = c.forward.as_ref().expect("forward");
    for (i, (visit, fit)) in data.visits.iter().zip(&f.visits).enumerate() {
        let frame = frizzview::combine::file_frame_factor(visit, &s);
        assert!(
            frame.iter().any(|&c| c.is_finite() && c != 1.0),
            "visit {i}: APOGEE flux is telluric-corrected, so the model is drawn divided by S"
        );
        let (mut sum, mut raw, mut n) = (0.0, 0.0, 0usize);
        for p in 0..visit.len() {
            let r = frizzview::app::plot_ui::residual_in_sigma(
                visit,
                &fit.prediction,
                &frame,
                p,
                s.bad_bits,
                &s.inflate_bits,
            );
            if r.is_finite() {
                sum += r * r;
                n += 1;
                let r0 = frizzview::app::plot_ui::residual_in_sigma(
                    visit,
                    &fit.prediction,
                    &frame,
                    p,
                    s.bad_bits,
                    &[],
                );
                raw += r0 * r0;
            }
        }
        assert_eq!(
            n, fit.n_used,
            "visit {i}: the plotted pixels are the fitted ones"
        );
        assert!(
            (sum - fit.chi2).abs() <= 1e-9 * fit.chi2,
            "visit {i}: plotted residuals give chi^2 {sum}, the fit reports {}",
            fit.chi2
        );
        assert!(
            raw > 1.5 * sum,
            "visit {i}: inflation matters here ({raw} vs {sum})"
        );
        println!("visit {i}: chi2 {sum:.1} (file sigma alone {raw:.1}) over {n} px");
    }
}

/// `combine::file_frame_factor` is the conversion `prepare` applies for the selection function,
/// in every mode and for fluxes delivered divided by S or not: flux = c y, sigma = c sigma_y
/// (with the policy's inflation on top), and NaN exactly where `prepare` masks a tiny S.
#[test]
fn file_frame_factor_is_the_conversion_prepare_applies() {
    use frizzview::model::{Dataset, Visit, VisitArrays, VisitMeta};
    use frizzview::settings::SelectionMode;
    use std::sync::Arc;
    let n = 200;
    let wavelength_aa: Vec<f64> = (0..n).map(|i| 15_200.0 + 0.2 * f64::from(i)).collect();
    let flux: Vec<f64> = (0..n).map(|i| 1.0 + 0.01 * f64::from(i % 17)).collect();
    let ivar: Vec<f64> = (0..n).map(|i| 100.0 + f64::from(i % 5)).collect();
    // A transmission with deep lines, some below the usable minimum, and one NaN.
    let sel: Vec<f64> = (0..n)
        .map(|i| match i % 40 {
            7 => 1e-4,
            8 => f64::NAN,
            9 => 0.3,
            _ => 0.9 + 0.001 * f64::from(i % 10),
        })
        .collect();
    for divided in [true, false] {
        let visit = Visit::new(
            VisitMeta {
                name: format!("divided-{divided}"),
                ..VisitMeta::default()
            },
            VisitArrays {
                wavelength_aa: wavelength_aa.clone(),
                flux: flux.clone(),
                ivar: ivar.clone(),
                selection: Some(sel.clone()),
                flux_divided_by_selection: divided,
                ..VisitArrays::default()
            },
        )
        .expect("visit");
        let data = Dataset {
            visits: vec![Arc::new(visit)],
            ..Dataset::default()
        };
        for mode in [
            SelectionMode::Multiply,
            SelectionMode::Divide,
            SelectionMode::Ignore,
        ] {
            let s = frizzview::settings::Settings {
                selection: mode,
                grid: frizzview::settings::GridSpec::Auto,
                ..frizzview::settings::Settings::default()
            };
            let prep = frizzview::combine::prepare(&data, &s).expect("prepared");
            let pv = &prep.visits[0];
            let c = frizzview::combine::file_frame_factor(&data.visits[0], &s);
            let mut changed = 0;
            for k in 0..n as usize {
                let what = format!("divided {divided}, {mode:?}, pixel {k}");
                if c[k].is_nan() {
                    assert!(
                        pv.masked[k] && pv.ivar[k] == 0.0,
                        "{what}: NaN only where masked"
                    );
                    continue;
                }
                assert!(!pv.masked[k], "{what}: masked with a usable factor");
                assert!(
                    (c[k] * pv.y[k] - flux[k]).abs() <= 1e-12 * flux[k],
                    "{what}: flux"
                );
                let iv = pv.ivar[k] / (c[k] * c[k]);
                assert!((iv - ivar[k]).abs() <= 1e-12 * ivar[k], "{what}: ivar");
                changed += usize::from(c[k] != 1.0);
            }
            let converts = matches!(
                (mode, divided),
                (SelectionMode::Multiply, true) | (SelectionMode::Divide, false)
            );
            assert_eq!(changed > 0, converts, "divided {divided}, {mode:?}");
        }
    }
}

/// The four stars of `../shared/data/apogee_multistar/`, visits with their apStar as the folder
/// names them (the visits renamed by the archive): the apStar's velocities are used where the
/// data agree with them, its row 0 is the reference, and standard practice matches row 0 per
/// chip within 0.25 sigma (median |d|/sigma, as `real_star_standard_practice_matches_the_apstar`
/// measures it) on every star, the faint one (S/N 4.5-7 per visit) included; every apStar
/// velocity is used.
#[test]
fn multistar_visits_with_their_apstar_use_its_velocities_and_match_row_0() {
    for name in super::multistar::STARS {
        let Some(star) = super::multistar::star(name) else {
            return;
        };
        let mut files = star.visits.clone();
        files.push(star.apstar.clone());
        let data = frizzview::io::load_paths(&files, &frizzview::io::LoadOptions::default())
            .expect("load");
        // The visits the apStar does not list (named in a load warning) are excluded, as the
        // pipeline left them out of row 0.
        let mut s = defaults(&data);
        s.visits = data
            .visits
            .iter()
            .map(|v| frizzview::settings::VisitSetting {
                include: v.meta.velocity(VelocityKind::ApStar).is_some(),
                ..frizzview::settings::VisitSetting::default()
            })
            .collect();
        let c = run(&data, &s);
        let check = c.velocity.as_ref().expect("velocities checked");
        let mut used_apstar = 0;
        for (v, x) in data.visits.iter().zip(&check.visits) {
            if let Some(vrad) = v.meta.velocity(VelocityKind::ApStar)
                && !x.replaced
                && x.status == frizzview::velocity::VelocityStatus::Measured
            {
                assert!(
                    (x.used_kms - vrad).abs() < 1e-9,
                    "{name} {}: used {} not the apStar's {vrad}",
                    v.meta.name,
                    x.used_kms
                );
                used_apstar += 1;
            }
        }
        assert!(data.pipeline_coadd.is_some(), "{name}: no row 0");
        let ap = read_other_apstar(&star.apstar);
        let per_chip = std_vs_apstar(&c.standard.as_ref().expect("standard").flux, &ap);
        assert_eq!(
            s.standard.as_ref().map(|st| st.weighting),
            Some(Weighting::ApogeePipeline),
            "APOGEE standard practice defaults to the pipeline's row-0 weighting"
        );
        // Beside it, the inverse-variance mean of the pieces with the pixel policy's inflation
        // (the default before), and the default with the apStar's velocities forced for every
        // visit (no check against the data).
        let std_only = |f: &dyn Fn(&mut Settings)| {
            let mut t = s.clone();
            t.forward = None;
            f(&mut t);
            let r = run(&data, &t);
            std_vs_apstar(&r.standard.as_ref().expect("standard").flux, &ap)
        };
        let per_chip_iv = std_only(&|t: &mut Settings| {
            if let Some(st) = t.standard.as_mut() {
                st.weighting = Weighting::InverseVariance;
            }
        });
        let per_chip_forced = std_only(&|t: &mut Settings| {
            t.shift = frizzview::settings::ShiftSource::ApStar;
            t.velocity.check = false;
        });
        eprintln!(
            "{name}: {used_apstar} apStar velocities used; standard practice vs row 0, median |d|/sigma per chip {per_chip:.3?}; inverse-variance flavour {per_chip_iv:.3?}; apStar velocities forced {per_chip_forced:.3?}"
        );
        // The target, 0.25 sigma, on every star with the pipeline's row-0 weighting
        // (APOGEE's default; 2M00452143 0.024, 0.036, 0.061; 2M05392474 0.024, 0.054, 0.063;
        // the 15-visit 2M03442721 0.118, 0.179, 0.086, where the inverse-variance mean with the
        // policy's x10 sky-line inflation gave 0.504, 0.378, 0.219). The faint star (S/N 4.5-7
        // per visit): 0.012, 0.044, 0.012 with all 6 of its apStar velocities used. Its most
        // precise visit (-4, 0.87 km/s) was named while the check compared it with the median
        // of the others' offsets as if that were exact (0.367, 0.372, 0.414 with 5 used; 0.844,
        // 0.586, 0.713 with 3 before the errors counted the sky/telluric sensitivity); against
        // the others' best common offset, with its error, it is consistent
        // (`velocity::disagreements`). Every apStar velocity of the four stars is used.
        assert_eq!(
            used_apstar,
            data.visits
                .iter()
                .filter(|v| v.meta.velocity(VelocityKind::ApStar).is_some())
                .count(),
            "{name}: an apStar velocity replaced"
        );
        for (chip, m, _) in &per_chip_forced {
            assert!(
                *m <= 0.25,
                "{name} chip {chip}: median {m:.3} sigma with the apStar's velocities"
            );
        }
        for (chip, m, n) in &per_chip {
            assert!(*n > 1000, "{name} chip {chip}: only {n} pixels");
            assert!(*m <= 0.25, "{name} chip {chip}: median {m:.3} sigma");
        }
    }
}

/// Every row of an apStar image HDU (rows x 8575).
fn apstar_rows(path: &Path, hdu: usize) -> Vec<Vec<f64>> {
    let mut f = fitsio::FitsFile::open(path).expect("open apStar");
    let h = f.hdu(hdu).expect("apStar HDU");
    let all: Vec<f64> = h.read_image(&mut f).expect("apStar image");
    all.chunks(8575).map(<[f64]>::to_vec).collect()
}

/// The pipeline-row-0 flavour (`Weighting::ApogeePipeline`) against the pipeline itself with the
/// resampling taken out: the apStar's own resampled visits (rows 2..: flux, error, mask, already
/// on the apStar grid in the rest frame) given as visits, unshifted, linearly interpolated at
/// their own pixels (the identity), must give row 0 (median |ours - row 0| / row-0 error per
/// chip on the pixels the pipeline calls good). Measured: 0.0004-0.0084 sigma on the five stars
/// (the plain inverse-variance mean of the same rows: 0.009-0.56, e.g. 0.560, 0.305, 0.479 on
/// the 15-visit 2M03442721). A residue stays on chip b of the 15-visit star where persistence-flagged pixels differ by up
/// to 3 % (a DR13 rule the rows do not reveal), below the median.
#[test]
fn apstar_row_0_is_rebuilt_from_its_own_resampled_visits() {
    use frizzview::model::{Visit, VisitArrays, VisitMeta};
    let mut paths: Vec<(String, std::path::PathBuf)> = Vec::new();
    if let Some(s) = real_star::star("policy::apstar_row_0_is_rebuilt") {
        paths.push(("2M00005143+5615568".into(), s.apstar));
    }
    for name in super::multistar::STARS {
        if let Some(s) = super::multistar::star(name) {
            paths.push((name.into(), s.apstar));
        }
    }
    for (name, path) in paths {
        let (flux, err, msk) = (
            apstar_rows(&path, 1),
            apstar_rows(&path, 2),
            apstar_rows(&path, 3),
        );
        let wave: Vec<f64> = (0..8575)
            .map(|i| 10f64.powf(4.179 + 6e-6 * i as f64))
            .collect();
        let visits = (2..flux.len())
            .map(|r| {
                let bad: Vec<bool> = err[r]
                    .iter()
                    .map(|e| !(e.is_finite() && *e > 0.0 && *e < 1e9))
                    .collect();
                let ivar = err[r]
                    .iter()
                    .zip(&bad)
                    .map(|(e, b)| if *b { 0.0 } else { 1.0 / (e * e) })
                    .collect();
                std::sync::Arc::new(
                    Visit::new(
                        VisitMeta {
                            name: format!("row {r}"),
                            ..VisitMeta::default()
                        },
                        VisitArrays {
                            wavelength_aa: wave.clone(),
                            flux: flux[r].clone(),
                            ivar,
                            flags: msk[r].iter().map(|&m| m as u64).collect(),
                            bad,
                            // Split in the chip gaps.
                            segments: vec![0..3430, 3430..6212, 6212..8575],
                            ..VisitArrays::default()
                        },
                    )
                    .expect("an apStar row as a visit"),
                )
            })
            .collect();
        let data = Dataset {
            visits,
            ..Dataset::default()
        };
        let mut s = Settings {
            grid: frizzview::settings::GridSpec::Apogee,
            shift: frizzview::settings::ShiftSource::None,
            bad_bits: mask::APOGEE_BAD_BITS,
            forward: None,
            standard: Some(frizzview::settings::StandardSettings {
                interpolator: Interpolator::Linear,
                weighting: Weighting::ApogeePipeline,
                mask: frizzview::settings::StandardMask::Drop,
            }),
            ..Settings::default()
        };
        s.velocity.check = false;
        let rebuilt = |s: &Settings| {
            let ours = run(&data, s).standard.expect("standard").flux;
            CHIPS
                .iter()
                .map(|&(chip, lo, hi)| {
                    let z: Vec<f64> = (lo..hi)
                        .filter(|&l| {
                            msk[0][l] as u64 & mask::APOGEE_BAD_BITS == 0
                                && err[0][l] > 0.0
                                && err[0][l] < 1e9
                                && flux[0][l] > 0.0
                                && ours[l].is_finite()
                        })
                        .map(|l| (ours[l] - flux[0][l]).abs() / err[0][l])
                        .collect();
                    let n = z.len();
                    (chip, median(z), n)
                })
                .collect::<Vec<(&str, f64, usize)>>()
        };
        let per_chip = rebuilt(&s);
        // The plain inverse-variance mean of the same rows, for scale.
        let mut iv = s.clone();
        if let Some(st) = iv.standard.as_mut() {
            st.weighting = Weighting::InverseVariance;
        }
        let per_chip_iv = rebuilt(&iv);
        eprintln!(
            "{name}: row 0 rebuilt from rows 2..{} by the pipeline-row-0 flavour, median |d|/sigma per chip {per_chip:.4?}; by the inverse-variance mean {per_chip_iv:.4?}",
            flux.len() - 1
        );
        for (chip, m, n) in per_chip {
            assert!(n > 1000, "{name} chip {chip}: {n} pixels");
            assert!(m < 0.02, "{name} chip {chip}: median {m:.4} sigma");
        }
    }
}
