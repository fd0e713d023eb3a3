//! Small pieces of arithmetic the readers share.

/// The median of the finite values (the upper one of an even count), `None` when there is none.
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Wavelengths in Angstrom from log10 Angstrom; a value that gives no finite positive wavelength
/// is refused with `bad(row, value)`.
pub(crate) fn wave_from_log10(
    loglam: &[f64],
    bad: impl Fn(usize, f64) -> crate::io::error::LoadError,
) -> Result<Vec<f64>, crate::io::error::LoadError> {
    let mut wave = Vec::with_capacity(loglam.len());
    for (i, &l) in loglam.iter().enumerate() {
        let w = 10f64.powf(l);
        if !(l.is_finite() && w.is_finite() && w > 0.0) {
            return Err(bad(i, l));
        }
        wave.push(w);
    }
    Ok(wave)
}
