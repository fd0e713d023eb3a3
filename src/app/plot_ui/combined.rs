//! The combined-spectrum plot (every method of the result, named in the legend, their 1-sigma
//! bands, the reference spectra and the no-data spans, decimated once per result and view) with
//! its hover readout, and the plot of the difference between the two built-in methods.

use std::sync::Arc;

use eframe::egui;
use egui_plot::{FilledArea, Span};

use super::common::{
    FORWARD_COLOR, PlotView, STANDARD_COLOR, Slot, add_trace, apply_view_requests, linked_plot,
    other_color, visible_x,
};
use super::curves::{CombinedCurve, CombinedDrawing, CombinedKey, decimate_band, trace};
use crate::app::trace::TraceItem;
use crate::app::view::Compare;
use crate::combine::{Combined, MethodResult};
use crate::model::{Survey, mask};

fn hover_text(pv: &PlotView<'_>, lam_aa: f64) -> String {
    let Some(r) = &pv.result else {
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
    let defs = match pv.data.survey {
        Survey::Boss => mask::BOSS_SPPIXMASK,
        _ => mask::APOGEE_PIXMASK,
    };
    for (info, m) in r.results() {
        let name = info.name;
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

fn method_curves(
    out: &mut Vec<CombinedCurve>,
    name: &str,
    m: &MethodResult,
    grid_aa: &[f64],
    color: egui::Color32,
    key: CombinedKey,
    limits: (f64, f64),
) {
    let c = |x: f64| crate::app::yrange::clamp_to(x, limits);
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
fn combined_drawing(pv: &PlotView<'_>, r: &Arc<Combined>, key: CombinedKey) -> CombinedDrawing {
    let grid_aa = r.grid.wavelength_aa();
    let range = f64::from_bits(key.lo)..=f64::from_bits(key.hi);
    let results = r.results();
    // The first method's (the forward model, else standard practice, else the next one).
    let spans = results
        .first()
        .map(|(_, m)| no_data_spans(m, &grid_aa))
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
    // The built-in methods set it when there are any (a further method is drawn in their
    // range, clamped like them), else the further methods.
    let builtin: Vec<&MethodResult> = [&r.forward, &r.standard].into_iter().flatten().collect();
    let ranged = if builtin.is_empty() {
        results.iter().map(|(_, m)| *m).collect()
    } else {
        builtin
    };
    for m in ranged {
        values.extend(in_view(&grid_aa, &m.flux));
    }
    if key.reference {
        for s in [&pv.data.truth, &pv.data.pipeline_coadd]
            .into_iter()
            .flatten()
        {
            let x: Vec<f64> = s.ln_wave.iter().map(|v| v.exp()).collect();
            values.extend(in_view(&x, &s.flux));
        }
    }
    let limits = crate::app::yrange::robust_limits(values).unwrap_or((f64::MIN, f64::MAX));
    let c = |x: f64| crate::app::yrange::clamp_to(x, limits);
    let mut curves = Vec::new();
    if key.reference {
        for s in [&pv.data.truth, &pv.data.pipeline_coadd]
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
    // Every further method, named by its label, beside standard practice (drawn when it is), the
    // forward model on top.
    if key.overlay || r.forward.is_none() {
        for (k, o) in r.others.iter().enumerate() {
            if let Some(m) = &o.result {
                let (name, color) = (o.info.label, other_color(k));
                method_curves(&mut curves, name, m, &grid_aa, color, key, limits);
            }
        }
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

pub(super) fn combined_plot(pv: &PlotView<'_>, ui: &mut egui::Ui, slot: Slot) {
    linked_plot("combined", slot.height, "combined flux")
        .id(combined_plot_id())
        .legend(egui_plot::Legend::default().position(egui_plot::Corner::RightBottom))
        .label_formatter(|hp| {
            let p = match hp {
                egui_plot::HoverPosition::NearDataPoint { position, .. }
                | egui_plot::HoverPosition::Elsewhere { position } => *position,
            };
            Some(hover_text(pv, p.x))
        })
        .show(ui, |plot_ui| {
            apply_view_requests(pv, plot_ui, slot.jump);
            let range = visible_x(plot_ui, slot.full);
            let Some(r) = &pv.result else { return };
            let key = CombinedKey {
                lo: range.start().to_bits(),
                hi: range.end().to_bits(),
                bins: slot.bins,
                band: pv.view.show_uncertainty,
                reference: pv.view.show_reference,
                overlay: pv.view.compare == Compare::Overlay,
            };
            let cached = pv
                .curves
                .combined
                .borrow()
                .as_ref()
                .filter(|d| d.key == key && Arc::ptr_eq(&d.result, r))
                .cloned();
            let d = cached.unwrap_or_else(|| {
                let d = Arc::new(combined_drawing(pv, r, key));
                *pv.curves.combined.borrow_mut() = Some(Arc::clone(&d));
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

pub(super) fn difference_plot(pv: &PlotView<'_>, ui: &mut egui::Ui, slot: Slot) {
    let Some(r) = pv.result.cloned() else { return };
    let (Some(f), Some(s)) = (&r.forward, &r.standard) else {
        return;
    };
    let grid_aa = r.grid.wavelength_aa();
    linked_plot("difference", slot.height, "std - fwd").show(ui, |plot_ui| {
        apply_view_requests(pv, plot_ui, slot.jump);
        let range = visible_x(plot_ui, slot.full);
        let d = |k: usize| s.flux[k] - f.flux[k];
        let limits = crate::app::yrange::robust_limits(
            (0..grid_aa.len())
                .filter(|&k| range.contains(&grid_aa[k]))
                .map(d),
        )
        .unwrap_or((f64::MIN, f64::MAX));
        let c = |x: f64| crate::app::yrange::clamp_to(x, limits);
        if pv.view.show_uncertainty {
            for (xs, lo, hi) in decimate_band(
                &grid_aa,
                |k| c(-f.var[k].sqrt()),
                |k| c(f.var[k].sqrt()),
                range.clone(),
                slot.bins,
            ) {
                plot_ui.add(
                    FilledArea::new("forward 1-sigma", &xs, &lo, &hi)
                        .fill_color(FORWARD_COLOR.gamma_multiply(0.2)),
                );
            }
        }
        let t = trace(&grid_aa, |k| c(d(k)), range, slot.bins);
        add_trace(plot_ui, "standard - forward", t, STANDARD_COLOR, 1.0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::combine::{MethodInfo, MethodOutcome};

    fn drawing(r: &Arc<Combined>, data: &crate::model::Dataset, overlay: bool) -> CombinedDrawing {
        let settings = r.settings.clone();
        let view = crate::app::view::ViewOptions::default();
        let mut curves = super::super::curves::DatasetCurves::default();
        let pv = PlotView {
            data,
            settings: &settings,
            result: Some(r),
            view: &view,
            selected_visit: 0,
            reset_view: false,
            curves: &mut curves,
        };
        let grid = r.grid.wavelength_aa();
        let key = CombinedKey {
            lo: grid[0].to_bits(),
            hi: grid[grid.len() - 1].to_bits(),
            bins: 400,
            band: true,
            reference: false,
            overlay,
        };
        combined_drawing(&pv, r, key)
    }

    /// A curve as (name, colour, the bits of the points drawn, per run).
    type Summary = (String, egui::Color32, Vec<Vec<[u64; 2]>>);

    /// Every curve of a drawing, summarised.
    fn summary(d: &CombinedDrawing) -> Vec<Summary> {
        let bits = |p: &[[f64; 2]]| p.iter().map(|q| [q[0].to_bits(), q[1].to_bits()]).collect();
        d.curves
            .iter()
            .map(|c| match c {
                CombinedCurve::Band {
                    name,
                    xs,
                    lo,
                    hi,
                    color,
                } => {
                    let pts = |y: &[f64]| -> Vec<[f64; 2]> {
                        xs.iter().zip(y).map(|(x, y)| [*x, *y]).collect()
                    };
                    (name.clone(), *color, vec![bits(&pts(lo)), bits(&pts(hi))])
                }
                CombinedCurve::Line {
                    name, trace, color, ..
                } => (
                    name.clone(),
                    *color,
                    trace.to_runs().iter().map(|r| bits(r)).collect(),
                ),
            })
            .collect()
    }

    /// A method beyond the two built-in ones is drawn with its label in the legend, in its own
    /// colour, beside standard practice and under the forward model; the built-in ones' curves
    /// are what they are without it.
    #[test]
    fn the_combined_plot_draws_every_method_by_its_label() {
        let data = crate::app::demo::apogee_demo(3).expect("demo");
        let settings = crate::settings::survey_defaults(&data);
        let cancel = crate::combine::Cancel::new();
        let plain = Arc::new(crate::combine::combine(&data, &settings, &cancel).expect("result"));
        let mut third = (*plain).clone();
        let mut toy = third.standard.clone().expect("standard practice");
        for f in &mut toy.flux {
            *f *= 1.01;
        }
        third.others.push(MethodOutcome {
            info: MethodInfo {
                name: "toy",
                label: "toy method",
                export_prefix: "toy_",
            },
            result: Some(toy),
            error: None,
        });
        let third = Arc::new(third);
        for overlay in [true, false] {
            let (a, b) = (
                summary(&drawing(&plain, &data, overlay)),
                summary(&drawing(&third, &data, overlay)),
            );
            // One band per run of pixels with data (the chips): each name once.
            let mut names: Vec<&str> = b.iter().map(|c| c.0.as_str()).collect();
            names.dedup();
            let toy = b.iter().find(|c| c.0 == "toy method").map(|c| c.1);
            let std_line = b.iter().find(|c| c.0 == "standard practice").map(|c| &c.2);
            let toy_line = b.iter().find(|c| c.0 == "toy method").map(|c| &c.2);
            if overlay {
                assert_eq!(
                    names,
                    [
                        "standard practice 1-sigma",
                        "standard practice",
                        "toy method 1-sigma",
                        "toy method",
                        "forward model 1-sigma",
                        "forward model"
                    ]
                );
                assert_eq!(toy, Some(other_color(0)));
                assert_ne!(toy, Some(FORWARD_COLOR));
                assert_ne!(toy, Some(STANDARD_COLOR));
                assert_ne!(toy_line, std_line, "the toy's curve is its own");
            } else {
                assert_eq!(names, ["forward model 1-sigma", "forward model"]);
            }
            let kept: Vec<_> = b.into_iter().filter(|c| !c.0.starts_with("toy")).collect();
            assert_eq!(kept, a, "overlay {overlay}");
        }
    }
}
