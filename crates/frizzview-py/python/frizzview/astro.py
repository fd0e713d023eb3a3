"""specutils and astropy objects in and out of frizzview (both optional: imported lazily).

In: :func:`frizzview.read` and :func:`frizzview.combine` accept a ``specutils.Spectrum`` (or
``Spectrum1D`` for specutils < 2) or a list of them, one per visit. Used from each: the spectral
axis (any spectral unit, converted to vacuum-agnostic Angstrom as given), the flux (its unit is
kept for the output), the uncertainty (``InverseVariance``, ``StdDevUncertainty`` or
``VarianceUncertainty``; none = unit weights), the mask (True = bad) and, from
``meta["header"]``, the object name and the telescope. Chips are found at the wavelength gaps
(a step more than 5x the median step, or a turn in direction). What a Spectrum does not carry
(pixel flags, velocities, a mask, an uncertainty) is named in a warning.

Out: ``result.forward.to_spectrum()`` (a ``specutils.Spectrum``) and
``result.forward.covariance()`` (an ``astropy.nddata.Covariance`` for astropy >= 7.1).
"""

from __future__ import annotations

import warnings as _warnings
from typing import List, Optional, Tuple

import numpy as np

#: A step this many times the median |step| (or a change of direction) starts a new chip.
GAP_FACTOR = 5.0


def is_spectrum(obj) -> bool:
    """True for a specutils ``Spectrum``/``Spectrum1D`` (checked without importing specutils)."""
    t = type(obj)
    return (
        t.__name__ in ("Spectrum", "Spectrum1D")
        and t.__module__.startswith("specutils")
        and hasattr(obj, "spectral_axis")
    )


def is_spectrum_list(obj) -> bool:
    if is_spectrum(obj):
        return True
    return isinstance(obj, (list, tuple)) and len(obj) > 0 and all(is_spectrum(s) for s in obj)


def chips(wave: np.ndarray) -> List[Tuple[int, int]]:
    """Monotonic runs of ``wave`` split at gaps (steps > GAP_FACTOR x the median |step|)."""
    n = wave.size
    if n < 2:
        return [(0, n)]
    d = np.diff(wave)
    med = np.median(np.abs(d[d != 0])) if np.any(d != 0) else 0.0
    cut = np.abs(d) > GAP_FACTOR * med
    cut[1:] |= np.sign(d[1:]) != np.sign(d[:-1])
    cut |= d == 0
    starts = [0] + [int(i) + 1 for i in np.flatnonzero(cut)]
    ends = starts[1:] + [n]
    return [(a, b) for a, b in zip(starts, ends) if b > a]


def _ivar(s, n: int, missing: list) -> np.ndarray:
    unc = s.uncertainty
    if unc is None:
        missing.add("an uncertainty (unit weights used)")
        return np.ones(n)
    kind = type(unc).__name__
    a = np.asarray(unc.array, dtype=np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "InverseVariance":
            iv = a
        elif kind == "StdDevUncertainty":
            iv = 1.0 / (a * a)
        elif kind == "VarianceUncertainty":
            iv = 1.0 / a
        else:
            raise ValueError(
                f"uncertainty of type {kind}: expected InverseVariance, StdDevUncertainty or "
                "VarianceUncertainty"
            )
    return np.where(np.isfinite(iv) & (iv > 0), iv, 0.0)


def _header(s) -> dict:
    h = (getattr(s, "meta", None) or {}).get("header")
    try:
        return dict(h) if h is not None else {}
    except (TypeError, ValueError):
        return {}


def dataset_from_spectra(spectra, name: Optional[str] = None):
    """A :class:`frizzview.Dataset` and the list of warnings from specutils Spectrum objects."""
    import astropy.units as u

    from . import Dataset, Visit

    if is_spectrum(spectra):
        spectra = [spectra]
    missing = set()
    visits = []
    flux_unit = None
    survey = "generic"
    obj = None
    for i, s in enumerate(spectra):
        if getattr(s, "flux", None) is None or np.ndim(s.flux) != 1:
            raise ValueError(
                f"spectrum {i}: expected a 1-D Spectrum (one visit), got flux of shape "
                f"{np.shape(getattr(s, 'flux', None))}"
            )
        wave = s.spectral_axis.to_value(u.AA, equivalencies=u.spectral()).astype(np.float64)
        flux = np.asarray(s.flux.value, dtype=np.float64)
        unit = s.flux.unit.to_string() if s.flux.unit not in (None, u.dimensionless_unscaled) else None
        if i == 0:
            flux_unit = unit
        elif unit != flux_unit:
            raise ValueError(f"spectrum {i}: flux unit {unit!r} differs from spectrum 0's {flux_unit!r}")
        ivar = _ivar(s, flux.size, missing)
        if s.mask is None:
            missing.add("a mask")
            bad = None
        else:
            bad = np.asarray(s.mask).astype(bool).ravel()
        bad = ~np.isfinite(flux) if bad is None else bad | ~np.isfinite(flux)
        flux = np.where(np.isfinite(flux), flux, 0.0)
        h = _header(s)
        tel = str(h.get("TELESCOP", "")).lower()
        if tel in ("apo25m", "lco25m") or str(h.get("INSTRUME", "")).lower().startswith("apogee"):
            survey = "apogee"
        obj = obj or h.get("OBJID") or h.get("OBJECT")
        vname = h.get("FILENAME") or h.get("FILE") or f"spectrum {i}"
        visits.append(
            Visit(
                wavelength_aa=wave,
                flux=flux,
                ivar=ivar,
                bad=bad if bad.any() else None,
                segments=chips(wave),
                meta=dict(name=str(vname), object=None if obj is None else str(obj)),
            )
        )
    missing |= {"pixel flags", "velocities (the combination is not shifted unless shift/velocity is given)"}
    warn = [
        "the Spectrum objects did not carry: " + ", ".join(sorted(missing))
        + f"; chips were found at wavelength gaps ({', '.join(str(len(v.segments)) for v in visits)} per visit)"
    ]
    ds = Dataset(visits=visits, name=name or (str(obj) if obj else "spectra"), survey=survey)
    ds._flux_unit = flux_unit
    ds._warnings = warn
    return ds, warn


def to_spectrum(method, wavelength_aa: np.ndarray, flux_unit: Optional[str], meta: dict):
    """A ``specutils.Spectrum`` of one method's combined spectrum."""
    import astropy.units as u
    from astropy.nddata import InverseVariance

    try:
        from specutils import Spectrum
    except ImportError:  # specutils < 2
        from specutils import Spectrum1D as Spectrum
    var = np.asarray(method.var, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ivar = np.where(np.isfinite(var) & (var > 0), 1.0 / var, 0.0)
    mask = np.asarray(method.no_data, bool) | ~np.isfinite(method.flux) | (ivar == 0)
    unit = u.Unit(flux_unit) if flux_unit else u.dimensionless_unscaled
    flux = np.where(mask, 0.0, method.flux)
    return Spectrum(
        flux=flux * unit,
        spectral_axis=np.asarray(wavelength_aa, dtype=np.float64) * u.AA,
        uncertainty=InverseVariance(ivar / unit**2),
        mask=mask,
        meta=meta,
    )


def covariance(method, flux_unit: Optional[str]):
    """The covariance band as an ``astropy.nddata.Covariance`` (astropy >= 7.1), with the
    no-data pixels (NaN in the band) left out, i.e. zero."""
    try:
        from astropy.nddata import Covariance
    except ImportError as e:  # astropy < 7.1
        raise ImportError(
            "astropy.nddata.Covariance needs astropy >= 7.1; use MethodResult.band "
            "(band[k, l] = C*[l, l+k]) instead"
        ) from e
    import astropy.units as u
    from scipy import sparse

    band = np.asarray(method.band, dtype=np.float64)
    n = band.shape[1]
    rows, cols, vals = [], [], []
    for k in range(band.shape[0]):
        l = np.arange(n - k)
        v = band[k, : n - k]
        ok = np.isfinite(v) & (v != 0)
        rows += [l[ok]]
        cols += [l[ok] + k]
        vals += [v[ok]]
        if k:
            rows += [l[ok] + k]
            cols += [l[ok]]
            vals += [v[ok]]
    m = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    unit = (u.Unit(flux_unit) ** 2) if flux_unit else None
    return Covariance(array=m, unit=unit)


def warn_once(msgs):
    for m in msgs:
        _warnings.warn(m, stacklevel=3)
