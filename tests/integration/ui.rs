//! The window, driven headless with egui_kittest (no display, no GPU): open the demo, turn a
//! visit off, change the selection mode and the method, sort, dialogs, session, export.
//!
//! The engine runs inline, so every recomputation finishes inside the frame that asked for it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use frizzview::app::{DialogKind, Dialogs, FrizzApp, SortKey, demo, visits_ui};
use frizzview::combine::Combined;
use frizzview::settings::{Basis, SelectionMode};

fn harness(n_visits: usize) -> Harness<'static, FrizzApp> {
    let data = demo::apogee_demo(n_visits).expect("demo data");
    let app = FrizzApp::inline(data);
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(3);
    h
}

fn result(h: &Harness<'_, FrizzApp>) -> Arc<Combined> {
    let app = h.state();
    assert!(app.error.is_none(), "combination failed: {:?}", app.error);
    let r = app.result.clone().expect("a result");
    assert_eq!(
        r.settings, app.settings,
        "the result must be for the current settings"
    );
    r
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    super::shared::max_abs_diff(a, b)
}

#[test]
fn ui_demo_computes_both_methods_with_one_fit_per_visit() {
    let h = harness(3);
    let r = result(&h);
    let f = r.forward.as_ref().expect("forward model");
    let s = r.standard.as_ref().expect("standard practice");
    assert_eq!(f.visits.len(), 3, "one chi2 per visit");
    assert_eq!(f.flux.len(), r.grid.len());
    assert_eq!(s.flux.len(), r.grid.len());
    assert!(r.visits.iter().all(|v| v.included));
    // The demo is a noisy APOGEE-like star around continuum 1: chi2/nu near 1, not 0 or 1e6.
    for v in &f.visits {
        assert!(v.chi2_nu > 0.5 && v.chi2_nu < 20.0, "chi2/nu {}", v.chi2_nu);
    }
}

#[test]
fn ui_turning_a_visit_off_recomputes_without_it() {
    let mut h = harness(3);
    let before = result(&h);
    h.get_by_label("visit 02").click();
    h.run_steps(3);
    let after = result(&h);
    assert!(!h.state().settings.visits[1].include);
    assert!(!after.visits[1].included);
    assert!(after.visits[0].included && after.visits[2].included);
    let (fb, fa) = (
        before.forward.as_ref().expect("forward"),
        after.forward.as_ref().expect("forward"),
    );
    assert!(max_abs_diff(&fb.flux, &fa.flux) > 1e-6, "flux must change");
    // The excluded visit still gets a prediction and chi2 (to see how it disagrees).
    assert!(fa.visits[1].chi2_nu.is_finite());
    // Turning it back on returns to the first result (served from the cache, identical).
    h.get_by_label("visit 02").click();
    h.run_steps(3);
    let again = result(&h);
    assert!(
        Arc::ptr_eq(&again, &before),
        "the cache must return the same result"
    );
}

#[test]
fn ui_selection_mode_and_method_change_the_result() {
    let mut h = harness(2);
    let multiply = result(&h);
    assert_eq!(h.state().settings.selection, SelectionMode::Multiply);
    h.get_by_label("ignore").click();
    h.run_steps(3);
    let ignore = result(&h);
    assert_eq!(ignore.settings.selection, SelectionMode::Ignore);
    let (m, i) = (
        multiply.forward.as_ref().expect("forward"),
        ignore.forward.as_ref().expect("forward"),
    );
    // Ignoring the telluric factor imprints the telluric lines on the star.
    assert!(
        max_abs_diff(&m.flux, &i.flux) > 1e-2,
        "ignoring S must change the fit"
    );
    // Dividing the data by S minimises the same chi^2 as multiplying the model by S (only
    // pixels with S below the threshold drop out), so the two agree closely.
    h.get_by_label("divide data").click();
    h.run_steps(3);
    let divide = result(&h);
    assert_eq!(divide.settings.selection, SelectionMode::Divide);
    let d = divide.forward.as_ref().expect("forward");
    let typical = m
        .var
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v.sqrt())
        .sum::<f64>()
        / m.var.iter().filter(|v| v.is_finite()).count() as f64;
    let close = m
        .flux
        .iter()
        .zip(&d.flux)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .filter(|(a, b)| (*a - *b).abs() < 0.1 * typical)
        .count();
    let finite = m.flux.iter().filter(|a| a.is_finite()).count();
    assert!(
        close as f64 > 0.9 * finite as f64,
        "{close} of {finite} pixels agree"
    );

    h.get_by_label("Standard practice").click();
    h.run_steps(3);
    let no_standard = result(&h);
    assert!(no_standard.standard.is_none());
    assert!(no_standard.forward.is_some());

    h.get_by_label("Basis").click();
    h.run_steps(2);
    h.get_by_label("Fourier (exact)").click();
    h.run_steps(3);
    let fourier = result(&h);
    let fs = fourier.settings.forward.as_ref().expect("forward settings");
    assert_eq!(fs.basis, Basis::Fourier);
    let (l, f) = (
        no_standard.forward.as_ref().expect("forward"),
        fourier.forward.as_ref().expect("forward"),
    );
    assert_eq!(l.flux.len(), f.flux.len());
    assert!(
        max_abs_diff(&l.flux, &f.flux) > 0.0,
        "a different basis gives other numbers"
    );
}

#[test]
fn ui_sorting_by_chi2_puts_the_worst_visit_first() {
    let mut h = harness(4);
    let r = result(&h);
    h.get_by_label("chi2/nu").click();
    h.run_steps(2);
    assert_eq!(h.state().view.sort, SortKey::Chi2);
    let order = visits_ui::sorted_indices(h.state());
    let chi: Vec<f64> = r
        .forward
        .as_ref()
        .expect("forward")
        .visits
        .iter()
        .map(|v| v.chi2_nu)
        .collect();
    let mut expected: Vec<usize> = (0..chi.len()).collect();
    expected.sort_by(|&a, &b| chi[b].total_cmp(&chi[a]));
    assert_eq!(order, expected);
}

fn inject(h: &mut Harness<'_, FrizzApp>, paths: Vec<PathBuf>) -> Arc<Mutex<Vec<DialogKind>>> {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    h.state_mut().dialogs = Dialogs::Injected(Box::new(move |kind| {
        log.lock().expect("lock").push(kind);
        paths.clone()
    }));
    asked
}

#[test]
fn ui_a_bad_file_shows_a_message_naming_it_and_the_session_continues() {
    let mut h = harness(2);
    let before = result(&h);
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("not-a-spectrum.fits");
    std::fs::write(&bad, b"this is not FITS").expect("write");
    let asked = inject(&mut h, vec![bad]);
    h.state_mut().start_dialog(DialogKind::OpenFiles);
    h.run_steps(3);
    assert_eq!(*asked.lock().expect("lock"), vec![DialogKind::OpenFiles]);
    let app = h.state();
    let last = app.messages.last().expect("a message");
    assert!(last.error, "{last:?}");
    assert!(last.text.contains("not-a-spectrum.fits"), "{}", last.text);
    assert_eq!(app.data.visits.len(), 2, "the loaded visits stay");
    assert!(Arc::ptr_eq(&result(&h), &before));
}

#[test]
fn ui_session_round_trip_restores_settings() {
    let mut h = harness(2);
    h.get_by_label("visit 01").click();
    h.get_by_label("ignore").click();
    h.run_steps(3);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("session.json");
    inject(&mut h, vec![path.clone()]);
    h.state_mut().start_dialog(DialogKind::SaveSession);
    let saved = h.state().settings.clone();
    assert!(!saved.visits[0].include);
    let session = frizzview::app::files::load_session(&path).expect("session file");
    assert_eq!(session.settings, saved);
    assert_eq!(session.demo, None, "FrizzApp::inline has no demo");

    // A fresh window with the same data takes the session's settings.
    let mut other = FrizzApp::inline(demo::apogee_demo(2).expect("demo"));
    assert_ne!(other.settings, saved);
    other.settings = session.settings.clone();
    assert_eq!(other.settings.selection, SelectionMode::Ignore);
    assert!(frizzview::app::files::load_session(&dir.path().join("missing.json")).is_err());
}

#[test]
fn ui_export_writes_csv_and_refuses_unknown_extensions() {
    let mut h = harness(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("combined.csv");
    inject(&mut h, vec![csv.clone()]);
    h.state_mut().start_dialog(DialogKind::Export);
    let text = std::fs::read_to_string(&csv).expect("the CSV was written");
    let n_grid = result(&h).grid.len();
    let data_lines = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(
        data_lines >= n_grid,
        "{data_lines} lines for {n_grid} pixels"
    );

    let odd = dir.path().join("combined.xyz");
    inject(&mut h, vec![odd]);
    h.state_mut().start_dialog(DialogKind::Export);
    let last = h.state().messages.last().expect("a message").clone();
    assert!(last.error && last.text.contains("combined.xyz"), "{last:?}");
}

#[test]
fn ui_view_spec_and_tabs_do_not_disturb_the_result() {
    let mut h = harness(2);
    let r = result(&h);
    h.state_mut()
        .apply_view_spec("layout=single,visit=2,frame=observed,compare=difference,tab=noise");
    h.run_steps(2);
    assert_eq!(h.state().selected_visit, 1);
    assert!(h.state().messages.is_empty());
    h.state_mut().apply_view_spec("bogus=1");
    assert!(
        h.state()
            .messages
            .last()
            .is_some_and(|m| m.error && m.text.contains("bogus"))
    );
    assert!(
        Arc::ptr_eq(&result(&h), &r),
        "view changes must not recompute"
    );
}

#[test]
fn ui_open_files_loads_the_real_boss_star_with_boss_defaults() {
    let path = demo::boss_demo_path().expect("the BOSS demo file is in the repository");
    let mut app = FrizzApp::inline(frizzview::model::Dataset::default());
    app.open_files(vec![path.clone()]);
    assert_eq!(app.files, vec![path]);
    assert_eq!(app.data.visits.len(), 7, "7 exposures");
    assert_eq!(app.data.survey, frizzview::model::Survey::Boss);
    assert_eq!(app.settings.grid, frizzview::settings::GridSpec::Boss);
    assert_eq!(app.settings.bad_bits, frizzview::model::mask::BOSS_BAD_BITS);
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(3);
    let r = result(&h);
    assert_eq!(r.grid.len(), frizzview::model::OutputGrid::boss().len());
    // The mask checklist names SPPIXMASK bits for BOSS data.
    h.get_by_label("Mask bits").click();
    h.run_steps(2);
    let first_bad = frizzview::model::mask::BOSS_SPPIXMASK
        .iter()
        .find(|d| d.level == frizzview::model::mask::BitLevel::Bad)
        .expect("a bad bit");
    h.get_by_label(&format!("{} ({})", first_bad.name, first_bad.bit));
}

#[test]
fn ui_icon_is_a_square_rgba_image() {
    let icon = frizzview::app::icon();
    assert_eq!(icon.rgba.len(), (icon.width * icon.height * 4) as usize);
    assert!(icon.rgba.chunks(4).any(|p| p == [255, 255, 255, 255]));
}

#[test]
fn ui_remembered_settings_apply_to_data_of_the_same_survey() {
    let mut remembered = frizzview::app::survey_defaults(&demo::apogee_demo(2).expect("demo"));
    remembered.selection = SelectionMode::Ignore;
    remembered.band_lags = 9;
    let prefs = frizzview::app::Prefs {
        settings: vec![(frizzview::model::Survey::Apogee, remembered)],
        ..Default::default()
    };
    let mut app = FrizzApp::new(frizzview::engine::CombineEngine::inline(), Some(prefs));
    app.set_dataset(demo::apogee_demo(2).expect("demo"), Vec::new(), None);
    assert_eq!(app.settings.selection, SelectionMode::Ignore);
    assert_eq!(app.settings.band_lags, 9);
    assert_eq!(
        app.settings.visits.len(),
        2,
        "per-visit settings follow the data"
    );
    // Another survey gets its own defaults.
    let boss = demo::boss_demo_path().expect("demo file");
    app.open_files(vec![boss]);
    // Not the remembered APOGEE values: BOSS files carry no selection factor, so it is ignored.
    assert_eq!(app.settings.selection, SelectionMode::Ignore);
    assert_eq!(app.settings.band_lags, 5);
}

#[test]
fn ui_apply_session_reopens_the_files_and_their_per_visit_settings() {
    let boss = demo::boss_demo_path().expect("demo file");
    let mut first = FrizzApp::inline(frizzview::model::Dataset::default());
    first.open_files(vec![boss.clone()]);
    first.settings.visits[2].include = false;
    first.settings.visits[4].weight = 0.25;
    let session = first.session();
    assert_eq!(session.files, vec![boss]);

    let mut second = FrizzApp::inline(frizzview::model::Dataset::default());
    second.apply_session(session.clone());
    assert_eq!(second.data.visits.len(), 7);
    assert_eq!(second.settings, session.settings);

    // A session whose per-visit list does not match the data keeps the global settings, resets
    // the per-visit ones and says so.
    let mut wrong = session;
    wrong.settings.visits.truncate(2);
    wrong.settings.band_lags = 11;
    let mut third = FrizzApp::inline(frizzview::model::Dataset::default());
    third.apply_session(wrong);
    assert_eq!(third.settings.band_lags, 11);
    assert_eq!(third.settings.visits.len(), 7);
    assert!(third.settings.visits.iter().all(|v| v.include));
    let last = third.messages.last().expect("a message");
    assert!(last.error && last.text.contains("2 visits"), "{last:?}");
}

/// A file dropped on the window, as the integration would deliver it.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn ui_dropping_files_adds_visits_and_a_bad_drop_only_shows_a_message() {
    let app = FrizzApp::inline(frizzview::model::Dataset::default());
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(1);
    let boss = demo::boss_demo_path().expect("demo file");
    h.input_mut().dropped_files.push(Arc::new(Dropped(boss)));
    h.run_steps(3);
    assert_eq!(h.state().data.visits.len(), 7);
    let r = result(&h);
    assert_eq!(r.visits.len(), 7);

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("broken.csv");
    std::fs::write(&bad, "no,columns,here\n1,2\n").expect("write");
    h.input_mut().dropped_files.push(Arc::new(Dropped(bad)));
    h.run_steps(3);
    assert_eq!(h.state().data.visits.len(), 7, "the session continues");
    let last = h.state().messages.last().expect("a message").clone();
    assert!(last.error && last.text.contains("broken.csv"), "{last:?}");
    assert!(Arc::ptr_eq(&result(&h), &r));
}

#[test]
fn ui_visits_of_another_star_are_not_added() {
    let boss = demo::boss_demo_path().expect("demo file");
    let mut app = FrizzApp::inline(frizzview::model::Dataset::default());
    app.open_files(vec![boss.clone()]);
    assert_eq!(app.data.visits.len(), 7);
    // The synthetic star has its own object name; written as a bundle and dropped in.
    let dir = tempfile::tempdir().expect("temp dir");
    let other = dir.path().join("other-star.npz");
    let mut data = demo::apogee_demo(1).expect("demo");
    for v in &mut data.visits {
        let mut meta = v.meta.clone();
        meta.object = Some("2M00000000+0000000".into());
        *v = Arc::new(v.with_meta(meta));
    }
    frizzview::io::npz::write_dataset(&other, &data).expect("bundle written");
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(1);
    h.input_mut().dropped_files.push(Arc::new(Dropped(other)));
    h.run_steps(2);
    assert_eq!(h.state().data.visits.len(), 7);
    let last = h.state().messages.last().expect("a message").clone();
    assert!(
        last.error && last.text.contains("other-star.npz") && last.text.contains("2M00000000"),
        "{last:?}"
    );
}

#[test]
fn ui_fitted_velocities_can_be_adopted_and_outlier_scores_show() {
    let mut h = harness(3);
    h.state_mut().settings.extensions.fit_shifts = true;
    h.state_mut().settings.extensions.robust = Some(frizzview::settings::Robust::Huber(1.345));
    h.run_steps(3);
    let r = result(&h);
    let f = r.forward.as_ref().expect("forward");
    let fitted = f.fitted_velocity.clone().expect("fitted velocities");
    assert_eq!(fitted.len(), 3);
    assert!(f.visits.iter().all(|v| !v.robust_weight.is_empty()));
    // The table shows each fit with its error, and an outlier score per visit.
    let (v0, e0) = fitted[0];
    h.get_by_label(&format!("{v0:.2} ± {e0:.2}"));
    let score = format!("{:.1}%", 100.0 * f.visits[0].outlier_score);
    assert!(
        h.query_all_by_label(&score).count() >= 1,
        "outlier score {score} shown"
    );
    // "adopt" makes the fitted velocity the visit's manual shift.
    assert_eq!(h.state().settings.visits[0].shift_kms, None);
    h.get_all_by_label("adopt")
        .next()
        .expect("an adopt button")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().settings.visits[0].shift_kms, Some(v0));
}
