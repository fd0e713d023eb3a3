//! The rayon pool each call computes on.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// A rayon pool for one call: `threads` workers (`None` = the CPUs this process may use).
pub(crate) fn pool(threads: Option<usize>) -> PyResult<rayon::ThreadPool> {
    let n = match threads {
        Some(0) => {
            return Err(PyValueError::new_err(
                "threads=0: expected a positive number of threads (or None for all CPUs)",
            ));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start {n} threads: {e}")))
}
