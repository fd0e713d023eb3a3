//! A monkey test: the real window (`FrizzApp` as an `eframe::App`, its threaded engine and
//! background file jobs) driven headless by seeded random actions: checkboxes, sliders (dragged
//! with the pointer or stepped), drag values, radio buttons, every combo box and one of its
//! entries, tabs, buttons, loading good and broken files, exports, sessions, PNGs, demos.
//!
//! Asserts: no panic (a test panic, or an "internal error" the window caught and showed), no
//! stuck "computing" or file job once the queue drains, and bounded memory (the engine's caches
//! within their byte budgets; the process' peak resident memory, VmHWM, below a limit).
//!
//! `cargo test` runs `FRIZZVIEW_MONKEY_ACTIONS` actions (default 300) with seed
//! `FRIZZVIEW_MONKEY_SEED` (default 1); the peak-memory limit is `FRIZZVIEW_MONKEY_MAX_MB`
//! (default 4096: other tests share the process). Prints actions run, failures and memory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use frizzview::app::{DialogKind, Dialogs, FrizzApp, Tab, demo};
use frizzview::engine::CombineEngine;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (VmHWM, VmRSS) of this process in MB, from /proc/self/status (0 where unavailable).
fn memory_mb() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The files the monkey loads: good ones, broken ones, missing ones.
struct Files {
    _dir: tempfile::TempDir,
    loadable: Vec<PathBuf>,
    outputs: Vec<PathBuf>,
    sessions: Vec<PathBuf>,
}

fn files() -> Files {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let mut loadable = Vec::new();
    let bundle = d.join("demo3.npz");
    frizzview::io::npz::write_dataset(&bundle, &demo::apogee_demo(3).expect("demo"))
        .expect("bundle");
    loadable.push(bundle.clone());
    if let Ok(boss) = demo::boss_demo_path() {
        loadable.push(boss);
    }
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    loadable.push(write("not-fits.fits", b"this is not FITS"));
    loadable.push(write("empty.csv", b""));
    loadable.push(write("broken.csv", b"no,columns,here\n1,2\n"));
    let full = std::fs::read(&bundle).expect("read");
    loadable.push(write("truncated.npz", &full[..full.len() / 3]));
    let mut fits = b"SIMPLE  =                    T".to_vec();
    fits.resize(2880, b' ');
    loadable.push(write("header-only.fits", &fits));
    loadable.push(d.join("missing.fits"));
    let folder = d.join("folder");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::copy(&bundle, folder.join("a.npz")).expect("copy");
    loadable.push(folder);
    let outputs = [
        "out.fits",
        "out.csv",
        "out.npz",
        "out.xyz",
        "no/such/out.fits",
    ]
    .iter()
    .map(|n| d.join(n))
    .chain([bundle])
    .collect();
    let sessions = vec![
        d.join("session.json"),
        write("bad-session.json", b"{ not json"),
        d.join("no/such/session.json"),
    ];
    Files {
        _dir: dir,
        loadable,
        outputs,
        sessions,
    }
}

/// Labels of the clickable widgets of a role in the current frame, with their centres.
fn nodes(h: &Harness<'_, FrizzApp>, role: Role) -> Vec<(String, egui::Pos2)> {
    h.query_all_by_role(role)
        .map(|n| {
            let label = n.accesskit_node().label().unwrap_or_default();
            (label, n.rect().center())
        })
        .collect()
}

fn click_at(h: &Harness<'_, FrizzApp>, pos: egui::Pos2) {
    h.hover_at(pos);
    h.drag_at(pos);
    h.drop_at(pos);
}

fn pick<'a, T>(rng: &mut StdRng, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        None
    } else {
        v.get(rng.random_range(0..v.len()))
    }
}

/// Something went wrong inside the window (caught, but a bug all the same).
fn internal_errors(app: &FrizzApp) -> Vec<String> {
    let mut out: Vec<String> = app
        .messages
        .iter()
        .filter(|m| m.text.contains("internal error"))
        .map(|m| m.text.clone())
        .collect();
    out.extend(
        app.error
            .iter()
            .filter(|e| e.contains("internal error"))
            .cloned(),
    );
    out
}

/// Step until the engine and the file jobs are idle; false if still busy after `limit`.
fn drain(h: &mut Harness<'_, FrizzApp>, limit: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        h.step();
        let app = h.state();
        let teaching_busy =
            app.view.tab == Tab::Teaching && app.teaching.as_ref().is_some_and(|t| t.is_busy());
        if !app.is_computing() && !app.is_busy_with_files() && !teaching_busy {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn monkey_random_actions_on_the_real_window() {
    let n_actions: usize = env_or("FRIZZVIEW_MONKEY_ACTIONS", 300);
    let seed: u64 = env_or("FRIZZVIEW_MONKEY_SEED", 1);
    let max_mb: f64 = env_or("FRIZZVIEW_MONKEY_MAX_MB", 4096.0);
    let f = files();
    let chosen: Arc<Mutex<Vec<PathBuf>>> = Arc::new(Mutex::new(Vec::new()));
    let slot = Arc::clone(&chosen);
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_eframe(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let wake: frizzview::engine::WakeFn = Arc::new(move || ctx.request_repaint());
            let engine = CombineEngine::threaded(Some(wake)).expect("worker");
            let mut app = FrizzApp::new(engine, None);
            app.dialogs = Dialogs::Injected(Box::new(move |_| {
                slot.lock().map(|s| s.clone()).unwrap_or_default()
            }));
            app.set_dataset(demo::apogee_demo(4).expect("demo"), Vec::new(), None);
            app
        });
    assert!(drain(&mut h, Duration::from_secs(120)), "first result");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut failures: Vec<String> = Vec::new();
    let mut counts = [0usize; 12];
    let mut hit = [0usize; 12];
    let mut combo_entries = 0;
    let t0 = Instant::now();
    let teaching_shot = f.outputs[0].with_file_name("teaching.png");
    for step in 0..n_actions {
        if let Some(t) = h.state_mut().teaching.as_mut() {
            let p = teaching_shot.clone();
            t.set_path_chooser(Arc::new(move |_| Some(p.clone())));
        }
        let kind = rng.random_range(0..12);
        counts[kind] += 1;
        match kind {
            0 => {
                if let Some((_, pos)) = pick(&mut rng, &nodes(&h, Role::CheckBox)) {
                    hit[0] += 1;
                    click_at(&h, *pos);
                }
            }
            1 => {
                // A pointer drag along a slider.
                if let Some((_, pos)) = pick(&mut rng, &nodes(&h, Role::Slider)) {
                    hit[1] += 1;
                    let dx = rng.random_range(-150.0..150.0);
                    h.hover_at(*pos);
                    h.drag_at(*pos);
                    h.step();
                    h.hover_at(*pos + egui::vec2(dx / 2.0, 0.0));
                    h.step();
                    h.hover_at(*pos + egui::vec2(dx, 0.0));
                    h.step();
                    h.drop_at(*pos + egui::vec2(dx, 0.0));
                }
            }
            2 => {
                // Step a slider or drag value through AccessKit.
                let mut all = Vec::new();
                for role in [Role::Slider, Role::SpinButton] {
                    all.extend(h.query_all_by_role(role).map(|n| n.rect().center()));
                }
                if let Some(pos) = pick(&mut rng, &all).copied() {
                    hit[2] += 1;
                    let up = rng.random_bool(0.5);
                    let times = rng.random_range(1..6);
                    for _ in 0..times {
                        if let Some(n) = h
                            .query_all_by_role(Role::Slider)
                            .chain(h.query_all_by_role(Role::SpinButton))
                            .find(|n| n.rect().center() == pos)
                        {
                            if up {
                                n.increment_accesskit();
                            } else {
                                n.decrement_accesskit();
                            }
                        }
                    }
                }
            }
            3 => {
                if let Some((_, pos)) = pick(&mut rng, &nodes(&h, Role::RadioButton)) {
                    hit[3] += 1;
                    click_at(&h, *pos);
                }
            }
            4 => {
                // Open a combo box, then click one of the entries that appeared.
                if let Some((_, pos)) = pick(&mut rng, &nodes(&h, Role::ComboBox)) {
                    hit[4] += 1;
                    let before: Vec<String> =
                        nodes(&h, Role::Button).into_iter().map(|n| n.0).collect();
                    click_at(&h, *pos);
                    h.run_steps(2);
                    let entries: Vec<egui::Pos2> = nodes(&h, Role::Button)
                        .into_iter()
                        .filter(|(l, _)| !before.contains(l))
                        .map(|(_, p)| p)
                        .collect();
                    if let Some(p) = pick(&mut rng, &entries) {
                        combo_entries += 1;
                        click_at(&h, *p);
                    }
                }
            }
            5 => {
                let tab =
                    *pick(&mut rng, &["Spectra", "Noise correlation", "Teaching"]).expect("tabs");
                if let Some(n) = h.query_all_by_label(tab).next() {
                    n.click();
                }
            }
            6 => {
                // Load 1-3 files (replace or add, by dialog or drop), good or broken.
                let k = rng.random_range(1..4);
                let paths: Vec<PathBuf> = (0..k)
                    .filter_map(|_| pick(&mut rng, &f.loadable).cloned())
                    .collect();
                *chosen.lock().expect("lock") = paths.clone();
                match rng.random_range(0..3) {
                    0 => h.state_mut().start_dialog(DialogKind::OpenFiles),
                    1 => h.state_mut().open_files(paths),
                    _ => {
                        // Back to a small demo (the "clear" of the monkey).
                        h.state_mut().set_dataset(
                            demo::apogee_demo(rng.random_range(1..5)).expect("demo"),
                            Vec::new(),
                            None,
                        );
                    }
                }
            }
            7 => {
                let p = pick(&mut rng, &f.outputs).cloned().expect("outputs");
                *chosen.lock().expect("lock") = vec![p];
                h.state_mut().start_dialog(DialogKind::Export);
            }
            8 => {
                let p = pick(&mut rng, &f.sessions).cloned().expect("sessions");
                *chosen.lock().expect("lock") = vec![p];
                let kind = if rng.random_bool(0.5) {
                    DialogKind::SaveSession
                } else {
                    DialogKind::OpenSession
                };
                h.state_mut().start_dialog(kind);
            }
            9 => {
                // A PNG of a (fake) frame: the headless harness has no renderer to capture one.
                let img = Arc::new(egui::ColorImage::filled([64, 32], egui::Color32::GRAY));
                let p = pick(&mut rng, &f.outputs)
                    .cloned()
                    .expect("outputs")
                    .with_extension("png");
                h.state_mut().save_image(p, img);
            }
            10 => {
                // Any button, except the ones that open menus of the window system.
                let buttons = nodes(&h, Role::Button);
                if let Some((_, pos)) = pick(&mut rng, &buttons) {
                    hit[10] += 1;
                    click_at(&h, *pos);
                }
            }
            _ => {
                // Let the queue run for a while, sometimes to the end.
                if rng.random_bool(0.2) && !drain(&mut h, Duration::from_secs(120)) {
                    failures.push(format!("action {step}: still busy after 120 s"));
                }
            }
        }
        h.run_steps(2);
        for e in internal_errors(h.state()) {
            if !failures.contains(&e) {
                failures.push(e);
            }
        }
        if failures.len() > 20 {
            break;
        }
        if (step + 1) % 1000 == 0 {
            let (hwm, rss) = memory_mb();
            eprintln!(
                "monkey: {} actions, {:.0} s, {} failures, VmHWM {hwm:.0} MB, VmRSS {rss:.0} MB",
                step + 1,
                t0.elapsed().as_secs_f64(),
                failures.len()
            );
        }
    }
    // Escape any menu left open, back to the spectra, and let everything finish.
    h.key_press(egui::Key::Escape);
    let drained = drain(&mut h, Duration::from_secs(300));
    h.state_mut().view.tab = Tab::Teaching;
    let drained_teaching = drain(&mut h, Duration::from_secs(300));
    let (cache_results, cache_methods) = h.state().cache_bytes();
    let (hwm, rss) = memory_mb();
    println!(
        "monkey: {n_actions} actions (seed {seed}) in {:.1} s, by kind {counts:?} \
         (with a widget found {hit:?}, combo entries picked {combo_entries}); \
         {} failures; drained: {drained} {drained_teaching}; caches {:.1} MB results + {:.1} MB \
         methods; peak memory (VmHWM) {hwm:.0} MB, now (VmRSS) {rss:.0} MB",
        t0.elapsed().as_secs_f64(),
        failures.len(),
        cache_results as f64 / 1e6,
        cache_methods as f64 / 1e6,
    );
    for f in &failures {
        println!("  failure: {f}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
    assert!(
        drained && drained_teaching,
        "stuck computing after the queue drained"
    );
    // The result cache's budget (256 MB) plus the newest result; the method caches' budgets
    // (512 + 256 + 64 MB local basis, 256 + 128 MB standard practice) plus one working set.
    assert!(
        cache_results < 300 << 20,
        "{cache_results} bytes of results"
    );
    assert!(
        cache_methods < 1400 << 20,
        "{cache_methods} bytes of method caches"
    );
    assert!(hwm < max_mb, "peak memory {hwm:.0} MB above {max_mb} MB");
}
