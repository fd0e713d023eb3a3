//! The window on real stars whose header velocities are wrong (`../shared/data/apogee_multistar`):
//! the visit table shows the data's velocity of each visit and which header velocity it replaced,
//! the fit and velocity warnings are drawn above the table, and a visit a warning names is
//! excluded in one click.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use frizzview::app::FrizzApp;
use frizzview::app::visits_ui;

use super::multistar;

/// The window with `files` opened, stepped until the combination (with its leave-one-out scores)
/// is drawn.
fn window_with(files: Vec<std::path::PathBuf>) -> Harness<'static, FrizzApp> {
    let mut app = FrizzApp::inline(frizzview::app::demo::apogee_demo(3).expect("demo"));
    app.open_files(files);
    let mut h = Harness::builder()
        .with_size([1600.0, 1000.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    settle(&mut h);
    h
}

fn settle(h: &mut Harness<'static, FrizzApp>) {
    for _ in 0..40 {
        h.run_steps(2);
        let done = h
            .state()
            .result
            .as_deref()
            .is_some_and(|r| !r.loo_pending && r.velocity.is_some());
        if done {
            h.run_steps(2);
            return;
        }
    }
    panic!("no combination with velocities after 80 frames");
}

#[test]
fn ui_replaced_header_velocities_are_shown_with_the_datas() {
    let Some(star) = multistar::star("2M00452143+1634446") else {
        return;
    };
    // The headers say 602, 614 and -204 km/s; the pipeline combined with 13.6, 22.5 and 26.0.
    let h = window_with(star.visits.clone());
    let app = h.state();
    assert_eq!(app.data.visits.len(), 3);
    let used: Vec<f64> = (0..3)
        .map(|i| visits_ui::velocity_in_use(app, i).0.expect("a velocity"))
        .collect();
    let rel = [used[1] - used[0], used[2] - used[0]];
    eprintln!("velocities in use {used:?}, relative {rel:?} (apStar: 8.83, 12.42)");
    assert!(
        (rel[0] - 8.83).abs() < 1.5 && (rel[1] - 12.42).abs() < 1.5,
        "{rel:?}"
    );
    let replaced = (0..3)
        .filter(|&i| visits_ui::checked_velocity(app, i).is_some_and(|c| c.replaced))
        .count();
    assert!(replaced >= 1, "no header velocity shown as replaced");
    assert!(
        h.query_all_by_label_contains("(replaced)").count() >= 1,
        "the table does not say which velocity was replaced"
    );
    assert!(
        h.query_all_by_label_contains("disagrees with the data")
            .count()
            >= 1,
        "the velocity warning is not drawn above the table"
    );
    // The headers share a ~580 km/s error; the cool-star template (2500 K) measures this M
    // dwarf's frame, so the headers' zero point is replaced, not warned about as implausible
    // (`multistar::an_unverifiable_absolute_frame_is_named` tests that warning).
    assert_eq!(
        h.query_all_by_label_contains("where almost no Milky Way star is")
            .count(),
        0,
        "the frame is measured: no implausible-frame warning"
    );
}

#[test]
fn ui_a_visit_named_by_the_fit_warning_is_excluded_in_one_click() {
    let Some(star) = multistar::star("2M03442721+3220288") else {
        return;
    };
    // All 16 files: visit -9 (S/N 3.3) is the one the pipeline left out.
    let mut h = window_with(star.visits.clone());
    let bad = "apVisit-2M03442721+3220288-9";
    let i = h
        .state()
        .data
        .visits
        .iter()
        .position(|v| v.meta.name == bad)
        .expect("visit -9 loaded");
    let named = h.state().result.as_deref().is_some_and(|r| {
        r.warnings
            .iter()
            .any(|w| visits_ui::warning_visits(w).iter().any(|n| n == bad))
    });
    assert!(named, "no warning names {bad}");
    h.get_by_label(&format!("exclude {bad}")).click();
    settle(&mut h);
    let app = h.state();
    assert!(!app.settings.visits[i].include, "{bad} still included");
    let r = app.result.as_deref().expect("a result");
    let used = r.visits.iter().filter(|v| v.included).count();
    assert_eq!(used, 15, "the new combination does not leave {bad} out");
    // Without it the fit is good (chi^2/nu 1.27 as the 15-visit set): no poor-fit warning is left.
    let poor: Vec<String> = r
        .warnings
        .iter()
        .filter(|w| matches!(w, frizzview::combine::Warning::PoorFit { .. }))
        .map(ToString::to_string)
        .collect();
    assert!(poor.is_empty(), "still a poor fit without {bad}: {poor:?}");
    assert_eq!(
        h.query_all_by_label(&format!("exclude {bad}")).count(),
        0,
        "the excluded visit is still offered"
    );
}

/// Issue 17 item 5: the visit table shows every visit of a typical set without scrolling at
/// 1600x1000, with the fit, velocity and rest-frame warnings drawn above it (which pushed the
/// third of three rows out of view when the panel was sized before the result arrived).
#[test]
fn ui_the_visit_table_shows_every_visit_of_a_typical_set_without_scrolling() {
    for name in multistar::STARS {
        let Some(star) = multistar::star(name) else {
            return;
        };
        let mut files = star.visits.clone();
        files.push(star.apstar.clone());
        let h = window_with(files);
        let app = h.state();
        let n = app.data.visits.len();
        let layout = app.visit_table;
        let warnings = app.result.as_deref().map_or(0, |r| r.warnings.len());
        eprintln!("{name}: {n} visits, {warnings} warnings, table {layout:?}");
        assert_eq!(layout.rows, n, "{name}");
        assert!(
            layout.above_px > 0.0,
            "{name}: nothing measured above the table"
        );
        // Up to VISIT_ROWS_SHOWN visits all show; a larger set shows that many and scrolls.
        let want = n.min(visits_ui::VISIT_ROWS_SHOWN);
        assert!(
            layout.rows_visible >= want,
            "{name}: {} of {n} rows visible without scrolling (want {want})",
            layout.rows_visible
        );
    }
}
