//! The forward model (Frizzle, with the extensions the settings ask for) as a [`Method`].

use crate::combine::extensions;
use crate::combine::local;
use crate::combine::method::{Inputs, Method};
use crate::combine::types::{CombineError, FORWARD, MethodInfo, MethodResult};
use crate::combine::warning::Warning;
use crate::settings::Settings;

/// The forward model.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardModel;

impl Method for ForwardModel {
    fn info(&self) -> MethodInfo {
        FORWARD
    }

    fn wanted(&self, settings: &Settings) -> bool {
        settings.forward.is_some()
    }

    fn run(
        &self,
        x: Inputs<'_>,
        warnings: &mut Vec<Warning>,
    ) -> Result<MethodResult, CombineError> {
        let Some(fs) = &x.settings.forward else {
            return Err(CombineError::Other("no forward-model settings".into()));
        };
        extensions::fit_forward(x.prep, fs, x.settings, x.cancel, warnings, &x.caches.basis)
    }

    fn scores_visits(&self) -> bool {
        true
    }

    /// Always by the local basis ([`local::leave_one_out`]): with it, removing a visit is a
    /// subtraction of its cached normal-equation sums and one banded solve, cheap enough to run on
    /// every live recomputation. For a Fourier-basis fit the same local-basis scores are used (and
    /// `loo_basis` says so): an exact Fourier refit would cost one full solve per visit, and the
    /// two bases fit the same pixels with nearly the same function space (0.13-0.19 sigma RMS
    /// apart on the paper's test data), which is all a ranking of visits by misfit needs. The
    /// scores use the prepared pixels of the combination (header or manual shifts, the pixel mask
    /// and weights), not the reweighted or shifted ones of extension rounds. Excluded visits are
    /// already predicted out of sample by the full fit: their score is their chi^2 against it.
    fn leave_one_out(&self, x: Inputs<'_>, r: &mut MethodResult) -> Result<(), CombineError> {
        let other_basis = x
            .settings
            .forward
            .as_ref()
            .is_some_and(|fs| !fs.basis.is_local());
        let loo = local::leave_one_out(
            x.prep,
            &x.caches.basis,
            &local::LocalOptions::default(),
            x.cancel,
        )?;
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
        if other_basis {
            r.loo_basis = Some("local basis".into());
        }
        Ok(())
    }
}
