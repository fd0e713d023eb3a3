"""A drop-in for ``frizzle`` 0.2.8 (Casey & Hogg): the same call, the same outputs, computed by
frizzview's frizzle-compatible Fourier mode (Toeplitz normal equations, no P x P matrix).

``from frizzview.compat import frizzle`` (also ``frizzview.frizzle``) replaces
``from frizzle import frizzle``. The module also provides frizzle's linear operators
(``matvec``, ``rmatvec``, ``ATCinvA``, ``matmat``, ``rmatmat``, ``_pre_matvec``,
``_post_rmatvec``) in numpy, by direct sums, for code that uses them on small problems.

Differences from frizzle 0.2.8, all on inputs where frizzle's answer is not meaningful:

- float64 throughout (frizzle computes in float32 unless ``JAX_ENABLE_X64=1``);
- pixels with NaN/inf flux or NaN/inf/negative ``ivar`` are dropped (frizzle returns NaN
  everywhere); non-finite wavelengths and repeated ``λ_out`` values raise ``ValueError``;
- an explicit even ``n_modes`` raises ``ValueError`` (frizzle pairs mode k with -k-1 for even
  P, a rank-deficient basis, and returns garbage);
- a numerically singular system gets the smallest ridge that makes it solvable (reported in
  ``meta["warnings"]``) where frizzle's LU returns garbage.
"""

from typing import Optional

import numpy as np

from .. import _core
from .utils import _hstack, check_inputs, combine_flags, get_modes  # noqa: F401

__all__ = [
    "frizzle",
    "matvec",
    "rmatvec",
    "ATCinvA",
    "matmat",
    "rmatmat",
    "_pre_matvec",
    "_post_rmatvec",
]


class FrizzleModel:
    """The fitted spectrum as a function of wavelength (frizzle's ``meta["model"]``): call it
    with any array of wavelengths in the unit given to ``frizzle``."""

    def __init__(self, series):
        self._series = series

    @property
    def n_modes(self) -> int:
        return self._series.n_modes

    def __call__(self, λ):
        a = np.asarray(λ, dtype=np.float64)
        y = self._series.eval(_arr(a, np.float64))
        return y.reshape(a.shape)


def _arr(x, dtype):
    """1-D, C-contiguous and aligned (as the compiled core reads it)."""
    return np.require(np.asarray(x, dtype=dtype).ravel(), dtype=dtype, requirements=["C", "A"])


def _float(name, x, n):
    a = _arr(x, np.float64)
    if a.size != n:
        raise ValueError(f"{name} has {a.size} values but λ has {n}")
    return a


def _flags(flags, n):
    f = _hstack(flags)
    if not (np.issubdtype(f.dtype, np.integer) or f.dtype == bool):
        raise ValueError(f"flags must be integers (got dtype {f.dtype})")
    if f.size != n:
        raise ValueError(f"flags has {f.size} values but λ has {n}")
    if np.issubdtype(f.dtype, np.signedinteger) and f.size and f.min() < 0:
        raise ValueError("flags must be non-negative bit masks")
    return f.dtype, _arr(f.astype(np.uint64), np.uint64)


def _band_lags(C_band, n_out):
    if C_band is None or C_band is False:
        return None
    if C_band is True:
        return 5
    if isinstance(C_band, (int, np.integer)) and not isinstance(C_band, bool) and C_band >= 0:
        return int(C_band)
    raise ValueError(
        f"C_band={C_band!r}: expected None (dense C_star), True (5 lags) or a number of lags >= 0"
    )


def frizzle(
    λ_out,
    λ,
    flux,
    ivar=None,
    mask=None,
    flags=None,
    censor_missing_regions: Optional[bool] = True,
    n_modes: Optional[int] = None,
    *,
    C_band=None,
    threads: Optional[int] = None,
    _dense_by_columns: bool = False,
):
    """Combine spectra by forward modelling (frizzle 0.2.8's call and outputs).

    :param λ_out: wavelengths of the combined spectrum (sorted here, as frizzle does).
    :param λ: wavelengths of the input pixels: one array, or a list of per-visit arrays.
    :param flux: input fluxes, shaped like ``λ``.
    :param ivar: inverse variances (default ones).
    :param mask: ``True`` drops a pixel (default none).
    :param flags: integer bit flags per pixel; the output keeps their dtype.
    :param censor_missing_regions: set y* to NaN and the C* columns to inf where the nearest input
        pixel is farther than the next output spacing, and add ``meta["no_data_mask"]``.
    :param n_modes: number of Fourier modes (odd; default min(len(λ_out), unmasked pixels), made odd).
    :param C_band: ``None`` returns the dense (M*, M*) C*, as frizzle; an integer K returns the band
        (K+1, M*) with ``C_band[k, l] = C*[l, l+k]`` (NaN past the end) instead, for large outputs
        (``True`` = 5 lags).
    :param threads: worker threads (default: the CPUs this process may use).
    :param _dense_by_columns: compute the dense C* one column at a time (the previous, slower
        path: one Gohberg-Semencul product and one NUFFT per column) instead of the closed form
        (``fourier::trench``: O(1) per entry); for tests and the benchmark.
    :returns: ``(y_star, C_star, flags_star, meta)``; ``meta["model"]`` evaluates the fit at any
        wavelength; also ``meta["n_modes"]``, ``meta["condition"]`` (estimated condition number of
        the normal matrix) and ``meta["warnings"]``.
    """
    λ_out_s, λ_a, flux_a, ivar_a, mask_a = check_inputs(λ_out, λ, flux, ivar, mask)
    n = λ_a.size
    if λ_out_s.size < 2:
        raise ValueError(f"λ_out has {λ_out_s.size} value(s); at least 2 are needed")
    p = get_modes(n_modes, λ_out_s, mask_a)
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
        raise ValueError(f"n_modes={n_modes!r}: expected a positive odd integer or None")
    if p < 1:
        raise ValueError(
            f"n_modes = {p}: at least one Fourier mode is needed (no unmasked pixel inside λ_out?)"
        )
    lags = _band_lags(C_band, λ_out_s.size)
    if flags is not None:
        dtype, f64 = _flags(flags, n)
    else:
        dtype, f64 = np.dtype(np.uint64), None
    y, C, fl, no_data, series, cond, warnings = _core.frizzle_compat(
        _float("λ_out", λ_out_s, λ_out_s.size),
        _float("λ", λ_a, n),
        _float("flux", flux_a, n),
        _float("ivar", ivar_a, n),
        _arr(mask_a, bool),
        f64,
        int(p),
        lags,
        threads,
        bool(_dense_by_columns),
    )
    meta = dict(model=FrizzleModel(series), n_modes=int(p), condition=cond, warnings=warnings)
    if censor_missing_regions:
        meta["no_data_mask"] = no_data
        if np.any(no_data):
            y = np.where(no_data, np.nan, y)
            if lags is None:
                C[:, no_data] = np.inf
            else:
                m = no_data.size
                for k in range(C.shape[0]):
                    cols = no_data[k:]
                    row = C[k, : m - k]
                    row[cols] = np.inf
    flags_star = fl.astype(dtype) if flags is not None else np.zeros(λ_out_s.size, dtype=np.uint64)
    return (y, C, flags_star, meta)


def _modes(p):
    """The mode numbers of a length-p coefficient vector in finufft's default (CMCL) order."""
    return np.arange(p) - p // 2


def _pre_matvec(c, p):
    """Hermitian-symmetric complex coefficients from frizzle's real representation."""
    c = np.asarray(c)
    f = 0.5 * np.hstack([c[: p // 2 + 1], np.zeros(p - p // 2 - 1)]) + 0.5j * np.hstack(
        [np.zeros(p // 2 + 1), c[p // 2 + 1 :]]
    )
    return f + np.conj(np.flip(f))


def _post_rmatvec(f, p):
    """The adjoint of :func:`_pre_matvec`: real parts of the first half, imaginary of the tail."""
    f_flat = np.asarray(f).flatten()
    return np.hstack([np.real(f_flat[: p // 2 + 1]), np.imag(f_flat[-(p - p // 2 - 1) :])])


def matvec(c, x, n_modes):
    """frizzle's design-matrix product: Re sum_k f_k exp(-i k x) with f = _pre_matvec(c)
    (finufft type 2, its default sign)."""
    x = np.asarray(x, dtype=float)
    f = _pre_matvec(c, n_modes)
    return np.real(np.exp(-1j * np.outer(x, _modes(n_modes))) @ f)


def rmatvec(f, x, n_modes):
    """The adjoint of :func:`matvec`: _post_rmatvec(sum_j f_j exp(+i k x_j)) (finufft type 1)."""
    x = np.asarray(x, dtype=float)
    g = np.exp(1j * np.outer(_modes(n_modes), x)) @ np.asarray(f).astype(complex)
    return _post_rmatvec(g, n_modes)


def ATCinvA(c, x, n_modes):
    """rmatvec(matvec(c))."""
    return rmatvec(matvec(c, x, n_modes), x, n_modes)


def matmat(c, x, n_modes):
    """:func:`matvec` over the rows of ``c``."""
    return np.stack([matvec(ci, x, n_modes) for ci in np.asarray(c)])


def rmatmat(f, x, n_modes):
    """:func:`rmatvec` over the rows of ``f``."""
    return np.stack([rmatvec(fi, x, n_modes) for fi in np.asarray(f)])
