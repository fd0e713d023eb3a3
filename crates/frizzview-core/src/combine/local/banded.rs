//! Banded linear algebra: the symmetric band [`Band`], its LDL^T factor [`BandLdl`], and the
//! selected inverse (the band of A^-1) by the Takahashi / Hutchinson-de Hoog recurrence.

use crate::combine::types::CombineError;

/// A symmetric banded matrix, lower band: `a[i * (b + 1) + d] = A[i][i - d]`, d = 0..=b.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Order.
    pub n: usize,
    /// Half-bandwidth.
    pub b: usize,
    /// Lower band, row-major.
    pub a: Vec<f64>,
}

impl Band {
    /// A zero matrix.
    #[must_use]
    pub fn zeros(n: usize, b: usize) -> Self {
        Self {
            n,
            b,
            a: vec![0.0; n * (b + 1)],
        }
    }

    /// A[i][j] (0 outside the band).
    #[must_use]
    pub fn get(&self, i: usize, j: usize) -> f64 {
        let (i, j) = if i >= j { (i, j) } else { (j, i) };
        let d = i - j;
        if d > self.b {
            0.0
        } else {
            self.a[i * (self.b + 1) + d]
        }
    }

    /// Set A[i][j] = A[j][i] = v (|i - j| <= b).
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        let (i, j) = if i >= j { (i, j) } else { (j, i) };
        self.a[i * (self.b + 1) + (i - j)] = v;
    }

    /// y = A x.
    #[must_use]
    pub fn matvec(&self, x: &[f64]) -> Vec<f64> {
        let (n, b) = (self.n, self.b);
        let mut y = vec![0.0; n];
        for i in 0..n {
            let row = &self.a[i * (b + 1)..(i + 1) * (b + 1)];
            y[i] += row[0] * x[i];
            for d in 1..=b.min(i) {
                y[i] += row[d] * x[i - d];
                y[i - d] += row[d] * x[i];
            }
        }
        y
    }
}

/// LDL^T factor of a [`Band`]: unit lower L in the same band layout (diagonal slot unused), D.
#[derive(Clone, Debug)]
pub struct BandLdl {
    pub(super) l: Band,
    pub(super) d: Vec<f64>,
}

impl BandLdl {
    /// Factor A = L D L^T. Fails if a pivot is not positive (not positive definite).
    pub fn new(a: &Band) -> Result<Self, CombineError> {
        let (n, b) = (a.n, a.b);
        let s = b + 1;
        let mut l = a.clone();
        let mut d = vec![0.0; n];
        // Column-oriented: row i of L needs rows k < i; process row by row (Doolittle in band).
        for i in 0..n {
            let jlo = i.saturating_sub(b);
            for j in jlo..i {
                // L[i][j] = (A[i][j] - sum_{k<j} L[i][k] L[j][k] D_k) / D_j
                let mut v = l.a[i * s + (i - j)];
                let klo = jlo.max(j.saturating_sub(b));
                for k in klo..j {
                    v -= l.a[i * s + (i - k)] * l.a[j * s + (j - k)] * d[k];
                }
                l.a[i * s + (i - j)] = v / d[j];
            }
            let mut di = l.a[i * s];
            for k in jlo..i {
                let lik = l.a[i * s + (i - k)];
                di -= lik * lik * d[k];
            }
            if !(di > 0.0 && di.is_finite()) {
                return Err(CombineError::Singular(format!(
                    "local basis: pivot {i} is {di:.3e}"
                )));
            }
            d[i] = di;
            l.a[i * s] = 1.0;
        }
        Ok(Self { l, d })
    }

    /// Solve A x = rhs.
    #[must_use]
    pub fn solve(&self, rhs: &[f64]) -> Vec<f64> {
        let (n, b) = (self.l.n, self.l.b);
        let s = b + 1;
        let mut x = rhs.to_vec();
        for i in 0..n {
            let mut v = x[i];
            for k in i.saturating_sub(b)..i {
                v -= self.l.a[i * s + (i - k)] * x[k];
            }
            x[i] = v;
        }
        for i in 0..n {
            x[i] /= self.d[i];
        }
        for i in (0..n).rev() {
            let mut v = x[i];
            for k in i + 1..n.min(i + b + 1) {
                v -= self.l.a[k * s + (k - i)] * x[k];
            }
            x[i] = v;
        }
        x
    }

    /// The entries of A^-1 within half-bandwidth `bw` (>= the factor's bandwidth), by the
    /// Takahashi / Hutchinson-de Hoog recurrence: `z[i * (bw + 1) + d] = (A^-1)[i][i + d]`.
    #[must_use]
    pub fn selected_inverse(&self, bw: usize) -> Vec<f64> {
        let (n, b) = (self.l.n, self.l.b);
        let bw = bw.max(b);
        let s = b + 1;
        let zs = bw + 1;
        let mut z = vec![0.0; n * zs];
        let mut lcol = vec![0.0; b];
        let mut acc = vec![0.0; bw];
        for i in (0..n).rev() {
            let kmax = (n - 1).min(i + b);
            let jmax = (n - 1).min(i + bw);
            for k in i + 1..=kmax {
                lcol[k - i - 1] = self.l.a[k * s + (k - i)];
            }
            // Z[i][j] = -sum_k L[k][i] Z[k][j]. Z[k][j] for k <= j lives in row k, for k > j in
            // row j (upper storage). Both halves run over contiguous rows: the k <= j terms as
            // one axpy per k over j, then the k > j terms as one dot product per j. Each
            // Z[i][j] still sums its terms in increasing k.
            let acc = &mut acc[..jmax - i];
            acc.fill(0.0);
            for k in i + 1..=kmax {
                let lk = lcol[k - i - 1];
                let zk = &z[k * zs..k * zs + (jmax - k) + 1];
                for (a, &zkj) in acc[k - i - 1..].iter_mut().zip(zk) {
                    *a -= lk * zkj;
                }
            }
            for j in i + 1..kmax {
                let zj = &z[j * zs + 1..j * zs + (kmax - j) + 1];
                let mut v = acc[j - i - 1];
                for (&l, &zjk) in lcol[j - i..kmax - i].iter().zip(zj) {
                    v -= l * zjk;
                }
                acc[j - i - 1] = v;
            }
            z[i * zs + 1..i * zs + 1 + acc.len()].copy_from_slice(acc);
            let mut v = 1.0 / self.d[i];
            for k in i + 1..=kmax {
                v -= lcol[k - i - 1] * z[i * zs + (k - i)];
            }
            z[i * zs] = v;
        }
        z
    }

    /// The pivots D.
    #[must_use]
    pub fn pivots(&self) -> &[f64] {
        &self.d
    }
}
