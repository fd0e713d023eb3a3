//! Robust automatic y ranges: a plot sizes its y axis to the 0.5-99.5 % range of the finite values
//! in view, padded by half that range on each side, and values beyond are drawn clamped to it.
//! One wild pixel (a sky-line residual, an unconstrained edge pixel) then never flattens the
//! spectrum, while everything between the percentiles, and a good margin, is drawn as it is.

/// Lower and upper percentile of the values that size a plot.
pub const PERCENTILES: (f64, f64) = (0.005, 0.995);

/// Padding on each side, as a fraction of the percentile range.
pub const PAD: f64 = 0.5;

/// The padded percentile range of the finite values, or `None` when there are none.
#[must_use]
pub fn robust_limits(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    let (lo, hi) = (q(PERCENTILES.0), q(PERCENTILES.1));
    let pad = PAD * (hi - lo).max(1e-12 * lo.abs().max(hi.abs()).max(1e-300));
    Some((lo - pad, hi + pad))
}

/// `x` clamped to `limits` (NaN stays NaN: it ends a drawn run).
#[must_use]
pub fn clamp_to(x: f64, limits: (f64, f64)) -> f64 {
    if x.is_nan() {
        x
    } else {
        x.clamp(limits.0, limits.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wild_value_does_not_move_the_range() {
        let mut v: Vec<f64> = (0..1000).map(|i| 480.0 + (i % 17) as f64).collect();
        let clean = robust_limits(v.iter().copied()).expect("finite values");
        v[500] = 1e7;
        v[501] = -9000.0;
        v.push(f64::NAN);
        let wild = robust_limits(v.iter().copied()).expect("finite values");
        assert!((wild.0 - clean.0).abs() < 1.0 && (wild.1 - clean.1).abs() < 1.0);
        // 480..496 padded by half its width: 472..504.
        assert!(
            (clean.0 - 472.0).abs() < 1e-9 && (clean.1 - 504.0).abs() < 1e-9,
            "{clean:?}"
        );
        assert_eq!(clamp_to(1e7, wild), wild.1);
        assert!(clamp_to(f64::NAN, wild).is_nan());
        assert!(robust_limits([f64::NAN]).is_none());
    }
}
