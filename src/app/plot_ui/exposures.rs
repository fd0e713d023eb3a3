//! The exposures plot (every visit's flux, band, masked pixels and model, stacked, overlaid or
//! one at a time, in the rest or observed frame) with its hover readout, and the residuals
//! plot; both draw through the curve cache.

use std::ops::RangeInclusive;
use std::sync::Arc;

use eframe::egui;
use egui_plot::{FilledArea, HLine, MarkerShape, Points};

use super::common::{
    DOWN_WEIGHTED_COLOR, MASK_COLOR, PlotView, Slot, apply_view_requests, linked_plot, visible_x,
};
use super::curves::{ExposureKey, ModelDrawing, SegCurve, VisitDrawing, decimate_band};
use crate::app::trace::{Trace, TraceItem};
use crate::app::view::{DrawFrame, ExposureLayout};
use crate::app::visit_rows::{sorted_indices, velocity_in_use, visit_color};
use crate::model::pixel_policy::sigma_factor;
use crate::model::{Survey, mask};

/// The residual of a visit's pixel `p` against `predicted` (S f, the fit's frame), in units of
/// the sigma the fit used: the prediction is taken to the file's frame by `frame`
/// ([`crate::combine::file_frame_factor`]: over APOGEE's telluric-corrected flux, S f / S), and
/// the pixel policy's inflating bits (sky lines, persistence) multiply the file's sigma, so the
/// squares add up to the visit's chi^2. NaN for a masked pixel (`bad_bits`, bad, ivar <= 0, an
/// unusable S) or one not predicted.
pub fn residual_in_sigma(
    visit: &crate::model::Visit,
    predicted: &[f64],
    frame: &[f64],
    p: usize,
    bad_bits: u64,
    inflate: &[crate::model::pixel_policy::InflateBit],
) -> f64 {
    let (ivar, flags) = (visit.ivar()[p], visit.flags()[p]);
    if ivar > 0.0 && !visit.bad()[p] && flags & bad_bits == 0 {
        (visit.flux()[p] - frame[p] * predicted[p]) * ivar.sqrt() / sigma_factor(flags, inflate)
    } else {
        f64::NAN
    }
}

/// Hover readout of the exposures plot: the nearest visit's pixel, its value, sigma and flags.
fn exposure_hover_text(pv: &PlotView<'_>, hp: &egui_plot::HoverPosition<'_>) -> String {
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
    let Some(i) = pv.data.visits.iter().position(|v| v.meta.name == base) else {
        return format!("{name}\n{text}");
    };
    let visit = &pv.data.visits[i];
    let obs_aa = p.x / frame_scale(pv, i);
    // Nearest pixel over all segments.
    let mut best: Option<(f64, usize)> = None;
    for seg in pv.curves.visits.get(i).into_iter().flatten() {
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
    let defs = match pv.data.survey {
        Survey::Boss => mask::BOSS_SPPIXMASK,
        _ => mask::APOGEE_PIXMASK,
    };
    let sigma = visit.ivar()[px].powf(-0.5);
    text = format!(
        "{base} pixel {px}\n{:.2} A observed\nflux {:.4} +- {sigma:.4}",
        visit.wavelength_aa()[px],
        visit.flux()[px]
    );
    // The settings of the result shown (the fit's), else the current ones.
    let settings = pv.result.map_or(pv.settings, |r| &r.settings);
    let factor = sigma_factor(visit.flags()[px], &settings.inflate_bits);
    if factor != 1.0 {
        text += &format!(
            " (the fit uses {:.4}: sigma x {factor:.2} by the pixel policy)",
            sigma * factor
        );
    }
    if let Some(r) = &pv.result
        && let Some(pred) = r
            .forward
            .as_ref()
            .and_then(|f| f.visits.get(i))
            .and_then(|f| f.prediction.get(px))
    {
        // In the file's frame, as drawn.
        let c = crate::combine::file_frame_factor_at(visit, &r.settings, px);
        text += &format!("\nmodel {:.4}", c * pred);
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
fn drawn_visits(pv: &PlotView<'_>) -> Vec<usize> {
    match pv.view.layout {
        ExposureLayout::Single => vec![
            pv.selected_visit
                .min(pv.data.visits.len().saturating_sub(1)),
        ],
        _ => sorted_indices(pv.scene()),
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
fn frame_scale(pv: &PlotView<'_>, i: usize) -> f64 {
    if pv.view.frame == DrawFrame::Observed {
        return 1.0;
    }
    let v = pv
        .result
        .as_ref()
        .and_then(|r| r.visits.get(i))
        .map(|u| u.v_kms)
        .filter(|_| {
            pv.result
                .as_ref()
                .is_some_and(|r| r.settings == *pv.settings)
        })
        .or_else(|| velocity_in_use(pv.scene(), i).0)
        .unwrap_or(0.0);
    (-crate::model::shift_from_velocity(v)).exp()
}

impl ExposureKey {
    /// The cache key of visit `i`'s curves at `scale` over `obs_range` (observed frame) in
    /// `bins` bins, with the view's bad bits and leave-one-out choice; no offset, band or
    /// masked markers (the exposures plot sets those).
    fn of(
        i: usize,
        scale: f64,
        obs_range: &RangeInclusive<f64>,
        bins: usize,
        pv: &PlotView<'_>,
    ) -> Self {
        Self {
            visit: i,
            scale: scale.to_bits(),
            lo: obs_range.start().to_bits(),
            hi: obs_range.end().to_bits(),
            bins,
            offset: 0,
            bad_bits: pv.settings.bad_bits,
            band: false,
            masked: false,
            loo: pv.view.leave_one_out,
        }
    }
}

pub(super) fn exposures_plot(pv: &PlotView<'_>, ui: &mut egui::Ui, slot: Slot) {
    let visits = drawn_visits(pv);
    let bins = bins_for(slot.bins, visits.len());
    let step = pv.curves.typical_flux * 0.6;
    let stacked = pv.view.layout == ExposureLayout::Stacked;
    linked_plot(
        "exposures",
        slot.height,
        if stacked { "flux + offset" } else { "flux" },
    )
    .x_axis_label(match pv.view.frame {
        DrawFrame::Rest => "rest-frame wavelength (A)",
        DrawFrame::Observed => "observed wavelength (A)",
    })
    .label_formatter(|hp| Some(exposure_hover_text(pv, hp)))
    .show(ui, |plot_ui| {
        apply_view_requests(pv, plot_ui, slot.jump);
        let range = visible_x(plot_ui, slot.full);
        // Decimated over a wider, aligned range: panning reuses the cached curves.
        let (tile, bins) = tiled(&range, bins);
        for (k, &i) in visits.iter().enumerate() {
            let Some(visit) = pv.data.visits.get(i) else {
                continue;
            };
            let Some(segs) = pv.curves.visits.get(i) else {
                continue;
            };
            let offset = if stacked { -(k as f64) * step } else { 0.0 };
            let scale = frame_scale(pv, i);
            let obs_range = (tile.start() / scale)..=(tile.end() / scale);
            let included = pv.settings.visit(i).include;
            // The model stands out against one visit; among many it should not hide them.
            let model_color = if pv.view.layout == ExposureLayout::Single {
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
                offset: offset.to_bits(),
                // Bands of a dozen stacked visits only blur them; shown one or overlaid.
                band: pv.view.show_uncertainty && !stacked,
                masked: pv.view.show_masked,
                ..ExposureKey::of(i, scale, &obs_range, bins, pv)
            };
            let n_visits = pv.data.visits.len();
            let drawing = pv.curves.data_drawing(key, n_visits, || {
                visit_drawing(pv, i, segs, key, scale, offset)
            });
            // Only what is in view: the rest must not widen the plot's automatic y range.
            for (xs, lo, hi) in &drawing.bands {
                let a = xs
                    .partition_point(|&x| x < *range.start())
                    .saturating_sub(1);
                let b = (xs.partition_point(|&x| x <= *range.end()) + 1).min(xs.len());
                if b >= a + 2 {
                    plot_ui.add(
                        FilledArea::new(format!("{name} 1-sigma"), &xs[a..b], &lo[a..b], &hi[a..b])
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
            add_markers(plot_ui, &drawing.masked, &range, |pts| {
                Points::new("masked", pts)
                    .color(MASK_COLOR)
                    .shape(MarkerShape::Cross)
                    .radius(2.5)
            });
            if pv.view.show_model
                && let Some(result) = &pv.result
                && let Some(pred) = result.forward.as_ref().and_then(|f| f.visits.get(i))
                && let predicted = model_of(pred, key.loo)
                && predicted.len() == visit.len()
            {
                let model = pv.curves.result_drawing(false, key, result, n_visits, || {
                    let (y_lo, y_hi) = y_limits(pv, i);
                    // Drawn over the file's flux, so in its frame (see file_frame_factor).
                    let frame = crate::combine::file_frame_factor(visit, &result.settings);
                    let trace = pixel_trace(segs, &obs_range, bins, scale, |p| {
                        (frame[p] * predicted[p]).clamp(y_lo, y_hi) + offset
                    });
                    let flux = visit.flux();
                    let down_weighted = pred
                        .robust_weight
                        .iter()
                        .enumerate()
                        .filter(|&(p, &w)| w < 0.5 && obs_range.contains(&visit.wavelength_aa()[p]))
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
                add_markers(plot_ui, &model.down_weighted, &range, |pts| {
                    Points::new("down-weighted (robust)", pts)
                        .color(DOWN_WEIGHTED_COLOR)
                        .shape(MarkerShape::Circle)
                        .filled(false)
                        .radius(3.5)
                });
            }
        }
    });
}

/// One trace over a visit's segments: `y(p)` at each pixel `p`, decimated to `bins` columns over
/// `obs_range` (observed frame) and drawn at the wavelength times `scale`.
fn pixel_trace(
    segs: &[SegCurve],
    obs_range: &RangeInclusive<f64>,
    bins: usize,
    scale: f64,
    y: impl Fn(usize) -> f64,
) -> Trace {
    let mut trace = Trace::default();
    for seg in segs {
        trace.push(
            &seg.lam_aa,
            |j| y(seg.idx[j]),
            obs_range.clone(),
            bins,
            scale,
        );
    }
    trace
}

/// Markers at the `points` in view (`points` outside must not widen the automatic y range);
/// nothing when none is.
fn add_markers<'a>(
    plot_ui: &mut egui_plot::PlotUi<'a>,
    points: &[[f64; 2]],
    range: &RangeInclusive<f64>,
    style: impl FnOnce(Vec<[f64; 2]>) -> Points<'a>,
) {
    let pts = in_view(points, range);
    if !pts.is_empty() {
        plot_ui.points(style(pts));
    }
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
fn y_limits(pv: &PlotView<'_>, i: usize) -> (f64, f64) {
    pv.curves
        .y_limits
        .get(i)
        .copied()
        .unwrap_or((f64::NEG_INFINITY, f64::INFINITY))
}

/// Decimate one visit's flux, band and masked pixels as `key` describes.
fn visit_drawing(
    pv: &PlotView<'_>,
    i: usize,
    segs: &[SegCurve],
    key: ExposureKey,
    scale: f64,
    offset: f64,
) -> VisitDrawing {
    let Some(visit) = pv.data.visits.get(i) else {
        return VisitDrawing::default();
    };
    let obs_range = f64::from_bits(key.lo)..=f64::from_bits(key.hi);
    let bins = key.bins;
    let flux = visit.flux();
    let ivar = visit.ivar();
    let sigma = pv.curves.sigma.get(i).map(Vec::as_slice).unwrap_or(&[]);
    let bad_bits = key.bad_bits;
    let (y_lo, y_hi) = y_limits(pv, i);
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

pub(super) fn residuals_plot(pv: &PlotView<'_>, ui: &mut egui::Ui, slot: Slot) {
    // Borrowed: cloning the result every frame copied every visit's prediction.
    let forward = pv.result.as_ref().and_then(|r| r.forward.as_ref());
    let visits = drawn_visits(pv);
    let bins = bins_for(slot.bins, visits.len());
    linked_plot("residuals", slot.height, "resid. (sigma)").show(ui, |plot_ui| {
        apply_view_requests(pv, plot_ui, slot.jump);
        let range = visible_x(plot_ui, slot.full);
        // Decimated over a wider, aligned range: panning reuses the cached curves.
        let (tile, bins) = tiled(&range, bins);
        plot_ui.hline(HLine::new("+3 sigma", 3.0).color(egui::Color32::from_gray(150)));
        plot_ui.hline(HLine::new("-3 sigma", -3.0).color(egui::Color32::from_gray(150)));
        let Some(f) = &forward else { return };
        for &i in &visits {
            let (Some(visit), Some(segs), Some(fit)) = (
                pv.data.visits.get(i),
                pv.curves.visits.get(i),
                f.visits.get(i),
            ) else {
                continue;
            };
            let predicted = model_of(fit, pv.view.leave_one_out);
            if predicted.len() != visit.len() {
                continue;
            }
            let scale = frame_scale(pv, i);
            let obs_range = (tile.start() / scale)..=(tile.end() / scale);
            let Some(result) = &pv.result else { continue };
            let key = ExposureKey::of(i, scale, &obs_range, bins, pv);
            let n_visits = pv.data.visits.len();
            let drawing = pv.curves.result_drawing(true, key, result, n_visits, || {
                let bad_bits = key.bad_bits;
                let inflate = &result.settings.inflate_bits;
                let frame = crate::combine::file_frame_factor(visit, &result.settings);
                // Clamped so one outlier does not flatten the rest.
                let trace = pixel_trace(segs, &obs_range, bins, scale, |p| {
                    residual_in_sigma(visit, predicted, &frame, p, bad_bits, inflate)
                        .clamp(-12.0, 12.0)
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_hover_names_the_flags_of_the_nearest_pixel() {
        let data = crate::app::demo::apogee_demo(2).expect("demo");
        let mut app = crate::app::FrizzApp::inline(data);
        let pv = app.plot_view();
        let visit = &pv.data.visits[0];
        let px = visit
            .flags()
            .iter()
            .position(|&f| f & 2 != 0)
            .expect("the demo has a cosmic ray (CRPIX) in visit 1");
        let x = visit.wavelength_aa()[px] * frame_scale(&pv, 0);
        let hp = egui_plot::HoverPosition::NearDataPoint {
            plot_name: &visit.meta.name,
            position: egui_plot::PlotPoint::new(x, 1.0),
            index: 0,
        };
        let text = exposure_hover_text(&pv, &hp);
        assert!(text.contains(&format!("pixel {px}")), "{text}");
        assert!(text.contains("CRPIX"), "{text}");
    }
}
