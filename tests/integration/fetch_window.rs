//! The window's side of `fetch`: the real APOGEE demo (from a mirror, over HTTP from a local
//! server, and the fallback to the synthetic star) and the "Fetch a star's files" dialog. The
//! fetch runs on its own thread; the tests poll the window until it has ended.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use frizzview::app::FrizzApp;
use frizzview::app::demo::Demo;
use frizzview::engine::CombineEngine;
use frizzview::fetch::{self, FetchConfig, Product, Release, Templates};

use super::real_star::{APSTAR, VISITS, real_star_dir};
use super::sas_server::{Reply, SasServer};

fn config(base: &str, cache: &Path, mirror: Option<&Path>) -> FetchConfig {
    FetchConfig {
        base_url: base.to_owned(),
        mirror: mirror.map(Path::to_path_buf),
        cache_dir: cache.to_path_buf(),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        retries: 0,
        offline: false,
    }
}

/// The real star's files in the SAS layout: (relative path, bytes), read at test time.
fn real_star_files(src: &Path) -> Vec<(String, Vec<u8>)> {
    let q = fetch::star::real_demo_query();
    let t = Templates::builtin();
    let mut reqs = q.requests(Product::ApStar, &t).unwrap();
    reqs.extend(q.requests(Product::ApVisit, &t).unwrap());
    reqs.iter()
        .zip(std::iter::once(APSTAR).chain(VISITS))
        .map(|(r, name)| {
            assert!(r.rel.ends_with(name));
            (r.rel.clone(), std::fs::read(src.join(name)).unwrap())
        })
        .collect()
}

/// Poll the window's fetch until it has ended (at most 60 s).
fn wait(app: &mut FrizzApp) {
    let t0 = Instant::now();
    while app.is_fetching() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the fetch did not end"
        );
        std::thread::sleep(Duration::from_millis(10));
        app.poll_fetch();
    }
}

fn app_with(cfg: FetchConfig) -> FrizzApp {
    let mut app = FrizzApp::new(CombineEngine::inline(), None);
    app.fetch_config = cfg;
    app
}

fn assert_real(app: &FrizzApp) {
    assert_eq!(app.demo, Some(Demo::ApogeeReal), "{:?}", app.messages);
    assert_eq!(app.data.visits.len(), 3);
    assert!(
        app.data.name.contains("2M00005143+5615568") && app.data.name.contains("real SDSS DR13"),
        "{}",
        app.data.name
    );
    assert!(app.messages.iter().all(|m| !m.error), "{:?}", app.messages);
    for f in &app.files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(VISITS.contains(&name.as_str()) || name == APSTAR, "{name}");
    }
}

#[test]
fn real_demo_opens_from_a_local_mirror() {
    let Some(src) = real_star_dir("fetch_window::real_demo_opens_from_a_local_mirror") else {
        return;
    };
    let mirror = tempfile::tempdir().unwrap();
    for (rel, bytes) in real_star_files(&src) {
        let p = mirror.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    // The base URL is a closed local port: any attempt to download would fail the test.
    let mut app = app_with(config(
        "http://127.0.0.1:1",
        cache.path(),
        Some(mirror.path()),
    ));
    app.open_demo(Demo::ApogeeReal);
    wait(&mut app);
    assert_real(&app);
    assert!(
        app.messages
            .iter()
            .any(|m| m.text.contains("4 file(s) from the local mirror")),
        "{:?}",
        app.messages
    );
    eprintln!("messages: {:?}", app.messages);
}

#[test]
fn real_demo_downloads_into_the_cache() {
    let Some(src) = real_star_dir("fetch_window::real_demo_downloads_into_the_cache") else {
        return;
    };
    let files = real_star_files(&src);
    let routes: HashMap<String, Reply> = files
        .iter()
        .map(|(rel, b)| (rel.clone(), Reply::File(b.clone())))
        .collect();
    let server = SasServer::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let mut app = app_with(config(&server.base, cache.path(), None));
    app.open_demo(Demo::ApogeeReal);
    wait(&mut app);
    assert_real(&app);
    for (rel, bytes) in &files {
        assert_eq!(&std::fs::read(cache.path().join(rel)).unwrap(), bytes);
    }
    assert_eq!(server.requests().len(), 4);
    // Opened again: from the cache, no request.
    app.open_demo(Demo::ApogeeReal);
    wait(&mut app);
    assert_real(&app);
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn real_demo_falls_back_to_the_synthetic_star() {
    let cache = tempfile::tempdir().unwrap();
    let mut app = app_with(config("http://127.0.0.1:1", cache.path(), None));
    let t0 = Instant::now();
    app.open_demo(Demo::ApogeeReal);
    // The window does not wait for the network: the fetch runs on its own thread.
    assert!(app.is_fetching());
    wait(&mut app);
    eprintln!("fallback after {:.3} s", t0.elapsed().as_secs_f64());
    assert_eq!(app.demo, Some(Demo::Apogee));
    assert!(app.data.name.contains("synthetic"), "{}", app.data.name);
    let m = app.messages.last().unwrap();
    assert!(
        m.error && m.text.contains("SYNTHETIC") && m.text.contains("SAS_BASE_DIR"),
        "{m:?}"
    );
}

#[test]
fn fetch_dialog_gets_and_opens_a_star() {
    let Some(src) = real_star_dir("fetch_window::fetch_dialog_gets_and_opens_a_star") else {
        return;
    };
    let files = real_star_files(&src);
    let routes: HashMap<String, Reply> = files
        .iter()
        .map(|(rel, b)| (rel.clone(), Reply::File(b.clone())))
        .collect();
    let server = SasServer::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let mut app = app_with(config(&server.base, cache.path(), None));
    app.fetch_dialog.open = true;
    app.fetch_dialog.apogee_id = "2M00005143+5615568".into();
    app.fetch_dialog.release = Release::Dr13;
    app.fetch_dialog.location_id = "4264".into();
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    h.run_steps(2);
    h.get_by_label("Fetch and open").click();
    h.run_steps(2);
    let t0 = Instant::now();
    while h.state().is_fetching() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the fetch did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
        h.run_steps(1);
    }
    let app = h.state();
    // No visits typed: the apStar's SFILEn cards named them.
    assert_eq!(app.data.visits.len(), 3, "{:?}", app.messages);
    assert!(app.messages.iter().all(|m| !m.error), "{:?}", app.messages);
    assert_eq!(server.requests().len(), 4);
    assert!(!app.fetch_dialog.open);
}
