//! What the APOGEE readers (apVisit, apStar, apCframe) share.

use crate::io::fits::HduDesc;

/// The pipeline's "bad" error value (apogee_drp `baderr()`).
pub const BAD_ERROR: f64 = 1.0e10;

/// The HDU called `name`, else the one at `index` when that one has no other name.
pub(crate) fn named_hdu<'a>(hdus: &'a [HduDesc], name: &str, index: usize) -> Option<&'a HduDesc> {
    hdus.iter()
        .skip(1)
        .find(|d| d.name.eq_ignore_ascii_case(name))
        .or_else(|| {
            hdus.get(index)
                .filter(|d| d.name.is_empty() || d.name.eq_ignore_ascii_case(name))
        })
}
