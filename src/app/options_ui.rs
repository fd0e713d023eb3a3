//! The settings panel: every toggle that changes the combination edits the window's
//! [`Settings`]; the view toggles edit its [`ViewOptions`]. Choices are shown by a description;
//! their names (hover) are the core's vocabulary (`frizzview_core::vocab`), as the command line
//! and Python spell them.

use eframe::egui;

use super::view::{Compare, DrawFrame, ExposureLayout, ViewOptions};
use crate::model::Survey;
use crate::model::mask::{self, BitLevel};
use crate::model::pixel_policy::{self, BitAction, Preset};
use crate::settings::{
    Basis, ForwardSettings, GridSpec, Interpolator, LsfMode, Robust, SelectionMode, Settings,
    ShiftSource, StandardMask, StandardSettings, Weighting,
};

/// Draw the settings panel: the widgets edit `settings` and `view`; `survey` chooses the mask
/// bits shown, `scores_pending` says the leave-one-out scores are still being computed.
pub fn options_ui(
    settings: &mut Settings,
    view: &mut ViewOptions,
    survey: Survey,
    scores_pending: bool,
    ui: &mut egui::Ui,
) {
    ui.heading("Combination");
    method_ui(settings, ui);
    ui.separator();
    data_ui(settings, ui);
    ui.separator();
    egui::CollapsingHeader::new("Mask bits")
        .default_open(false)
        .show(ui, |ui| mask_ui(settings, survey, ui));
    egui::CollapsingHeader::new("Extensions")
        .default_open(false)
        .show(ui, |ui| extensions_ui(settings, ui));
    ui.separator();
    ui.heading("View");
    view_ui(view, scores_pending, ui);
}

fn method_ui(s: &mut Settings, ui: &mut egui::Ui) {
    let mut forward_on = s.forward.is_some();
    if ui
        .checkbox(&mut forward_on, "Forward model (Frizzle)")
        .changed()
    {
        s.forward = forward_on.then(ForwardSettings::default);
    }
    if let Some(fs) = &mut s.forward {
        ui.indent("forward", |ui| {
            choice_combo(ui, "Basis", &mut fs.basis, &Basis::ALL, Basis::label);
            ui.checkbox(&mut fs.compat, "frizzle 0.2.8 compatible")
                .on_hover_text("reproduce the reference implementation exactly, quirks included");
            let mut auto = fs.n_modes.is_none();
            ui.horizontal(|ui| {
                if ui.checkbox(&mut auto, "automatic modes").changed() {
                    fs.n_modes = if auto { None } else { Some(1001) };
                }
                if let Some(p) = &mut fs.n_modes {
                    let label = ui.label("modes");
                    ui.add(egui::DragValue::new(p).range(1..=100_001).prefix("P = "))
                        .labelled_by(label.id);
                }
            });
        });
    }
    let mut standard_on = s.standard.is_some();
    if ui.checkbox(&mut standard_on, "Standard practice").changed() {
        s.standard = standard_on.then(StandardSettings::default);
    }
    if let Some(ss) = &mut s.standard {
        ui.indent("standard", |ui| {
            choice_combo(
                ui,
                "Interpolator",
                &mut ss.interpolator,
                &[
                    Interpolator::CubicSpline,
                    Interpolator::Linear,
                    Interpolator::DampedSinc,
                ],
                interp_label,
            );
            choice_combo(
                ui,
                "Bad pixels",
                &mut ss.mask,
                &[StandardMask::Drop, StandardMask::Conservative],
                mask_label,
            );
            choice_combo(
                ui,
                "Averaging",
                &mut ss.weighting,
                &[
                    Weighting::InverseVariance,
                    Weighting::Uniform,
                    Weighting::ApogeePipeline,
                ],
                weighting_label,
            );
        });
    }
}

fn data_ui(s: &mut Settings, ui: &mut egui::Ui) {
    egui::ComboBox::from_label("Output grid")
        .selected_text(grid_label(&s.grid))
        .show_ui(ui, |ui| {
            for g in [
                GridSpec::Apogee,
                GridSpec::Boss,
                GridSpec::Auto,
                GridSpec::FromInput,
            ] {
                let label = grid_label(&g);
                let hint = vocabulary_hint(&g);
                ui.selectable_value(&mut s.grid, g, label)
                    .on_hover_text(hint);
            }
        });
    choice_combo(ui, "Shift by", &mut s.shift, &ShiftSource::ALL, shift_label);
    choice_combo(
        ui,
        "Weighting",
        &mut s.weighting,
        &[Weighting::InverseVariance, Weighting::Uniform],
        weighting_label,
    );
    ui.label("Selection function S (tellurics)");
    ui.horizontal(|ui| {
        for (mode, text) in [
            (SelectionMode::Ignore, "ignore"),
            (SelectionMode::Multiply, "multiply model"),
            (SelectionMode::Divide, "divide data"),
        ] {
            ui.radio_value(&mut s.selection, mode, text)
                .on_hover_text(vocabulary_hint(mode));
        }
    });
    ui.horizontal(|ui| {
        let label = ui.label("Covariance lags");
        ui.add(egui::DragValue::new(&mut s.band_lags).range(5..=40))
            .labelled_by(label.id);
    });
}

fn mask_ui(s: &mut Settings, survey: Survey, ui: &mut egui::Ui) {
    let (defs, survey_preset) = match survey {
        Survey::Boss => (mask::BOSS_SPPIXMASK, Some(Preset::BossPipeline)),
        Survey::Apogee => (mask::APOGEE_PIXMASK, Some(Preset::ApogeePipeline)),
        Survey::Generic => (mask::APOGEE_PIXMASK, None),
    };
    ui.horizontal_wrapped(|ui| {
        ui.label("pixel policy:");
        let presets: &[Preset] = match survey {
            Survey::Boss => &[Preset::BossPipeline],
            _ => &[Preset::ApogeePipeline, Preset::ApogeeBadBits],
        };
        for &p in presets {
            if ui
                .button(p.label())
                .on_hover_text(match p {
                    Preset::ApogeePipeline => {
                        "the APOGEE DRP's visit combination: bits 0-7, 14 bad; PERSIST_HIGH/MED/LOW sigma x sqrt5/sqrt4/sqrt3; SIG_SKYLINE x10; SIG_TELLURIC ignored"
                    }
                    Preset::ApogeeBadBits => "bits 0-7, 14 bad (16639), nothing inflated",
                    Preset::BossPipeline => "the SPPIXMASK bad set, nothing inflated",
                })
                .clicked()
            {
                s.apply_policy_preset(p);
            }
        }
        if survey_preset.is_none() && ui.button("bit 0 bad").clicked() {
            s.bad_bits = mask::GENERIC_BAD_BITS;
            s.inflate_bits.clear();
        }
        if ui.button("none").clicked() {
            s.bad_bits = 0;
            s.inflate_bits.clear();
        }
    });
    let current =
        pixel_policy::matching_preset(s.bad_bits, &s.inflate_bits).map_or("custom", Preset::label);
    ui.label(format!(
        "current: {current} (bad bits value {})",
        s.bad_bits
    ));
    for (level, title) in [
        (BitLevel::Bad, "bad"),
        (BitLevel::Warning, "warning"),
        (BitLevel::Info, "information"),
    ] {
        let group: Vec<_> = defs.iter().filter(|d| d.level == level).collect();
        if group.is_empty() {
            continue;
        }
        egui::CollapsingHeader::new(format!("{title} bits"))
            .id_salt(title)
            .default_open(level != BitLevel::Info)
            .show(ui, |ui| {
                egui::Grid::new(("mask-policy", title))
                    .num_columns(3)
                    .show(ui, |ui| {
                        for d in group {
                            bit_policy_row(s, ui, d);
                            ui.end_row();
                        }
                    });
            });
    }
}

/// One mask bit: its name, bad / inflate / ignore, and the inflation factor.
fn bit_policy_row(s: &mut crate::settings::Settings, ui: &mut egui::Ui, d: &mask::BitDef) {
    ui.label(format!("{} ({})", d.name, d.bit))
        .on_hover_text(d.meaning);
    let current = s.bit_action(d.bit);
    let mut choice = match current {
        BitAction::Bad => 0,
        BitAction::Inflate(_) => 1,
        BitAction::Ignore => 2,
    };
    let before = choice;
    egui::ComboBox::from_id_salt(("bit-action", d.bit))
        .width(80.0)
        .selected_text(["bad", "inflate", "ignore"][choice])
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut choice, 0, "bad");
            ui.selectable_value(&mut choice, 1, "inflate");
            ui.selectable_value(&mut choice, 2, "ignore");
        });
    if choice != before {
        let what = match choice {
            0 => BitAction::Bad,
            1 => BitAction::Inflate(if d.bit == 12 { 10.0 } else { 2.0 }),
            _ => BitAction::Ignore,
        };
        s.set_bit_action(d.bit, what);
    }
    if let BitAction::Inflate(mut f) = s.bit_action(d.bit) {
        let r = ui
            .add(
                egui::DragValue::new(&mut f)
                    .range(1.0..=1000.0)
                    .speed(0.05)
                    .prefix("sigma x "),
            )
            .on_hover_text("the sigma of pixels with this bit is multiplied by this factor");
        if r.changed() {
            s.set_bit_action(d.bit, BitAction::Inflate(f));
        }
    } else {
        ui.label("");
    }
}

fn extensions_ui(s: &mut Settings, ui: &mut egui::Ui) {
    let e = &mut s.extensions;
    ui.checkbox(&mut e.fit_shifts, "fit each visit's shift");
    let kind = match e.robust {
        None => 0,
        Some(Robust::Huber(_)) => 1,
        Some(Robust::Cauchy(_)) => 2,
        Some(Robust::SigmaClip(_)) => 3,
    };
    let threshold = match e.robust {
        Some(Robust::Huber(t) | Robust::Cauchy(t) | Robust::SigmaClip(t)) => t,
        None => 3.0,
    };
    let mut new_kind = kind;
    let names = ["off", "Huber", "Cauchy", "sigma clip"];
    egui::ComboBox::from_label("Robust")
        .selected_text(names[kind])
        .show_ui(ui, |ui| {
            for (i, n) in names.iter().enumerate() {
                ui.selectable_value(&mut new_kind, i, *n);
            }
        });
    let mut t = threshold;
    if new_kind != 0 {
        ui.add(egui::Slider::new(&mut t, 0.5..=10.0).text("threshold (sigma)"));
    }
    e.robust = match new_kind {
        1 => Some(Robust::Huber(t)),
        2 => Some(Robust::Cauchy(t)),
        3 => Some(Robust::SigmaClip(t)),
        _ => None,
    };
    let mut norm_on = e.normalization_degree.is_some();
    ui.horizontal(|ui| {
        if ui.checkbox(&mut norm_on, "normalise each visit").changed() {
            e.normalization_degree = norm_on.then_some(2);
        }
        if let Some(d) = &mut e.normalization_degree {
            let label = ui.label("degree");
            ui.add(egui::DragValue::new(d).range(0..=8))
                .labelled_by(label.id);
        }
    });
    let mut lsf = e.lsf == LsfMode::FromVisits;
    if ui.checkbox(&mut lsf, "per-visit LSF").changed() {
        e.lsf = if lsf {
            LsfMode::FromVisits
        } else {
            LsfMode::Off
        };
    }
}

fn view_ui(v: &mut ViewOptions, scores_pending: bool, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.label("Exposures");
        ui.selectable_value(&mut v.layout, ExposureLayout::Stacked, "stacked");
        ui.selectable_value(&mut v.layout, ExposureLayout::Overlaid, "overlaid");
        ui.selectable_value(&mut v.layout, ExposureLayout::Single, "single");
    });
    ui.horizontal(|ui| {
        ui.label("Frame");
        ui.selectable_value(&mut v.frame, DrawFrame::Rest, "rest");
        ui.selectable_value(&mut v.frame, DrawFrame::Observed, "observed");
    });
    ui.horizontal(|ui| {
        ui.label("Other method");
        ui.selectable_value(&mut v.compare, Compare::Overlay, "overlaid");
        ui.selectable_value(&mut v.compare, Compare::Difference, "difference");
    });
    ui.checkbox(&mut v.show_uncertainty, "uncertainty bands");
    ui.checkbox(&mut v.show_model, "model prediction per visit");
    ui.checkbox(&mut v.show_masked, "mark masked pixels");
    ui.checkbox(&mut v.show_residuals, "residuals (sigma)");
    let label = if v.leave_one_out && scores_pending {
        // Until the engine's second stage arrives the in-sample model is drawn instead.
        "leave-one-out model (computing…)"
    } else {
        "leave-one-out model"
    };
    ui.checkbox(&mut v.leave_one_out, label).on_hover_text(
        "draw each visit's model and residuals from the fit to the OTHER visits: the \
         in-sample model bends towards the visit it is compared with, so its residuals \
         understate a bad visit's misfit",
    );
    ui.checkbox(&mut v.show_reference, "truth / pipeline coadd");
}

/// What a choice is called on the command line and in Python (the core's vocabulary).
fn vocabulary_hint(name: impl std::fmt::Display) -> String {
    format!("'{name}' on the command line and in Python")
}

/// A combo box of one setting's choices, each shown by its description here and hovered with
/// its name in the core's vocabulary.
fn choice_combo<T: Copy + PartialEq + std::fmt::Display>(
    ui: &mut egui::Ui,
    label: &str,
    value: &mut T,
    choices: &[T],
    describe: fn(T) -> &'static str,
) {
    egui::ComboBox::from_label(label)
        .selected_text(describe(*value))
        .show_ui(ui, |ui| {
            for &c in choices {
                ui.selectable_value(value, c, describe(c))
                    .on_hover_text(vocabulary_hint(c));
            }
        });
}

fn mask_label(m: StandardMask) -> &'static str {
    match m {
        StandardMask::Drop => "drop before interpolating",
        StandardMask::Conservative => "conservative mask",
    }
}

fn interp_label(i: Interpolator) -> &'static str {
    match i {
        Interpolator::CubicSpline => "cubic spline",
        Interpolator::Linear => "linear",
        Interpolator::DampedSinc => "damped sinc (APOGEE)",
    }
}

fn weighting_label(w: Weighting) -> &'static str {
    match w {
        Weighting::InverseVariance => "inverse variance",
        Weighting::Uniform => "uniform",
        Weighting::ApogeePipeline => "APOGEE pipeline (continuum-normalised, row 0)",
    }
}

fn shift_label(s: ShiftSource) -> &'static str {
    match s {
        ShiftSource::Vrel => "VRAD (star rest frame)",
        ShiftSource::ApStar => "apStar velocities",
        ShiftSource::AllVisit => "allVisit velocities",
        ShiftSource::MwmVisit => "mwmVisit velocities",
        ShiftSource::MinusBc => "-BC (barycentric only)",
        ShiftSource::True => "true velocity (synthetic)",
        ShiftSource::None => "none",
    }
}

fn grid_label(g: &GridSpec) -> String {
    match g {
        GridSpec::Apogee => "APOGEE apStar".into(),
        GridSpec::Boss => "BOSS".into(),
        GridSpec::Auto => "automatic".into(),
        GridSpec::FromInput => "from input".into(),
        GridSpec::LogLinear { n, .. } => format!("log-linear, {n} px"),
    }
}
