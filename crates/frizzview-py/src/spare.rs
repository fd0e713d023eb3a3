//! One spare buffer for the dense C*, kept between calls.
//!
//! The dense C* of a 2000-pixel output is 32 MB. Freshly allocated, each of its 7800 pages is
//! faulted in on first write; on a virtual machine that hands freed memory back to its host
//! (free-page reporting, as on this project's Firecracker VMs), those faults cost more than the
//! arithmetic, and most when another library has just freed gigabytes (frizzle does, on every
//! call). So the array handed to numpy is owned by a small Python object ([`Owner`]) whose
//! destruction gives the memory back here instead of to the allocator, and the next call writes
//! into pages that are already resident. One buffer at most, and none above
//! [`MAX_SPARE_BYTES`]: a finished case-b C* (578 MB) is freed as usual.
//!
//! The one module of this crate with `unsafe` code: numpy's hand-over of memory owned by a
//! Python object (`PyArray2::borrow_from_array`), whose safety rests on [`Owner`] below.
#![allow(unsafe_code)]

use std::sync::Mutex;

use ndarray::Array2;
use numpy::PyArray2;
use pyo3::prelude::*;

/// The largest buffer kept for the next call.
pub const MAX_SPARE_BYTES: usize = 128 << 20;

static SPARE: Mutex<Option<Vec<f64>>> = Mutex::new(None);

/// An `n x n` array to be overwritten entirely: the spare when it is large enough (and not more
/// than twice the size asked for), else a new allocation. Its contents are unspecified.
pub fn take(n: usize) -> Array2<f64> {
    let len = n * n;
    let reused = SPARE
        .lock()
        .ok()
        .and_then(|mut s| s.take())
        .filter(|v| v.capacity() >= len && v.capacity() <= 2 * len.max(1));
    let v = match reused {
        // Only the length changes (the capacity suffices); the old entries are overwritten.
        Some(mut v) if v.len() >= len => {
            v.truncate(len);
            v
        }
        Some(mut v) => {
            v.resize(len, 0.0);
            v
        }
        // calloc: zero pages from the system, no fill on this thread.
        None => vec![0.0; len],
    };
    Array2::from_shape_vec((n, n), v).unwrap_or_else(|_| Array2::zeros((n, n)))
}

/// Keeps the memory of a numpy array alive; gives it back as the spare when numpy frees it.
#[pyclass(module = "frizzview._core", frozen)]
pub struct Owner {
    data: Vec<f64>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.data);
        if v.capacity() * std::mem::size_of::<f64>() <= MAX_SPARE_BYTES
            && let Ok(mut s) = SPARE.lock()
        {
            *s = Some(v);
        }
    }
}

/// `a` as a numpy array without a copy; when it fits [`MAX_SPARE_BYTES`], its memory becomes
/// the spare once numpy frees the array.
pub fn to_numpy(py: Python<'_>, a: Array2<f64>) -> PyResult<Bound<'_, PyArray2<f64>>> {
    let dim = a.dim();
    if !a.is_standard_layout() || a.len() * std::mem::size_of::<f64>() > MAX_SPARE_BYTES {
        return Ok(PyArray2::from_owned_array(py, a));
    }
    let (data, offset) = a.into_raw_vec_and_offset();
    if offset.unwrap_or(0) != 0 || data.len() != dim.0 * dim.1 {
        let a = Array2::from_shape_vec(dim, data)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        return Ok(PyArray2::from_owned_array(py, a));
    }
    // Moving the Vec into `Owner` does not move its heap buffer.
    let ptr = data.as_ptr();
    let owner = Bound::new(py, Owner { data })?;
    // SAFETY: `ptr` points at dim.0 * dim.1 initialised f64s owned by `owner`, which the new
    // array keeps alive as its base. Rust never reads, writes or reallocates them while `owner`
    // lives (numpy may write them: the array is writeable, as frizzle's censoring needs).
    unsafe {
        let view = ndarray::ArrayView2::from_shape_ptr(dim, ptr);
        Ok(PyArray2::borrow_from_array(&view, owner.into_any()))
    }
}
