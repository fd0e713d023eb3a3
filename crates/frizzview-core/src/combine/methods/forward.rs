//! The forward model (Frizzle, with the extensions the settings ask for) as a [`Method`].

use crate::combine::extensions;
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
}
