//! Plots: the combined spectrum, every exposure, residuals, and the noise correlation.
//!
//! Long spectra are decimated for drawing: within the visible x range, each column of the plot
//! keeps the minimum and maximum sample, so a plot never draws more than one band point (or, for
//! the visit models, two line points) per column whatever the number of input pixels
//! ([`super::trace`]). NaN breaks lines.
//!
//! Decimated curves are cached between frames. When a new result arrives, the model and residual
//! curves of every visit are due again; rebuilding all of them in one frame made that frame
//! about twice as long as the others. Instead a frame rebuilds what fits in [`REBUILD_BUDGET`]
//! and keeps drawing the previous result's curves (same data, same view) for the rest,
//! asking for another frame until every curve belongs to the newest result.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_plot::{FilledArea, HLine, Line, MarkerShape, Plot, PlotUi, Points, Span};

use super::trace::{Trace, TraceItem};

use super::visits_ui::{sorted_indices, velocity_in_use, visit_color};
use super::{Compare, DrawFrame, ExposureLayout, FrizzApp};
use crate::combine::{Combined, MethodResult};
use crate::model::{Dataset, Survey, mask};

/// One segment of a visit, ordered by increasing observed wavelength.
#[derive(Clone, Debug, Default)]
pub struct SegCurve {
    /// Observed wavelength (Angstrom), increasing.
    pub lam_aa: Vec<f64>,
    /// Index of each sample in the visit's arrays.
    pub idx: Vec<usize>,
}

/// Plotting geometry of a dataset, computed once per load.
#[derive(Debug, Default)]
pub struct DatasetCurves {
    /// Per visit, its segments.
    pub visits: Vec<Vec<SegCurve>>,
    /// Observed-frame wavelength ranges (Angstrom) of the segments, merged over visits.
    pub segments_aa: Vec<(f64, f64)>,
    /// A typical flux level (median of |flux|), used to space stacked exposures.
    pub typical_flux: f64,
    /// Per visit, the flux range drawn: robust percentiles widened a little. Values beyond are
    /// drawn at the limit, so one cosmic ray does not squash every other curve.
    pub y_limits: Vec<(f64, f64)>,
    /// Per visit, the 1-sigma uncertainty `ivar^-1/2` (infinite where ivar is 0), computed once.
    pub sigma: Vec<Vec<f64>>,
    /// Decimated exposure curves of recent frames, reused while nothing they depend on changes
    /// (a drag moves one visit; redoing all of them every frame cost most of a frame).
    cache: RefCell<ExposureCache>,
    /// The combined plot's last drawing.
    combined: RefCell<Option<Arc<CombinedDrawing>>>,
}

/// Default time a frame may spend rebuilding model and residual curves for a new result.
pub const REBUILD_BUDGET: Duration = Duration::from_millis(1);

/// Key of one visit's decimated exposure curves: everything the decimation depends on (the
/// result too, for model and residual curves: it is kept in the drawing and compared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ExposureKey {
    visit: usize,
    scale: u64,
    lo: u64,
    hi: u64,
    bins: usize,
    offset: u64,
    bad_bits: u64,
    band: bool,
    masked: bool,
    /// Model and residuals from the leave-one-out fits.
    loo: bool,
}

/// One visit's decimated curves (every segment), x already in the plotted frame.
#[derive(Debug, Default)]
struct VisitDrawing {
    bands: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    trace: Arc<Trace>,
    masked: Vec<[f64; 2]>,
}

/// A visit's decimated model (or residual) curve, and the result it was made from.
#[derive(Debug)]
struct ModelDrawing {
    result: Arc<Combined>,
    trace: Arc<Trace>,
    /// Pixels the robust fit down-weighted below 0.5 (plotted frame), when it ran.
    down_weighted: Vec<[f64; 2]>,
}

/// A cached drawing and the frame that last used it.
type Slot<T> = (u64, Arc<T>);

/// Recently drawn exposure curves, and this frame's bookkeeping of result-dependent ones.
#[derive(Debug, Default)]
struct ExposureCache {
    data: HashMap<ExposureKey, Slot<VisitDrawing>>,
    model: HashMap<ExposureKey, Slot<ModelDrawing>>,
    residual: HashMap<ExposureKey, Slot<ModelDrawing>>,
    /// Frames begun ([`DatasetCurves::begin_frame`]).
    frame: u64,
    /// After this instant, this frame rebuilds no more model/residual curves that it can draw
    /// from an older result instead.
    deadline: Option<Instant>,
    /// Model/residual curves built this frame.
    rebuilt: usize,
    /// Model/residual curves drawn this frame: from the newest result, from older ones.
    drawn_fresh: usize,
    drawn_stale: usize,
}

impl ExposureCache {
    /// Bound the memory: while a drag changes one visit's shift every frame, entries for its
    /// old shifts pile up. Past a limit, keep only what this frame or the last one drew.
    fn trim(&mut self, n_visits: usize) {
        let limit = 4 * n_visits + 16;
        let keep = self.frame.saturating_sub(1);
        if self.data.len() > limit {
            self.data.retain(|_, (used, _)| *used >= keep);
        }
        if self.model.len() > limit {
            self.model.retain(|_, (used, _)| *used >= keep);
        }
        if self.residual.len() > limit {
            self.residual.retain(|_, (used, _)| *used >= keep);
        }
    }
}

impl Clone for DatasetCurves {
    fn clone(&self) -> Self {
        Self {
            visits: self.visits.clone(),
            segments_aa: self.segments_aa.clone(),
            typical_flux: self.typical_flux,
            y_limits: self.y_limits.clone(),
            sigma: self.sigma.clone(),
            cache: RefCell::default(),
            combined: RefCell::default(),
        }
    }
}

impl DatasetCurves {
    /// Start a frame: from now on, rebuilding model/residual curves stops after `budget` once
    /// one was rebuilt (where an older result's curve can stand in).
    pub fn begin_frame(&self, budget: Duration) {
        let mut c = self.cache.borrow_mut();
        c.frame += 1;
        c.deadline = Some(Instant::now() + budget);
        c.rebuilt = 0;
        c.drawn_fresh = 0;
        c.drawn_stale = 0;
    }

    /// Model and residual curves drawn in the last frame that drew the spectra: (from the
    /// newest result, from an older result of the same data still being replaced).
    #[must_use]
    pub fn result_curves_drawn(&self) -> (usize, usize) {
        let c = self.cache.borrow();
        (c.drawn_fresh, c.drawn_stale)
    }

    /// The visit data curves of `key`, from the cache or built now.
    fn data_drawing(
        &self,
        key: ExposureKey,
        n_visits: usize,
        build: impl FnOnce() -> VisitDrawing,
    ) -> Arc<VisitDrawing> {
        let mut guard = self.cache.borrow_mut();
        let c = &mut *guard;
        if let Some((used, d)) = c.data.get_mut(&key) {
            *used = c.frame;
            return Arc::clone(d);
        }
        drop(guard);
        let d = Arc::new(build());
        let mut c = self.cache.borrow_mut();
        c.trim(n_visits);
        let frame = c.frame;
        c.data.insert(key, (frame, Arc::clone(&d)));
        d
    }

    /// The model (or residual) curve of `key` for `result`: from the cache, or built now, or —
    /// when this frame's rebuild budget is spent — the cached curve of an older result of the
    /// same data (the cache belongs to one dataset), which a later frame replaces.
    fn result_drawing(
        &self,
        residual: bool,
        key: ExposureKey,
        result: &Arc<Combined>,
        n_visits: usize,
        build: impl FnOnce() -> ModelDrawing,
    ) -> Arc<ModelDrawing> {
        let mut guard = self.cache.borrow_mut();
        let c = &mut *guard;
        let spent = c.rebuilt > 0 && c.deadline.is_some_and(|d| Instant::now() >= d);
        let map = if residual {
            &mut c.residual
        } else {
            &mut c.model
        };
        if let Some((used, d)) = map.get_mut(&key) {
            let fresh = Arc::ptr_eq(&d.result, result);
            if fresh || spent {
                *used = c.frame;
                let d = Arc::clone(d);
                if fresh {
                    c.drawn_fresh += 1;
                } else {
                    c.drawn_stale += 1;
                }
                return d;
            }
        }
        drop(guard);
        let d = Arc::new(build());
        let mut guard = self.cache.borrow_mut();
        let c = &mut *guard;
        c.trim(n_visits);
        c.rebuilt += 1;
        c.drawn_fresh += 1;
        let frame = c.frame;
        let map = if residual {
            &mut c.residual
        } else {
            &mut c.model
        };
        // An older result's curve is worth keeping only while it stands in for a curve being
        // drawn; each one holds that whole result in memory.
        map.retain(|_, (used, old)| *used + 1 >= frame || Arc::ptr_eq(&old.result, result));
        map.insert(key, (frame, Arc::clone(&d)));
        d
    }

    /// Build the curves of a dataset.
    #[must_use]
    pub fn new(data: &Dataset) -> Self {
        let visits: Vec<Vec<SegCurve>> = data
            .visits
            .iter()
            .map(|v| {
                v.segments()
                    .iter()
                    .map(|r| {
                        let mut idx: Vec<usize> = r.clone().collect();
                        let lam = v.wavelength_aa();
                        if idx.len() >= 2 && lam[idx[0]] > lam[idx[idx.len() - 1]] {
                            idx.reverse();
                        }
                        SegCurve {
                            lam_aa: idx.iter().map(|&i| lam[i]).collect(),
                            idx,
                        }
                    })
                    .collect()
            })
            .collect();
        let mut segments_aa: Vec<(f64, f64)> = Vec::new();
        if let Some(first) = visits.first() {
            for (k, seg) in first.iter().enumerate() {
                let (Some(&lo), Some(&hi)) = (seg.lam_aa.first(), seg.lam_aa.last()) else {
                    continue;
                };
                let (mut lo, mut hi) = (lo, hi);
                for other in &visits[1..] {
                    if let Some(s) = other.get(k) {
                        lo = lo.min(s.lam_aa.first().copied().unwrap_or(lo));
                        hi = hi.max(s.lam_aa.last().copied().unwrap_or(hi));
                    }
                }
                segments_aa.push((lo, hi));
            }
        }
        segments_aa.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut fluxes: Vec<f64> = data
            .visits
            .iter()
            .flat_map(|v| v.flux().iter().step_by(7).copied())
            .filter(|f| f.is_finite())
            .map(f64::abs)
            .collect();
        fluxes.sort_by(f64::total_cmp);
        let typical_flux = fluxes
            .get(fluxes.len() / 2)
            .copied()
            .filter(|f| *f > 0.0)
            .unwrap_or(1.0);
        let y_limits = data
            .visits
            .iter()
            .map(|v| {
                let f: Vec<f64> = v
                    .flux()
                    .iter()
                    .zip(v.bad())
                    .filter(|(f, b)| f.is_finite() && !**b)
                    .map(|(f, _)| *f)
                    .collect();
                super::yrange::robust_limits(f).unwrap_or((f64::NEG_INFINITY, f64::INFINITY))
            })
            .collect();
        let sigma = data
            .visits
            .iter()
            .map(|v| v.ivar().iter().map(|&w| w.powf(-0.5)).collect())
            .collect();
        Self {
            visits,
            segments_aa,
            typical_flux,
            y_limits,
            sigma,
            cache: RefCell::default(),
            combined: RefCell::default(),
        }
    }
}

/// Decimate `y(k)` sampled at increasing `x[k]` for drawing: only samples inside `range` (plus one
/// on each side), and at most a min/max pair per bin when there are more than `2 * bins` of them.
/// Returns runs of finite points; a non-finite value ends a run.
pub fn decimate(
    x: &[f64],
    y: impl Fn(usize) -> f64,
    range: RangeInclusive<f64>,
    bins: usize,
) -> Vec<Vec<[f64; 2]>> {
    trace(x, y, range, bins).to_runs()
}

/// [`decimate`] as a [`Trace`] (what the plots draw).
pub fn trace(
    x: &[f64],
    y: impl Fn(usize) -> f64,
    range: RangeInclusive<f64>,
    bins: usize,
) -> Trace {
    let mut t = Trace::default();
    t.push(x, y, range, bins, 1.0);
    t
}

/// Like [`decimate`] for a band between `low(k)` and `high(k)`: per bin the lowest low and the
/// highest high (at the bin's first x). Returns runs of (x, low, high); non-finite ends a run.
pub fn decimate_band(
    x: &[f64],
    low: impl Fn(usize) -> f64,
    high: impl Fn(usize) -> f64,
    range: RangeInclusive<f64>,
    bins: usize,
) -> Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let (lo, hi) = (*range.start(), *range.end());
    let start = x.partition_point(|&v| v < lo).saturating_sub(1);
    let end = (x.partition_point(|&v| v <= hi) + 1).min(x.len());
    let mut out = Vec::new();
    if start >= end {
        return out;
    }
    let bins = bins.max(1);
    let width = if end - start > 2 * bins && hi > lo {
        (hi - lo) / (2 * bins) as f64
    } else {
        0.0
    };
    let mut run: (Vec<f64>, Vec<f64>, Vec<f64>) = Default::default();
    let mut last_bin = i64::MIN;
    for k in start..end {
        let (l, h) = (low(k), high(k));
        if !(l.is_finite() && h.is_finite()) {
            if run.0.len() >= 2 {
                out.push(std::mem::take(&mut run));
            } else {
                run = Default::default();
            }
            last_bin = i64::MIN;
            continue;
        }
        let bin = if width > 0.0 {
            ((x[k] - lo) / width).floor() as i64
        } else {
            k as i64
        };
        if bin == last_bin {
            if let (Some(rl), Some(rh)) = (run.1.last_mut(), run.2.last_mut()) {
                *rl = rl.min(l);
                *rh = rh.max(h);
            }
        } else {
            run.0.push(x[k]);
            run.1.push(l);
            run.2.push(h);
            last_bin = bin;
        }
    }
    if run.0.len() >= 2 {
        out.push(run);
    }
    out
}

const FORWARD_COLOR: egui::Color32 = egui::Color32::from_rgb(40, 110, 220);
const STANDARD_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 120, 30);
const MASK_COLOR: egui::Color32 = egui::Color32::from_rgb(220, 30, 30);
/// Marker colour of pixels the robust fit down-weighted.
const DOWN_WEIGHTED_COLOR: egui::Color32 = egui::Color32::from_rgb(255, 170, 0);

fn link_group() -> egui::Id {
    egui::Id::unique("frizzview-linked-x")
}

/// The visible x range of a plot, or `full` while it still sizes itself to the data.
fn visible_x(plot_ui: &PlotUi<'_>, full: (f64, f64)) -> RangeInclusive<f64> {
    let b = plot_ui.plot_bounds();
    if plot_ui.auto_bounds().x || !b.is_valid_x() {
        full.0..=full.1
    } else {
        b.min()[0]..=b.max()[0]
    }
}

fn apply_view_requests(app: &FrizzApp, plot_ui: &mut PlotUi<'_>, jump: Option<(f64, f64)>) {
    if app.reset_view {
        plot_ui.set_auto_bounds(true);
    }
    if let Some((a, b)) = jump {
        plot_ui.set_plot_bounds_x(a..=b);
        plot_ui.set_auto_bounds(egui::Vec2b::new(false, true));
    }
}

fn data_range(app: &FrizzApp) -> (f64, f64) {
    let lo = app
        .curves
        .segments_aa
        .iter()
        .map(|s| s.0)
        .fold(f64::INFINITY, f64::min);
    let hi = app
        .curves
        .segments_aa
        .iter()
        .map(|s| s.1)
        .fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        (lo * 0.995, hi * 1.005)
    } else {
        (0.0, 1.0)
    }
}

fn add_trace(plot_ui: &mut PlotUi<'_>, name: &str, trace: Trace, color: egui::Color32, width: f32) {
    plot_ui.add(
        TraceItem::new(name, Arc::new(trace))
            .color(color)
            .width(width),
    );
}

/// The Spectra tab: segment jumps, combined spectrum, difference, exposures and residuals.
pub fn spectra_ui(app: &mut FrizzApp, ui: &mut egui::Ui) {
    app.curves.begin_frame(app.curve_budget);
    ui.horizontal(|ui| {
        ui.label("Go to:");
        if ui.button("all").clicked() {
            app.reset_view = true;
        }
        let names: Vec<String> = match (app.data.survey, app.curves.segments_aa.len()) {
            (Survey::Apogee, 3) => vec![
                "chip c (blue)".into(),
                "chip b".into(),
                "chip a (red)".into(),
            ],
            (Survey::Boss, 2) => vec!["blue camera".into(), "red camera".into()],
            (_, n) => (1..=n).map(|k| format!("segment {k}")).collect(),
        };
        for (name, &(lo, hi)) in names.iter().zip(&app.curves.segments_aa) {
            if ui.button(name).clicked() {
                app.jump_to = Some((lo, hi));
            }
        }
    });
    let jump = app.jump_to.take();
    let result = app.result.clone();
    let avail = ui.available_height();
    let both = result
        .as_ref()
        .is_some_and(|r| r.forward.is_some() && r.standard.is_some());
    let show_diff = both && app.view.compare == Compare::Difference;
    let n_small = usize::from(show_diff) + usize::from(app.view.show_residuals);
    let h_combined = (avail * 0.36).max(120.0);
    let h_small = (avail * 0.14).max(70.0);
    let h_exposures = (avail - h_combined - h_small * n_small as f32 - 12.0).max(120.0);
    let full = data_range(app);
    let width_px = ui.available_width().max(100.0) as usize;

    combined_plot(app, ui, h_combined, full, width_px, jump);
    if show_diff {
        difference_plot(app, ui, h_small, full, width_px, jump);
    }
    exposures_plot(app, ui, h_exposures, full, width_px, jump);
    if app.view.show_residuals {
        residuals_plot(app, ui, h_small, full, width_px, jump);
    }
    app.reset_view = false;
    if app.curves.result_curves_drawn().1 > 0 {
        // Some curves are still the previous result's: the next frame replaces more of them.
        ui.ctx().request_repaint();
    }
}

fn hover_text(app: &FrizzApp, lam_aa: f64) -> String {
    let Some(r) = &app.result else {
        return format!("{lam_aa:.2} A");
    };
    let grid = &r.grid.ln_wave;
    let x = lam_aa.ln();
    let i = grid.partition_point(|&g| g < x);
    let i = if i > 0 && (i == grid.len() || (x - grid[i - 1]) < (grid[i] - x)) {
        i - 1
    } else {
        i
    };
    let mut text = format!("{lam_aa:.2} A (pixel {i})");
    let defs = match app.data.survey {
        Survey::Boss => mask::BOSS_SPPIXMASK,
        _ => mask::APOGEE_PIXMASK,
    };
    for (name, m) in [("forward", &r.forward), ("standard", &r.standard)] {
        let Some(m) = m else { continue };
        let (Some(f), Some(v)) = (m.flux.get(i), m.var.get(i)) else {
            continue;
        };
        text += &format!("\n{name}: {f:.4} +- {:.4}", v.sqrt());
        if m.no_data.get(i).copied().unwrap_or(false) {
            text += " (no data)";
        }
        if let Some(&fl) = m.flags.get(i)
            && fl != 0
        {
            text += &format!(" flags {}", mask::bit_names(fl, defs).join(" "));
        }
    }
    text
}

/// One curve of the combined plot, decimated.
#[derive(Debug)]
enum CombinedCurve {
    Band {
        name: String,
        xs: Vec<f64>,
        lo: Vec<f64>,
        hi: Vec<f64>,
        color: egui::Color32,
    },
    Line {
        name: String,
        trace: Arc<Trace>,
        color: egui::Color32,
        width: f32,
    },
}

/// What the combined plot's curves depend on besides the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CombinedKey {
    lo: u64,
    hi: u64,
    bins: usize,
    band: bool,
    reference: bool,
    overlay: bool,
}

/// The combined plot's decimated curves and no-data spans, reused while the result and the
/// view stay the same (every frame of a drag between two results).
#[derive(Debug)]
pub(crate) struct CombinedDrawing {
    key: CombinedKey,
    result: Arc<Combined>,
    spans: Vec<(f64, f64)>,
    curves: Vec<CombinedCurve>,
}

fn method_curves(
    out: &mut Vec<CombinedCurve>,
    name: &str,
    m: &MethodResult,
    grid_aa: &[f64],
    color: egui::Color32,
    key: CombinedKey,
    limits: (f64, f64),
) {
    let c = |x: f64| super::yrange::clamp_to(x, limits);
    let range = f64::from_bits(key.lo)..=f64::from_bits(key.hi);
    if key.band {
        for (xs, lo, hi) in decimate_band(
            grid_aa,
            |k| c(m.flux[k] - m.var[k].sqrt()),
            |k| c(m.flux[k] + m.var[k].sqrt()),
            range.clone(),
            key.bins,
        ) {
            out.push(CombinedCurve::Band {
                name: format!("{name} 1-sigma"),
                xs,
                lo,
                hi,
                color: color.gamma_multiply(0.25),
            });
        }
    }
    let t = trace(
        grid_aa,
        |k| c(m.flux.get(k).copied().unwrap_or(f64::NAN)),
        range,
        key.bins,
    );
    out.push(CombinedCurve::Line {
        name: name.to_owned(),
        trace: Arc::new(t),
        color,
        width: 1.5,
    });
}

/// Wavelength spans (Angstrom) of the output pixels without data or poorly constrained (both
/// NaN), the widest 200.
fn no_data_spans(m: &MethodResult, grid_aa: &[f64]) -> Vec<(f64, f64)> {
    let mut spans = Vec::new();
    let mut start: Option<usize> = None;
    let out = m
        .no_data
        .iter()
        .enumerate()
        .map(|(i, &nd)| nd || m.poorly_constrained.get(i).copied().unwrap_or(false));
    for (i, nd) in out.enumerate() {
        match (nd, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, m.no_data.len() - 1));
    }
    // Thousands of one-pixel holes would cost more than they show; keep the widest.
    spans.sort_by_key(|(a, b)| std::cmp::Reverse(b - a));
    spans.truncate(200);
    spans
        .into_iter()
        .filter_map(|(a, b)| Some((*grid_aa.get(a)?, *grid_aa.get(b)?)))
        .collect()
}

/// Decimate the combined plot's curves for `r` as `key` describes.
fn combined_drawing(app: &FrizzApp, r: &Arc<Combined>, key: CombinedKey) -> CombinedDrawing {
    let grid_aa = r.grid.wavelength_aa();
    let range = f64::from_bits(key.lo)..=f64::from_bits(key.hi);
    let spans = r
        .forward
        .as_ref()
        .or(r.standard.as_ref())
        .map(|m| no_data_spans(m, &grid_aa))
        .unwrap_or_default();
    // The y range: the padded percentile range of the constrained values in view (no-data and
    // poorly constrained pixels are NaN already) of every curve drawn.
    let in_view = |x: &[f64], y: &[f64]| -> Vec<f64> {
        x.iter()
            .zip(y)
            .filter(|(x, _)| range.contains(x))
            .map(|(_, y)| *y)
            .collect()
    };
    let mut values = Vec::new();
    for m in [&r.forward, &r.standard].into_iter().flatten() {
        values.extend(in_view(&grid_aa, &m.flux));
    }
    if key.reference {
        for s in [&app.data.truth, &app.data.pipeline_coadd]
            .into_iter()
            .flatten()
        {
            let x: Vec<f64> = s.ln_wave.iter().map(|v| v.exp()).collect();
            values.extend(in_view(&x, &s.flux));
        }
    }
    let limits = super::yrange::robust_limits(values).unwrap_or((f64::MIN, f64::MAX));
    let c = |x: f64| super::yrange::clamp_to(x, limits);
    let mut curves = Vec::new();
    if key.reference {
        for s in [&app.data.truth, &app.data.pipeline_coadd]
            .into_iter()
            .flatten()
        {
            let x: Vec<f64> = s.ln_wave.iter().map(|v| v.exp()).collect();
            curves.push(CombinedCurve::Line {
                name: s.label.clone(),
                trace: Arc::new(trace(&x, |k| c(s.flux[k]), range.clone(), key.bins)),
                color: egui::Color32::from_gray(120),
                width: 1.0,
            });
        }
    }
    if let Some(m) = &r.standard
        && (key.overlay || r.forward.is_none())
    {
        let name = "standard practice";
        method_curves(&mut curves, name, m, &grid_aa, STANDARD_COLOR, key, limits);
    }
    if let Some(m) = &r.forward {
        method_curves(
            &mut curves,
            "forward model",
            m,
            &grid_aa,
            FORWARD_COLOR,
            key,
            limits,
        );
    }
    CombinedDrawing {
        key,
        result: Arc::clone(r),
        spans,
        curves,
    }
}

/// The combined plot's id (its `egui_plot::PlotMemory` holds the bounds drawn).
#[must_use]
pub fn combined_plot_id() -> egui::Id {
    egui::Id::unique("frizzview-combined-plot")
}

fn combined_plot(
    app: &mut FrizzApp,
    ui: &mut egui::Ui,
    height: f32,
    full: (f64, f64),
    bins: usize,
    jump: Option<(f64, f64)>,
) {
    let app_ref: &FrizzApp = app;
    Plot::new("combined")
        .id(combined_plot_id())
        .height(height)
        .link_axis(link_group(), [true, false])
        .link_cursor(link_group(), [true, false])
        .y_axis_label("combined flux")
        .legend(egui_plot::Legend::default().position(egui_plot::Corner::RightBottom))
        .label_formatter(|hp| {
            let p = match hp {
                egui_plot::HoverPosition::NearDataPoint { position, .. }
                | egui_plot::HoverPosition::Elsewhere { position } => *position,
            };
            Some(hover_text(app_ref, p.x))
        })
        .show(ui, |plot_ui| {
            apply_view_requests(app_ref, plot_ui, jump);
            let range = visible_x(plot_ui, full);
            let Some(r) = &app_ref.result else { return };
            let key = CombinedKey {
                lo: range.start().to_bits(),
                hi: range.end().to_bits(),
                bins,
                band: app_ref.view.show_uncertainty,
                reference: app_ref.view.show_reference,
                overlay: app_ref.view.compare == Compare::Overlay,
            };
            let cached = app_ref
                .curves
                .combined
                .borrow()
                .as_ref()
                .filter(|d| d.key == key && Arc::ptr_eq(&d.result, r))
                .cloned();
            let d = cached.unwrap_or_else(|| {
                let d = Arc::new(combined_drawing(app_ref, r, key));
                *app_ref.curves.combined.borrow_mut() = Some(Arc::clone(&d));
                d
            });
            for &(x0, x1) in &d.spans {
                plot_ui.span(
                    Span::new("no data / poorly constrained", x0..=x1)
                        .fill(egui::Color32::from_gray(128).gamma_multiply(0.18))
                        .border_width(0.0),
                );
            }
            for c in &d.curves {
                match c {
                    CombinedCurve::Band {
                        name,
                        xs,
                        lo,
                        hi,
                        color,
                    } => {
                        plot_ui.add(FilledArea::new(name, xs, lo, hi).fill_color(*color));
                    }
                    CombinedCurve::Line {
                        name,
                        trace,
                        color,
                        width,
                    } => plot_ui.add(
                        TraceItem::new(name.as_str(), Arc::clone(trace))
                            .color(*color)
                            .width(*width),
                    ),
                }
            }
        });
}

fn difference_plot(
    app: &FrizzApp,
    ui: &mut egui::Ui,
    height: f32,
    full: (f64, f64),
    bins: usize,
    jump: Option<(f64, f64)>,
) {
    let Some(r) = app.result.clone() else { return };
    let (Some(f), Some(s)) = (&r.forward, &r.standard) else {
        return;
    };
    let grid_aa = r.grid.wavelength_aa();
    Plot::new("difference")
        .height(height)
        .link_axis(link_group(), [true, false])
        .link_cursor(link_group(), [true, false])
        .y_axis_label("std - fwd")
        .show(ui, |plot_ui| {
            apply_view_requests(app, plot_ui, jump);
            let range = visible_x(plot_ui, full);
            let d = |k: usize| s.flux[k] - f.flux[k];
            let limits = super::yrange::robust_limits(
                (0..grid_aa.len())
                    .filter(|&k| range.contains(&grid_aa[k]))
                    .map(d),
            )
            .unwrap_or((f64::MIN, f64::MAX));
            let c = |x: f64| super::yrange::clamp_to(x, limits);
            if app.view.show_uncertainty {
                for (xs, lo, hi) in decimate_band(
                    &grid_aa,
                    |k| c(-f.var[k].sqrt()),
                    |k| c(f.var[k].sqrt()),
                    range.clone(),
                    bins,
                ) {
                    plot_ui.add(
                        FilledArea::new("forward 1-sigma", &xs, &lo, &hi)
                            .fill_color(FORWARD_COLOR.gamma_multiply(0.2)),
                    );
                }
            }
            let t = trace(&grid_aa, |k| c(d(k)), range, bins);
            add_trace(plot_ui, "standard - forward", t, STANDARD_COLOR, 1.0);
        });
}

/// Hover readout of the exposures plot: the nearest visit's pixel, its value, sigma and flags.
fn exposure_hover_text(app: &FrizzApp, hp: &egui_plot::HoverPosition<'_>) -> String {
    let (name, p) = match hp {
        egui_plot::HoverPosition::NearDataPoint {
            plot_name,
            position,
            ..
        } => (Some(*plot_name), *position),
        egui_plot::HoverPosition::Elsewhere { position } => (None, *position),
    };
    let mut text = format!("{:.2} A", p.x);
    let Some(name) = name else {
        return text;
    };
    let base = name.trim_end_matches(" model").trim_end_matches(" 1-sigma");
    let Some(i) = app.data.visits.iter().position(|v| v.meta.name == base) else {
        return format!("{name}\n{text}");
    };
    let visit = &app.data.visits[i];
    let obs_aa = p.x / frame_scale(app, i);
    // Nearest pixel over all segments.
    let mut best: Option<(f64, usize)> = None;
    for seg in app.curves.visits.get(i).into_iter().flatten() {
        let j = seg.lam_aa.partition_point(|&l| l < obs_aa);
        for k in [j.saturating_sub(1), j] {
            if let Some(&l) = seg.lam_aa.get(k) {
                let d = (l - obs_aa).abs();
                if best.is_none_or(|b| d < b.0) {
                    best = Some((d, seg.idx[k]));
                }
            }
        }
    }
    let Some((_, px)) = best else {
        return format!("{name}\n{text}");
    };
    let defs = match app.data.survey {
        Survey::Boss => mask::BOSS_SPPIXMASK,
        _ => mask::APOGEE_PIXMASK,
    };
    let sigma = visit.ivar()[px].powf(-0.5);
    text = format!(
        "{base} pixel {px}\n{:.2} A observed\nflux {:.4} +- {sigma:.4}",
        visit.wavelength_aa()[px],
        visit.flux()[px]
    );
    if let Some(pred) = app
        .result
        .as_ref()
        .and_then(|r| r.forward.as_ref())
        .and_then(|f| f.visits.get(i))
        .and_then(|f| f.prediction.get(px))
    {
        text += &format!("\nmodel {pred:.4}");
    }
    if let Some(s) = visit.selection().and_then(|s| s.get(px)) {
        text += &format!("\nS {s:.3}");
    }
    let flags = visit.flags()[px];
    if flags != 0 {
        text += &format!("\nflags {}", mask::bit_names(flags, defs).join(" "));
    }
    if visit.bad()[px] {
        text += "\nbad pixel";
    }
    text
}

/// The visits drawn, in table order (single: only the selected one).
fn drawn_visits(app: &FrizzApp) -> Vec<usize> {
    match app.view.layout {
        ExposureLayout::Single => vec![
            app.selected_visit
                .min(app.data.visits.len().saturating_sub(1)),
        ],
        _ => sorted_indices(app),
    }
}

/// Decimation columns for `n_curves` visits drawn in one plot `width_px` wide. Many visits
/// share the plot's height, so each is a strip a few pixels tall that shows little vertical
/// detail: a column every two to four pixels is enough (each column still keeps its lowest and
/// highest sample, so spikes stay), and divides what is tessellated (most of a frame with 30
/// visits) as much.
fn bins_for(width_px: usize, n_curves: usize) -> usize {
    let px_per_column = match n_curves {
        0..=4 => 1,
        5..=12 => 2,
        13..=24 => 3,
        _ => 4,
    };
    (width_px / px_per_column).max(50)
}

/// The x range to decimate for a view of `range` drawn with `bins` columns, and its columns:
/// three view-widths around the view, aligned to a grid of view-widths (rounded up to 1/8
/// octave), a column as wide as before. While a pan stays within one width, this range (part of
/// the cache keys) does not change, so panning draws cached curves instead of decimating every
/// visit every frame. The plot items draw only the columns in view.
fn tiled(range: &RangeInclusive<f64>, bins: usize) -> (RangeInclusive<f64>, usize) {
    let (lo, hi) = (*range.start(), *range.end());
    let w = hi - lo;
    if !(w.is_finite() && w > 0.0) {
        return (range.clone(), bins);
    }
    let wq = ((w.log2() * 8.0).ceil() / 8.0).exp2();
    // The view lies in [origin, origin + 2 wq); one more width on each side would be spare.
    let origin = (lo / wq).floor() * wq;
    let start = origin - 0.5 * wq;
    ((start..=start + 3.0 * wq), 3 * bins)
}

/// The factor that maps a visit's observed wavelength to the plotted one.
fn frame_scale(app: &FrizzApp, i: usize) -> f64 {
    if app.view.frame == DrawFrame::Observed {
        return 1.0;
    }
    let v = app
        .result
        .as_ref()
        .and_then(|r| r.visits.get(i))
        .map(|u| u.v_kms)
        .filter(|_| {
            app.result
                .as_ref()
                .is_some_and(|r| r.settings == app.settings)
        })
        .or_else(|| velocity_in_use(app, i).0)
        .unwrap_or(0.0);
    (-crate::model::shift_from_velocity(v)).exp()
}

fn exposures_plot(
    app: &FrizzApp,
    ui: &mut egui::Ui,
    height: f32,
    full: (f64, f64),
    bins: usize,
    jump: Option<(f64, f64)>,
) {
    let visits = drawn_visits(app);
    let bins = bins_for(bins, visits.len());
    let step = app.curves.typical_flux * 0.6;
    let stacked = app.view.layout == ExposureLayout::Stacked;
    Plot::new("exposures")
        .height(height)
        .link_axis(link_group(), [true, false])
        .link_cursor(link_group(), [true, false])
        .y_axis_label(if stacked { "flux + offset" } else { "flux" })
        .x_axis_label(match app.view.frame {
            DrawFrame::Rest => "rest-frame wavelength (A)",
            DrawFrame::Observed => "observed wavelength (A)",
        })
        .label_formatter(|hp| Some(exposure_hover_text(app, hp)))
        .show(ui, |plot_ui| {
            apply_view_requests(app, plot_ui, jump);
            let range = visible_x(plot_ui, full);
            // Decimated over a wider, aligned range: panning reuses the cached curves.
            let (tile, bins) = tiled(&range, bins);
            for (k, &i) in visits.iter().enumerate() {
                let Some(visit) = app.data.visits.get(i) else {
                    continue;
                };
                let Some(segs) = app.curves.visits.get(i) else {
                    continue;
                };
                let offset = if stacked { -(k as f64) * step } else { 0.0 };
                let scale = frame_scale(app, i);
                let obs_range = (tile.start() / scale)..=(tile.end() / scale);
                let included = app.settings.visit(i).include;
                // The model stands out against one visit; among many it should not hide them.
                let model_color = if app.view.layout == ExposureLayout::Single {
                    egui::Color32::from_gray(235)
                } else {
                    egui::Color32::from_gray(200).gamma_multiply(0.45)
                };
                // At the visit's first visible sample, so the label never widens the x bounds
                // (which would break the alignment of the linked plots).
                let first_aa = segs
                    .iter()
                    .filter_map(|s| s.lam_aa.first())
                    .fold(f64::INFINITY, |a, &b| a.min(b))
                    * scale;
                let label_x = first_aa.max(*range.start());
                if stacked && label_x.is_finite() {
                    let label = if included {
                        visit.meta.name.clone()
                    } else {
                        format!("{} (excluded)", visit.meta.name)
                    };
                    plot_ui.text(
                        egui_plot::Text::new(
                            "visit label",
                            egui_plot::PlotPoint::new(label_x, offset + step * 0.5),
                            egui::RichText::new(label).small().color(visit_color(i)),
                        )
                        .anchor(egui::Align2::RIGHT_CENTER),
                    );
                }
                let color = if included {
                    visit_color(i)
                } else {
                    visit_color(i).gamma_multiply(0.3)
                };
                let name = &visit.meta.name;
                let key = ExposureKey {
                    visit: i,
                    scale: scale.to_bits(),
                    lo: obs_range.start().to_bits(),
                    hi: obs_range.end().to_bits(),
                    bins,
                    offset: offset.to_bits(),
                    bad_bits: app.settings.bad_bits,
                    // Bands of a dozen stacked visits only blur them; shown one or overlaid.
                    band: app.view.show_uncertainty && !stacked,
                    masked: app.view.show_masked,
                    loo: app.view.leave_one_out,
                };
                let n_visits = app.data.visits.len();
                let drawing = app.curves.data_drawing(key, n_visits, || {
                    visit_drawing(app, i, segs, key, scale, offset)
                });
                // Only what is in view: the rest must not widen the plot's automatic y range.
                for (xs, lo, hi) in &drawing.bands {
                    let a = xs
                        .partition_point(|&x| x < *range.start())
                        .saturating_sub(1);
                    let b = (xs.partition_point(|&x| x <= *range.end()) + 1).min(xs.len());
                    if b >= a + 2 {
                        plot_ui.add(
                            FilledArea::new(
                                format!("{name} 1-sigma"),
                                &xs[a..b],
                                &lo[a..b],
                                &hi[a..b],
                            )
                            .fill_color(color.gamma_multiply(0.2)),
                        );
                    }
                }
                plot_ui.add(
                    TraceItem::new(name.as_str(), Arc::clone(&drawing.trace))
                        .color(color)
                        .width(1.0)
                        .view(&range),
                );
                let masked = in_view(&drawing.masked, &range);
                if !masked.is_empty() {
                    plot_ui.points(
                        Points::new("masked", masked)
                            .color(MASK_COLOR)
                            .shape(MarkerShape::Cross)
                            .radius(2.5),
                    );
                }
                if app.view.show_model
                    && let Some(result) = &app.result
                    && let Some(pred) = result.forward.as_ref().and_then(|f| f.visits.get(i))
                    && let predicted = model_of(pred, key.loo)
                    && predicted.len() == visit.len()
                {
                    let model = app.curves.result_drawing(false, key, result, n_visits, || {
                        let (y_lo, y_hi) = y_limits(app, i);
                        let mut trace = Trace::default();
                        for seg in segs {
                            trace.push(
                                &seg.lam_aa,
                                |j| predicted[seg.idx[j]].clamp(y_lo, y_hi) + offset,
                                obs_range.clone(),
                                bins,
                                scale,
                            );
                        }
                        let flux = visit.flux();
                        let down_weighted = pred
                            .robust_weight
                            .iter()
                            .enumerate()
                            .filter(|&(p, &w)| {
                                w < 0.5 && obs_range.contains(&visit.wavelength_aa()[p])
                            })
                            .map(|(p, _)| {
                                [
                                    visit.wavelength_aa()[p] * scale,
                                    flux[p].clamp(y_lo, y_hi) + offset,
                                ]
                            })
                            .collect();
                        ModelDrawing {
                            result: Arc::clone(result),
                            trace: Arc::new(trace),
                            down_weighted,
                        }
                    });
                    // A line, not a band: the model's band would cover its data's. Just under a
                    // pixel wide, egui draws it as a ridge of 3 vertices a point instead of 4.
                    plot_ui.add(
                        TraceItem::new(format!("{name} model"), Arc::clone(&model.trace))
                            .color(model_color)
                            .width(0.9)
                            .as_lines()
                            .view(&range),
                    );
                    let down_weighted = in_view(&model.down_weighted, &range);
                    if !down_weighted.is_empty() {
                        plot_ui.points(
                            Points::new("down-weighted (robust)", down_weighted)
                                .color(DOWN_WEIGHTED_COLOR)
                                .shape(MarkerShape::Circle)
                                .filled(false)
                                .radius(3.5),
                        );
                    }
                }
            }
        });
}

/// A visit's model prediction at its pixels: from the fit to all visits, or (`loo`) from the fit
/// to the other visits when it was computed.
fn model_of(fit: &crate::combine::VisitFit, loo: bool) -> &[f64] {
    if loo && !fit.loo_prediction.is_empty() {
        &fit.loo_prediction
    } else {
        &fit.prediction
    }
}

/// The points with x in `range`.
fn in_view(points: &[[f64; 2]], range: &RangeInclusive<f64>) -> Vec<[f64; 2]> {
    points
        .iter()
        .filter(|p| range.contains(&p[0]))
        .copied()
        .collect()
}

/// The drawn flux range of visit `i` (values beyond are clamped).
fn y_limits(app: &FrizzApp, i: usize) -> (f64, f64) {
    app.curves
        .y_limits
        .get(i)
        .copied()
        .unwrap_or((f64::NEG_INFINITY, f64::INFINITY))
}

/// Decimate one visit's flux, band and masked pixels as `key` describes.
fn visit_drawing(
    app: &FrizzApp,
    i: usize,
    segs: &[SegCurve],
    key: ExposureKey,
    scale: f64,
    offset: f64,
) -> VisitDrawing {
    let Some(visit) = app.data.visits.get(i) else {
        return VisitDrawing::default();
    };
    let obs_range = f64::from_bits(key.lo)..=f64::from_bits(key.hi);
    let bins = key.bins;
    let flux = visit.flux();
    let ivar = visit.ivar();
    let sigma = app.curves.sigma.get(i).map(Vec::as_slice).unwrap_or(&[]);
    let bad_bits = key.bad_bits;
    let (y_lo, y_hi) = y_limits(app, i);
    let masked = |p: usize| visit.bad()[p] || visit.flags()[p] & bad_bits != 0 || ivar[p] <= 0.0;
    // Masked pixels break the line (they are marked separately); the rest is clamped.
    let good_flux = |p: usize| {
        if masked(p) {
            f64::NAN
        } else {
            flux[p].clamp(y_lo, y_hi)
        }
    };
    let sig = |p: usize| sigma.get(p).copied().unwrap_or(f64::NAN);
    let mut out = VisitDrawing::default();
    let mut trace = Trace::default();
    for seg in segs {
        if key.band {
            out.bands.extend(
                decimate_band(
                    &seg.lam_aa,
                    |j| {
                        let p = seg.idx[j];
                        // NaN (masked) must stay NaN: f64::max would replace it.
                        let v = good_flux(p) - sig(p);
                        if v.is_nan() { v } else { v.max(y_lo) + offset }
                    },
                    |j| {
                        let p = seg.idx[j];
                        let v = good_flux(p) + sig(p);
                        if v.is_nan() { v } else { v.min(y_hi) + offset }
                    },
                    obs_range.clone(),
                    bins,
                )
                .into_iter()
                .map(|(xs, lo, hi)| (xs.iter().map(|x| x * scale).collect(), lo, hi)),
            );
        }
        trace.push(
            &seg.lam_aa,
            |j| good_flux(seg.idx[j]) + offset,
            obs_range.clone(),
            bins,
            scale,
        );
        if key.masked {
            let lo = seg.lam_aa.partition_point(|&x| x < *obs_range.start());
            let hi = seg.lam_aa.partition_point(|&x| x <= *obs_range.end());
            // Crosses in one screen column overlap: keep the lowest and highest of each
            // (a masked glow of a thousand pixels otherwise costs more than every line).
            let (x0, x1) = (*obs_range.start(), *obs_range.end());
            let width = ((x1 - x0) / bins.max(1) as f64).max(f64::MIN_POSITIVE);
            let mut column: Option<(i64, [f64; 2], [f64; 2])> = None;
            let pts = &mut out.masked;
            let flush = |pts: &mut Vec<[f64; 2]>, (_, a, b): (i64, [f64; 2], [f64; 2])| {
                pts.push(a);
                if a != b {
                    pts.push(b);
                }
            };
            for j in (lo..hi).filter(|&j| masked(seg.idx[j])) {
                let p = seg.idx[j];
                let y = if flux[p].is_finite() {
                    flux[p].clamp(y_lo, y_hi)
                } else {
                    y_lo
                };
                let pt = [seg.lam_aa[j] * scale, y + offset];
                let bin = ((seg.lam_aa[j] - x0) / width).floor() as i64;
                match &mut column {
                    Some((b, mn, mx)) if *b == bin => {
                        if pt[1] < mn[1] {
                            *mn = pt;
                        }
                        if pt[1] > mx[1] {
                            *mx = pt;
                        }
                    }
                    _ => {
                        if let Some(c) = column.take() {
                            flush(pts, c);
                        }
                        column = Some((bin, pt, pt));
                    }
                }
            }
            if let Some(c) = column.take() {
                flush(pts, c);
            }
        }
    }
    out.trace = Arc::new(trace);
    out
}

fn residuals_plot(
    app: &FrizzApp,
    ui: &mut egui::Ui,
    height: f32,
    full: (f64, f64),
    bins: usize,
    jump: Option<(f64, f64)>,
) {
    // Borrowed: cloning the result every frame copied every visit's prediction.
    let forward = app.result.as_ref().and_then(|r| r.forward.as_ref());
    let visits = drawn_visits(app);
    let bins = bins_for(bins, visits.len());
    Plot::new("residuals")
        .height(height)
        .link_axis(link_group(), [true, false])
        .link_cursor(link_group(), [true, false])
        .y_axis_label("resid. (sigma)")
        .show(ui, |plot_ui| {
            apply_view_requests(app, plot_ui, jump);
            let range = visible_x(plot_ui, full);
            // Decimated over a wider, aligned range: panning reuses the cached curves.
            let (tile, bins) = tiled(&range, bins);
            plot_ui.hline(HLine::new("+3 sigma", 3.0).color(egui::Color32::from_gray(150)));
            plot_ui.hline(HLine::new("-3 sigma", -3.0).color(egui::Color32::from_gray(150)));
            let Some(f) = &forward else { return };
            for &i in &visits {
                let (Some(visit), Some(segs), Some(fit)) = (
                    app.data.visits.get(i),
                    app.curves.visits.get(i),
                    f.visits.get(i),
                ) else {
                    continue;
                };
                let predicted = model_of(fit, app.view.leave_one_out);
                if predicted.len() != visit.len() {
                    continue;
                }
                let scale = frame_scale(app, i);
                let obs_range = (tile.start() / scale)..=(tile.end() / scale);
                let Some(result) = &app.result else { continue };
                let key = ExposureKey {
                    visit: i,
                    scale: scale.to_bits(),
                    lo: obs_range.start().to_bits(),
                    hi: obs_range.end().to_bits(),
                    bins,
                    offset: 0,
                    bad_bits: app.settings.bad_bits,
                    band: false,
                    masked: false,
                    loo: app.view.leave_one_out,
                };
                let n_visits = app.data.visits.len();
                let drawing = app.curves.result_drawing(true, key, result, n_visits, || {
                    let flux = visit.flux();
                    let ivar = visit.ivar();
                    let bad_bits = key.bad_bits;
                    let mut trace = Trace::default();
                    for seg in segs {
                        trace.push(
                            &seg.lam_aa,
                            |j| {
                                let p = seg.idx[j];
                                if ivar[p] > 0.0
                                    && !visit.bad()[p]
                                    && visit.flags()[p] & bad_bits == 0
                                {
                                    // Clamped so one outlier does not flatten the rest.
                                    ((flux[p] - predicted[p]) * ivar[p].sqrt()).clamp(-12.0, 12.0)
                                } else {
                                    f64::NAN
                                }
                            },
                            obs_range.clone(),
                            bins,
                            scale,
                        );
                    }
                    ModelDrawing {
                        result: Arc::clone(result),
                        trace: Arc::new(trace),
                        down_weighted: Vec::new(),
                    }
                });
                plot_ui.add(
                    TraceItem::new(
                        format!("{} residual", visit.meta.name),
                        Arc::clone(&drawing.trace),
                    )
                    .color(visit_color(i))
                    .width(1.0)
                    .view(&range),
                );
            }
        });
}

pub use crate::experiment::correlation_by_lag;

/// The Noise tab: correlation of neighbouring output pixels against lag, for both methods.
pub fn noise_ui(app: &FrizzApp, ui: &mut egui::Ui) {
    ui.label(
        "Correlation between output pixels l and l+k (median over pixels of C[l,l+k] / C[l,l]). \
         Interpolation correlates neighbouring pixels; the forward model keeps them nearly \
         independent when the visits sample the spectrum well.",
    );
    let Some(r) = app.result.clone() else {
        ui.label("no result yet");
        return;
    };
    let curves: Vec<(&str, Vec<f64>, egui::Color32)> = [
        ("forward model", &r.forward, FORWARD_COLOR),
        ("standard practice", &r.standard, STANDARD_COLOR),
    ]
    .into_iter()
    .filter_map(|(n, m, c)| m.as_ref().map(|m| (n, correlation_by_lag(&m.band), c)))
    .collect();
    egui::Grid::new("noise-table").striped(true).show(ui, |ui| {
        ui.label("lag");
        for (n, _, _) in &curves {
            ui.label(*n);
        }
        ui.end_row();
        let n_lags = curves.iter().map(|c| c.1.len()).max().unwrap_or(0);
        for k in 0..n_lags.min(8) {
            ui.label(k.to_string());
            for (_, c, _) in &curves {
                ui.label(c.get(k).map_or("-".into(), |v| format!("{v:+.3}")));
            }
            ui.end_row();
        }
    });
    Plot::new("noise")
        .x_axis_label("lag k (output pixels)")
        .y_axis_label("correlation")
        .legend(egui_plot::Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot_ui| {
            for (n, c, color) in curves {
                let pts: Vec<[f64; 2]> = c
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| [k as f64, *v])
                    .collect();
                plot_ui.line(Line::new(n, pts.clone()).color(color).width(2.0));
                plot_ui.points(Points::new(n, pts).color(color).radius(4.0).filled(true));
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_extremes_and_bounds_the_point_count() {
        let n = 100_000;
        let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
        // A spike at 50_000 must survive thinning to 100 bins.
        let y = |k: usize| {
            if k == 50_000 {
                10.0
            } else {
                (k as f64 * 0.01).sin()
            }
        };
        let runs = decimate(&x, y, 0.0..=(n as f64 - 1.0), 100);
        let pts: Vec<[f64; 2]> = runs.concat();
        assert!(pts.len() <= 2 * 101 + 2, "{} points", pts.len());
        assert!(pts.iter().any(|p| p[1] == 10.0), "the spike was lost");
        let min = pts.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min);
        assert!(min < -0.999, "the minimum was lost: {min}");
        assert!(
            pts.windows(2).all(|w| w[1][0] >= w[0][0]),
            "x must stay ordered"
        );
    }

    #[test]
    fn decimation_splits_runs_at_nan_and_clips_to_the_range() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let y = |k: usize| if k == 5 { f64::NAN } else { k as f64 };
        let runs = decimate(&x, y, 2.5..=7.5, 100);
        // One sample beyond each edge is kept so lines reach the border.
        assert_eq!(
            runs,
            vec![
                vec![[2.0, 2.0], [3.0, 3.0], [4.0, 4.0]],
                vec![[6.0, 6.0], [7.0, 7.0], [8.0, 8.0]]
            ]
        );
    }

    #[test]
    fn band_decimation_keeps_the_envelope() {
        let n = 10_000;
        let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let low = |k: usize| if k == 777 { -5.0 } else { -1.0 };
        let high = |k: usize| if k == 4242 { 9.0 } else { 1.0 };
        let runs = decimate_band(&x, low, high, 0.0..=(n as f64), 50);
        assert_eq!(runs.len(), 1);
        let (xs, lo, hi) = &runs[0];
        assert!(xs.len() <= 102, "{} points", xs.len());
        assert_eq!(lo.iter().copied().fold(f64::INFINITY, f64::min), -5.0);
        assert_eq!(hi.iter().copied().fold(f64::NEG_INFINITY, f64::max), 9.0);
    }

    #[test]
    fn exposure_hover_names_the_flags_of_the_nearest_pixel() {
        let data = crate::app::demo::apogee_demo(2).expect("demo");
        let app = FrizzApp::inline(data);
        let visit = &app.data.visits[0];
        let px = visit
            .flags()
            .iter()
            .position(|&f| f & 2 != 0)
            .expect("the demo has a cosmic ray (CRPIX) in visit 1");
        let x = visit.wavelength_aa()[px] * frame_scale(&app, 0);
        let hp = egui_plot::HoverPosition::NearDataPoint {
            plot_name: &visit.meta.name,
            position: egui_plot::PlotPoint::new(x, 1.0),
            index: 0,
        };
        let text = exposure_hover_text(&app, &hp);
        assert!(text.contains(&format!("pixel {px}")), "{text}");
        assert!(text.contains("CRPIX"), "{text}");
    }
}
