//! The [`Method`] trait: what the pipeline needs of a combination method.

use super::caches::Caches;
use super::types::{Cancel, CombineError, MethodInfo, MethodResult, Prepared};
use super::warning::Warning;
use crate::settings::Settings;

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

    /// Run it. `warnings` collects what the user should hear (kept when the method fails);
    /// `caches` are the memos the engine keeps between combinations. The pipeline applies
    /// `crate::combine::constrained` to the result.
    fn run(
        &self,
        prep: &Prepared,
        settings: &Settings,
        cancel: &Cancel,
        caches: &Caches,
        warnings: &mut Vec<Warning>,
    ) -> Result<MethodResult, CombineError>;
}
