"""Velocities and warnings of a combination as tables (no pandas needed).

``Result.velocities`` is the per-visit table that ``frizzview combine`` prints after a
combination (the velocity search and the check of the files' velocities against it), with the
fit's per-visit figures beside it: an ``astropy.table.Table`` when astropy is importable (columns
with units, the star-level figures in ``.meta``), a numpy record array otherwise
(``Result.velocity_table(astropy=False)`` asks for that explicitly; the star-level figures are
then in ``Result.velocity_summary``).

Columns (one row per visit, in the dataset's order):

=================  ==========================================================================
``name``           the visit's name (as in the warnings and ``exclude=``)
``file``           its file name ("" for visits built in Python)
``mjd``            MJD of the observation (NaN when unknown)
``included``       whether the visit entered the combination
``v_kms``          the velocity the combination used (km/s, observer frame, Vrel convention)
``v_source``       where ``v_kms`` came from, in words
``measured``       the search measured this visit's velocity (False: too faint, or no check)
``data_kms``       the data's velocity (relative velocities + the zero point; NaN if not
                   measured or not checked)
``err_kms``        its stated error (formal and the instrument floor in quadrature)
``formal_err_kms`` the formal error alone
``header_kms``     the file's velocity that was checked (apVisit VRAD, apStar, allVisit, ...;
                   NaN when the visit has none)
``replaced``       the header velocity disagreed with the data and was replaced
``bc_kms``         barycentric correction (NaN when unknown)
``v_bary_kms``     ``v_kms + bc_kms``
``peak_height``    the cross-correlation peak's height (correlation coefficient)
``peak_ratio``     the peak over the next-highest CCF value (the CLI's "peak/")
``fwhm_kms``       the peak's full width at half maximum (km/s; the CLI's "FWHM")
``snr``            S/N as the search measured it
``header_snr``     S/N the file states (NaN when none)
``chi2_nu``        the visit's chi^2/nu against the combined model (forward model; standard
                   practice's without it)
``loo_chi2_nu``    its leave-one-out chi^2/nu (forward model; NaN otherwise)
=================  ==========================================================================

The check runs when the shift source is a stellar velocity (``shift='vrad'``, the APOGEE
default, ``'apstar'``, ``'allvisit'``, ``'mwmvisit'``, ``'true'``); with ``shift='none'`` or
``'-bc'`` the check columns are NaN/False and ``Result.velocity_summary["checked"]`` is False.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

#: (column, key in the core's dict, numpy dtype or None for strings, unit)
_COLUMNS = (
    ("name", "name", None, None),
    ("file", "file", None, None),
    ("mjd", "mjd", np.float64, None),
    ("included", "included", np.bool_, None),
    ("v_kms", "v_kms", np.float64, "km/s"),
    ("v_source", "v_source", None, None),
    ("measured", "measured", np.bool_, None),
    ("data_kms", "data_kms", np.float64, "km/s"),
    ("err_kms", "err_kms", np.float64, "km/s"),
    ("formal_err_kms", "formal_err_kms", np.float64, "km/s"),
    ("header_kms", "external_kms", np.float64, "km/s"),
    ("replaced", "replaced", np.bool_, None),
    ("bc_kms", "bc_kms", np.float64, "km/s"),
    ("v_bary_kms", "v_bary_kms", np.float64, "km/s"),
    ("peak_height", "peak_height", np.float64, None),
    ("peak_ratio", "peak_ratio", np.float64, None),
    ("fwhm_kms", "fwhm_kms", np.float64, "km/s"),
    ("snr", "snr", np.float64, None),
    ("header_snr", "header_snr", np.float64, None),
    ("chi2_nu", "chi2_nu", np.float64, None),
    ("loo_chi2_nu", "loo_chi2_nu", np.float64, None),
)

#: Column names of :func:`table`, in order.
COLUMNS = tuple(c[0] for c in _COLUMNS)

_SUMMARY = (
    "checked",
    "external_kind",
    "zero_point_kms",
    "zero_point_err_kms",
    "zero_point_how",
    "rest_frame",
    "rest_frame_kms",
    "rest_frame_err_kms",
    "star",
    "zero_point_replaced",
)


def summary(v: Optional[dict]) -> Dict[str, Any]:
    """The star-level part of the core's velocity dict: whether the check ran, which external
    velocities it checked, the zero point (km/s, its error and how it was fixed), the rest frame
    (text and km/s), the barycentric figures (``star``: mean, scatter, chi^2, dof, RV-variable) and
    ``zero_point_replaced``."""
    if not v:
        return {"checked": False}
    return {k: v.get(k) for k in _SUMMARY}


def records(v: Optional[dict]) -> np.ndarray:
    """The per-visit table as a numpy record array (see the module docs for the columns)."""
    v = v or {}
    n = len(v.get("name", []))
    fields = []
    for col, key, dt, _ in _COLUMNS:
        if dt is None:
            width = max([1] + [len(str(s)) for s in v.get(key, [])])
            fields.append((col, f"U{width}"))
        else:
            fields.append((col, dt))
    out = np.zeros(n, dtype=fields)
    for col, key, dt, _ in _COLUMNS:
        if key in v and n:
            out[col] = np.asarray(v[key])
        elif dt is np.float64:
            out[col] = np.nan
    return out.view(np.recarray)


def table(v: Optional[dict], astropy: Optional[bool] = None):
    """The per-visit table: an ``astropy.table.Table`` (units on the velocity columns, the
    :func:`summary` in ``.meta``) when astropy is importable and ``astropy`` is not False, else
    the numpy record array of :func:`records`. ``astropy=True`` raises ImportError without it."""
    rec = records(v)
    if astropy is False:
        return rec
    try:
        from astropy.table import Table
        import astropy.units as u
    except ImportError:
        if astropy:
            raise
        return rec
    t = Table(np.asarray(rec), meta=summary(v))
    for col, _, _, unit in _COLUMNS:
        if unit is not None:
            t[col].unit = u.Unit(unit)
    return t


def text(v: Optional[dict]) -> str:
    """The table in the words of ``frizzview combine`` (data velocity, error, peak/, FWHM, the
    header velocity, replaced, v+BC, source used) with the zero point and the star's figures."""
    s = summary(v)
    if not s.get("checked"):
        return "velocities: not checked (shift source none or -BC, or the check is off)"
    rec = records(v)
    kind = s.get("external_kind") or "external"
    lines = [
        f"velocities from the data (zero point {s['zero_point_kms']:+.3f} +- "
        f"{s['zero_point_err_kms']:.3f} km/s: {s['zero_point_how']}):",
        f"  {s['rest_frame']}",
        f"  {'visit':<36} {'data km/s':>10} {'+-':>7} {'peak/':>6} {'FWHM':>7} {kind:>10} "
        f"{'replaced':>9} {'v+BC':>10}  used",
    ]

    def num(x, fmt):
        return "-" if not np.isfinite(x) else format(x, fmt)

    for r in rec:
        lines.append(
            f"  {r.name:<36} {r.data_kms:>10.3f} {r.err_kms:>7.3f} {r.peak_ratio:>6.2f} "
            f"{r.fwhm_kms:>7.1f} {num(r.header_kms, '.3f'):>10} {'yes' if r.replaced else 'no':>9} "
            f"{num(r.v_bary_kms, '.3f'):>10}  {r.v_source}"
        )
    st = s.get("star")
    if st:
        lines.append(
            f"star: mean barycentric velocity {st['mean_bary_kms']:.3f} km/s, scatter "
            f"{st['scatter_kms']:.3f} km/s over the visits, chi2 {st['chi2']:.2f} for {st['dof']} dof "
            f"of a constant velocity{' (looks RV-variable)' if st['rv_variable'] else ''}"
        )
    else:
        lines.append("star: no barycentric figures (fewer than two measured visits with a BC)")
    return "\n".join(lines)


def warning_table(recs: List[dict], astropy: Optional[bool] = None):
    """Warnings as a table with columns ``kind``, ``visit`` ("" when none) and ``message``
    (astropy Table or numpy record array, as :func:`table`)."""
    kind = [str(r.get("kind", "")) for r in recs]
    visit = [str(r.get("visit") or "") for r in recs]
    msg = [str(r.get("message", "")) for r in recs]
    w = lambda xs: max([1] + [len(x) for x in xs])  # noqa: E731
    out = np.zeros(len(recs), dtype=[("kind", f"U{w(kind)}"), ("visit", f"U{w(visit)}"),
                                     ("message", f"U{w(msg)}")])
    out["kind"], out["visit"], out["message"] = kind, visit, msg
    out = out.view(np.recarray)
    if astropy is False:
        return out
    try:
        from astropy.table import Table
    except ImportError:
        if astropy:
            raise
        return out
    return Table(np.asarray(out))
