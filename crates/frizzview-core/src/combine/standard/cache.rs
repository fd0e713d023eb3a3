//! The memo of standard practice's per-piece work: [`StandardCache`], its stencil and piece
//! keys and the one-pass hashes of a segment's inputs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::pieces::{Knots, Piece, SegmentInput, Stencil};
use crate::combine::memo::{GenLru, Lane, hash_words};
use crate::combine::types::{Prepared, PreparedVisit};
use crate::model::Visit;
use crate::model::pixel_policy::InflateBit;
use crate::settings::{MIN_SELECTION, StandardSettings};

/// Identity of a piece's stencil. The visit is identified by its address, which cannot be reused
/// while a cache entry holds the visit alive; its wavelengths and flags are immutable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StencilKey {
    visit_ptr: usize,
    segment: usize,
    dx: u64,
    /// Length and hash of the output grid's ln(lambda).
    grid: (usize, u64),
    interpolator: u8,
    mask: u8,
    /// Hash of the segment's rest-frame positions and good-pixel mask (the knots in `Drop`
    /// mode, the mask otherwise); `dx` alone would trust `prepare` to derive the positions.
    geometry: u64,
}

/// Identity of a piece: its stencil, a hash of its values and variances, and the lags.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PieceKey {
    stencil: StencilKey,
    data: u64,
    lags: usize,
}

/// Hashes of one segment's inputs: (its rest-frame positions and good-pixel mask as
/// [`SegmentInput`] computes it, its values, inverse variances and selection factors as given).
/// One pass with independent lanes, because each lane's chain is latency bound; this is all a
/// cache hit costs per segment.
fn segment_hashes(v: &PreparedVisit, seg: std::ops::Range<usize>) -> (u64, u64) {
    let mut h = [1, 2, 3, 4, 5].map(Lane::seeded);
    for i in seg {
        let (y, ivar, s) = (v.y[i], v.ivar[i], v.s[i]);
        let ok_s = s == 1.0 || (s.is_finite() && s >= MIN_SELECTION);
        let g = !v.masked[i] && ivar > 0.0 && ok_s && y.is_finite();
        h[0].add(v.x_rest[i].to_bits());
        h[1].add(u64::from(g));
        h[2].add(y.to_bits());
        h[3].add(ivar.to_bits());
        h[4].add(s.to_bits());
    }
    let [x, g, y, iv, s] = h.map(Lane::finish);
    (
        hash_words([x, g].into_iter()),
        hash_words([y, iv, s].into_iter()),
    )
}

/// A cached stencil or piece with its visit, held alive so that its address in the key cannot
/// be reused.
type Held<T> = (Arc<Visit>, Arc<T>);

/// A memo of standard practice's per-piece work (one piece = one segment of one visit).
///
/// Two levels: the interpolation rows and flags of a piece ("stencil"), keyed by the visit
/// (address), its shift, its good-pixel mask, the grid and the interpolator; and the
/// interpolated values, variances and covariances ("piece"), keyed by the stencil and a hash of
/// the segment's values and variances. Neither depends on visit weights or inclusion, so a
/// recompute after such a change only re-averages; a changed selection mode that keeps the
/// mask re-uses the stencils. Entries unused in the last `KEEP_GENERATIONS` combinations are
/// evicted at the end of each, except those of visits that are currently excluded (so that
/// re-including one is instant). Thread-safe; results never depend on what is cached.
#[derive(Debug)]
pub struct StandardCache {
    stencils: GenLru<StencilKey, Held<Stencil>>,
    pieces: GenLru<PieceKey, Held<Piece>>,
    generation: AtomicU64,
    stencil_misses: AtomicUsize,
    piece_hits: AtomicUsize,
    piece_misses: AtomicUsize,
}

/// How many combinations an unused entry survives.
const KEEP_GENERATIONS: u64 = 3;

impl Default for StandardCache {
    fn default() -> Self {
        Self::new()
    }
}

impl StandardCache {
    /// An empty cache holding, beyond the current combination's, 256 MB of pieces and 128 MB of
    /// stencils (a cubic-spline stencil holds ~40 weights per output pixel: ~3 MB per APOGEE
    /// visit).
    #[must_use]
    pub fn new() -> Self {
        Self::with_budget(256 << 20, 128 << 20)
    }

    /// An empty cache with the given byte budgets for pieces and stencils.
    #[must_use]
    pub fn with_budget(piece_bytes: usize, stencil_bytes: usize) -> Self {
        Self {
            stencils: GenLru::new(stencil_bytes),
            pieces: GenLru::new(piece_bytes),
            generation: AtomicU64::new(0),
            stencil_misses: AtomicUsize::new(0),
            piece_hits: AtomicUsize::new(0),
            piece_misses: AtomicUsize::new(0),
        }
    }

    /// Pieces answered from the cache so far.
    #[must_use]
    pub fn piece_hits(&self) -> usize {
        self.piece_hits.load(Ordering::Relaxed)
    }

    /// Pieces that had to be interpolated so far.
    #[must_use]
    pub fn piece_misses(&self) -> usize {
        self.piece_misses.load(Ordering::Relaxed)
    }

    /// Stencils that had to be computed so far.
    #[must_use]
    pub fn stencil_misses(&self) -> usize {
        self.stencil_misses.load(Ordering::Relaxed)
    }

    /// Bytes held by cached stencils and pieces.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.stencils.bytes() + self.pieces.bytes()
    }

    /// Number of cached (stencils, pieces).
    #[must_use]
    pub fn len(&self) -> (usize, usize) {
        (self.stencils.len(), self.pieces.len())
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Drop everything.
    pub fn clear(&self) {
        self.stencils.clear();
        self.pieces.clear();
    }

    pub(super) fn begin(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(super) fn end(&self, gen_: u64, prep: &Prepared) {
        let excluded: Vec<usize> = prep
            .visits
            .iter()
            .filter(|v| !v.included)
            .map(|v| Arc::as_ptr(&v.visit) as usize)
            .collect();
        self.stencils
            .evict_unused(gen_, KEEP_GENERATIONS, |k| excluded.contains(&k.visit_ptr));
        self.pieces.evict_unused(gen_, KEEP_GENERATIONS, |k| {
            excluded.contains(&k.stencil.visit_ptr)
        });
    }

    /// The piece for one segment of one visit, from the cache or computed (and kept within the
    /// budget). `None` when the segment gives no output pixel.
    pub(super) fn piece(
        &self,
        v: &PreparedVisit,
        seg_index: usize,
        grid: (&[f64], (usize, u64)),
        ss: &StandardSettings,
        (lags, inflate): (usize, &[InflateBit]),
        gen_: u64,
    ) -> Option<Arc<Piece>> {
        let (grid_x, grid_sig) = grid;
        let (geometry, data) = segment_hashes(v, v.visit.segments().get(seg_index)?.clone());
        // The knots' variances are the pixel policy's raw ones, a function of the policy too.
        let data = hash_words(
            std::iter::once(data).chain(
                inflate
                    .iter()
                    .flat_map(|b| [u64::from(b.bit), b.factor.to_bits()]),
            ),
        );
        let skey = StencilKey {
            visit_ptr: Arc::as_ptr(&v.visit) as usize,
            segment: seg_index,
            dx: v.dx.to_bits(),
            grid: grid_sig,
            interpolator: ss.interpolator as u8,
            mask: ss.mask as u8,
            geometry,
        };
        let pkey = PieceKey {
            stencil: skey.clone(),
            data,
            lags,
        };
        let same_visit = |e: &Held<Piece>| Arc::ptr_eq(&e.0, &v.visit);
        if let Some(e) = self.pieces.get(&pkey, gen_, same_visit) {
            // Its stencil stays as fresh as the piece (another lag count or selection mode
            // with the same mask needs it again).
            let _ = self.stencils.get(&skey, gen_, |_| true);
            self.piece_hits.fetch_add(1, Ordering::Relaxed);
            return Some(Arc::clone(&e.1));
        }
        let inp = SegmentInput::new(v, seg_index, inflate)?;
        let knots = Knots::new(&inp, ss);
        let l0 = grid_x.partition_point(|&g| g < knots.lo);
        let l1 = grid_x.partition_point(|&g| g <= knots.hi);
        if l1 <= l0 {
            return None;
        }
        self.piece_misses.fetch_add(1, Ordering::Relaxed);
        let cached = self
            .stencils
            .get(&skey, gen_, |e| Arc::ptr_eq(&e.0, &v.visit))
            .map(|e| Arc::clone(&e.1));
        let stencil = cached.unwrap_or_else(|| {
            self.stencil_misses.fetch_add(1, Ordering::Relaxed);
            let st = Arc::new(Stencil::new(
                v,
                seg_index,
                &inp,
                &knots,
                grid_x,
                ss,
                (l0, l1),
            ));
            let bytes = st.bytes();
            self.stencils.insert(
                skey,
                Arc::new((Arc::clone(&v.visit), Arc::clone(&st))),
                bytes,
                gen_,
            );
            st
        });
        let piece = Arc::new(Piece::new(&stencil, &knots, ss.mask, lags));
        let bytes = piece.bytes();
        self.pieces.insert(
            pkey,
            Arc::new((Arc::clone(&v.visit), Arc::clone(&piece))),
            bytes,
            gen_,
        );
        Some(piece)
    }
}
