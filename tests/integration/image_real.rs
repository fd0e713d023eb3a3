//! The image pipeline on real DECam data (legacypipe testcase3 and testcase6 from
//! `../shared/data/images`, see its README): each band's exposures through
//! `image::pipeline` (TPV WCS -> TAN output grid, CP DQ codes, ivar, sky offsets), both methods;
//! and the FITS export read back by astropy. Skips with a message when the data (or
//! `$FRIZZVIEW_PYTHON` for astropy) are absent, fails under `CI=true`.

use std::path::PathBuf;
use std::process::Command;

use frizzview_core::image::export;
use frizzview_core::image::pipeline::{
    self, Aperture, ApertureCenter, ExposureChoice, ImageProducts, PipelineOptions, Prepared,
};
use ndarray::Array2;

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn case_dir(test: &str, case: &str) -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/images/legacypipe")
        .join(case);
    if d.is_dir() {
        return Some(d);
    }
    assert!(!ci(), "{test}: {} is missing under CI", d.display());
    eprintln!(
        "{test}: skipped: the real image data are not at {}",
        d.display()
    );
    None
}

/// The `ooi` images of one band under `dir`, sorted.
fn band_images(dir: &std::path::Path, band: char) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let n = p.file_name().expect("name").to_string_lossy().into_owned();
                if n.contains("_ooi_") && n.contains(&format!("_{band}_")) && n.ends_with(".fits") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Each image's photometric scale to nanomaggies from legacypipe's `survey-ccds-1.fits.gz`
/// beside the images (its CCD zero point `ccdzpt`, for counts per second, and `exptime`):
/// flux = counts x 10^(-0.4 (ccdzpt + 2.5 log10(exptime) - 22.5)), as legacypipe's
/// `zeropointToScale`. The raw exposures are in counts per exposure (no BUNIT), their galaxy
/// sums differ by up to 2.2x within a band, so they must be put on one scale first.
fn nanomaggy_scales(case: &std::path::Path, paths: &[PathBuf]) -> Vec<f64> {
    let mut f = fitsio::FitsFile::open(case.join("survey-ccds-1.fits.gz")).expect("survey-ccds");
    let h = f.hdu(1).expect("hdu 1");
    let names: Vec<String> = h
        .read_col(&mut f, "image_filename")
        .expect("image_filename");
    let zpt: Vec<f64> = h.read_col(&mut f, "ccdzpt").expect("ccdzpt");
    let exptime: Vec<f64> = h.read_col(&mut f, "exptime").expect("exptime");
    paths
        .iter()
        .map(|p| {
            let base = p.file_name().expect("name").to_string_lossy().into_owned();
            let k = names
                .iter()
                .position(|n| n.trim().ends_with(&base))
                .unwrap_or_else(|| panic!("{base} is not in survey-ccds"));
            10f64.powf(-0.4 * (zpt[k] + 2.5 * exptime[k].log10() - 22.5))
        })
        .collect()
}

fn run(case: &std::path::Path, paths: &[PathBuf], quick: bool) -> (Prepared, ImageProducts) {
    run_with(case, paths, quick, &|_| {})
}

/// As [`run`], with the options changed by `tweak` last.
fn run_with(
    case: &std::path::Path,
    paths: &[PathBuf],
    quick: bool,
    tweak: &dyn Fn(&mut PipelineOptions),
) -> (Prepared, ImageProducts) {
    let choices = nanomaggy_scales(case, paths)
        .into_iter()
        .map(|f| ExposureChoice {
            flux_scale: f,
            ..ExposureChoice::default()
        })
        .collect();
    let mut opts = PipelineOptions {
        choices,
        ..PipelineOptions::default()
    };
    if quick {
        // No leave-one-out scores, 8 variance probes.
        opts.frizzle.loo = false;
        opts.frizzle.variance = frizzview_core::image::frizzle2d::VarianceMode::Probe(8);
    }
    tweak(&mut opts);
    pipeline::run_paths(paths, &opts).expect("pipeline")
}

/// The brightest pixel of drizzle's SCI (3 x 3 box sums) at least `m` pixels from the edges.
fn peak(a: &Array2<f64>, m: usize) -> (usize, usize) {
    let (ny, nx) = a.dim();
    let mut best = (f64::NEG_INFINITY, (0, 0));
    for y in m..ny - m {
        for x in m..nx - m {
            let s: f64 = (0..3)
                .flat_map(|j| (0..3).map(move |i| (j, i)))
                .map(|(j, i)| a[[y + j - 1, x + i - 1]])
                .sum();
            if s > best.0 {
                best = (s, (y, x));
            }
        }
    }
    best.1
}

/// Every band combined; chi^2/nu, detection, both variances; the two methods' galaxy sums
/// within 3 % (the measured state: frizzle is 1.6 / 1.8 / 2.4 % above drizzle in g / r / z).
#[test]
fn testcase3_galaxy_aperture_flux_agrees_between_methods_in_every_band() {
    testcase3(false);
}

/// The acceptance criterion itself (within 1 %, or 3 sigma of the stated aperture error), on the
/// galaxy's total light: r = 12 px, background 14-19 px. Drizzle's drop kernel (the input pixel
/// convolved once more) spreads light out of a small aperture and into its background annulus,
/// the forward model does not: frizzle's excess falls as the aperture grows (z: 2.4 % at r = 6,
/// 1.7 % at 9, 1.4 % at 12; g: 1.6, 1.0, 0.8 %), and only a radius holding the light compares the
/// totals. r sits in the M/P trap (two exposures) and is reported only. See docs/image-mode.md.
#[test]
fn testcase3_galaxy_aperture_flux_within_one_percent_or_three_sigma() {
    testcase3(true);
}

fn testcase3(strict: bool) {
    let Some(dir) = case_dir("testcase3", "testcase3") else {
        return;
    };
    for band in ['g', 'r', 'z'] {
        let paths = band_images(&dir, band);
        assert!(paths.len() >= 2, "{band}: {paths:?}");
        let (prep, prod) = run(&dir, &paths, false);
        let f = prod.frizzle.as_ref().expect("frizzle");
        let d = prod.drizzle.as_ref().expect("drizzle");
        let (ny, nx) = prep.shape;
        assert!(f.sci.iter().all(|v| v.is_finite()), "{band}: NaN in SCI");
        println!(
            "testcase3 {band}: {} exposures -> {nx} x {ny}, {} CG its, variance {}, lag-1 corr frizzle {:+.3}/{:+.3}, drizzle {:+.3}/{:+.3}",
            paths.len(),
            f.iterations,
            pipeline::variance_label(f.var_kind),
            f.noise_corr[0][0],
            f.noise_corr[1][0],
            prod.drizzle_noise_corr[0][0],
            prod.drizzle_noise_corr[1][0]
        );
        for r in &prod.table {
            println!(
                "  {:<34} sky {:>9.3} chi2/nu {:.3} LOO {:.3}",
                r.name, r.sky, r.chi2nu, r.loo_chi2nu
            );
            assert!(
                r.chi2nu.is_finite() && r.chi2nu > 0.2 && r.chi2nu < 5.0,
                "{band} {}: chi2/nu {}",
                r.name,
                r.chi2nu
            );
        }
        // The main galaxy: drizzle's brightest interior 3x3 box; r = 6 px, background 9-14 px
        // (the strict criterion: the total light, r = 12 px, background 14-19 px).
        let (py, px) = peak(&d.sci, 8);
        let (radius, annulus) = if strict {
            (12.0, (14.0, 19.0))
        } else {
            (6.0, (9.0, 14.0))
        };
        let ap = Aperture {
            center: ApertureCenter::Pixel(px as f64, py as f64),
            radius,
            annulus: Some(annulus),
        };
        let r = pipeline::aperture(&prep, &prod, &ap).expect("aperture");
        let (ff, vf) = r.frizzle.expect("frizzle aperture");
        let (fd, vd, naive) = r.drizzle.expect("drizzle aperture");
        let tol = (0.01 * fd.abs()).max(3.0 * vf.sqrt().max(vd.sqrt()));
        println!(
            "  galaxy at output ({px}, {py}): frizzle {ff:.2} +- {:.2}, drizzle {fd:.2} +- {:.2} (drizzle's VAR summed: +- {:.2}); flux ratio {:.4}, variance ratio frizzle/drizzle {:.3}; |diff| {:.2} vs tolerance {tol:.2}",
            vf.sqrt(),
            vd.sqrt(),
            naive.sqrt(),
            ff / fd,
            vf / vd,
            (ff - fd).abs()
        );
        assert!(ff > 10.0 * vf.sqrt(), "{band}: the galaxy is not detected");
        let trap = prod.warnings.iter().any(|w| w.contains("M/P"));
        if trap {
            // Two exposures at the inputs' own scale: M/P < 2, the double-descent peak; the
            // pipeline warns, the forward model's noise is anti-correlated (lag 1 ~ -0.4) and
            // its aperture sum is not held to the 1 % / 3 sigma criterion (reported only).
            println!(
                "  {band}: M/P trap warned ({}); agreement within tolerance: {}",
                paths.len(),
                (ff - fd).abs() <= tol
            );
        } else {
            assert!(
                !strict || (ff - fd).abs() <= tol,
                "{band}: {ff} vs {fd} (tol {tol})"
            );
        }
        assert!(
            (ff / fd - 1.0).abs() < 0.03,
            "{band}: flux ratio {} beyond 3 %",
            ff / fd
        );
        assert!(vf > 0.0 && vd > 0.0 && naive > 0.0);
    }
}

/// Distance (output pixels) from every output pixel to the nearest output pixel onto which a
/// masked input pixel (zero weight) of any included exposure lands; None when nothing is masked.
fn mask_distance(prep: &Prepared) -> Option<Array2<f64>> {
    let (ny, nx) = prep.shape;
    let mut pts = Vec::new();
    for x in prep.exposures.iter().filter(|x| x.include) {
        for ((iy, ix), w) in x.ivar.indexed_iter() {
            if !(*w > 0.0) {
                let (u, v) = (x.pixmap[[iy, ix, 0]], x.pixmap[[iy, ix, 1]]);
                if u.is_finite() && v.is_finite() {
                    pts.push((u, v));
                }
            }
        }
    }
    if pts.is_empty() {
        return None;
    }
    Some(Array2::from_shape_fn((ny, nx), |(y, x)| {
        pts.iter()
            .map(|(u, v)| ((u - x as f64).powi(2) + (v - y as f64).powi(2)).sqrt())
            .fold(f64::INFINITY, f64::min)
    }))
}

#[test]
fn testcase6_saturated_star_masks_leave_no_nan_and_a_clean_far_field() {
    let Some(dir) = case_dir("testcase6", "testcase6") else {
        return;
    };
    for band in ['g', 'r', 'z'] {
        testcase6_band(&dir, band, &|_| {});
    }
}

/// The ringing criterion itself, under the defaults, in every band: see [`ringing`]. Measured
/// (g / r / z): CG 346 / 250 / 253 its to 1e-10; max |SCI| inside the masks 1.09 / 2.20 / 6.97
/// against the data's 4.28 / 9.28 / 12.80; SCI - drizzle SCI 2-6 px out lag-1 +0.76 / +0.52 /
/// +0.85, sign changes 0.16 / 0.32 / 0.30 (no oscillation); near-mask residual RMS 8.39 / 4.84 / 2.50 sigma against drizzle's
/// 8.22 / 4.48 / 2.09. Before the clipping's vote (`robust_min_votes`) the robust reweighting
/// clipped 236-564 wing samples of the star (two exposures whose PSFs differ cannot say which
/// is wrong) and the residuals were 2-4x drizzle's.
#[test]
fn testcase6_no_ringing_next_to_the_masks() {
    let Some(dir) = case_dir("testcase6", "testcase6") else {
        return;
    };
    let mut bad = Vec::new();
    for band in ['g', 'r', 'z'] {
        bad.extend(ringing(&testcase6_band(&dir, band, &|_| {})));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The criterion can fail: z without the hole prior (the masked model pixels unconstrained:
/// CG at its cap, |SCI| 170 inside the masks, SCI - drizzle lag-1 -0.36 with 0.57 of the
/// neighbours changing sign) and z with the clipping's vote off (the star's wings clipped).
/// Without the hole prior the near-mask residuals are NOT worse than drizzle's (0.98x in z:
/// the free modes fit the data, chi^2/nu 0.85): a residual criterion alone misses the ringing.
#[test]
fn testcase6_ringing_criterion_fails_without_the_hole_prior_or_the_vote() {
    let Some(dir) = case_dir("testcase6", "testcase6") else {
        return;
    };
    let f = testcase6_band(&dir, 'z', &|o| o.frizzle.hole_prior = 0.0);
    let bad = ringing(&f);
    println!("  without the hole prior: {bad:#?}");
    assert!(
        bad.iter().any(|b| b.contains("overshoot")) && bad.iter().any(|b| b.contains("oscillat")),
        "the ringing without the hole prior went undetected: {bad:?}"
    );
    let f = testcase6_band(&dir, 'z', &|o| o.frizzle.robust_min_votes = 0);
    let bad = ringing(&f);
    println!("  without the clipping's vote: {bad:#?}");
    assert!(
        f.clipped > 0 && bad.iter().any(|b| b.contains("residual")),
        "the clipped wings went undetected: {bad:?}"
    );
}

/// One band's figures next to the saturated star's masks.
struct Near {
    band: char,
    /// CG's relative residual, and the tolerance asked for.
    rel_residual: f64,
    tol: f64,
    clipped: usize,
    /// Per-exposure residual RMS in sigma on input pixels landing 2-6 px outside the masks:
    /// the forward model's own, and drizzle's (data - sky - drizzle SCI interpolated).
    near: f64,
    dnear: f64,
    /// Max |SCI| inside the masks (drizzle's WHT = 0), and drizzle's max |SCI| anywhere.
    hole_max: f64,
    data_max: f64,
    /// (SCI - drizzle SCI) / drizzle sigma on output pixels 2-6 px outside the masks: RMS,
    /// lag-1 autocorrelation along rows, fraction of neighbour pairs changing sign.
    diff_rms: f64,
    diff_lag1: f64,
    diff_flips: f64,
}

/// The ringing verdict: empty when the masks leave no ringing outside them. Ringing is an
/// oscillation of the output around the masks: (1) CG converged (unconstrained modes stall it),
/// (2) no overshoot inside the masks beyond the data's own range, (3) SCI - drizzle SCI next to
/// the masks does not oscillate: lag-1 autocorrelation along rows > 0 and fewer than half of
/// the neighbour pairs changing sign (independent noise gives 0.5; drizzle is a positive local
/// average and cannot ring, and the two differ there smoothly, by drizzle's extra pixel
/// convolution of the star's steep wings), and (4) the fit to the data next to the masks is within 25 % of
/// drizzle's (both carry the exposures' PSF difference there; a fill that dragged the data or
/// dropped it would exceed it).
fn ringing(f: &Near) -> Vec<String> {
    let b = f.band;
    let mut bad = Vec::new();
    if !(f.rel_residual <= f.tol) {
        bad.push(format!(
            "{b}: CG unconverged ({:e} > {:e})",
            f.rel_residual, f.tol
        ));
    }
    if !(f.hole_max <= f.data_max) {
        bad.push(format!(
            "{b}: overshoot inside the masks: |SCI| {} beyond the data's {}",
            f.hole_max, f.data_max
        ));
    }
    if !(f.diff_lag1 > 0.0 && f.diff_flips < 0.5) {
        bad.push(format!(
            "{b}: SCI - drizzle SCI oscillates next to the masks: lag-1 {:+.3}, {:.2} of neighbours change sign",
            f.diff_lag1, f.diff_flips
        ));
    }
    if !(f.near <= 1.25 * f.dnear) {
        bad.push(format!(
            "{b}: near-mask residual RMS {:.2} sigma beyond 1.25 x drizzle's {:.2} ({} samples clipped)",
            f.near, f.dnear, f.clipped
        ));
    }
    bad
}

fn testcase6_band(dir: &std::path::Path, band: char, tweak: &dyn Fn(&mut PipelineOptions)) -> Near {
    let paths = band_images(dir, band);
    assert!(paths.len() >= 2, "{band}: {paths:?}");
    let (prep, prod) = run_with(dir, &paths, true, tweak);
    let mut opts = PipelineOptions::default();
    tweak(&mut opts);
    let f = prod.frizzle.as_ref().expect("frizzle");
    let (ny, nx) = prep.shape;
    let nan = f.sci.iter().filter(|v| !v.is_finite()).count();
    let vnan = f.var.iter().filter(|v| !v.is_finite()).count();
    assert_eq!(nan, 0, "{band}: {nan} NaN in SCI");
    assert_eq!(vnan, 0, "{band}: {vnan} NaN in VAR");
    let dist = mask_distance(&prep).expect("testcase6 has masks");
    // Per-exposure residuals in sigma, (data - model) sqrt(ivar), on the input pixels that land
    // 2-6 output pixels outside the masks ("near") and > 15 px from any mask ("far"), 4 px from
    // the edges; for the forward model (its own residuals) and for drizzle (data - sky offset -
    // drizzle's SCI bilinearly interpolated at the pixel's output position).
    let d = prod.drizzle.as_ref().expect("drizzle");
    let bil = |u: f64, v: f64| -> f64 {
        let (x0, y0) = (u.floor(), v.floor());
        if x0 < 0.0 || y0 < 0.0 || x0 + 1.0 >= nx as f64 || y0 + 1.0 >= ny as f64 {
            return f64::NAN;
        }
        let (fx, fy) = (u - x0, v - y0);
        let (i, j) = (x0 as usize, y0 as usize);
        d.sci[[j, i]] * (1.0 - fx) * (1.0 - fy)
            + d.sci[[j, i + 1]] * fx * (1.0 - fy)
            + d.sci[[j + 1, i]] * (1.0 - fx) * fy
            + d.sci[[j + 1, i + 1]] * fx * fy
    };
    let (mut near, mut far, mut dnear, mut dfar) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (e, x) in prep.exposures.iter().enumerate() {
        let res = &f.residuals[e];
        for ((iy, ix), w) in x.ivar.indexed_iter() {
            let r = res[[iy, ix]];
            if !(*w > 0.0) || !r.is_finite() {
                continue;
            }
            let (u, v) = (x.pixmap[[iy, ix, 0]], x.pixmap[[iy, ix, 1]]);
            let (cx, cy) = (u.round(), v.round());
            if !(cx >= 4.0 && cy >= 4.0 && cx < nx as f64 - 4.0 && cy < ny as f64 - 4.0) {
                continue;
            }
            let dd = dist[[cy as usize, cx as usize]];
            let z = r * w.sqrt();
            let zd = (x.sci[[iy, ix]] - prod.drizzle_sky[e] - bil(u, v)) * w.sqrt();
            if (2.0..=6.0).contains(&dd) {
                near.push(z);
                dnear.push(zd);
            } else if dd > 15.0 {
                far.push(z);
                dfar.push(zd);
            }
        }
    }
    let rms = |v: &[f64]| (v.iter().map(|z| z * z).sum::<f64>() / v.len() as f64).sqrt();
    let out4 = |v: &[f64]| v.iter().filter(|z| z.abs() > 4.0).count() as f64 / v.len() as f64;
    let masked: usize = prep
        .exposures
        .iter()
        .map(|x| x.ivar.iter().filter(|w| !(**w > 0.0)).count())
        .sum();
    let total: usize = prep.exposures.iter().map(|x| x.ivar.len()).sum();
    let dnear: Vec<f64> = dnear.into_iter().filter(|z| z.is_finite()).collect();
    let dfar: Vec<f64> = dfar.into_iter().filter(|z| z.is_finite()).collect();
    println!(
        "testcase6 {band}: {} exposures -> {nx} x {ny}, {:.1} % of input pixels masked; residual/sigma near the masks (2-6 px, {} px): frizzle RMS {:.2} (>4 sigma {:.3}), drizzle RMS {:.2} (>4 sigma {:.3}); far field (>15 px, {} px): frizzle RMS {:.3} (>4 sigma {:.4}), drizzle RMS {:.3}; chi2/nu {:?}",
        paths.len(),
        100.0 * masked as f64 / total as f64,
        near.len(),
        rms(&near),
        out4(&near),
        rms(&dnear),
        out4(&dnear),
        far.len(),
        rms(&far),
        out4(&far),
        rms(&dfar),
        f.chi2nu
            .iter()
            .map(|c| (c * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    );
    assert!(
        near.len() > 50 && far.len() > 500,
        "{band}: zones too small"
    );
    assert!(
        rms(&far) < 1.5,
        "{band}: far-field residual RMS {}",
        rms(&far)
    );
    // Inside the masks (no data: drizzle's WHT = 0), and SCI - drizzle SCI 2-6 px out.
    let data_max = d
        .sci
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let hole_max = f
        .sci
        .iter()
        .zip(&d.wht)
        .filter(|(_, w)| !(**w > 0.0))
        .fold(0.0f64, |m, (v, _)| m.max(v.abs()));
    let diff = |y: usize, x: usize| (f.sci[[y, x]] - d.sci[[y, x]]) / d.var[[y, x]].sqrt();
    let ring = |y: usize, x: usize| {
        (2.0..=6.0).contains(&dist[[y, x]]) && d.wht[[y, x]] > 0.0 && d.var[[y, x]] > 0.0
    };
    let (mut s2, mut n, mut c01, mut c00, mut flips, mut pairs) =
        (0.0, 0usize, 0.0, 0.0, 0usize, 0usize);
    for y in 4..ny - 4 {
        for x in 4..nx - 4 {
            if ring(y, x) {
                let z = diff(y, x);
                s2 += z * z;
                n += 1;
                if ring(y, x + 1) {
                    let z1 = diff(y, x + 1);
                    c01 += z * z1;
                    c00 += z * z;
                    pairs += 1;
                    flips += usize::from(z * z1 < 0.0);
                }
            }
        }
    }
    let out = Near {
        band,
        rel_residual: f.rel_residual,
        tol: opts.frizzle.tol,
        clipped: f.clipped,
        near: rms(&near),
        dnear: rms(&dnear),
        hole_max,
        data_max,
        diff_rms: (s2 / n.max(1) as f64).sqrt(),
        diff_lag1: c01 / c00,
        diff_flips: flips as f64 / pairs.max(1) as f64,
    };
    println!(
        "  {band}: {} samples clipped, {} CG its (relative residual {:.1e}); near-mask residual RMS frizzle / drizzle {:.3}; max |SCI| inside the masks {:.3} (drizzle's max |SCI| {:.3}); (SCI - drizzle SCI) / drizzle sigma 2-6 px out: RMS {:.2} over {n} px, lag-1 {:+.3}, sign changes {:.3}",
        out.clipped,
        f.iterations,
        out.rel_residual,
        out.near / out.dnear,
        out.hole_max,
        out.data_max,
        out.diff_rms,
        out.diff_lag1,
        out.diff_flips
    );
    out
}

#[test]
fn image_fits_export_wcs_matches_astropy() {
    let Some(dir) = case_dir("image_fits_export", "testcase3") else {
        return;
    };
    let Some(py) = super::shared::astropy_python("image_fits_export") else {
        return;
    };
    let paths = band_images(&dir, 'z');
    let opts = PipelineOptions {
        frizzle: frizzview_core::image::frizzle2d::FrizzleSettings {
            loo: false,
            variance: frizzview_core::image::frizzle2d::VarianceMode::Probe(4),
            ..Default::default()
        },
        ..PipelineOptions::default()
    };
    let (prep, prod) = pipeline::run_paths(&paths, &opts).expect("pipeline");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("z.fits");
    export::write_fits(&out, &prep, &prod, &paths).expect("export");
    // An input is never overwritten.
    assert!(export::write_fits(&paths[0], &prep, &prod, &paths).is_err());
    let w = prod.wcs.as_ref().expect("wcs");
    let (ny, nx) = prod.shape;
    let pix: Vec<(f64, f64)> = vec![
        (0.0, 0.0),
        (nx as f64 - 1.0, 0.0),
        (0.0, ny as f64 - 1.0),
        (nx as f64 / 2.0, ny as f64 / 3.0),
        (nx as f64 - 1.0, ny as f64 - 1.0),
    ];
    let xs: Vec<String> = pix.iter().map(|p| format!("{:.6}", p.0)).collect();
    let ys: Vec<String> = pix.iter().map(|p| format!("{:.6}", p.1)).collect();
    let script = format!(
        r#"
import warnings, numpy as np
from astropy.io import fits
from astropy.wcs import WCS
h = fits.open(r"{}")
names = [x.name for x in h]
assert names[1:] == ["SCI","VAR","COVERAGE","DQ","DRZ_SCI","DRZ_WHT","DRZ_VAR","DRZ_CTX","EXPOSURES"], names
assert h["VAR"].header["VARKIND"] == "PROBE 4", h["VAR"].header["VARKIND"]
t = h["EXPOSURES"].data
assert len(t) == {}, len(t)
with warnings.catch_warnings():
    warnings.simplefilter("error")
    for n in names[1:-1]:
        w = WCS(h[n].header)
        ra, dec = w.pixel_to_world_values(np.array([{}]), np.array([{}]))
        for a, b in zip(ra, dec):
            print(n, repr(float(a)), repr(float(b)))
        assert h[n].data.shape == ({}, {}), h[n].data.shape
"#,
        out.display(),
        prod.table.len(),
        xs.join(","),
        ys.join(","),
        ny,
        nx
    );
    let o = Command::new(&py)
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        o.status.success(),
        "astropy: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let mut worst: f64 = 0.0;
    let mut n = 0;
    for (k, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (ra, dec): (f64, f64) = (f[1].parse().expect("ra"), f[2].parse().expect("dec"));
        let p = pix[k % pix.len()];
        let [r0, d0] = w.pixel_to_sky(p.0, p.1);
        let dra = ((ra - r0 + 180.0).rem_euclid(360.0) - 180.0) * d0.to_radians().cos();
        worst = worst.max(dra.abs()).max((dec - d0).abs());
        n += 1;
    }
    println!("image export: {n} astropy positions over 8 extensions, worst |diff| {worst:.2e} deg");
    assert_eq!(n, 8 * pix.len());
    assert!(worst < 1e-9, "{worst}");
}
