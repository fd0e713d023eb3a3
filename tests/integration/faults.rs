//! The window under faults: files are read and written off the UI thread (a file that takes for
//! ever to read does not stop the frames), a failed PNG save is shown, a combination that panics
//! leaves the window working, sessions are written atomically.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use frizzview::app::{DialogKind, Dialogs, FrizzApp, demo};
use frizzview::combine::Combined;
use frizzview::engine::{CombineEngine, Combiner, StagedCombiner};

fn threaded_harness(engine: CombineEngine, n_visits: usize) -> Harness<'static, FrizzApp> {
    let mut app = FrizzApp::new(engine, None);
    app.set_dataset(
        demo::apogee_demo(n_visits).expect("demo data"),
        Vec::new(),
        None,
    );
    Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app)
}

/// Step until `done` holds, at most `limit`; returns the frames drawn.
fn step_until(
    h: &mut Harness<'_, FrizzApp>,
    limit: Duration,
    done: impl Fn(&FrizzApp) -> bool,
) -> usize {
    let t0 = Instant::now();
    let mut frames = 0;
    while !done(h.state()) {
        assert!(t0.elapsed() < limit, "not done after {limit:?}");
        h.step();
        frames += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    frames
}

fn status_text(h: &Harness<'_, FrizzApp>, needle: &str) -> bool {
    use egui_kittest::kittest::Queryable as _;
    h.query_by_label_contains(needle).is_some()
}

/// A CSV visit (wavelength, flux, ivar) the table reader accepts.
fn csv_visit() -> String {
    let mut s = String::from("wavelength,flux,ivar\n");
    for i in 0..400 {
        let w = 15_200.0 + 0.25 * f64::from(i);
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{w},1.0,100.0\n"));
    }
    s
}

/// A named pipe that blocks whoever opens it for reading until `release` is set, as a file on a
/// hung network drive does; then it serves `content`, and the path becomes a plain file with the
/// same content (the readers open a file more than once: format detection, then the reader).
fn slow_file(dir: &Path, content: String, release: Arc<AtomicBool>) -> PathBuf {
    let path = dir.join("slow.csv");
    let plain = dir.join("slow.plain");
    std::fs::write(&plain, &content).expect("write");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo failed");
    let p = path.clone();
    std::thread::spawn(move || {
        while !release.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Waits for the first reader, swaps the plain file in, then feeds that reader.
        let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) else {
            return;
        };
        std::fs::rename(&plain, &p).expect("swap in the plain file");
        let _ = f.write_all(content.as_bytes());
    });
    path
}

#[test]
fn faults_a_file_that_takes_long_to_read_does_not_stop_the_window() {
    let dir = tempfile::tempdir().expect("temp dir");
    let release = Arc::new(AtomicBool::new(false));
    let slow = slow_file(dir.path(), csv_visit(), Arc::clone(&release));
    let engine = CombineEngine::threaded(None).expect("worker");
    let mut h = threaded_harness(engine, 2);
    step_until(&mut h, Duration::from_secs(120), |a| {
        a.result.is_some() && !a.is_computing()
    });
    let before = h.state().result.clone().expect("a result");
    // Release the pipe after 40 frames even if the window is frozen (before the fix, the UI
    // thread itself blocked in the read and the frame loop below never ran).
    let watchdog = {
        let release = Arc::clone(&release);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(30));
            release.store(true, Ordering::Relaxed);
        })
    };
    let paths = vec![slow];
    h.state_mut().dialogs = Dialogs::Injected(Box::new(move |_| paths.clone()));
    h.state_mut().start_dialog(DialogKind::OpenFiles);
    let t0 = Instant::now();
    for _ in 0..40 {
        h.step();
    }
    let released_early = release.load(Ordering::Relaxed);
    assert!(
        !released_early,
        "40 frames took {:?}: the UI thread waited for the file",
        t0.elapsed()
    );
    assert!(h.state().is_busy_with_files(), "the load is still running");
    assert!(status_text(&h, "loading"), "the status bar shows the load");
    assert!(
        Arc::ptr_eq(h.state().result.as_ref().expect("result"), &before),
        "the last result stays drawn"
    );
    // Now the file arrives: its visit is added and the combination reruns with 3 visits.
    release.store(true, Ordering::Relaxed);
    step_until(&mut h, Duration::from_secs(60), |a| !a.is_busy_with_files());
    let app = h.state();
    assert_eq!(app.data.visits.len(), 3, "{:?}", app.messages);
    assert!(!status_text(&h, "loading"));
    drop(watchdog);
}

#[test]
fn faults_exports_run_in_the_background_and_report_their_outcome() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = CombineEngine::threaded(None).expect("worker");
    let mut h = threaded_harness(engine, 2);
    step_until(&mut h, Duration::from_secs(120), |a| {
        a.result.is_some() && !a.is_computing()
    });
    for (name, ok) in [
        ("out.fits", true),
        ("out.npz", true),
        ("out.csv", true),
        ("no/such/folder/out.fits", false),
    ] {
        let path = dir.path().join(name);
        let p = path.clone();
        h.state_mut().dialogs = Dialogs::Injected(Box::new(move |_| vec![p.clone()]));
        h.state_mut().start_dialog(DialogKind::Export);
        step_until(&mut h, Duration::from_secs(60), |a| !a.is_busy_with_files());
        h.step();
        let last = h.state().messages.last().expect("a message").clone();
        assert_eq!(!last.error, ok, "{name}: {last:?}");
        assert!(last.text.contains("out."), "{last:?}");
        assert_eq!(path.exists(), ok, "{name}");
    }
    // Nothing half-written is left beside the outputs.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("out.")), "{names:?}");
}

#[test]
fn faults_a_failed_png_save_is_shown() {
    let mut h = threaded_harness(CombineEngine::inline(), 2);
    h.run_steps(2);
    let img = Arc::new(egui::ColorImage::filled([8, 4], egui::Color32::RED));
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("missing-folder").join("window.png");
    h.state_mut().save_image(bad, Arc::clone(&img));
    h.run_steps(2);
    let last = h.state().messages.last().expect("a message").clone();
    assert!(last.error && last.text.contains("window.png"), "{last:?}");
    // And a good one says where it went, with nothing else left in the folder.
    let good = dir.path().join("window.png");
    h.state_mut().save_image(good.clone(), img);
    h.run_steps(2);
    let last = h.state().messages.last().expect("a message").clone();
    assert!(!last.error && last.text.contains("window.png"), "{last:?}");
    let png = image::open(&good).expect("a PNG").to_rgba8();
    assert_eq!((png.width(), png.height()), (8, 4));
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
}

#[test]
fn faults_a_panicking_combination_leaves_the_window_working() {
    // A combination that panics whenever visit 1 is excluded.
    let combiner: Combiner = Arc::new(|d, s, c, caches| {
        assert!(
            s.visits.get(1).is_none_or(|v| v.include),
            "injected fault: visit 02 excluded"
        );
        frizzview::combine::combine_with(d, s, c, caches)
    });
    let engine = CombineEngine::threaded(None)
        .expect("worker")
        .with_combiner(combiner);
    let mut h = threaded_harness(engine, 3);
    step_until(&mut h, Duration::from_secs(120), |a| {
        a.result.is_some() && !a.is_computing()
    });
    let good: Arc<Combined> = h.state().result.clone().expect("result");
    use egui_kittest::kittest::Queryable as _;
    h.get_by_label("visit 02").click();
    let frames = step_until(&mut h, Duration::from_secs(60), |a| {
        a.error.is_some() && !a.is_computing()
    });
    assert!(frames > 0);
    let app = h.state();
    let e = app.error.clone().expect("an error");
    assert!(
        e.contains("injected fault") && e.contains("3 visits (1 excluded"),
        "the error names the fault and the settings: {e}"
    );
    assert!(
        Arc::ptr_eq(app.result.as_ref().expect("kept"), &good),
        "the last good result stays drawn"
    );
    assert!(status_text(&h, "injected fault"), "shown in the status bar");
    // The next change computes as usual.
    h.get_by_label("visit 02").click();
    step_until(&mut h, Duration::from_secs(60), |a| {
        a.error.is_none() && !a.is_computing()
    });
    assert!(h.state().result.is_some());
}

#[test]
fn faults_sessions_are_written_atomically_and_never_over_an_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = frizzview::app::files::Session {
        version: 1,
        files: vec![dir.path().join("visit.fits")],
        demo: None,
        settings: frizzview::settings::Settings::default(),
    };
    let path = dir.path().join("s.json");
    frizzview::app::files::save_session(&path, &session).expect("saved");
    assert_eq!(
        frizzview::app::files::load_session(&path).expect("read back"),
        session
    );
    // Saving over one of the session's own input files is refused and leaves it alone.
    std::fs::write(&session.files[0], b"SIMPLE  = T").expect("write");
    let err =
        frizzview::app::files::save_session(&session.files[0], &session).expect_err("refused");
    assert!(format!("{err:#}").contains("input"), "{err:#}");
    assert_eq!(
        std::fs::read(&session.files[0]).expect("read"),
        b"SIMPLE  = T"
    );
    // A failed save (into a folder that does not exist) leaves no partial file anywhere.
    let err = frizzview::app::files::save_session(&dir.path().join("no/s.json"), &session);
    assert!(err.is_err());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn faults_a_slider_drag_does_not_wait_for_the_leave_one_out_scores() {
    use egui_kittest::kittest::Queryable as _;
    // The second stage (the scores) holds until it is cancelled or released: the window must
    // show each fit and, while a slider is dragged, submit the next position without waiting.
    let release = Arc::new(AtomicBool::new(false));
    let held = Arc::clone(&release);
    let combiner: StagedCombiner = Arc::new(move |d, s, c, caches, first| {
        frizzview::combine::combine_staged(d, s, c, caches, &mut |x| {
            first(x);
            while !held.load(Ordering::Acquire) && !c.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    });
    let engine = CombineEngine::threaded(None)
        .expect("worker")
        .with_staged_combiner(combiner);
    let mut h = threaded_harness(engine, 3);
    step_until(&mut h, Duration::from_secs(120), |a| {
        a.result.as_ref().is_some_and(|r| r.loo_pending)
    });
    h.step();
    assert!(h.state().is_computing(), "the scores are still to come");
    assert!(status_text(&h, "scoring visits"), "the status bar says so");
    assert!(
        h.query_all_by_label("…").count() >= 3,
        "the leave-one-out column shows the scores as pending"
    );
    // The leave-one-out view says that its model is not there yet.
    h.state_mut().view.leave_one_out = true;
    h.step();
    assert!(
        h.query_by_label("leave-one-out model (computing…)")
            .is_some(),
        "the leave-one-out toggle says the scores are pending"
    );
    h.state_mut().view.leave_one_out = false;
    h.step();
    let first_shift = |a: &FrizzApp| {
        a.result
            .as_ref()
            .and_then(|r| r.settings.visits.first().and_then(|v| v.shift_kms))
    };
    let slider = h
        .get_by_role_and_label(eframe::egui::accesskit::Role::Slider, "shift km/s")
        .rect();
    let start = slider.center();
    h.hover_at(start);
    h.step();
    h.drag_at(start);
    h.step();
    let mut seen = Vec::new();
    let t0 = Instant::now();
    for i in 0..400 {
        assert!(t0.elapsed() < Duration::from_secs(120), "drag too slow");
        h.hover_at(start + egui::vec2(((i / 10) % 20) as f32 * 2.0, 0.0));
        h.step();
        std::thread::sleep(Duration::from_millis(2));
        if let Some(v) = first_shift(h.state())
            && !seen.contains(&v.to_bits())
        {
            seen.push(v.to_bits());
        }
        if seen.len() >= 3 {
            break;
        }
    }
    assert!(
        seen.len() >= 3,
        "fits of new slider positions arrive while the scores of the old ones are pending \
         ({} positions seen)",
        seen.len()
    );
    assert!(
        h.state().result.as_ref().is_some_and(|r| r.loo_pending),
        "no scores were computed during the drag"
    );
    h.drop_at(start);
    h.step();
    release.store(true, Ordering::Release);
    step_until(&mut h, Duration::from_secs(120), |a| {
        !a.is_computing() && a.result.as_ref().is_some_and(|r| !r.loo_pending)
    });
    h.state_mut().view.leave_one_out = true;
    h.step();
    assert!(h.query_by_label("leave-one-out model").is_some());
    let app = h.state();
    let r = app.result.as_ref().expect("result");
    assert_eq!(
        r.settings, app.settings,
        "the scores belong to the last position"
    );
    let f = r.forward.as_ref().expect("forward");
    assert!(f.visits.iter().all(|v| v.loo_chi2_nu.is_finite()));
}
