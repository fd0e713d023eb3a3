//! The rayon pool each call computes on.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::pools;

/// A rayon pool for one call: `threads` workers (`None` = the CPUs this process may use).
///
/// The pool of the previous call with the same thread count is reused when no other call is
/// using it (see [`pools`]); a call made while another runs gets a pool of its own, so
/// concurrent calls never share workers.
pub(crate) fn pool(threads: Option<usize>) -> PyResult<pools::Lease> {
    let n = match threads {
        Some(0) => {
            return Err(PyValueError::new_err(
                "threads=0: expected a positive number of threads (or None for all CPUs)",
            ));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    pools::lease(n).map_err(|e| PyRuntimeError::new_err(format!("cannot start {n} threads: {e}")))
}
