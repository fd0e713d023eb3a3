//! Standard practice (shift, interpolate, average) as a [`Method`].

use crate::combine::method::{Inputs, Method};
use crate::combine::standard;
use crate::combine::types::{CombineError, MethodInfo, MethodResult, STANDARD};
use crate::combine::warning::Warning;
use crate::settings::Settings;

/// Standard practice.
#[derive(Clone, Copy, Debug, Default)]
pub struct StandardPractice;

impl Method for StandardPractice {
    fn info(&self) -> MethodInfo {
        STANDARD
    }

    fn wanted(&self, settings: &Settings) -> bool {
        settings.standard.is_some()
    }

    fn run(
        &self,
        x: Inputs<'_>,
        _warnings: &mut Vec<Warning>,
    ) -> Result<MethodResult, CombineError> {
        let Some(ss) = &x.settings.standard else {
            return Err(CombineError::Other("no standard-practice settings".into()));
        };
        let lags = x.settings.band_lags;
        standard::combine_standard_with_cache(x.prep, ss, lags, x.cancel, &x.caches.standard)
    }
}
