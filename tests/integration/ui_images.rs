//! The images mode, driven headless with egui_kittest: the demo opens, toggling an exposure
//! recomputes (inline and on the worker threads), the difference view, the aperture readout
//! against the core's `Frizzle2d::aperture` / `drizzle::aperture` on the same inputs, a bad file,
//! and (when ../shared/data is present) a real DECam band.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use frizzview::app::FrizzApp;
use frizzview::app::images::{ImageView, inputs};
use frizzview::engine::CombineEngine;
use frizzview_core::image::frizzle2d::{Frizzle2d, FrizzleSettings, VarianceMode};
use frizzview_core::image::{Exposure2d, drizzle};
use ndarray::Array2;

fn harness(app: FrizzApp) -> Harness<'static, FrizzApp> {
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(3);
    h
}

fn demo_harness() -> Harness<'static, FrizzApp> {
    let mut app = FrizzApp::new(CombineEngine::inline(), None);
    app.images.open_demo();
    harness(app)
}

/// The demo's exposures built straight from `inputs::demo()` (not through the window's build),
/// with `exclude` left out.
fn demo_exposures(exclude: Option<usize>) -> (Vec<Exposure2d>, (usize, usize)) {
    let d = inputs::demo();
    let inputs::Geometry::Pixmaps { pixmaps, shape, .. } = &d.geometry else {
        panic!("the demo has pixmaps");
    };
    let exps = d
        .exposures
        .iter()
        .zip(pixmaps)
        .enumerate()
        .map(|(k, (e, pm))| {
            let mut x = Exposure2d::new(e.name.clone(), e.sci.clone(), e.ivar.clone(), pm.clone())
                .expect("shapes");
            x.include = Some(k) != exclude;
            x
        })
        .collect();
    (exps, *shape)
}

/// The core's forward model, solved fresh (no warm start), as the window's live fit.
fn core_model(exps: &[Exposure2d], shape: (usize, usize)) -> (Frizzle2d, Array2<f64>, f64) {
    let s = FrizzleSettings {
        robust_clip: None,
        variance: VarianceMode::None,
        loo: false,
        coverage: false,
        max_iter: 300,
        ..FrizzleSettings::default()
    };
    let mut m = Frizzle2d::new(exps, shape, &s).expect("model");
    let c = m.solve().expect("solve");
    let img = m.image(&c);
    let scale = img.iter().fold(0.0_f64, |a, v| a.max(v.abs()));
    (m, img, scale)
}

/// Drizzle's inputs sky-matched as the window does: each exposure's median minus the first's
/// subtracted (the demo has no masked pixel).
fn sky_matched(exps: &[Exposure2d]) -> Vec<Exposure2d> {
    let median = |x: &Exposure2d| {
        let mut v: Vec<f64> = x.sci.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m0 = median(&exps[0]);
    exps.iter()
        .map(|x| {
            let mut y = x.clone();
            let s = median(x) - m0;
            y.sci.mapv_inplace(|v| v - s);
            y
        })
        .collect()
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    super::shared::max_abs_diff(a, b)
}

#[test]
fn ui_images_mode_opens_on_the_demo_with_both_methods() {
    let h = demo_harness();
    let st = &h.state().images;
    assert!(st.active);
    assert!(st.settled(), "inline: every stage done");
    let f = st.frizzle.as_ref().expect("frizzle");
    let d = st.drizzle.as_ref().expect("drizzle");
    assert!(f.complete && !f.capped(), "{} iterations", f.iterations);
    let (exps, shape) = demo_exposures(None);
    assert_eq!(f.sci.dim(), shape);
    let (_, img, scale) = core_model(&exps, shape);
    let e = max_abs_diff(&f.sci, &img);
    assert!(e < 1e-6 * scale, "window vs core: {e:e} (scale {scale})");
    let dz = drizzle::drizzle(&sky_matched(&exps), shape, 0.6).expect("drizzle");
    assert_eq!(max_abs_diff(&d.result.sci, &dz.sci), 0.0);
    // Every exposure has its chi2/nu, sky and leave-one-out score in the table.
    assert_eq!(f.chi2nu.len(), 9);
    assert!(f.chi2nu.iter().all(|c| c.is_finite() && *c > 0.0));
    assert!(f.loo.as_ref().expect("loo").iter().all(|c| c.is_finite()));
    assert_eq!(f.sky[0], 0.0, "the first exposure is the sky zero point");
    // The demo's dithers constrain the output: no M/P warning.
    assert!(d.coverage.warnings.is_empty(), "{:?}", d.coverage.warnings);
    h.get_by_label("synth03");
    h.get_by_label("Images");
}

#[test]
fn ui_images_mode_switch_opens_the_demo_and_returns_to_spectra() {
    let data = frizzview::app::demo::apogee_demo(2).expect("demo");
    let mut h = harness(FrizzApp::inline(data));
    assert!(!h.state().images.active);
    h.get_by_label("Images").click();
    h.run_steps(3);
    assert!(h.state().images.active);
    assert!(h.state().images.frizzle.is_some());
    h.get_by_label("Spectra").click();
    h.run_steps(2);
    assert!(!h.state().images.active);
    assert!(h.state().result.is_some(), "the spectral result is kept");
}

#[test]
fn ui_images_toggling_an_exposure_recomputes_without_it() {
    let mut h = demo_harness();
    let before = h.state().images.frizzle.clone().expect("frizzle");
    let dbefore = h.state().images.drizzle.clone().expect("drizzle");
    h.get_by_label("synth03").click();
    h.run_steps(3);
    let st = &h.state().images;
    assert!(!st.settings.exposures[3].include);
    let after = st.frizzle.clone().expect("frizzle");
    let dafter = st.drizzle.clone().expect("drizzle");
    let (exps, shape) = demo_exposures(Some(3));
    let (_, img, scale) = core_model(&exps, shape);
    assert!(
        max_abs_diff(&before.sci, &after.sci) > 1e-4 * scale,
        "the image must change"
    );
    let e = max_abs_diff(&after.sci, &img);
    assert!(
        e < 1e-6 * scale,
        "window (warm start) vs fresh core solve: {e:e}"
    );
    let dz = drizzle::drizzle(&sky_matched(&exps), shape, 0.6).expect("drizzle");
    assert!(max_abs_diff(&dbefore.result.sci, &dafter.result.sci) > 0.0);
    assert_eq!(max_abs_diff(&dafter.result.sci, &dz.sci), 0.0);
    // The excluded exposure keeps its residuals and chi2 (how it disagrees with the others).
    assert!(after.chi2nu[3].is_finite());
}

#[test]
fn ui_images_threaded_workers_deliver_and_drop_stale_results() {
    let engine = CombineEngine::threaded(None).expect("engine");
    let mut app = FrizzApp::new(engine, None);
    app.images.open_demo();
    let mut h = harness(app);
    let wait = |h: &mut Harness<'static, FrizzApp>| {
        let t0 = Instant::now();
        while !h.state().images.settled() {
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "no result in 300 s"
            );
            std::thread::sleep(Duration::from_millis(20));
            h.run_steps(1);
        }
    };
    wait(&mut h);
    // Several toggles in a row: only the newest settings' results are kept.
    for name in ["synth01", "synth02", "synth01"] {
        h.get_by_label(name).click();
        h.run_steps(1);
    }
    wait(&mut h);
    let st = &h.state().images;
    assert!(st.settings.exposures[1].include && !st.settings.exposures[2].include);
    let (exps, shape) = demo_exposures(Some(2));
    let (_, img, scale) = core_model(&exps, shape);
    let f = st.frizzle.as_ref().expect("frizzle");
    let e = max_abs_diff(&f.sci, &img);
    assert!(e < 1e-6 * scale, "threaded window vs core: {e:e}");
}

#[test]
fn ui_images_difference_view_shows_frizzle_minus_drizzle() {
    let mut h = demo_harness();
    h.get_by_label("Frizzle − drizzle").click();
    h.run_steps(2);
    let st = &h.state().images;
    assert_eq!(st.view, ImageView::Difference);
    let shown = st.shown().expect("an image");
    let f = st.frizzle.as_ref().expect("frizzle");
    let d = st.drizzle.as_ref().expect("drizzle");
    let mut n = 0;
    for ((s, a), b) in shown.iter().zip(f.sci.iter()).zip(d.result.sci.iter()) {
        if b.is_finite() {
            assert!((s - (a - b)).abs() < 1e-12);
            n += 1;
        }
    }
    assert!(n > 100);
    assert!(shown.iter().any(|v| v.abs() > 1e-6), "the methods differ");
}

#[test]
fn ui_images_aperture_readout_equals_the_core_apertures() {
    let mut h = demo_harness();
    h.get_by_label("click the image to place it").click();
    h.run_steps(2);
    // Click on output pixel (14, 12).
    let pos = h
        .state()
        .images
        .screen_pos(14.0, 12.0)
        .expect("the canvas was drawn");
    h.input_mut().events.push(egui::Event::PointerMoved(pos));
    h.run_steps(1);
    for pressed in [true, false] {
        h.input_mut().events.push(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::default(),
        });
        h.run_steps(1);
    }
    h.run_steps(3);
    let st = &h.state().images;
    let a = st.aperture.expect("an aperture was placed");
    assert!(
        (a.x - 14.0).abs() < 0.5 && (a.y - 12.0).abs() < 0.5,
        "{a:?}"
    );
    let (fa, fflux, fvar) = st
        .frizzle
        .as_ref()
        .and_then(|f| f.aperture)
        .expect("frizzle aperture");
    let (da, dflux, dvar, dnaive) = st
        .drizzle
        .as_ref()
        .and_then(|d| d.aperture)
        .expect("drizzle aperture");
    assert_eq!(fa, a);
    assert_eq!(da, a);
    // The core on the same inputs, independently.
    let (exps, shape) = demo_exposures(None);
    // The aperture's weights: 1 inside, minus the annulus mean (unit test in job.rs).
    let mask = a.mask(shape);
    let (mut m, _, _) = core_model(&exps, shape);
    let c = m.solve().expect("solve");
    let (cflux, cvar) = m.aperture(&c, &mask).expect("core aperture");
    assert!(
        (fflux - cflux).abs() < 1e-8 * cflux.abs().max(1.0),
        "{fflux} vs {cflux}"
    );
    assert!((fvar - cvar).abs() < 1e-6 * cvar, "{fvar} vs {cvar}");
    let matched = sky_matched(&exps);
    let dz = drizzle::drizzle(&matched, shape, 0.6).expect("drizzle");
    let (eflux, evar, enaive) = drizzle::aperture(&matched, &dz, &mask).expect("drizzle aperture");
    assert_eq!((dflux, dvar, dnaive), (eflux, evar, enaive));
    // The numbers are on screen as the core gives them.
    let f4 = |v: f64| format!("{v:.4}");
    let sci = |v: f64| {
        if (1e-3..1e5).contains(&v.abs()) {
            f4(v)
        } else {
            format!("{v:.3e}")
        }
    };
    h.get_by_label(&format!(
        "Frizzle: {} ± {} (exact: a^T C* a, one CG solve)",
        sci(cflux),
        sci(cvar.sqrt())
    ));
    h.get_by_label(&format!(
        "drizzle: {} ± {} (exact, covariance included)",
        sci(eflux),
        sci(evar.sqrt())
    ));
}

#[test]
fn ui_images_bad_file_gives_a_message_and_the_session_keeps_working() {
    let mut h = demo_harness();
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("broken.npy");
    std::fs::write(&bad, b"\x93NUMPY garbage that is not an array").expect("write");
    h.state_mut().open_files(vec![bad.clone()]);
    h.run_steps(3);
    let app = h.state();
    let m = app.messages.last().expect("a message");
    assert!(m.error, "{}", m.text);
    assert!(m.text.contains("broken.npy"), "names the file: {}", m.text);
    assert!(app.images.active);
    assert_eq!(
        app.images.inputs.as_ref().map(|i| i.exposures.len()),
        Some(9)
    );
    // Still live: a toggle recomputes.
    let before = app.images.frizzle.clone().expect("frizzle");
    h.get_by_label("synth05").click();
    h.run_steps(3);
    let after = h.state().images.frizzle.clone().expect("frizzle");
    assert!(max_abs_diff(&before.sci, &after.sci) > 0.0);
    // A shifts table that does not match the exposures is refused with its name too.
    let shifts = dir.path().join("shifts.txt");
    std::fs::write(&shifts, "0 0\n0.5 0.5\n").expect("write");
    let npy = dir.path().join("one.npy");
    write_npy(&npy, &Array2::from_elem((8, 8), 1.0));
    h.state_mut().open_files(vec![npy, shifts]);
    h.run_steps(3);
    let m = h.state().messages.last().expect("a message");
    assert!(m.error && m.text.contains("shifts.txt"), "{}", m.text);
}

/// A little-endian f64 `.npy` (version 1.0).
fn write_npy(path: &std::path::Path, a: &Array2<f64>) {
    let (ny, nx) = a.dim();
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({ny}, {nx}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(header.len()).expect("short").to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in a {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write npy");
}

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn images_dir(test: &str) -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/images");
    if d.join("legacypipe").is_dir() {
        return Some(d);
    }
    assert!(!ci(), "{test}: {} is missing under CI", d.display());
    println!("{test}: skipped, {} is absent", d.display());
    None
}

#[test]
fn ui_images_real_decam_band_opens_with_a_wcs_readout() {
    let Some(d) = images_dir("ui_images_real_decam_band_opens_with_a_wcs_readout") else {
        return;
    };
    let cp = d.join("legacypipe/testcase3/images/decam/CP/V4.8.2a");
    let files: Vec<PathBuf> = [
        "CP20140818/c4d_140818_232043_ooi_z_ls9.N12.fits",
        "CP20150411/c4d_150412_073257_ooi_z_ls9.N11.fits",
        "CP20180217/c4d_180218_090701_ooi_z_ls9.N10.fits",
    ]
    .iter()
    .map(|f| cp.join(f))
    .collect();
    let mut h = harness(FrizzApp::new(CombineEngine::inline(), None));
    // "solve to convergence": the live cap (300 iterations) ends near a relative residual of
    // 1e-6 on this set, and the checks below are of the converged fit.
    h.state_mut().open_files(files);
    h.run_steps(3);
    h.state_mut().images.settings.converge = true;
    h.run_steps(3);
    let st = &h.state().images;
    assert!(st.active, "ooi files open the images mode");
    let b = st.built.as_ref().expect("a grid");
    let w = b.wcs.as_ref().expect("an output WCS");
    // 51 x 41 px cutouts, north up (the CCDs are turned by 90 degrees on the sky).
    assert!(
        b.shape.0.min(b.shape.1) >= 41 && b.shape.0 * b.shape.1 < 60 * 60,
        "{:?}",
        b.shape
    );
    let f = st.frizzle.as_ref().expect("frizzle");
    assert!(
        f.complete && !f.capped(),
        "complete {}, {} iterations of {}, rel. residual {:e}, skipped {:?}",
        f.complete,
        f.iterations,
        f.max_iter,
        f.rel_residual,
        f.skipped
    );
    assert!(f.sci.iter().all(|v| v.is_finite()));
    // The second and third exposures' fitted skies are offsets from the first's.
    assert!(f.sky[1].is_finite() && f.sky[2].is_finite());
    // The output WCS is north up at the inputs' scale (0.263 arcsec/px).
    let s = w.pixel_scale_arcsec(b.shape.1 as f64 / 2.0, b.shape.0 as f64 / 2.0);
    assert!((s - 0.2634).abs() < 0.002, "{s}");
}
