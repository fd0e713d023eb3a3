"""specutils and astropy objects in and out (frizzview.astro): the real apVisits read by
specutils' own "APOGEE apVisit" loader, uncertainty kinds, masks, to_spectrum and Covariance."""

import warnings

import numpy as np
import pytest

import frizzview
from frizzview import astro

from conftest import REAL_STAR, need

specutils = pytest.importorskip("specutils", reason="specutils is not installed (optional)")
u = pytest.importorskip("astropy.units")
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty  # noqa: E402

try:
    from specutils import Spectrum
except ImportError:  # specutils < 2
    from specutils import Spectrum1D as Spectrum

#: Settings that make a combination of Spectrum objects comparable with one of the same files
#: read by frizzview: no velocity shift (a Spectrum carries none) and the selection function
#: ignored (a Spectrum carries none); the file-read dataset also loses its flags and bad-pixel
#: mask (the loader's Spectrum has no mask).
SAME = dict(shift="none", selection="ignore", threads=2)


@pytest.fixture(scope="module")
def apvisits():
    files = sorted(REAL_STAR.glob("apVisit*.fits"))
    need(len(files) == 3, f"the real star's three apVisit files in {REAL_STAR}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spectra = [Spectrum.read(f, format="APOGEE apVisit") for f in files]
    return files, spectra


def test_specutils_apvisits_combine_like_the_files(apvisits):
    files, spectra = apvisits
    # What specutils' loader gives: one 12288-pixel spectrum per file, StdDev, no mask.
    for s in spectra:
        assert s.flux.shape == (12288,)
        assert isinstance(s.uncertainty, StdDevUncertainty)
        assert s.mask is None
    with pytest.warns(UserWarning, match="did not carry: a mask, pixel flags, velocities"):
        ds = frizzview.read(spectra)
    # The three chips are found at the two wavelength gaps (the files' own chip layout).
    from_files = frizzview.read([str(f) for f in files])
    assert ds.survey == from_files.survey == "apogee"
    assert ds.name == from_files.name
    for a, b in zip(ds.visits, from_files.visits):
        assert a.segments == b.segments == [(0, 4096), (4096, 8192), (8192, 12288)]
        np.testing.assert_array_equal(a.wavelength_aa, b.wavelength_aa)
        np.testing.assert_array_equal(a.flux, b.flux)
        np.testing.assert_allclose(a.ivar, b.ivar, rtol=1e-12)
    with pytest.warns(UserWarning, match="did not carry"):
        r1 = frizzview.combine(spectra, **SAME)
    for v in from_files.visits:
        v.flags = None
        v.bad = None
        v.selection = None
        v.meta["velocities"] = []
    r2 = frizzview.combine(from_files, **SAME)
    assert any("did not carry" in w for w in r1.warnings)
    for m in ("forward", "standard"):
        a, b = getattr(r1, m), getattr(r2, m)
        assert (a is None) == (b is None)
        if a is None:
            continue
        np.testing.assert_array_equal(a.no_data, b.no_data)
        ok = np.isfinite(b.flux)
        assert ok.sum() > 7000
        np.testing.assert_allclose(a.flux[ok], b.flux[ok], rtol=1e-12, atol=0)
        np.testing.assert_allclose(a.var[ok], b.var[ok], rtol=1e-10, atol=0)


def test_to_spectrum_works_with_specutils_arithmetic(apvisits):
    _, spectra = apvisits
    with pytest.warns(UserWarning):
        r = frizzview.combine(spectra, **SAME)
    f = r.forward
    sp = f.to_spectrum()
    assert isinstance(sp, Spectrum)
    assert sp.flux.unit == spectra[0].flux.unit
    assert sp.spectral_axis.unit == u.AA
    np.testing.assert_array_equal(sp.spectral_axis.value, r.wavelength_aa)
    assert isinstance(sp.uncertainty, InverseVariance)
    good = ~sp.mask
    assert good.sum() > 7000 and sp.mask[f.no_data].all()
    np.testing.assert_array_equal(sp.flux.value[good], f.flux[good])
    np.testing.assert_allclose(sp.uncertainty.array[good], 1 / f.var[good], rtol=1e-15)
    assert "settings" in sp.meta and sp.meta["warnings"] == r.warnings
    # specutils arithmetic: a sum and a scaling propagate flux and the inverse variance.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        twice = sp + sp
        half = sp * 0.5
    np.testing.assert_allclose(twice.flux.value[good], 2 * f.flux[good], rtol=1e-14)
    np.testing.assert_allclose(half.flux.value[good], 0.5 * f.flux[good], rtol=1e-14)
    # (astropy propagates as if the two operands were independent: var = 2 var.)
    var2 = twice.uncertainty.represent_as(VarianceUncertainty).array[good]
    np.testing.assert_allclose(var2, 2 * f.var[good], rtol=1e-10)
    # A slice by wavelength keeps what it should.
    sub = sp[15200 * u.AA : 15300 * u.AA]
    assert 0 < sub.flux.size < sp.flux.size


def test_jdaviz_loads_the_spectrum(apvisits):
    jdaviz = pytest.importorskip(
        "jdaviz", reason="jdaviz is not installed (a Jupyter application; optional, not in CI)"
    )
    _, spectra = apvisits
    with pytest.warns(UserWarning):
        sp = frizzview.combine(spectra, **SAME).forward.to_spectrum()
    viz = jdaviz.Specviz()
    viz.load_data(sp, data_label="frizzview")
    assert "frizzview" in " ".join(viz.data_collection.labels)


def test_covariance_object_equals_the_band():
    pytest.importorskip("scipy")
    nddata = pytest.importorskip("astropy.nddata")
    if not hasattr(nddata, "Covariance"):
        pytest.skip("astropy.nddata.Covariance needs astropy >= 7.1")
    r = frizzview.combine(frizzview.synth_apogee(visits=4, seed=3), lags=5, threads=2)
    f = r.forward
    cov = f.covariance().to_dense()
    n = f.flux.size
    assert cov.shape == (n, n)
    worst = 0.0
    for k in range(f.band.shape[0]):
        l = np.arange(n - k)
        b = f.band[k, : n - k]
        ok = np.isfinite(b)
        assert ok.sum() > n // 2
        np.testing.assert_array_equal(cov[l[ok], l[ok] + k], b[ok])
        np.testing.assert_array_equal(cov[l[ok] + k, l[ok]], b[ok])
        assert np.all(cov[l[~ok], l[~ok] + k] == 0)
        worst = max(worst, k)
    # Nothing beyond the band.
    assert np.count_nonzero(np.triu(cov, worst + 1)) == 0


def _spec(wave, flux, unc=None, mask=None):
    return Spectrum(flux=flux * u.Jy, spectral_axis=wave * u.nm, uncertainty=unc, mask=mask)


def test_uncertainty_kinds_masks_units_and_chips():
    wave = np.concatenate([np.linspace(1500.0, 1510.0, 200), np.linspace(1520.0, 1530.0, 200)])
    flux = 1 + 0.01 * np.sin(wave)
    sigma = np.full(wave.size, 0.02)
    mask = np.zeros(wave.size, bool)
    mask[7] = True
    kinds = [
        StdDevUncertainty(sigma),
        VarianceUncertainty(sigma**2),
        InverseVariance(1 / sigma**2),
    ]
    with pytest.warns(UserWarning, match="pixel flags"):
        ds = frizzview.read([_spec(wave, flux, k, mask) for k in kinds])
    for v in ds.visits:
        np.testing.assert_allclose(v.ivar, 1 / sigma**2, rtol=1e-12)
        np.testing.assert_array_equal(v.bad, mask)
        # nm -> Angstrom; the two chips split at the 10 nm gap.
        np.testing.assert_allclose(v.wavelength_aa, wave * 10, rtol=1e-15)
        assert v.segments == [(0, 200), (200, 400)]
    with pytest.warns(UserWarning, match="an uncertainty"):
        ds = frizzview.read(_spec(wave, flux))
    assert np.all(ds.visits[0].ivar == 1)
    with pytest.warns(UserWarning):
        r = frizzview.combine([_spec(wave, flux, kinds[0]), _spec(wave, flux, kinds[0])], threads=1)
    assert r.forward.to_spectrum().flux.unit == u.Jy
    with pytest.raises(ValueError, match="flux unit"):
        frizzview.read([_spec(wave, flux), Spectrum(flux=flux * u.mJy, spectral_axis=wave * u.nm)])
    assert astro.chips(np.array([3.0, 2.0, 1.0, 5.0, 6.0])) == [(0, 3), (3, 5)]


def test_notebook_reprs_and_plot():
    mpl = pytest.importorskip("matplotlib", reason="matplotlib is not installed (optional)")
    mpl.use("Agg")
    ds = frizzview.synth_apogee(visits=3, seed=5)
    assert repr(ds).startswith("<frizzview.Dataset") and "3 visits" in repr(ds)
    h = ds._repr_html_()
    assert h.count("<tr>") == 4 and "S/N" in h
    r = frizzview.combine(ds, threads=1)
    text = repr(r)
    assert text.startswith("<frizzview.Result 3 visits") and "chi2/nu" in text
    h = r._repr_html_()
    assert "leave-one-out" in h and h.count("<tr>") == 4
    for v in r.visits:
        assert html_escape_ok(v["name"], h)
    fig = r.plot()
    top, bottom = fig.axes[:2]
    assert len(top.lines) == 1 and len(bottom.lines) == 3
    np.testing.assert_array_equal(top.lines[0].get_ydata(), r.forward.flux)


def html_escape_ok(name, h):
    import html as _h

    return _h.escape(name) in h
