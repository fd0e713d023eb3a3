"""frizzview: combine many visits of one star with the Frizzle forward model (Hogg & Casey 2024).

- :func:`frizzle`: a drop-in for ``frizzle.frizzle`` 0.2.8 (same inputs and outputs).
- :func:`read`: SDSS apVisit, BOSS spec, FITS/CSV tables and ``.npz`` bundles -> :class:`Dataset`.
- :func:`combine`: one star, every setting of ``frizzview combine`` as a keyword -> :class:`Result`
  (numpy arrays; ``Result.write`` writes apStar-like FITS, ``.npz`` or CSV).
- :func:`combine_many`: many stars in one call (stars in parallel).
- specutils ``Spectrum`` objects in (:func:`read`, :func:`combine`) and out
  (``MethodResult.to_spectrum``, ``MethodResult.covariance``): see :mod:`frizzview.astro`
  (specutils and astropy are optional).

Every call releases the GIL while it computes, on ``threads`` worker threads (default: the CPUs
this process may use) started for that call; the package keeps no global state, so it runs in
threads, process pools, Dask workers and Slurm array jobs alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _core
from . import astro as _astro
from . import notebook as _nb
from . import velocity as _vel
from .compat import frizzle
from . import image  # noqa: E402,F401  (frizzview.image.combine: the image mode)

__all__ = [
    "frizzle",
    "read",
    "combine",
    "combine_many",
    "synth_apogee",
    "Visit",
    "Dataset",
    "Result",
    "MethodResult",
    "OPTIONS",
]

#: Keyword arguments of :func:`combine` (the CLI's setting flags, ``-`` written ``_``).
OPTIONS = tuple(_core.OPTION_KEYS)


@dataclass
class Visit:
    """One exposure of the star on its own pixels (observed frame)."""

    wavelength_aa: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    flags: Optional[np.ndarray] = None
    bad: Optional[np.ndarray] = None
    selection: Optional[np.ndarray] = None
    flux_divided_by_selection: bool = False
    segments: List[tuple] = field(default_factory=list)
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.meta.get("name", "")

    @property
    def velocities(self) -> Dict[str, float]:
        """Known velocities (km/s) by meaning: ``Vrel`` (APOGEE VRAD), ``Bc``, ``Vhelio``, ``True``."""
        return {k: v for k, v in self.meta.get("velocities", [])}

    def _to_core(self) -> dict:
        n = np.asarray(self.wavelength_aa).size

        def f64(x):
            return _arr(x, np.float64)

        meta = dict(self.meta)
        meta.setdefault("name", "")
        return dict(
            wavelength_aa=f64(self.wavelength_aa),
            flux=f64(self.flux),
            ivar=f64(self.ivar),
            flags=None if self.flags is None else _arr(np.asarray(self.flags).astype(np.uint64), np.uint64),
            bad=None if self.bad is None else _arr(self.bad, bool),
            selection=None if self.selection is None else f64(self.selection),
            flux_divided_by_selection=bool(self.flux_divided_by_selection),
            segments=[(int(a), int(b)) for a, b in self.segments] or [(0, n)],
            meta_json=json.dumps(_meta_defaults(meta)),
        )


def _arr(x, dtype) -> np.ndarray:
    """A 1-D, C-contiguous, aligned copy or view (arrays unpickled by Dask may be unaligned)."""
    return np.require(np.asarray(x, dtype=dtype).ravel(), dtype=dtype, requirements=["C", "A"])


def _spectrum(s: Optional[dict]) -> Optional[dict]:
    if s is None:
        return None
    out = dict(s)
    for k in ("ln_wave", "flux", "ivar"):
        if k in out and out[k] is not None:
            out[k] = _arr(out[k], np.float64)
    return out


def _meta_defaults(meta: dict) -> dict:
    out = dict(
        name="",
        source=None,
        object=None,
        jd=None,
        snr=None,
        velocities=[],
        header=[],
        lsf_sigma_ln=None,
    )
    out.update(meta)
    if isinstance(out["velocities"], dict):
        out["velocities"] = [[k, float(v)] for k, v in out["velocities"].items()]
    return out


@dataclass
class Dataset:
    """Everything loaded for one star: visits, and optionally the grid that came with the input,
    a truth spectrum (synthetic data) and the pipeline's own coadd (BOSS)."""

    visits: List[Visit]
    name: str = ""
    survey: str = "generic"
    input_grid: Optional[dict] = None
    truth: Optional[dict] = None
    pipeline_coadd: Optional[dict] = None
    #: What reading found (e.g. visits of another object); carried into the combination's warnings.
    warnings: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.visits)

    def __repr__(self) -> str:
        return _nb.dataset_text(self)

    def _repr_html_(self) -> str:
        return _nb.dataset_html(self)

    @classmethod
    def _from_core(cls, d: dict) -> "Dataset":
        visits = [
            Visit(
                wavelength_aa=v["wavelength_aa"],
                flux=v["flux"],
                ivar=v["ivar"],
                flags=v["flags"],
                bad=v["bad"],
                selection=v["selection"],
                flux_divided_by_selection=v["flux_divided_by_selection"],
                segments=[tuple(s) for s in v["segments"]],
                meta=json.loads(v["meta_json"]),
            )
            for v in d["visits"]
        ]
        return cls(
            visits=visits,
            name=d["name"],
            survey=d["survey"],
            input_grid=d["input_grid"],
            truth=d["truth"],
            pipeline_coadd=d["pipeline_coadd"],
            warnings=list(d.get("warnings", [])),
        )

    def _to_core(self) -> dict:
        if self.survey not in ("apogee", "boss", "generic"):
            raise ValueError(f"survey={self.survey!r}: expected 'apogee', 'boss' or 'generic'")
        return dict(
            name=self.name,
            survey=self.survey,
            visits=[v._to_core() for v in self.visits],
            input_grid=_spectrum(self.input_grid),
            truth=_spectrum(self.truth),
            pipeline_coadd=_spectrum(self.pipeline_coadd),
            warnings=[str(w) for w in self.warnings],
        )


@dataclass
class MethodResult:
    """One method's combined spectrum on the output grid."""

    flux: np.ndarray
    var: np.ndarray
    #: (K+1, M) with ``band[k, l] = C[l, l+k]``, NaN past the end.
    band: np.ndarray
    flags: np.ndarray
    no_data: np.ndarray
    #: Output pixels with data that the data do not constrain (NaN flux and variance, as no-data).
    poorly_constrained: np.ndarray
    condition: Optional[float]
    visit_chi2_nu: np.ndarray
    visit_outlier_score: np.ndarray
    visit_prediction: List[np.ndarray]
    #: Each visit's chi^2/nu against the model fitted to the other visits (forward model).
    visit_loo_chi2_nu: np.ndarray
    v_fit_kms: Optional[np.ndarray] = None
    #: Per-visit errors of the fitted velocities, relative to the zero point (its error excluded).
    v_fit_err_kms: Optional[np.ndarray] = None
    #: The zero point the fitted velocities are relative to, its own error, and what it is.
    v_zero_kms: Optional[float] = None
    v_zero_err_kms: Optional[float] = None
    v_zero_ref: Optional[str] = None
    #: The output grid (Angstrom), the flux unit of the input Spectrum objects (None for files
    #: and arrays) and the settings and warnings of the combination: set by :class:`Result`.
    wavelength_aa: Optional[np.ndarray] = None
    flux_unit: Optional[str] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def sigma(self) -> np.ndarray:
        return np.sqrt(self.var)

    def to_spectrum(self):
        """This combined spectrum as a ``specutils.Spectrum``: flux (with the input Spectrum
        objects' unit, dimensionless otherwise), ``InverseVariance`` uncertainty (0 where the
        variance is not finite), ``mask`` True at no-data and unconstrained pixels (their flux is
        0), ``meta`` = {"settings": ..., "warnings": [...]}. Needs specutils."""
        if self.wavelength_aa is None:
            raise ValueError("this MethodResult has no output grid (it did not come from a Result)")
        return _astro.to_spectrum(self, self.wavelength_aa, self.flux_unit, dict(self.meta))

    def covariance(self):
        """The covariance band as an ``astropy.nddata.Covariance`` (astropy >= 7.1; needs scipy):
        entries C*[l, l+k] for k <= the band's lags, zero beyond them and at no-data pixels.
        Without astropy >= 7.1 use :attr:`band` (``band[k, l] = C*[l, l+k]``, NaN past the end)."""
        return _astro.covariance(self, self.flux_unit)


class Result:
    """A combination: numpy arrays (``wavelength_aa``, ``ln_wave``, ``forward``, ``standard``,
    ``visits``, ``warnings``, ``settings``) and :meth:`write`.

    Picklable (for process pools and Dask): the arrays travel; :meth:`write` after unpickling
    recomputes the combination from ``source`` with the recorded settings before writing.
    """

    def __init__(self, d: dict, handle=None, source=None):
        self.ln_wave: np.ndarray = d["ln_wave"]
        self.wavelength_aa: np.ndarray = d["wavelength_aa"]
        self.log10_linear = d["log10_linear"]
        self.forward: Optional[MethodResult] = MethodResult(**d["forward"]) if d["forward"] else None
        self.standard: Optional[MethodResult] = MethodResult(**d["standard"]) if d["standard"] else None
        self.visits: List[dict] = d["visits"]
        self.warnings: List[str] = d["warnings"]
        #: The warnings as dicts: ``kind`` (e.g. "VelocityReplaced"), ``visit`` (or None),
        #: ``message`` (as in :attr:`warnings`) and the numbers of the kind (see frizzview.velocity).
        self.warning_records: List[dict] = d.get("warning_records", [])
        self._velocity: Optional[dict] = d.get("velocity")
        self.settings_json: str = d["settings_json"]
        self._handle = handle
        self._source = source
        self._attach()

    def _attach(self, flux_unit: Optional[str] = None) -> None:
        for m in (self.forward, self.standard):
            if m is not None:
                m.wavelength_aa = self.wavelength_aa
                m.flux_unit = flux_unit
                m.meta = {"settings": self.settings_json, "warnings": list(self.warnings)}

    @property
    def velocities(self):
        """Per-visit velocities as ``frizzview combine`` prints them (search, check, header
        velocity, replaced, CCF quality, S/N, chi^2/nu, leave-one-out): an ``astropy.table.Table``
        when astropy is importable, else a numpy record array (:mod:`frizzview.velocity`)."""
        return _vel.table(self._velocity)

    def velocity_table(self, astropy: Optional[bool] = None):
        """:attr:`velocities`; ``astropy=False`` for the numpy record array."""
        return _vel.table(self._velocity, astropy)

    @property
    def velocity_summary(self) -> dict:
        """Zero point, rest frame and the star's barycentric figures of the velocity check."""
        return _vel.summary(self._velocity)

    def warning_table(self, astropy: Optional[bool] = None):
        """:attr:`warning_records` as a table (kind, visit, message)."""
        return _vel.warning_table(self.warning_records, astropy)

    @property
    def settings(self) -> dict:
        return json.loads(self.settings_json)

    def __getstate__(self):
        s = dict(self.__dict__)
        s["_handle"] = None
        return s

    def __repr__(self) -> str:
        return _nb.result_text(self)

    def _repr_html_(self) -> str:
        """Visits (included, velocity, pixels used, chi^2/nu, leave-one-out chi^2/nu), median
        S/N and warnings: what Jupyter shows for a result."""
        return _nb.result_html(self)

    def plot(self, method: str = "forward", ax=None):
        """The combined spectrum (with its 1-sigma band) over each visit's residuals in sigma;
        returns the matplotlib Figure (matplotlib is optional: ImportError without it). ``ax``:
        a pair of Axes to draw into."""
        return _nb.plot(self, method, ax)

    def write(self, path: Union[str, os.PathLike]) -> None:
        """Write apStar-like FITS (``.fits``), ``.npz`` or CSV (``.csv``/``.tsv``), atomically;
        an input file is never replaced."""
        if self._handle is None:
            if self._source is None:
                raise ValueError("this result has no source to recompute from")
            settings_file = None
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                settings_file = os.path.join(tmp, "settings.json")
                with open(settings_file, "w") as f:
                    f.write(self.settings_json)
                _, self._handle = _core.combine_one(self._source, {"settings": settings_file}, 1)
        self._handle.write(os.fspath(path))


def _paths(paths) -> List[str]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = [os.fspath(p) for p in paths]
    for p in out:
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def read(paths, *, allow_mixed: bool = False) -> Dataset:
    """Read one file, several files or folders of one star into a :class:`Dataset` (formats are
    detected from the content). Visits naming different objects are refused unless
    ``allow_mixed``. A ``specutils.Spectrum`` or a list of them (one per visit) is converted
    instead (:mod:`frizzview.astro`), with a warning naming what the objects did not carry."""
    if _astro.is_spectrum_list(paths):
        ds, warn = _astro.dataset_from_spectra(paths)
        _astro.warn_once(warn)
        return ds
    return Dataset._from_core(_core.read(_paths(paths), allow_mixed))


def _star(data):
    if _astro.is_spectrum_list(data):
        data, _ = _astro.dataset_from_spectra(data)
    if isinstance(data, Dataset):
        return data._to_core()
    return _paths(data)


def _check_threads(threads):
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1
    ):
        raise ValueError(f"threads={threads!r}: expected a positive integer or None")
    return None if threads is None else int(threads)


def combine(data, *, threads: Optional[int] = None, **settings) -> Result:
    """Combine one star: ``data`` is a :class:`Dataset`, a path or a list of paths.

    Keywords are the settings of ``frizzview combine`` (defaults follow the survey the data look
    like): ``grid`` ('apogee', 'boss', 'auto', 'input' or (log10_start, log10_step, n)),
    ``shift`` ('none', 'vrad', '-bc', 'true'), ``velocity`` ({visit: km/s}), ``weighting``
    ('ivar', 'uniform'), ``exclude`` ([visit, ...]), ``weight`` ({visit: w}), ``bad_bits``
    (int, 'apogee', 'boss', 'none'), ``selection`` ('ignore', 'multiply', 'divide'), ``method``
    ('forward', 'standard', 'both'), ``basis`` ('fourier', 'local'), ``compat`` ('frizzle'),
    ``modes`` (int), ``interp`` ('cubic', 'linear', 'sinc'), ``std_mask`` ('drop',
    'conservative'), ``lags`` (>= 5), ``fit_shifts``, ``robust`` ('huber:T', 'cauchy:T',
    'clip:T'), ``normalize`` (degree), ``lsf``, ``settings`` (a previous result file: take every
    setting from it), ``allow_mixed``. A visit is named by its name, file name or 0-based index.
    Bad values raise ``ValueError``; unknown keywords ``TypeError``.
    """
    threads = _check_threads(threads)
    extra: List[str] = []
    if _astro.is_spectrum_list(data):
        data, extra = _astro.dataset_from_spectra(data)
        _astro.warn_once(extra)
    src = _star(data)
    d, h = _core.combine_one(src, settings, threads)
    r = Result(d, h, src)
    if isinstance(data, Dataset):
        extra_w = list(getattr(data, "_warnings", []))
        r.warnings = extra_w + r.warnings
        r.warning_records = [dict(kind="Input", visit=None, message=m) for m in extra_w] + r.warning_records
        r._attach(getattr(data, "_flux_unit", None))
    return r


def combine_many(
    stars,
    *,
    threads: Optional[int] = None,
    out_dir: Optional[Union[str, os.PathLike]] = None,
    format: str = "fits",
    errors: str = "raise",
    **settings,
):
    """Combine many stars in one call, stars in parallel on ``threads`` threads.

    ``stars`` is a dict {name: data} or a sequence of data (each a :class:`Dataset`, a path or a
    list of paths). Returns results in the same shape (dict or list). With ``out_dir`` each
    result is also written to ``out_dir/NAME.FORMAT`` (format 'fits', 'npz', 'csv' or 'tsv').
    ``errors='raise'`` raises ``ValueError`` naming the first failed star; ``errors='keep'``
    puts a ``ValueError`` in its place. Settings keywords as in :func:`combine`.
    """
    threads = _check_threads(threads)
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors={errors!r}: expected 'raise' or 'keep'")
    if format not in ("fits", "npz", "csv", "tsv"):
        raise ValueError(f"format={format!r}: expected 'fits', 'npz', 'csv' or 'tsv'")
    if isinstance(stars, dict):
        names = [str(k) for k in stars]
        items = list(stars.values())
    else:
        items = list(stars)
        names = [_default_name(i, s) for i, s in enumerate(items)]
    for n in names:
        if "/" in n or os.sep in n:
            raise ValueError(f"star name {n!r} must not contain a path separator")
    srcs = [_star(s) for s in items]
    raw = _core.combine_many(
        srcs, names, settings, threads, None if out_dir is None else os.fspath(out_dir), format
    )
    out = []
    for r, src in zip(raw, srcs):
        if isinstance(r, str):
            if errors == "raise":
                raise ValueError(r)
            out.append(ValueError(r))
        else:
            out.append(Result(r[0], r[1], src))
    if isinstance(stars, dict):
        return dict(zip(stars.keys(), out))
    return out


def _default_name(i, s) -> str:
    if isinstance(s, Dataset) and s.name:
        return s.name.replace("/", "_")
    if isinstance(s, (str, os.PathLike)):
        return os.path.splitext(os.path.basename(os.fspath(s)))[0]
    return f"star{i}"


def synth_apogee(visits: int = 12, seed: int = 1, truth_seed: int = 42, clean: bool = False) -> Dataset:
    """A seeded synthetic APOGEE-like star (the generator of ``frizzview synth apogee``): 3 chips
    x 4096 px per visit, tellurics, sky lines and detector defects (none with ``clean``)."""
    return Dataset._from_core(_core.synth_apogee(visits, seed, truth_seed, clean))
