"""What ``frizzle.utils`` (frizzle 0.2.8) exposes, in numpy, with frizzle's behaviour.

Nearest-neighbour distances use a sorted search instead of scikit-learn's KD-tree (the same
distances in one dimension). Quirks kept on purpose, because frizzle's outputs depend on them:

- ``combine_flags``: an output pixel gets a bit when the nearest input pixel carrying it lies
  within the *next* output spacing (``<=``); the last output pixel never gets a flag.
- ``check_inputs``: pixels outside ``[λ_out[0], λ_out[-1]]`` are added to the mask.

One deviation: ``separate_flags`` of an all-zero array returns ``{}`` (frizzle raises an
``OverflowError`` from ``int(log2(0))``).
"""

from typing import Dict, Optional, Tuple

import numpy as np
import numpy.typing as npt

__all__ = ["get_modes", "check_inputs", "separate_flags", "combine_flags", "nearest_distance"]


def _hstack(x) -> np.ndarray:
    """frizzle's ``jnp.hstack`` of one array or a sequence of per-visit arrays, as numpy."""
    if isinstance(x, (list, tuple)):
        return np.hstack([np.asarray(v) for v in x])
    a = np.asarray(x)
    if a.ndim <= 2:
        # hstack of a 1-D array is itself; of a 2-D array, its rows end to end (C order).
        return a.ravel()
    return np.hstack(list(a))


def get_modes(n_modes: Optional[int], λ_out: npt.ArrayLike, mask: npt.ArrayLike) -> int:
    """The number of Fourier modes: ``n_modes`` unchanged if given, else the smaller of
    ``len(λ_out)`` and the number of unmasked pixels, rounded down to an odd number."""
    if n_modes is not None:
        return n_modes
    n_modes = min([len(λ_out), int(np.sum(~np.asarray(mask, dtype=bool)))])
    if n_modes % 2 == 0:
        n_modes -= 1
    return n_modes


def check_inputs(
    λ_out: npt.ArrayLike,
    λ: npt.ArrayLike,
    flux: npt.ArrayLike,
    ivar: Optional[npt.ArrayLike],
    mask: Optional[npt.ArrayLike],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-visit arrays, default ``ivar`` to ones and ``mask`` to none, sort
    ``λ_out`` and mask the pixels outside ``[λ_out[0], λ_out[-1]]``."""
    λ, flux = _hstack(λ), _hstack(flux)
    if mask is None:
        mask = np.zeros(flux.size, dtype=bool)
    else:
        mask = _hstack(mask).astype(bool)
    λ_out = np.sort(np.asarray(λ_out).ravel())
    mask = mask | (λ < λ_out[0]) | (λ > λ_out[-1])
    if ivar is None:
        ivar = np.ones_like(flux)
    else:
        ivar = _hstack(ivar)
    return (λ_out, λ, flux, ivar, mask)


def separate_flags(flags: Optional[npt.ArrayLike] = None) -> Dict[int, npt.NDArray[np.bool_]]:
    """A dict {bit: boolean array} of the bits that are set somewhere."""
    separated = {}
    if flags is not None:
        flags = np.asarray(flags)
        top = int(np.max(flags)) if flags.size else 0
        for q in range(top.bit_length()):
            is_set = (flags & flags.dtype.type(1 << q)) > 0
            if np.any(is_set):
                separated[q] = is_set.astype(bool)
    return separated


def nearest_distance(points: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Distance from each query to the nearest point (1-D), ``inf`` when there is no point."""
    points = np.sort(np.asarray(points, dtype=float).ravel())
    queries = np.asarray(queries, dtype=float).ravel()
    if points.size == 0:
        return np.full(queries.shape, np.inf)
    i = np.searchsorted(points, queries)
    left = np.where(i > 0, queries - points[np.maximum(i - 1, 0)], np.inf)
    right = np.where(i < points.size, points[np.minimum(i, points.size - 1)] - queries, np.inf)
    return np.minimum(np.abs(left), np.abs(right))


def combine_flags(
    λ_out: npt.ArrayLike,
    λ: npt.ArrayLike,
    flags: Optional[npt.NDArray[np.integer]],
) -> npt.NDArray[np.integer]:
    """Output flags: bit b reaches output pixel j when the nearest input pixel carrying b is
    within ``λ_out[j+1] - λ_out[j]``; the last output pixel never gets a flag (frizzle 0.2.8)."""
    λ_out = np.asarray(λ_out).ravel()
    λ = np.asarray(λ).ravel()
    flags_star = np.zeros(λ_out.size, dtype=np.uint64 if flags is None else np.asarray(flags).dtype)
    diff_λ_out = np.diff(λ_out)
    for bit, flag in separate_flags(flags).items():
        d = nearest_distance(λ[flag], λ_out)
        within_pixel = np.hstack([d[:-1] <= diff_λ_out, False])
        flags_star[within_pixel] += flags_star.dtype.type(1 << bit)
    return flags_star
