//! The orchestration: [`combine_staged`] prepares the data, runs the methods the settings ask
//! for, collects their warnings and fills in the leave-one-visit-out scores.

use super::prepare::prepare;
use super::quality::refresh_fit_quality;
use super::types::{Cancel, CombineError, Combined, MethodResult, Prepared, VisitUsed};
use super::warning::Warning;
use super::{constrained, extensions, local, standard};
use crate::model::Dataset;
use crate::settings::Settings;

/// The memos the methods re-use between combinations: the local basis' kernel evaluations and
/// normal-equation sums, and standard practice's stencils and pieces. The engine owns one (so
/// the window's live recomputations re-use earlier work, and the teaching panel's engine does not
/// evict the main window's entries); [`combine`] makes a fresh one for one-shot use.
#[derive(Debug, Default)]
pub struct Caches {
    /// Local-basis kernel evaluations and sums.
    pub basis: local::BasisCache,
    /// Standard-practice stencils and pieces.
    pub standard: standard::StandardCache,
}

impl Caches {
    /// Empty caches with the default budgets.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held by all of them.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.basis.bytes() + self.standard.bytes()
    }

    /// Drop everything.
    pub fn clear(&self) {
        self.basis.clear();
        self.standard.clear();
    }
}

/// Run the methods the settings ask for, with fresh [`Caches`] (one-shot use: the command line,
/// tests); see [`combine_with`].
pub fn combine(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
) -> Result<Combined, CombineError> {
    combine_with(data, settings, cancel, &Caches::new())
}

/// Run the methods the settings ask for, re-using `caches`.
///
/// Each method gives its own outcome: a method that fails leaves its result `None` and its error
/// in [`Combined::forward_error`] / [`Combined::standard_error`], and the other method's result
/// is kept. `Err` only when there is nothing to show: preparation failed, the request was
/// cancelled, or every method asked for failed (the single method's error; both errors in one
/// message when both failed).
pub fn combine_with(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
    caches: &Caches,
) -> Result<Combined, CombineError> {
    combine_staged(data, settings, cancel, caches, &mut |_| {})
}

/// [`combine_with`] in two stages, for live use: `first` receives the combination as soon as
/// both methods are done, with the leave-one-visit-out scores still to come
/// ([`Combined::loo_pending`]); the complete result (scores filled in) is then returned. The
/// scores cost one banded factorisation per visit, many times the fit itself with tens of visits,
/// so a window shows the fit at once and a newer request can cancel the scoring. `first` is not
/// called when there is nothing to score (no forward-model result).
pub fn combine_staged(
    data: &Dataset,
    settings: &Settings,
    cancel: &Cancel,
    caches: &Caches,
    first: &mut dyn FnMut(&Combined),
) -> Result<Combined, CombineError> {
    let prep = prepare(data, settings)?;
    if prep.included().all(|v| v.n_used() == 0) {
        return Err(CombineError::NoUsablePixels);
    }
    let mut warnings = prep.warnings.clone();
    // The two methods run side by side: each is parallel inside, but both have serial parts
    // (the banded factorisation, the spline solves) that the other can overlap.
    let run_forward = || -> Result<(MethodOutcome, Vec<Warning>), CombineError> {
        let Some(fs) = &settings.forward else {
            return Ok(((None, None), Vec::new()));
        };
        let mut w = Vec::new();
        match extensions::fit_forward(&prep, fs, settings, cancel, &mut w, &caches.basis) {
            Ok(mut r) => {
                constrained::apply(&mut r);
                Ok(((Some(r), None), w))
            }
            Err(CombineError::Cancelled) => Err(CombineError::Cancelled),
            Err(e) => Ok(((None, Some(e)), w)),
        }
    };
    let run_standard = || -> Result<MethodOutcome, CombineError> {
        let Some(ss) = &settings.standard else {
            return Ok((None, None));
        };
        match standard::combine_standard_with_cache(
            &prep,
            ss,
            settings.band_lags,
            cancel,
            &caches.standard,
        ) {
            Ok(mut r) => {
                constrained::apply(&mut r);
                Ok((Some(r), None))
            }
            Err(CombineError::Cancelled) => Err(CombineError::Cancelled),
            Err(e) => Ok((None, Some(e))),
        }
    };
    let (f, st) = rayon::join(run_forward, run_standard);
    let ((forward, forward_error), forward_warnings) = f?;
    let (standard, standard_error) = st?;
    warnings.extend(forward_warnings);
    cancel.check()?;
    let failed_all = (settings.forward.is_some() || settings.standard.is_some())
        && forward.is_none()
        && standard.is_none();
    if failed_all {
        return Err(match (forward_error, standard_error) {
            (Some(f), Some(s)) => {
                CombineError::Other(format!("forward model: {f}; standard practice: {s}"))
            }
            (Some(e), None) | (None, Some(e)) => e,
            (None, None) => CombineError::Other("no method produced a result".into()),
        });
    }
    let visits = prep
        .visits
        .iter()
        .map(|v| VisitUsed {
            name: v.visit.meta.name.clone(),
            v_kms: v.v_kms,
            v_source: v.v_source.clone(),
            included: v.included,
            weight: settings.visit(v.index).weight,
            n_used: v.n_used(),
            n_bad: v.masked.iter().filter(|&&m| m).count(),
        })
        .collect();
    // Fitted shifts start from the checked velocities, whose zero point the check fixed (and
    // whose error it knows): the fit's own estimate assumes it started from the headers.
    let mut forward = forward;
    if let (Some(r), Some(vc)) = (forward.as_mut(), prep.velocity.as_ref())
        && let Some(z) = r.velocity_zero_point.as_mut()
    {
        z.err_kms = vc.zero_point.err_kms;
        z.name = format!("{}; zero point: {}", z.name, vc.zero_point.how);
    }
    let mut combined = Combined {
        grid: prep.grid.clone(),
        forward,
        forward_error,
        standard,
        standard_error,
        visits,
        warnings,
        settings: settings.clone(),
        loo_pending: false,
        velocity: prep.velocity.clone(),
    };
    if combined.forward.is_some() {
        combined.loo_pending = true;
        refresh_fit_quality(&mut combined);
        first(&combined);
        fill_leave_one_out(&prep, &mut combined, cancel, &caches.basis)?;
    }
    refresh_fit_quality(&mut combined);
    Ok(combined)
}

/// A method's result, or why it failed (the other method's result is kept either way).
type MethodOutcome = (Option<MethodResult>, Option<CombineError>);

/// Fill in the leave-one-visit-out scores of a result delivered with
/// [`Combined::loo_pending`] (e.g. exported before the second stage arrived): the same scores
/// [`combine_with`] computes, from its own dataset and settings. Does nothing when none are
/// pending.
pub fn complete_leave_one_out(
    data: &Dataset,
    combined: &mut Combined,
    cancel: &Cancel,
    caches: &Caches,
) -> Result<(), CombineError> {
    if !combined.loo_pending {
        return Ok(());
    }
    let prep = prepare(data, &combined.settings)?;
    fill_leave_one_out(&prep, combined, cancel, &caches.basis)?;
    refresh_fit_quality(combined);
    Ok(())
}

/// The second stage: the scores into the forward result. Their failure is a warning, never the
/// loss of the fit itself; only cancellation is an error.
fn fill_leave_one_out(
    prep: &Prepared,
    combined: &mut Combined,
    cancel: &Cancel,
    cache: &local::BasisCache,
) -> Result<(), CombineError> {
    let Combined {
        forward: Some(r),
        settings,
        warnings,
        ..
    } = combined
    else {
        combined.loo_pending = false;
        return Ok(());
    };
    match add_leave_one_out(prep, settings, r, cancel, cache) {
        Ok(()) => {}
        Err(CombineError::Cancelled) => return Err(CombineError::Cancelled),
        Err(e) => warnings.push(Warning::Other(format!("leave-one-out scores: {e}"))),
    }
    combined.loo_pending = false;
    Ok(())
}

/// Fill the leave-one-visit-out scores of a forward-model result.
///
/// Always by the local basis ([`local::leave_one_out`]): with it, removing a visit is a
/// subtraction of its cached normal-equation sums and one banded solve, cheap enough to run on
/// every live recomputation. For a Fourier-basis fit the same local-basis scores are used (and
/// `loo_basis` says so): an exact Fourier refit would cost one full solve per visit, and the two
/// bases fit the same pixels with nearly the same function space (0.13-0.19 sigma RMS apart on
/// the paper's test data), which is all a ranking of visits by misfit needs. The scores use the
/// prepared pixels of the combination (header or manual shifts, the pixel mask and weights), not
/// the reweighted or shifted ones of extension rounds. Excluded visits are already predicted out
/// of sample by the full fit: their score is their chi^2 against it.
fn add_leave_one_out(
    prep: &Prepared,
    settings: &Settings,
    r: &mut MethodResult,
    cancel: &Cancel,
    cache: &local::BasisCache,
) -> Result<(), CombineError> {
    let fourier = settings
        .forward
        .as_ref()
        .is_some_and(|fs| fs.basis == crate::settings::Basis::Fourier);
    let loo = local::leave_one_out(prep, cache, &local::LocalOptions::default(), cancel)?;
    for (fit, l) in r.visits.iter_mut().zip(loo) {
        match l {
            Some(l) => {
                fit.loo_prediction = l.prediction;
                fit.loo_chi2 = l.chi2;
                fit.loo_n_used = l.n_used;
                fit.loo_chi2_nu = l.chi2_nu;
                fit.loo_n_unconstrained = l.n_unconstrained;
            }
            None => {
                fit.loo_prediction.clone_from(&fit.prediction);
                fit.loo_chi2 = fit.chi2;
                fit.loo_n_used = fit.n_used;
                fit.loo_chi2_nu = fit.chi2_nu;
            }
        }
    }
    if fourier {
        r.loo_basis = Some("local basis".into());
    }
    Ok(())
}
