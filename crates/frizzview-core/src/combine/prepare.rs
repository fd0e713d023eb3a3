//! [`prepare`]: a [`Dataset`] and [`Settings`] made into per-visit rest-frame pixels with
//! weights ([`Prepared`]), the input of every method.

use rayon::prelude::*;
use std::sync::Arc;

use super::types::{CombineError, Prepared, PreparedVisit};
use super::warning::Warning;
use crate::model::{Dataset, Visit, shift_from_velocity};
use crate::settings::{MIN_SELECTION, SelectionMode, Settings, ShiftSource, Weighting};

/// What [`prepare`] does to one pixel's flux for the selection function S.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SelectionStep {
    /// Nothing: ignore mode, or a flux already in the frame the mode compares in.
    Keep,
    /// Multiply mode on a flux the pipeline divided by S: undo the division so that the model
    /// times S faces the data as observed, y = flux S, sigma_y = sigma S.
    Times(f64),
    /// Divide mode on a flux not divided by S: y = flux / S, sigma_y = sigma / S.
    Over(f64),
    /// S too small (or not finite) to use: the pixel is masked.
    Unusable,
}

/// S as multiply mode uses it (the model's factor `PreparedVisit::s`): negative and non-finite
/// values become 0.
fn clamped_selection(si: f64) -> f64 {
    if si.is_finite() { si.max(0.0) } else { 0.0 }
}

/// The one rule for [`SelectionStep`], shared by [`prepare`] and [`file_frame_factor`].
fn selection_step(mode: SelectionMode, divided: bool, si: f64) -> SelectionStep {
    match mode {
        SelectionMode::Multiply if divided => {
            let si = clamped_selection(si);
            if si < MIN_SELECTION {
                SelectionStep::Unusable
            } else {
                SelectionStep::Times(si)
            }
        }
        SelectionMode::Divide if !divided => {
            if si.is_finite() && si >= MIN_SELECTION {
                SelectionStep::Over(si)
            } else {
                SelectionStep::Unusable
            }
        }
        _ => SelectionStep::Keep,
    }
}

/// Per pixel of `visit`, the factor `c` that takes the frame the fit compares in
/// ([`PreparedVisit::y`], and the predictions S f of [`VisitFit::prediction`]) to the frame of
/// the visit's own flux array: flux = c y and sigma = c sigma_y, as [`prepare`] converts them.
/// It is 1 unless `prepare` changed the flux for the selection function: 1/S in multiply mode on
/// a flux the pipeline divided by S (APOGEE's telluric-corrected FLUX), S in divide mode on a
/// flux it did not; NaN where the selection is too small to use (`prepare` masks the pixel).
/// A display of a visit beside its model draws the prediction times `c` over the file's flux.
#[must_use]
pub fn file_frame_factor(visit: &Visit, settings: &Settings) -> Vec<f64> {
    (0..visit.len())
        .map(|p| file_frame_factor_at(visit, settings, p))
        .collect()
}

/// [`file_frame_factor`] of pixel `p` alone (e.g. for a hover readout).
#[must_use]
pub fn file_frame_factor_at(visit: &Visit, settings: &Settings, p: usize) -> f64 {
    let Some(&si) = visit.selection().and_then(|sel| sel.get(p)) else {
        return 1.0;
    };
    match selection_step(settings.selection, visit.flux_divided_by_selection(), si) {
        SelectionStep::Keep => 1.0,
        SelectionStep::Times(si) => 1.0 / si,
        SelectionStep::Over(si) => si,
        SelectionStep::Unusable => f64::NAN,
    }
}

/// Build the rest-frame, weighted pixels for a dataset and settings.
pub fn prepare(data: &Dataset, settings: &Settings) -> Result<Prepared, CombineError> {
    settings.validate()?;
    if data.visits.is_empty() {
        return Err(CombineError::NoVisits);
    }
    let grid = settings.resolve_grid(data)?;
    let velocity = crate::velocity::check(data, settings).map(Arc::new);
    // Visits are independent: prepared in parallel, warnings kept in visit order.
    let (visits, per_visit_warnings): (Vec<_>, Vec<_>) = data
        .visits
        .par_iter()
        .enumerate()
        .map(|(index, visit)| {
            let mut w = Vec::new();
            let checked = velocity.as_ref().and_then(|c| c.visits.get(index));
            let pv = prepare_visit(index, visit, settings, checked, &mut w);
            (pv, w)
        })
        .unzip();
    // What reading found (visits a companion file does not list, visits of another object...)
    // comes first: it is known before any fit.
    let mut warnings: Vec<Warning> = data
        .load_warnings
        .iter()
        .map(|w| Warning::Other(w.clone()))
        .collect();
    warnings.extend(per_visit_warnings.into_iter().flatten());
    if let Some(c) = velocity.as_ref()
        && let Some((external, rest)) = c.zero_point_replaced
    {
        // The reference the frame was measured against, by its short name (a laboratory line
        // list, or a model template for cool stars).
        let against = match &c.rest_frame {
            crate::velocity::RestFrame::Measured { reference, .. } => {
                reference.split(':').next().unwrap_or(reference)
            }
            crate::velocity::RestFrame::Unverified(_) => "shipped rest-frame reference",
        };
        warnings.push(Warning::RestFrame(format!(
            "the files' velocities share a zero point {external:+.2} km/s that the spectra's own \
             lines contradict ({rest:+.2} km/s against the {against}): every visit's velocity is \
             off by {:.1} km/s; the rest frame of the lines is used",
            external - rest
        )));
    }
    if let Some(w) = velocity.as_deref().and_then(crate::velocity::frame_warning) {
        warnings.push(Warning::RestFrame(w));
    }
    if let Some(st) = velocity.as_ref().and_then(|c| c.star.as_ref())
        && st.rv_variable
    {
        warnings.push(Warning::RvVariable {
            scatter_kms: st.scatter_kms,
            chi2: st.chi2,
            dof: st.dof,
        });
    }
    let n_included = visits.iter().filter(|v| v.included).count();
    if n_included == 1 && data.visits.len() > 1 {
        warnings.push(Warning::SingleVisit);
    }
    let n_bc = visits
        .iter()
        .filter(|v| v.included && v.v_source == ShiftSource::MinusBc.label())
        .count();
    if n_bc > 1 && !settings.extensions.fit_shifts {
        warnings.push(Warning::StarVelocityUnknown { n: n_bc });
    }
    // Resampled visits: flagged by their reader (`VisitMeta::resampled`; apStar rows also carry
    // the card naming where they came from).
    let resampled: Vec<String> = visits
        .iter()
        .filter(|v| v.included)
        .filter_map(|v| {
            let card = v
                .visit
                .meta
                .header
                .iter()
                .find(|(k, _)| k == crate::model::RESAMPLED_CARD)
                .map(|(_, x)| x.clone());
            match card {
                Some(c) => Some(c),
                None if v.visit.meta.resampled => Some(v.visit.meta.name.clone()),
                None => None,
            }
        })
        .collect();
    if let Some(first) = resampled.first() {
        warnings.push(Warning::Resampled {
            n: resampled.len(),
            example: first.clone(),
        });
    }
    Ok(Prepared {
        grid,
        visits,
        warnings,
        inflate_bits: settings.inflate_bits.clone(),
        velocity,
    })
}

/// One visit, shifted by the velocity of the shift rule ([`crate::velocity::rule::choose`]);
/// `checked` is the velocity check's entry when the settings check external velocities.
fn prepare_visit(
    index: usize,
    visit: &Arc<Visit>,
    settings: &Settings,
    checked: Option<&crate::velocity::VisitVelocity>,
    warnings: &mut Vec<Warning>,
) -> PreparedVisit {
    use crate::velocity::rule::{VelocityChoice, choose};
    let vs = settings.visit(index);
    let name = visit.meta.name.clone();
    let (v_kms, v_source) = match choose(settings, index, &visit.meta, checked) {
        VelocityChoice::Manual(v) => (v, "manual".to_owned()),
        VelocityChoice::Checked(c) => {
            let source_name = settings.shift.label().to_owned();
            match (c.status, c.external_kms) {
                (crate::velocity::VelocityStatus::Measured, Some(e)) if c.replaced => {
                    warnings.push(Warning::VelocityReplaced {
                        visit: name.clone(),
                        source_name,
                        external_kms: e,
                        data_kms: c.data_kms,
                        err_kms: c.err_kms,
                    });
                }
                (crate::velocity::VelocityStatus::TooFaint, Some(e)) => {
                    warnings.push(Warning::VelocityUnchecked {
                        visit: name.clone(),
                        source_name,
                        external_kms: e,
                    });
                }
                (crate::velocity::VelocityStatus::TooFaint, None) => {
                    warnings.push(Warning::MissingVelocity {
                        visit: name.clone(),
                        source_name,
                    });
                }
                _ => {}
            }
            (c.used_kms, c.used_source.clone())
        }
        other @ (VelocityChoice::Source(_) | VelocityChoice::Missing) => match other.kms() {
            Some(v) => {
                // Survey files say which card or column gave the velocity.
                let kind = match settings.shift {
                    ShiftSource::ApStar => Some(crate::model::VelocityKind::ApStar),
                    ShiftSource::AllVisit => Some(crate::model::VelocityKind::AllVisit),
                    ShiftSource::MwmVisit => Some(crate::model::VelocityKind::MwmVisit),
                    _ => None,
                };
                let from = kind.and_then(|k| {
                    let card = format!("FV_V_{k:?}").to_ascii_uppercase();
                    visit.meta.header.iter().find(|(c, _)| *c == card)
                });
                match from {
                    Some((_, x)) => (v, format!("{}: {x}", settings.shift.label())),
                    None => (v, settings.shift.label().to_owned()),
                }
            }
            None => {
                warnings.push(Warning::MissingVelocity {
                    visit: name.clone(),
                    source_name: settings.shift.label().to_owned(),
                });
                (0.0, "missing".to_owned())
            }
        },
    };
    let dx = shift_from_velocity(v_kms);
    let n = visit.len();
    let x_rest = visit.ln_wave().iter().map(|x| x - dx).collect();
    let mut masked = vec![false; n];
    let mut y = visit.flux().to_vec();
    let mut ivar = visit.ivar().to_vec();
    let mut s = vec![1.0; n];
    let bad_bits = settings.bad_bits;
    for i in 0..n {
        masked[i] = visit.bad()[i] || (visit.flags()[i] & bad_bits) != 0 || ivar[i] <= 0.0;
    }
    // Pixel policy: inflating bits multiply sigma (divide ivar by the factor squared), for every
    // method alike (standard practice and the shift fit read this ivar too).
    if !settings.inflate_bits.is_empty() {
        for i in 0..n {
            if !masked[i] {
                let f = crate::model::pixel_policy::sigma_factor(
                    visit.flags()[i],
                    &settings.inflate_bits,
                );
                if f != 1.0 {
                    ivar[i] /= f * f;
                }
            }
        }
    }
    if visit.n_invalid() > 0 {
        warnings.push(Warning::InvalidPixels {
            visit: name.clone(),
            n: visit.n_invalid(),
        });
    }
    if let Some(sel) = visit.selection() {
        let divided = visit.flux_divided_by_selection();
        let mut n_tiny = 0;
        for i in 0..n {
            match selection_step(settings.selection, divided, sel[i]) {
                SelectionStep::Keep => {}
                SelectionStep::Times(si) => {
                    y[i] *= si;
                    ivar[i] /= si * si;
                }
                SelectionStep::Over(si) => {
                    y[i] /= si;
                    ivar[i] *= si * si;
                }
                SelectionStep::Unusable => {
                    masked[i] = true;
                    ivar[i] = 0.0;
                    if settings.selection == SelectionMode::Divide {
                        y[i] = 0.0;
                    }
                    n_tiny += 1;
                }
            }
            if settings.selection == SelectionMode::Multiply {
                s[i] = clamped_selection(sel[i]);
            }
        }
        if n_tiny > 0 {
            warnings.push(Warning::TinySelection {
                visit: name.clone(),
                n: n_tiny,
                min: MIN_SELECTION,
            });
        }
    }
    if settings.selection != SelectionMode::Ignore && visit.selection().is_none() {
        warnings.push(Warning::NoSelection {
            visit: name.clone(),
        });
    }
    for i in 0..n {
        if masked[i] {
            ivar[i] = 0.0;
        }
    }
    let included = vs.include && vs.weight > 0.0;
    let w = ivar
        .iter()
        .zip(&masked)
        .map(|(&iv, &m)| {
            if !included || m {
                0.0
            } else {
                match settings.weighting {
                    // The pipeline's row-0 flavour is standard practice's; the forward
                    // model weights by inverse variance under it.
                    Weighting::InverseVariance | Weighting::ApogeePipeline => iv * vs.weight,
                    Weighting::Uniform => vs.weight,
                }
            }
        })
        .collect::<Vec<f64>>();
    let pv = PreparedVisit {
        visit: Arc::clone(visit),
        index,
        included,
        v_kms,
        v_source,
        dx,
        x_rest,
        y,
        w,
        s,
        masked,
        ivar,
        lsf_sigma: 0.0,
        weight: vs.weight,
    };
    if included && pv.n_used() == 0 {
        warnings.push(Warning::NoUsablePixels { visit: name });
    }
    pv
}
