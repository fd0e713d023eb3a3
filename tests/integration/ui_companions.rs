//! The window reads an apStar given with its apVisit files as the command line does: it supplies
//! the visits' velocities and the pipeline's coadd (the reference curve), and adds no visits —
//! whether the files are opened together or the apStar is added to open visits.

use egui_kittest::Harness;
use frizzview::app::FrizzApp;
use frizzview::settings::ShiftSource;

use super::real_star;

fn window_after(steps: impl FnOnce(&mut FrizzApp)) -> FrizzApp {
    let mut app = FrizzApp::inline(frizzview::app::demo::apogee_demo(3).expect("demo"));
    steps(&mut app);
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(4);
    h.into_state()
}

fn assert_apstar_is_a_companion(label: &str, app: &FrizzApp) {
    let names: Vec<&str> = app
        .data
        .visits
        .iter()
        .map(|v| v.meta.name.as_str())
        .collect();
    eprintln!("{label}: visits {names:?}, shift {:?}", app.settings.shift);
    assert_eq!(app.data.visits.len(), 3, "{label}: {names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("apVisit-")),
        "{label}: {names:?}"
    );
    assert!(
        app.data.pipeline_coadd.is_some(),
        "{label}: no reference curve"
    );
    assert_eq!(app.settings.shift, ShiftSource::ApStar, "{label}");
}

#[test]
fn ui_an_apstar_beside_its_visits_gives_velocities_and_the_reference() {
    let Some(dir) = real_star::real_star_dir("ui_companions") else {
        return;
    };
    let visits: Vec<_> = real_star::VISITS.iter().map(|v| dir.join(v)).collect();
    let apstar = dir.join(real_star::APSTAR);
    let together = window_after(|app| {
        let mut all = visits.clone();
        all.push(apstar.clone());
        app.open_files(all);
    });
    assert_apstar_is_a_companion("opened together", &together);
    let added = window_after(|app| {
        app.open_files(visits.clone());
        app.add_files(vec![apstar.clone()]);
    });
    assert_apstar_is_a_companion("added to open visits", &added);
}
