//! The plots' curves: each visit's segments in plotting order, the dataset's plotting geometry,
//! the decimation of curves and bands for drawing, and the cache of decimated exposure, model
//! and residual curves with its per-frame rebuild budget.

use std::cell::RefCell;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

use crate::app::trace::Trace;
use crate::combine::Combined;
use crate::combine::memo::GenLru;
use crate::model::Dataset;

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
    pub(super) combined: RefCell<Option<Arc<CombinedDrawing>>>,
}

/// One curve of the combined plot, decimated.
#[derive(Debug)]
pub(super) enum CombinedCurve {
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
pub(super) struct CombinedKey {
    pub(super) lo: u64,
    pub(super) hi: u64,
    pub(super) bins: usize,
    pub(super) band: bool,
    pub(super) reference: bool,
    pub(super) overlay: bool,
}

/// The combined plot's decimated curves and no-data spans, reused while the result and the
/// view stay the same (every frame of a drag between two results).
#[derive(Debug)]
pub(super) struct CombinedDrawing {
    pub(super) key: CombinedKey,
    pub(super) result: Arc<Combined>,
    pub(super) spans: Vec<(f64, f64)>,
    pub(super) curves: Vec<CombinedCurve>,
}

/// Default time a frame may spend rebuilding model and residual curves for a new result.
pub const REBUILD_BUDGET: Duration = Duration::from_millis(1);

/// Key of one visit's decimated exposure curves: everything the decimation depends on (the
/// result too, for model and residual curves: it is kept in the drawing and compared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ExposureKey {
    pub(super) visit: usize,
    pub(super) scale: u64,
    pub(super) lo: u64,
    pub(super) hi: u64,
    pub(super) bins: usize,
    pub(super) offset: u64,
    pub(super) bad_bits: u64,
    pub(super) band: bool,
    pub(super) masked: bool,
    /// Model and residuals from the leave-one-out fits.
    pub(super) loo: bool,
}

/// One visit's decimated curves (every segment), x already in the plotted frame.
#[derive(Debug, Default)]
pub(super) struct VisitDrawing {
    pub(super) bands: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    pub(super) trace: Arc<Trace>,
    pub(super) masked: Vec<[f64; 2]>,
}

/// A visit's decimated model (or residual) curve, and the result it was made from.
#[derive(Debug)]
pub(super) struct ModelDrawing {
    pub(super) result: Arc<Combined>,
    pub(super) trace: Arc<Trace>,
    /// Pixels the robust fit down-weighted below 0.5 (plotted frame), when it ran.
    pub(super) down_weighted: Vec<[f64; 2]>,
}

/// Recently drawn exposure curves, and this frame's bookkeeping of result-dependent ones.
///
/// The maps are generation-stamped memos whose generation is the frame: each entry remembers
/// the last frame that drew it. Their byte budgets are unbounded and sizes are not tracked: the
/// bound is the entry count ([`ExposureCache::trim`]).
#[derive(Debug)]
struct ExposureCache {
    data: GenLru<ExposureKey, VisitDrawing>,
    model: GenLru<ExposureKey, ModelDrawing>,
    residual: GenLru<ExposureKey, ModelDrawing>,
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

impl Default for ExposureCache {
    fn default() -> Self {
        Self {
            data: GenLru::new(usize::MAX),
            model: GenLru::new(usize::MAX),
            residual: GenLru::new(usize::MAX),
            frame: 0,
            deadline: None,
            rebuilt: 0,
            drawn_fresh: 0,
            drawn_stale: 0,
        }
    }
}

impl ExposureCache {
    /// Bound the memory: while a drag changes one visit's shift every frame, entries for its
    /// old shifts pile up. Past a limit, keep only what this frame or the last one drew (last
    /// used 2 or more frames ago is unused).
    fn trim(&mut self, n_visits: usize) {
        let limit = 4 * n_visits + 16;
        if self.data.len() > limit {
            self.data.evict_unused(self.frame, 2, |_| false);
        }
        if self.model.len() > limit {
            self.model.evict_unused(self.frame, 2, |_| false);
        }
        if self.residual.len() > limit {
            self.residual.evict_unused(self.frame, 2, |_| false);
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
    pub(super) fn data_drawing(
        &self,
        key: ExposureKey,
        n_visits: usize,
        build: impl FnOnce() -> VisitDrawing,
    ) -> Arc<VisitDrawing> {
        let guard = self.cache.borrow();
        if let Some(d) = guard.data.get(&key, guard.frame, |_| true) {
            return d;
        }
        drop(guard);
        let d = Arc::new(build());
        let mut c = self.cache.borrow_mut();
        c.trim(n_visits);
        c.data.insert(key, Arc::clone(&d), 0, c.frame);
        d
    }

    /// The model (or residual) curve of `key` for `result`: from the cache, or built now, or —
    /// when this frame's rebuild budget is spent — the cached curve of an older result of the
    /// same data (the cache belongs to one dataset), which a later frame replaces.
    pub(super) fn result_drawing(
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
        let map = if residual { &c.residual } else { &c.model };
        let fresh = |d: &ModelDrawing| Arc::ptr_eq(&d.result, result);
        if let Some(d) = map.get(&key, c.frame, |d| fresh(d) || spent) {
            if fresh(&d) {
                c.drawn_fresh += 1;
            } else {
                c.drawn_stale += 1;
            }
            return d;
        }
        drop(guard);
        let d = Arc::new(build());
        let mut guard = self.cache.borrow_mut();
        let c = &mut *guard;
        c.trim(n_visits);
        c.rebuilt += 1;
        c.drawn_fresh += 1;
        let frame = c.frame;
        let map = if residual { &c.residual } else { &c.model };
        // An older result's curve is worth keeping only while it stands in for a curve being
        // drawn; each one holds that whole result in memory.
        map.evict_unused_by(frame, 2, |_, old| Arc::ptr_eq(&old.result, result));
        map.insert(key, Arc::clone(&d), 0, frame);
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
                crate::app::yrange::robust_limits(f).unwrap_or((f64::NEG_INFINITY, f64::INFINITY))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache's policy: reuse while the key matches, keep only the last two frames' entries
    /// past the count limit, and stand in an older result's curve once the frame's rebuild
    /// budget is spent.
    #[test]
    fn the_curve_cache_reuses_trims_and_stands_in_older_results() {
        let data = crate::app::demo::apogee_demo(2).expect("demo");
        let settings = crate::settings::survey_defaults(&data);
        let cancel = crate::combine::Cancel::new();
        let r1 = Arc::new(crate::combine::combine(&data, &settings, &cancel).expect("a result"));
        let r2 = Arc::new((*r1).clone());
        let curves = DatasetCurves::default();
        let key = |visit| ExposureKey {
            visit,
            scale: 0,
            lo: 0,
            hi: 0,
            bins: 1,
            offset: 0,
            bad_bits: 0,
            band: false,
            masked: false,
            loo: false,
        };
        let builds = std::cell::Cell::new(0);
        let data = |v: usize| {
            curves.data_drawing(key(v), 0, || {
                builds.set(builds.get() + 1);
                VisitDrawing::default()
            })
        };
        curves.begin_frame(Duration::ZERO);
        data(0);
        data(0);
        assert_eq!(builds.get(), 1, "the second call reuses the first drawing");
        // No visits: the limit is 16 entries. Keys 1..=17 in frames 2..=18: inserting key 17
        // finds 17 entries and keeps only those drawn in frames 17 and 18 (key 16).
        for v in 1..=17 {
            curves.begin_frame(Duration::ZERO);
            data(v);
        }
        assert_eq!(builds.get(), 18);
        assert_eq!(curves.cache.borrow().data.len(), 2);
        data(16);
        assert_eq!(builds.get(), 18, "key 16 was drawn in the last frame: kept");
        data(15);
        assert_eq!(builds.get(), 19, "key 15 was evicted");

        let model = |v: usize, r: &Arc<Combined>| {
            curves.result_drawing(false, key(v), r, 0, || ModelDrawing {
                result: Arc::clone(r),
                trace: Arc::default(),
                down_weighted: Vec::new(),
            })
        };
        curves.begin_frame(Duration::ZERO);
        model(0, &r1);
        model(1, &r1);
        assert_eq!(curves.result_curves_drawn(), (2, 0));
        // A new result with no time to spare: one curve is rebuilt, the other is the older
        // result's, until the next frame rebuilds it.
        curves.begin_frame(Duration::ZERO);
        assert!(Arc::ptr_eq(&model(0, &r2).result, &r2));
        assert!(Arc::ptr_eq(&model(1, &r2).result, &r1));
        assert_eq!(curves.result_curves_drawn(), (1, 1));
        curves.begin_frame(Duration::ZERO);
        assert!(Arc::ptr_eq(&model(0, &r2).result, &r2));
        assert!(Arc::ptr_eq(&model(1, &r2).result, &r2));
        assert_eq!(curves.result_curves_drawn(), (2, 0));
        // Curves of the older result not drawn in the last frame are gone.
        assert_eq!(curves.cache.borrow().model.len(), 2);
    }

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
}
