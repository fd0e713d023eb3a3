//! Standard practice itself: the pieces of the included visits, averaged.

use std::sync::Arc;

use rayon::prelude::*;

use super::averaging::{self, Average};
use super::cache::StandardCache;
use super::continuum;
use super::interpolators::SplineModel;
use super::pieces::{Piece, inflate_piece};
use crate::combine::memo::hash_words;
use crate::combine::types::{
    Cancel, CombineError, MethodResult, Prepared, SpectrumModel, visit_fits,
};
use crate::settings::{StandardSettings, Weighting};

/// Shift, interpolate and average (see the module documentation) with a fresh [`StandardCache`]:
/// one-shot use; the engine passes its own cache to [`combine_standard_with_cache`].
pub fn combine_standard(
    prep: &Prepared,
    ss: &StandardSettings,
    lags: usize,
    cancel: &Cancel,
) -> Result<MethodResult, CombineError> {
    combine_standard_with_cache(prep, ss, lags, cancel, &StandardCache::new())
}

/// [`combine_standard`] with an explicit cache.
///
/// The pieces are computed in parallel; the average runs in parallel over runs of output pixels,
/// each pixel summing its pieces in dataset order, so results do not depend on the thread count.
pub fn combine_standard_with_cache(
    prep: &Prepared,
    ss: &StandardSettings,
    lags: usize,
    cancel: &Cancel,
    cache: &StandardCache,
) -> Result<MethodResult, CombineError> {
    let grid_x = &prep.grid.ln_wave;
    let m = grid_x.len();
    let grid_sig = (m, hash_words(grid_x.iter().map(|x| x.to_bits())));
    let jobs: Vec<(usize, usize)> = prep
        .visits
        .iter()
        .enumerate()
        .filter(|(_, v)| v.included)
        .flat_map(|(vi, v)| (0..v.visit.segments().len()).map(move |s| (vi, s)))
        .collect();
    let pipeline_row0 = ss.weighting == Weighting::ApogeePipeline;
    let gen_ = cache.begin();
    let pieces: Result<Vec<Option<Arc<Piece>>>, CombineError> = jobs
        .par_iter()
        .map(|&(vi, s)| {
            cancel.check()?;
            let piece = cache.piece(
                &prep.visits[vi],
                s,
                (grid_x, grid_sig),
                ss,
                (lags, &prep.inflate_bits),
                gen_,
            );
            // The pipeline's row-0 flavour applies its own pixel rules instead of the policy's
            // inflation (`continuum`).
            Ok(if pipeline_row0 {
                piece
            } else {
                piece.map(|p| inflate_piece(p, &prep.inflate_bits))
            })
        })
        .collect();
    cache.end(gen_, prep);
    // Each piece with its visit's weight multiplier (the same sense as the forward model's
    // w = ivar * weight: an integer weight k counts the visit k times).
    let pieces: Vec<(Arc<Piece>, f64, usize)> = pieces?
        .into_iter()
        .zip(&jobs)
        .filter_map(|(p, &(vi, _))| p.map(|p| (p, prep.visits[vi].weight, vi)))
        .collect();
    let pieces: Vec<(Arc<Piece>, f64)> = if pipeline_row0 {
        continuum::to_mean_continuum(pieces, m)
    } else {
        pieces.into_iter().map(|(p, w, _)| (p, w)).collect()
    };
    cancel.check()?;
    let a: Average = averaging::average(&pieces, ss, lags, m);
    let model: Arc<dyn SpectrumModel> = Arc::new(SplineModel::new(grid_x, &a.flux));
    let visits = visit_fits(prep, model.as_ref());
    Ok(MethodResult::new(
        a.flux,
        a.var,
        a.band,
        a.flags,
        a.no_data,
        visits,
        Some(model),
    ))
}
