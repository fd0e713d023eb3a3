//! The images mode's controls (left panel: files, output settings, the exposure table, the view,
//! the colour scale, the aperture tool) and its central views.

use std::sync::Arc;

use eframe::egui;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};
use ndarray::Array2;

use super::job::Aperture;
use super::view::{self, Quad, Stretch};
use super::{ImageView, ImagesState};

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// What the images mode asks of the window after its part of a frame.
#[derive(Debug, Default)]
pub struct Requests {
    /// "Open image files…" was clicked: show the open-files dialog.
    pub open_files_dialog: bool,
    /// Messages for the status bar: (text, is an error).
    pub messages: Vec<(String, bool)>,
}

/// The images mode's part of a frame: panels and the central view.
pub fn frame(st: &mut ImagesState, ui: &mut egui::Ui) -> Requests {
    let ctx = ui.ctx().clone();
    st.set_wake(&ctx);
    st.logic();
    let messages = st.take_messages();
    let open_files_dialog = show(st, ui);
    if st.computing() || st.loading.is_some() {
        ctx.request_repaint_after(std::time::Duration::from_millis(250));
    }
    Requests {
        open_files_dialog,
        messages,
    }
}

/// Draw the mode: the left panel and the centre. True when "Open image files…" was clicked.
pub fn show(st: &mut ImagesState, ui: &mut egui::Ui) -> bool {
    let mut open_files = false;
    egui::Panel::left("images-options")
        .resizable(true)
        .default_size(430.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| open_files = controls(st, ui));
        });
    egui::CentralPanel::default().show(ui, |ui| centre(st, ui));
    open_files
}

/// The left panel; true when "Open image files…" was clicked.
fn controls(st: &mut ImagesState, ui: &mut egui::Ui) -> bool {
    let mut open_files = false;
    ui.horizontal(|ui| {
        if ui.button("Open image files…").clicked() {
            open_files = true;
        }
        if ui.button("Image demo").clicked() {
            st.open_demo();
        }
    });
    if let Some(l) = &st.loading {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(l);
        });
    }
    let Some(inp) = st.inputs.clone() else {
        ui.label("No images open: open FITS, .npy or TIFF exposures (with a .txt of shifts for a dither sequence), or the demo.");
        return open_files;
    };
    ui.label(egui::RichText::new(&inp.name).strong());
    egui::CollapsingHeader::new(format!("notes ({})", inp.notes.len()))
        .id_salt("image-notes")
        .show(ui, |ui| {
            for n in &inp.notes {
                ui.label(egui::RichText::new(n).small());
            }
        });
    ui.separator();
    ui.heading("Output");
    egui::Grid::new("image-output")
        .num_columns(2)
        .show(ui, |ui| {
            let l = ui.label("scale (output px per input px)");
            ui.add(
                egui::DragValue::new(&mut st.settings.scale)
                    .speed(0.05)
                    .range(0.25..=6.0)
                    .max_decimals(2),
            )
            .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("drizzle pixfrac");
            ui.add(egui::Slider::new(&mut st.settings.pixfrac, 0.05..=1.0))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("ridge");
            ui.add(
                egui::DragValue::new(&mut st.settings.ridge)
                    .speed(0.1)
                    .range(0.0..=1e9),
            )
            .labelled_by(l.id);
            ui.end_row();
        });
    ui.checkbox(&mut st.settings.sky, "fit a sky offset per exposure");
    ui.checkbox(
        &mut st.settings.converge,
        format!(
            "solve to convergence (else CG stops at {} iterations)",
            super::inputs::LIVE_MAX_ITER
        ),
    );
    if let Some(b) = &st.built {
        ui.label(format!(
            "output grid {} x {} px{}",
            b.shape.1,
            b.shape.0,
            if b.wcs.is_some() {
                ", TAN, north up"
            } else {
                ""
            }
        ));
    }
    ui.separator();
    ui.heading("Exposures");
    exposure_table(st, &inp, ui);
    ui.separator();
    ui.heading("View");
    ui.horizontal_wrapped(|ui| {
        for (v, label) in ImageView::ALL {
            ui.selectable_value(&mut st.view, v, label);
        }
    });
    ui.horizontal(|ui| {
        let l = ui.label("colour: percentiles");
        ui.add(
            egui::DragValue::new(&mut st.color.lo_pct)
                .speed(0.1)
                .range(0.0..=50.0),
        )
        .labelled_by(l.id);
        ui.add(
            egui::DragValue::new(&mut st.color.hi_pct)
                .speed(0.1)
                .range(50.0..=100.0),
        )
        .labelled_by(l.id);
        ui.selectable_value(&mut st.color.stretch, Stretch::Linear, "linear");
        ui.selectable_value(&mut st.color.stretch, Stretch::Asinh, "asinh");
    });
    ui.separator();
    ui.heading("Aperture");
    ui.horizontal(|ui| {
        ui.checkbox(&mut st.aperture_tool, "click the image to place it");
        let l = ui.label("radius");
        if ui
            .add(
                egui::DragValue::new(&mut st.aperture_r)
                    .speed(0.1)
                    .range(0.5..=200.0),
            )
            .labelled_by(l.id)
            .changed()
            && let Some(a) = &mut st.aperture
        {
            a.r = st.aperture_r;
        }
        if st.aperture.is_some() && ui.small_button("remove").clicked() {
            st.aperture = None;
        }
    });
    aperture_readout(st, ui);
    open_files
}

fn exposure_table(st: &mut ImagesState, inp: &super::Inputs, ui: &mut egui::Ui) {
    let f = st.frizzle.clone();
    egui::Grid::new("image-exposures")
        .striped(true)
        .num_columns(8)
        .show(ui, |ui| {
            let heads: Vec<egui::Id> = ["use", "weight", "dx", "dy", "sky", "χ²/ν", "LOO χ²/ν", ""]
                .iter()
                .map(|h| ui.label(egui::RichText::new(*h).strong()).id)
                .collect();
            ui.end_row();
            for (e, x) in inp.exposures.iter().enumerate() {
                let Some(es) = st.settings.exposures.get_mut(e) else {
                    break;
                };
                ui.checkbox(&mut es.include, &x.name);
                ui.add(
                    egui::DragValue::new(&mut es.weight)
                        .speed(0.01)
                        .range(0.0..=10.0)
                        .max_decimals(2),
                )
                .labelled_by(heads[1])
                .on_hover_text("weight on this exposure's inverse variance");
                ui.add(egui::DragValue::new(&mut es.dx).speed(0.01).max_decimals(3))
                    .labelled_by(heads[2])
                    .on_hover_text("extra shift along x, input pixels");
                ui.add(egui::DragValue::new(&mut es.dy).speed(0.01).max_decimals(3))
                    .labelled_by(heads[3])
                    .on_hover_text("extra shift along y, input pixels");
                let val = |v: Option<&Vec<f64>>| v.and_then(|v| v.get(e).copied());
                ui.label(val(f.as_ref().map(|f| &f.sky)).map_or("…".into(), fmt))
                    .on_hover_text(
                        "fitted sky offset (the first included exposure is the zero point)",
                    );
                ui.label(val(f.as_ref().map(|f| &f.chi2nu)).map_or("…".into(), fmt));
                ui.label(val(f.as_ref().and_then(|f| f.loo.as_ref())).map_or("…".into(), fmt));
                if ui
                    .selectable_label(
                        st.selected == e
                            && matches!(st.view, ImageView::Exposure | ImageView::Residuals),
                        "show",
                    )
                    .clicked()
                {
                    st.selected = e;
                    if !matches!(st.view, ImageView::Exposure | ImageView::Residuals) {
                        st.view = ImageView::Exposure;
                    }
                }
                ui.end_row();
            }
        });
    if let Some(f) = &f
        && f.loo.is_none()
        && let Some(why) = &f.skipped
    {
        ui.label(egui::RichText::new(why).small());
    }
}

/// The aperture's numbers for both methods, as shown.
#[must_use]
pub fn aperture_text(st: &ImagesState) -> Vec<String> {
    let mut out = Vec::new();
    let Some(a) = st.aperture else {
        return out;
    };
    let n = st
        .built
        .as_ref()
        .map_or(0, |b| a.mask(b.shape).iter().filter(|v| **v == 1.0).count());
    out.push(format!(
        "aperture at ({:.1}, {:.1}), r = {:.1} px ({n} output px), minus the annulus {}r–{}r mean",
        a.x,
        a.y,
        a.r,
        super::job::ANNULUS.0,
        super::job::ANNULUS.1
    ));
    match st.frizzle.as_ref().and_then(|f| f.aperture) {
        Some((fa, flux, var)) if fa == a => out.push(format!(
            "Frizzle: {} ± {} (exact: a^T C* a, one CG solve)",
            fmt(flux),
            fmt(var.sqrt())
        )),
        _ => out.push("Frizzle: computing…".into()),
    }
    match st.drizzle.as_ref().and_then(|d| d.aperture) {
        Some((da, flux, var, naive)) if da == a => {
            out.push(format!(
                "drizzle: {} ± {} (exact, covariance included)",
                fmt(flux),
                fmt(var.sqrt())
            ));
            out.push(format!(
                "drizzle's per-pixel VAR summed (covariance ignored): ± {}",
                fmt(naive.sqrt())
            ));
        }
        _ => out.push("drizzle: computing…".into()),
    }
    out
}

fn aperture_readout(st: &ImagesState, ui: &mut egui::Ui) {
    for line in aperture_text(st) {
        ui.label(line);
    }
}

fn status_line(st: &ImagesState, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        let g = st.generation;
        match (&st.drizzle, &st.drizzle_error) {
            (_, Some(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            (Some(d), None) => {
                ui.label(format!(
                    "drizzle: {:.0} ms{}{}",
                    d.elapsed.as_secs_f64() * 1e3,
                    if st.settings.sky {
                        ", inputs sky-matched by their medians"
                    } else {
                        ""
                    },
                    if st.drizzle_gen == g { "" } else { " (recomputing…)" }
                ));
            }
            (None, None) => {
                ui.spinner();
                ui.label("drizzle…");
            }
        }
        ui.separator();
        if let Some(e) = &st.frizzle_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        } else {
            if let Some(f) = &st.frizzle {
                let text = format!(
                    "Frizzle: CG {} iterations, rel. residual {:.1e}{}",
                    f.iterations,
                    f.rel_residual,
                    if f.capped() {
                        " — STOPPED AT THE CAP, not converged (tick 'solve to convergence')"
                    } else {
                        ""
                    }
                );
                if f.capped() {
                    ui.colored_label(ui.visuals().warn_fg_color, text);
                } else {
                    ui.label(text);
                }
                if let Some((_, kind)) = &f.var {
                    ui.label(format!("σ: {kind}"));
                }
            }
            let stale = st.frizzle_gen != g || st.frizzle.as_ref().is_some_and(|f| !f.complete);
            if stale && st.inputs.is_some() {
                let (_, stage, secs) = st.frizzle_stage();
                ui.spinner();
                ui.label(if st.frizzle_gen != g {
                    format!("Frizzle: {stage}… {secs:.0} s (the image shown is from the previous settings)")
                } else {
                    format!("Frizzle: {stage}… {secs:.0} s")
                });
            }
        }
    });
    if let Some(d) = &st.drizzle {
        for w in &d.coverage.warnings {
            ui.colored_label(ui.visuals().warn_fg_color, format!("warning: {w}"));
        }
    }
}

fn centre(st: &mut ImagesState, ui: &mut egui::Ui) {
    if st.inputs.is_none() {
        ui.centered_and_justified(|ui| {
            ui.label("Images mode: open exposures (File → Open files…) or the image demo.");
        });
        return;
    }
    status_line(st, ui);
    let readout_h = 2.0 * ui.spacing().interact_size.y;
    match st.view {
        ImageView::Noise => noise_view(st, ui),
        ImageView::Coverage => coverage_view(st, ui, readout_h),
        _ => image_view(st, ui, readout_h),
    }
}

/// The array shown by an image view, whether it is diverging, and a key for the texture.
fn current_array(st: &ImagesState) -> Option<(Arc<Array2<f64>>, bool, String)> {
    let e = st.selected;
    let fg = st.frizzle_gen;
    let dg = st.drizzle_gen;
    match st.view {
        ImageView::Frizzle => st
            .frizzle
            .as_ref()
            .map(|f| (Arc::clone(&f.sci), false, format!("f{fg}"))),
        ImageView::Drizzle => st
            .drizzle
            .as_ref()
            .map(|d| (Arc::new(d.result.sci.clone()), false, format!("d{dg}"))),
        ImageView::Difference => {
            let (f, d) = (st.frizzle.as_ref()?, st.drizzle.as_ref()?);
            if f.sci.dim() != d.result.sci.dim() {
                return None;
            }
            Some((
                Arc::new(&*f.sci - &d.result.sci),
                true,
                format!("diff{fg}-{dg}"),
            ))
        }
        ImageView::Exposure => st
            .inputs
            .as_ref()
            .and_then(|i| i.exposures.get(e))
            .map(|x| (Arc::new(x.sci.clone()), false, format!("e{e}"))),
        ImageView::Residuals => st
            .frizzle
            .as_ref()
            .and_then(|f| f.residuals.get(e))
            .map(|r| (Arc::new(r.clone()), true, format!("r{e}-{fg}"))),
        ImageView::Noise | ImageView::Coverage => None,
    }
}

impl ImagesState {
    /// The array the image view shows (exposure, combined image, difference, residuals).
    #[must_use]
    pub fn shown(&self) -> Option<Arc<Array2<f64>>> {
        current_array(self).map(|x| x.0)
    }

    /// Where output position (x, y) was drawn in the last frame of an image view.
    #[must_use]
    pub fn screen_pos(&self, x: f64, y: f64) -> Option<egui::Pos2> {
        self.canvas_rect.map(|r| self.camera.to_screen(r, x, y))
    }

    /// (busy, stage, seconds) of the forward-model worker.
    #[must_use]
    pub fn frizzle_stage(&self) -> (bool, String, f64) {
        self.workers
            .as_ref()
            .map_or((false, String::new(), 0.0), |w| w.frizzle_status.get())
    }

    fn texture(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        a: &Array2<f64>,
        diverging: bool,
    ) -> (egui::TextureHandle, (f64, f64)) {
        let key = format!("{key}|{:?}", self.color);
        if let Some((k, t, r)) = &self.tex
            && *k == key
        {
            return (t.clone(), *r);
        }
        let r = view::range(a, &self.color, diverging);
        let img = view::colorize(a, r, self.color.stretch, diverging);
        let t = ctx.load_texture("images-view", img, egui::TextureOptions::NEAREST);
        self.tex = Some((key, t.clone(), r));
        (t, r)
    }

    /// The readout for output position (x, y): pixel, RA/Dec, value ± sigma.
    fn readout_at(&self, p: [f64; 2]) -> String {
        let Some(b) = &self.built else {
            return String::new();
        };
        let (x, y) = (p[0].round(), p[1].round());
        let mut s = format!("x, y = {:.0}, {:.0}", x, y);
        if let Some(w) = &b.wcs {
            let [ra, dec] = w.pixel_to_sky(p[0], p[1]);
            s += &format!("   RA, Dec = {ra:.6}°, {dec:+.6}°");
        }
        let inside = x >= 0.0 && y >= 0.0 && (x as usize) < b.shape.1 && (y as usize) < b.shape.0;
        let at = (y as usize, x as usize);
        let val = match self.view {
            ImageView::Frizzle if inside => self.frizzle.as_ref().map(|f| {
                let sig = f.var.as_ref().map(|(v, _)| v[at].max(0.0).sqrt());
                (f.sci[at], sig, "Frizzle")
            }),
            ImageView::Drizzle if inside => self.drizzle.as_ref().map(|d| {
                (
                    d.result.sci[at],
                    Some(d.result.var[at].sqrt()),
                    "drizzle (per-pixel VAR)",
                )
            }),
            ImageView::Difference if inside => match (&self.frizzle, &self.drizzle) {
                (Some(f), Some(d)) if f.sci.dim() == d.result.sci.dim() => {
                    Some((f.sci[at] - d.result.sci[at], None, "Frizzle − drizzle"))
                }
                _ => None,
            },
            ImageView::Exposure | ImageView::Residuals => {
                let e = self.selected;
                let found = (|| {
                    let pm = &b.exposures.get(e)?.pixmap;
                    let (j, i) = view::input_pixel(pm, p[0], p[1])?;
                    let x = self.inputs.as_ref()?.exposures.get(e)?;
                    let iv = x.ivar[[j, i]];
                    let sig = (iv > 0.0).then(|| 1.0 / iv.sqrt());
                    let v = if self.view == ImageView::Exposure {
                        x.sci[[j, i]]
                    } else {
                        self.frizzle.as_ref()?.residuals.get(e)?[[j, i]]
                    };
                    Some((v, sig, i, j))
                })();
                found.map(|(v, sig, i, j)| {
                    s += &format!("   input pixel x, y = {i}, {j}");
                    (v, sig, "exposure")
                })
            }
            _ => None,
        };
        if let Some((v, sig, what)) = val {
            s += &format!("   {what}: {}", fmt(v));
            if let Some(sg) = sig {
                s += &format!(" ± {}", fmt(sg));
            }
        }
        s
    }
}

fn image_view(st: &mut ImagesState, ui: &mut egui::Ui, readout_h: f32) {
    let ctx = ui.ctx().clone();
    let Some(built) = st.built.clone() else {
        ui.spinner();
        return;
    };
    let Some((arr, diverging, key)) = current_array(st) else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("waiting for the result…");
        });
        return;
    };
    let (tex, (lo, hi)) = st.texture(&ctx, &key, &arr, diverging);
    let corners = match st.view {
        ImageView::Exposure | ImageView::Residuals => match built.exposures.get(st.selected) {
            Some(x) => view::exposure_corners(&x.pixmap),
            None => return,
        },
        _ => view::grid_corners(arr.dim()),
    };
    let name = st
        .inputs
        .as_ref()
        .and_then(|i| i.exposures.get(st.selected))
        .map(|x| x.name.clone())
        .unwrap_or_default();
    ui.label(match st.view {
        ImageView::Exposure => {
            format!(
                "exposure {name} at its dither; colour {} … {}",
                fmt(lo),
                fmt(hi)
            )
        }
        ImageView::Residuals => format!(
            "residuals of {name} (data − model − sky); colour ± {}",
            fmt(hi)
        ),
        ImageView::Difference => format!("Frizzle − drizzle; colour ± {}", fmt(hi)),
        _ => format!("colour {} … {}", fmt(lo), fmt(hi)),
    });
    let shape = built.shape;
    let aperture = st.aperture;
    let quads = [Quad {
        texture: &tex,
        corners,
    }];
    let mut cam = st.camera.clone();
    let outline = view::grid_corners(shape);
    let ev = egui::Frame::NONE.show(ui, |ui| {
        ui.set_height((ui.available_height() - readout_h).max(50.0));
        view::canvas(ui, &mut cam, shape, &quads, &|p, cam, rect| {
            let pts: Vec<egui::Pos2> = outline
                .iter()
                .map(|c| cam.to_screen(rect, c[0], c[1]))
                .collect();
            p.add(egui::Shape::closed_line(
                pts,
                egui::Stroke::new(1.0, egui::Color32::from_rgb(90, 90, 140)),
            ));
            if let Some(a) = aperture {
                let c = cam.to_screen(rect, a.x, a.y);
                let r = (a.r * f64::from(cam.zoom.unwrap_or(1.0))) as f32;
                p.circle_stroke(c, r, egui::Stroke::new(1.5, egui::Color32::YELLOW));
            }
        })
    });
    st.camera = cam;
    let ev = ev.inner;
    st.canvas_rect = ev.rect;
    if let Some(c) = ev.clicked
        && st.aperture_tool
    {
        st.aperture = Some(Aperture {
            x: c[0],
            y: c[1],
            r: st.aperture_r,
        });
    }
    if let Some(h) = ev.hover {
        st.readout = st.readout_at(h);
    }
    ui.label(egui::RichText::new(&st.readout).monospace());
}

fn noise_view(st: &ImagesState, ui: &mut egui::Ui) {
    ui.label(
        "Correlation of neighbouring output pixels (the 2-D version of the paper's noise figure): \
         Frizzle's from one column of its output covariance C* (one CG solve), drizzle's exact, \
         from its drop weights (drizzle's own VAR leaves this covariance out).",
    );
    if let Some(why) = st.frizzle.as_ref().and_then(|f| f.skipped.as_ref()) {
        ui.colored_label(ui.visuals().warn_fg_color, why);
    }
    let f = st.frizzle.as_ref().and_then(|f| f.noise);
    let d = st.drizzle.as_ref().and_then(|d| d.noise);
    if let Some((_, at)) = f.or(d) {
        ui.label(format!("at output pixel x, y = {}, {}", at.1, at.0));
    }
    egui::Grid::new("noise-table").striped(true).show(ui, |ui| {
        for h in ["", "lag 1", "lag 2", "lag 3"] {
            ui.label(egui::RichText::new(h).strong());
        }
        ui.end_row();
        for (name, n) in [("Frizzle", f), ("drizzle", d)] {
            for (row, axis) in [(0, "x"), (1, "y")] {
                ui.label(format!("{name}, along {axis}"));
                for l in 0..3 {
                    ui.label(n.map_or("…".into(), |(c, _)| format!("{:+.3}", c[row][l])));
                }
                ui.end_row();
            }
        }
    });
    Plot::new("image-noise")
        .legend(Legend::default())
        .include_y(0.0)
        .include_y(1.0)
        .include_x(0.0)
        .include_x(3.0)
        .x_axis_label("lag (output pixels)")
        .y_axis_label("correlation")
        .show(ui, |p| {
            for (name, n) in [("Frizzle", f), ("drizzle", d)] {
                if let Some((c, _)) = n {
                    for (row, axis) in [(0, "x"), (1, "y")] {
                        let mut pts = vec![[0.0, 1.0]];
                        pts.extend((0..3).map(|l| [(l + 1) as f64, c[row][l]]));
                        p.line(Line::new(format!("{name} ({axis})"), PlotPoints::from(pts)));
                    }
                }
            }
        });
}

fn coverage_view(st: &mut ImagesState, ui: &mut egui::Ui, readout_h: f32) {
    let ctx = ui.ctx().clone();
    let Some(d) = st.drizzle.clone() else {
        ui.spinner();
        return;
    };
    let c = &d.coverage;
    ui.label(format!(
        "{} usable input samples for {} output pixels: M/P = {:.2}; regions of {} x {} px with M/P < 1: {} of {}; phase cells covered {} of {} x {}",
        c.total_samples,
        c.model_pixels,
        c.total_samples as f64 / c.model_pixels.max(1) as f64,
        c.block,
        c.block,
        c.under,
        c.regions,
        c.covered,
        c.cells,
        c.cells
    ));
    if c.warnings.is_empty() {
        ui.label("the dithers constrain the output");
    }
    let key = format!("cov{}", st.drizzle_gen);
    let samples = Arc::new(c.samples.clone());
    let (tex, _) = st.texture(&ctx, &key, &samples, false);
    let shape = samples.dim();
    let h = (ui.available_height() - readout_h).max(80.0);
    let w = ui.available_width();
    let top_down = egui::Layout::top_down(egui::Align::Min);
    ui.horizontal_top(|ui| {
        let mut cam = st.camera.clone();
        ui.allocate_ui_with_layout(egui::vec2(w * 0.6, h), top_down, |ui| {
            ui.label("input samples per output pixel");
            let quads = [Quad {
                texture: &tex,
                corners: view::grid_corners(shape),
            }];
            let ev = view::canvas(ui, &mut cam, shape, &quads, &|_, _, _| {});
            if let Some(p) = ev.hover {
                let (x, y) = (p[0].round(), p[1].round());
                if x >= 0.0 && y >= 0.0 && (x as usize) < shape.1 && (y as usize) < shape.0 {
                    st.readout = format!(
                        "x, y = {x:.0}, {y:.0}: {} samples",
                        c.samples[[y as usize, x as usize]]
                    );
                }
            }
        });
        st.camera = cam;
        ui.allocate_ui_with_layout(egui::vec2(w * 0.38, h), top_down, |ui| {
            ui.label("sub-pixel phases of the exposures' centres (input px)");
            let cells = c.cells;
            Plot::new("image-phases")
                .data_aspect(1.0)
                .width(w * 0.37)
                .height(w * 0.37)
                .include_x(0.0)
                .include_x(1.0)
                .include_y(0.0)
                .include_y(1.0)
                .legend(Legend::default())
                .show(ui, |p| {
                    for k in 0..=cells {
                        let t = k as f64 / cells as f64;
                        p.line(Line::new("", PlotPoints::from(vec![[t, 0.0], [t, 1.0]])));
                        p.line(Line::new("", PlotPoints::from(vec![[0.0, t], [1.0, t]])));
                    }
                    let inc: Vec<[f64; 2]> = c
                        .phases
                        .iter()
                        .filter(|x| x.3)
                        .map(|x| [x.1, x.2])
                        .collect();
                    let exc: Vec<[f64; 2]> = c
                        .phases
                        .iter()
                        .filter(|x| !x.3)
                        .map(|x| [x.1, x.2])
                        .collect();
                    p.points(Points::new("included", PlotPoints::from(inc)).radius(4.0));
                    p.points(Points::new("excluded", PlotPoints::from(exc)).radius(3.0));
                });
        });
    });
    ui.label(egui::RichText::new(&st.readout).monospace());
}
