//! Small numerical functions the rest of the core shares (the bottom layer: imports nothing).

/// The upper median of the finite values (the element at index n/2 of the sorted finite values,
/// n their count), or `None` when there is none.
#[must_use]
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let k = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(k, f64::total_cmp);
    Some(*m)
}

/// The normalised sinc, sin(pi t) / (pi t), with sinc(0) = 1.
#[must_use]
pub fn sinc(t: f64) -> f64 {
    // Below 1e-9 the quotient is 1 to the last bit (pi t < 3.2e-9: sin(p) = p in floating point).
    if t.abs() < 1e-9 {
        1.0
    } else {
        let p = std::f64::consts::PI * t;
        p.sin() / p
    }
}

/// The smallest 2^a 3^b 5^c >= n (the FFT lengths rustfft handles fastest).
#[must_use]
pub fn fast_len(n: usize) -> usize {
    let mut best = n.next_power_of_two();
    let mut p5 = 1usize;
    while p5 < best {
        let mut p35 = p5;
        while p35 < best {
            let mut p = p35;
            while p < n {
                p *= 2;
            }
            best = best.min(p);
            p35 *= 3;
        }
        p5 *= 5;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_upper_middle_of_the_finite_values() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median([f64::NAN, 5.0, f64::INFINITY, 1.0]), Some(5.0));
        assert_eq!(median([f64::NAN]), None);
        assert_eq!(median(std::iter::empty()), None);
        // Against a full sort, on values with ties.
        let v: Vec<f64> = (0..101).map(|i| f64::from((i * 37) % 11)).collect();
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        assert_eq!(median(v), Some(s[50]));
    }

    #[test]
    fn sinc_matches_its_definition_and_is_one_at_zero() {
        assert_eq!(sinc(0.0), 1.0);
        for t in [1e-12, 5e-10, 1e-9 * 0.999] {
            let p = std::f64::consts::PI * t;
            assert_eq!(sinc(t), p.sin() / p, "{t}");
        }
        for k in 1..5 {
            assert!(sinc(f64::from(k)).abs() < 1e-15);
        }
        assert!((sinc(0.5) - 2.0 / std::f64::consts::PI).abs() < 1e-15);
    }

    #[test]
    fn fast_len_is_the_smallest_5_smooth_length_not_below_n() {
        // Against a plain search: the first m >= n whose only prime factors are 2, 3 and 5.
        let smooth = |mut m: usize| {
            for p in [2, 3, 5] {
                while m.is_multiple_of(p) {
                    m /= p;
                }
            }
            m == 1
        };
        for n in 1..3000 {
            let want = (n..).find(|&m| smooth(m)).unwrap_or(0);
            assert_eq!(fast_len(n), want, "n = {n}");
        }
    }
}
