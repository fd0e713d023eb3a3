//! The design rows of each visit (kernel values at its pixels, [`VisitBasis`]) and the
//! [`BasisCache`] that keeps them, and the visits' normal-equation sums, between recomputations.

use super::*;

/// Maps rest-frame ln(lambda) to a fractional output-pixel index.
#[derive(Clone, Debug)]
pub(super) struct GridMap {
    pub(super) x0: f64,
    pub(super) step: f64,
    /// Non-uniform grids keep their nodes (piecewise-linear index map).
    pub(super) nodes: Option<Vec<f64>>,
    pub(super) n: usize,
}

impl GridMap {
    /// The map of a grid the local basis can fit on (at least 2 pixels).
    pub(super) fn checked(grid: &OutputGrid) -> Result<Self, CombineError> {
        let p = grid.len();
        if p < 2 {
            return Err(CombineError::Other(format!(
                "local basis: the output grid has {p} pixels, need at least 2"
            )));
        }
        Ok(Self::new(grid))
    }

    pub(super) fn new(grid: &OutputGrid) -> Self {
        let n = grid.len();
        let x = &grid.ln_wave;
        let step = grid.mean_step();
        let uniform = x
            .iter()
            .enumerate()
            .all(|(i, &xi)| (xi - (x[0] + step * i as f64)).abs() <= 1e-6 * step);
        Self {
            x0: x[0],
            step,
            nodes: (!uniform).then(|| x.clone()),
            n,
        }
    }

    pub(super) fn u(&self, x: f64) -> f64 {
        match &self.nodes {
            None => (x - self.x0) / self.step,
            Some(nodes) => {
                let i = nodes.partition_point(|&v| v <= x).clamp(1, self.n - 1);
                let (a, b) = (nodes[i - 1], nodes[i]);
                (i - 1) as f64 + (x - a) / (b - a)
            }
        }
    }

    /// du/dx at x.
    pub(super) fn du_dx(&self, x: f64) -> f64 {
        match &self.nodes {
            None => 1.0 / self.step,
            Some(nodes) => {
                let i = nodes.partition_point(|&v| v <= x).clamp(1, self.n - 1);
                1.0 / (nodes[i] - nodes[i - 1])
            }
        }
    }

    /// Local output spacing around index u (for the LSF width in pixels).
    pub(super) fn local_step(&self, u: f64) -> f64 {
        match &self.nodes {
            None => self.step,
            Some(nodes) => {
                let i = (u.max(0.0) as usize).clamp(1, self.n - 1);
                nodes[i] - nodes[i - 1]
            }
        }
    }

    pub(super) fn signature(&self) -> (u64, u64, u64, usize) {
        let h = self.nodes.as_ref().map_or(0, |v| hash_f64(v));
        (self.x0.to_bits(), self.step.to_bits(), h, self.n)
    }
}

/// Pixels whose index is outside the output grid by more than half a pixel are not fitted.
pub(super) const NO_ROW: i64 = i64::MIN;

/// Kernel evaluations of one visit: for pixel k, `vals[k*width..]` are g_{j0[k]+m}, m < width.
///
/// Values are stored as f32 (relative rounding 6e-8, far below any noise level) so that 1000
/// APOGEE visits fit in memory; the sums themselves are accumulated in f64.
#[derive(Debug)]
pub struct VisitBasis {
    pub(super) visit: Arc<Visit>,
    pub(super) key: CacheKey,
    /// Functions per row.
    pub width: usize,
    /// First function index per pixel (`i64::MIN` = pixel outside the grid).
    pub(super) j0: Vec<i64>,
    /// Fractional output index per pixel (censoring and flags).
    pub(super) u: Vec<f64>,
    pub(super) vals: Vec<f32>,
}

impl VisitBasis {
    pub(super) fn compute(pv: &PreparedVisit, map: &GridMap, kernel: Kernel) -> Self {
        let n = pv.x_rest.len();
        let lsf = pv.lsf_sigma;
        let base_w = kernel.width();
        // Gaussian LSF: the design row is the kernel averaged over shifted positions (16-point
        // Gauss-Hermite), so the row is wider by the largest node shift in pixels.
        let max_shift_px = if lsf > 0.0 {
            std::f64::consts::SQRT_2 * gauss_hermite().0[GH_N - 1] * lsf / map.step.abs()
        } else {
            0.0
        };
        let width = if lsf > 0.0 {
            base_w + 2 * (max_shift_px.ceil() as usize) + 2
        } else {
            base_w
        };
        let mut j0 = vec![NO_ROW; n];
        let mut u = vec![f64::NAN; n];
        let mut vals = vec![0.0_f32; n * width];
        let lo = -0.5;
        let hi = map.n as f64 - 0.5;
        // Chunks of pixels in parallel: a dragged shift re-evaluates one visit, which would
        // otherwise run on one core.
        j0.par_chunks_mut(PIXEL_CHUNK)
            .zip(u.par_chunks_mut(PIXEL_CHUNK))
            .zip(vals.par_chunks_mut(PIXEL_CHUNK * width))
            .enumerate()
            .for_each(|(c, ((j0, u), vals))| {
                let mut row = vec![0.0; width];
                let mut tmp = vec![0.0; base_w];
                for (kk, (j0k, uk_out)) in j0.iter_mut().zip(u.iter_mut()).enumerate() {
                    let k = c * PIXEL_CHUNK + kk;
                    let uk = map.u(pv.x_rest[k]);
                    *uk_out = uk;
                    if !(uk >= lo && uk <= hi) {
                        continue;
                    }
                    row.fill(0.0);
                    if lsf > 0.0 {
                        let sh = std::f64::consts::SQRT_2 * lsf / map.local_step(uk);
                        let (gh_nodes, gh_weights) = gauss_hermite();
                        let first = kernel.first(uk - sh * gh_nodes[GH_N - 1]);
                        *j0k = first;
                        for (&t, &wq) in gh_nodes.iter().zip(gh_weights) {
                            let uq = uk + sh * t;
                            let jq = kernel.row(uq, &mut tmp);
                            let wn = wq / std::f64::consts::PI.sqrt();
                            for (m, &v) in tmp.iter().enumerate() {
                                let idx = jq + m as i64 - first;
                                if idx >= 0 && (idx as usize) < width {
                                    row[idx as usize] += wn * v;
                                }
                            }
                        }
                    } else {
                        *j0k = kernel.row(uk, &mut row);
                    }
                    for (d, &v) in vals[kk * width..(kk + 1) * width].iter_mut().zip(&row) {
                        *d = v as f32;
                    }
                }
            });
        Self {
            visit: Arc::clone(&pv.visit),
            key: CacheKey::new(pv, map, kernel),
            width,
            j0,
            u,
            vals,
        }
    }

    /// Bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.j0.len() * 16 + self.vals.len() * 4
    }
}

/// The sum of a group of per-visit partial sums, in member order.
#[derive(Debug)]
pub(super) struct GroupSum {
    pub(super) _members: Vec<Arc<Partial>>,
    pub(super) sum: Partial,
}

impl GroupSum {
    pub(super) fn new(members: &[Arc<Partial>]) -> Self {
        let refs: Vec<&Partial> = members.iter().map(AsRef::as_ref).collect();
        let sum = Partial::sum_of(&refs);
        Self {
            _members: members.to_vec(),
            sum,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    pub(super) visit_ptr: usize,
    pub(super) dx: u64,
    pub(super) n: usize,
    pub(super) x_first: u64,
    pub(super) x_last: u64,
    pub(super) lsf: u64,
    pub(super) grid: (u64, u64, u64, usize),
    pub(super) kernel: Kernel,
}

impl CacheKey {
    pub(super) fn for_basis(_pv: &PreparedVisit, vb: &VisitBasis) -> Self {
        vb.key.clone()
    }

    pub(super) fn new(pv: &PreparedVisit, map: &GridMap, kernel: Kernel) -> Self {
        Self {
            visit_ptr: Arc::as_ptr(&pv.visit) as usize,
            dx: pv.dx.to_bits(),
            n: pv.x_rest.len(),
            x_first: pv.x_rest.first().map_or(0, |x| x.to_bits()),
            x_last: pv.x_rest.last().map_or(0, |x| x.to_bits()),
            lsf: pv.lsf_sigma.to_bits(),
            grid: map.signature(),
            kernel,
        }
    }
}

/// Default byte budget of a [`BasisCache`]'s kernel evaluations beyond the current fit's (an
/// APOGEE visit's take ~1 MB: 12 288 pixels x 16 f32 values and their indices).
pub const DEFAULT_BASIS_BUDGET: usize = 512 << 20;

/// Memo of per-visit kernel evaluations keyed by (visit identity, shift, grid, kernel, LSF).
///
/// Entries not used by the last `keep_generations` fits are evicted at the end of each fit, so a
/// dragged shift slider does not accumulate stale entries. Thread-safe; the engine owns one.
#[derive(Debug)]
pub struct BasisCache {
    pub(super) entries: GenLru<CacheKey, VisitBasis>,
    /// Per-visit normal-equation sums keyed by the basis key and a hash of (w, s, y).
    pub(super) partials: GenLru<(CacheKey, u64), Partial>,
    /// Sums of [`GROUP`] consecutive visits' sums keyed by their members' addresses (the entry
    /// holds its members alive, so an address cannot be reused while it exists): a change to
    /// one visit re-sums only its group.
    pub(super) groups: GenLru<Vec<usize>, GroupSum>,
    pub(super) partial_hits: AtomicUsize,
    /// Largest total size (bytes) of per-visit partial sums to keep; above it, visits are summed
    /// in groups without caching (1000 APOGEE visits would need ~0.5-1 GB).
    pub partial_budget: usize,
    pub(super) generation: AtomicU64,
    pub(super) hits: AtomicUsize,
    pub(super) misses: AtomicUsize,
    pub(super) keep_generations: u64,
}

impl Default for BasisCache {
    fn default() -> Self {
        Self::new()
    }
}

impl BasisCache {
    /// An empty cache keeping entries used in the last two fits, with the default budgets
    /// ([`DEFAULT_BASIS_BUDGET`] of kernel evaluations beyond the current fit's, 256 MB of sums).
    #[must_use]
    pub fn new() -> Self {
        Self::with_budget(DEFAULT_BASIS_BUDGET)
    }

    /// An empty cache holding at most `bytes` of kernel evaluations beyond those of the current
    /// fit (the normal-equation sums have their own budget, [`BasisCache::partial_budget`]).
    #[must_use]
    pub fn with_budget(bytes: usize) -> Self {
        let partial_budget = 256 << 20;
        Self {
            entries: GenLru::new(bytes),
            partials: GenLru::new(partial_budget),
            groups: GenLru::new(partial_budget / 4),
            partial_hits: AtomicUsize::new(0),
            partial_budget,
            generation: AtomicU64::new(0),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
            keep_generations: 2,
        }
    }

    /// Lookups answered from the cache so far.
    #[must_use]
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that had to evaluate the kernel.
    #[must_use]
    pub fn misses(&self) -> usize {
        self.misses.load(Ordering::Relaxed)
    }

    /// Lookups of per-visit normal-equation sums answered from the cache.
    #[must_use]
    pub fn partial_hits(&self) -> usize {
        self.partial_hits.load(Ordering::Relaxed)
    }

    pub(super) fn get_partial(
        &self,
        pv: &PreparedVisit,
        vb: &Arc<VisitBasis>,
        p: usize,
        gen_: u64,
    ) -> Arc<Partial> {
        let key = (
            CacheKey::for_basis(pv, vb),
            hash_words([hash_f64(&pv.w), hash_f64(&pv.s), hash_f64(&pv.y)].into_iter()),
        );
        let (part, hit) = self.partials.get_or_make(
            key,
            gen_,
            |_| true,
            || Partial::of_visit(pv, vb, p),
            Partial::bytes,
        );
        if hit {
            self.partial_hits.fetch_add(1, Ordering::Relaxed);
        }
        part
    }

    pub(super) fn get_group(&self, members: &[Arc<Partial>], gen_: u64) -> Arc<GroupSum> {
        let key: Vec<usize> = members.iter().map(|m| Arc::as_ptr(m) as usize).collect();
        self.groups
            .get_or_make(
                key,
                gen_,
                |_| true,
                || GroupSum::new(members),
                |g| g.sum.bytes(),
            )
            .0
    }

    /// Entries held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the cached evaluations.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.entries.bytes() + self.partials.bytes() + self.groups.bytes()
    }

    /// Drop everything.
    pub fn clear(&self) {
        self.entries.clear();
        self.partials.clear();
        self.groups.clear();
    }

    pub(super) fn get(
        &self,
        pv: &PreparedVisit,
        map: &GridMap,
        kernel: Kernel,
        gen_: u64,
    ) -> Arc<VisitBasis> {
        let key = CacheKey::new(pv, map, kernel);
        // The entry holds its visit alive, so the pointer cannot have been reused.
        let (b, hit) = self.entries.get_or_make(
            key,
            gen_,
            |b| Arc::ptr_eq(&b.visit, &pv.visit),
            || VisitBasis::compute(pv, map, kernel),
            VisitBasis::bytes,
        );
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        b
    }

    pub(super) fn begin(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn evict(&self, gen_: u64) {
        let keep = self.keep_generations;
        self.entries.evict_unused(gen_, keep, |_| false);
        self.partials.evict_unused(gen_, keep, |_| false);
        self.groups.evict_unused(gen_, keep, |_| false);
    }
}
