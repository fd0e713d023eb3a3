"""frizzview.read / combine / combine_many / Result.write on the SDSS fixtures."""

import csv
import pickle

import numpy as np
import pytest

import frizzview

from conftest import FIXTURES, REAL_STAR, need

APVISIT = FIXTURES / "apVisit-r13-5095-55844-128.fits"
APVISIT2 = FIXTURES / "apVisit-r13-9518-57729-104.fits"
BOSS = FIXTURES / "spec-3586-55181-0500.fits"


def test_read_apvisit_matches_the_file_read_by_astropy():
    fits = pytest.importorskip("astropy.io.fits")
    d = frizzview.read(APVISIT)
    assert d.survey == "apogee" and len(d) == 1
    v = d.visits[0]
    assert v.segments == [(0, 4096), (4096, 8192), (8192, 12288)]
    with fits.open(APVISIT) as h:
        flux = np.asarray(h[1].data, dtype=float).ravel()
        err = np.asarray(h[2].data, dtype=float).ravel()
        mask = np.asarray(h[3].data).astype(np.int64).ravel()
        wave = np.asarray(h[4].data, dtype=float).ravel()
        vrad = h[0].header["VRAD"]
        objid = h[0].header["OBJID"]
        tell = np.asarray(h[7].data, dtype=float).ravel() if len(h) > 7 else None
    np.testing.assert_array_equal(v.wavelength_aa, wave)
    np.testing.assert_array_equal(v.flux, flux)
    np.testing.assert_array_equal(v.flags, mask.astype(np.uint64))
    good = np.isfinite(err) & (err > 0) & (err < 1e10)
    np.testing.assert_allclose(v.ivar[good], 1.0 / err[good] ** 2, rtol=1e-12)
    assert np.all(v.ivar[~good] == 0)
    assert v.velocities["Vrel"] == pytest.approx(vrad)
    assert v.meta["object"] == objid.strip()
    if tell is not None and tell.size == flux.size:
        np.testing.assert_array_equal(v.selection, tell)


def test_read_refuses_mixed_objects_unless_allowed():
    with pytest.raises(ValueError, match="different objects"):
        frizzview.read([APVISIT, APVISIT2])
    assert len(frizzview.read([APVISIT, APVISIT2], allow_mixed=True)) == 2
    with pytest.raises(FileNotFoundError):
        frizzview.read(FIXTURES / "no-such-file.fits")


def test_combine_apvisit_grid_exports_and_settings_roundtrip(tmp_path):
    r = frizzview.combine(APVISIT, threads=2)
    # The APOGEE apStar grid: log10 lambda = 4.179 + 6e-6 i, 8575 px.
    assert r.wavelength_aa.size == 8575
    np.testing.assert_allclose(np.log10(r.wavelength_aa), 4.179 + 6e-6 * np.arange(8575), rtol=0, atol=1e-12)
    assert r.forward is not None and r.standard is not None
    # The header velocity is checked against the data (the default since the real-stars work):
    # the value is the file's, the source says it was checked.
    assert r.visits[0]["v_kms"] == pytest.approx(-44.4206)
    assert r.visits[0]["v_source"] in ("vrad", "data (vrad consistent)")
    f = r.forward
    ok = ~(f.no_data | f.poorly_constrained)
    assert ok.sum() > 6000 and np.all(np.isfinite(f.flux[ok])) and np.all(f.var[ok] > 0)
    np.testing.assert_array_equal(f.band[0], f.var)
    # .npz export: the same arrays.
    r.write(tmp_path / "a.npz")
    z = np.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(z["y_star"], f.flux)
    np.testing.assert_array_equal(z["var"], f.var)
    np.testing.assert_array_equal(z["flags"], f.flags)
    np.testing.assert_array_equal(z["standard_y_star"], r.standard.flux)
    # CSV export: one row per output pixel.
    r.write(tmp_path / "a.csv")
    with open(tmp_path / "a.csv") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 8576 and rows[0][:3] == ["wavelength_aa", "flux", "sigma"]
    # FITS export, and its settings reproduce the result.
    r.write(tmp_path / "a.fits")
    r2 = frizzview.combine(APVISIT, settings=str(tmp_path / "a.fits"), threads=1)
    np.testing.assert_allclose(r2.forward.flux, f.flux, rtol=1e-12, atol=0, equal_nan=True)
    assert r2.settings == r.settings
    with pytest.raises(ValueError, match="unknown output format"):
        r.write(tmp_path / "a.txt")
    with pytest.raises(ValueError):
        r.write(APVISIT)  # never replaces an input file


def _boss_frizzle_inputs(d, bad_bits):
    lam, flux, ivar, mask = [], [], [], []
    for v in d.visits:
        lam.append(np.log(v.wavelength_aa))
        flux.append(v.flux)
        ivar.append(v.ivar)
        mask.append(v.bad | ((v.flags & np.uint64(bad_bits)) != 0) | ~(v.ivar > 0))
    return lam, flux, ivar, mask


def test_combine_compat_equals_the_drop_in_on_the_boss_exposures():
    # Two routes into the same maths: the engine (dataset, settings, prepare, plan) and the
    # frizzle drop-in on the same pixels in ln(lambda), on a well-conditioned stretch of the blue
    # camera (over the whole BOSS grid frizzle's period makes the system singular).
    d = frizzview.read(BOSS)
    assert d.survey == "boss" and len(d) == 7
    bad_bits = 1 << 22  # one SPPIXMASK bit, to exercise the bad-bit path
    r = frizzview.combine(
        d, method="forward", compat="frizzle", grid=(3.6021, 1e-4, 900), shift="none",
        bad_bits=bad_bits, selection="ignore", threads=2,
    )
    lam_out = r.ln_wave
    lam, flux, ivar, mask = _boss_frizzle_inputs(d, bad_bits)
    y, B, flags, meta = frizzview.frizzle(
        lam_out, lam, flux, ivar, mask, flags=np.hstack([v.flags for v in d.visits]), C_band=5
    )
    f = r.forward
    assert f.condition < 1e8 and not r.warnings, (f.condition, r.warnings)
    np.testing.assert_array_equal(f.no_data, meta["no_data_mask"])
    np.testing.assert_array_equal(f.flags, flags)
    ok = ~f.no_data
    s = np.sqrt(f.var[ok])
    assert np.max(np.abs(f.flux[ok] - y[ok]) / s) < 1e-8
    assert np.max(np.abs(f.var[ok] - B[0][ok]) / f.var[ok]) < 1e-8


def test_combine_options_reach_the_core_and_bad_values_raise():
    d = frizzview.read(BOSS)
    r = frizzview.combine(d, method="standard", exclude=[0, "exp 104928"], weight={2: 2.5}, threads=1)
    assert r.forward is None and r.standard is not None
    inc = [v["included"] for v in r.visits]
    assert inc == [False, False, True, True, True, True, True]
    assert r.visits[2]["weight"] == 2.5
    bad = [
        dict(grid="nope"),
        dict(grid=(3.5, -1e-4, 10)),
        dict(lags=3),
        dict(weighting="x"),
        dict(shift="up"),
        dict(method="all"),
        dict(basis="wavelet"),
        dict(compat="numpy"),
        dict(robust="huber:-1"),
        dict(robust="tukey:2"),
        dict(bad_bits=-1),
        dict(modes=0),
        dict(exclude=["no such visit"]),
        dict(weight={0: -1.0}),
        dict(velocity={99: 10.0}),
        dict(fit_shifts="yes"),
        dict(threads=0),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            frizzview.combine(d, **kw)
    with pytest.raises(TypeError, match="unexpected keyword"):
        frizzview.combine(d, gridd="boss")


def test_combine_many_matches_one_by_one_and_writes(tmp_path):
    stars = {"boss": BOSS, "apvisit": APVISIT}
    many = frizzview.combine_many(stars, threads=2, out_dir=tmp_path, format="npz", method="forward")
    for name, src in stars.items():
        one = frizzview.combine(src, threads=1, method="forward")
        np.testing.assert_allclose(many[name].forward.flux, one.forward.flux, rtol=1e-12, equal_nan=True)
        z = np.load(tmp_path / f"{name}.npz")
        np.testing.assert_array_equal(z["y_star"], many[name].forward.flux)
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"SIMPLE  = not really a FITS file")
    out = frizzview.combine_many([BOSS, junk], errors="keep", method="forward")
    assert isinstance(out[0], frizzview.Result)
    assert isinstance(out[1], ValueError) and "junk" in str(out[1])
    with pytest.raises(ValueError, match="junk"):
        frizzview.combine_many([BOSS, junk], method="forward")
    with pytest.raises(ValueError, match="format"):
        frizzview.combine_many([BOSS], format="hdf5")


def test_result_pickles_and_writes_after_unpickling(tmp_path):
    r = frizzview.combine(APVISIT, method="forward", threads=1)
    r2 = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(r2.forward.flux, r.forward.flux)
    r2.write(tmp_path / "b.npz")  # recomputed from the source with the recorded settings
    np.testing.assert_array_equal(np.load(tmp_path / "b.npz")["y_star"], r.forward.flux)


def test_datasets_built_in_python_combine_like_the_files():
    d = frizzview.read(BOSS)
    copy = frizzview.Dataset(
        visits=[
            frizzview.Visit(
                wavelength_aa=v.wavelength_aa.astype(np.float64),
                flux=list(v.flux),
                ivar=v.ivar,
                flags=v.flags,
                bad=v.bad,
                segments=v.segments,
                meta=v.meta,
            )
            for v in d.visits
        ],
        name=d.name,
        survey=d.survey,
    )
    a = frizzview.combine(d, method="forward", threads=1)
    b = frizzview.combine(copy, method="forward", threads=1)
    np.testing.assert_array_equal(a.forward.flux, b.forward.flux)
    with pytest.raises(ValueError, match="visit 0"):
        frizzview.combine(frizzview.Dataset(visits=[frizzview.Visit(np.array([2.0, 1.0, 3.0]), np.ones(3), np.ones(3))]))


def test_real_apogee_star_three_visits():
    need(REAL_STAR.is_dir(), f"the real APOGEE star in {REAL_STAR}")
    files = sorted(REAL_STAR.glob("apVisit-*.fits"))
    assert len(files) == 3
    d = frizzview.read(files)
    assert len(d) == 3 and d.survey == "apogee"
    r = frizzview.combine(d, threads=2)
    f = r.forward
    ok = ~(f.no_data | f.poorly_constrained)
    assert ok.sum() > 7000
    assert np.all(np.isfinite(f.flux[ok])) and np.all(f.var[ok] > 0)
    # Against the pipeline's own combination (apStar row 0, on the same grid, divided by the
    # telluric as frizzview's multiply mode models it): measured median |ratio - 1| 0.27 %,
    # median ratio 0.99975, correlation 0.987 (default settings).
    fits = pytest.importorskip("astropy.io.fits")
    with fits.open(next(REAL_STAR.glob("apStar-*.fits"))) as h:
        assert h[0].header["CRVAL1"] == 4.179 and h[0].header["CDELT1"] == 6e-6
        star = np.asarray(h[1].data, dtype=float)[0]
        err = np.asarray(h[2].data, dtype=float)[0]
    use = ok & (star > 0) & (err < 1e9)
    ratio = f.flux[use] / star[use]
    print(f"real star vs apStar: {use.sum()} px, median ratio {np.median(ratio):.5f}, "
          f"median |ratio-1| {np.median(np.abs(ratio - 1)):.4f}, corr {np.corrcoef(f.flux[use], star[use])[0, 1]:.4f}")
    assert use.sum() > 7000
    assert abs(np.median(ratio) - 1) < 0.005
    assert np.median(np.abs(ratio - 1)) < 0.01
    assert np.corrcoef(f.flux[use], star[use])[0, 1] > 0.95
