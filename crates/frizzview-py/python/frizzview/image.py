"""frizzview.image: combine dithered image exposures by the 2-D Frizzle forward model, beside drizzle.

:func:`combine` runs the same pipeline as ``frizzview image combine`` (and the window's images
mode): the output grid (TAN, north up, at the inputs' own scale unless ``scale``/``size``/
``center`` say otherwise), each exposure's pixmap from its WCS (TAN, TAN-SIP, TPV), from
``shifts`` or from given ``pixmaps``; the DQ policy; per-exposure sky offsets; both methods.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _core

__all__ = ["combine", "ImageResult"]


@dataclass
class ImageResult:
    """Both methods' products on one output grid.

    ``sci``, ``var`` (``var_kind``: ``"EXACT"``, ``"PROBE n"`` or ``"NONE"``), ``coverage``, ``dq``
    (bit 1: no data), ``residuals`` (one per exposure, NaN where unused) are the forward model's;
    ``drz_sci``, ``drz_wht``, ``drz_var`` (squared-weight, covariance ignored), ``drz_ctx`` are
    drizzle's. ``wcs_header`` is a dict of FITS cards (``astropy.wcs.WCS(result.wcs_header)``;
    empty without a sky WCS). ``exposures`` is the per-exposure table (name, include, weight, sky,
    drz_sky, chi2_nu, loo_chi2_nu). ``noise_corr``/``drz_noise_corr``: lags 1..3 along x (row 0)
    and y (row 1) at the output centre. ``aperture``: when asked, ``frizzle = (sum, variance)``
    and ``drizzle = (sum, exact variance, per-pixel VAR sum)``.
    """

    sci: Optional[np.ndarray]
    var: Optional[np.ndarray]
    var_kind: Optional[str]
    coverage: Optional[np.ndarray]
    dq: Optional[np.ndarray]
    residuals: List[np.ndarray]
    drz_sci: Optional[np.ndarray]
    drz_wht: Optional[np.ndarray]
    drz_var: Optional[np.ndarray]
    drz_ctx: Optional[np.ndarray]
    wcs_header: Dict[str, Any]
    exposures: List[Dict[str, Any]]
    noise_corr: Any = None
    drz_noise_corr: Any = None
    iterations: Optional[int] = None
    aperture: Optional[Dict[str, Any]] = None
    pixmaps: List[np.ndarray] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _is_path(x) -> bool:
    return isinstance(x, (str, bytes, os.PathLike))


def combine(
    inputs: Sequence[Any],
    *,
    scale: Optional[float] = None,
    size: Optional[Tuple[int, int]] = None,
    center: Optional[Tuple[float, float]] = None,
    pixfrac: float = 1.0,
    sky: bool = True,
    ridge: float = 0.0,
    pad: int = 0,
    exclude: Sequence[str] = (),
    weight: Optional[Dict[str, float]] = None,
    flux_scale: Optional[Dict[str, float]] = None,
    dq: Optional[Dict[int, str]] = None,
    shifts: Optional[Sequence[Sequence[float]]] = None,
    zoom: float = 1.0,
    pixmaps: Optional[Sequence[np.ndarray]] = None,
    out_shape: Optional[Tuple[int, int]] = None,
    probes: int = 32,
    loo: bool = True,
    max_iter: int = 3000,
    aperture: Optional[Tuple[float, float, float]] = None,
    aperture_pixels: bool = False,
    annulus: Optional[Tuple[float, float]] = None,
    output: Optional[str] = None,
    threads: Optional[int] = None,
) -> ImageResult:
    """Combine exposures: ``inputs`` is a list of image files (FITS, .npy, TIFF; companions such
    as NOIRLab ``oow``/``ood`` are found beside them) or of arrays (a 2-D ``sci`` or a pair
    ``(sci, ivar)``; their geometry then comes from ``shifts`` or ``pixmaps``).

    Settings as ``frizzview image combine``: ``scale`` (arcsec/px), ``size`` ``(nx, ny)``,
    ``center`` ``(ra, dec)`` deg, ``pixfrac``, ``sky`` (fit per-exposure offsets), ``ridge``,
    ``pad``, ``exclude`` (names), ``weight`` ``{name: w}``, ``flux_scale`` ``{name: f}`` (data times f, e.g.
    to nanomaggies), ``dq`` ``{code_or_bit: "bad" |
    "ignore" | "inflate:F"}`` (others bad), ``shifts`` ``[(dx, dy[, theta_deg]), ...]`` in input
    pixels with ``zoom`` output pixels per input pixel, ``pixmaps`` (ny, nx, 2) with
    ``out_shape`` ``(ny, nx)``, ``probes`` (variance probes beyond the exact size; 0 = none),
    ``loo``, ``aperture`` ``(ra, dec, r_arcsec)`` (or ``(x, y, r_px)`` with
    ``aperture_pixels=True``) with ``annulus`` (default 1.5 r to 2.5 r), ``output`` (a FITS file
    written atomically).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    if not inputs:
        raise ValueError("no inputs")
    paths = arrays = None
    if all(_is_path(x) for x in inputs):
        paths = [os.fspath(x) for x in inputs]
    else:
        arrays = []
        for k, x in enumerate(inputs):
            if isinstance(x, tuple) and len(x) == 2:
                s, w = x
            else:
                s, w = x, None
            s = np.ascontiguousarray(s, dtype=np.float64)
            if s.ndim != 2:
                raise ValueError(f"inputs[{k}]: expected a 2-D image, got shape {s.shape}")
            w = np.ones_like(s) if w is None else np.ascontiguousarray(w, dtype=np.float64)
            arrays.append((s, w))
    sh = None
    if shifts is not None:
        sh = []
        for k, r in enumerate(shifts):
            r = [float(v) for v in r]
            if len(r) not in (2, 3):
                raise ValueError(f"shifts[{k}]: expected (dx, dy) or (dx, dy, theta_deg)")
            sh.append((r[0], r[1], r[2] if len(r) == 3 else 0.0))
    pm = None
    if pixmaps is not None:
        pm = [np.ascontiguousarray(p, dtype=np.float64) for p in pixmaps]
    ap = None
    if aperture is not None:
        a = [float(v) for v in aperture]
        if len(a) != 3:
            raise ValueError("aperture: expected (ra, dec, r_arcsec) or (x, y, r_px)")
        ap = (a[0], a[1], a[2], bool(aperture_pixels))
    d = _core.image_combine(
        paths=paths,
        arrays=arrays,
        scale=scale,
        size=None if size is None else (int(size[0]), int(size[1])),
        center=None if center is None else (float(center[0]), float(center[1])),
        pixfrac=float(pixfrac),
        sky=bool(sky),
        ridge=float(ridge),
        pad=int(pad),
        exclude=[str(e) for e in exclude],
        weights=[(str(k), float(v)) for k, v in (weight or {}).items()],
        flux_scales=[(str(k), float(v)) for k, v in (flux_scale or {}).items()],
        dq=None if dq is None else [(int(k), str(v)) for k, v in dq.items()],
        shifts=sh,
        zoom=float(zoom),
        pixmaps=pm,
        out_shape=None if out_shape is None else (int(out_shape[0]), int(out_shape[1])),
        probes=int(probes),
        loo=bool(loo),
        max_iter=int(max_iter),
        aperture=ap,
        annulus=None if annulus is None else (float(annulus[0]), float(annulus[1])),
        output=None if output is None else os.fspath(output),
        threads=threads,
    )
    return ImageResult(
        sci=d.get("sci"),
        var=d.get("var"),
        var_kind=d.get("var_kind"),
        coverage=d.get("coverage"),
        dq=d.get("dq"),
        residuals=list(d.get("residuals", [])),
        drz_sci=d.get("drz_sci"),
        drz_wht=d.get("drz_wht"),
        drz_var=d.get("drz_var"),
        drz_ctx=d.get("drz_ctx"),
        wcs_header=dict(d.get("wcs_header", {})),
        exposures=list(d.get("exposures", [])),
        noise_corr=d.get("noise_corr"),
        drz_noise_corr=d.get("drz_noise_corr"),
        iterations=d.get("iterations"),
        aperture=d.get("aperture"),
        pixmaps=list(d.get("pixmaps", [])),
        notes=list(d.get("notes", [])),
        warnings=list(d.get("warnings", [])),
    )
