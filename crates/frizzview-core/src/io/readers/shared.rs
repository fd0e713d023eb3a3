//! Small pieces of arithmetic the readers share.

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
