//! [`Cancel`]: a cancellation flag shared between a requester and a running job (a spectral
//! combination, an image combination, anything the background worker runs). It knows no job's
//! types: [`Cancel::check`] returns [`Cancelled`], which each job's error converts from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A cancellation flag shared between a requester and a running job.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

/// The error of a job that was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

impl Cancel {
    /// A fresh, not-cancelled flag.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the computation to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether cancellation was requested.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` if cancellation was requested (`?` turns it into the job's own error,
    /// e.g. `CombineError::Cancelled`).
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}
