"""The package without its optional dependencies: .ci/python runs this file (FRIZZVIEW_MINIMAL=1)
in a second virtual environment with numpy and pytest only."""

import importlib.util
import os

import numpy as np
import pytest

import frizzview

MINIMAL = os.environ.get("FRIZZVIEW_MINIMAL") == "1"


@pytest.mark.skipif(not MINIMAL, reason="run by .ci/python in a venv without specutils and astropy")
def test_works_without_specutils_and_astropy():
    for mod in ("specutils", "astropy", "scipy", "matplotlib", "jax"):
        assert importlib.util.find_spec(mod) is None, f"{mod} is installed in the minimal venv"
    # The drop-in, the dense C* included.
    lam_out = np.linspace(0.0, 1.0, 41)
    lam = np.concatenate([np.linspace(0.0, 1.0, 90) + 0.003 * i for i in range(3)])
    flux = 1 + 0.1 * np.sin(7 * lam)
    y, C, flags, meta = frizzview.frizzle(lam_out, lam, flux)
    assert C.shape == (41, 41) and np.array_equal(C, C.T)
    # Away from the ends (frizzle's period wraps the last pixel onto the first).
    inner = slice(3, -3)
    assert np.max(np.abs(y[inner] - (1 + 0.1 * np.sin(7 * lam_out[inner])))) < 1e-2
    # The engine, and a clear error where an optional package is needed.
    r = frizzview.combine(frizzview.synth_apogee(visits=3, seed=2), threads=1)
    assert np.isfinite(r.forward.flux).sum() > 1000
    assert "frizzview.Result" in repr(r)
    with pytest.raises(ImportError):
        r.forward.to_spectrum()
    with pytest.raises(ImportError):
        r.forward.covariance()
    assert not frizzview.astro.is_spectrum_list([np.zeros(3)])
