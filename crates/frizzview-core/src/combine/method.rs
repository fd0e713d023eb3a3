//! The [`Method`] trait: what the pipeline needs of a combination method.

use super::caches::Caches;
use super::types::{Cancel, CombineError, MethodInfo, MethodResult, Prepared};
use super::warning::Warning;
use crate::settings::Settings;

/// What every method gets: the prepared visits, the settings, the cancellation flag and the
/// memos the engine keeps between combinations.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The visits made ready ([`crate::combine::prepare`]).
    pub prep: &'a Prepared,
    /// The settings of the combination.
    pub settings: &'a Settings,
    /// Stop when this is set.
    pub cancel: &'a Cancel,
    /// Memos kept between combinations.
    pub caches: &'a Caches,
}

/// A combination method: prepared visits in, one result on the output grid out.
///
/// A method is a module implementing this trait plus one line in [`crate::combine::METHODS`];
/// the pipeline runs every registered method the settings ask for (in parallel), stores its
/// outcome under its name ([`crate::combine::Combined::result`]) and the exports write it with
/// its prefix.
pub trait Method: Send + Sync + std::fmt::Debug {
    /// Its name, label and export prefix.
    fn info(&self) -> MethodInfo;

    /// Whether `settings` ask for it.
    fn wanted(&self, settings: &Settings) -> bool;

    /// Run it. `warnings` collects what the user should hear (kept when the method fails). The
    /// pipeline applies `crate::combine::constrained` to the result.
    fn run(&self, x: Inputs<'_>, warnings: &mut Vec<Warning>)
    -> Result<MethodResult, CombineError>;

    /// Whether it scores each visit against a fit to the other visits
    /// ([`Self::leave_one_out`]). Default: no.
    fn scores_visits(&self) -> bool {
        false
    }

    /// The leave-one-visit-out stage, run after every method is done (a window shows the fit
    /// first, and a newer request can cancel this): fill `VisitFit::loo_*` of this method's own
    /// result `r`. Called only when [`Self::scores_visits`]; a failure other than cancellation
    /// becomes a warning, never the loss of the fit. Default: nothing to do.
    fn leave_one_out(&self, x: Inputs<'_>, r: &mut MethodResult) -> Result<(), CombineError> {
        let _ = (x, r);
        Ok(())
    }
}
