"""frizzview.image.combine on real DECam data (legacypipe testcase3, z band) and on arrays."""

import numpy as np
import pytest

from conftest import REPO, need

import frizzview.image as fimg

TESTCASE3 = REPO.parent / "shared" / "data" / "images" / "legacypipe" / "testcase3"


def _z_images():
    return sorted(str(p) for p in TESTCASE3.rglob("*_ooi_z_*.fits"))


def test_real_decam_testcase3_z_band(tmp_path):
    need(TESTCASE3.is_dir(), f"the real DECam data at {TESTCASE3}")
    paths = _z_images()
    assert len(paths) == 3
    out = tmp_path / "z.fits"
    r = fimg.combine(paths, probes=4, loo=False, output=str(out))
    ny, nx = r.sci.shape
    assert r.drz_sci.shape == (ny, nx) and r.var.shape == (ny, nx)
    assert np.isfinite(r.sci).all()
    assert r.var_kind == "PROBE 4"
    assert [e["name"] for e in r.exposures] == [
        p.rsplit("/", 1)[1][: -len(".fits")] for p in paths
    ]
    for e in r.exposures:
        assert 0.2 < e["chi2_nu"] < 5.0, e
    assert r.exposures[0]["sky"] == 0.0
    assert any("units unknown" in n for n in r.notes)
    # Interior agreement of the two methods' images (same sky level after skymatch): the
    # difference is small against the galaxy's peak.
    m = 6
    diff = (r.sci - r.drz_sci)[m:-m, m:-m]
    peak = np.nanmax(r.drz_sci[m:-m, m:-m]) - np.nanmedian(r.drz_sci)
    assert np.nanmedian(np.abs(diff)) < 0.05 * peak
    # The WCS header gives astropy the grid our file holds.
    astropy = pytest.importorskip("astropy")
    from astropy.io import fits
    from astropy.wcs import WCS

    w = WCS(r.wcs_header)
    with fits.open(out) as h:
        assert np.array_equal(h["SCI"].data, r.sci)
        w2 = WCS(h["SCI"].header)
    a = w.pixel_to_world_values([0.0, nx - 1.0], [0.0, ny - 1.0])
    b = w2.pixel_to_world_values([0.0, nx - 1.0], [0.0, ny - 1.0])
    assert np.allclose(a, b, atol=1e-12, rtol=0)
    del astropy


def test_arrays_with_shifts_and_a_bad_input():
    rng = np.random.default_rng(3)
    shifts = [(0.0, 0.0), (0.31, 0.12), (0.07, 0.55), (0.62, 0.41), (0.44, 0.83)]
    imgs = [(3.0 + rng.standard_normal((12, 12)), np.ones((12, 12))) for _ in shifts]
    r = fimg.combine(imgs, shifts=shifts, aperture=(5.5, 5.5, 2.0), aperture_pixels=True)
    assert r.sci.shape == (12, 12) and r.wcs_header == {}
    f, v = r.aperture["frizzle"]
    assert v > 0 and abs(f) < 6 * np.sqrt(v)
    with pytest.raises(ValueError, match="shifts for"):
        fimg.combine(imgs, shifts=shifts[:2])
    with pytest.raises(ValueError, match="no celestial WCS"):
        fimg.combine(imgs)
