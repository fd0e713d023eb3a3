//! Standard practice (shift, interpolate, average) as a [`Method`].

use crate::combine::caches::Caches;
use crate::combine::method::Method;
use crate::combine::standard;
use crate::combine::types::{Cancel, CombineError, MethodInfo, MethodResult, Prepared, STANDARD};
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
        prep: &Prepared,
        settings: &Settings,
        cancel: &Cancel,
        caches: &Caches,
        _warnings: &mut Vec<Warning>,
    ) -> Result<MethodResult, CombineError> {
        let Some(ss) = &settings.standard else {
            return Err(CombineError::Other("no standard-practice settings".into()));
        };
        standard::combine_standard_with_cache(
            prep,
            ss,
            settings.band_lags,
            cancel,
            &caches.standard,
        )
    }
}
