#!/usr/bin/env python3
"""Check frizzview's exports with the Python ecosystem (astropy, numpy; specutils if installed).

Usage: check_export.py PATH/TO/frizzview PATH/TO/tests/fixtures

For each fixture (an APOGEE apVisit file, the BOSS spec file, the reference bundle) the script runs
`frizzview combine` twice with the same settings, once to .fits and once to .npz, then checks with
astropy that the FITS file has the apStar-like layout, that the wavelengths derived from its WCS
keywords (CRVAL1, CDELT1, CRPIX1, CTYPE1 = LOG-LINEAR) equal the output grid the library wrote
(lam_out), and that every value equals what the library wrote in the .npz. Exit code 0 = all good.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits


def same(a, b, what, rtol=0.0):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b), f"{what}: NaN patterns differ ({nan_a.sum()} vs {nan_b.sum()})"
    ok = ~nan_a
    if rtol == 0.0:
        assert np.array_equal(a[ok], b[ok]), f"{what}: values differ (max {np.max(np.abs(a[ok] - b[ok]))})"
    else:
        assert np.allclose(a[ok], b[ok], rtol=rtol, atol=0), f"{what}: values differ beyond {rtol}"


def check(binary, src, tmp, extra):
    stem = Path(src).stem
    out_fits = Path(tmp) / f"{stem}.fits"
    out_npz = Path(tmp) / f"{stem}.npz"
    for out in (out_fits, out_npz):
        subprocess.run([binary, "combine", str(src), "-o", str(out), "--quiet", *extra], check=True)
    npz = np.load(out_npz)
    with fits.open(out_fits) as h:
        names = [x.name for x in h]
        for want in ["PRIMARY", "FLUX", "ERROR", "MASK", "COVAR_FORWARD", "COVAR_STANDARD", "VISITS"]:
            assert want in names, f"{out_fits}: HDU {want} missing ({names})"
        p = h[0].header
        nv = p["NVISITS"]
        m = npz["lam_out"].size
        flux, err, mask = h["FLUX"].data, h["ERROR"].data, h["MASK"].data
        assert flux.shape == (nv + 2, m), f"FLUX shape {flux.shape}, expected {(nv + 2, m)}"
        assert err.shape == flux.shape and mask.shape == flux.shape
        hd = h["FLUX"].header
        if "CTYPE1" in hd:
            assert hd["CTYPE1"] == "LOG-LINEAR" and hd["DC-FLAG"] == 1
            pix = np.arange(m) + 1 - hd["CRPIX1"]
            wave_wcs = 10.0 ** (hd["CRVAL1"] + hd["CDELT1"] * pix)
        else:
            wave_wcs = h["WAVELENGTH"].data
        rel = np.max(np.abs(wave_wcs / np.exp(npz["lam_out"]) - 1))
        assert rel < 1e-12, f"WCS wavelengths differ from lam_out by {rel}"
        same(flux[0], npz["y_star"], "forward flux")
        same(err[0], np.sqrt(npz["var"]), "forward error")
        pcbit = h["MASK"].header["PCBIT"]
        weak = ((mask[0] >> pcbit) & 1).astype(bool)
        assert np.all(weak == npz["poorly_constrained_mask"]), "MASK bit PCBIT marks the poorly constrained pixels"
        same(mask[0] & ~(1 << pcbit), npz["flags"].astype(np.int64), "forward mask")
        same(h["COVAR_FORWARD"].data, npz["C_band"], "forward covariance band")
        same(flux[1], npz["standard_y_star"], "standard flux")
        same(h["COVAR_STANDARD"].data, npz["standard_C_band"], "standard covariance band")
        blank = npz["no_data_mask"] | npz["poorly_constrained_mask"]
        assert np.all(np.isnan(flux[0]) == blank), "NaN flux marks the no-data and poorly constrained pixels"
        vt = h["VISITS"].data
        assert len(vt) == nv, f"VISITS has {len(vt)} rows for NVISITS {nv}"
        same(vt["CHI2_NU_FORWARD"], npz["visit_chi2_nu"], "per-visit chi2/nu")
        same(vt["CHI2_NU_LOO"], npz["visit_loo_chi2_nu"], "per-visit leave-one-out chi2/nu")
        settings = json.loads("".join(p[f"FVSET{k:03d}"] for k in range(p["FVSETN"])))
        assert settings == json.loads(bytes(npz["settings_json"]).decode()), "settings JSON"
        for i in range(1, min(nv, 99) + 1):
            assert f"SFILE{i}" in p, f"SFILE{i} missing"
        log_linear = "CTYPE1" in hd
    print(f"ok: {src.name}: {nv} visits, {m} px, FITS == npz, WCS == lam_out (max rel {rel:.1e})")
    if not log_linear:
        return  # specutils' apStar loader needs the WCS keywords
    try:
        try:
            from specutils import Spectrum
        except ImportError:
            from specutils import Spectrum1D as Spectrum
    except ImportError:
        return
    try:
        s = Spectrum.read(out_fits, format="APOGEE apStar")
    except Exception as e:  # report, do not fail: the loader is strict about APOGEE headers
        print(f"note: specutils' APOGEE apStar loader does not read {out_fits.name}: {e}")
        return
    w = s.spectral_axis.to_value("Angstrom")
    assert np.allclose(w, np.exp(npz["lam_out"]), rtol=1e-10), "specutils wavelengths"
    same(s.flux.value, npz["y_star"], "specutils flux (row 0, the forward model)")
    print(f"ok: specutils reads {out_fits.name} as APOGEE apStar ({len(w)} px)")


def main():
    binary, fixtures = sys.argv[1], Path(sys.argv[2])
    runs = [
        (fixtures / "apVisit-r13-5095-55844-128.fits", []),
        (fixtures / "spec-3586-55181-0500.fits", []),
        (fixtures / "reference/case_a_f64_input.npz", []),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for src, extra in runs:
            check(binary, src, tmp, extra)


if __name__ == "__main__":
    main()
