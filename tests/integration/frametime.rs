//! Frame time while a slider is dragged (goal: <= 16 ms at the 95th percentile, 60 frames/s).
//!
//! A headless egui_kittest harness moves a slider one step per frame, as a drag does, and times
//! each frame: `Harness::step()` (the whole UI pass: layout, plots, AccessKit tree) plus the
//! tessellation of that frame's shapes into meshes. What is not measured is the GPU upload and
//! draw, which egui does in a few hundred microseconds on real hardware. The AccessKit tree is
//! built in every harness frame but only on demand in the real window, so these figures are an
//! upper bound of the CPU part of a frame.
//!
//! Besides wall time, each frame's on-CPU time is read from the thread's CPU clock (Unix): on a
//! shared machine the wall time mostly measures waiting for a core, the on-CPU time does not.
//!
//! The measurements are `#[ignore]`d (timing depends on the machine and the profile); run them
//! in the `frametime` profile (Cargo.toml: egui, epaint, egui_plot, this crate and the numerics
//! at release optimisation, the rest as in dev; a fraction of a release build's time):
//! `cargo test --profile frametime --test integration frametime -- --ignored --nocapture`
//! (`--release` works too). The ordinary test run only checks that the harness works.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use frizzview::app::FrizzApp;
use frizzview::app::teaching::TeachingPanel;
use frizzview::engine::CombineEngine;
use frizzview::synth::apogee::{ApogeeParams, generate};

/// Frame-time summary in milliseconds.
#[derive(Debug)]
pub struct FrameStats {
    pub frames: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl std::fmt::Display for FrameStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frames: median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            self.frames, self.median_ms, self.p95_ms, self.max_ms
        )
    }
}

/// Median, 95th percentile (nearest rank) and maximum of `times`.
pub fn frame_stats(times: &[Duration]) -> FrameStats {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let rank = |q: f64| ms[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    FrameStats {
        frames: n,
        median_ms: rank(0.5),
        p95_ms: rank(0.95),
        max_ms: ms[n - 1],
    }
}

/// Time this thread has spent on a CPU (ns; `CLOCK_THREAD_CPUTIME_ID`), `None` off Unix.
/// Frame times in wall-clock terms depend on how busy the machine is; on-CPU time does not, and
/// equals the wall time of a frame on an otherwise idle core. (`/proc/thread-self/schedstat`,
/// used before, only advances at scheduler ticks: 4 ms steps here, too coarse for a frame.)
#[cfg(unix)]
pub fn thread_cpu_ns() -> Option<u64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(t.tv_nsec).ok()?)
}

/// Time this thread has spent on a CPU: not measured off Unix.
#[cfg(not(unix))]
pub fn thread_cpu_ns() -> Option<u64> {
    None
}

/// One frame: wall time of the UI pass (`Harness::step`), wall time of the tessellation, and the
/// on-CPU time of both together (if known).
#[derive(Clone, Copy, Debug)]
pub struct FrameTime {
    pub ui: Duration,
    pub tessellate: Duration,
    pub cpu: Option<Duration>,
}

/// Time `frames` frames; `before(harness, i)` queues frame i's input (e.g. a pointer move).
pub fn time_frames<S>(
    h: &mut Harness<'_, S>,
    frames: usize,
    mut before: impl FnMut(&mut Harness<'_, S>, usize),
) -> Vec<FrameTime> {
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        before(h, i);
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        h.step();
        let t1 = Instant::now();
        let shapes = h.output().shapes.clone();
        let ppp = h.output().pixels_per_point;
        let meshes = h.ctx.tessellate(shapes, ppp);
        let t2 = Instant::now();
        let cpu = c0
            .zip(thread_cpu_ns())
            .map(|(a, b)| Duration::from_nanos(b.saturating_sub(a)));
        times.push(FrameTime {
            ui: t1 - t0,
            tessellate: t2 - t1,
            cpu,
        });
        std::hint::black_box(meshes);
    }
    times
}

/// What one frame draws: shapes by kind (with their point counts) and the tessellated size.
#[derive(Debug, Default)]
pub struct Census {
    pub paths: usize,
    pub path_points: usize,
    pub bands: usize,
    pub band_points: usize,
    pub other_shapes: usize,
    pub vertices: usize,
    pub indices: usize,
}

impl std::fmt::Display for Census {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} paths ({} points), {} bands ({} points), {} other shapes; tessellated: {} \
             vertices, {} indices",
            self.paths,
            self.path_points,
            self.bands,
            self.band_points,
            self.other_shapes,
            self.vertices,
            self.indices
        )
    }
}

/// Count the shapes of the harness's last frame and tessellate them.
pub fn census<S>(h: &Harness<'_, S>) -> Census {
    fn count(shape: &egui::Shape, c: &mut Census) {
        match shape {
            egui::Shape::Vec(v) => v.iter().for_each(|s| count(s, c)),
            egui::Shape::Path(p) => {
                c.paths += 1;
                c.path_points += p.points.len();
            }
            egui::Shape::Band(b) => {
                c.bands += 1;
                c.band_points += b.points.len();
            }
            _ => c.other_shapes += 1,
        }
    }
    let mut c = Census::default();
    for s in &h.output().shapes {
        count(&s.shape, &mut c);
    }
    let meshes = h
        .ctx
        .tessellate(h.output().shapes.clone(), h.output().pixels_per_point);
    for m in &meshes {
        if let egui::epaint::Primitive::Mesh(m) = &m.primitive {
            c.vertices += m.vertices.len();
            c.indices += m.indices.len();
        }
    }
    c
}

/// Summaries of whole frames, of the UI pass alone, of the tessellation alone, and of on-CPU time.
#[derive(Debug)]
pub struct FrameBreakdown {
    pub total: FrameStats,
    pub ui: FrameStats,
    pub tessellate: FrameStats,
    pub cpu: Option<FrameStats>,
}

impl std::fmt::Display for FrameBreakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wall: {} (UI pass: median {:.2} ms, p95 {:.2} ms; tessellation: median {:.2} ms, p95 \
             {:.2} ms)",
            self.total,
            self.ui.median_ms,
            self.ui.p95_ms,
            self.tessellate.median_ms,
            self.tessellate.p95_ms
        )?;
        if let Some(c) = &self.cpu {
            write!(
                f,
                "; on-CPU: median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
                c.median_ms, c.p95_ms, c.max_ms
            )?;
        }
        Ok(())
    }
}

/// Summarise [`time_frames`].
pub fn breakdown(times: &[FrameTime]) -> FrameBreakdown {
    let total: Vec<Duration> = times.iter().map(|t| t.ui + t.tessellate).collect();
    let ui: Vec<Duration> = times.iter().map(|t| t.ui).collect();
    let tess: Vec<Duration> = times.iter().map(|t| t.tessellate).collect();
    let cpu: Option<Vec<Duration>> = times.iter().map(|t| t.cpu).collect();
    FrameBreakdown {
        total: frame_stats(&total),
        ui: frame_stats(&ui),
        tessellate: frame_stats(&tess),
        cpu: cpu.map(|c| frame_stats(&c)),
    }
}

/// Drag the teaching panel's velocity slider for `frames` frames while the worker recomputes.
fn drag_teaching_slider(frames: usize) -> FrameBreakdown {
    let mut h = Harness::builder()
        .with_size([1600.0, 1000.0])
        .build_ui_state(|ui, p: &mut TeachingPanel| p.ui(ui), TeachingPanel::new());
    // Let the first result arrive so the plots are full.
    let t0 = Instant::now();
    while h.state().live().is_none() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
        h.step();
    }
    let times = time_frames(&mut h, frames, |h, i| {
        let v = 30.0 + 20.0 * (i as f64 / 10.0).sin();
        h.get_by_role_and_label(Role::Slider, "velocity amplitude")
            .set_value_accesskit(v);
    });
    breakdown(&times)
}

/// What a drag of the main window's shift slider measured.
#[derive(Debug)]
pub struct DragReport {
    /// Frame times during the drag.
    pub frames: FrameBreakdown,
    /// Combinations that arrived during the drag.
    pub results: usize,
    /// Wall time of the drag (s).
    pub seconds: f64,
    /// Velocity of the dragged visit at the end (km/s), if it was set manually.
    pub final_shift_kms: Option<f64>,
    /// What the last frame drew.
    pub census: Census,
    /// Model/residual curves drawn once the drag ended and the last result arrived: (from that
    /// result, from older ones).
    pub settled_curves: (usize, usize),
}

/// The main window with `n_visits` APOGEE-like visits (threaded engine, as in the real app):
/// wait for the first result, then drag the selected visit's "shift km/s" slider with the
/// pointer, one pixel-step per frame, back and forth over +-`amplitude_px`.
pub fn drag_main_shift_slider(n_visits: usize, frames: usize, amplitude_px: f32) -> DragReport {
    main_window_frames(n_visits, frames, Some(amplitude_px))
}

/// Where a drag starts: the shift slider, or a point inside the exposures plot (which pans
/// the linked plots, so that every visit's curves are due again each frame).
static PAN_AT: std::sync::Mutex<Option<egui::Pos2>> = std::sync::Mutex::new(None);

/// As [`drag_main_shift_slider`], dragging inside the exposures plot instead (a pan).
pub fn pan_main_plots(n_visits: usize, frames: usize, amplitude_px: f32) -> DragReport {
    // Inside the exposures plot of a 1600 x 1000 window (below the combined plot, above the
    // residuals), away from its axes.
    *PAN_AT.lock().expect("no panic while held") = Some(egui::pos2(950.0, 640.0));
    let r = main_window_frames(n_visits, frames, Some(amplitude_px));
    *PAN_AT.lock().expect("no panic while held") = None;
    r
}

/// As [`drag_main_shift_slider`]; `None` = no input at all (the cost of drawing alone).
pub fn main_window_frames(n_visits: usize, frames: usize, drag_px: Option<f32>) -> DragReport {
    let data = generate(&ApogeeParams {
        n_visits,
        ..ApogeeParams::default()
    })
    .expect("APOGEE-like data");
    let engine = CombineEngine::threaded(None).expect("a worker thread");
    let mut app = FrizzApp::new(engine, None);
    app.set_dataset(data, Vec::new(), None);
    let mut h = Harness::builder()
        .with_size([1600.0, 1000.0])
        .build_ui_state(|ui, app: &mut FrizzApp| app.show(ui), app);
    let t0 = Instant::now();
    while h.state().result.is_none() {
        assert!(
            h.state().error.is_none(),
            "combination failed: {:?}",
            h.state().error
        );
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no first result after 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    h.step();
    let slider = h.get_by_role_and_label(Role::Slider, "shift km/s").rect();
    let pan_at = *PAN_AT.lock().expect("no panic while held");
    let start = pan_at.unwrap_or(slider.center());
    if drag_px.is_some() {
        h.hover_at(start);
        h.step();
        h.drag_at(start);
        h.step();
    }
    let amplitude_px = drag_px.unwrap_or(0.0);
    let mut results = 0;
    let mut last = h.state().result.clone();
    let t_drag = Instant::now();
    let times = time_frames(&mut h, frames, |h, i| {
        // A triangle wave: the pointer sweeps right, left and back, a pixel or two per frame.
        let period = 4.0 * amplitude_px;
        let phase = (i as f32 * 1.5) % period;
        let dx = if phase < amplitude_px {
            phase
        } else if phase < 3.0 * amplitude_px {
            2.0 * amplitude_px - phase
        } else {
            phase - period
        };
        if drag_px.is_some() {
            h.hover_at(start + egui::vec2(dx, 0.0));
        }
        let now = h.state().result.clone();
        if let (Some(a), Some(b)) = (&now, &last)
            && !Arc::ptr_eq(a, b)
        {
            results += 1;
        }
        last = now;
    });
    let seconds = t_drag.elapsed().as_secs_f64();
    h.drop_at(start);
    h.step();
    let census = census(&h);
    // Let the last result arrive, then give the curves the frames they may take to catch up:
    // each frame rebuilds at least one model or residual curve.
    let t0 = Instant::now();
    loop {
        h.step();
        let app = h.state();
        let done = !app.is_computing()
            && app
                .result
                .as_ref()
                .is_some_and(|r| r.settings == app.settings);
        if done || t0.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..2 * n_visits + 2 {
        h.step();
    }
    let settled_curves = h.state().result_curves_drawn();
    let i = h.state().selected_visit;
    DragReport {
        frames: breakdown(&times),
        results,
        seconds,
        final_shift_kms: h.state().settings.visits[i].shift_kms,
        census,
        settled_curves,
    }
}

#[test]
fn frametime_stats_are_order_statistics() {
    let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    let s = frame_stats(&times);
    assert_eq!((s.median_ms, s.p95_ms, s.max_ms), (50.0, 95.0, 100.0));
}

#[test]
fn frametime_harness_times_teaching_frames() {
    let s = drag_teaching_slider(5);
    assert_eq!(s.total.frames, 5);
    assert!(s.total.max_ms >= s.ui.max_ms && s.ui.max_ms > 0.0);
}

#[test]
fn frametime_harness_drags_the_main_shift_slider() {
    // Few visits and frames: this checks the harness (the drag reaches the settings), not speed.
    let r = drag_main_shift_slider(2, 6, 20.0);
    assert_eq!(r.frames.total.frames, 6);
    assert!(
        r.final_shift_kms.is_some(),
        "dragging the slider sets a manual shift"
    );
    // At rest, every model and residual curve belongs to the newest result.
    assert_eq!(r.settled_curves, (4, 0), "2 visits x (model, residual)");
}

/// Model and residual curves drawn per frame: (newest result, older result).
fn drawn(h: &Harness<'_, FrizzApp>) -> (usize, usize) {
    h.state().result_curves_drawn()
}

#[test]
fn frametime_curves_of_a_new_result_are_rebuilt_over_frames_and_catch_up() {
    let n = 4;
    let data = frizzview::app::demo::apogee_demo(n).expect("demo data");
    let mut h = Harness::builder()
        .with_size([1400.0, 900.0])
        .build_ui_state(
            |ui, app: &mut FrizzApp| app.show(ui),
            FrizzApp::inline(data),
        );
    h.run_steps(3);
    assert_eq!(drawn(&h), (2 * n, 0), "a model and a residual per visit");
    // One rebuild per frame at most, so that the catching up is visible.
    h.state_mut().set_curve_rebuild_budget(Duration::ZERO);
    let before = h.state().result.clone().expect("a result");
    h.state_mut().settings.visits[1].shift_kms = Some(4.0);
    let mut frames = Vec::new();
    for _ in 0..4 * n {
        h.step();
        frames.push(drawn(&h));
    }
    let after = h.state().result.clone().expect("a result");
    assert!(!Arc::ptr_eq(&before, &after), "the shift gave a new result");
    assert_eq!(after.settings, h.state().settings);
    // The frame the result arrived in drew most visits from the previous result ...
    let first_new = frames
        .iter()
        .position(|&(_, stale)| stale > 0)
        .unwrap_or_else(|| panic!("no frame drew older curves: {frames:?}"));
    assert_eq!(frames[first_new].0 + frames[first_new].1, 2 * n);
    // ... and the following frames replaced them, one or more per frame, until none was left.
    let settled = frames[first_new..]
        .iter()
        .position(|&(_, stale)| stale == 0)
        .unwrap_or_else(|| panic!("older curves are still drawn: {frames:?}"));
    assert!(
        settled > 1,
        "the rebuild was spread over frames: {frames:?}"
    );
    for w in frames[first_new..first_new + settled].windows(2) {
        assert!(w[1].1 < w[0].1, "no progress: {frames:?}");
    }
    assert!(
        frames[first_new + settled..]
            .iter()
            .all(|&f| f == (2 * n, 0)),
        "{frames:?}"
    );

    // Another dataset: nothing of the first one is ever drawn for it.
    let other = frizzview::app::demo::apogee_demo(n).expect("demo data");
    h.state_mut().set_dataset(other, Vec::new(), None);
    for _ in 0..4 {
        h.step();
        assert_eq!(drawn(&h).1, 0);
    }
    assert_eq!(drawn(&h), (2 * n, 0));
}

/// 30 APOGEE-like visits, the shift slider dragged for 600 frames.
#[test]
#[ignore = "measurement: run with --profile frametime --ignored --nocapture"]
fn frametime_main_window_shift_drag_30_apogee_visits() {
    let r = drag_main_shift_slider(30, 600, 120.0);
    println!(
        "main window, 30 APOGEE-like visits, shift slider dragged: {}; {} results arrived in \
         {:.1} s; last frame: {}",
        r.frames, r.results, r.seconds, r.census
    );
}

/// The same window without input: what drawing 30 visits costs per frame.
#[test]
#[ignore = "measurement: run with --profile frametime --ignored --nocapture"]
fn frametime_main_window_idle_30_apogee_visits() {
    let r = main_window_frames(30, 200, None);
    println!(
        "main window, 30 APOGEE-like visits, no input: {}; last frame: {}",
        r.frames, r.census
    );
}

/// 30 visits while the plots are panned: every visit's curves are decimated again each frame.
#[test]
#[ignore = "measurement: run with --profile frametime --ignored --nocapture"]
fn frametime_main_window_pan_30_apogee_visits() {
    let r = pan_main_plots(30, 300, 120.0);
    println!(
        "main window, 30 APOGEE-like visits, plots panned: {}; last frame: {}",
        r.frames, r.census
    );
}

#[test]
#[ignore = "measurement: run with --profile frametime --ignored --nocapture"]
fn frametime_teaching_slider_drag() {
    let s = drag_teaching_slider(300);
    println!("teaching panel, velocity slider dragged: {s}");
}
