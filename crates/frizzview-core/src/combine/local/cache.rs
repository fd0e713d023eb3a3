//! The [`BasisCache`] that keeps the visits' design rows and normal-equation sums between
//! recomputations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::basis::{CacheKey, GridMap, VisitBasis};
use super::kernel::Kernel;
use super::partial::Partial;
use crate::combine::memo::{GenLru, hash_f64, hash_words};
use crate::combine::types::PreparedVisit;

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
