"""frizzview.frizzle against frizzle 0.2.8's reference outputs and an independent dense solve."""

import numpy as np
import pytest

import frizzview
from frizzview.compat import utils

from conftest import REFERENCE, REPO, need


@pytest.fixture(scope="module")
def case_a():
    z = np.load(REFERENCE / "case_a_f64_input.npz")
    o = np.load(REFERENCE / "case_a_f64_out.npz")
    return {k: z[k] for k in z.files}, {k: o[k] for k in o.files}


def _run(inp, **kw):
    return frizzview.frizzle(
        inp["lam_out"],
        inp["lam"].ravel(),
        inp["flux"].ravel(),
        inp["ivar"].ravel(),
        inp["mask"].ravel(),
        flags=inp["flags"].ravel(),
        **kw,
    )


def _compare(y, var, band, flags, no_data, out, tol_sigma=1e-5, tol_rel=1e-5):
    nd = out["no_data_mask"]
    assert np.array_equal(no_data, nd)
    assert np.array_equal(flags, out["flags_star"])
    ok = ~nd
    assert ok.sum() > nd.size // 2
    s = np.sqrt(out["C_star_diag"][ok])
    dy = np.max(np.abs(y[ok] - out["y_star"][ok]) / s)
    dv = np.max(np.abs(var[ok] - out["C_star_diag"][ok]) / out["C_star_diag"][ok])
    assert dy < tol_sigma, f"max |dy*| = {dy:.3e} sigma"
    assert dv < tol_rel, f"max relative d var = {dv:.3e}"
    ref = out["C_star_band"]
    worst = 0.0
    for k in range(1, ref.shape[0]):
        l = np.arange(nd.size - k)
        good = ok[l] & ok[l + k] & np.isfinite(ref[k, l])
        norm = np.sqrt(out["C_star_diag"][l] * out["C_star_diag"][l + k])[good]
        worst = max(worst, np.max(np.abs(band(k)[l][good] - ref[k, l][good]) / norm))
    assert worst < tol_rel, f"max band error {worst:.3e}"
    print(f"case a: max |dy*| {dy:.2e} sigma, max rel d var {dv:.2e}, band {worst:.2e}")


def test_case_a_dense_matches_frizzle_reference(case_a):
    inp, out = case_a
    y, C, flags, meta = _run(inp)
    m = inp["lam_out"].size
    assert C.shape == (m, m) and y.shape == (m,)
    assert flags.dtype == inp["flags"].dtype
    assert np.array_equal(C, C.T)
    _compare(y, np.diag(C), lambda k: np.diagonal(C, k), flags, meta["no_data_mask"], out)
    # The model reproduces y* at the output pixels.
    f = meta["model"](inp["lam_out"])
    ok = ~meta["no_data_mask"]
    assert np.max(np.abs(f[ok] - y[ok])) < 1e-9


def test_case_a_band_matches_the_dense_matrix_and_the_reference(case_a):
    inp, out = case_a
    y, C, flags, meta = _run(inp)
    yb, B, fb, mb = _run(inp, C_band=5)
    assert B.shape == (6, y.size)
    m = y.size
    for k in range(6):
        np.testing.assert_allclose(B[k, : m - k], np.diagonal(C, k), rtol=1e-9, atol=1e-12)
        assert np.all(np.isnan(B[k, m - k :]))
    np.testing.assert_array_equal(yb, y)
    _compare(yb, B[0], lambda k: B[k], fb, mb["no_data_mask"], out)


def test_case_a_flags_agree_with_the_python_flag_rule(case_a):
    # Two implementations of frizzle's flag rule: the core's (sorted search in Rust) and the
    # numpy port of frizzle.utils.combine_flags.
    inp, _ = case_a
    _, _, flags, _ = _run(inp, C_band=0)
    want = utils.combine_flags(np.sort(inp["lam_out"]), inp["lam"].ravel(), inp["flags"].ravel())
    assert want.any()
    np.testing.assert_array_equal(flags, want)


def test_per_visit_lists_and_float32_inputs(case_a):
    inp, _ = case_a
    y, C, flags, meta = _run(inp, C_band=5)
    # Lists of per-visit arrays are concatenated (frizzle hstacks them).
    y2, C2, f2, m2 = frizzview.frizzle(
        list(inp["lam_out"]),
        list(inp["lam"]),
        list(inp["flux"]),
        list(inp["ivar"]),
        list(inp["mask"]),
        flags=inp["flags"].ravel(),
        C_band=5,
    )
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(C2, C)
    np.testing.assert_array_equal(f2, flags)
    # float32 inputs give the float64 answer for the float32 values.
    f32 = {k: inp[k].astype(np.float32) for k in ("lam_out", "lam", "flux", "ivar")}
    y3, C3, _, _ = frizzview.frizzle(
        f32["lam_out"], f32["lam"].ravel(), f32["flux"].ravel(), f32["ivar"].ravel(),
        inp["mask"].ravel(), C_band=5,
    )
    y4, C4, _, _ = frizzview.frizzle(
        f32["lam_out"].astype(np.float64), f32["lam"].ravel().astype(np.float64),
        f32["flux"].ravel().astype(np.float64), f32["ivar"].ravel().astype(np.float64),
        inp["mask"].ravel(), C_band=5,
    )
    np.testing.assert_array_equal(y3, y4)
    np.testing.assert_array_equal(C3, C4)
    assert y3.dtype == np.float64
    # Flags keep their dtype.
    for dt in (np.uint16, np.int32, np.uint64):
        _, _, f5, _ = _run({**inp, "flags": inp["flags"].astype(dt)}, C_band=0)
        assert f5.dtype == dt
        np.testing.assert_array_equal(f5.astype(np.uint64), flags)


def _dense_reference(lam_out, lam, flux, ivar, n_modes):
    """frizzle's equations solved densely in numpy with its real basis and its period:
    returns y*, C* and the fitted function."""
    lo, hi = lam_out[0], lam_out[-1]
    small = (hi - lo) / (1 + lam_out.size)
    scale = (1 - small) * 2 * np.pi / (hi - lo)

    def design(x):
        u = (np.asarray(x) - lo) * scale
        cols = [np.ones_like(u)]
        for k in range(1, n_modes // 2 + 1):
            cols += [np.cos(k * u), np.sin(k * u)]
        return np.stack(cols, axis=1)

    X = design(lam)
    A = X.T @ (ivar[:, None] * X)
    theta = np.linalg.solve(A, X.T @ (ivar * flux))
    Xs = design(lam_out)
    return Xs @ theta, Xs @ np.linalg.solve(A, Xs.T), lambda x: design(x) @ theta


def test_angstrom_units_and_an_uneven_grid_match_a_dense_solve():
    # frizzle's `small` is dimensionful: in Angstrom the period differs from ln-lambda units.
    rng = np.random.default_rng(3)
    lam_out = np.sort(15100.0 + 4.0 * rng.uniform(size=61))
    lam = np.hstack([np.sort(15100.0 + 4.0 * rng.uniform(size=70)) for _ in range(3)])
    flux = 1 + 0.1 * np.sin(lam * 3.0) + 0.01 * rng.standard_normal(lam.size)
    ivar = rng.uniform(50, 150, size=lam.size)
    inside = (lam >= lam_out[0]) & (lam <= lam_out[-1])
    y, C, _, meta = frizzview.frizzle(lam_out, lam, flux, ivar, censor_missing_regions=False)
    p = meta["n_modes"]
    assert p == 61
    y_ref, C_ref, f_ref = _dense_reference(lam_out, lam[inside], flux[inside], ivar[inside], p)
    s = np.sqrt(np.diag(C_ref))
    dy = np.max(np.abs(y - y_ref) / s)
    dc = np.max(np.abs(C - C_ref) / np.outer(s, s))
    print(f"uneven Angstrom grid: max |dy*| {dy:.2e} sigma, max |dC*| {dc:.2e}, cond {meta['condition']:.2e}")
    assert dy < 1e-7 and dc < 1e-7
    # The model between output pixels and beyond them (periodic, as frizzle's).
    x = np.linspace(lam_out[0] - 5, lam_out[-1] + 5, 17)
    assert np.max(np.abs(meta["model"](x) - f_ref(x))) < 1e-6 * np.max(s)
    assert meta["model"](np.float64(lam_out[3])).shape == ()


def test_censoring_sets_nan_flux_and_inf_columns():
    lam_out = np.linspace(0.0, 1.0, 21)
    lam = np.concatenate([np.linspace(0.0, 0.3, 30), np.linspace(0.7, 1.0, 30)])
    flux = np.ones_like(lam)
    y, C, _, meta = frizzview.frizzle(lam_out, lam, flux)
    nd = meta["no_data_mask"]
    # frizzle's rule: nearest input farther than the next output spacing; last pixel exempt.
    d = utils.nearest_distance(lam, lam_out)
    np.testing.assert_array_equal(nd, np.hstack([d[:-1] > np.diff(lam_out), False]))
    assert nd.any()
    assert np.all(np.isnan(y[nd])) and np.all(np.isfinite(y[~nd]))
    assert np.all(np.isinf(C[:, nd])) and np.all(np.isfinite(C[:, ~nd]))
    _, B, _, _ = frizzview.frizzle(lam_out, lam, flux, C_band=3)
    for k in range(4):
        row = B[k, : lam_out.size - k]
        np.testing.assert_array_equal(np.isinf(row), nd[k:])
    y2, C2, _, meta2 = frizzview.frizzle(lam_out, lam, flux, censor_missing_regions=False)
    assert "no_data_mask" not in meta2
    assert np.all(np.isfinite(y2)) and np.all(np.isfinite(C2))


def test_bad_inputs_raise_value_errors():
    lam_out = np.linspace(0, 1, 11)
    lam = np.linspace(0, 1, 40)
    flux = np.ones(40)
    with pytest.raises(ValueError, match="ivar has 39 values"):
        frizzview.frizzle(lam_out, lam, flux, np.ones(39))
    with pytest.raises(ValueError, match="even"):
        frizzview.frizzle(lam_out, lam, flux, n_modes=4)
    with pytest.raises(ValueError, match="not finite"):
        frizzview.frizzle(lam_out, np.where(lam > 0.5, np.nan, lam), flux)
    with pytest.raises(ValueError, match="repeated"):
        frizzview.frizzle(np.array([0.0, 0.5, 0.5, 1.0]), lam, flux)
    with pytest.raises(ValueError, match="C_band"):
        frizzview.frizzle(lam_out, lam, flux, C_band=-1)
    with pytest.raises(ValueError, match="threads"):
        frizzview.frizzle(lam_out, lam, flux, threads=0)
    with pytest.raises(ValueError, match="flags must be integers"):
        frizzview.frizzle(lam_out, lam, flux, flags=np.ones(40))
    with pytest.raises(ValueError, match="at least one Fourier mode"):
        frizzview.frizzle(lam_out, lam, flux, mask=np.ones(40, bool))


def test_threads_do_not_change_the_answer(case_a):
    inp, _ = case_a
    y1, B1, _, _ = _run(inp, C_band=5, threads=1)
    y2, B2, _, _ = _run(inp, C_band=5, threads=2)
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(B1, B2, rtol=1e-10, atol=1e-15)


def test_unaligned_and_strided_arrays_are_accepted():
    # Buffers deserialised by Dask (and np.frombuffer at an offset) can be unaligned.
    lam_out = np.linspace(0.0, 1.0, 21)
    lam = np.linspace(0.0, 1.0, 64)
    flux = 1 + 0.1 * np.sin(5 * lam)
    raw = bytearray(8 * lam.size + 1)
    odd = np.frombuffer(raw, dtype=np.float64, count=lam.size, offset=1)
    odd[:] = flux
    assert not odd.flags.aligned
    strided = np.repeat(lam, 2)[::2]
    y1, C1, _, _ = frizzview.frizzle(lam_out, lam, flux)
    y2, C2, _, _ = frizzview.frizzle(lam_out, strided, odd)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(C1, C2)


def _max_rel(C, R):
    """Largest |C - R| relative to sqrt(R_jj R_ll) over every entry."""
    s = np.sqrt(np.diag(R))
    return np.max(np.abs(C - R) / np.outer(s, s))


def test_case_a_dense_closed_form_equals_the_column_path(case_a):
    # The dense C* from the Gohberg-Semencul generators in closed form (one NUFFT, O(1) per
    # entry) against the previous path: one Gohberg-Semencul product and one NUFFT per column.
    inp, _ = case_a
    y, C, _, _ = _run(inp, censor_missing_regions=False)
    y2, C2, _, _ = _run(inp, censor_missing_regions=False, _dense_by_columns=True)
    np.testing.assert_array_equal(y, y2)
    assert np.all(np.isfinite(C)) and np.array_equal(C, C.T)
    e = _max_rel(C, C2)
    print(f"case a: closed-form dense C* vs column path: max relative difference {e:.2e}")
    assert e < 1e-10, e


def test_math_ref_full_covariance_matches_the_dense_equations_and_frizzle():
    # 8 visits x 171 px -> 329 px: every entry of C* against numpy's dense solution of the
    # paper's equations (committed fixture) and frizzle 0.2.8's own full C* (shared reference).
    z = np.load(REFERENCE / "math_ref_f64.npz")
    y, C, _, meta = frizzview.frizzle(
        z["small_lam_out"], z["small_in_lam"].ravel(), z["small_in_flux"].ravel(),
        z["small_in_ivar"].ravel(), z["small_in_mask"].ravel(), censor_missing_regions=False,
    )
    assert C.shape == (329, 329)
    e_dense = _max_rel(C, z["small_C_dense"])
    assert e_dense < 1e-6, e_dense
    s = np.sqrt(np.diag(z["small_C_dense"]))
    assert np.max(np.abs(y - z["small_y_dense"]) / s) < 1e-5
    shared = REPO.parent / "shared" / "reference" / "math_ref_f64" / "small_C_frizzle.npy"
    need(shared.exists(), f"{shared} (frizzle 0.2.8's full C*) is absent")
    e_frizzle = _max_rel(C, np.load(shared))
    print(f"math_ref: dense C* vs numpy {e_dense:.2e}, vs frizzle 0.2.8 {e_frizzle:.2e}")
    assert e_frizzle < 1e-5, e_frizzle


def test_reused_memory_never_changes_a_held_result_and_is_fully_rewritten(case_a):
    # The dense C*'s memory is kept for the next call once numpy frees the array
    # (crates/frizzview-py/src/spare.rs). A C* the caller still holds must never be written by a
    # later call, and a reused buffer (here: one that held case a's C*, then deliberately filled
    # with garbage) must be rewritten in every entry.
    import gc

    inp, _ = case_a
    _, C1, _, _ = _run(inp, censor_missing_regions=False)
    held = C1.copy()
    # A smaller output (1500 of case a's 2000 pixels) while C1 is held: a new buffer.
    small = dict(inp, lam_out=inp["lam_out"][:1500])
    _, C2, _, _ = _run(small, censor_missing_regions=False)
    np.testing.assert_array_equal(C1, held)
    assert C2.__array_interface__["data"][0] != C1.__array_interface__["data"][0]
    # Free C1 with garbage in it: the next call of the same size gets its memory back.
    C1.fill(np.nan)
    address = C1.__array_interface__["data"][0]
    del C1
    gc.collect()
    _, C3, _, _ = _run(inp, censor_missing_regions=False)
    reused = C3.__array_interface__["data"][0] == address
    print(f"spare buffer reused: {reused}")
    assert reused
    assert np.all(np.isfinite(C3)) and np.array_equal(C3, C3.T)
    np.testing.assert_array_equal(C3, held)
    # The smaller output's C* against the column path, entry by entry.
    _, R2, _, _ = _run(small, censor_missing_regions=False, _dense_by_columns=True)
    assert _max_rel(C2, R2) < 1e-10
