//! Censoring (which output pixels have no data) and flag propagation, shared by every basis.
//!
//! Two rule sets:
//!
//! - [`Rule::Compat`] reproduces frizzle 0.2.8 (`frizzle/__init__.py:frizzle` censoring and
//!   `frizzle/utils.py:combine_flags`, PyPI 0.2.8): every input pixel of
//!   the included visits counts as "data", masked ones included; output pixel j has no data when
//!   the nearest input position is farther than the *next* output spacing `x*[j+1] - x*[j]`; the
//!   last output pixel is never censored. A flag bit reaches output pixel j when the nearest input
//!   pixel carrying that bit is within the next output spacing (`<=`); the last pixel never gets
//!   flags.
//! - [`Rule::Fixed`] (the default): only pixels with positive weight count as data, and the
//!   spacing rule is symmetric: a neighbour on the left is compared with the left output spacing,
//!   one on the right with the right spacing, and both ends are treated like the interior (the
//!   only available spacing is used there).
//!
//! Everything works on sorted position arrays with binary search (no KD-trees).

use super::types::Prepared;

/// Which censoring and flag-propagation rules to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// frizzle 0.2.8's rules, defects included.
    Compat,
    /// The fixed rules (default).
    Fixed,
}

/// The distance from `x` to the nearest element of the sorted `xs` on each side:
/// `(left, right)` with `left = x - xs[i] >= 0` for the largest `xs[i] <= x`, `right = xs[i] - x`
/// for the smallest `xs[i] > x` (infinite when there is none).
fn side_distances(xs: &[f64], x: f64) -> (f64, f64) {
    let i = xs.partition_point(|&p| p <= x);
    let left = if i > 0 { x - xs[i - 1] } else { f64::INFINITY };
    let right = if i < xs.len() {
        xs[i] - x
    } else {
        f64::INFINITY
    };
    (left, right)
}

/// Output spacing to the left and right of pixel `j` (the other side's when at an end).
fn spacings(grid: &[f64], j: usize) -> (f64, f64) {
    let n = grid.len();
    let right = if j + 1 < n {
        grid[j + 1] - grid[j]
    } else if j > 0 {
        grid[j] - grid[j - 1]
    } else {
        0.0
    };
    let left = if j > 0 { grid[j] - grid[j - 1] } else { right };
    (left, right)
}

/// Whether output pixel `j` is near a position in the sorted `xs` under `rule`.
fn near(grid: &[f64], j: usize, xs: &[f64], rule: Rule) -> bool {
    let (dl, dr) = side_distances(xs, grid[j]);
    match rule {
        Rule::Compat => {
            let Some(next) = grid.get(j + 1) else {
                return true;
            };
            dl.min(dr) <= next - grid[j]
        }
        Rule::Fixed => {
            let (sl, sr) = spacings(grid, j);
            dl <= sl || dr <= sr
        }
    }
}

fn sorted(mut xs: Vec<f64>) -> Vec<f64> {
    xs.retain(|x| x.is_finite());
    xs.sort_by(f64::total_cmp);
    xs
}

/// No-data mask of the output `grid` (strictly increasing) given the positions counted as data
/// (any order). Under [`Rule::Compat`] the last pixel is never censored, and pass every input
/// pixel; under [`Rule::Fixed`] pass only the pixels with positive weight.
#[must_use]
pub fn no_data(grid: &[f64], data_x: &[f64], rule: Rule) -> Vec<bool> {
    let xs = sorted(data_x.to_vec());
    (0..grid.len()).map(|j| !near(grid, j, &xs, rule)).collect()
}

/// Propagated flags on the output `grid`: bit b is set at pixel j when an input pixel carrying b
/// is near j under `rule` (see the module documentation). `x` and `flags` are aligned.
#[must_use]
pub fn propagate_flags(grid: &[f64], x: &[f64], flags: &[u64], rule: Rule) -> Vec<u64> {
    let mut out = vec![0u64; grid.len()];
    let any = flags.iter().fold(0u64, |a, &f| a | f);
    for bit in 0..64 {
        let mask = 1u64 << bit;
        if any & mask == 0 {
            continue;
        }
        let xs = sorted(
            x.iter()
                .zip(flags)
                .filter(|&(_, &f)| f & mask != 0)
                .map(|(&x, _)| x)
                .collect(),
        );
        for (j, o) in out.iter_mut().enumerate() {
            if near(grid, j, &xs, rule) && !(rule == Rule::Compat && j + 1 == grid.len()) {
                *o |= mask;
            }
        }
    }
    out
}

/// The no-data mask and propagated flags of a prepared combination on its own grid.
///
/// Compat: all pixels of the included visits are data (masked ones too) and carry their flags.
/// Fixed: data = included pixels with positive weight (and non-zero selection factor); flags come
/// from every pixel of the included visits (a masked pixel's flags still describe the output).
#[must_use]
pub fn censor_prepared(prep: &Prepared, rule: Rule) -> (Vec<bool>, Vec<u64>) {
    let grid = &prep.grid.ln_wave;
    let mut data_x = Vec::new();
    let mut all_x = Vec::new();
    let mut all_f = Vec::new();
    for v in prep.included() {
        for (i, &f) in v.visit.flags().iter().enumerate().take(v.x_rest.len()) {
            all_x.push(v.x_rest[i]);
            all_f.push(f);
            let is_data = match rule {
                Rule::Compat => true,
                Rule::Fixed => v.w[i] > 0.0 && v.s[i] != 0.0,
            };
            if is_data {
                data_x.push(v.x_rest[i]);
            }
        }
    }
    (
        no_data(grid, &data_x, rule),
        propagate_flags(grid, &all_x, &all_f, rule),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force of frizzle's rule (nearest among all, next spacing, last pixel exempt).
    fn brute_compat(grid: &[f64], xs: &[f64]) -> Vec<bool> {
        (0..grid.len())
            .map(|j| {
                if j + 1 == grid.len() {
                    return false;
                }
                let d = xs
                    .iter()
                    .map(|x| (x - grid[j]).abs())
                    .fold(f64::INFINITY, f64::min);
                d > grid[j + 1] - grid[j]
            })
            .collect()
    }

    #[test]
    fn compat_matches_brute_force() {
        let grid: Vec<f64> = (0..50).map(|i| f64::from(i) * 0.1).collect();
        let xs: Vec<f64> = (0..40)
            .map(|i| (f64::from(i) * 0.37).sin() * 3.0 + 2.0)
            .collect();
        assert_eq!(no_data(&grid, &xs, Rule::Compat), brute_compat(&grid, &xs));
    }

    #[test]
    fn fixed_is_symmetric_and_treats_the_last_pixel_like_others() {
        let grid: Vec<f64> = (0..10).map(f64::from).collect();
        // Data only near pixels 2..=4 (pixel 1 is 1.2 from 2.2: too far).
        let xs = [2.2, 3.0, 3.9];
        let nd = no_data(&grid, &xs, Rule::Fixed);
        let expect = [
            true, true, false, false, false, true, true, true, true, true,
        ];
        assert_eq!(nd, expect);
        // Mirror image gives the mirrored mask.
        let xm: Vec<f64> = xs.iter().map(|x| 9.0 - x).collect();
        let mut nm = no_data(&grid, &xm, Rule::Fixed);
        nm.reverse();
        assert_eq!(nm, expect);
        // Compat never censors the last pixel even with no data anywhere near.
        assert!(!no_data(&grid, &xs, Rule::Compat)[9]);
    }

    #[test]
    fn flags_follow_nearest_carrier() {
        let grid: Vec<f64> = (0..6).map(f64::from).collect();
        let x = [1.0, 4.5, 5.0];
        let f = [0b01, 0b10, 0b01];
        let c = propagate_flags(&grid, &x, &f, Rule::Compat);
        // bit 0 near 0,1,2 (within next spacing 1) and 4 (5.0 within 1); 5 is last: never flagged.
        assert_eq!(c[0] & 1, 1);
        assert_eq!(c[3] & 1, 0);
        assert_eq!(c[4] & 1, 1);
        assert_eq!(c[5], 0);
        let fx = propagate_flags(&grid, &x, &f, Rule::Fixed);
        assert_eq!(fx[5], 0b11);
    }
}
