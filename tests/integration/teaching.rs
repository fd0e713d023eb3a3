//! Teaching panel: headless egui_kittest tests of the sliders, the presets, the live
//! combination and the noise test, and of the PNG export's cropping.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use frizzview::app::teaching::{Figure, TeachingPanel, TeachingParams, save_region_png};

fn harness(panel: TeachingPanel) -> Harness<'static, TeachingPanel> {
    Harness::builder()
        .with_size([1280.0, 860.0])
        .build_ui_state(|ui, p: &mut TeachingPanel| p.ui(ui), panel)
}

/// Step the harness until `done` holds (the worker threads deliver asynchronously).
fn step_until(
    h: &mut Harness<'_, TeachingPanel>,
    what: &str,
    done: impl Fn(&TeachingPanel) -> bool,
) {
    let t0 = Instant::now();
    while !done(h.state()) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    h.step();
}

#[test]
fn teaching_panel_builds_with_the_paper_sampling() {
    let mut h = harness(TeachingPanel::inline());
    h.run_steps(2);
    let live = h
        .state()
        .live()
        .expect("the inline panel computes on its first frame");
    // The paper's setup (arXiv:2403.11011 §4): poorly sampled, 8 epochs of M_i = 171 pixels; output grid spacing 1/R with
    // M* = 338 (v1 text) or 337 (frizzle-era notebooks).
    assert!(
        [337, 338].contains(&live.truth.len()),
        "{} output pixels",
        live.truth.len()
    );
    assert_eq!(live.data.len() + live.bad.len(), 8 * 171);
    assert!(live.truth.iter().all(|f| *f > 0.0 && *f <= 1.0));
    h.get_by_label("Well sampled (paper)").click();
    h.run_steps(2);
    assert_eq!(h.state().params, TeachingParams::well());
    let live = h
        .state()
        .live()
        .expect("a result for the well-sampled preset");
    assert_eq!(live.data.len() + live.bad.len(), 8 * 340);
    h.get_by_label("Poorly sampled (paper)").click();
    h.run_steps(2);
    assert_eq!(h.state().params, TeachingParams::poor());
}

#[test]
fn teaching_slider_changes_the_data_and_the_result() {
    let mut h = harness(TeachingPanel::inline());
    h.run_steps(2);
    let before = h.state().live().expect("first result").clone();
    h.get_by_role_and_label(Role::Slider, "noise seed")
        .set_value_accesskit(5.0);
    h.run_steps(2);
    assert_eq!(h.state().params.seed, 5);
    let after = h.state().live().expect("second result").clone();
    assert_eq!(after.params.seed, 5);
    assert_eq!(
        after.truth, before.truth,
        "the truth does not depend on the noise seed"
    );
    assert_ne!(after.data, before.data, "new noise, new data");
    let (f0, f1) = (
        before.forward.as_ref().expect("forward model"),
        after.forward.as_ref().expect("forward model"),
    );
    let (s0, s1) = (
        before.standard.as_ref().expect("standard practice"),
        after.standard.as_ref().expect("standard practice"),
    );
    assert_ne!(f0.flux, f1.flux);
    assert_ne!(s0.flux, s1.flux);
    // Both results follow the truth to within the noise (S/N 18 per pixel, 8 visits).
    for m in [f0, f1, s0, s1] {
        assert!(m.rms < 0.06, "rms residual {} too large", m.rms);
    }
    // Raising S/N by 10 shrinks the forward model's residual by about 10.
    h.get_by_role_and_label(Role::Slider, "S/N per pixel")
        .set_value_accesskit(180.0);
    h.run_steps(2);
    let hi = h.state().live().expect("third result");
    let f2 = hi.forward.as_ref().expect("forward model");
    assert!(
        f2.rms < f1.rms / 4.0,
        "rms {} at S/N 180 vs {} at S/N 18",
        f2.rms,
        f1.rms
    );
}

#[test]
fn teaching_worker_delivers_the_newest_request() {
    let mut h = harness(TeachingPanel::new());
    h.step();
    for seed in [3_u64, 4, 5, 6] {
        h.state_mut().params.seed = seed;
        h.step();
    }
    step_until(&mut h, "the live result", |p| !p.is_busy());
    let live = h.state().live().expect("a result");
    assert_eq!(live.params.seed, 6, "the newest request wins");
}

#[test]
fn teaching_noise_button_runs_and_shows_correlated_standard_practice() {
    let mut panel = TeachingPanel::inline();
    panel.trials = 6;
    let mut h = harness(panel);
    h.run_steps(2);
    h.get_by_label("Run 6 trials").click();
    h.step();
    assert!(
        h.state().noise_progress().is_some(),
        "the test runs in the background"
    );
    step_until(&mut h, "the noise test", |p| p.noise_progress().is_none());
    let n = h.state().noise().expect("noise curves").clone();
    assert_eq!(n.trials, 6);
    assert_eq!(n.forward_cov.len(), 12);
    assert_eq!(n.standard_cov.len(), 12);
    // arXiv:2403.11011 §4, noise figure: forward lag-0 ~ 1.0e-3 (poorly sampled), within 5% of diag C*; |lag>=1|
    // small; standard practice lag1/lag0 ~ 0.5 (> 0.25). With 6 trials (~16000 products per lag)
    // the statistical error of a lag >= 1 covariance is ~1% of lag 0.
    let f0 = n.forward_cov[0];
    assert!((0.8e-3..1.3e-3).contains(&f0), "forward lag-0 {f0}");
    assert!(
        (f0 / n.predicted_var - 1.0).abs() < 0.1,
        "empirical {f0} vs predicted {}",
        n.predicted_var
    );
    let s0 = n.standard_cov[0];
    let f1 = n.forward_cov[1] / f0;
    let s1 = n.standard_cov[1] / s0;
    assert!(f1.abs() < 0.06, "forward lag1/lag0 = {f1}");
    assert!(s1 > 0.25, "standard lag1/lag0 = {s1}");
    assert!(s1 > 4.0 * f1.abs());
    assert!(h.state().status().contains("6 trials"));
}

#[test]
fn teaching_noise_test_can_be_cancelled() {
    let mut panel = TeachingPanel::inline();
    panel.trials = 256;
    let mut h = harness(panel);
    h.run_steps(2);
    h.get_by_label("Run 256 trials").click();
    h.step(); // the click starts the run
    h.step(); // the next frame shows the progress bar and the cancel button
    assert!(h.state().noise_progress().is_some());
    h.get_by_label("Cancel noise test").click();
    h.step();
    assert!(h.state().noise_progress().is_none());
    assert!(h.state().noise().is_none());
    assert_eq!(h.state().status(), "noise test cancelled");
}

#[test]
fn teaching_png_export_crops_the_figure() {
    // A screenshot with a red square at points (10..30, 20..30); at 2 pixels per point it is
    // the pixel block (20..60, 40..60).
    let mut img = egui::ColorImage::filled([200, 100], egui::Color32::WHITE);
    for y in 40..60 {
        for x in 20..60 {
            img.pixels[y * 200 + x] = egui::Color32::RED;
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fig.png");
    let rect = egui::Rect::from_min_max(egui::pos2(10.0, 20.0), egui::pos2(30.0, 30.0));
    let size = save_region_png(&img, rect, 2.0, &path).expect("saved");
    assert_eq!(size, [40, 20]);
    let back = image::open(&path).expect("a PNG").to_rgba8();
    assert_eq!(back.dimensions(), (40, 20));
    assert!(back.pixels().all(|p| p.0 == [255, 0, 0, 255]));
    // A rectangle partly off screen is clipped, one entirely off screen is an error naming the file.
    let half = egui::Rect::from_min_max(egui::pos2(90.0, 40.0), egui::pos2(150.0, 80.0));
    assert_eq!(
        save_region_png(&img, half, 2.0, &path).expect("clipped"),
        [20, 20]
    );
    let off = egui::Rect::from_min_max(egui::pos2(300.0, 0.0), egui::pos2(400.0, 10.0));
    let err = save_region_png(&img, off, 2.0, &path).expect_err("nothing to save");
    assert!(err.contains("fig.png"), "{err}");
}

#[test]
fn teaching_export_button_asks_for_a_path() {
    let mut panel = TeachingPanel::inline();
    let asked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let a2 = Arc::clone(&asked);
    panel.set_path_chooser(Arc::new(move |name: &str| {
        a2.lock().expect("lock").push(name.to_owned());
        None // cancelled: nothing is saved
    }));
    let mut h = harness(panel);
    h.run_steps(2);
    h.get_by_label("Save spectra PNG…").click();
    let t0 = Instant::now();
    while asked.lock().expect("lock").is_empty() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
        h.step();
    }
    assert_eq!(
        *asked.lock().expect("lock"),
        vec!["frizzview-teaching-spectra.png".to_owned()]
    );
}

/// Prints the noise figure (64 trials) for every forward model and both paper presets:
/// `cargo test --test integration teaching_noise_table -- --ignored --nocapture`.
#[test]
#[ignore = "measurement: prints a table"]
fn teaching_noise_table() {
    use frizzview::app::teaching::{ForwardChoice, run_noise};
    use frizzview::combine::Cancel;
    for fc in ForwardChoice::ALL {
        for (name, p) in [
            ("poor", TeachingParams::poor()),
            ("well", TeachingParams::well()),
        ] {
            let t0 = Instant::now();
            let n = run_noise(&p, fc, 64, &Cancel::new(), &|_| {}).expect("noise test");
            let (f0, s0) = (n.forward_cov[0], n.standard_cov[0]);
            let rel = |c: &[f64], c0: f64| -> Vec<String> {
                c.iter().map(|v| format!("{:+.3}", v / c0)).collect()
            };
            println!(
                "{fc:?} {name}: predicted var {:.3e}, forward lag-0 {f0:.3e}, standard lag-0 \
                 {s0:.3e} ({:.1} s)",
                n.predicted_var,
                t0.elapsed().as_secs_f64()
            );
            println!("  forward  cov/cov0 {:?}", rel(&n.forward_cov, f0));
            println!("  standard cov/cov0 {:?}", rel(&n.standard_cov, s0));
        }
    }
}

/// The panel in a real window (glow): wait for the live result, run a short noise test, export
/// both figures through the real viewport screenshot, save the whole window too, and close.
/// Needs a display: `xvfb-run -a -s "-screen 0 1600x1000x24" cargo test --test integration
/// teaching_window -- --ignored --nocapture` (prints SKIP without one).
#[test]
#[ignore = "needs a display (xvfb-run)"]
fn teaching_window_exports_both_figures() {
    use winit::platform::x11::EventLoopBuilderExtX11 as _;
    if std::env::var_os("DISPLAY").is_none() {
        println!("SKIP: no DISPLAY");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let window_png = std::env::temp_dir().join("frizzview-teaching-window.png");
    let spectra_png = dir.path().join("spectra.png");
    let noise_png = dir.path().join("noise.png");

    struct App {
        panel: TeachingPanel,
        stage: usize,
        frames: usize,
        window_png: std::path::PathBuf,
        shot_done: Arc<std::sync::atomic::AtomicBool>,
    }
    impl eframe::App for App {
        fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
            self.panel.ui(ui);
            let ctx = ui.ctx().clone();
            self.frames += 1;
            assert!(self.frames < 20_000, "the window test did not finish");
            let saved = |p: &TeachingPanel| p.status().starts_with("saved");
            match self.stage {
                0 if self.panel.live().is_some() && !self.panel.is_busy() => {
                    self.panel.start_noise(&ctx);
                    self.stage = 1;
                }
                1 if self.panel.noise().is_some() => {
                    self.panel.export(Figure::Spectra);
                    self.stage = 2;
                }
                2 if saved(&self.panel) => {
                    self.panel.export(Figure::Noise);
                    self.stage = 3;
                }
                3 if saved(&self.panel) && self.panel.status().contains("noise") => {
                    let (path, done) = (self.window_png.clone(), Arc::clone(&self.shot_done));
                    ctx.request_screenshot(move |img| {
                        let r = egui::Rect::from_min_size(
                            egui::Pos2::ZERO,
                            egui::vec2(img.size[0] as f32, img.size[1] as f32),
                        );
                        save_region_png(&img, r, 1.0, &path).expect("window PNG");
                        done.store(true, std::sync::atomic::Ordering::Relaxed);
                    });
                    self.stage = 4;
                }
                4 if self.shot_done.load(std::sync::atomic::Ordering::Relaxed) => {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                _ => {}
            }
            ctx.request_repaint_after(Duration::from_millis(30));
        }
    }

    let mut panel = TeachingPanel::new();
    panel.trials = 16;
    panel.light_figures = std::env::var_os("FV_DARK").is_none();
    let (s2, n2) = (spectra_png.clone(), noise_png.clone());
    panel.set_path_chooser(Arc::new(move |name: &str| {
        Some(if name.contains("noise") {
            n2.clone()
        } else {
            s2.clone()
        })
    }));
    let app = App {
        panel,
        stage: 0,
        frames: 0,
        window_png: window_png.clone(),
        shot_done: Arc::default(),
    };
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default().with_inner_size([1400.0, 900.0]),
        event_loop_builder: Some(Box::new(|b| {
            b.with_any_thread(true);
        })),
        ..Default::default()
    };
    eframe::run_native("teaching", options, Box::new(|_cc| Ok(Box::new(app))))
        .expect("the window ran");
    for p in [&spectra_png, &noise_png, &window_png] {
        let img = image::open(p).expect("a PNG").to_rgba8();
        let (w, h) = img.dimensions();
        assert!(w > 200 && h > 100, "{}: {w} x {h}", p.display());
        let first = img.get_pixel(0, 0).0;
        assert!(
            img.pixels().any(|px| px.0 != first),
            "{} is blank",
            p.display()
        );
        println!("{}: {w} x {h}", p.display());
    }
    std::fs::copy(
        &spectra_png,
        std::env::temp_dir().join("frizzview-teaching-spectra.png"),
    )
    .expect("copy");
    std::fs::copy(
        &noise_png,
        std::env::temp_dir().join("frizzview-teaching-noise.png"),
    )
    .expect("copy");
}
