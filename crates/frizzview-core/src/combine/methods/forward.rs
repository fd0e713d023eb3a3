//! The forward model (Frizzle, with the extensions the settings ask for) as a [`Method`].

use crate::combine::caches::Caches;
use crate::combine::extensions;
use crate::combine::method::Method;
use crate::combine::types::{Cancel, CombineError, FORWARD, MethodInfo, MethodResult, Prepared};
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
        prep: &Prepared,
        settings: &Settings,
        cancel: &Cancel,
        caches: &Caches,
        warnings: &mut Vec<Warning>,
    ) -> Result<MethodResult, CombineError> {
        let Some(fs) = &settings.forward else {
            return Err(CombineError::Other("no forward-model settings".into()));
        };
        extensions::fit_forward(prep, fs, settings, cancel, warnings, &caches.basis)
    }
}
