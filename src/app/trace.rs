//! Decimated curves, and the plot item that draws them cheaply.
//!
//! A spectrum of thousands of samples drawn into a plot a thousand pixels wide keeps, per column
//! of the plot, only its lowest and highest sample ([`Trace::push`]). Where a curve was thinned
//! like that, it is drawn as one filled band through the columns' (min, max) extents: what a
//! line zigzagging through every sample looks like (a spike stays a spike), for one band point
//! per column. egui_plot's own `Line` turns such a zigzag into a band too, but with a point per
//! screen pixel or two and after copying every point each frame; with 30 stacked visits that was
//! most of a frame. Hovering still snaps to the real samples kept. Where a curve was not thinned
//! (zoomed in), it is an ordinary line through its samples.

use std::ops::{Range, RangeInclusive};
use std::sync::Arc;

use eframe::egui;
use egui::epaint::{BandPoint, BandShape};
use egui_plot::{
    Line, PlotBounds, PlotGeometry, PlotItem, PlotItemBase, PlotPoint, PlotPoints, PlotTransform,
};

/// A stretch of a [`Trace`] without breaks.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    /// Its samples in [`Trace::points`].
    points: Range<usize>,
    /// Its columns in [`Trace::columns`], if it was thinned.
    columns: Option<Range<usize>>,
}

/// A curve decimated for drawing: runs of samples (a non-finite value ends a run), x increasing.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The samples kept, every run concatenated (hover, bounds, unthinned lines).
    points: Vec<PlotPoint>,
    /// Thinned runs, per column: x of the column's centre, lowest and highest value.
    columns: Vec<[f64; 3]>,
    /// Per column, whether it kept two samples (its lowest and highest) or one.
    pairs: Vec<bool>,
    runs: Vec<Run>,
    /// Start of the run being built: (points, columns).
    mark: (usize, usize),
    bounds: PlotBounds,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            points: Vec::new(),
            columns: Vec::new(),
            pairs: Vec::new(),
            runs: Vec::new(),
            mark: (0, 0),
            bounds: PlotBounds::NOTHING,
        }
    }
}

impl Trace {
    /// Append `y(k)` sampled at increasing `x[k]`: only samples inside `range` (plus one on each
    /// side, so lines reach the border), and, when there are more than `2 * bins` of them, only
    /// the lowest and highest sample of each of `bins` equal columns of `range`. Plotted x is
    /// `x * scale` (observed to plotted frame); `range` is in terms of `x`.
    pub fn push(
        &mut self,
        x: &[f64],
        y: impl Fn(usize) -> f64,
        range: RangeInclusive<f64>,
        bins: usize,
        scale: f64,
    ) {
        self.end_run(false);
        let (lo, hi) = (*range.start(), *range.end());
        let start = x.partition_point(|&v| v < lo).saturating_sub(1);
        let end = (x.partition_point(|&v| v <= hi) + 1).min(x.len());
        if start >= end {
            return;
        }
        let bins = bins.max(1);
        let thin = end - start > 2 * bins && hi > lo;
        if !thin {
            for k in start..end {
                let v = y(k);
                if v.is_finite() {
                    self.add_point(PlotPoint::new(x[k] * scale, v));
                } else {
                    self.end_run(false);
                }
            }
            self.end_run(false);
            return;
        }
        let width = (hi - lo) / bins as f64;
        let centre = |bin: i64| (lo + (bin as f64 + 0.5) * width) * scale;
        // (column, lowest sample, highest sample) of the column being filled.
        let mut current: Option<(i64, PlotPoint, PlotPoint)> = None;
        for k in start..end {
            let v = y(k);
            if !v.is_finite() {
                if let Some(c) = current.take() {
                    self.add_column(centre(c.0), c.1, c.2);
                }
                self.end_run(true);
                continue;
            }
            let bin = ((x[k] - lo) / width).floor() as i64;
            let p = PlotPoint::new(x[k] * scale, v);
            match &mut current {
                Some((b, mn, mx)) if *b == bin => {
                    if v < mn.y {
                        *mn = p;
                    }
                    if v > mx.y {
                        *mx = p;
                    }
                }
                _ => {
                    if let Some(c) = current.take() {
                        self.add_column(centre(c.0), c.1, c.2);
                    }
                    current = Some((bin, p, p));
                }
            }
        }
        if let Some(c) = current.take() {
            self.add_column(centre(c.0), c.1, c.2);
        }
        self.end_run(true);
    }

    fn add_point(&mut self, p: PlotPoint) {
        self.bounds.extend_with(&p);
        self.points.push(p);
    }

    /// One column: its two extreme samples (in x order, so the kept samples stay ordered).
    fn add_column(&mut self, x: f64, mn: PlotPoint, mx: PlotPoint) {
        let (a, b) = if mn.x <= mx.x { (mn, mx) } else { (mx, mn) };
        self.add_point(a);
        if a != b {
            self.add_point(b);
        }
        self.columns.push([x, mn.y, mx.y]);
        self.pairs.push(a != b);
    }

    /// Close the run being built, if it has samples.
    fn end_run(&mut self, thinned: bool) {
        let (p0, c0) = self.mark;
        let (p1, c1) = (self.points.len(), self.columns.len());
        if p1 > p0 {
            self.runs.push(Run {
                points: p0..p1,
                columns: thinned.then_some(c0..c1),
            });
        }
        self.mark = (p1, c1);
    }

    /// Whether no sample was kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Number of samples kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Band points drawn for the thinned runs (one per column): what drawing costs.
    #[must_use]
    pub fn columns(&self) -> usize {
        self.columns.len()
    }

    /// The runs as plain point lists.
    #[must_use]
    pub fn to_runs(&self) -> Vec<Vec<[f64; 2]>> {
        self.runs
            .iter()
            .map(|r| {
                self.points[r.points.clone()]
                    .iter()
                    .map(|p| [p.x, p.y])
                    .collect()
            })
            .collect()
    }
}

/// A [`Trace`] in a plot: thinned runs as one band, the others as lines.
pub struct TraceItem {
    base: PlotItemBase,
    trace: Arc<Trace>,
    color: egui::Color32,
    width: f32,
    lines: bool,
    /// The x range in view, if the trace extends beyond it.
    view: Option<(f64, f64)>,
}

impl TraceItem {
    /// Draw `trace` under `name` (1 px wide, in the plot's automatic colour until set).
    pub fn new(name: impl Into<String>, trace: Arc<Trace>) -> Self {
        Self {
            base: PlotItemBase::new(name.into()),
            trace,
            color: egui::Color32::TRANSPARENT,
            width: 1.0,
            lines: false,
            view: None,
        }
    }

    /// Report as bounds (what the plot fits its automatic range to) only the samples with x in
    /// `x`: a trace decimated over a wider range than the view must not widen the y range
    /// fitted to the view.
    #[must_use]
    pub fn view(mut self, x: &RangeInclusive<f64>) -> Self {
        self.view = Some((*x.start(), *x.end()));
        self
    }

    /// Draw thinned runs too as a line zigzagging through the samples kept: a curve drawn over
    /// another (a model over its data) would vanish into the other's band. Costs about 1.5
    /// times the band.
    #[must_use]
    pub fn as_lines(mut self) -> Self {
        self.lines = true;
        self
    }

    /// Line colour.
    #[must_use]
    pub fn color(mut self, color: egui::Color32) -> Self {
        self.color = color;
        self
    }

    /// Line width in points.
    #[must_use]
    pub fn width(mut self, width: f32) -> Self {
        self.width = width;
        self
    }
}

fn overlaps(a: &PlotBounds, b: &PlotBounds) -> bool {
    a.min()[0] <= b.max()[0]
        && b.min()[0] <= a.max()[0]
        && a.min()[1] <= b.max()[1]
        && b.min()[1] <= a.max()[1]
}

impl PlotItem for TraceItem {
    fn shapes(&self, ui: &egui::Ui, transform: &PlotTransform, shapes: &mut Vec<egui::Shape>) {
        let t = &*self.trace;
        let view = transform.bounds();
        // A visit stacked out of view costs nothing.
        if t.points.is_empty() || !overlaps(&t.bounds, view) {
            return;
        }
        let width = if self.highlighted() {
            2.0 * self.width
        } else {
            self.width
        };
        let half = 0.5 * width;
        let (x0, x1) = (view.min()[0], view.max()[0]);
        let mut band: Vec<BandPoint> = Vec::new();
        for run in &t.runs {
            let Some(col_range) = &run.columns else {
                Line::new(
                    String::new(),
                    PlotPoints::Borrowed(&t.points[run.points.clone()]),
                )
                .color(self.color)
                .width(width)
                .allow_band(!self.lines)
                .shapes(ui, transform, shapes);
                continue;
            };
            let cols = &t.columns[col_range.clone()];
            // The visible columns and one more on each side.
            let a = cols.partition_point(|c| c[0] < x0).saturating_sub(1);
            let b = (cols.partition_point(|c| c[0] <= x1) + 1).min(cols.len());
            if a >= b {
                continue;
            }
            if self.lines {
                let pairs = &t.pairs[col_range.clone()];
                let pts = &t.points[run.points.clone()];
                // The samples of column a start after those of the columns before it.
                let mut k = a + pairs[..a].iter().filter(|&&p| p).count();
                let mut path: Vec<egui::Pos2> = Vec::with_capacity(2 * (b - a));
                for &pair in &pairs[a..b] {
                    let Some(p) = pts.get(k) else { break };
                    let p = transform.position_from_point(p);
                    path.push(p);
                    if pair && let Some(q) = pts.get(k + 1) {
                        let q = transform.position_from_point(q);
                        // A column whose extremes are within a pixel in height is one point
                        // of a thin line: half the vertices where the curve is smooth.
                        if (q.y - p.y).abs() >= 1.0 {
                            path.push(q);
                        }
                    }
                    k += 1 + usize::from(pair);
                }
                if path.len() >= 2 {
                    shapes.push(egui::Shape::line(
                        path,
                        egui::Stroke::new(width, self.color),
                    ));
                }
                continue;
            }
            let first = band.len();
            band.extend(cols[a..b].iter().map(|c| {
                let x = transform.position_from_point_x(c[0]);
                let (ya, yb) = (
                    transform.position_from_point_y(c[1]),
                    transform.position_from_point_y(c[2]),
                );
                // Widened by the line width, as a line through the extremes would be.
                BandPoint::new(x, (ya.min(yb) - half)..=(ya.max(yb) + half))
            }));
            if band.len() == first + 1 {
                // A lone column (between masked pixels) is still a short vertical stroke.
                let mut p = band[first];
                p.x += width.max(1.0);
                band.push(p);
            }
            // An invalid point separates runs.
            band.push(BandPoint::new(f32::NAN, 0.0..=0.0));
        }
        if band.len() > 2 {
            shapes.push(BandShape::filled(band, self.color).into());
        }
    }

    fn initialize(&mut self, _x_range: RangeInclusive<f64>) {}

    fn color(&self) -> egui::Color32 {
        self.color
    }

    fn geometry(&self) -> PlotGeometry<'_> {
        PlotGeometry::Points(&self.trace.points)
    }

    fn bounds(&self) -> PlotBounds {
        let t = &*self.trace;
        let Some((x0, x1)) = self.view else {
            return t.bounds;
        };
        if x0 <= t.bounds.min()[0] && t.bounds.max()[0] <= x1 {
            return t.bounds;
        }
        let mut b = PlotBounds::NOTHING;
        for run in &t.runs {
            let pts = &t.points[run.points.clone()];
            let a = pts.partition_point(|p| p.x < x0);
            let e = pts.partition_point(|p| p.x <= x1).max(a);
            pts[a..e].iter().for_each(|p| b.extend_with(p));
        }
        b
    }

    fn base(&self) -> &PlotItemBase {
        &self.base
    }

    fn base_mut(&mut self) -> &mut PlotItemBase {
        &mut self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thinned_trace_has_one_column_per_bin_and_keeps_the_extremes() {
        let n = 10_000;
        let x: Vec<f64> = (0..n).map(f64::from).collect();
        let y = |k: usize| if k == 5_000 { 7.0 } else { (k % 3) as f64 };
        let mut t = Trace::default();
        t.push(&x, y, 0.0..=f64::from(n - 1), 100, 2.0);
        assert!(t.columns() <= 101, "{} columns", t.columns());
        assert_eq!(t.runs.len(), 1);
        // The spike's column reaches it, at the plotted (scaled) x of its bin.
        let spike = t
            .columns
            .iter()
            .find(|c| c[2] == 7.0)
            .expect("the spike's column");
        assert!((spike[0] - 2.0 * 5_000.0).abs() <= 2.0 * 100.0, "{spike:?}");
        // The kept samples are real samples, scaled, in x order.
        assert!(t.points.iter().any(|p| p.x == 10_000.0 && p.y == 7.0));
        assert!(t.points.windows(2).all(|w| w[0].x <= w[1].x));
    }

    #[test]
    fn runs_break_at_non_finite_values_and_keep_their_kind() {
        let x: Vec<f64> = (0..1000).map(f64::from).collect();
        let y = |k: usize| if k == 500 { f64::NAN } else { 1.0 };
        let mut t = Trace::default();
        t.push(&x, y, 0.0..=999.0, 10, 1.0);
        t.push(&x[..5], |_| 2.0, 0.0..=999.0, 10, 1.0);
        assert_eq!(t.runs.len(), 3);
        assert!(t.runs[0].columns.is_some() && t.runs[1].columns.is_some());
        assert_eq!(t.runs[2].columns, None, "five samples are not thinned");
        assert_eq!(t.to_runs()[2].len(), 5);
        assert_eq!(t.bounds.min(), [0.0, 1.0]);
        assert_eq!(t.bounds.max(), [999.0, 2.0]);
    }

    /// The shapes `item` makes in a 1000 x 100 px plot of x 0..1000, y 0..10.
    fn shapes_of(item: &TraceItem) -> Vec<egui::Shape> {
        let frame = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1000.0, 100.0));
        let bounds = PlotBounds::from_min_max([0.0, 0.0], [1000.0, 10.0]);
        let transform = PlotTransform::new(frame, bounds, [false, false]);
        let mut shapes = Vec::new();
        let mut out = egui::Context::default().run_ui(egui::RawInput::default(), |ui| {
            item.shapes(ui, &transform, &mut shapes);
        });
        // The font atlas upload is no one's business here.
        out.textures_delta.clear();
        shapes
    }

    #[test]
    fn thinned_runs_draw_one_band_point_or_one_or_two_line_points_per_column() {
        // 10 samples per pixel: flat at 5 with a 1-sample spike to 9 at x = 500.
        let x: Vec<f64> = (0..10_000).map(|k| f64::from(k) * 0.1).collect();
        let y = |k: usize| {
            if k == 5_000 {
                9.0
            } else {
                5.0 + 0.01 * (k % 2) as f64
            }
        };
        let mut t = Trace::default();
        t.push(&x, y, 0.0..=1000.0, 250, 1.0);
        let t = Arc::new(t);
        let band = shapes_of(&TraceItem::new("data", Arc::clone(&t)).width(1.0));
        let [egui::Shape::Band(b)] = band.as_slice() else {
            panic!("one band expected: {band:?}")
        };
        let valid: Vec<_> = b.points.iter().filter(|p| p.x.is_finite()).collect();
        assert_eq!(valid.len(), 250, "one point per column");
        // Screen y grows downwards: y = 9 is 10 px from the top; the band reaches it.
        let top = valid.iter().map(|p| p.y.min).fold(f32::INFINITY, f32::min);
        assert!((top - (10.0 - 0.5)).abs() < 0.01, "spike top at {top}");
        let lines = shapes_of(&TraceItem::new("model", t).width(0.9).as_lines());
        let [egui::Shape::Path(p)] = lines.as_slice() else {
            panic!("one path expected: {lines:?}")
        };
        // Flat columns (extremes 0.1 px apart) are one point, the spike's column two.
        assert_eq!(p.points.len(), 251);
        let top = p.points.iter().map(|q| q.y).fold(f32::INFINITY, f32::min);
        assert!((top - 10.0).abs() < 0.01, "spike top at {top}");
        assert!(p.points.windows(2).all(|w| w[0].x <= w[1].x));
    }

    #[test]
    fn bounds_in_view_cover_only_the_samples_in_view() {
        let x: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut t = Trace::default();
        t.push(&x, |k| k as f64, 0.0..=999.0, 2000, 1.0);
        let t = Arc::new(t);
        let all = TraceItem::new("a", Arc::clone(&t)).bounds();
        assert_eq!((all.min()[1], all.max()[1]), (0.0, 999.0));
        let view = TraceItem::new("a", t).view(&(100.0..=200.0)).bounds();
        assert_eq!((view.min()[1], view.max()[1]), (100.0, 200.0));
    }
}
